"""profile.py: profiles -> Ruleset (placeholder until the profile issue)."""

from __future__ import annotations

from .errors import UsageError
from .policy import base_ruleset


def for_command(profiles, command):
    if profiles:
        raise UsageError("profiles are not supported yet")
    return base_ruleset()

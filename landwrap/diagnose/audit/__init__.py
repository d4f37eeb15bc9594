"""diagnose/audit: Landlock denial records (being split into its parts; see records)."""

from .records import *  # noqa: F401,F403
from .records import _Control, _explain  # noqa: F401

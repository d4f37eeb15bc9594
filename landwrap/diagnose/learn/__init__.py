"""diagnose/learn: `landwrap learn` (being split into its parts; see rounds)."""

from .rounds import *  # noqa: F401,F403
from .rounds import _is_path  # noqa: F401

"""profiles/default.py: the kernel's status (engine/status.py) with the
default sandbox of `landwrap run` as this kernel would enforce it, for
`landwrap status` and ``landwrap.status()``.  Resolves, never restricts."""

from __future__ import annotations

from ..engine import compat
from ..engine.plan import resolve
from ..engine.errors import LandwrapError
from ..engine.status import status as kernel_status
from .profile import for_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def status(abi: int | None = None) -> dict[str, Any]:
    """:func:`engine.status.status` plus ``default``: how the default
    profile would be enforced here (or why it is refused)."""
    out = kernel_status(abi)
    try:
        # (bind=False: no kernel ruleset, only the plan is looked at;
        # track_dirs=False: nor will it be reused)
        plan = resolve(for_command((), None).ruleset, abi=abi, bind=False, track_dirs=False)
        out["default"] = {"status": plan.status, "dropped": plan.dropped,
                          "unenforceable": plan.unenforceable,
                          "rules": len(plan.rules),
                          "handled_access_fs": compat.names(compat.FS_RIGHTS, plan.fs),
                          "handled_access_net": compat.names(compat.NET_RIGHTS, plan.net),
                          "scoped": compat.names(compat.SCOPES, plan.scoped)}
    except LandwrapError as e:
        out["default"] = {"status": "refused", "error": e.message}
    return out

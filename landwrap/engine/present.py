"""present.py: a Plan in words and as data -- for people and scripts.

:func:`short_access` (ro/rox/rw/rwx or the right names), the one-line
summary and warning, and :meth:`Presentation.to_dict` (``--json``,
``--dry-run``).  Pure: reads the plan, never changes it, never prints.
"""

from __future__ import annotations

from . import compat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .compat import Status
    from .plan import Rule
    from .ruleset import Ruleset

class Presentation:
    """The reporting half of :class:`~landwrap.engine.plan.Plan`."""

    if TYPE_CHECKING:  # set by Plan
        request: Ruleset
        status: Status
        mode: str
        abi: int
        kernel_abi: int
        fs: int
        net: int
        scoped: int
        flags: int
        @property
        def rules(self) -> list[Rule]: ...
        ports: list[tuple[int, int, list[str]]]
        hidden: list[str]
        dropped: list[str]
        unenforceable: list[str]
        skipped: list[tuple[str, str, str]]
        @property
        def redundant(self) -> list[tuple[str, str, str | None]]: ...

    def summary_line(self) -> str:
        if self.status == compat.NOT_ENFORCED:
            return "not enforced"
        return f"{self.status} enforced (Landlock ABI {self.abi})"

    def warning(self) -> str | None:
        """One line naming what this kernel cannot enforce, or None."""
        if not self.dropped:
            return None
        where = f"Landlock ABI {self.abi}" if self.abi else "this kernel"
        return f"{where} cannot enforce: " + "; ".join(self.dropped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "mode": self.mode,
            "abi": self.abi,
            "kernel_abi": self.kernel_abi if self.kernel_abi >= 0 else None,
            "handled_access_fs": compat.names(compat.FS_RIGHTS, self.fs),
            "handled_access_net": compat.names(compat.NET_RIGHTS, self.net),
            "scoped": compat.names(compat.SCOPES, self.scoped),
            "restrict_flags": compat.names(compat.RESTRICT_FLAGS, self.flags),
            "rules": [{"path": r.path, "type": "dir" if r.is_dir else "file",
                       "access": compat.names(compat.FS_RIGHTS, r.access),
                       "short": short_access(r.access, self.fs, r.is_dir),
                       "from": r.origins} for r in self.rules],
            "ports": [{"port": p, "access": compat.names(compat.NET_RIGHTS, b),
                       "from": o} for p, b, o in self.ports],
            "hidden": list(self.hidden),
            "dropped": list(self.dropped),
            "unenforceable": list(self.unenforceable),
            "skipped": [{"path": p, "from": o, "reason": why} for p, o, why in self.skipped],
            "merged": [{"path": p, "from": o, "covered_by": c}
                       for p, o, c in self.redundant],
            "profiles": list(self.request.sources),
        }


def short_access(bits: int, handled: int, is_dir: bool = True) -> str:
    """``ro``/``rox``/``rw``/``rwx`` when *bits* is exactly such a set (as far
    as the kernel handles it), else the right names joined by ``,``."""
    for name in ("rwx", "rw", "rox", "ro"):
        want = compat.access_bits(name) & handled
        if not is_dir:
            want &= compat.FS_FILE
        if bits == want:
            return name
    return ",".join(compat.names(compat.FS_RIGHTS, bits))

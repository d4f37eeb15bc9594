"""report.py: what landwrap prints: errors, warnings and the sandbox plan.

Errors are one line ``landwrap: <message>`` plus ``Hint: <hint>`` where a fix
is known; never a traceback.  Only formatting here.
"""

from __future__ import annotations

import sys

from ..engine import compat
from ..engine.present import short_access
from ..engine.safetext import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

    from ..engine.plan import Plan


def error(e: object) -> None:
    sys.stderr.write(f"landwrap: {printable(e)}\n")
    hint = getattr(e, "hint", None)
    if hint:
        sys.stderr.write(f"Hint: {printable(hint)}\n")


def warn(msg: str) -> None:
    sys.stderr.write(f"landwrap: warning: {printable(msg)}\n")


def info(msg: str) -> None:
    sys.stderr.write(f"landwrap: {printable(msg)}\n")


def plan_warnings(plan: Plan) -> list[str]:
    """The warning lines a run prints for *plan* (empty when the kernel
    enforces everything).  ``-q`` hides these, but never
    :func:`unsandboxed_warning`."""
    warning = plan.warning()  # None exactly when nothing was dropped
    if warning is None or not plan.enforces_anything:
        return []
    if plan.mode == compat.BEST_EFFORT and plan.explicit_missing:
        return ["best-effort: running without what was asked for but is "
                "unsupported; " + warning]
    return [warning]


def unsandboxed_warning(plan: Plan) -> str | None:
    """The line a run always prints when Landlock will enforce nothing at
    all (the user lifted every restriction, or best-effort on a kernel that
    has none of what was asked), else None."""
    if plan.enforces_anything:
        return None
    lost = plan.dropped + plan.unenforceable
    if lost:
        where = f"Landlock ABI {plan.abi}" if plan.abi else "this kernel"
        return f"NOT SANDBOXED: {where} cannot enforce: " + "; ".join(lost)
    return ("NOT SANDBOXED: every Landlock restriction was lifted "
            "(--unrestricted-fs, --unrestricted-net and --unrestricted-scope, or the profile)")


def _names(table: dict[str, tuple[int, int]], bits: int) -> str:
    return ", ".join(compat.names(table, bits)) or "none"


def format_plan(plan: Plan, program: str | None = None, argv: Sequence[str] | None = None,
                why: str | None = None) -> str:
    """The human-readable sandbox, as `--dry-run` prints it (*why*: why
    the profile was chosen).  Paths, names and arguments come from users
    and programs: every one is escaped (safetext.printable)."""
    p = printable
    out: list[str] = []
    kabi = plan.kernel_abi
    kernel = f"kernel ABI {kabi}" if kabi >= 0 else "no Landlock in this kernel"
    out.append(f"Sandbox: {plan.summary_line()}  [{kernel}, mode {plan.mode}]")
    if program is not None:
        out.append(f"Command: {p(program)}"
                   + (" " + " ".join(map(p, argv[1:])) if argv and len(argv) > 1 else ""))
    if plan.request.sources:
        out.append("Profiles: " + " -> ".join(map(p, plan.request.sources)))
    if why:
        out.append(f"Chosen: {p(why)}")
    out.append("Filesystem: " + ("restricted; handled rights: " + _names(compat.FS_RIGHTS, plan.fs)
                                 if plan.fs and plan.request.fs else "not restricted"))
    out.append("Network: " + ("restricted; handled rights: " + _names(compat.NET_RIGHTS, plan.net)
                              if plan.net else "not restricted"))
    out.append("Scopes: " + (_names(compat.SCOPES, plan.scoped) if plan.scoped else "none"))
    if plan.flags:
        out.append("Restrict flags: " + _names(compat.RESTRICT_FLAGS, plan.flags))
    if plan.rules:
        out.append(f"Path rules ({len(plan.rules)}):")
        width = max(len(short_access(r.access, plan.fs, r.is_dir)) for r in plan.rules)
        for r in plan.rules:
            acc = short_access(r.access, plan.fs, r.is_dir)
            out.append(f"  {acc:<{width}}  {p(r.path)}{'' if r.is_dir else ' (file)'}"
                       f"    # {p(', '.join(r.origins))}")
    elif plan.fs:
        out.append("Path rules: none (no filesystem access at all)")
    if plan.net:
        if plan.ports:
            out.append(f"Port rules ({len(plan.ports)}):")
            for port, bits, origins in _port_ranges(plan.ports):
                out.append(f"  {_names(compat.NET_RIGHTS, bits)}  {port}    # {p(', '.join(origins))}")
        else:
            out.append("Port rules: none (no TCP bind or connect)")
    if plan.redundant:
        out.append(f"Merged away ({len(plan.redundant)}):")
        for path, origin, cover in plan.redundant:
            why = f"covered by {cover}" if cover else "no right this kernel handles"
            out.append(f"  {p(path)}    # {p(origin)}: {p(why)}")
    if plan.skipped:
        out.append(f"Skipped, missing ({len(plan.skipped)}):")
        for path, origin, reason in plan.skipped:
            out.append(f"  {p(path)}    # {p(origin)}: {p(reason)}")
    if plan.dropped:
        out.append("Not enforced by this kernel:")
        for d in plan.dropped:
            out.append(f"  {p(d)}")
    if plan.unenforceable:
        out.append("Implicit restrictions this kernel lacks (not asked for; see "
                   "`landwrap status`):")
        for d in plan.unenforceable:
            out.append(f"  {p(d)}")
    return "\n".join(out) + "\n"


def _port_ranges(ports: Iterable[tuple[int, int, list[str]]]
                 ) -> list[tuple[str, int, list[str]]]:
    """Collapse consecutive ports with the same rights and origins."""
    out: list[list[Any]] = []
    for port, bits, origins in ports:
        if out and out[-1][1] == port - 1 and out[-1][2] == bits and out[-1][3] == origins:
            out[-1][1] = port
        else:
            out.append([port, port, bits, origins])
    return [(str(lo) if lo == hi else f"{lo}-{hi}", bits, origins)
            for lo, hi, bits, origins in out]

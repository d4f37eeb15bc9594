"""denials.py: what the sandbox denied, and the option that would allow it
(for `landwrap run --log-denials`, whose command body is ``cli.denials``).

:func:`resolve_logged` asks for the kernel's denial logging (restrict flag
LOG_NEW_EXEC_ON, so the exec'd program and its children are logged).
:func:`suggest` and :func:`format_report` are pure: they only look at
denials (and, for paths, whether they are directories).  Never prints.
"""

from __future__ import annotations

import os

from ..engine import compat
from ..engine.errors import DenialLoggingUnsupported, UnsupportedFeature
from ..profiles.parse import toml_str
from ..engine.safetext import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Protocol, Sequence

    from ..engine.plan import Plan
    from ..engine.ruleset import Ruleset
    from .audit.records import Denial

    class Report(Protocol):
        """What :func:`format_report` reads: an ``audit.Analysis``, or the
        same from a strace run (``untallied`` and ``lost`` are optional)."""

        @property
        def denials(self) -> Sequence[Denial]: ...

        @property
        def kernel_count(self) -> int | None: ...

#: The restrict_self() flag that makes the kernel log the denials of the
#: exec'd program and of its children (not only of the launcher's child).
LOG_FLAG = "log_new_exec_on"

#: Rights checked on the directory that holds the entry being made or
#: removed, not on the entry itself.
DIR_ENTRY_RIGHTS = compat.DIR_ENTRY_RIGHTS
WRITE_RIGHTS = set(compat.ACCESS_SETS["rw"]) - set(compat.ACCESS_SETS["ro"])
PROGRAM_DIRS = {"bin", "sbin", "libexec"}


def log_bit() -> int:
    return compat.RESTRICT_FLAGS[LOG_FLAG][0]


def needs() -> str:
    """Where denial logging comes from: 'ABI 7, Linux 6.15'."""
    return compat.since(compat.RESTRICT_FLAGS[LOG_FLAG][1])


def resolve_logged(rs: Ruleset) -> Plan:
    """Resolve *rs* (a Ruleset) with denial logging requested; a kernel
    (or --abi cap) that lacks only that raises DenialLoggingUnsupported."""
    rs.request_flags(log_bit())
    try:
        return rs.resolve()
    except UnsupportedFeature as e:
        if [m for m in e.missing if m[0] != "flags"]:
            raise
        raise DenialLoggingUnsupported(e.abi, e.kernel_abi, e.missing, e.needed_abi,
                                       needs()) from None


def quote(path: str) -> str:
    if path and all(c.isalnum() or c in "/._-+,:@%=~" for c in path):
        return path
    import shlex  # lazy: only for a path that needs quoting

    return shlex.quote(path)


def is_program_dir(d: str) -> bool:
    return os.path.basename(d.rstrip("/")) in PROGRAM_DIRS


def fs_option(rights: Iterable[str], path: str | None) -> str | None:
    """The --ro/--rox/--rw/--rwx option that allows filesystem *rights*
    (names) on *path*; for execute, on the program's directory when it is a
    bin/sbin/libexec directory."""
    if not path or not path.startswith("/"):
        return None
    rights = set(rights)
    if rights & (WRITE_RIGHTS | DIR_ENTRY_RIGHTS):
        return f"--{'rwx' if 'execute' in rights else 'rw'} {quote(path)}"
    if "execute" in rights:
        parent = os.path.dirname(path)
        return f"--rox {quote(parent if is_program_dir(parent) else path)}"
    return f"--ro {quote(path)}"


def profile_line(option: str, rights: Iterable[str] = ()) -> str:
    """The profile spelling (TOML, one or more lines) of an --ro/--rox/
    --rw/--rwx *option*; the exact ``[[filesystem.rule]]`` when the shorthand grants much more than
    *rights* (e.g. only creating files in a directory)."""
    flag, _, path = option.partition(" ")
    short = flag.lstrip("-")
    if path.startswith("'"):
        import shlex  # lazy: likewise

        path = shlex.split(path)[0]
    rights = set(rights)
    if rights and short in ("rw", "rwx") and not rights & {"read_file", "write_file"}:
        names = [n for n in compat.FS_RIGHTS if n in rights]
        if "make_reg" in rights:
            names += [n for n in ("write_file", "truncate") if n not in names]
        return (f"[[filesystem.rule]]\npath = {toml_str(path)}\naccess = ["
                + ", ".join(toml_str(n) for n in names) + "]")
    return f"[filesystem] {short} = [{toml_str(path)}]"


def suggest(d: Denial) -> str | None:
    """The `landwrap run` option (or, without one, the profile line) that
    would allow denial *d*, or None when no rule can allow it."""
    kinds = d.kinds
    if kinds == {"fs"}:
        if getattr(d, "deleted", False):
            return None  # (not the file at the name without " (deleted)")
        return fs_option(d.rights, d.path)
    if kinds == {"net"} and d.port is not None:
        opts = []
        for r in d.rights:
            if r in ("connect_tcp", "bind_tcp"):
                opts.append(f"--{r.replace('_', '-')} {d.port}")
            elif r == "bind_udp":
                opts.append(f"[network] bind_udp = [{d.port}]")
            elif r == "connect_send_udp":
                opts.append(f"[network] connect_udp = [{d.port}]")
        return " ".join(opts) or None
    if kinds == {"scope"}:
        scope = d.rights[0]
        return f"--unrestricted-scope (profile: [scope] {scope} = false)"
    return None


def describe(d: Denial) -> str:
    """What was denied, on what: 'read_file /etc/shadow',
    'make_reg in /tmp/out', 'connect_tcp 127.0.0.1:443'."""
    what = ",".join(d.rights)
    if d.path:
        # as the kernel named it: a deleted object, or a file named so
        path = d.path + " (deleted)" if getattr(d, "deleted", False) else d.path
        if set(d.rights) <= DIR_ENTRY_RIGHTS:
            return f"{what} in {quote(path)}"
        return f"{what} {quote(path)}"
    if d.port is not None:
        addr = d.addr or "?"
        if ":" in addr:
            addr = f"[{addr}]"
        return f"{what} {addr}:{d.port}"
    if d.opid is not None:
        return f"{what} to pid {d.opid}" + (f" ({d.ocomm})" if d.ocomm else "")
    if d.ino:
        return f"{what} inode {d.ino} on {d.dev or '?'}"
    return what


#: execve/execveat numbers (x86_64; the generic table of aarch64/riscv64).
EXEC_SYSCALLS = {"59", "322", "221", "281"}


def program_of(d: Denial, launcher_exe: str | None = None) -> str:
    """Who was denied; the launcher's own child failing to execute the
    command (before it became the command) is named as such."""
    if launcher_exe and d.exe == launcher_exe and "execute" in d.rights \
            and d.syscall in EXEC_SYSCALLS:
        return "landwrap (starting the command)"
    return d.program


def summarize(denials: Iterable[Denial],
              launcher_exe: str | None = None) -> list[tuple[int, Denial, str]]:
    """[(count, denial, program)] with duplicates (same access, object and
    program) counted once, in order of first appearance; a denial may
    already stand for ``count`` identical ones (``audit.Tally``)."""
    seen: dict[tuple[object, ...], list[Any]] = {}
    for d in denials:
        prog = program_of(d, launcher_exe)
        key = (d.blockers, d.path, getattr(d, "deleted", False), d.port, d.addr, d.opid, prog)
        n = getattr(d, "count", 1)
        if key in seen:
            seen[key][0] += n
        else:
            seen[key] = [n, d, prog]
    return [(v[0], v[1], v[2]) for v in seen.values()]


def format_report(result: Report, launcher_exe: str | None = None) -> str:
    """The report `run --log-denials` prints for an ``audit.Analysis``.
    Paths and program names come from the sandboxed program (it chooses
    its file names and, with PR_SET_NAME, its name): every line is printed
    with control characters escaped (``safetext.printable``)."""
    items = summarize(result.denials, launcher_exe)
    untallied = getattr(result, "untallied", 0)
    n = sum(c for c, _, _ in items) + untallied
    out = []
    if not n:
        out.append("landwrap: --log-denials: the sandbox denied nothing")
    else:
        plural = "" if n == 1 else "s"
        distinct = f", {len(items)} distinct" if len(items) != n else ""
        out.append(f"landwrap: the sandbox denied {n} access{'es' if plural else ''}"
                   f"{distinct}:")
        for count, d, prog in items:
            times = f"{count}x " if count > 1 else ""
            fix = suggest(d)
            line = f"  {times}{describe(d)}  by {prog}"
            line += f"  -> allow with {fix}" if fix else (
                "  -> deleted (or so named): no rule is suggested"
                if getattr(d, "deleted", False) else "  -> no rule can allow this")
            out.append(printable(line))
        if untallied:
            out.append(f"  and {untallied} more, not itemized (too many different denials)")
    counted = result.kernel_count
    if counted is not None and counted > n:
        out.append(f"landwrap: the kernel counted {counted} denials; "
                   f"{counted - n} were not logged (audit rate limit or backlog)")
    if getattr(result, "lost", 0):
        out.append("landwrap: some audit records were lost (receive buffer overflow); "
                   "the list may be incomplete")
    return "\n".join(out) + "\n"

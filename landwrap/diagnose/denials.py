"""denials.py: `landwrap run --log-denials` -- what the sandbox denied, and
the option that would allow it.

:func:`run_logged` runs the command with the kernel's denial logging on
(restrict flag LOG_NEW_EXEC_ON, so the exec'd program and its children are
logged), collects the records through ``audit.Session`` and prints a short
report to stderr when the command ends.  When the records cannot be read it
says why in one line and runs the command anyway.  The exit status is always
the command's.

:func:`suggest` and :func:`format_report` are pure: they only look at
denials (and, for paths, whether they are directories).
"""

from __future__ import annotations

import os
import sys

from ..engine import compat
from ..cli import report
from ..profiles.parse import toml_str
from ..engine.safetext import printable

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


def resolve_logged(rs):
    """Resolve *rs* (a Ruleset) with denial logging requested; a kernel
    (or --abi cap) without it gets a message that names --log-denials."""
    from ..engine.errors import UnsupportedFeature

    rs.request_flags(log_bit())
    try:
        return rs.resolve()
    except UnsupportedFeature as e:
        if [m for m in e.missing if m[0] != "flags"]:
            raise
        cap = f" (capped with --abi {e.abi})" if "capped with --abi" in e.message else ""
        msg = (f"--log-denials needs denial logging ({needs()}); Landlock "
               f"ABI {e.abi}{cap} lacks it")
        e.message = msg
        e.args = (msg,)
        e.hint = ("drop --log-denials (or --abi), run on a newer kernel, or pass "
                  "--best-effort to run without the report")
        raise


def quote(path: str) -> str:
    if path and all(c.isalnum() or c in "/._-+,:@%=~" for c in path):
        return path
    import shlex

    return shlex.quote(path)


def is_program_dir(d: str) -> bool:
    return os.path.basename(d.rstrip("/")) in PROGRAM_DIRS


def fs_option(rights, path: str) -> str | None:
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


def profile_line(option: str, rights=()) -> str:
    """The profile spelling (TOML, one or more lines) of an --ro/--rox/
    --rw/--rwx *option*; the exact ``[[filesystem.rule]]`` when the shorthand grants much more than
    *rights* (e.g. only creating files in a directory)."""
    flag, _, path = option.partition(" ")
    short = flag.lstrip("-")
    if path.startswith("'"):
        import shlex

        path = shlex.split(path)[0]
    rights = set(rights)
    if rights and short in ("rw", "rwx") and not rights & {"read_file", "write_file"}:
        names = [n for n in compat.FS_RIGHTS if n in rights]
        if "make_reg" in rights:
            names += [n for n in ("write_file", "truncate") if n not in names]
        return (f"[[filesystem.rule]]\npath = {toml_str(path)}\naccess = ["
                + ", ".join(toml_str(n) for n in names) + "]")
    return f"[filesystem] {short} = [{toml_str(path)}]"


def suggest(d) -> str | None:
    """The `landwrap run` option (or, without one, the profile line) that
    would allow denial *d*, or None when no rule can allow it."""
    kinds = d.kinds
    if kinds == {"fs"}:
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


def describe(d) -> str:
    """What was denied, on what: 'read_file /etc/shadow',
    'make_reg in /tmp/out', 'connect_tcp 127.0.0.1:443'."""
    what = ",".join(d.rights)
    if d.path:
        if set(d.rights) <= DIR_ENTRY_RIGHTS:
            return f"{what} in {quote(d.path)}"
        return f"{what} {quote(d.path)}"
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


def program_of(d, launcher_exe: str | None = None) -> str:
    """Who was denied; the launcher's own child failing to execute the
    command (before it became the command) is named as such."""
    if launcher_exe and d.exe == launcher_exe and "execute" in d.rights \
            and d.syscall in EXEC_SYSCALLS:
        return "landwrap (starting the command)"
    return d.program


def summarize(denials, launcher_exe: str | None = None) -> list:
    """[(count, denial, program)] with duplicates (same access, object and
    program) counted once, in order of first appearance; a denial may
    already stand for ``count`` identical ones (``audit.Tally``)."""
    seen: dict = {}
    for d in denials:
        prog = program_of(d, launcher_exe)
        key = (d.blockers, d.path, d.port, d.addr, d.opid, prog)
        n = getattr(d, "count", 1)
        if key in seen:
            seen[key][0] += n
        else:
            seen[key] = [n, d, prog]
    return [tuple(v) for v in seen.values()]


def format_report(result, launcher_exe: str | None = None) -> str:
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
            line += f"  -> allow with {fix}" if fix else "  -> no rule can allow this"
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


class _Traced:
    """What ``format_report`` needs, from a strace run."""

    def __init__(self, denials):
        self.denials = denials
        self.untallied = 0
        self.kernel_count = None
        self.lost = 0


def run_traced(plan, argv, env, **kw) -> int:
    """`run --log-denials` where the kernel's records cannot be read (not
    root): run the command under strace in the same sandbox (plus strace
    itself and a private directory for its output) and report the failed
    calls the sandbox would deny, as `learn --via strace` does.  Less exact
    than the kernel's records: a call that failed for another reason
    (file modes) and that the sandbox would also deny is reported too."""
    import shutil
    import tempfile

    from ..engine import launcher
    from ..engine.errors import LandwrapError
    from .learn import STRACE, strace_denials

    tmp = tempfile.mkdtemp(prefix="landwrap-trace-")
    try:
        trace = os.path.join(tmp, "trace")
        rs = plan.request
        saved = (list(rs.paths), dict(rs.need))
        rs.allow(os.path.realpath(STRACE), "rox", origin="strace (--log-denials)")
        rs.allow(tmp, ("make_reg", "write_file", "truncate"), origin="strace output")
        try:
            traced = rs.resolve(compat_mode=plan.mode)
        finally:
            rs.paths, rs.need = saved
        kw.pop("path", None)
        targv = [STRACE, "-f", "-qq", "-yy", "-s", "4096", "-o", trace,
                 "-e", "trace=%file,%network,fchdir", "--", *argv]
        failed = None
        try:
            status = launcher.run(traced, targv, env, **kw)
        except LandwrapError as e:
            failed, status = e, e.exit_code
        found = strace_denials(trace, plan, os.getcwd(), argv[0], env.get("PATH"))
        if failed is not None:
            report.error(failed)
        sys.stderr.write(format_report(_Traced(found), STRACE))
        sys.stderr.flush()
        return status
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unavailable_line(reason: str, fix: str) -> str:
    return f"--log-denials: cannot read the denial records: {reason}; {fix}"


def run_logged(plan, argv, env, **kw) -> int:
    """`landwrap run --log-denials`: run like ``launcher.run`` and report
    the sandbox's denials on stderr afterwards."""
    from . import audit
    from ..engine import launcher
    from ..engine.errors import LandwrapError

    if not plan.flags & log_bit():
        report.info(f"--log-denials: Landlock ABI {plan.abi} cannot log denials (needs {needs()}); "
                    "running without the report")
        return launcher.run(plan, argv, env, **kw)
    session = audit.Session()
    try:
        session.open()
    except audit.AuditUnavailable as e:
        from .learn import STRACE

        if os.access(STRACE, os.X_OK):
            report.info(f"--log-denials: cannot read the denial records ({e.reason}); "
                        "tracing the command with strace instead")
            return run_traced(plan, argv, env, **kw)
        report.info(unavailable_line(e.reason, e.fix + ", or install strace"))
        return launcher.run(plan, argv, env, **kw)
    failed = None
    try:
        try:
            status = launcher.run(plan, argv, env, on_start=session.watch, **kw)
        except LandwrapError as e:  # the command did not start
            failed = e
            status = e.exit_code
        result = session.finish()
    finally:
        session.close()
    if failed is not None:
        report.error(failed)
    sys.stderr.write(format_report(result, os.path.realpath(sys.executable)))
    sys.stderr.flush()
    return status

"""cli/denials.py: the body of `landwrap run --log-denials`.

:func:`run_logged` runs the command with the kernel's denial logging on,
collects the records through ``diagnose.audit.Session`` and prints a short
report to stderr when the command ends.  When the records cannot be read it
says why in one line and runs the command anyway (under strace where it is
installed).  The exit status is always the command's.  What was denied and
how to allow it is ``diagnose.denials``; this module only runs and prints.
"""

from __future__ import annotations

import os
import sys

from . import report
from ..diagnose import audit
from ..diagnose.denials import format_report, log_bit, needs
from ..engine import launcher
from ..engine.errors import LandwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..diagnose.audit.records import Denial
    from ..engine.plan import Plan


class _Traced:
    """What ``format_report`` needs, from a strace run."""

    def __init__(self, denials: list[Denial], untallied: int = 0) -> None:
        self.denials = denials
        self.untallied = untallied
        self.kernel_count: int | None = None
        self.lost = 0


def run_traced(plan: Plan, argv: list[str], env: dict[str, str], **kw: Any) -> int:
    """`run --log-denials` where the kernel's records cannot be read (not
    root): run the command under strace in the same sandbox (plus strace
    itself and a private directory for its output) and report the failed
    calls the sandbox would deny, as `learn --via strace` does.  Less exact
    than the kernel's records: a call that failed for another reason
    (file modes) and that the sandbox would also deny is reported too."""
    import shutil  # lazy, as the rest: only without the kernel's records
    import tempfile
    from ..diagnose.learn.strace import STRACE, allow_strace, strace_argv, strace_denials

    tmp = tempfile.mkdtemp(prefix="landwrap-trace-")
    try:
        trace = os.path.join(tmp, "trace")
        rs = plan.request
        saved = (list(rs.paths), dict(rs.need))
        allow_strace(rs, tmp, "strace (--log-denials)", "strace output")
        try:
            traced = rs.resolve(compat_mode=plan.mode)
        finally:
            rs.paths, rs.need = saved
        kw.pop("path", None)
        failed: LandwrapError | None = None
        try:
            status = launcher.run(traced, strace_argv(trace, argv), env, **kw)
        except LandwrapError as e:
            failed, status = e, e.exit_code
        found = strace_denials(trace, plan, os.getcwd(), argv[0], env.get("PATH"))
        if failed is not None:
            report.error(failed)
        sys.stderr.write(format_report(_Traced(found, found.untallied), STRACE))
        sys.stderr.flush()
        return status
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def unavailable_line(reason: str, fix: str) -> str:
    return f"--log-denials: cannot read the denial records: {reason}; {fix}"


def run_logged(plan: Plan, argv: list[str], env: dict[str, str], **kw: Any) -> int:
    """`landwrap run --log-denials`: run like ``launcher.run`` and report
    the sandbox's denials on stderr afterwards."""
    if not plan.flags & log_bit():
        report.info(f"--log-denials: Landlock ABI {plan.abi} cannot log denials (needs {needs()}); "
                    "running without the report")
        return launcher.run(plan, argv, env, **kw)
    session = audit.Session()
    try:
        session.open()
    except audit.AuditUnavailable as e:
        from ..diagnose.learn.strace import STRACE  # lazy: only without the records

        if os.access(STRACE, os.X_OK):
            report.info(f"--log-denials: cannot read the denial records ({e.reason}); "
                        "tracing the command with strace instead")
            return run_traced(plan, argv, env, **kw)
        report.info(unavailable_line(e.reason, e.fix + ", or install strace"))
        return launcher.run(plan, argv, env, **kw)
    failed: LandwrapError | None = None
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

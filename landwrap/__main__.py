"""The `landwrap` command and `python -m landwrap`.

`landwrap run` is parsed without importing click when it can be (see
``options``), and so is a bare `landwrap status [--json]`: start-up time is
the price of every sandboxed command.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence

#: landwrap's exit status when it cannot run the target (as env(1)'s 125).
EXIT_NOT_RUN = 125


def _no_extension() -> str:
    """The one line to print when the C extension is not importable."""
    pkg = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(pkg)
    if os.path.exists(os.path.join(root, "setup.py")):
        return (f"landwrap: {pkg} is a source tree whose C extension is not built: "
                f"build it with `pip install -e .` there, or run landwrap from another "
                f"directory to use the installed one")
    return (f"landwrap: the C extension landwrap._lwcffi is missing from {pkg}: "
            f"reinstall landwrap (`pip install --force-reinstall landwrap`)")


#: The commands after which :func:`launch` may leave without the
#: interpreter's finalization (audited: they leave no buffered file but
#: stdout/stderr, no atexit handler and no thread that an ordinary exit
#: would wait for: the launcher's seccomp supervisor, a ``_thread`` thread,
#: ends with the process either way).
_FAST_EXIT = ("run", "status")


def launch() -> None:
    """The entry point of the installed `landwrap` (bin/landwrap) and of
    ``python -m landwrap``: :func:`main`, then, after `run` and `status`,
    leave with ``os._exit`` once stdout and stderr are flushed, and run
    them without the garbage collector until the target is started.  Tearing
    down the interpreter (every module, the garbage collector) costs
    about as much as landwrap's own imports, for nothing: the sandbox is
    gone with the child.  Any doubt (a thread still running, an atexit
    handler, a flush that fails) leaves the ordinary way."""
    fast = len(sys.argv) > 1 and sys.argv[1] in _FAST_EXIT
    if fast:
        # No garbage collection while landwrap starts: its passes over the
        # objects that importing and resolving create cost ~0.5-1 ms and
        # free next to nothing (what start-up drops is freed by reference
        # counting).  `run` turns it back on before it waits for the target
        # (cli.run.resume_gc); `status` ends first.
        import gc  # built in: no import cost

        gc.disable()
    try:
        main()
        code: object = 0
    except SystemExit as e:
        if not fast:
            raise
        code = e.code
    if fast:
        _leave(code)


def _leave(code: object) -> None:
    """``os._exit`` with the status SystemExit(*code*) would give, or
    SystemExit(*code*) where finalization may still have work to do."""
    import atexit  # built in: no import cost

    threading = sys.modules.get("threading")
    ncallbacks = getattr(atexit, "_ncallbacks", None)
    if (threading is not None and threading.active_count() > 1) or ncallbacks is None \
            or ncallbacks() or not (code is None or type(code) is int):
        raise SystemExit(code)
    try:
        for f in (sys.stdout, sys.stderr):
            if f is not None:
                f.flush()
    except Exception:
        raise SystemExit(code) from None  # as Python reports it (e.g. EPIPE)
    os._exit(0 if code is None else code & 0xFF)  # as exit(3) truncates it


def main(argv: Sequence[str] | None = None) -> None:
    try:
        _main(argv)
    except ModuleNotFoundError as e:
        if e.name != "landwrap._lwcffi":
            raise
        print(_no_extension(), file=sys.stderr)
        sys.exit(EXIT_NOT_RUN)


def _main(argv: Sequence[str] | None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "run":
        from .cli.options import parse_run  # lazy: `run` starts without click

        opts = parse_run(args[1:])
        if opts is not None:
            from .cli.run import main as run_main  # lazy: the same

            sys.exit(run_main(opts))
    if args in (["status"], ["status", "--json"]):
        sys.exit(_status(args[1:] == ["--json"]))
    from .cli.main import cli  # lazy: click, for every other command

    cli.main(args=args, prog_name="landwrap")


def _status(as_json: bool) -> int:
    """`landwrap status [--json]` without click (as `cli.status` prints it)."""
    # lazy: `status` without click
    from .cli.status import format_json, format_status
    from .engine.errors import LandwrapError
    from .profiles.default import status

    try:
        st = status(None)
    except LandwrapError as e:
        from .cli import report  # lazy: only to say what failed

        report.error(e)
        return e.exit_code
    sys.stdout.write(format_json(st) if as_json else format_status(st))
    return 0


if __name__ == "__main__":
    launch()

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
    from .cli import report
    from .cli.status import format_status
    from .engine.errors import LandwrapError
    from .profiles.default import status

    try:
        st = status(None)
    except LandwrapError as e:
        report.error(e)
        return e.exit_code
    if as_json:
        import json

        sys.stdout.write(json.dumps(st, indent=2) + "\n")
    else:
        sys.stdout.write(format_status(st))
    return 0


if __name__ == "__main__":
    main()

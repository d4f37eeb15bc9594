"""The `landwrap` command and `python -m landwrap`.

`landwrap run` is parsed without importing click when it can be (see
``options``), and so is a bare `landwrap status [--json]`: start-up time is
the price of every sandboxed command.
"""

import sys


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "run":
        from .options import parse_run

        opts = parse_run(args[1:])
        if opts is not None:
            from .runcmd import main as run_main

            sys.exit(run_main(opts))
    if args in (["status"], ["status", "--json"]):
        sys.exit(_status(args[1:] == ["--json"]))
    from .cli import cli

    cli.main(args=args, prog_name="landwrap")


def _status(as_json: bool) -> int:
    """`landwrap status [--json]` without click (as `cli.status` prints it)."""
    from . import report
    from .errors import LandwrapError
    from .kernel import format_status, status

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

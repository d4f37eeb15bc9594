"""The `landwrap` command and `python -m landwrap`.

`landwrap run` is parsed without importing click when it can be (see
``options``): start-up time is the price of every sandboxed command.
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
    from .cli import cli

    cli.main(args=args, prog_name="landwrap")


if __name__ == "__main__":
    main()

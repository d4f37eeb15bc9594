"""cli.py: the click command-line interface.  Parses and reports; the work
is done by library modules that Python users can call too.

`landwrap run` normally starts through the fast parser in ``options`` and
reaches this module only for --help and usage errors; both share the option
table, so they accept the same command line.
"""

from __future__ import annotations

import sys

import click

from . import options, report
from .errors import EXIT_ERROR, LandwrapError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(e: LandwrapError):
    report.error(e)
    sys.exit(e.exit_code)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="landwrap", message="%(prog)s %(version)s")
def cli():
    """landwrap: run programs in a Landlock sandbox.

    Landlock lets an unprivileged process restrict its own filesystem,
    network and IPC access, for itself and every child.  `landwrap run`
    starts a command inside such a sandbox; `landwrap status` shows what
    this kernel supports.  See landwrap(1).
    """


class _RunCommand(click.Command):
    """`run` keeps its own exit codes: usage errors are 125, so they cannot
    be mistaken for the target's own status."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.UsageError as e:
            e.exit_code = EXIT_ERROR
            raise


def _run_options(f):
    for decls, dest, kind, typ, metavar, help_ in reversed(options.RUN_OPTIONS):
        kw = {"help": help_}
        if kind == options.FLAG:
            kw["is_flag"] = True
        elif kind == options.COUNT:
            kw["count"] = True
        else:
            kw["type"] = typ
            kw["metavar"] = metavar
            if kind == options.MULTI:
                kw["multiple"] = True
        f = click.option(*decls, dest, **kw)(f)
    return f


@cli.command(cls=_RunCommand, context_settings={
    **CONTEXT, "allow_interspersed_args": False})
@_run_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(**kw):
    """Run COMMAND in a Landlock sandbox.

    The sandbox starts from the profile named after COMMAND (or the default
    profile): the system is readable and executable, /proc and /sys are
    readable, and nothing else; no TCP; signals and abstract unix sockets
    cannot reach processes outside.  Options add to it.

    \b
    Exit status: the command's own; 128+N if it was killed by signal N;
    125 if landwrap failed or the sandbox cannot be enforced; 126 if the
    command cannot be executed (also when the sandbox denies it); 127 if
    it was not found.

    \b
    Examples:
      landwrap run -- ls /usr
      landwrap run --rw . -- make
      landwrap run --connect-tcp 443 -- curl https://example.org
      landwrap run --dry-run --json -- python3
    """
    from .runcmd import main

    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    sys.exit(main(opts))


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--abi", type=click.IntRange(1, None), metavar="N",
              help="Show what landwrap would use when capped to ABI N.")
def status(as_json, abi):
    """Show the kernel's Landlock support and what `landwrap run` enforces here."""
    from .status import format_status, status as get_status

    try:
        st = get_status(abi)
    except LandwrapError as e:
        _fail(e)
    if as_json:
        import json

        click.echo(json.dumps(st, indent=2))
    else:
        click.echo(format_status(st), nl=False)


def main():
    cli.main(prog_name="landwrap")

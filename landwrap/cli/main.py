"""cli/main.py: the click command-line interface.  Parses and reports; the work
is done by library modules that Python users can call too.

`landwrap run` normally starts through the fast parser in ``options`` and
reaches this module only for --help and usage errors; both share the option
table, so they accept the same command line.
"""

from __future__ import annotations

import sys

import click

from . import options, report
from ..engine.errors import EXIT_ERROR, LandwrapError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn, TypeVar

    from click.shell_completion import CompletionItem

    F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _fail(e: LandwrapError) -> NoReturn:
    report.error(e)
    sys.exit(e.exit_code)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="landwrap", message="%(prog)s %(version)s")
def cli() -> None:
    """landwrap: run programs in a Landlock sandbox.

    Landlock lets an unprivileged process restrict its own filesystem,
    network and IPC access, for itself and every child.  `landwrap run`
    starts a command inside such a sandbox; `landwrap status` shows what
    this kernel supports.  See landwrap(1).
    """


class _RunCommand(click.Command):
    """`run` keeps its own exit codes: usage errors are 125, so they cannot
    be mistaken for the target's own status."""

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.UsageError as e:
            # click declares exit_code a ClassVar; this instance's own value is meant
            e.exit_code = EXIT_ERROR  # type: ignore[misc]
            raise


def _run_options(f: F) -> F:
    for decls, dest, kind, typ, metavar, help_ in reversed(options.RUN_OPTIONS):
        kw: dict[str, Any] = {"help": help_}
        if kind == options.FLAG:
            kw["is_flag"] = True
        elif kind == options.COUNT:
            kw["count"] = True
        else:
            kw["type"] = typ
            kw["metavar"] = metavar
            if kind == options.MULTI:
                kw["multiple"] = True
            if dest == "profile":
                kw["shell_complete"] = _complete_profile
            elif metavar == "PATH":
                kw["shell_complete"] = _complete_file
        f = click.option(*decls, dest, **kw)(f)
    return f


# shell completion (`landwrap completion SHELL` prints the script) ----------

def _complete_file(ctx: click.Context, param: click.Parameter,
                   incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem  # lazy: only when completing

    return [CompletionItem(incomplete, type="file")]


def _complete_profile(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[CompletionItem]:
    """Profile names (NAME|PATH: a path-like word completes as a file)."""
    from click.shell_completion import CompletionItem  # lazy: only when completing

    from .profilecmd import complete_profiles  # lazy: a command loads only its own modules

    if incomplete.startswith((".", "/", "~")) or "/" in incomplete:
        return _complete_file(ctx, param, incomplete)
    return [CompletionItem(n, help=d or None) for n, d in complete_profiles(incomplete)]


def _complete_command(ctx: click.Context, param: click.Parameter,
                      incomplete: str) -> list[CompletionItem]:
    """The program name from $PATH, then its arguments as files."""
    from click.shell_completion import CompletionItem  # lazy: only when completing

    from .profilecmd import complete_commands  # lazy: a command loads only its own modules

    if ctx.params.get(param.name) or "/" in incomplete:
        return _complete_file(ctx, param, incomplete)
    return [CompletionItem(n) for n in complete_commands(incomplete)]


@cli.command(cls=_RunCommand, context_settings={
    **CONTEXT, "allow_interspersed_args": False})
@_run_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED,
                shell_complete=_complete_command)
def run(**kw: Any) -> None:
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
    from .run import main  # lazy: a command loads only its own modules

    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    sys.exit(main(opts))


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--abi", type=click.IntRange(1, None), metavar="N",
              help="Show what landwrap would use when capped to ABI N.")
def status(as_json: bool, abi: int | None) -> None:
    """Show the kernel's Landlock support and what `landwrap run` enforces here."""
    from ..profiles.default import status as get_status  # lazy: per command
    from .status import format_status  # lazy: a command loads only its own modules

    try:
        st = get_status(abi)
    except LandwrapError as e:
        _fail(e)
    if as_json:
        import json  # lazy: only for --json

        click.echo(json.dumps(st, indent=2))
    else:
        click.echo(format_status(st), nl=False)


# landwrap profile ... (the work is in profilecmd and landlockconfig) ---------------

def _profile_fail(e: LandwrapError) -> NoReturn:
    report.error(e)
    sys.exit(1)


@cli.group("profile", context_settings=CONTEXT)
def profile_group() -> None:
    """List, show, check and export sandbox profiles.

    A profile NAME is looked up in $LANDWRAP_PROFILE_PATH,
    $XDG_CONFIG_HOME/landwrap/profiles, /etc/landwrap/profiles, then the
    profiles shipped with landwrap; a PATH (with a '/' or ending in .toml or
    .json) names a file.  See landwrap-profile(5).
    """


@profile_group.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def profile_list(as_json: bool) -> None:
    """List the profiles on the profile path: name, where it comes from,
    description.  Profiles hidden by one of the same name earlier on the
    path are shown as shadowed."""
    from . import profilecmd  # lazy: a command loads only its own modules

    rows = profilecmd.list_rows()
    if as_json:
        import json  # lazy: only for --json

        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(profilecmd.format_list(rows), nl=False)


@profile_group.command("show", context_settings=CONTEXT)
@click.argument("spec", metavar="NAME|PATH", shell_complete=_complete_profile)
@click.option("--resolved", is_flag=True,
              help="Show it fully resolved: extends merged, variables and globs expanded, "
              "each path marked present/missing/merged, the files used in order.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--abi", type=click.IntRange(1, None), metavar="N",
              help="With --resolved: resolve as on a kernel with Landlock ABI N.")
def profile_show(spec: str, resolved: bool, as_json: bool, abi: int | None) -> None:
    """Show a profile as written, or fully resolved (--resolved)."""
    from . import profilecmd  # lazy: a command loads only its own modules

    try:
        if resolved:
            view = profilecmd.resolved(spec, abi=abi)
        elif as_json:
            view = profilecmd.written_documents(spec)
        else:
            click.echo(profilecmd.show_written(spec), nl=False)
            return
    except LandwrapError as e:
        _profile_fail(e)
    if as_json:
        import json  # lazy: only for --json

        click.echo(json.dumps(view, indent=2, default=str))
    else:
        click.echo(profilecmd.format_resolved(view), nl=False)


@profile_group.command("check", context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, metavar="FILE...",
                shell_complete=_complete_file)
def profile_check(files: tuple[str, ...]) -> None:
    """Validate profile files (with what they extend).  Prints `FILE: ok`
    or each error as `FILE:LINE: key: message`; exits 0 when all are
    valid, 1 otherwise."""
    from . import profilecmd  # lazy: a command loads only its own modules

    ok = True
    for f in files:
        errors = profilecmd.check(f)
        if errors:
            ok = False
            for line in errors:
                click.echo(line)
        else:
            click.echo(f"{f}: ok")
    sys.exit(0 if ok else 1)


@profile_group.command("export", context_settings=CONTEXT)
@click.argument("spec", metavar="NAME|PATH", shell_complete=_complete_profile)
@click.option("--json", "as_json", is_flag=True,
              help="Write landlockconfig's JSON spelling instead of TOML.")
@click.option("--abi", type=click.IntRange(1, None), metavar="N",
              help="Resolve as on a kernel with Landlock ABI N (at most this kernel's).")
def profile_export(spec: str, as_json: bool, abi: int | None) -> None:
    """Print the profile, resolved for this kernel, in the Landlock
    project's own configuration format (landlockconfig: `llconfig run
    --toml FILE`, island).  `landwrap run -p FILE` reads such files too.
    Environment settings and compat mode are not part of that format."""
    from . import profilecmd  # lazy: a command loads only its own modules

    try:
        text = profilecmd.export(spec, abi=abi, fmt="json" if as_json else "toml")
    except LandwrapError as e:
        _profile_fail(e)
    click.echo(text, nl=False)


@cli.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    Enable it for bash (in ~/.bashrc):   eval "$(landwrap completion bash)"
    for zsh (in ~/.zshrc, after compinit): eval "$(landwrap completion zsh)"
    for fish:  landwrap completion fish > ~/.config/fish/completions/landwrap.fish
    """
    from click.shell_completion import get_completion_class  # lazy: this command only

    cls = get_completion_class(shell)
    assert cls is not None  # bash, zsh and fish are click's own
    click.echo(cls(cli, {}, "landwrap", "_LANDWRAP_COMPLETE").source())


# landwrap learn / why (the work is in learn and why) --------------------------

@cli.command(cls=_RunCommand, context_settings={
    **CONTEXT, "allow_interspersed_args": False})
@click.option("-o", "--output", metavar="FILE",
              help="Write the profile to FILE (default: standard output; the command's "
              "own output then goes to standard error).")
@click.option("-p", "--profile", "base", multiple=True, metavar="NAME|PATH",
              shell_complete=_complete_profile,
              help="Start from this profile (default: the default profile, not the "
              "command's own). Repeatable.")
@click.option("--rounds", type=click.IntRange(1, 100), default=8, show_default=True,
              metavar="N", help="Run the command at most N times.")
@click.option("--once", is_flag=True, help="Run the command once: no re-runs.")
@click.option("--expect-exit", "expect_exit", type=click.IntRange(0, 255), default=0,
              show_default=True, metavar="N",
              help="The exit status COMMAND should end with: a round without denials "
              "that exits otherwise is a failure, not a complete profile.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before re-running the command.")
@click.option("--via", type=click.Choice(["auto", "audit", "strace"]), default="auto",
              show_default=True,
              help="How to see denials: the kernel's audit records (root, Landlock ABI 7) "
              "or strace; auto uses audit where it can.")
@click.option("--allow-sensitive", "allow_sensitive", multiple=True, metavar="PATH",
              shell_complete=_complete_file,
              help="Let the profile grant what the command asks for in this sensitive "
              "path (~/.ssh, a credential store, a browser profile...), which is "
              "otherwise only listed (or asked about on a terminal). Repeatable.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED,
                shell_complete=_complete_command)
def learn(output: str | None, base: tuple[str, ...], rounds: int, once: bool, expect_exit: int,
          yes: bool, via: str, allow_sensitive: tuple[str, ...], command: tuple[str, ...]) -> None:
    """Write a profile for COMMAND by running it in the sandbox.

    Each round runs COMMAND sandboxed, collects what the sandbox denied and
    widens the profile minimally, until a round has no denials.  The result
    is a commented TOML profile: every rule says what it was learned from.
    COMMAND runs up to --rounds times, each time with its side effects:
    anything it does (files it writes, requests it sends) happens each time
    (on a terminal you are asked before each re-run unless --yes).  Paths
    are written as ${CWD}, ${HOME}, XDG and ${TMPDIR} where they match.

    \b
    Exit status: 0 when the profile ran COMMAND without denials and with
    the --expect-exit status, 1 when it is incomplete or COMMAND failed
    without denials, 125 on errors.

    \b
    Examples:
      landwrap learn -o git-status.toml -- git status
      landwrap learn --once -p default -- python3 app.py
    """
    from .learn import main as learn_main  # lazy: a command loads only its own modules

    sys.exit(learn_main(list(command), output=output, base=base, rounds=rounds,
                        once=once, yes=yes, via=via, allow_sensitive=allow_sensitive,
                        expect_exit=expect_exit))


@cli.command(cls=_RunCommand, context_settings=CONTEXT)
@click.option("-p", "--profile", "profiles", multiple=True, metavar="NAME|PATH",
              shell_complete=_complete_profile,
              help="The profile to ask about (default: default). Repeatable.")
@click.option("-a", "--access", metavar="ACCESS[,ACCESS...]",
              help="What to check: read, list, write, exec, create, mkdir, remove, "
              "truncate, ioctl, symlink or a Landlock right (read_file, make_reg...); "
              "for ports connect or bind.  Default: read (a directory: list), connect.")
@click.argument("target", metavar="PATH|tcp:PORT")
def why(profiles: tuple[str, ...], access: str | None, target: str) -> None:
    """Say whether a profile allows an access, and which rule grants it.

    For a denied access, shows the rules that cover the path and the option
    or profile line that would allow it.  The answer is for this kernel:
    rights it cannot restrict are allowed.

    \b
    Exit status: 0 allowed, 1 denied, 125 on errors.

    \b
    Examples:
      landwrap why -p default /etc/passwd
      landwrap why -p ./app.toml --access write ~/.config/app/state
      landwrap why -p ./app.toml tcp:443
    """
    from ..diagnose.why import format_answer, why as ask  # lazy: per command

    try:
        answer = ask(profiles, target, access)
    except LandwrapError as e:
        report.error(e)
        sys.exit(EXIT_ERROR)
    click.echo(format_answer(answer), nl=False)
    sys.exit(0 if answer.allowed else 1)


def main() -> None:
    cli.main(prog_name="landwrap")

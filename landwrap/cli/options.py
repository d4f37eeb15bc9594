"""options.py: the options of `landwrap run`, defined once.

The click command (``cli``) is generated from :data:`RUN_OPTIONS`, and so is
the fast parser :func:`parse_run` that `landwrap run` uses to start without
importing click (click alone costs more than a whole interpreter start).  The
fast parser handles the ordinary forms and returns ``None`` for anything
else (``--help``, an unknown option, a bad value), which then goes to click
for its usual messages.  Never import click here.
"""

from __future__ import annotations

from ..engine import compat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Optional, Tuple

    #: (declarations, dest, kind, type, metavar, help)
    RunOption = Tuple[Tuple[str, ...], str, str, Optional[Callable[[str], Any]], Optional[str],
                      str]

FLAG, COUNT, VALUE, MULTI = "flag", "count", "value", "multi"

# (declarations, dest, kind, type, metavar, help)
RUN_OPTIONS: tuple[RunOption, ...] = (
    (("-p", "--profile"), "profile", MULTI, str, "NAME|PATH",
     "Use a profile (a name from the profile path, or a file). Repeatable; later ones add to earlier."),
    (("--no-profile",), "no_profile", FLAG, None, None,
     "Start from an empty sandbox instead of a profile: nothing is allowed but what the options add."),
    (("--ro",), "ro", MULTI, str, "PATH", "Allow reading files and listing directories beneath PATH."),
    (("--rox",), "rox", MULTI, str, "PATH", "Like --ro, and executing files beneath PATH."),
    (("--rw",), "rw", MULTI, str, "PATH",
     "Like --ro, and writing, creating, removing, renaming and truncating beneath PATH (no execute)."),
    (("--rwx",), "rwx", MULTI, str, "PATH", "Like --rw, and executing."),
    (("--ignore-missing",), "ignore_missing", FLAG, None, None,
     "Skip --ro/--rox/--rw/--rwx paths that do not exist instead of failing."),
    (("--bind-tcp",), "bind_tcp", MULTI, str, "PORT|LOW-HIGH", "Allow binding TCP sockets to these ports."),
    (("--connect-tcp",), "connect_tcp", MULTI, str, "PORT|LOW-HIGH", "Allow TCP connections to these ports."),
    (("--unrestricted-fs", "--unrestricted-filesystem"), "unrestricted_fs", FLAG, None, None,
     "Do not restrict filesystem access."),
    (("--unrestricted-net", "--unrestricted-network"), "unrestricted_net", FLAG, None, None,
     "Do not restrict network access (this also allows Multipath TCP sockets)."),
    (("--unrestricted-scope", "--unrestricted-scoped"), "unrestricted_scope", FLAG, None, None,
     "Do not isolate signals and abstract unix sockets, nor refuse resource-limit and "
     "scheduling calls on processes outside the sandbox."),
    (("--best-effort",), "best_effort", FLAG, None, None,
     "Run even if the kernel cannot enforce everything asked for; print what was dropped."),
    (("--strict",), "strict", FLAG, None, None,
     "Enforce everything strictly, whatever compat a profile declares (the default for "
     "what the command line asks for)."),
    (("--abi",), "abi", VALUE, int, "N",
     f"Use at most Landlock ABI N (1-{compat.LATEST_ABI}), as on an older kernel."),
    (("--clean-env",), "clean_env", FLAG, None, None,
     "Pass only PATH, HOME, USER, LOGNAME, LANG, LC_*, TERM, TZ and TMPDIR to the command."),
    (("--env",), "env", MULTI, str, "NAME[=VALUE]",
     "Set NAME to VALUE, or pass NAME from the current environment."),
    (("--keep-fd",), "keep_fd", MULTI, int, "FD",
     "Pass this open file descriptor to the command (others above 2 are closed)."),
    (("--user",), "user", VALUE, str, "USER|UID", "As root: run the command as this user."),
    (("--group",), "group", VALUE, str, "GROUP|GID", "As root: run the command with this group."),
    (("--cap-add",), "cap_add", MULTI, str, "CAP",
     "As root: keep this capability (CAP_NET_RAW or net_raw) in the sandbox, "
     "which otherwise has none. Repeatable."),
    (("--log-denials",), "log_denials", FLAG, None, None,
     "Have the kernel log what the sandbox denies (Landlock ABI 7) and, as root, print each "
     "denial with the option that would allow it when the command ends."),
    (("--keep-tmp",), "keep_tmp", FLAG, None, None,
     "Keep the private temporary directory of a profile with private_tmp (the default "
     "profile) when the command ends, and say where it is."),
    (("--dry-run",), "dry_run", FLAG, None, None,
     "Print the resolved sandbox and what the kernel will enforce, then exit."),
    (("--json",), "json", FLAG, None, None, "With --dry-run: print it as JSON."),
    (("-v", "--verbose"), "verbose", COUNT, None, None,
     "Say which profiles and rules are used, and what was skipped."),
    (("-q", "--quiet"), "quiet", FLAG, None, None,
     "Do not print warnings (a NOT SANDBOXED warning is always printed)."),
)

_BY_NAME: dict[str, RunOption] = {}
for _opt in RUN_OPTIONS:
    for _decl in _opt[0]:
        _BY_NAME[_decl] = _opt
del _opt, _decl


def defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _, dest, kind, *_ in RUN_OPTIONS:
        out[dest] = [] if kind == MULTI else 0 if kind == COUNT else None if kind == VALUE else False
    return out


def parse_run(args: Sequence[str]) -> dict[str, Any] | None:
    """Parse `landwrap run` arguments the way click would, or return None
    so that click handles them (help, errors, unusual forms)."""
    opts = defaults()
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name, eq, value = a.partition("=")
        opt = _BY_NAME.get(name)
        if opt is None:
            if a.startswith("--") or len(a) < 2:
                return None
            # -vv / -qv style bundles of flags
            for ch in a[1:]:
                o = _BY_NAME.get("-" + ch)
                if o is None or o[2] not in (FLAG, COUNT):
                    return None
                _store(opts, o, None)
            i += 1
            continue
        _, dest, kind, typ, _, _ = opt
        if kind in (FLAG, COUNT):
            if eq:
                return None
            _store(opts, opt, None)
            i += 1
            continue
        if not eq:
            if i + 1 >= n:
                return None
            value = args[i + 1]
            i += 1
        i += 1
        assert typ is not None  # VALUE and MULTI options have a type
        try:
            value = typ(value)
        except ValueError:
            return None
        _store(opts, opt, value)
    command = list(args[i:])
    if not command:
        return None
    opts["command"] = command
    return opts


def _store(opts: dict[str, Any], opt: RunOption, value: object) -> None:
    dest, kind = opt[1], opt[2]
    if kind == FLAG:
        opts[dest] = True
    elif kind == COUNT:
        opts[dest] += 1
    elif kind == MULTI:
        opts[dest].append(value)
    else:
        opts[dest] = value

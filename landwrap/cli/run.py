"""cli/run.py: the body of `landwrap run`, shared by the fast entry point and
the click command.  Takes the parsed options (see ``options``), builds and
resolves the sandbox, reports, and launches.  Returns the exit status.
"""

from __future__ import annotations

import errno
import os
import sys

from ..engine import compat, companion, launcher, plan as _plan, spawn
from . import policy, report
from ..engine.errors import EXIT_ERROR, LandwrapError, PathError, UsageError
from ..engine.ruleset import Ruleset
from ..engine.safetext import printable
from ..engine.trust import untrusted_dirs
from ..profiles import lookup, profile, validate, variables

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def build_profile(opts: dict[str, Any]) -> validate.Profile:
    """The requested sandbox (a validate.Profile), before the kernel is asked
    anything: the profiles (or none), then the command line on top.

    Profile variables and landwrap's protected state are those of the user
    the command runs as (``--user``).  What the command line asks for is
    enforced strictly unless it says ``--best-effort``, whatever ``compat``
    a profile declares; ``--strict`` makes the whole run strict."""
    if opts.get("profile") and opts.get("no_profile"):
        raise UsageError("--profile and --no-profile cannot be combined")
    if opts.get("strict") and opts.get("best_effort"):
        raise UsageError("--strict and --best-effort cannot be combined")
    environ = _target_environ(opts.get("user"))
    if opts.get("no_profile"):
        prof = validate.Profile()
        prof.why = "--no-profile"
        profile.protect(prof.ruleset, environ)
    else:
        prof = profile.for_command(opts.get("profile") or (),
                                   opts["command"][0] if opts.get("command") else None,
                                   dirs=lookup.search_path() if environ else None,
                                   environ=environ)
    rs = prof.ruleset
    policy.apply_options(rs, opts)
    if opts.get("strict"):
        rs.compat = "strict"
    elif rs.compat != "strict" and not opts.get("best_effort"):
        _check_command_line_strictly(opts, rs.abi)
    explicit = {os.path.realpath(p) for a in policy.PATH_OPTIONS for p in opts.get(a) or ()}
    for err in prof.cwd_refused:
        if err.path in explicit:
            continue  # the user granted it (or chose less) on the command line
        if rs.compat == "strict":
            raise err
        report.warn(f"best-effort: left out {err.message}")
    return prof


def _target_environ(user: str | None) -> dict[str, str] | None:
    """The environment profile variables resolve in for ``--user USER``
    (that user's home and XDG directories), or None for the caller."""
    if user is None:
        return None
    import pwd  # lazy: only for --user

    try:
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        if not user.isdigit():
            raise UsageError(f"--user {user}: no such user") from None
        pw = pwd.struct_passwd((user, "x", int(user), int(user), "", "/nonexistent", ""))
    return variables.user_environ(pw)


def _check_command_line_strictly(opts: dict[str, Any], abi: int | None) -> None:
    """A profile said ``compat = "best-effort"``: what the command line
    asked for must still be enforceable (raises UnsupportedFeature)."""
    cli = Ruleset()
    cli.abi = abi
    cli.fs = any(opts.get(a) for a in policy.PATH_OPTIONS)
    cli.need["fs"] = 0
    explicit = {k: v for k, v in opts.items() if k in policy.PORT_OPTIONS}
    policy.apply_options(cli, explicit)
    if opts.get("log_denials"):
        from ..diagnose import denials  # lazy: only for --log-denials

        denials.resolve_logged(cli)  # refuses a kernel without denial logging
    elif cli.fs or cli.need["net"]:
        cli.resolve(compat_mode="strict")


def main(opts: dict[str, Any]) -> int:
    try:
        return _run(opts)
    except LandwrapError as e:
        report.error(e)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        report.error(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        return EXIT_ERROR
    except Exception as e:  # never a traceback for the user; fail closed
        if os.environ.get("LANDWRAP_DEBUG"):
            raise
        report.error(f"internal error: {type(e).__name__}: {e}")
        report.info("nothing was run; set LANDWRAP_DEBUG=1 for a traceback and please report it")
        return EXIT_ERROR


def _run(opts: dict[str, Any]) -> int:
    if opts.get("json") and not opts.get("dry_run"):
        raise UsageError("--json only goes with --dry-run")
    if opts.get("abi") is not None and not compat.known_abi(opts["abi"]):
        raise UsageError(f"--abi {opts['abi']}: landwrap knows ABI 1 to {compat.LATEST_ABI}")
    argv = opts["command"]
    prof = build_profile(opts)
    if prof.create_dirs and not opts.get("dry_run"):
        create_dirs(prof, opts.get("user"), opts.get("group"))
    if prof.private_tmp and not opts.get("dry_run"):
        tmp = private_tmp(opts.get("user"), opts.get("group"))
        try:
            return _run_in(opts, prof, argv, tmp)
        finally:
            if opts.get("keep_tmp"):
                report.info(f"kept the private temporary directory {tmp}")
            else:
                remove_private_tmp(tmp)
    return _run_in(opts, prof, argv, None)


def create_dirs(prof: validate.Profile, user: str | None = None,
                group: str | None = None) -> None:
    """Make the directories of ``create = true`` rules that do not exist
    yet (and missing parents), mode 0700, owned by the user the command
    runs as.  Component by component through directory descriptors, never
    following a symlink (ELOOP is refused), and never inside landwrap's own
    state (a rule may not create what decides the next sandbox)."""
    uid = gid = -1
    if user is not None or group is not None:
        _, uid, gid = launcher.resolve_user(user, group, {})
    state = [os.path.abspath(d) for d in prof.ruleset.protected]
    for path, origin in prof.create_dirs:
        path = os.path.abspath(path)
        for d in state:
            if path == d or path.startswith(d.rstrip("/") + "/") or \
                    d.startswith(path.rstrip("/") + "/"):
                raise PathError(f"{printable(origin)}: create = true: {printable(path)} is "
                                f"(in) landwrap's own directory {printable(d)}",
                                "name another directory")
        fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in [c for c in path.split("/") if c]:
                flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
                try:
                    nfd = os.open(part, flags, dir_fd=fd)
                except FileNotFoundError:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    nfd = os.open(part, flags, dir_fd=fd)
                    if uid != -1 or gid != -1:
                        # an O_PATH descriptor: chown through /proc
                        os.chown(f"/proc/self/fd/{nfd}", uid, gid)
                except OSError as e:
                    raise PathError(f"{printable(origin)}: create = true: cannot create "
                                    f"{printable(path)}: {printable(part)}: "
                                    + ("a symlink (not followed) or not a directory"
                                       if e.errno in (errno.ELOOP, errno.ENOTDIR)
                                       else (e.strerror or str(e))),
                                    "create it yourself, or name the real path") from None
                os.close(fd)
                fd = nfd
        finally:
            os.close(fd)


def private_tmp(user: str | None = None, group: str | None = None) -> str:
    """A fresh directory for one run (``private_tmp = true``): made by
    mkdtemp in the real temporary directory (mode 0700, a name nobody can
    guess or plant first), owned by the user the command runs as."""
    # what tempfile.mkdtemp does, without its import cost (~10 ms a run):
    # a random name in the real temporary directory, made with O_EXCL
    # semantics (mkdir fails on anything already there, symlinks included)
    base = os.environ.get("TMPDIR") or "/tmp"
    if not os.path.isabs(base) or not os.path.isdir(base) or \
            untrusted_dirs(os.path.realpath(base), (0, os.geteuid())):
        # $TMPDIR survives su and sudo -E: a directory another user controls
        # could have our directory swapped for a symlink before its rule is
        # made (a root sandbox would then write where the link points)
        base = "/tmp"
    for _ in range(100):
        tmp = os.path.join(base, "landwrap-" + os.urandom(8).hex())
        try:
            os.mkdir(tmp, 0o700)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"cannot create a private temporary directory in {base}")
    if user is not None or group is not None:
        uflags, uid, gid = launcher.resolve_user(user, group, {})
        os.chown(tmp, uid if user is not None else -1, gid if group is not None else -1)
    return tmp


def remove_private_tmp(tmp: str) -> None:
    """Remove *tmp* and everything in it without following symlinks
    (shutil.rmtree works through directory descriptors here: a symlink
    the command left is removed, never followed).  A command granted the
    directory around *tmp* too (--rw /tmp) may have put a symlink or a
    file in its place: that entry alone is removed, and nothing outside
    *tmp* is ever opened up or removed."""
    try:
        os.rmdir(tmp)  # the common case: the command left nothing
        return
    except OSError:
        pass
    try:
        if (os.lstat(tmp).st_mode & 0o170000) != 0o040000:
            os.unlink(tmp)  # not our directory any more: never followed
            return
    except OSError:
        pass
    import shutil  # lazy: only when the command left files there

    def retry(func: Callable[..., object], path: str, exc: object) -> None:
        # a directory the command made unreadable (chmod 0): open it up, once
        try:
            d = path if func in (os.open, os.scandir, os.rmdir) else os.path.dirname(path)
            if d != tmp and not d.startswith(tmp + "/"):
                return  # never the directory around tmp
            st = os.lstat(d)
            if (st.st_mode & 0o170000) == 0o040000:
                os.chmod(d, 0o700)
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass

    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover
        report.warn(f"left {tmp} in place: this Python cannot remove it safely")
        return
    deep = ""
    try:
        if sys.version_info >= (3, 12):  # a statement: mypy checks each branch on its version
            shutil.rmtree(tmp, onexc=retry)
        else:
            shutil.rmtree(tmp, onerror=lambda f, p, e: retry(f, p, e))
    except RecursionError:  # the command left a tree deeper than the recursion limit
        deep = " (the command left a tree too deep to remove)"
    if os.path.lexists(tmp):
        report.warn(f"could not remove the private temporary directory {printable(tmp)}{deep}")


def _program(prof: validate.Profile, argv: list[str], env: dict[str, str]) -> str:
    """The program to run: the one the profile was chosen for (looked up
    once, by profile.for_command), unless the command's own PATH differs."""
    if prof.program is not None and env.get("PATH") == os.environ.get("PATH"):
        return prof.program
    return spawn.find_program(argv[0], env.get("PATH"))


def _run_in(opts: dict[str, Any], prof: validate.Profile, argv: list[str],
            tmp: str | None) -> int:
    if tmp is not None:
        prof.ruleset.allow(tmp, "rw", origin="private TMPDIR (private_tmp)")
        prof.env_set["TMPDIR"] = tmp
    if opts.get("log_denials"):
        from ..diagnose import denials  # lazy: only for --log-denials

        plan = denials.resolve_logged(prof.ruleset)
    else:
        # one spawn: nothing to record for a later stale-directory check
        plan = _plan.resolve(prof.ruleset, track_dirs=False)
    plan.skipped += [(p, origin, "the glob matches nothing") for p, origin in prof.skipped_globs]
    plan.skipped += prof.skipped_cwd
    env = launcher.build_env(bool(opts.get("clean_env")) or prof.env_clean,
                             prof.env_settings() + list(opts.get("env") or ()))
    keep = launcher.check_keep_fds(opts.get("keep_fd") or ())
    uflags, uid, gid = launcher.resolve_user(opts.get("user"), opts.get("group"), env)
    if opts.get("cap_add") and opts.get("user") is not None:
        raise UsageError("--cap-add cannot be combined with --user: capabilities are "
                         "kept only for a root sandbox")
    comp = companion.for_plan(plan, cap_add=opts.get("cap_add") or (), supervised=True)
    if opts.get("dry_run"):
        try:
            path = _program(prof, argv, env)
        except LandwrapError as e:
            path = None
            missing = e
        if opts.get("json"):
            import json  # lazy: only for --json

            d = plan.to_dict()
            d["command"] = argv
            d["program"] = path
            d["profile_chosen"] = prof.why
            d["companion"] = comp.to_dict()
            print(json.dumps(d, indent=2))
        else:
            print(report.format_plan(plan, path or f"{argv[0]} (not found)", argv,
                                     why=prof.why), end="")
            print("beside Landlock:\n" + "".join(f"  {line}\n" for line in comp.lines()), end="")
            if prof.private_tmp:
                print("private TMPDIR: a fresh directory (mode 0700) for each run, granted "
                      "rw and removed when the command ends (--keep-tmp keeps it)")
        if path is None:
            report.error(missing)
            return missing.exit_code
        return 0
    path = _program(prof, argv, env)
    if opts.get("verbose"):
        report.info(f"running {path} in the sandbox below")
        sys.stderr.write(report.format_plan(plan, path, argv, why=prof.why))
    elif not opts.get("quiet"):
        for line in report.plan_warnings(plan):
            report.warn(line)
    unsandboxed = report.unsandboxed_warning(plan)
    if unsandboxed:
        report.warn(unsandboxed)
    plan.ruleset_fd()  # the kernel ruleset is complete before anything is spawned
    resume_gc()
    if opts.get("log_denials"):
        from .denials import run_logged  # lazy: audit and strace only for --log-denials

        return run_logged(plan, argv, env, keep_fds=keep, user_flags=uflags,
                          uid=uid, gid=gid, path=path, companion=comp)
    status = launcher.run(plan, argv, env, keep_fds=keep, user_flags=uflags,
                          uid=uid, gid=gid, path=path, companion=comp)
    if status != 0 and not opts.get("quiet") and sys.stderr.isatty():
        report.info(failure_hint(opts, prof, argv, status))
    return status


def resume_gc() -> None:
    """Turn the garbage collector back on if landwrap's launcher turned it
    off for start-up (``__main__.launch``), before the launcher waits for
    the target (it may wait long, with --log-denials reading records).
    What start-up made is frozen first: it stays for the whole run anyway,
    and the first collections need not walk it."""
    import gc  # built in: no import cost

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def failure_hint(opts: dict[str, Any], prof: validate.Profile, argv: list[str],
                 status: int) -> str:
    """One line after a command failed (stderr a terminal, no -q): the
    profile used and the next step -- `run --log-denials` where denials can
    be read (the kernel's records as root, strace otherwise), else `learn`."""
    import shlex  # lazy: only after a failure, on a terminal

    from ..diagnose.learn import STRACE  # lazy: likewise (loads all of learn)

    name = os.path.basename(argv[0])
    what = f"was killed by signal {status - 128}" if status > 128 else f"exited {status}"
    names = getattr(prof, "names", None) or []
    used = ", ".join(f'"{n}"' for n in names) or "none"
    # the same command line with --log-denials (its options as given)
    opts_given: list[str] = []
    if "run" in sys.argv and "--" in sys.argv:
        opts_given = sys.argv[sys.argv.index("run") + 1:sys.argv.index("--")]
    elif opts.get("profile"):
        opts_given = [a for n in opts["profile"] for a in ("-p", n)]
    cmd = ["run", "--log-denials", *[a for a in opts_given if a != "--log-denials"],
           "--", *argv]
    can_log = os.geteuid() == 0 or os.access(STRACE, os.X_OK)
    if can_log:
        step = "see what was denied with: landwrap " + shlex.join(cmd)
    else:
        step = "learn what it needs with: landwrap learn -o PROFILE.toml -- " + shlex.join(argv)
    return printable(f"{name} {what} under profile {used}; {step}")

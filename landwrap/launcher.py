"""launcher.py: the process side of `landwrap run`.

Prepares the child's environment and credentials, spawns the target through
``spawn``, forwards signals to it and returns its exit status the way
env(1) and timeout(1) do.  The launcher is the target's parent for its whole
life; the target dies with it (PR_SET_PDEATHSIG), so it is never orphaned.
"""

from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` costs an enum import

from . import _sys, spawn
from .errors import UsageError

#: Kept by --clean-env (plus every LC_* variable).
SAFE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "TZ", "TMPDIR")

#: Signals a user sends to "the program": passed on to the target.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
SI_KERNEL = 0x80  # si_code of signals the terminal sends to a process group


def build_env(clean: bool = False, settings=(), base=None) -> dict:
    """The target's environment: inherited (or only :data:`SAFE_ENV` with
    *clean*), then ``NAME=VALUE`` settings applied and ``NAME`` passed
    through from the current environment."""
    src = os.environ if base is None else base
    if clean:
        env = {k: v for k, v in src.items() if k in SAFE_ENV or k.startswith("LC_")}
    else:
        env = dict(src)
    for item in settings:
        name, eq, value = item.partition("=")
        if not name or "\0" in item:
            raise UsageError(f"bad --env {item!r}: expected NAME=VALUE or NAME")
        if eq:
            env[name] = value
        elif name in src:
            env[name] = src[name]
    return env


def resolve_user(user: str | None, group: str | None, env: dict) -> tuple:
    """(flags, uid, gid) for --user/--group; sets HOME/USER/LOGNAME in *env*
    for a new user.  Only root may change identity."""
    if user is None and group is None:
        return 0, 0, 0
    if os.geteuid() != 0:
        raise UsageError("--user/--group need root (landwrap is not setuid: run it with sudo)")
    import grp
    import pwd

    flags = _sys.F_CLEAR_GROUPS | _sys.F_SET_GID
    uid = gid = 0
    if user is not None:
        try:
            pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
        except KeyError:
            pw = None
            if not user.isdigit():
                raise UsageError(f"--user {user}: no such user") from None
        if pw is not None:
            uid, gid = pw.pw_uid, pw.pw_gid
            env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
        else:
            uid = gid = int(user)
        flags |= _sys.F_SET_UID
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise UsageError(f"--group {group}: no such group") from None
    return flags, uid, gid


def check_keep_fds(fds) -> list:
    out = []
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"--keep-fd {fd}: not an open file descriptor") from None
        if fd > 2:
            out.append(fd)
    return out


def run(plan, argv, env, *, keep_fds=(), user_flags=0, uid=0, gid=0, path=None,
        on_start=None, stdio=(-1, -1, -1)) -> int:
    """Run *argv* in *plan*'s sandbox and wait for it; returns the exit
    status for `landwrap run` (the target's, or 128+N for signal N).

    *on_start* is called with the target's pid once it runs (before the
    launcher waits for it; signals are blocked in the calling thread then).
    *stdio* are file descriptors for the target's stdin/stdout/stderr
    (-1: inherit).  Raises a LandwrapError subclass when the target could
    not be started."""
    if path is None:
        path = spawn.find_program(argv[0], env.get("PATH"))
    waitset = set(FORWARDED) | {signal.SIGCHLD}
    # Block before the fork so no signal is lost or handled by Python in
    # between; the child unblocks everything before exec.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, waitset)
    try:
        pid = spawn.start(
            plan, path, argv, env, keep_fds=keep_fds, stdio=stdio,
            flags=(user_flags | _sys.F_PDEATHSIG | _sys.F_UNBLOCK_SIGNALS
                   | _sys.F_RESTORE_SIGPIPE | _sys.F_CLOSE_FDS),
            uid=uid, gid=gid)
        if on_start is not None:
            on_start(pid)
        status = _wait_forwarding(pid, waitset)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
        128 + os.WTERMSIG(status)


def _wait_forwarding(pid: int, waitset) -> int:
    while True:
        info = signal.sigwaitinfo(waitset)
        if info.si_signo == signal.SIGCHLD:
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid == pid and (os.WIFEXITED(status) or os.WIFSIGNALED(status)):
                return status
            continue
        # A signal the terminal sent to the foreground process group has
        # reached the target already; one from the target itself (e.g. kill
        # of its own process group) is not sent back to it.
        if info.si_code == SI_KERNEL or info.si_pid == pid:
            continue
        try:
            os.kill(pid, info.si_signo)
        except ProcessLookupError:
            pass

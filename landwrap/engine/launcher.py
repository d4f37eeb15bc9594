"""launcher.py: the process side of `landwrap run`.

Prepares the child's environment and credentials, spawns the target through
``spawn``, forwards signals to it and returns its exit status the way
env(1) and timeout(1) do.  The launcher is the target's parent for its whole
life; the target dies with it (PR_SET_PDEATHSIG), so it is never orphaned.

Nothing outlives the run: the launcher is a child subreaper, so whatever the
target leaves behind (a fork()+setsid() daemon) is re-parented to it; when
the target exits, every remaining descendant gets SIGTERM, then SIGKILL
after :data:`GRACE` seconds, and is reaped before the status is returned.
The target stays an unreaped zombie meanwhile, so its pid -- which the
seccomp filter lets the sandbox aim at -- cannot be reused.

It also answers the seccomp filter's user notifications (calls such as
sched_setaffinity on a thread id other than the target's own pid) from a
second thread: see ``csrc/landwrap.c``.
"""

from __future__ import annotations

import _thread
import os
import time

from . import _binding, spawn
from .errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal  # typeshed has no _signal; its names are signal's
    from typing import Callable, Collection, Iterable, Mapping, Sequence

    from .companion import Companion
    from .plan import Plan
else:
    import _signal as signal  # the C module: `signal` costs an enum import

#: Kept by --clean-env (plus every LC_* variable).
SAFE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "TZ", "TMPDIR")

#: Signals a user sends to "the program": passed on to the target.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
SI_KERNEL = 0x80  # si_code of signals the terminal sends to a process group

#: Seconds between SIGTERM and SIGKILL for what the target leaves behind.
GRACE = 1.0

#: uid_t/gid_t values a user may give: (uid_t)-1 means "unchanged" to the
#: kernel, so it and anything above are refused.
MAX_ID = 4294967294
#: File descriptors are C ints.
MAX_FD = 2147483647


def build_env(clean: bool = False, settings: Iterable[str] = (),
              base: Mapping[str, str] | None = None) -> dict[str, str]:
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


def parse_id(value: str | int, what: str) -> int | None:
    """*value* as a uid/gid number (0..4294967294), or None when it is a
    name.  UsageError naming the value when it is a number out of range."""
    text = str(value)
    digits = text[1:] if text.startswith(("-", "+")) else text
    if not (digits.isascii() and digits.isdigit()):
        return None
    n = int(text)
    if not 0 <= n <= MAX_ID:
        raise UsageError(f"{what} {value}: out of range (ids are 0-{MAX_ID}; "
                         f"{MAX_ID + 1} is (uid_t)-1, which changes nothing)")
    return n


def resolve_user(user: str | None, group: str | None,
                 env: dict[str, str]) -> tuple[int, int, int]:
    """(flags, uid, gid) for --user/--group; sets HOME/USER/LOGNAME in *env*
    for a new user.  Only root may change identity."""
    if user is None and group is None:
        return 0, 0, 0
    if os.geteuid() != 0:
        raise UsageError("--user/--group need root (landwrap is not setuid: run it with sudo)")
    # only for --user/--group (root only): grp and pwd read the NSS configuration
    import grp
    import pwd

    flags = _binding.F_CLEAR_GROUPS | _binding.F_SET_GID
    uid = gid = 0
    if user is not None:
        num = parse_id(user, "--user")
        try:
            pw = pwd.getpwnam(user) if num is None else pwd.getpwuid(num)
        except KeyError:
            pw = None
            if num is None:
                raise UsageError(f"--user {user}: no such user") from None
        if pw is not None:
            uid, gid = pw.pw_uid, pw.pw_gid
            env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
        else:
            assert num is not None  # an unknown name raised above
            uid = gid = num
        flags |= _binding.F_SET_UID
    if group is not None:
        num = parse_id(group, "--group")
        try:
            gid = num if num is not None else grp.getgrnam(group).gr_gid
        except KeyError:
            raise UsageError(f"--group {group}: no such group") from None
    for what, n, given in (("--user", uid, user), ("--group", gid, group)):
        if not 0 <= n <= MAX_ID:  # a passwd entry with (uid_t)-1
            raise UsageError(f"{what} {given}: resolves to id {n}, out of range 0-{MAX_ID}")
    return flags, uid, gid


def check_keep_fds(fds: Iterable[int]) -> list[int]:
    out = []
    for fd in fds:
        if not 0 <= fd <= MAX_FD:
            raise UsageError(f"--keep-fd {fd}: not a file descriptor number (0-{MAX_FD})")
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"--keep-fd {fd}: not an open file descriptor") from None
        if fd > 2:
            out.append(fd)
    return out


def run(plan: Plan, argv: Sequence[str], env: Mapping[str, str], *,
        keep_fds: Collection[int] = (), user_flags: int = 0, uid: int = 0, gid: int = 0,
        path: str | None = None, on_start: Callable[[int], object] | None = None,
        stdio: Sequence[int] = (-1, -1, -1), companion: Companion | None = None) -> int:
    """Run *argv* in *plan*'s sandbox and wait for it; returns the exit
    status for `landwrap run` (the target's, or 128+N for signal N).

    *companion* (a companion.Companion) adds the seccomp filter and the
    capability drop; None means the plan's own (``companion.for_plan``,
    supervised), so that no caller (learn, --log-denials) runs a command
    without them by leaving the argument out.  *on_start* is called with the target's pid once it
    runs (before the launcher waits for it; signals are blocked in the
    calling thread then).  *stdio* are file descriptors for the target's
    stdin/stdout/stderr (-1: inherit).  Raises a LandwrapError subclass
    when the target could not be started."""
    if path is None:
        path = spawn.find_program(argv[0], env.get("PATH"))
    if companion is None:
        from . import companion as _companion  # not on `landwrap run`'s path: it passes one

        companion = _companion.for_plan(plan, supervised=True)
    waitset = set(FORWARDED) | {signal.SIGCHLD}
    supervise = companion.filter and companion.supervised
    _binding.set_subreaper()
    # Block before the fork so no signal is lost or handled by Python in
    # between; the child unblocks everything before exec.  The supervisor
    # thread inherits the mask, so signals still come to sigwaitinfo.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, waitset)
    pid = None
    try:
        mine = theirs = -1
        if supervise:
            mine, theirs = _binding.notif_pair()
        try:
            pid = spawn.start(
                plan, path, argv, env, keep_fds=keep_fds, stdio=stdio,
                flags=(user_flags | _binding.F_PDEATHSIG | _binding.F_UNBLOCK_SIGNALS
                       | _binding.F_RESTORE_SIGPIPE | _binding.F_CLOSE_FDS),
                uid=uid, gid=gid, companion=companion, notif_sock=theirs)
            if supervise:
                try:
                    listener = _binding.recv_fd(mine)
                except BlockingIOError:
                    # Nested in another landwrap run: the child refuses
                    # other ids itself (one listener per filter chain).
                    listener = -1
                if listener >= 0:
                    _supervise(listener)
        finally:
            for fd in (mine, theirs):
                if fd >= 0:
                    os.close(fd)
        if on_start is not None:
            on_start(pid)
        _wait_forwarding(pid, waitset)
    finally:
        if pid is not None:
            end_descendants(pid)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
        128 + os.WTERMSIG(status)


def _supervise(listener: int) -> None:
    """Answer the filter's user notifications until no process uses it."""
    def loop() -> None:
        try:
            while True:
                _binding.notif_answer(listener)
        except OSError:
            pass
        finally:
            os.close(listener)

    _thread.start_new_thread(loop, ())


def _wait_forwarding(pid: int, waitset: Iterable[int]) -> None:
    """Wait until the target has exited, without reaping it."""
    while True:
        if _exited(pid):
            return
        info = signal.sigwaitinfo(waitset)
        if info.si_signo == signal.SIGCHLD:
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


def _exited(pid: int) -> bool:
    """True when *pid* is a zombie (left unreaped); reaps any other child
    that has exited (descendants re-parented to the launcher)."""
    while True:
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return False
        if info.si_pid == pid:
            return True
        os.waitpid(info.si_pid, os.WNOHANG)


def _children(pid: int) -> list[int]:
    """Children of every thread of *pid* (/proc/PID/task/TID/children)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def _descendants(me: int, skip: int) -> list[int]:
    seen, todo = [], [c for c in _children(me) if c != skip]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += _children(p)
    return seen


def end_descendants(target: int, grace: float = GRACE) -> None:
    """Terminate and reap everything the target left behind: SIGTERM,
    then SIGKILL after *grace* seconds.  *target* itself is not touched
    (it has exited and is still unreaped)."""
    me = os.getpid()
    left = _descendants(me, target)
    if not left:
        return
    for p in left:
        _kill(p, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _reap_others(target) and time.monotonic() < deadline:
        signal.sigtimedwait([signal.SIGCHLD], 0.02)
    # Whatever is left -- including anything forked meanwhile -- gets SIGKILL,
    # until the launcher has no child but the target.
    while True:
        left = _descendants(me, target)
        if not left:
            return
        for p in left:
            _kill(p, signal.SIGKILL)
        _reap_others(target)
        signal.sigtimedwait([signal.SIGCHLD], 0.02)


def _reap_others(target: int) -> bool:
    """Reap exited children other than *target*; True while any remain."""
    me = os.getpid()
    any_left = False
    for c in _children(me):
        if c == target:
            continue
        try:
            if os.waitpid(c, os.WNOHANG)[0] == 0:
                any_left = True
        except ChildProcessError:
            pass
    return any_left


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

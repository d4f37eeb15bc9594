"""threads.py: put every thread of this process into a Landlock domain.

``landlock_restrict_self()`` restricts only the thread that calls it, unless
the kernel has TSYNC (Landlock ABI 8, Linux 7.0), which restricts all threads
of the process at once.  A Python program has threads it did not start
itself (thread pools, libraries), so :func:`restrict_process` must reach all
of them:

- with TSYNC: one call, all or nothing, done by the kernel;
- without it: the calling thread restricts itself first (so that the usual
  failures -- too many nested domains, a bad flag -- leave the process
  untouched), then ``csrc/threads.c`` sends a real-time signal to every other
  thread listed in ``/proc/self/task``; each thread restricts itself in the
  handler and is held there until every thread, including ones created
  meanwhile, has been accounted for against the kernel's own thread count.
  Held threads cannot create threads, so no thread gets the domain twice.
  When holding would deadlock (a thread waits, with signals blocked, for a
  lock a held thread owns -- CPython's subprocess does that for the GIL
  right after vfork), the held threads are let go and held again later; a
  thread created during such an escape by an already restricted thread may
  get a second, identical layer.  While restrict() runs, CPython's
  subprocess is told not to use vfork (``subprocess._USE_VFORK``, its
  documented switch), so that new spawns do not enter that state.

The two /proc files the round reads (/proc/self/task, /proc/self/status)
are opened on first use and kept open, so that a later call still works in
a sandbox that denies /proc.  Every thread's status is read in one C call:
in a process whose threads fight over the GIL, each Python-level read
would wait for it.

Which signal: the highest real-time signal from SIGRTMAX-3 down that has no
handler (checked with sigaction, so C libraries count) and that no thread
keeps blocked for :data:`BLOCKED_GRACE` (threads block every signal for a
moment when they start, or spawn a child).  A thread that blocks it for
good fails the call before anything is restricted; one that is stopped,
traced or never answers fails it after :data:`DEFAULT_TIMEOUT`.  The
signal is back to its default disposition when the call returns.

Never returns success while a thread may be unrestricted: any doubt raises
:class:`EnforcementError` naming the threads.  Never used for spawned
children (each is single-threaded when it restricts itself).
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time

from . import _binding, compat
from .errors import EnforcementError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal  # typeshed has no _signal; its names are signal's
    from types import ModuleType
    from typing import Collection, Literal
else:
    import _signal as signal  # the C module: `signal` costs an enum import

#: Seconds to wait for every thread to answer.
DEFAULT_TIMEOUT = 5.0

# Re-entrant, with a flag: a signal handler (run by Python on this same
# thread) that calls restrict() while restrict() runs must get a clear error,
# not wait forever for a lock its own thread holds.
_lock = threading.RLock()
_busy = False


def _after_fork() -> None:
    """In a child forked (by another thread) while restrict() ran: the lock
    belongs to a thread the child does not have; start afresh (the C
    round's state is reset by lw_restrict_threads itself)."""
    global _lock, _busy
    _lock, _busy = threading.RLock(), False


os.register_at_fork(after_in_child=_after_fork)


class ThreadsResult:
    """How the threads were restricted: ``method`` is ``"tsync"`` (the
    kernel did it) or ``"signal"``; ``threads`` counts the threads
    restricted, the caller included; ``signal`` is the signal used;
    ``escapes`` counts the stalls broken by letting held threads go."""

    __slots__ = ("method", "threads", "signal", "escapes")

    def __init__(self, method: Literal["tsync", "signal"], threads: int,
                 signal: int | None = None, escapes: int = 0) -> None:
        self.method, self.threads, self.signal = method, threads, signal
        self.escapes = escapes

    def __repr__(self) -> str:
        return f"ThreadsResult(method={self.method!r}, threads={self.threads})"


def candidate_signals() -> list[int]:
    """Real-time signals landwrap may borrow, most preferred first.  The
    top ones are left alone (debuggers and valgrind use them)."""
    return list(range(signal.SIGRTMAX - 3, signal.SIGRTMIN, -1))


#: (pid, [(fd, dev, ino), (fd, dev, ino)]) of /proc/self/{task,status}
_proc: tuple[int, list[tuple[int, int, int]]] | None = None


def _proc_fds() -> tuple[int, int]:
    """``(task_fd, status_fd)``: /proc/self/task and /proc/self/status of
    this process, opened once and kept (close-on-exec), so that a later
    restrict() works even when an earlier sandbox denies /proc.  Reopened
    after a fork, or if the application closed or replaced them."""
    global _proc
    pid = os.getpid()
    if _proc is not None:
        kept_pid, kept = _proc
        if kept_pid == pid and all(_same(fd, dev, ino) for fd, dev, ino in kept):
            return kept[0][0], kept[1][0]
        if kept_pid != pid:  # a fork's copies describe the parent
            for fd, dev, ino in kept:
                if _same(fd, dev, ino):
                    os.close(fd)
        _proc = None
    opened = []
    try:
        for path, extra in (("/proc/self/task", os.O_DIRECTORY), ("/proc/self/status", 0)):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | extra)
            st = os.fstat(fd)
            opened.append((fd, st.st_dev, st.st_ino))
    except OSError as e:
        for fd, _, _ in opened:
            os.close(fd)
        raise EnforcementError(
            f"cannot list the threads of this process: {e.filename}: {e.strerror}; "
            "nothing was restricted",
            "restrict() needs /proc (a sandbox that denies it must have been "
            "entered through restrict() in this same process)", errno=e.errno) from e
    _proc = (pid, opened)
    return opened[0][0], opened[1][0]


def _same(fd: int, dev: int, ino: int) -> bool:
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return st.st_dev == dev and st.st_ino == ino


def thread_info(task_fd: int | None = None) -> dict[int, tuple[str, int]]:
    """``{tid: (name, blocked_signal_mask)}`` for the threads of this
    process; ``("?", 0)`` for a thread whose status cannot be read (a
    sandbox may deny /proc: the check is then left to the round itself)."""
    if task_fd is None:
        task_fd = _proc_fds()[0]
    try:
        rows = _binding.thread_masks(task_fd)
    except OSError as e:
        raise EnforcementError(f"cannot list the threads of this process: {e.strerror}; "
                               "nothing was restricted", errno=e.errno) from e
    return {tid: (name if readable else "?", blocked)
            for tid, name, blocked, readable in rows}


def _count_threads(status_fd: int) -> int:
    for line in os.pread(status_fd, 16384, 0).splitlines():
        if line.startswith(b"Threads:"):
            return int(line[8:])
    return 0


#: How long a thread may keep the signal blocked before the pre-check
#: blames it: a new thread starts with every signal blocked, and so does a
#: thread while it spawns a child (vfork), for a moment.
BLOCKED_GRACE = 1.0


def _pick_signal(task_fd: int, me: int, exclude: Collection[int] = ()
                 ) -> tuple[dict[int, tuple[str, int]], int]:
    """``(thread_info, signal)``: a free candidate signal that no thread
    keeps blocked for :data:`BLOCKED_GRACE` seconds.

    Only a diagnostic, to fail before anything is restricted when a
    thread will clearly never take the signal; the round itself is the
    guarantee (it times out on any thread that does not answer)."""
    free = [s for s in candidate_signals() if s not in exclude and _binding.signal_is_free(s)]
    if not free:
        lo, hi = min(candidate_signals()), max(candidate_signals())
        raise EnforcementError(
            cause=f"cannot restrict every thread: every real-time signal from {lo} to {hi} "
            "already has a handler",
            hint="free one of them, or use Landlock ABI 8 (TSYNC)")
    deadline = time.monotonic() + BLOCKED_GRACE
    info = thread_info(task_fd)
    names = dict(info)
    # Suspects: threads seen blocking the signal in every sample so far.
    suspects = {sig: {tid for tid, (_, mask) in info.items()
                      if tid != me and mask & (1 << (sig - 1))} for sig in free}
    while True:
        for sig in free:
            if not suspects[sig]:
                return names, sig
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)
        info = thread_info(task_fd)
        names.update(info)
        for sig in free:
            bit = 1 << (sig - 1)
            suspects[sig] = {t for t in suspects[sig] if t in info and info[t][1] & bit}
    tids = sorted(suspects[free[0]])
    who = ", ".join(f"{tid} ({names[tid][0]})" for tid in tids[:8])
    raise EnforcementError(
        cause=f"cannot restrict every thread: thread {who} block(s) the real-time "
        "signals landwrap uses to reach them",
        hint="restrict() before starting such threads, or on Landlock ABI 8 "
        f"({compat.since(compat.RESTRICT_FLAGS['tsync'][1])}), which does it in the kernel")


def _caller_error(err: int) -> EnforcementError:
    hint = None
    if err == errno.E2BIG:
        hint = ("Landlock allows at most 16 nested sandboxes; this process is "
                "already inside too many")
    return EnforcementError(
        f"failed to enforce the sandbox: {os.strerror(err)}; nothing was restricted", hint,
        errno=err)


def _restrict_caller(ruleset_fd: int, flags: int) -> None:
    try:
        _binding.no_new_privs()
        _binding.restrict_self(ruleset_fd, flags)
    except OSError as e:
        assert e.errno is not None  # the binding's errors always carry one
        raise _caller_error(e.errno) from e


def restrict_process(ruleset_fd: int, flags: int, abi: int, *,
                     timeout: float | None = None) -> ThreadsResult:
    """Enforce *ruleset_fd* with restrict_self *flags* on every thread of
    the process.  *abi* is the ABI the plan was made for (it decides TSYNC).

    Raises EnforcementError.  When it is raised before any thread was
    restricted the message says "nothing was restricted"; otherwise the
    process is partly sandboxed and should exit."""
    global _busy

    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    with _lock:
        if _busy:
            raise EnforcementError(
                "restrict() called re-entrantly (from a signal handler, or from "
                "code it runs) while this thread is restricting the process; "
                "nothing more was restricted",
                "call restrict() once, outside signal handlers")
        _busy = True
        try:
            task_fd, status_fd = _proc_fds()
            if compat.has_tsync(abi):
                n = _count_threads(status_fd)
                _restrict_caller(ruleset_fd, flags | compat.TSYNC)
                return ThreadsResult("tsync", n)
            with _no_vfork():
                return _by_signal(ruleset_fd, flags, timeout, task_fd, status_fd)
        finally:
            _busy = False


def _by_signal(ruleset_fd: int, flags: int, timeout: float, task_fd: int,
               status_fd: int) -> ThreadsResult:
    me = threading.get_native_id()
    info, sig = _pick_signal(task_fd, me)
    _restrict_caller(ruleset_fd, flags)
    tried = []
    while True:
        try:
            outcome, records, escapes = _binding.restrict_threads(
                ruleset_fd, flags, sig, task_fd, status_fd, max(1, int(timeout * 1000)))
            break
        except OSError as e:
            if e.errno != errno.EBUSY:  # EBUSY: the signal was taken just now
                raise EnforcementError(
                    f"cannot restrict the other threads: {e.strerror}; only the "
                    "calling thread is restricted",
                    "the process is only partly sandboxed: do not go on with "
                    "untrusted work, exit", errno=e.errno, restricted=True) from e
            tried.append(sig)
            try:
                info, sig = _pick_signal(task_fd, me, exclude=tried)
            except EnforcementError as e2:
                raise EnforcementError(
                    cause=e2.cause, hint="the process is only partly sandboxed: exit",
                    restricted=True) from e2
    return _judge(outcome, records, info, sig, timeout, escapes)


class _no_vfork:
    """Keep CPython's subprocess from using vfork while threads are being
    restricted: after a vfork it waits for the GIL with every signal
    blocked, which both the pre-check and the round would take for a
    thread that cannot be reached."""

    mod: ModuleType | None
    old: bool | None

    def __enter__(self) -> None:
        self.mod = sys.modules.get("subprocess")
        self.old = getattr(self.mod, "_USE_VFORK", None)
        if self.old:
            setattr(self.mod, "_USE_VFORK", False)

    def __exit__(self, *exc: object) -> None:
        if self.old:
            setattr(self.mod, "_USE_VFORK", self.old)


def _judge(outcome: int, records: list[tuple[int, int, int]], info: dict[int, tuple[str, int]],
           sig: int,
           timeout: float, escapes: int = 0) -> ThreadsResult:
    """Turn a round's records into a result, or raise naming every thread
    that is not known to be restricted."""
    ok = [tid for tid, st, err in records if st == _binding.T_DONE and not err]
    problems: list[tuple[int | None, str]] = []
    for tid, st, err in records:
        if st == _binding.T_DONE and err:
            problems.append((tid, f"restricting it failed: {os.strerror(err)}"))
        elif st in (_binding.T_SENT, _binding.T_BUSY):
            problems.append((tid, f"did not answer signal {sig} within {timeout:g}s "
                                  "(blocked, stopped or traced)"))
        elif st == _binding.T_LOST:
            problems.append((tid, f"could not be signalled: {os.strerror(err)}"))
    if outcome == 0 and not problems:
        return ThreadsResult("signal", 1 + len(ok), sig, escapes)
    if outcome == errno.ENOSPC:
        problems.append((None, f"more than {_binding.MAX_THREADS} threads"))
    elif outcome and outcome != errno.ETIMEDOUT and not problems:
        problems.append((None, f"scanning the threads failed: {os.strerror(outcome)}"))
    elif outcome == errno.ETIMEDOUT and not problems:
        problems.append((None, f"the thread count did not settle within {timeout:g}s"))

    def who(tid: int | None) -> str:
        if tid is None:
            return "the process"
        name = info.get(tid, ("new thread",))[0]
        return f"thread {tid} ({name})"

    detail = "; ".join(f"{who(tid)}: {why}" for tid, why in problems[:8])
    if len(problems) > 8:
        detail += f"; and {len(problems) - 8} more"
    raise EnforcementError(
        f"could not restrict every thread: {detail}; {1 + len(ok)} threads "
        "(the caller included) are restricted, the others may not be",
        "the process is only partly sandboxed: do not go on with untrusted work, exit",
        restricted=True, threads={tid: why for tid, why in problems if tid is not None})

"""engine/_binding.py: the one module that touches the compiled cffi library.

Every call is checked right here: ``-1`` plus ``ffi.errno`` becomes an
``OSError`` with the errno and, where there is one, the path.  Above this
module, landwrap speaks Python.  No policy here.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False   # (typing costs start-up time: only for type checkers)
if TYPE_CHECKING:
    from typing import Any

from .._lwcffi import ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Collection, Sequence

_kernel_abi: int | None = None


def _oserror(filename: str | None = None) -> OSError:
    err = ffi.errno
    return OSError(err, os.strerror(err), filename) if filename else OSError(err, os.strerror(err))


def kernel_abi() -> int:
    """The kernel's Landlock ABI, or ``-errno`` (``-ENOSYS``: not built in,
    ``-EOPNOTSUPP``: disabled at boot).  Cached for the process."""
    global _kernel_abi
    if _kernel_abi is None:
        v = lib.lw_landlock_abi()
        _kernel_abi = v if v >= 0 else -ffi.errno
    return _kernel_abi


def create_ruleset(fs: int, net: int, scoped: int, size: int) -> int:
    fd = lib.lw_create_ruleset(fs, net, scoped, size)
    if fd < 0:
        raise _oserror()
    return fd


def add_net_rule(ruleset_fd: int, allowed: int, port: int) -> None:
    if lib.lw_add_net_rule(ruleset_fd, allowed, port) < 0:
        raise _oserror()


def no_new_privs() -> None:
    if lib.lw_no_new_privs() < 0:
        raise _oserror()


def restrict_self(ruleset_fd: int, flags: int) -> None:
    if lib.lw_restrict_self(ruleset_fd, flags) < 0:
        raise _oserror()


def add_path_rules(ruleset_fd: int, paths: Sequence[str], allowed: Sequence[int]) -> None:
    """Add a rule per (real, symlink-free) path; OSError names the path."""
    n = len(paths)
    if not n:
        return
    blob = b"\0".join(os.fsencode(p) for p in paths) + b"\0"
    bits = ffi.new("uint64_t[]", list(allowed))
    failed = ffi.new("int *")
    if lib.lw_add_path_rules(ruleset_fd, blob, bits, n, failed) < 0:
        raise _oserror(paths[failed[0]])


P_DIR = lib.LW_P_DIR
P_LINK = lib.LW_P_LINK
P_ERR = lib.LW_P_ERR
P_BOUND = lib.LW_P_BOUND
P_COVERED = lib.LW_P_COVERED


def open_add_paths(ruleset_fd: int, paths: list[str], group_end: list[int],
                   group_access: list[int], nobind: bytearray | None, file_mask: int,
                   joined: str | None = None, *,
                   handles: bool = True) -> tuple[Any, ...] | None:
    """Resolve *paths* (str; group ``g`` is the paths
    before ``group_end[g]``, asking for ``group_access[g]``) opening each
    once and, with a *ruleset_fd* >= 0, bind their rules to those same
    descriptors unless *nobind* (one byte per path, or None) says not to
    (see csrc/paths.c); *joined*: the paths joined by NUL, if at hand.  ``(special, dirs, flags)``: ``special`` lists
    ``(index, err, flags, real)`` for the paths that could not be opened
    (``err``, an errno) or have a symlink on the way (``real``, their real
    path; no rule was added); ``dirs`` lists ``(index, st_dev, st_ino,
    handle digest)`` of the directories reached without one (the digest:
    see :func:`path_ids`; 0 without *handles*); ``flags`` has a byte of ``P_*`` bits per path.  Every other path's rule was added, or is granted by its
    ancestors' rules added here.  None, with nothing opened, when a path is
    not absolute and lexically normal.  OSError names the path whose rule
    the kernel refused."""
    n = len(paths)
    if not n:
        return [], [], b""
    # (a bytes object ends with a NUL of its own, which ends the last path)
    blob = _blob(paths) if joined is None else joined.encode(_FS_ENCODING, "surrogateescape")
    err, special, dirs = (ffi.new("int[]", n) for _ in range(3))
    flags = ffi.new("unsigned char[]", n)
    dev, ino, gen = (ffi.new("uint64_t[]", n) for _ in range(3))
    if not handles:
        gen = ffi.NULL  # (reported as 0)
    counts = ffi.new("int[3]")   # nspecial, ndirs, failed
    cap = 64 * 1024
    realbuf = ffi.new("char[]", cap)
    off, length = ffi.new("int[]", n), ffi.new("int[]", n)
    keep = ffi.NULL if nobind is None else ffi.from_buffer(nobind)
    if lib.lw_open_add_paths(ruleset_fd, blob, n, group_end, group_access, len(group_end),
                             keep, file_mask, flags, err, special, counts, dirs, dev, ino,
                             gen, counts + 1, off, length, realbuf, cap, counts + 2) < 0:
        if counts[2] == -2:
            return None
        raise _oserror(paths[counts[2]] if counts[2] >= 0 else None)
    out = []
    for i in ffi.unpack(special, counts[0]):
        real = None
        if flags[i] & P_LINK:
            o = off[i]
            real = (os.path.realpath(paths[i]) if o < 0 else
                    os.fsdecode(ffi.unpack(realbuf + o, length[i])))
        out.append((i, err[i], flags[i], real))
    nd = counts[1]
    return (out, list(zip(ffi.unpack(dirs, nd), ffi.unpack(dev, nd), ffi.unpack(ino, nd),
                          ffi.unpack(gen, nd) if handles else [0] * nd)),
            ffi.buffer(flags)[:])


def fd_state(fd: int, mark: int = 0) -> tuple[int, int, int]:
    """``(st_dev, st_ino, status flags)`` of descriptor *fd*, after adding
    the status flags *mark* (F_SETFL) when it is not 0: one call for
    kernel_ruleset's owner table, and no ``fcntl`` module to import."""
    out = ffi.new(_U64S, 3)
    if lib.lw_fd_state(fd, mark, out) < 0:
        raise _oserror()
    return out[0], out[1], out[2]


def path_ids(paths: Sequence[str]) -> list[tuple[int, int, int] | None]:
    """``(st_dev, st_ino, handle digest)`` of each path (stat follows
    symlinks), or None where stat fails; the digest as open_add_paths
    reports it for a directory."""
    n = len(paths)
    if not n:
        return []
    out = ffi.new(_U64S, 4 * n)
    lib.lw_path_ids(_blob(paths), n, out)
    got: list[int] = ffi.unpack(out, 4 * n)
    return [(got[i + 1], got[i + 2], got[i + 3]) if got[i] else None
            for i in range(0, 4 * n, 4)]


def _blob(paths: Sequence[str]) -> bytes:
    """*paths* (str) as NUL-terminated strings back to back, encoded as
    os.fsencode does, in one call."""
    return ("\0".join(paths) + "\0").encode(_FS_ENCODING, "surrogateescape")


_FS_ENCODING = sys.getfilesystemencoding()


def floor_path_rules(ruleset_fd: int, paths: Sequence[str], allowed: int) -> int:
    """The benchmark's kernel floor: open(O_PATH) + landlock_add_rule +
    close for each path, nothing else; returns how many rules were added."""
    return lib.lw_floor_path_rules(ruleset_fd, _blob(paths), len(paths), allowed)


def floor_bare_domain(handled: int) -> None:
    """The benchmark's floor for file-heavy work: this thread restricted by
    one layer with a single rule granting *handled* beneath /."""
    if lib.lw_floor_bare_domain(handled) < 0:
        raise _oserror()


class FloorSpawn:
    """The benchmark's floor for a sandboxed spawn (csrc/floor.c), its
    arguments converted once: :meth:`start` is one C call."""

    __slots__ = ("_path", "_argv", "_keep", "_args")

    def __init__(self, argv: Sequence[str | bytes], ruleset_fd: int = -1,
                 seccomp_parts: int = 0, drop_caps: bool = False, cap_last: int = 63) -> None:
        items = [os.fsencode(a) for a in argv]
        self._path = ffi.new("char[]", items[0])
        self._argv, self._keep = cstrings(items)
        self._args = (ruleset_fd, seccomp_parts, 1 if drop_caps else 0, cap_last)

    def start(self) -> int:
        """Start the child; its pid (wait for it)."""
        pid: int = lib.lw_floor_spawn(self._path, self._argv, *self._args)
        if pid < 0:
            raise _oserror()
        return pid


# Spawn -------------------------------------------------------------------

STAGES = {
    lib.LW_STAGE_DUP: "redirecting standard streams",
    lib.LW_STAGE_CHDIR: "changing directory",
    lib.LW_STAGE_FDS: "closing inherited file descriptors",
    lib.LW_STAGE_SETSID: "starting a new session",
    lib.LW_STAGE_SETGROUPS: "dropping supplementary groups",
    lib.LW_STAGE_SETGID: "changing group",
    lib.LW_STAGE_SETUID: "changing user",
    lib.LW_STAGE_PDEATHSIG: "tying the child to the launcher",
    lib.LW_STAGE_NO_NEW_PRIVS: "setting no_new_privs",
    lib.LW_STAGE_RESTRICT: "enforcing the Landlock ruleset",
    lib.LW_STAGE_EXEC: "exec",
    lib.LW_STAGE_CAPS: "dropping capabilities",
    lib.LW_STAGE_SECCOMP: "installing the seccomp companion filter",
    lib.LW_STAGE_LISTENER: "passing the seccomp listener to the launcher",
}
STAGE_EXEC = lib.LW_STAGE_EXEC
STAGE_RESTRICT = lib.LW_STAGE_RESTRICT
STAGE_CHDIR = lib.LW_STAGE_CHDIR

F_SET_UID = lib.LW_SET_UID
F_SET_GID = lib.LW_SET_GID
F_CLEAR_GROUPS = lib.LW_CLEAR_GROUPS
F_PDEATHSIG = lib.LW_PDEATHSIG
F_NEW_SESSION = lib.LW_NEW_SESSION
F_UNBLOCK_SIGNALS = lib.LW_UNBLOCK_SIGNALS
F_RESTORE_SIGPIPE = lib.LW_RESTORE_SIGPIPE
F_CLOSE_FDS = lib.LW_CLOSE_FDS
F_DROP_CAPS = lib.LW_DROP_CAPS
F_DROP_BOUNDING = lib.LW_DROP_BOUNDING
F_SECCOMP = lib.LW_SECCOMP
STAGE_SECCOMP = lib.LW_STAGE_SECCOMP
STAGE_CAPS = lib.LW_STAGE_CAPS

MAX_KEEP_FDS = lib.LW_MAX_KEEP_FDS


def cstrings(items: Sequence[bytes]) -> tuple[Any, Any]:
    """A NULL-terminated ``char *[]`` and the buffers it points into (keep
    both alive for the call)."""
    # One buffer for all the strings: a third of the cost of one each,
    # which matters for a spawn's environment.
    blob = ffi.from_buffer(b"\0".join(items) + b"\0")
    arr = ffi.new(_CHARPP, len(items) + 1)
    base = ffi.cast(_CHARP, blob)
    off = 0
    for i, b in enumerate(items):
        arr[i] = base + off
        off += len(b) + 1
    return arr, blob


_CHARPP = ffi.typeof("char *[]")
_CHARP = ffi.typeof("char *")


class SpawnArgs:
    """Everything the child needs, checked and encoded in the parent.

    ``argv`` and ``envp`` are lists of bytes (``envp`` None: the child
    inherits this process's environment, as with subprocess's ``env=None``).
    Held as the arguments of one C call (lw_spawnv), which builds the
    child's arrays before the fork: no struct filled field by field here.
    *ruleset_id*, ``(st_dev, st_ino, F_GETFL flags)``: what *ruleset_fd*
    must still be for the spawn to go ahead (checked in that call; else
    :func:`spawn` raises OSError(ESTALE) and starts nothing)."""

    __slots__ = ("_args",)

    def __init__(self, path: bytes, argv: Sequence[bytes], envp: Sequence[bytes] | None, *,
                 cwd: bytes | None = None, stdio: Sequence[int] = (-1, -1, -1),
                 keep_fds: Collection[int] = (), ruleset_fd: int = -1,
                 ruleset_id: tuple[int, int, int] | None = None, restrict_flags: int = 0,
                 flags: int = 0, uid: int = 0, gid: int = 0, keep_caps: int = 0, cap_last: int = 63, bounding: int = ~0,
                 seccomp_parts: int = 0, notif_sock: int = -1) -> None:
        if len(keep_fds) > MAX_KEEP_FDS:
            raise ValueError(f"at most {MAX_KEEP_FDS} file descriptors can be passed")
        if not argv:
            raise ValueError("an empty argument list (argv[0] is the program's name)")
        # The strings go over as one buffer each, split at NUL bytes: a NUL
        # inside a string would make two of it (the callers refuse it
        # first, with the argument named).
        joined = b"\0".join(argv)
        if b"\0" in path or joined.count(b"\0") != len(argv) - 1:
            raise ValueError("embedded null byte in the program path or an argument")
        env: Any = ffi.NULL
        if envp is not None:
            env = b"\0".join(envp)
            if envp and env.count(b"\0") != len(envp) - 1:
                raise ValueError("embedded null byte in the environment")
        if cwd is not None and b"\0" in cwd:
            raise ValueError("embedded null byte in the working directory")
        keep = sorted(keep_fds) if keep_fds else ffi.NULL
        dev, ino, fl = ruleset_id if ruleset_id is not None else (0, 0, -1)
        self._args = (path + b"\0" + joined, len(argv), env,
                      -1 if envp is None else len(envp), ffi.NULL if cwd is None else cwd,
                      stdio[0], stdio[1], stdio[2], keep, len(keep_fds), ruleset_fd,
                      fl, dev, ino, restrict_flags, flags, uid, gid, keep_caps, cap_last,
                      bounding & 0xFFFFFFFFFFFFFFFF, seccomp_parts, notif_sock)


def spawn(args: SpawnArgs) -> tuple[int, tuple[int, int] | None]:
    """Start the child and wait until it runs its program or fails:
    ``(pid, None)``, or ``(pid, (stage, errno))`` for a child that failed
    before (it has exited with status 125; reap it).  OSError when no
    child was started: ESTALE when the ruleset descriptor is no longer
    the file *args* names (``ruleset_id``)."""
    failure = ffi.new(_FAILURE)
    pid: int = lib.lw_spawnv(*args._args, failure)
    if pid < 0:
        raise _oserror()
    return pid, ((failure[0], failure[1]) if failure[0] else None)


_FAILURE = ffi.typeof("int[2]")


class LstatIds:
    """Paths to lstat together, converted once (engine/stale.py's ancestors)."""

    __slots__ = ("n", "_arr", "_blob")

    def __init__(self, paths: Sequence[str]) -> None:
        self.n = len(paths)
        self._arr, self._blob = cstrings([os.fsencode(p) for p in paths])

    def ids(self) -> list[int]:
        """Five numbers per path: 1 (0 when lstat failed, then four 0s),
        st_dev, st_ino, ctime and mtime in ns (as unsigned 64-bit)."""
        return self.probe(-1, 0, 0)[2:]

    def probe(self, watch_fd: int, dev: int, ino: int) -> list[int]:
        """:meth:`ids` after two numbers about descriptor *watch_fd*: 1 when
        it is still the file (*dev*, *ino*), then 1 when a poll for POLLPRI
        found an event on it (which the poll takes)."""
        out = ffi.new(_U64S, 2 + 5 * self.n)
        lib.lw_lstat_ids(watch_fd, dev, ino, self._arr, self.n, out)
        got: list[int] = ffi.unpack(out, 2 + 5 * self.n)
        return got

    def reference(self, ids: Sequence[int]) -> Any:
        """*ids* (as :meth:`ids` gave them) held for :meth:`same`."""
        return ffi.new(_U64S, ids)

    def same(self, watch_fd: int, dev: int, ino: int, reference: Any) -> int:
        """:meth:`probe` compared in C with a :meth:`reference`, for the
        common case where nothing changed: bit 0 and bit 1 as probe's two
        numbers, bit 2 set when every id is the reference's."""
        r: int = lib.lw_lstat_same(watch_fd, dev, ino, self._arr, self.n, reference)
        return r


_U64S = ffi.typeof("uint64_t[]")


# The seccomp companion filter ---------------------------------------------

SC_TTY = lib.LW_SC_TTY
SC_MPTCP = lib.LW_SC_MPTCP
SC_PROCS = lib.LW_SC_PROCS
SC_NOTIFY = lib.LW_SC_NOTIFY


def seccomp_arch() -> int:
    """The AUDIT_ARCH_* value the filter is built for; 0: unknown arch."""
    return lib.lw_seccomp_arch()


_seccomp_avail: dict[bool, bool] = {}


def seccomp_available(notify: bool = False) -> bool:
    """Whether this kernel installs filters returning errors (and user
    notifications, with *notify*).  Cached for the process."""
    r = _seccomp_avail.get(notify)
    if r is None:
        got = lib.lw_seccomp_available(1 if notify else 0)
        if got < 0:
            raise _oserror()
        r = _seccomp_avail[notify] = bool(got)
    return r


def seccomp_program(parts: int, self_pid: int) -> bytes:
    """The filter as bytes (struct sock_filter[]), for inspection."""
    cap = lib.LW_SC_MAX_INSNS
    buf = ffi.new("char[]", 8 * cap)
    n = lib.lw_seccomp_build(parts, self_pid, buf, cap)
    if n < 0:
        raise _oserror()
    program: bytes = ffi.unpack(buf, 8 * n)
    return program


def seccomp_install(parts: int, self_pid: int, tsync: bool) -> None:
    """Install the filter on this thread, or every thread with *tsync*.
    OSError; ESRCH with the tid as filename when a thread could not be
    synchronised."""
    r = lib.lw_seccomp_install(parts, self_pid, 1 if tsync else 0)
    if r < 0:
        raise _oserror()
    if r > 0:
        raise OSError(3, "a thread could not be synchronised", str(r))


def notif_pair() -> tuple[int, int]:
    fds = ffi.new("int[2]")
    if lib.lw_notif_pair(fds) < 0:
        raise _oserror()
    return fds[0], fds[1]


def set_subreaper() -> None:
    if lib.lw_set_subreaper() < 0:
        raise _oserror()


def recv_fd(sock: int) -> int:
    fd = lib.lw_recv_fd(sock)
    if fd < 0:
        raise _oserror()
    return fd


def notif_answer(listener: int) -> None:
    """Receive and answer one seccomp user notification (blocks)."""
    if lib.lw_notif_answer(listener) < 0:
        raise _oserror()


# Threads (csrc/threads.c) ------------------------------------------------

MAX_THREADS = lib.LW_MAX_THREADS
T_SENT = lib.LW_T_SENT
T_BUSY = lib.LW_T_BUSY
T_DONE = lib.LW_T_DONE
T_GONE = lib.LW_T_GONE
T_LOST = lib.LW_T_LOST


def signal_is_free(sig: int) -> bool:
    """True when signal *sig* has neither a handler nor SIG_IGN (checked
    with sigaction, so handlers installed from C count too)."""
    r = lib.lw_signal_is_free(sig)
    if r < 0:
        raise _oserror()
    return bool(r)


def restrict_threads(ruleset_fd: int, flags: int, sig: int, task_fd: int,
                     status_fd: int, timeout_ms: int
                     ) -> tuple[int, list[tuple[int, int, int]], int]:
    """Restrict every other thread through signal *sig*: ``(outcome,
    [(tid, state, errno), ...], escapes)`` where *outcome* is 0 when every
    thread of the process was accounted for, else an errno (ETIMEDOUT,
    ENOSPC...), and *escapes* counts the stalls broken by letting the held
    threads go.  Raises OSError when no round could start (EBUSY: the
    signal is in use)."""
    out = ffi.new("struct lw_thread[]", MAX_THREADS)
    outcome = ffi.new("int *")
    escapes = ffi.new("int *")
    n = lib.lw_restrict_threads(ruleset_fd, flags, sig, task_fd, status_fd,
                                timeout_ms, out, MAX_THREADS, outcome, escapes)
    if n < 0:
        raise _oserror()
    return outcome[0], [(out[i].tid, out[i].state, out[i].err)
                        for i in range(min(n, MAX_THREADS))], escapes[0]


def thread_masks(task_fd: int) -> list[tuple[int, str, int, bool]]:
    """``[(tid, name, blocked_mask, readable), ...]`` for every thread,
    read in one call through *task_fd* (/proc/self/task)."""
    cap = 256
    while True:
        out = ffi.new("struct lw_thread_mask[]", cap)
        n = lib.lw_thread_masks(task_fd, out, cap)
        if n < 0:
            raise _oserror()
        if n < cap or cap >= MAX_THREADS:
            break
        cap = min(cap * 8, MAX_THREADS)
    return [(out[i].tid, ffi.string(out[i].name).decode(errors="replace"),
             out[i].blocked, bool(out[i].readable)) for i in range(n)]

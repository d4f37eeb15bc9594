"""api.py: landwrap as a Python library (``import landwrap``).

- :func:`restrict` sandboxes the calling process -- every thread of it --
  irreversibly.
- :func:`run` and :class:`Popen` start a program in a sandbox, with the
  arguments of :mod:`subprocess`; only the child is sandboxed.
- :func:`abi` and :func:`status` say what the kernel supports.

Why :class:`Popen` subclasses :class:`subprocess.Popen` and overrides its
private ``_execute_child``: everything around starting the child -- pipes
and text wrappers, ``communicate()`` with timeouts and partial output,
``wait``/``poll`` and their locking against concurrent waiters, signals,
the context manager, zombie reaping -- is then CPython's own code, so it
behaves exactly like ``subprocess`` (a re-implementation would drift).  Only
the start of the child is replaced, by landwrap's C fork/restrict/exec
(``spawn.start``; never ``preexec_fn``).  The hook's contract is narrow and
has been stable since Python 3.9: it receives the child's ends of the pipes
positionally (3.11 appended ``process_group``), must set ``pid`` and
``_child_created``, close the child's pipe ends and set
``_closed_child_pipe_fds``, or raise (``__init__`` then closes everything).
Unknown extra arguments from a future Python are refused rather than
ignored, and tests/system/test_api.py checks the signature.

Never imported by `landwrap run` (start-up time); imports only what the
library needs.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from subprocess import (DEVNULL, PIPE, STDOUT, CalledProcessError,
                        CompletedProcess, SubprocessError, TimeoutExpired)
from typing import (IO, Any, AnyStr, Callable, Iterable, Literal, Mapping, Optional,
                    Sequence, TypedDict, TypeVar, Union, overload)

from .engine import _binding, compat as _compat, companion as _companion, spawn, threads
from .profiles import lookup as _lookup, profile as _profile, validate as _validate
from .engine.errors import (CommandNotFound, EnforcementError, LandwrapError, SandboxWarning,
                            SpawnError, UsageError)
from .engine.launcher import MAX_FD, MAX_ID, build_env
from .engine.plan import NOT_ENFORCED, Plan
from .engine.ruleset import STRICT, Ruleset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing_extensions import Unpack

StrPath = Union[str, "os.PathLike[str]"]
Paths = Union[StrPath, Iterable[StrPath]]
Ports = Union[int, str, Iterable[Union[int, str]]]
ProfileSpec = Union[None, bool, StrPath, Sequence[StrPath]]
#: ``compat=``: refuse what the kernel lacks, or enforce what it has.
Compat = Literal["strict", "best-effort"]
#: :attr:`Enforcement.status`.
Status = Literal["fully", "partially", "not"]
ScopeName = Literal["abstract_unix_socket", "signal"]
Scope = Union[bool, Iterable[ScopeName], None]
Cmd = Union[StrPath, bytes, Sequence[Union[StrPath, bytes]]]
File = Union[None, int, IO[Any]]
Env = Optional[Mapping[str, str]]

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["restrict", "run", "call", "check_call", "check_output", "Popen", "abi",
           "status", "Enforcement", "Ruleset", "Plan", "build_ruleset", "enforce",
           "python_paths",
           # subprocess's, re-exported as landwrap.PIPE etc.
           "PIPE", "DEVNULL", "STDOUT", "CompletedProcess", "CalledProcessError",
           "TimeoutExpired", "SubprocessError"]


def _api(fn: _F) -> _F:
    """Word the hints of the errors *fn* raises for Python callers
    (``compat='best-effort'``, not ``--best-effort``)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LandwrapError as e:
            e.for_caller("api")
            raise
    return wrapper  # type: ignore[return-value]


# what was enforced ---------------------------------------------------------

class Enforcement:
    """What :func:`restrict` enforced.

    ``status`` is ``"fully"`` (everything asked for), ``"partially"``
    (best-effort mode dropped something this kernel cannot enforce; see
    ``dropped``) or ``"not"`` (nothing: best-effort on a kernel without
    Landlock, or nothing was restricted).  ``unenforceable`` lists the
    implicit restrictions this kernel lacks (UDP below ABI 10, say): they
    were not asked for, so they do not make the status ``"partially"``.  ``abi`` is the Landlock ABI
    used, ``kernel_abi`` the kernel's (None without Landlock).
    ``threads`` is the number of threads restricted, ``method`` how they
    were reached (``"tsync"``: by the kernel, ``"signal"``: each thread
    restricted itself, ``None``: nothing enforced).  ``plan`` is the
    :class:`Plan` (rules, ports, scopes) as given to the kernel.
    A false ``Enforcement`` is one that enforced nothing.
    """

    __slots__ = ("status", "abi", "kernel_abi", "dropped", "unenforceable", "threads",
                 "method", "plan")

    status: Status
    method: Literal["tsync", "signal"] | None

    def __init__(self, plan: Plan, result: threads.ThreadsResult | None):
        self.plan = plan
        self.status = plan.status if result is not None else NOT_ENFORCED
        self.abi = plan.abi
        self.kernel_abi = plan.kernel_abi if plan.kernel_abi >= 0 else None
        self.dropped = list(plan.dropped)
        self.unenforceable = list(plan.unenforceable)
        self.threads = result.threads if result is not None else 0
        self.method = result.method if result is not None else None

    def __bool__(self) -> bool:
        return self.status != NOT_ENFORCED

    def __repr__(self) -> str:
        return (f"Enforcement(status={self.status!r}, abi={self.abi}, "
                f"threads={self.threads}, method={self.method!r}, dropped={self.dropped!r})")


# building a ruleset from arguments -------------------------------------------

def _many(value: Any, single: type | tuple[type, ...]) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, single):
        return (value,)
    return tuple(value)


def build_ruleset(profile: ProfileSpec = None, *, ro: Paths = (), rox: Paths = (),
                  rw: Paths = (), rwx: Paths = (), bind_tcp: Ports = (),
                  connect_tcp: Ports = (), bind_udp: Ports = (), connect_udp: Ports = (),
                  scope: Scope = None, compat: Compat | None = None,
                  abi: int | None = None,
                  command: str | None = None) -> tuple[Ruleset, _validate.Profile]:
    """``(Ruleset, Profile)`` from the arguments :func:`restrict` and
    :func:`run` take.

    *profile*: ``None`` for the profile `landwrap run` would use (the one
    named after *command*, else ``default``), ``False`` to start from an
    empty sandbox, a profile name or file, or a list of them (later ones
    add to earlier).  Path and port arguments take one item or a list.
    UDP rules (*bind_udp*, *connect_udp*: connect and send) need Landlock
    ABI 10 (Linux 7.2); below it they are dropped with a warning (UDP stays
    open, as without them) unless ``compat="strict"`` is given explicitly."""
    if profile is False:
        prof = _validate.Profile()
    elif profile is None:
        prof = _profile.for_command((), command)
    elif profile is True:
        raise UsageError("profile=True: give a profile name or path, None or False")
    else:
        specs = _many(profile, (str, bytes, os.PathLike))
        prof = _profile.load([os.fsdecode(os.fspath(s)) for s in specs])
    rs = prof.ruleset
    for access, paths in (("ro", ro), ("rox", rox), ("rw", rw), ("rwx", rwx)):
        for p in _many(paths, (str, bytes, os.PathLike)):
            rs.allow(p, access, origin=f"{access}={os.fsdecode(os.fspath(p))}")
    for arg, ports in (("bind_tcp", bind_tcp), ("connect_tcp", connect_tcp),
                       ("bind_udp", bind_udp), ("connect_udp", connect_udp)):
        for spec in _many(ports, (int, str)):
            rs.allow_port(spec, _validate.NET_RIGHT[arg], origin=f"{arg}={spec}",
                          required=arg.endswith("_tcp") or compat == STRICT)
    if scope is not None:
        if scope is False:
            rs.scopes = 0
            rs.need["scoped"] = 0
        else:
            if scope is True:
                bits = _compat.SCOPE_ALL
            else:
                names = _many(scope, str)
                unknown = [n for n in names if n not in _compat.SCOPES]
                if unknown:
                    raise UsageError(f"unknown scope {unknown[0]!r}",
                                     "known scopes: " + ", ".join(_compat.SCOPES))
                bits = _compat.bits(_compat.SCOPES, names)
            rs.scopes = bits
            rs.need["scoped"] = bits
    if compat is not None:
        if compat not in _compat.MODES:
            raise UsageError(f"unknown compat mode {compat!r} "
                             "(expected 'strict' or 'best-effort')")
        rs.compat = compat
    if abi is not None:
        rs.abi = abi
    return rs, prof


def _ready(plan: Plan) -> Plan:
    """*plan* with its kernel ruleset built (once, even when several threads
    ask at the same moment: ruleset_fd() builds under the plan's lock)."""
    if plan._fd < 0 and plan.enforces_anything:
        plan.ruleset_fd()
    return plan


def _plan_of(ruleset: object) -> Plan:
    if isinstance(ruleset, Plan):
        return ruleset
    if isinstance(ruleset, Ruleset):
        return ruleset.plan()
    raise TypeError(f"ruleset must be a landwrap.Ruleset or Plan, not {type(ruleset).__name__}")


# restricting this process ------------------------------------------------------

@_api
def restrict(profile: ProfileSpec = None, *, ro: Paths = (), rox: Paths = (),
             rw: Paths = (), rwx: Paths = (), bind_tcp: Ports = (),
             connect_tcp: Ports = (), bind_udp: Ports = (), connect_udp: Ports = (),
             scope: Scope = None, compat: Compat | None = None, abi: int | None = None,
             python: bool = True, multiprocessing: bool = False,
             strict_children: bool = False) -> Enforcement:
    """Sandbox the calling process, every thread of it, for the rest of its life.

    The sandbox is *profile* (``None``: the ``default`` profile, which lets
    the process read and execute the system -- /usr, /etc... -- and nothing
    else; ``False``: nothing at all) plus read (*ro*), read+execute (*rox*),
    read+write (*rw*), read+write+execute (*rwx*) access beneath the given
    paths and the TCP ports given to *bind_tcp*/*connect_tcp* (a port or
    ``"LOW-HIGH"``), and the UDP ports of *bind_udp*/*connect_udp* (ABI 10;
    see :func:`build_ruleset`).  *scope* (``True``/``False`` or scope names)
    decides whether signals and abstract unix sockets may reach outside the
    sandbox.  *compat* ``"best-effort"`` lets a kernel that lacks something
    asked for enforce the rest; the default (strict, unless the profile says
    otherwise) raises :class:`UnsupportedFeature` instead.  *abi* caps the
    Landlock ABI used, as on an older kernel.

    *python* (on by default) keeps this interpreter working: read and
    execute access to exactly what :func:`python_paths` lists -- the real
    executable (symlinks resolved), ``sys.prefix``, ``sys.base_prefix``,
    ``sys.exec_prefix``, ``sys.base_exec_prefix``, the absolute
    ``sys.path`` entries that exist (not ``""``, the current directory),
    landwrap's own package directory and its shipped profiles -- so that
    lazy imports, the standard library and running ``sys.executable`` keep
    working.  Nothing there is writable.  ``python=False`` grants none of it.  Mind that the directory
    of the script you ran is ``sys.path[0]``: it becomes readable, so keep
    secrets out of it (or pass ``python=False`` and list what you need).
    A ``sys.path`` entry that is ``/``, your home directory or one above
    it is left out (a script in ``~`` would otherwise open all of ``~``):
    allow what you need of it with *ro*.

    *multiprocessing* allows what the ``fork``, ``forkserver`` and
    ``spawn`` start methods need: read+write on ``/dev/shm`` (semaphores and
    shared memory), a private temporary directory created now in
    ``/dev/shm`` (``landwrap-mp-*``, mode 0700, removed at exit) that
    becomes ``tempfile.tempdir`` and ``$TMPDIR`` (the forkserver's socket,
    ``tempfile`` files of the program), and the interpreter as for
    *python*.  The pool's workers are children, so they are sandboxed too.
    A forkserver already running is stopped (it is outside the sandbox,
    and so would be every worker it forks); the next pool starts a new
    one inside.

    Children started *before* this call are outside the sandbox: with the
    signal scope on (the default) this process can no longer signal them
    (``Pool.terminate()``, ``Popen.kill()`` fail with EPERM).  ``restrict``
    therefore warns (:class:`SandboxWarning`) naming the live child
    processes; with *strict_children* it raises :class:`EnforcementError`
    (``children``: ``[(pid, name)]``) before restricting anything.  Start
    pools after ``restrict``, or pass ``scope=["abstract_unix_socket"]``
    to keep signals open.  A child that another thread starts while
    ``restrict`` runs, before that thread is restricted, is outside too:
    it is named afterwards the same way (with *strict_children*, the
    error's ``restricted`` is True: this process is sandboxed).

    What the kernel does, and what to expect:

    - It cannot be undone.  Calling ``restrict`` again adds a layer: access
      must then be allowed by every layer.  Landlock allows 16 layers per
      thread; past that :class:`EnforcementError` (E2BIG).
    - ``no_new_privs`` is set: programs this process executes gain no
      privileges from setuid/setgid bits or file capabilities.
    - Every thread is restricted, including threads started by libraries,
      before this returns.  With Landlock ABI 8 (Linux 7.0) the kernel does
      it in one step (TSYNC).  On older kernels each thread restricts itself
      from a handler of a borrowed real-time signal (the highest free one
      from SIGRTMAX-3 down); a thread that keeps signals blocked (some C
      libraries' worker threads do), is stopped or traced, or never
      answers within 5 s makes ``restrict`` raise
      :class:`EnforcementError` naming it.  Such an error says whether
      nothing was restricted or the process is now partly sandboxed (then
      exit rather than go on).  Threads blocked in system calls get the
      signal too; their calls resume (SA_RESTART) or fail with EINTR, which
      Python retries.  Each such thread enters its own copy of the sandbox
      (a sibling domain): with the signal and abstract-socket scopes on,
      a thread running before this call cannot signal the children of
      another such thread, nor connect to its abstract unix sockets
      (EPERM).  Threads started afterwards share their creator's domain.
    - Children started from now on inherit the sandbox; processes already
      running do not.
    - Files and sockets already open keep the access they were opened with.
      Opening anything new needs access (Python's own files: see *python*).
    - Rules bind to the files that exist now: a path that does not exist
      cannot be allowed (:class:`PathError`); a file deleted and recreated
      later loses its rule.

    Returns an :class:`Enforcement`; raises :class:`LandlockUnavailable`
    (strict mode on a kernel without Landlock), :class:`UnsupportedFeature`,
    :class:`PathError`, :class:`ProfileError`, :class:`EnforcementError`.
    """
    rs, _ = build_ruleset(profile if profile is not None else "default", ro=ro,
                          rox=rox, rw=rw, rwx=rwx, bind_tcp=bind_tcp,
                          connect_tcp=connect_tcp, bind_udp=bind_udp,
                          connect_udp=connect_udp, scope=scope, compat=compat, abi=abi)
    if python or multiprocessing:
        rs.allow_paths(python_paths(), "rox", origin="python=True", required=False)
    tmp = None
    if multiprocessing:
        tmp = _multiprocessing_dirs(rs)
        _stop_forkserver()
    try:
        enforcement = enforce(rs.resolve(), strict_children=strict_children)
    except BaseException:
        if tmp is not None:
            os.rmdir(tmp)
        raise
    if tmp is not None:
        _use_tmpdir(tmp)
    return enforcement


def python_paths() -> list[str]:
    """What the running interpreter needs to keep working (read and
    execute): its real executable, its prefixes, the absolute ``sys.path``
    entries that exist, landwrap's own package directory and its shipped
    profiles."""
    out: list[str] = []
    prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    home = os.path.realpath(os.path.expanduser("~"))
    for p in sys.path:  # a script in $HOME (or /) must not open all of it
        if isinstance(p, str) and p.startswith("/") and not _covers(p, home):
            prefixes.append(p)
    candidates = [os.path.realpath(sys.executable) if sys.executable else "", *prefixes,
                  os.path.dirname(os.path.abspath(__file__)), _lookup.PACKAGE_PROFILES]
    for p in candidates:
        if p.startswith("/") and p not in out and os.path.exists(p):
            out.append(p)
    return out


def _covers(directory: str, path: str) -> bool:
    """Whether *path* is *directory* or beneath it (symlinks resolved)."""
    d = os.path.realpath(directory)
    return d == "/" or path == d or path.startswith(d + "/")


def _multiprocessing_dirs(rs: Ruleset) -> str:
    """Allow /dev/shm and a new private temporary directory in it (returned)."""
    import tempfile

    rs.allow("/dev/shm", "rw", origin="multiprocessing=True")
    tmp = tempfile.mkdtemp(prefix="landwrap-mp-", dir="/dev/shm")
    # multiprocessing may already have made its temporary directory
    # (a forkserver or manager started before): keep it usable.
    from multiprocessing import process as _mpp

    old = _mpp.current_process()._config.get("tempdir")  # type: ignore[attr-defined]
    if old and os.path.isdir(old):
        rs.allow(old, "rw", origin="multiprocessing=True")
    return tmp


def _stop_forkserver() -> None:
    """Stop multiprocessing's forkserver if one runs: started before
    restrict(), it is outside the sandbox, and so would be every worker it
    forks afterwards.  The next pool starts a new one, inside."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    if getattr(server, "_forkserver_pid", None) is not None:
        try:
            getattr(server, "_stop")()
        except OSError:  # a fork's copy of its parent's forkserver: not ours to stop
            pass


def _use_tmpdir(tmp: str) -> None:
    import atexit
    import tempfile

    tempfile.tempdir = tmp
    os.environ["TMPDIR"] = tmp
    atexit.register(_remove_tmpdir, tmp, os.getpid())


def _remove_tmpdir(tmp: str, owner: int) -> None:
    """At exit, remove the private temporary directory *tmp* (inside the
    sandbox, so nothing it could not remove anyway; shutil.rmtree works
    through directory descriptors and never follows a symlink).  Only in
    the process that made it: a fork inherits the atexit handler, and its
    exit must not take the directory from its parent."""
    if os.getpid() != owner:
        return
    import shutil

    try:
        shutil.rmtree(tmp, ignore_errors=True)
    except RecursionError:  # the program left a tree deeper than the recursion limit
        pass
    if os.path.lexists(tmp):
        sys.stderr.write(f"landwrap: could not remove the private temporary directory {tmp}\n")


def live_children() -> list[tuple[int, str]]:
    """``[(pid, name)]`` of this process's child processes that are still
    running (zombies left out); empty when /proc cannot be read (an
    earlier sandbox denies it)."""
    me = os.getpid()
    pids: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{me}/task"):
            with open(f"/proc/{me}/task/{tid}/children") as f:
                pids.update(int(p) for p in f.read().split())
    except OSError:  # no CONFIG_PROC_CHILDREN: scan every process
        pids.clear()
        try:
            names = os.listdir("/proc")
        except OSError:
            return []
        for name in names:
            if name.isdigit() and _stat_fields(int(name))[1:2] == [str(me)]:
                pids.add(int(name))
    out = []
    for pid in sorted(pids):
        fields = _stat_fields(pid)
        if fields and fields[0] not in ("Z", "X"):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                comm = "?"
            out.append((pid, comm))
    return out


def _stat_fields(pid: int) -> list[str]:
    """State, ppid, ... of /proc/PID/stat (after the command name)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return []
    return data[data.rfind(b")") + 2:].decode().split()


def _check_children(plan: Plan, strict: bool) -> set[int] | None:
    """Warn about (or, *strict*, refuse) live children; their pids, or
    None when the signal scope is off (children are not checked)."""
    if not plan.scoped & _compat.SCOPES["signal"][0]:
        return None
    kids = live_children()
    if not kids:
        return set()
    who = ", ".join(f"{pid} ({name})" for pid, name in kids[:8])
    if len(kids) > 8:
        who += f" and {len(kids) - 8} more"
    what = (f"this process has child processes started before restrict(): {who}; "
            "they are outside the sandbox (what they do for this process, as a "
            "multiprocessing manager does, is not sandboxed), and with the signal "
            "scope on it cannot signal them afterwards")
    fix = ("start them after restrict(), stop them first, or pass "
           "scope=['abstract_unix_socket'] to leave signals open")
    if strict:
        raise EnforcementError(cause=what, hint=fix, children=kids)
    import warnings

    warnings.warn(f"{what} ({fix})", SandboxWarning, stacklevel=_caller_level())
    return {pid for pid, _ in kids}


def _no_new_privs(pid: int | str) -> int | None:
    """The NoNewPrivs flag of process *pid* (or "self"); None when unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"NoNewPrivs:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_late_children(before: set[int], strict: bool) -> None:
    """After every thread is restricted: children started *while* restrict()
    ran, by a thread not restricted yet, are outside the sandbox and were
    not in the check before.  Each thread sets no_new_privs as it
    restricts itself, so a new child without it was forked unrestricted
    (called only when this process had no_new_privs off before)."""
    late = [(pid, name) for pid, name in live_children()
            if pid not in before and _no_new_privs(pid) == 0]
    if not late:
        return
    who = ", ".join(f"{pid} ({name})" for pid, name in late[:8])
    if len(late) > 8:
        who += f" and {len(late) - 8} more"
    what = (f"child processes started by another thread while restrict() ran are "
            f"outside the sandbox: {who}")
    fix = "start child processes only after restrict() has returned"
    if strict:
        raise EnforcementError(
            f"{what}; every thread of this process is restricted", fix,
            restricted=True, children=late)
    import warnings

    warnings.warn(f"{what} ({fix})", SandboxWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The warnings stacklevel of the first frame outside landwrap."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(
            frame.f_code.co_filename).startswith(here + os.sep):
        frame, level = frame.f_back, level + 1
    return level


@_api
def enforce(plan: Plan, *, strict_children: bool = False) -> Enforcement:
    """Enforce a resolved *plan* on every thread of this process (the
    engine of :func:`restrict` and :meth:`Ruleset.restrict`), with the
    seccomp companion filter (see ``landwrap.companion``) installed on
    every thread at once (SECCOMP_FILTER_FLAG_TSYNC).  In-process, the
    filter lets resource-limit and scheduling calls through only for id 0
    and this process's pid: other threads of the process cannot aim at
    themselves by tid.  Capabilities are left alone.  Children started
    before are named as :func:`restrict` says."""
    if not plan.enforces_anything:
        return Enforcement(plan, None)
    comp = _companion.for_plan(plan)   # strict: raises before anything is done
    before = _check_children(plan, strict_children)
    if before is not None and _no_new_privs("self") != 0:
        before = None  # children cannot be told apart by no_new_privs
    fd = _ready(plan).ruleset_fd()
    result = threads.restrict_process(fd, plan.flags, plan.abi)
    if comp.filter:
        try:
            _binding.seccomp_install(comp.parts(), os.getpid(), True)
        except OSError as e:
            raise EnforcementError(
                "the Landlock sandbox is enforced but the seccomp companion filter "
                f"could not be installed: {e.strerror}"
                + (f" (thread {e.filename})" if e.filename else "")
                + "; the process is partly sandboxed and should exit",
                restricted=True) from None
    if before is not None:
        _check_late_children(before, strict_children)
    return Enforcement(plan, result)


def _from_profile(cls: type[Ruleset], *profiles: str | os.PathLike[str]) -> Ruleset:
    """The sandbox of one or more profiles: names on the profile path
    or files, later ones adding to earlier (as ``landwrap run -p``).
    Raises ProfileError.  A profile's ``[env]`` table is not part of a
    Ruleset (``landwrap.run(profile=...)`` applies it)."""
    if not profiles:
        raise UsageError("from_profile: give at least one profile name or path")
    return _profile.load([os.fsdecode(os.fspath(p)) for p in profiles]).ruleset


def _restrict(self: Ruleset, *, compat: str | None = None,
              abi: int | None = None) -> Enforcement:
    """Enforce this sandbox on every thread of the calling process,
    irreversibly; returns a ``landwrap.Enforcement``.  See
    ``landwrap.restrict`` for what the kernel does."""
    if compat is None and abi is None:
        return enforce(self.plan())
    return enforce(self.resolve(compat_mode=compat, abi=abi))


# Ruleset's methods that need profiles and enforcement, the layers above the
# engine's model: attached here, where ``landwrap.Ruleset`` is taken from.
_from_profile.__name__ = _from_profile.__qualname__ = "from_profile"
_restrict.__name__ = _restrict.__qualname__ = "restrict"
setattr(Ruleset, "from_profile", classmethod(_from_profile))
setattr(Ruleset, "restrict", _restrict)


# the kernel ----------------------------------------------------------------

def abi() -> int:
    """The Landlock ABI version of the running kernel (1 for Linux 5.13 ...
    7 for 6.15, 8 for 7.0), or 0 when the kernel has no Landlock or it is
    disabled at boot (:func:`status` says which)."""
    v = _binding.kernel_abi()
    return v if v > 0 else 0


class Feature(TypedDict):
    """One feature in :func:`status`."""
    name: str
    description: str
    abi: int
    kernel: str
    supported: bool


class SecurityRow(TypedDict):
    """One operation of the security model in :func:`status`: the
    mechanism that stops it here (``covered`` False where nothing does)."""
    operation: str
    mechanism: Optional[str]
    abi: Optional[int]
    covered: bool
    by: str


class _StatusBase(TypedDict):
    kernel: str
    landlock: str
    kernel_abi: Optional[int]
    landwrap_latest_abi: int
    abi: int
    features: list[Feature]
    default: dict[str, Any]
    #: the security model for this kernel (``landwrap status`` prints it)
    security: list[SecurityRow]
    #: the active LSM stack, None when securityfs cannot be read
    lsm: Optional[list[str]]


class KernelStatus(_StatusBase, total=False):
    """What :func:`status` returns (``error`` and ``hint`` only when
    Landlock is unavailable)."""
    error: str
    hint: Optional[str]


def status(abi: int | None = None) -> KernelStatus:
    """What this kernel offers: its release, ``landlock`` (``"enabled"``,
    ``"ENOSYS"``: not built in, ``"EOPNOTSUPP"``: disabled at boot),
    ``kernel_abi``, every ``feature`` with the ABI and Linux release that
    adds it and whether it is supported here, and how the ``default``
    profile would be enforced.  *abi* caps the ABI, as on an older kernel."""
    from .profiles.default import status as _status  # lazy: resolves the default profile

    return _status(abi)  # type: ignore[return-value]


# spawning ------------------------------------------------------------------

_OS_ERRORS: dict[type, type[SpawnError]] = {}


def _as_oserror(e: SpawnError, filename: Any) -> SpawnError:
    """*e* as an exception that is also the OSError subclass its errno maps
    to (FileNotFoundError for ENOENT...), as subprocess raises."""
    base = type(OSError(e.errno, ""))
    cls = _OS_ERRORS.get(base)
    if cls is None:
        cls = type(f"Spawn{base.__name__}", (SpawnError, base),
                   {"__module__": __name__,
                    "__doc__": f"A child failed before its program started ({base.__name__})."})
        _OS_ERRORS[base] = cls
    new = cls(e.message, e.stage, e.errno or 0, e.hint, exit_code=e.exit_code)
    new.strerror = os.strerror(e.errno or 0)  # type: ignore[attr-defined]
    new.filename = filename  # type: ignore[attr-defined]
    return new


def _locate(program: Any, env: Any, cwd: Any) -> str:
    """The file to execute, found as subprocess finds it: a name without
    ``/`` on the PATH of *env* (or of this process), a relative path
    relative to *cwd*."""
    prog = os.fsdecode(os.fspath(program))
    if "/" in prog:
        # Not stat'ed here (subprocess does not either): a missing file is
        # the child's ENOENT at execve, raised as CommandNotFound by
        # spawn.child_error, which also names a missing #! interpreter.
        if cwd is not None and not prog.startswith("/"):
            # absolute: the child changes to a relative *cwd* before execve
            return os.path.abspath(os.path.join(os.fsdecode(os.fspath(cwd)), prog))
        return prog
    found = spawn.find_program(prog, os.pathsep.join(os.get_exec_path(env)))
    return os.path.abspath(found) if cwd is not None else found


_LISTS = ("ro", "rox", "rw", "rwx", "bind_tcp", "connect_tcp", "bind_udp", "connect_udp")
#: Popen's sandbox arguments as given when none is (compared as a whole:
#: one dict comparison per spawn instead of a test per argument).
_NO_ALLOW: dict[str, Any] = dict.fromkeys(_LISTS, ())
_NO_ALLOW.update(scope=None, compat=None, abi=None)


def _is_running_python(command: Any, env: Any, cwd: Any) -> bool:
    """Whether *command* is the interpreter running this code."""
    if not sys.executable or command is None:
        return False
    try:
        found = _locate(command, env, cwd)
    except (LandwrapError, OSError, ValueError, TypeError):
        return False
    return os.path.realpath(found) == os.path.realpath(sys.executable)


def _sandbox_for(args: Any, executable: Any, shell: bool, env: Any, cwd: Any,
                 profile: ProfileSpec, ruleset: Ruleset | Plan | None,
                 allow: dict[str, Any], python: bool | None) -> tuple[Plan | None, Any]:
    """``(plan, env)`` for a child: *ruleset* (a Ruleset or Plan), or the
    one built from *profile* and *allow*, whose [env] table is applied,
    with :func:`python_paths` added when *python* says so (None: when
    the program is the running interpreter)."""
    if ruleset is not None:
        given = [] if allow == _NO_ALLOW else [k for k, v in allow.items()
                  if (_many(v, (str, bytes, os.PathLike, int)) if k in _LISTS else v is not None)]
        if profile is not None or given or python:
            raise UsageError("give either ruleset= or profile=/ro=/rw=/... arguments, not both")
        if isinstance(ruleset, Ruleset):
            return None, env  # its plan is taken (and checked) at spawn time
        return _ready(_plan_of(ruleset)), env
    command = executable
    if command is None:
        if shell:
            command = "/bin/sh"
        elif isinstance(args, (str, bytes, os.PathLike)):
            command = args
        else:
            command = args[0] if args else None
    if command is not None and profile is None:
        # The profile named after the command is for the program that will
        # run: the one found on *env*'s PATH or relative to *cwd*, as the
        # spawn finds it (not on this process's PATH: another file there
        # would get that profile).  Not found: the spawn says so.
        try:
            command = _locate(command, env, cwd)
        except (LandwrapError, OSError, ValueError, TypeError):
            pass
    rs, prof = build_ruleset(profile, command=os.fsdecode(os.fspath(command))
                             if command is not None else None, **allow)
    if python or (python is None and not shell and _is_running_python(command, env, cwd)):
        rs.allow_paths(python_paths(), "rox", origin="python=True", required=False)
    plan = _ready(rs.resolve())
    if prof.env_clean or prof.env_settings():
        env = build_env(prof.env_clean, prof.env_settings(),
                        base=env if env is not None else os.environ)
    return plan, env


class _SandboxOptions(TypedDict, total=False):
    profile: ProfileSpec
    ruleset: Union[Ruleset, Plan, None]
    ro: Paths
    rox: Paths
    rw: Paths
    rwx: Paths
    bind_tcp: Ports
    connect_tcp: Ports
    bind_udp: Ports
    connect_udp: Ports
    scope: Scope
    compat: Optional[Compat]
    abi: Optional[int]
    python: Optional[bool]
    die_with_parent: bool


class _PopenOptions(_SandboxOptions, total=False):
    """:class:`Popen`'s keyword arguments other than the text switches."""
    bufsize: int
    executable: Optional[StrPath]
    stdin: File
    stdout: File
    stderr: File
    close_fds: bool
    shell: bool
    cwd: Optional[StrPath]
    env: Env
    startupinfo: Any
    creationflags: int
    restore_signals: bool
    start_new_session: bool
    pass_fds: Sequence[int]
    user: Union[str, int, None]
    group: Union[str, int, None]
    extra_groups: Optional[Sequence[Union[str, int]]]
    umask: int
    pipesize: int
    process_group: Optional[int]


class _CallOptions(_PopenOptions, total=False):
    """:func:`call`/:func:`check_call`: everything, text switches included."""
    timeout: Optional[float]
    text: Optional[bool]
    encoding: Optional[str]
    errors: Optional[str]
    universal_newlines: Optional[bool]


def _no_nul(what: str, value: Any) -> None:
    """ValueError, as subprocess raises, for a NUL byte in an argument."""
    if value is None:
        return
    v = os.fspath(value)
    if ("\0" if isinstance(v, str) else b"\0") in v:
        raise ValueError(f"embedded null byte in {what}")


#: The spawn flags of Popen's (close_fds, restore_signals, start_new_session).
_POPEN_FLAGS = {(c, r, n): ((_binding.F_CLOSE_FDS if c else 0)
                            | (_binding.F_RESTORE_SIGPIPE if r else 0)
                            | (_binding.F_NEW_SESSION if n else 0))
                for c in (False, True) for r in (False, True) for n in (False, True)}


def _companion_of(plan: Plan) -> Any:
    """The companion for spawns in *plan* (decided once per plan and user)."""
    key = os.geteuid()
    cached = plan._companion
    if cached is None or cached[0] != key:
        cached = plan._companion = (key, _companion.for_plan(plan, euid=key))
    return cached[1]


def _start(sandbox: Ruleset | Plan, args: Any, executable: Any, shell: bool, cwd: Any,
           env: Any, stdio: tuple[int, int, int], pass_fds: Any, flags: int,
           uid: int | None, gid: int | None) -> tuple[int, Plan]:
    """Start *args* as :class:`Popen` and :func:`run` do: ``(pid, plan)``.

    *sandbox* is a Plan, or a Ruleset whose plan is taken now (rebuilt if
    an allowed directory was replaced).  *stdio* are the child's standard
    streams (-1: inherited); *flags* the spawn flags but the uid/gid ones."""
    if isinstance(args, (str, bytes)):
        args = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            raise TypeError("path-like args is not allowed when shell is true")
        args = [args]
    else:
        args = list(args)
    if shell:
        args = ["/bin/sh", "-c"] + args
        if executable:
            args[0] = executable
    if executable is None:
        executable = args[0]
    # Encoded once here (spawn.start takes bytes as they are), and checked
    # for NUL bytes as subprocess does.
    bargs = [a if type(a) is bytes else os.fsencode(a) for a in args]
    if b"\0" in b"".join(bargs):
        for a in args:
            _no_nul("args", a)
    _no_nul("executable", executable)
    _no_nul("cwd", cwd)
    sys.audit("subprocess.Popen", executable, args, cwd, env)

    if uid is not None:
        flags |= _binding.F_SET_UID
        if not 0 <= uid <= MAX_ID:
            raise ValueError(f"user id {uid} is out of range (0-{MAX_ID})")
    if gid is not None:
        flags |= _binding.F_SET_GID
        if not 0 <= gid <= MAX_ID:
            raise ValueError(f"group id {gid} is out of range (0-{MAX_ID})")
    keep: list[int] = []
    if pass_fds:
        keep = sorted({int(fd) for fd in pass_fds})
        bad = [fd for fd in keep if not 0 <= fd <= MAX_FD]
        if bad:
            raise ValueError(f"pass_fds: {bad[0]} is not a file descriptor number")
    path = _locate(executable, env, cwd)
    plan = _ready(sandbox.plan()) if isinstance(sandbox, Ruleset) else sandbox
    try:
        pid = spawn.start(plan, path, bargs, env, cwd=cwd, stdio=stdio, keep_fds=keep,
                          flags=flags, uid=uid or 0, gid=gid or 0,
                          companion=_companion_of(plan))
    except CommandNotFound as e:
        e.filename = os.fsdecode(os.fspath(executable))
        raise
    except SpawnError as e:
        chdir = e.stage == _binding.STAGES[_binding.STAGE_CHDIR]
        raise _as_oserror(e, cwd if chdir else executable) from e
    return pid, plan


class Popen(subprocess.Popen[AnyStr]):
    """:class:`subprocess.Popen` whose child runs in a Landlock sandbox.

    Takes every argument of :class:`subprocess.Popen` (stdin/stdout/stderr,
    cwd, env, pass_fds, text/encoding/errors, start_new_session, user,
    group...) and behaves the same: ``communicate``, ``wait``, ``poll``,
    ``kill``, the context manager, ``pid``, ``returncode`` are CPython's.
    Like typeshed's, it is generic: ``Popen[str]`` with ``text=True`` (or
    *encoding*, *errors*, *universal_newlines*), else ``Popen[bytes]``.
    The sandbox is *ruleset* (a :class:`Ruleset` or :class:`Plan`; build it
    once and pass it to many spawns: the kernel ruleset is reused) or the
    one made of *profile* and *ro*/*rox*/*rw*/*rwx*/*bind_tcp*/
    *connect_tcp*/*bind_udp*/*connect_udp*/*scope*/*compat*/*abi* as in
    :func:`restrict` (``profile=None``: the profile `landwrap run` would
    pick for the program).  A profile's ``[env]`` table is applied to *env*.
    *python*: ``None`` (the default) adds :func:`python_paths` (read and
    execute) when the program is the running interpreter
    (``sys.executable``, even through a venv's symlink), ``True`` always,
    ``False`` never.

    A :class:`Ruleset` passed as *ruleset* is checked on each spawn: when a
    directory it allows was replaced since its kernel ruleset was built,
    the ruleset is rebuilt (see :meth:`Ruleset.refresh`).  A :class:`Plan`
    is used as it is.

    *die_with_parent* (bubblewrap's name): the child is killed (SIGKILL)
    when this process dies, even by SIGKILL.  The kernel's parent-death
    signal (PR_SET_PDEATHSIG) follows the *thread* that spawned the child:
    a child started from a thread that then exits -- a pool worker retired
    by its pool -- is killed at that moment.  Spawn such children from a
    long-lived thread (the main thread, or an event loop's).  It is the
    child's own setting, not a containment: processes the child starts do
    not inherit it and the program can clear it (prctl), so a hostile
    program outlives this process, still in its sandbox.

    The child is started by landwrap's own fork/exec in C, which sets
    no_new_privs and enforces the sandbox between fork and exec; this
    process is not restricted.  A program that cannot be started raises
    like subprocess: :class:`FileNotFoundError` (here
    :class:`CommandNotFound`) when it does not exist, :class:`PermissionError`
    (:class:`CommandNotExecutable`, with ``denied_by_sandbox`` when the
    sandbox is the reason) when it cannot be executed, a FileNotFoundError
    for a missing *cwd*, :class:`ValueError` for a NUL byte in an argument,
    *cwd*, *executable* or the environment.  Not supported: *preexec_fn*
    (unsafe with threads, and it would run outside the sandbox), *umask*,
    *process_group*, a non-empty *extra_groups*, more than 64 *pass_fds*.

    ``plan`` is the sandbox as given to the kernel.
    """

    plan: Plan

    @overload
    def __init__(self: Popen[str], args: Cmd, *, text: Literal[True],
                 encoding: str | None = None, errors: str | None = None,
                 universal_newlines: bool | None = None,
                 **kwargs: Unpack[_PopenOptions]) -> None: ...

    @overload
    def __init__(self: Popen[str], args: Cmd, *, text: Literal[False] | None = None,
                 encoding: str, errors: str | None = None,
                 universal_newlines: bool | None = None,
                 **kwargs: Unpack[_PopenOptions]) -> None: ...

    @overload
    def __init__(self: Popen[str], args: Cmd, *, text: Literal[False] | None = None,
                 encoding: str | None = None, errors: str | None = None,
                 universal_newlines: Literal[True],
                 **kwargs: Unpack[_PopenOptions]) -> None: ...

    @overload
    def __init__(self: Popen[bytes], args: Cmd, *, text: Literal[False] | None = None,
                 encoding: None = None, errors: None = None,
                 universal_newlines: Literal[False] | None = None,
                 **kwargs: Unpack[_PopenOptions]) -> None: ...

    @overload
    def __init__(self: Popen[Any], args: Cmd, *, text: bool | None = None,
                 encoding: str | None = None, errors: str | None = None,
                 universal_newlines: bool | None = None,
                 **kwargs: Unpack[_PopenOptions]) -> None: ...

    @_api
    def __init__(self, args: Cmd, bufsize: int = -1, executable: StrPath | None = None,
                 stdin: File = None, stdout: File = None, stderr: File = None,
                 preexec_fn: Callable[[], Any] | None = None, close_fds: bool = True,
                 shell: bool = False, cwd: StrPath | None = None, env: Env = None,
                 universal_newlines: bool | None = None, startupinfo: Any = None,
                 creationflags: int = 0, restore_signals: bool = True,
                 start_new_session: bool = False, pass_fds: Sequence[int] = (), *,
                 user: str | int | None = None, group: str | int | None = None,
                 extra_groups: Sequence[str | int] | None = None,
                 encoding: str | None = None, errors: str | None = None,
                 text: bool | None = None, umask: int = -1, pipesize: int = -1,
                 process_group: int | None = None,
                 profile: ProfileSpec = None, ruleset: Ruleset | Plan | None = None,
                 ro: Paths = (), rox: Paths = (), rw: Paths = (), rwx: Paths = (),
                 bind_tcp: Ports = (), connect_tcp: Ports = (), bind_udp: Ports = (),
                 connect_udp: Ports = (), scope: Scope = None,
                 compat: Compat | None = None, abi: int | None = None,
                 python: bool | None = None, die_with_parent: bool = False) -> None:
        if preexec_fn is not None:
            raise ValueError("landwrap.Popen does not take preexec_fn: it is unsafe in "
                             "threaded programs and would run outside the sandbox")
        if umask >= 0:
            raise ValueError("landwrap.Popen does not support umask")
        if process_group is not None:
            raise ValueError("landwrap.Popen does not support process_group")
        if extra_groups:
            raise ValueError("landwrap.Popen supports only extra_groups=[] (drop all)")
        if not isinstance(args, (str, bytes, os.PathLike, list, tuple)):
            args = list(args)
        allow = dict(ro=ro, rox=rox, rw=rw, rwx=rwx, bind_tcp=bind_tcp,
                     connect_tcp=connect_tcp, bind_udp=bind_udp, connect_udp=connect_udp,
                     scope=scope, compat=compat, abi=abi)
        plan, env = _sandbox_for(args, executable, shell, env, cwd, profile, ruleset,
                                 allow, python)
        if plan is not None:
            self.plan = plan
        self._lw_ruleset = ruleset if isinstance(ruleset, Ruleset) else None
        self._lw_flags = _binding.F_PDEATHSIG if die_with_parent else 0
        newer: dict[str, Any] = {}  # arguments older Pythons do not know
        if pipesize != -1:
            newer["pipesize"] = pipesize
        super().__init__(args, bufsize, executable, stdin, stdout, stderr, None,
                         close_fds, shell, cwd, env, universal_newlines, startupinfo,
                         creationflags, restore_signals, start_new_session, pass_fds,
                         user=user, group=group, extra_groups=extra_groups,
                         encoding=encoding, errors=errors, text=text, **newer)

    def _execute_child(self, args: Any, executable: Any, preexec_fn: Any, close_fds: bool,
                       pass_fds: Any, cwd: Any, env: Any, startupinfo: Any,
                       creationflags: int, shell: bool, p2cread: int, p2cwrite: int,
                       c2pread: int, c2pwrite: int, errread: int, errwrite: int,
                       restore_signals: bool, gid: int | None, gids: Any, uid: int | None,
                       umask: int, start_new_session: bool, process_group: Any = -1,
                       *more: Any) -> None:
        if more:
            raise TypeError("landwrap.Popen does not know this Python's subprocess "
                            f"(unexpected arguments {more!r}); please report it")
        if preexec_fn is not None or umask >= 0 or process_group not in (None, -1) or gids:
            raise ValueError("landwrap.Popen: unsupported argument")  # refused in __init__
        flags = self._lw_flags | _POPEN_FLAGS[bool(close_fds), bool(restore_signals),
                                               bool(start_new_session)]
        if gids is not None:
            flags |= _binding.F_CLEAR_GROUPS
        sandbox = self._lw_ruleset if self._lw_ruleset is not None else self.plan
        pid, self.plan = _start(sandbox, args, executable, shell, cwd, env,
                                (p2cread, c2pwrite, errwrite), pass_fds, flags, uid, gid)
        self.pid = pid
        self._child_created = True
        # The child's ends of the pipes (and /dev/null) belong to it now.
        devnull = getattr(self, "_devnull", None)
        for mine, theirs in ((p2cwrite, p2cread), (c2pread, c2pwrite), (errread, errwrite)):
            if theirs != -1 and mine != -1 and theirs != devnull:
                os.close(theirs)
        if devnull is not None:
            os.close(devnull)
        self._closed_child_pipe_fds = True


class _RunOptions(_PopenOptions, total=False):
    input: Union[str, bytes, None]
    capture_output: bool
    timeout: Optional[float]
    check: bool


@overload
def run(args: Cmd, *, text: Literal[True], encoding: str | None = None,
        errors: str | None = None, universal_newlines: bool | None = None,
        **kwargs: Unpack[_RunOptions]) -> CompletedProcess[str]: ...


@overload
def run(args: Cmd, *, text: Literal[False] | None = None, encoding: str,
        errors: str | None = None, universal_newlines: bool | None = None,
        **kwargs: Unpack[_RunOptions]) -> CompletedProcess[str]: ...


@overload
def run(args: Cmd, *, text: Literal[False] | None = None, encoding: str | None = None,
        errors: str | None = None, universal_newlines: Literal[True],
        **kwargs: Unpack[_RunOptions]) -> CompletedProcess[str]: ...


@overload
def run(args: Cmd, *, text: Literal[False] | None = None, encoding: None = None,
        errors: None = None, universal_newlines: Literal[False] | None = None,
        **kwargs: Unpack[_RunOptions]) -> CompletedProcess[bytes]: ...


@overload
def run(args: Cmd, *, text: bool | None = None, encoding: str | None = None,
        errors: str | None = None, universal_newlines: bool | None = None,
        **kwargs: Unpack[_RunOptions]) -> CompletedProcess[Any]: ...


def run(args: Cmd, *, input: str | bytes | None = None, capture_output: bool = False,
        timeout: float | None = None, check: bool = False, text: bool | None = None,
        encoding: str | None = None, errors: str | None = None,
        universal_newlines: bool | None = None,
        **kwargs: Unpack[_PopenOptions]) -> CompletedProcess[Any]:
    """Run *args* in a sandbox and wait for it, like :func:`subprocess.run`.

    Takes :class:`Popen`'s sandbox arguments (*ruleset*, or *profile* with
    *ro*/*rw*/..., *python*, *die_with_parent*) and every argument of
    :func:`subprocess.run`: *input*, *capture_output*, *timeout* (on expiry
    the child is killed and :class:`subprocess.TimeoutExpired` raised),
    *check* (a non-zero exit raises :class:`subprocess.CalledProcessError`),
    *text*, *cwd*, *env*...  Returns a :class:`subprocess.CompletedProcess`
    (``CompletedProcess[str]`` with *text*, else ``[bytes]``).

    For many runs, build the sandbox once (``rs = Ruleset.from_profile(...)``)
    and pass ``ruleset=rs``: the paths are resolved and the kernel ruleset is
    built the first time only.
    """
    if (input is None and not capture_output and timeout is None and text is None
            and encoding is None and errors is None and universal_newlines is None
            and kwargs.keys() <= _INHERITED_KEYS and kwargs.get("stdin") is None
            and kwargs.get("stdout") is None and kwargs.get("stderr") is None
            and (kwargs.get("close_fds", True) or not kwargs.get("pass_fds"))):
        # Nothing to pipe and no time limit: the child is started and
        # reaped here, without a Popen object (what subprocess.run costs
        # beyond the fork and the wait is mostly Popen's set-up and
        # teardown).  Anything else, and every error, is as Popen has it.
        return _run_inherited(args, check, **kwargs)
    opts: dict[str, Any] = dict(kwargs)
    if input is not None:
        if opts.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        opts["stdin"] = PIPE
    if capture_output:
        if opts.get("stdout") is not None or opts.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used "
                             "with capture_output.")
        opts["stdout"] = opts["stderr"] = PIPE
    with Popen(args, text=text, encoding=encoding, errors=errors,
               universal_newlines=universal_newlines, **opts) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except TimeoutExpired:
            proc.kill()
            proc.wait()  # the output so far is already in the exception
            raise
        except BaseException:
            proc.kill()  # __exit__ waits for it
            raise
        code = proc.poll()
        assert code is not None
        if check and code:
            raise CalledProcessError(code, proc.args, output=out, stderr=err)
    return CompletedProcess(proc.args, code, out, err)


#: The keywords :func:`_run_inherited` takes (stdin/stdout/stderr: None only).
_INHERITED_KEYS = frozenset(_SandboxOptions.__annotations__) | {
    "executable", "shell", "cwd", "env", "close_fds", "restore_signals",
    "start_new_session", "pass_fds", "stdin", "stdout", "stderr"}


@_api
def _run_inherited(args: Cmd, check: bool, *, executable: StrPath | None = None,
                   shell: bool = False, cwd: StrPath | None = None, env: Env = None,
                   close_fds: bool = True, restore_signals: bool = True,
                   start_new_session: bool = False, pass_fds: Sequence[int] = (),
                   stdin: File = None, stdout: File = None, stderr: File = None,
                   profile: ProfileSpec = None, ruleset: Ruleset | Plan | None = None,
                   python: bool | None = None, die_with_parent: bool = False,
                   **allow: Any) -> CompletedProcess[Any]:
    """:func:`run` of a child with this process's standard streams and no
    timeout: :class:`Popen`'s checks and spawn, then a plain wait."""
    if not isinstance(args, (str, bytes, os.PathLike, list, tuple)):
        args = list(args)
    plan, env = _sandbox_for(args, executable, shell, env, cwd, profile, ruleset,
                             {**_NO_ALLOW, **allow} if allow else _NO_ALLOW, python)
    flags = ((_binding.F_PDEATHSIG if die_with_parent else 0)
             | _POPEN_FLAGS[bool(close_fds), bool(restore_signals), bool(start_new_session)])
    sandbox = ruleset if isinstance(ruleset, Ruleset) else plan
    if sandbox is None:  # (_sandbox_for gives None only for a Ruleset)
        raise TypeError("no sandbox")
    pid, _ = _start(sandbox, args, executable, shell, cwd, env, (-1, -1, -1), pass_fds,
                    flags, None, None)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # SIGCHLD ignored: reaped by the kernel
        status = 0
    except BaseException:  # as subprocess.run: kill it, reap it, raise
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
        raise
    code = os.waitstatus_to_exitcode(status)
    if check and code:
        raise CalledProcessError(code, args)
    return CompletedProcess(args, code)


def call(args: Cmd, **kwargs: Unpack[_CallOptions]) -> int:
    """Run *args* in a sandbox and return its exit status (negative: killed
    by that signal), like :func:`subprocess.call`; on *timeout* the child
    is killed and :class:`subprocess.TimeoutExpired` raised."""
    opts: dict[str, Any] = dict(kwargs)
    timeout = opts.pop("timeout", None)
    with Popen(args, **opts) as p:
        try:
            return p.wait(timeout=timeout)
        except BaseException:
            p.kill()  # __exit__ waits for it
            raise


def check_call(args: Cmd, **kwargs: Unpack[_CallOptions]) -> int:
    """:func:`call`, raising :class:`subprocess.CalledProcessError` on a
    non-zero exit status, like :func:`subprocess.check_call`; returns 0."""
    code = call(args, **kwargs)
    if code:
        raise CalledProcessError(code, args)
    return 0


@overload
def check_output(args: Cmd, *, text: Literal[True], encoding: str | None = None,
                 errors: str | None = None, universal_newlines: bool | None = None,
                 **kwargs: Unpack[_RunOptions]) -> str: ...


@overload
def check_output(args: Cmd, *, text: Literal[False] | None = None, encoding: str,
                 errors: str | None = None, universal_newlines: bool | None = None,
                 **kwargs: Unpack[_RunOptions]) -> str: ...


@overload
def check_output(args: Cmd, *, text: Literal[False] | None = None,
                 encoding: str | None = None, errors: str | None = None,
                 universal_newlines: Literal[True],
                 **kwargs: Unpack[_RunOptions]) -> str: ...


@overload
def check_output(args: Cmd, *, text: Literal[False] | None = None, encoding: None = None,
                 errors: None = None, universal_newlines: Literal[False] | None = None,
                 **kwargs: Unpack[_RunOptions]) -> bytes: ...


@overload
def check_output(args: Cmd, *, text: bool | None = None, encoding: str | None = None,
                 errors: str | None = None, universal_newlines: bool | None = None,
                 **kwargs: Unpack[_RunOptions]) -> Any: ...


def check_output(args: Cmd, **kwargs: Any) -> Any:
    """The standard output of *args* run in a sandbox, like
    :func:`subprocess.check_output` (``str`` with *text*, else ``bytes``):
    a non-zero exit raises :class:`subprocess.CalledProcessError` with the
    output; takes :func:`run`'s arguments except *stdout* and *check*."""
    for bad in ("stdout", "check", "capture_output"):
        if bad in kwargs:
            raise ValueError(f"{bad} argument not allowed, it will be overridden.")
    if kwargs.get("input") == b"" and (kwargs.get("text") or kwargs.get("encoding")
                                      or kwargs.get("errors")
                                      or kwargs.get("universal_newlines")):
        kwargs["input"] = ""
    return run(args, stdout=PIPE, check=True, **kwargs).stdout

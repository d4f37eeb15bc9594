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
ignored, and tests/test_api.py checks the signature.

Never imported by `landwrap run` (start-up time); imports only what the
library needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from subprocess import (DEVNULL, PIPE, STDOUT, CalledProcessError,
                        CompletedProcess, SubprocessError, TimeoutExpired)

from . import _sys, compat as _compat, companion as _companion, profile as _profile, spawn, threads
from .errors import CommandNotFound, SpawnError, UsageError
from .launcher import MAX_FD, MAX_ID
from .ruleset import BEST_EFFORT, NOT_ENFORCED, STRICT, Plan, Ruleset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Sequence, Union

    StrPath = Union[str, "os.PathLike[str]"]
    Paths = Union[StrPath, Iterable[StrPath]]
    Ports = Union[int, str, Iterable[Union[int, str]]]
    ProfileSpec = Union[None, bool, StrPath, Sequence[StrPath]]

__all__ = ["restrict", "run", "Popen", "abi", "status", "Enforcement",
           "Ruleset", "Plan", "build_ruleset", "enforce",
           # subprocess's, re-exported as landwrap.PIPE etc.
           "PIPE", "DEVNULL", "STDOUT", "CompletedProcess", "CalledProcessError",
           "TimeoutExpired", "SubprocessError"]


# what was enforced ---------------------------------------------------------

class Enforcement:
    """What :func:`restrict` enforced.

    ``status`` is ``"fully"`` (everything asked for), ``"partially"``
    (best-effort mode dropped something this kernel cannot enforce; see
    ``dropped``) or ``"not"`` (nothing: best-effort on a kernel without
    Landlock, or nothing was restricted).  ``abi`` is the Landlock ABI
    used, ``kernel_abi`` the kernel's (None without Landlock).
    ``threads`` is the number of threads restricted, ``method`` how they
    were reached (``"tsync"``: by the kernel, ``"signal"``: each thread
    restricted itself, ``None``: nothing enforced).  ``plan`` is the
    :class:`Plan` (rules, ports, scopes) as given to the kernel.
    A false ``Enforcement`` is one that enforced nothing.
    """

    __slots__ = ("status", "abi", "kernel_abi", "dropped", "threads", "method", "plan")

    def __init__(self, plan: Plan, result: threads.ThreadsResult | None):
        self.plan = plan
        self.status = plan.status if result is not None else NOT_ENFORCED
        self.abi = plan.abi
        self.kernel_abi = plan.kernel_abi if plan.kernel_abi >= 0 else None
        self.dropped = list(plan.dropped)
        self.threads = result.threads if result is not None else 0
        self.method = result.method if result is not None else None

    def __bool__(self) -> bool:
        return self.status != NOT_ENFORCED

    def __repr__(self) -> str:
        return (f"Enforcement(status={self.status!r}, abi={self.abi}, "
                f"threads={self.threads}, method={self.method!r}, dropped={self.dropped!r})")


# building a ruleset from arguments -------------------------------------------

def _many(value, single) -> tuple:
    if value is None:
        return ()
    if isinstance(value, single):
        return (value,)
    return tuple(value)


def build_ruleset(profile: ProfileSpec = None, *, ro: Paths = (), rox: Paths = (),
                  rw: Paths = (), rwx: Paths = (), bind_tcp: Ports = (),
                  connect_tcp: Ports = (), scope: bool | Iterable[str] | None = None,
                  compat: str | None = None, abi: int | None = None,
                  command: str | None = None) -> tuple:
    """``(Ruleset, Profile)`` from the arguments :func:`restrict` and
    :func:`run` take.

    *profile*: ``None`` for the profile `landwrap run` would use (the one
    named after *command*, else ``default``), ``False`` to start from an
    empty sandbox, a profile name or file, or a list of them (later ones
    add to earlier).  Path and port arguments take one item or a list."""
    if profile is False:
        prof = _profile.Profile()
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
    for right, ports in (("bind_tcp", bind_tcp), ("connect_tcp", connect_tcp)):
        for spec in _many(ports, (int, str)):
            rs.allow_port(spec, right, origin=f"{right}={spec}")
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
        if compat not in (STRICT, BEST_EFFORT):
            raise UsageError(f"unknown compat mode {compat!r} "
                             "(expected 'strict' or 'best-effort')")
        rs.compat = compat
    if abi is not None:
        rs.abi = abi
    return rs, prof


_fd_lock = threading.Lock()


def _ready(plan: Plan) -> Plan:
    """*plan* with its kernel ruleset built (once, even when several threads
    ask at the same moment)."""
    if plan._fd < 0 and plan.enforces_anything:
        with _fd_lock:
            plan.ruleset_fd()
    return plan


def _plan_of(ruleset) -> Plan:
    if isinstance(ruleset, Plan):
        return ruleset
    if isinstance(ruleset, Ruleset):
        return ruleset.plan()
    raise TypeError(f"ruleset must be a landwrap.Ruleset or Plan, not {type(ruleset).__name__}")


# restricting this process ------------------------------------------------------

def restrict(profile: ProfileSpec = None, *, ro: Paths = (), rox: Paths = (),
             rw: Paths = (), rwx: Paths = (), bind_tcp: Ports = (),
             connect_tcp: Ports = (), scope: bool | Iterable[str] | None = None,
             compat: str | None = None, abi: int | None = None) -> Enforcement:
    """Sandbox the calling process, every thread of it, for the rest of its life.

    The sandbox is *profile* (``None``: the ``default`` profile, which lets
    the process read and execute the system -- /usr, /etc... -- and nothing
    else; ``False``: nothing at all) plus read (*ro*), read+execute (*rox*),
    read+write (*rw*), read+write+execute (*rwx*) access beneath the given
    paths and the TCP ports given to *bind_tcp*/*connect_tcp* (a port or
    ``"LOW-HIGH"``).  *scope* (``True``/``False`` or scope names) decides
    whether signals and abstract unix sockets may reach outside the sandbox.
    *compat* ``"best-effort"`` lets a kernel that lacks something asked for
    enforce the rest; the default (strict, unless the profile says
    otherwise) raises :class:`UnsupportedFeature` instead.  *abi* caps the
    Landlock ABI used, as on an older kernel.

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
      Python retries.
    - Children started from now on inherit the sandbox; processes already
      running do not.
    - Files and sockets already open keep the access they were opened with.
      Opening anything new -- including Python modules imported lazily
      later -- needs access: add ``ro=sys.prefix`` when the interpreter
      lives outside the system directories (a venv in your home).
    - Rules bind to the files that exist now: a path that does not exist
      cannot be allowed (:class:`PathError`); a file deleted and recreated
      later loses its rule.

    Returns an :class:`Enforcement`; raises :class:`LandlockUnavailable`
    (strict mode on a kernel without Landlock), :class:`UnsupportedFeature`,
    :class:`PathError`, :class:`ProfileError`, :class:`EnforcementError`.
    """
    rs, _ = build_ruleset(profile if profile is not None else "default", ro=ro,
                          rox=rox, rw=rw, rwx=rwx, bind_tcp=bind_tcp,
                          connect_tcp=connect_tcp, scope=scope, compat=compat, abi=abi)
    return enforce(rs.resolve())


def enforce(plan: Plan) -> Enforcement:
    """Enforce a resolved *plan* on every thread of this process (the
    engine of :func:`restrict` and :meth:`Ruleset.restrict`), with the
    seccomp companion filter (see ``landwrap.companion``) installed on
    every thread at once (SECCOMP_FILTER_FLAG_TSYNC).  In-process, the
    filter lets resource-limit and scheduling calls through only for id 0
    and this process's pid: other threads of the process cannot aim at
    themselves by tid.  Capabilities are left alone."""
    if not plan.enforces_anything:
        return Enforcement(plan, None)
    comp = _companion.for_plan(plan)   # strict: raises before anything is done
    fd = _ready(plan).ruleset_fd()
    result = threads.restrict_process(fd, plan.flags, plan.abi)
    if comp.filter:
        try:
            _sys.seccomp_install(comp.parts(), os.getpid(), True)
        except OSError as e:
            from .errors import EnforcementError

            raise EnforcementError(
                "the Landlock sandbox is enforced but the seccomp companion filter "
                f"could not be installed: {e.strerror}"
                + (f" (thread {e.filename})" if e.filename else "")
                + "; the process is partly sandboxed and should exit") from None
    return Enforcement(plan, result)


# the kernel ----------------------------------------------------------------

def abi() -> int:
    """The Landlock ABI version of the running kernel (1 for Linux 5.13 ...
    7 for 6.15, 8 for 7.0), or 0 when the kernel has no Landlock or it is
    disabled at boot (:func:`status` says which)."""
    v = _sys.kernel_abi()
    return v if v > 0 else 0


def status(abi: int | None = None) -> dict:
    """What this kernel offers: its release, ``landlock`` (``"enabled"``,
    ``"ENOSYS"``: not built in, ``"EOPNOTSUPP"``: disabled at boot),
    ``kernel_abi``, every ``feature`` with the ABI and Linux release that
    adds it and whether it is supported here, and how the ``default``
    profile would be enforced.  *abi* caps the ABI, as on an older kernel."""
    from .kernel import status as _status

    return _status(abi)


# spawning ------------------------------------------------------------------

_OS_ERRORS: dict = {}


def _as_oserror(e: SpawnError, filename) -> SpawnError:
    """*e* as an exception that is also the OSError subclass its errno maps
    to (FileNotFoundError for ENOENT...), as subprocess raises."""
    base = type(OSError(e.errno, ""))
    cls = _OS_ERRORS.get(base)
    if cls is None:
        cls = type(f"Spawn{base.__name__}", (SpawnError, base),
                   {"__module__": __name__,
                    "__doc__": f"A child failed before its program started ({base.__name__})."})
        _OS_ERRORS[base] = cls
    new = cls(e.message, e.stage, e.errno, e.hint, exit_code=e.exit_code)
    new.strerror = os.strerror(e.errno)
    new.filename = filename
    return new


def _locate(program, env, cwd) -> str:
    """The file to execute, found as subprocess finds it: a name without
    ``/`` on the PATH of *env* (or of this process), a relative path
    relative to *cwd*."""
    prog = os.fsdecode(os.fspath(program))
    if "/" in prog:
        full = prog
        if cwd is not None and not prog.startswith("/"):
            full = os.path.join(os.fsdecode(os.fspath(cwd)), prog)
        if not os.path.exists(full):
            raise CommandNotFound(f"{prog}: No such file or directory", prog)
        return full
    found = spawn.find_program(prog, os.pathsep.join(os.get_exec_path(env)))
    return os.path.abspath(found) if cwd is not None else found


_LISTS = ("ro", "rox", "rw", "rwx", "bind_tcp", "connect_tcp")


def _sandbox_for(args, executable, shell, env, profile, ruleset, allow: dict) -> tuple:
    """``(plan, env)`` for a child: *ruleset* (a Ruleset or Plan), or the
    one built from *profile* and *allow*, whose [env] table is applied."""
    if ruleset is not None:
        given = [k for k, v in allow.items()
                 if (_many(v, (str, bytes, os.PathLike, int)) if k in _LISTS else v is not None)]
        if profile is not None or given:
            raise UsageError("give either ruleset= or profile=/ro=/rw=/... arguments, not both")
        return _ready(_plan_of(ruleset)), env
    command = executable
    if command is None:
        if shell:
            command = "/bin/sh"
        elif isinstance(args, (str, bytes, os.PathLike)):
            command = args
        else:
            command = args[0] if args else None
    rs, prof = build_ruleset(profile, command=os.fsdecode(os.fspath(command))
                             if command is not None else None, **allow)
    plan = _ready(rs.resolve())
    if prof.env_clean or prof.env_settings():
        from .launcher import build_env

        env = build_env(prof.env_clean, prof.env_settings(),
                        base=env if env is not None else os.environ)
    return plan, env


def _companion_of(plan: Plan):
    """The companion for spawns in *plan* (decided once per plan and user)."""
    key = os.geteuid()
    cached = getattr(plan, "_companion", None)
    if cached is None or cached[0] != key:
        cached = plan._companion = (key, _companion.for_plan(plan, euid=key))
    return cached[1]


class Popen(subprocess.Popen):
    """:class:`subprocess.Popen` whose child runs in a Landlock sandbox.

    Takes every argument of :class:`subprocess.Popen` (stdin/stdout/stderr,
    cwd, env, pass_fds, text/encoding/errors, start_new_session, user,
    group...) and behaves the same: ``communicate``, ``wait``, ``poll``,
    ``kill``, the context manager, ``pid``, ``returncode`` are CPython's.
    The sandbox is *ruleset* (a :class:`Ruleset` or :class:`Plan`; build it
    once and pass it to many spawns: the kernel ruleset is reused) or the
    one made of *profile* and *ro*/*rox*/*rw*/*rwx*/*bind_tcp*/
    *connect_tcp*/*scope*/*compat*/*abi* as in :func:`restrict`
    (``profile=None``: the profile `landwrap run` would pick for the
    program).  A profile's ``[env]`` table is applied to *env*.

    The child is started by landwrap's own fork/exec in C, which sets
    no_new_privs and enforces the sandbox between fork and exec; this
    process is not restricted.  A program that cannot be started raises
    like subprocess: :class:`FileNotFoundError` (here
    :class:`CommandNotFound`) when it does not exist, :class:`PermissionError`
    (:class:`CommandNotExecutable`, with ``denied_by_sandbox`` when the
    sandbox is the reason) when it cannot be executed, a FileNotFoundError
    for a missing *cwd*.  Not supported: *preexec_fn* (unsafe with threads,
    and it would run outside the sandbox), *umask*, *process_group*, a
    non-empty *extra_groups*, more than 64 *pass_fds*.

    ``plan`` is the sandbox as given to the kernel.
    """

    def __init__(self, args, bufsize=-1, executable=None, stdin=None, stdout=None,
                 stderr=None, preexec_fn=None, close_fds=True, shell=False,
                 cwd=None, env=None, universal_newlines=None, startupinfo=None,
                 creationflags=0, restore_signals=True, start_new_session=False,
                 pass_fds=(), *, profile: ProfileSpec = None,
                 ruleset: Ruleset | Plan | None = None, ro: Paths = (), rox: Paths = (),
                 rw: Paths = (), rwx: Paths = (), bind_tcp: Ports = (),
                 connect_tcp: Ports = (), scope: bool | Iterable[str] | None = None,
                 compat: str | None = None, abi: int | None = None, **kwargs: Any):
        if preexec_fn is not None:
            raise ValueError("landwrap.Popen does not take preexec_fn: it is unsafe in "
                             "threaded programs and would run outside the sandbox")
        if kwargs.get("umask", -1) >= 0:
            raise ValueError("landwrap.Popen does not support umask")
        if kwargs.get("process_group") is not None:
            raise ValueError("landwrap.Popen does not support process_group")
        if kwargs.get("extra_groups"):
            raise ValueError("landwrap.Popen supports only extra_groups=[] (drop all)")
        if not isinstance(args, (str, bytes, os.PathLike, list, tuple)):
            args = list(args)
        allow = dict(ro=ro, rox=rox, rw=rw, rwx=rwx, bind_tcp=bind_tcp,
                     connect_tcp=connect_tcp, scope=scope, compat=compat, abi=abi)
        self.plan, env = _sandbox_for(args, executable, shell, env, profile, ruleset, allow)
        self.companion = _companion_of(self.plan)
        super().__init__(args, bufsize, executable, stdin, stdout, stderr, None,
                         close_fds, shell, cwd, env, universal_newlines, startupinfo,
                         creationflags, restore_signals, start_new_session, pass_fds,
                         **kwargs)

    def _execute_child(self, args, executable, preexec_fn, close_fds, pass_fds,
                       cwd, env, startupinfo, creationflags, shell,
                       p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                       restore_signals, gid, gids, uid, umask,
                       start_new_session, process_group=-1, *more):
        if more:
            raise TypeError("landwrap.Popen does not know this Python's subprocess "
                            f"(unexpected arguments {more!r}); please report it")
        if preexec_fn is not None or umask >= 0 or process_group not in (None, -1) or gids:
            raise ValueError("landwrap.Popen: unsupported argument")  # refused in __init__
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
        sys.audit("subprocess.Popen", executable, args, cwd, env)

        flags = 0
        if close_fds:
            flags |= _sys.F_CLOSE_FDS
        if restore_signals:
            flags |= _sys.F_RESTORE_SIGPIPE
        if start_new_session:
            flags |= _sys.F_NEW_SESSION
        if gids is not None:
            flags |= _sys.F_CLEAR_GROUPS
        if gid is not None:
            flags |= _sys.F_SET_GID
        if uid is not None:
            flags |= _sys.F_SET_UID
        for what, n in (("user", uid), ("group", gid)):
            if n is not None and not 0 <= n <= MAX_ID:
                raise ValueError(f"{what} id {n} is out of range (0-{MAX_ID})")
        keep = sorted({int(fd) for fd in pass_fds})
        bad = [fd for fd in keep if not 0 <= fd <= MAX_FD]
        if bad:
            raise ValueError(f"pass_fds: {bad[0]} is not a file descriptor number")
        path = _locate(executable, env, cwd)
        try:
            pid = spawn.start(
                self.plan, path, args, env if env is not None else os.environ,
                cwd=cwd, stdio=(p2cread, c2pwrite, errwrite),
                keep_fds=keep, flags=flags, uid=uid or 0, gid=gid or 0,
                companion=self.companion)
        except CommandNotFound as e:
            e.filename = os.fsdecode(os.fspath(executable))
            raise
        except SpawnError as e:
            chdir = e.stage == _sys.STAGES[_sys.STAGE_CHDIR]
            raise _as_oserror(e, cwd if chdir else executable) from None
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


def run(args, *popenargs, input=None, capture_output: bool = False,
        timeout: float | None = None, check: bool = False,
        **kwargs: Any) -> subprocess.CompletedProcess:
    """Run *args* in a sandbox and wait for it, like :func:`subprocess.run`.

    Takes :class:`Popen`'s sandbox arguments (*ruleset*, or *profile* with
    *ro*/*rw*/...) and every argument of :func:`subprocess.run`: *input*,
    *capture_output*, *timeout* (on expiry the child is killed and
    :class:`subprocess.TimeoutExpired` raised), *check* (a non-zero exit
    raises :class:`subprocess.CalledProcessError`), *text*, *cwd*, *env*...
    Returns a :class:`subprocess.CompletedProcess`.

    For many runs, build the sandbox once (``rs = Ruleset.from_profile(...)``)
    and pass ``ruleset=rs``: the paths are resolved and the kernel ruleset is
    built the first time only.
    """
    if input is not None:
        if kwargs.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        kwargs["stdin"] = PIPE
    if capture_output:
        if kwargs.get("stdout") is not None or kwargs.get("stderr") is not None:
            raise ValueError("stdout and stderr arguments may not be used "
                             "with capture_output.")
        kwargs["stdout"] = kwargs["stderr"] = PIPE
    with Popen(args, *popenargs, **kwargs) as proc:
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
        if check and code:
            raise CalledProcessError(code, proc.args, output=out, stderr=err)
    return CompletedProcess(proc.args, code, out, err)

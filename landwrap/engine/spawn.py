"""spawn.py: start one program inside a sandbox.

Shared by the `landwrap run` launcher and the Python API's ``run``/``Popen``.
Everything that allocates happens here, in the parent: PATH lookup, argv and
environment encoding, the kernel ruleset.  The child side is C
(``csrc/landwrap.c``); a failure there comes back as (stage, errno), written
by the vfork child into the parent's memory, and is raised here as a
precise exception.  Never uses ``preexec_fn``.
"""

from __future__ import annotations

import os

from . import _binding, compat
from .companion import Companion, bounding, cap_last
from .errors import (CommandNotExecutable, CommandNotFound, EnforcementError, SpawnError,
                     UsageError, EXIT_CANNOT_EXEC)
from .kernel_ruleset import ruleset_among

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Collection, Iterable, Mapping, Sequence, Union

    from .companion import Companion
    from .plan import Plan

    #: A program argument, a path or a working directory, as os.fsencode takes it.
    Arg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def find_program(name: str, path_env: str | None) -> str:
    """The file *name* refers to, looked up in *path_env* when it has no
    ``/``, as execvp would.  Raises CommandNotFound / CommandNotExecutable."""
    if "/" in name:
        if not os.path.exists(name):
            raise CommandNotFound(f"{name}: command not found (no such file)", name)
        if os.path.isdir(name):
            raise CommandNotExecutable(f"{name}: is a directory", name, 21)
        return name
    if not name:
        raise CommandNotFound("empty command name", name)
    denied = None
    for d in (path_env if path_env is not None else DEFAULT_PATH).split(":"):
        cand = os.path.join(d or ".", name)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if (st.st_mode & 0o170000) != 0o100000:
            continue
        if os.access(cand, os.X_OK):
            return cand
        denied = denied or cand
    if denied:
        raise CommandNotExecutable(f"{denied}: permission denied (not executable)",
                                   denied, 13)
    raise CommandNotFound(f"{name}: command not found",
                          name, "check the name, or give the full path")


def _elf_interpreter(path: str) -> str | None:
    """PT_INTERP of a 64-bit little-endian ELF file, else None."""
    try:
        with open(path, "rb") as f:
            hdr = f.read(64)
            if len(hdr) < 64 or hdr[:4] != b"\x7fELF" or hdr[4] != 2 or hdr[5] != 1:
                return None
            phoff = int.from_bytes(hdr[32:40], "little")
            phentsize = int.from_bytes(hdr[54:56], "little")
            phnum = int.from_bytes(hdr[56:58], "little")
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            for i in range(phnum):
                ph = table[i * phentsize:(i + 1) * phentsize]
                if int.from_bytes(ph[0:4], "little") == 3:  # PT_INTERP
                    off = int.from_bytes(ph[8:16], "little")
                    size = int.from_bytes(ph[32:40], "little")
                    f.seek(off)
                    return f.read(size).rstrip(b"\0").decode()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _script_interpreter(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            line = f.readline(256)
    except OSError:
        return None
    if not line.startswith(b"#!"):
        return None
    parts = line[2:].strip().split()
    return os.fsdecode(parts[0]) if parts else None


def exec_denied_hint(plan: Plan | None, path: str) -> tuple[str, str, list[tuple[str, str]]]:
    """(message, hint, fixes) for an exec the sandbox denied: which file
    lacks execute (the program, its ``#!`` interpreter or its ELF loader).
    A hint with ``{0}``... is a template for the settings in *fixes*
    (errors.LandwrapError words them for the CLI or the API)."""
    need = compat.FS_RIGHTS["execute"][0] | compat.FS_RIGHTS["read_file"][0]
    chain = [os.path.realpath(path)]
    interp = _script_interpreter(chain[0]) or _elf_interpreter(chain[0])
    if interp:
        chain.append(os.path.realpath(interp))
        loader = _elf_interpreter(chain[-1])
        if loader:
            chain.append(os.path.realpath(loader))
    for f in chain:
        if plan is not None and plan.allows(f, need) != need:
            what = "" if f == chain[0] else f" (needed to run {path})"
            return (f"{path}: execution denied by the sandbox: no execute access to {f}{what}",
                    "allow it with {0} (or {1})", [("rox", os.path.dirname(f)), ("rox", f)])
    return (f"{path}: execution denied by the sandbox",
            f"allow the program and what it loads with --rox, e.g. --rox {os.path.dirname(chain[0])}",
            [])


def encode_env(env: Mapping[str, str]) -> list[bytes]:
    if env is os.environ:  # already valid, and bytes in os.environb
        return [k + b"=" + v for k, v in os.environb.items()]
    out = []
    k: str | bytes
    v: str | bytes
    for k, v in env.items():
        k = os.fsencode(k)
        v = os.fsencode(v)
        if b"=" in k or b"\0" in k or b"\0" in v or not k:
            raise ValueError(f"illegal environment variable name or value: {k!r}")
        out.append(k + b"=" + v)
    return out


def companion_flags(comp: Companion | None) -> tuple[int, dict[str, int]]:
    """(spawn flags, SpawnArgs keywords) for a companion.Companion (kept
    on it: a companion does not change once made)."""
    if comp is None:
        return 0, {}
    if comp.spawn_args is not None:
        return comp.spawn_args
    flags = _binding.F_DROP_CAPS
    kw: dict[str, int] = {"keep_caps": comp.keep_mask()}
    if comp.drop_caps:
        flags |= _binding.F_DROP_BOUNDING
        kw["cap_last"] = cap_last()
        kw["bounding"] = bounding()
    if comp.filter:
        flags |= _binding.F_SECCOMP
        kw["seccomp_parts"] = comp.parts()
    comp.spawn_args = (flags, kw)
    return flags, kw


def floors(plan: Plan, comp: Companion,
           argv: Sequence[str]) -> tuple[_binding.FloorSpawn, _binding.FloorSpawn]:
    """The benchmarks' floors for spawning *argv* in *plan* with *comp*
    (``(bare, sandboxed)`` _binding.FloorSpawn): the same spawn from C with
    nothing but the system calls, bare (vfork + execve) and with those the
    sandbox makes the child do (no_new_privs, Landlock, the companion
    filter, the capability drop as root).  Enforces nothing for a user."""
    return (_binding.FloorSpawn(argv),
            _binding.FloorSpawn(argv, plan.ruleset_fd(), comp.parts(), comp.drop_caps,
                                cap_last()))


def start(plan: Plan | None, path: str, argv: Iterable[Arg], env: Mapping[str, str] | None, *,
          cwd: Arg | None = None, stdio: Sequence[int] = (-1, -1, -1),
          keep_fds: Collection[int] = (), flags: int = 0, uid: int = 0, gid: int = 0,
          companion: Companion | None = None, notif_sock: int = -1) -> int:
    """Spawn *path* with *argv* and *env* (a mapping, or None for this
    process's environment as it is, like subprocess's ``env=None``) inside *plan*'s sandbox
    (``plan=None``: no Landlock domain, only no_new_privs) and its
    *companion* (a companion.Companion: seccomp filter, capability drop).
    With the filter's supervised part, the child sends its listener fd over
    *notif_sock*.  Returns the pid of a child that has reached execve
    successfully; raises otherwise."""
    bargv = [a if type(a) is bytes else os.fsencode(a) for a in argv]
    bcwd = os.fsencode(cwd) if cwd is not None else None
    # (a NUL byte in any of them: ValueError from SpawnArgs)
    rfd, rid = plan.spawn_fd() if plan is not None else (-1, None)
    cflags, ckw = companion_flags(companion)
    bpath, benv = os.fsencode(path), encode_env(env) if env is not None else None
    for retry in (False, True):
        leaked = ruleset_among([*keep_fds, *stdio]) if keep_fds or stdio != (-1, -1, -1) \
            else None
        if leaked is not None:
            whose = "the sandbox's own" if leaked == rfd else "a sandbox's"
            raise UsageError(f"descriptor {leaked} is {whose} Landlock ruleset: the program "
                             "could add rules to it, widening every later sandbox "
                             "built from it", "pass another descriptor")
        args = _binding.SpawnArgs(
            bpath, bargv, benv, cwd=bcwd, stdio=stdio, keep_fds=keep_fds, ruleset_fd=rfd,
            ruleset_id=rid, restrict_flags=plan.flags if plan is not None else 0,
            flags=flags | cflags, uid=uid, gid=gid, notif_sock=notif_sock, **ckw)
        try:
            pid, failure = _binding.spawn(args)
            break
        except OSError as e:
            import errno  # (lazy: only here)

            if e.errno != errno.ESTALE or plan is None:
                raise
            # The ruleset's descriptor number now holds another file (code
            # closed it): ruleset_fd() sees that and builds the ruleset anew.
            if retry:
                raise EnforcementError(f"the sandbox's ruleset (descriptor {rfd}) was "
                                       f"replaced while the command was being started",
                                       errno=e.errno) from e
            plan.ruleset_fd()
            rfd, rid = plan.spawn_fd()
    if failure is None:
        return pid
    os.waitpid(pid, 0)
    raise child_error(plan, path, cwd, *failure)


def child_error(plan: Plan | None, path: str, cwd: Arg | None, stage: int,
                err: int) -> Exception:
    """The exception for a child that failed at *stage* with *err*."""
    what = _binding.STAGES.get(stage, f"stage {stage}")
    text = os.strerror(err)
    hint: str | None
    if stage == _binding.STAGE_EXEC:
        if err == 2:  # ENOENT: the program, or its interpreter, is gone
            interp = _script_interpreter(path) or _elf_interpreter(path)
            if interp and not os.path.exists(interp):
                return CommandNotFound(f"{path}: interpreter {interp} not found", path)
            return CommandNotFound(f"{path}: command not found ({text})", path)
        if err in (1, 13):  # EPERM, EACCES
            if (os.access(path, os.X_OK) and os.path.isfile(path)
                    and plan is not None and plan.fs):
                msg, hint, fixes = exec_denied_hint(plan, path)
                if fixes:
                    return CommandNotExecutable(msg, path, err, denied_by_sandbox=True,
                                                fixes=fixes, hint_template=hint)
                return CommandNotExecutable(msg, path, err, hint, denied_by_sandbox=True)
            return CommandNotExecutable(f"{path}: cannot execute: {text}", path, err)
        return SpawnError(f"{path}: cannot execute: {text}", "exec", err,
                          exit_code=EXIT_CANNOT_EXEC)
    if stage == _binding.STAGE_RESTRICT:
        hint = None
        if err == 7:  # E2BIG
            hint = ("Landlock allows at most 16 nested sandboxes; this process "
                    "is already inside too many")
        return EnforcementError(f"failed to enforce the sandbox: {text}", hint, errno=err)
    if stage == _binding.STAGE_SECCOMP:
        return EnforcementError(f"failed to install the seccomp companion filter: {text}",
                                "--best-effort runs without it where the kernel has none",
                                errno=err)
    if stage == _binding.STAGE_CAPS:
        return EnforcementError(f"failed to drop capabilities: {text}",
                                "landwrap needs CAP_SETPCAP to empty a root sandbox's "
                                "bounding set", errno=err)
    if stage == _binding.STAGE_CHDIR:
        return SpawnError(f"cannot change directory to {os.fsdecode(cwd or '')}: {text}", what, err)
    return SpawnError(f"sandbox setup failed while {what}: {text}", what, err)

"""engine/spawn.py and the C child: what the fast paths of a sandboxed spawn
keep -- the environment inherited as subprocess inherits it, the capability
drop with a bounding set read once -- and the errors of a child that
failed: what they say."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

import landwrap
from landwrap.engine import _binding, compat, spawn

_CAPS_CHILD = r"""
import ctypes, sys
import landwrap
from landwrap.engine import companion
libc = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_DROP = 24
# the first spawn reads the bounding set (all of root's)
r = landwrap.run(["true"], profile="default")
assert r.returncode == 0 and companion.bounding() != 0
# then this process empties it and gives up CAP_SETPCAP: the bounding set
# landwrap read is now a superset, and dropping needs a capability gone
for cap in range(companion.cap_last() + 1):
    assert libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0
# (and locks SECBIT_NOROOT as the child would: setting it needs CAP_SETPCAP)
assert libc.prctl(28, 1 | 2 | 32, 0, 0, 0) == 0  # PR_SET_SECUREBITS
class Hdr(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]
data = (Data * 2)()
assert libc.capget(ctypes.byref(Hdr(0x20080522, 0)), data) == 0
for d in data:  # no CAP_SETPCAP (8) any more
    d.effective &= ~(1 << 8)
    d.permitted &= ~(1 << 8)
assert libc.capset(ctypes.byref(Hdr(0x20080522, 0)), data) == 0
r = landwrap.run(["grep", "-E", "^Cap(Bnd|Eff|Prm)", "/proc/self/status"],
                 profile="default", capture_output=True, text=True)
print(r.returncode, r.stdout, r.stderr, file=sys.stderr)
sys.exit(r.returncode)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the capability drop is root's")
def test_capability_drop_with_a_shrunken_bounding_set() -> None:
    """The child drops what the bounding set held when landwrap read it;
    a capability gone since is recognised as gone (not a failure), even
    without CAP_SETPCAP to drop it with."""
    r = subprocess.run([sys.executable, "-c", _CAPS_CHILD], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "CapBnd:\t0000000000000000" in r.stderr
    assert "CapEff:\t0000000000000000" in r.stderr


def test_inherited_environment_is_the_current_one() -> None:
    """env=None: the child gets this process's environment as it is now
    (os.environ writes through to the C environment), as with subprocess."""
    key = "LW_SPAWN_TEST_ENV"
    os.environ[key] = "first"
    try:
        rs = landwrap.Ruleset.from_profile("default")
        out = landwrap.run(["sh", "-c", f'echo "${key}"'], ruleset=rs,
                           capture_output=True, text=True).stdout
        assert out == "first\n"
        os.environ[key] = "second"
        out = landwrap.run(["sh", "-c", f'echo "${key}"'], ruleset=rs,
                           capture_output=True, text=True).stdout
        assert out == "second\n"
        del os.environ[key]
        mine = landwrap.run(["env"], ruleset=rs, capture_output=True, text=True).stdout
        theirs = subprocess.run(["env"], capture_output=True, text=True).stdout
        assert key not in mine and sorted(mine.splitlines()) == sorted(theirs.splitlines())
    finally:
        os.environ.pop(key, None)


def test_given_environment_replaces_it() -> None:
    rs = landwrap.Ruleset.from_profile("default")
    out = landwrap.run(["env"], ruleset=rs, env={"ONLY": "this"}, capture_output=True,
                       text=True).stdout
    assert out == "ONLY=this\n"


# the companion filter's program, run by a classic-BPF interpreter ----------------

_NR = {
    "x86_64": dict(ioctl=16, socket=41, io_uring_setup=425, prlimit64=302,
                   sched_setaffinity=203, sched_setscheduler=144, sched_setparam=142,
                   sched_setattr=314, setpriority=141, ioprio_set=251),
    "aarch64": dict(ioctl=29, socket=198, io_uring_setup=425, prlimit64=261,
                    sched_setaffinity=122, sched_setscheduler=119, sched_setparam=118,
                    sched_setattr=274, setpriority=140, ioprio_set=30),
}
_ALLOW, _NOTIF, _ERRNO = 0x7FFF0000, 0x7FC00000, 0x00050000


def _run_bpf(prog: bytes, nr: int, arch: int, args: tuple[int, ...]) -> int:
    """What a struct sock_filter[] program returns for one system call."""
    data = (nr.to_bytes(4, "little", signed=nr < 0) + arch.to_bytes(4, "little")
            + bytes(8) + b"".join(a.to_bytes(8, "little") for a in args))
    insns = [(int.from_bytes(prog[i:i + 2], "little"), prog[i + 2], prog[i + 3],
              int.from_bytes(prog[i + 4:i + 8], "little")) for i in range(0, len(prog), 8)]
    acc, pc = 0, 0
    for _ in range(len(insns)):  # forward jumps only: no more steps than insns
        code, jt, jf, k = insns[pc]
        if code == 0x20:                       # BPF_LD | BPF_W | BPF_ABS
            acc = int.from_bytes(data[k:k + 4], "little")
        elif code == 0x54:                     # BPF_ALU | BPF_AND | BPF_K
            acc &= k
        elif code == 0x06:                     # BPF_RET | BPF_K
            return k
        elif code == 0x05:                     # BPF_JMP | BPF_JA
            pc += k
        elif code in (0x15, 0x35):             # BPF_JMP | BPF_JEQ / BPF_JGE, K
            pc += jt if (acc == k if code == 0x15 else acc >= k) else jf
        else:
            raise AssertionError(f"instruction {code:#x} unexpected")
        pc += 1
    raise AssertionError("ran off the end of the program")


def _expected(parts: int, self_pid: int, nr: int, arch: int, args: tuple[int, ...],
              names: dict[str, int], native: int) -> int:
    """The filter's documented decision (csrc/landwrap.c's comment block)."""
    eperm = _ERRNO | errno.EPERM
    if arch != native or (native == 0xC000003E and nr >= 0x40000000):
        return _ERRNO | errno.ENOSYS
    a = [x & 0xFFFFFFFF for x in args]
    if nr == names["ioctl"]:
        return eperm if a[1] in (0x5412, 0x541C) else _ALLOW
    if parts & 2 and nr == names["socket"]:
        stream = a[1] & ~(0o4000 | 0o2000000) & 0xFFFFFFFF == 1
        return (_ERRNO | errno.EPROTONOSUPPORT if a[0] in (2, 10) and stream and a[2] == 262
                else _ALLOW)
    if parts & 2 and nr == names["io_uring_setup"]:
        return _ERRNO | errno.ENOSYS
    if parts & 4:
        target = None
        if nr in (names["prlimit64"], names["sched_setaffinity"], names["sched_setscheduler"],
                  names["sched_setparam"], names["sched_setattr"]):
            target = a[0]
        elif nr == names["setpriority"]:
            if a[0] != 0:
                return eperm
            target = a[1]
        elif nr == names["ioprio_set"]:
            if a[0] != 1:
                return eperm
            target = a[1]
        if target is not None:
            if target in (0, self_pid):
                return _ALLOW
            return _NOTIF if parts & 8 else eperm
    return _ALLOW


@pytest.mark.skipif(os.uname().machine not in _NR, reason="filter built for x86_64/aarch64")
def test_the_filter_decides_every_system_call_as_documented() -> None:
    """Every system call number (and the x32 range, another architecture),
    with arguments that hit each branch: the program built for each part
    combination returns what the documentation says.  The dispatch is a
    binary search: a call routed to the wrong branch would show here."""
    from landwrap.engine import _binding

    names = _NR[os.uname().machine]
    native = _binding.seccomp_arch()
    special = set(names.values())
    arg_sets = [(0,) * 6, (0, 0x5412, 0, 0, 0, 0), (3, 0x541C, 0, 0, 0, 0),
                (3, 0x1_0000_5412, 0, 0, 0, 0), (2, 1, 262, 0, 0, 0), (10, 0o4001, 262, 0, 0, 0),
                (2, 2, 262, 0, 0, 0), (1, 1, 262, 0, 0, 0), (2, 1, 6, 0, 0, 0),
                (4321, 0, 0, 0, 0, 0), (1234, 0, 0, 0, 0, 0), (0, 4321, 0, 0, 0, 0),
                (0, 1234, 0, 0, 0, 0), (1, 4321, 0, 0, 0, 0), (1, 1234, 0, 0, 0, 0),
                (2, 1234, 0, 0, 0, 0), (1 << 32, 0, 0, 0, 0, 0)]
    for parts in (1, 3, 5, 7, 15):
        prog = _binding.seccomp_program(parts, 1234)
        for nr in [*range(0, 1100), 0x40000000, 0x40000010, -1]:
            for args in (arg_sets if nr in special else arg_sets[:1]):
                for arch in (native, 0x40000003):  # and i386
                    got = _run_bpf(prog, nr, arch, args)
                    want = _expected(parts, 1234, nr & 0xFFFFFFFF, arch, args, names, native)
                    assert got == want, (parts, nr, arch, args, hex(got), hex(want))


def test_chdir_failure_names_a_bytes_cwd_as_a_path() -> None:
    """A working directory given as bytes is named as the path it is, not
    as a Python bytes literal (b'...')."""
    e = spawn.child_error(None, "/bin/true", b"/no/such/dir", _binding.STAGE_CHDIR,
                          errno.ENOENT)
    assert str(e).startswith("cannot change directory to /no/such/dir: "), str(e)


_SIGNALS_CHILD = r"""
import signal, subprocess, sys
import landwrap
signal.signal(signal.SIGUSR1, lambda *a: None)  # caught here: not in the child
signal.signal(signal.SIGUSR2, signal.SIG_IGN)   # ignored: stays ignored, as in subprocess
# (Python ignores SIGPIPE itself: restore_signals gives the child the default)
rs = landwrap.Ruleset.from_profile("default")
argv = ["grep", "-E", "^Sig(Ign|Cgt|Blk)", "/proc/self/status"]
for restore in (True, False):
    ours = landwrap.run(argv, ruleset=rs, capture_output=True, text=True,
                        restore_signals=restore, check=True).stdout
    theirs = subprocess.run(argv, capture_output=True, text=True,
                            restore_signals=restore, check=True).stdout
    assert ours == theirs, (restore, ours, theirs)
    ign = int(ours.split("SigIgn:")[1].split()[0], 16)
    assert ign & (1 << (signal.SIGUSR2 - 1)), ours
    assert bool(ign & (1 << (signal.SIGPIPE - 1))) == (not restore), ours
print("ok")
"""


def test_child_signal_dispositions_match_subprocess() -> None:
    """The child starts with this process's handlers reset and its ignored
    signals kept, exactly as subprocess's (SIGPIPE/SIGXFSZ restored with
    restore_signals)."""
    cmd = [sys.executable, "-c", _SIGNALS_CHILD]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_a_nul_inside_a_string_never_splits_it_into_two_arguments() -> None:
    """The strings cross to C as one buffer split at NUL bytes: one inside
    an argument would make two (``x\\0--evil`` -> ``x``, ``--evil``) and an
    environment entry likewise; the binding refuses them itself."""
    for argv, envp in (([b"echo", b"x\0--evil"], None), ([b"echo"], [b"A=1\0LD_PRELOAD=/x"])):
        with pytest.raises(ValueError, match="null byte"):
            _binding.SpawnArgs(b"/bin/echo", argv, envp)
    with pytest.raises(ValueError, match="null byte"):
        _binding.SpawnArgs(b"/bin/echo\0x", [b"echo"], None)
    with pytest.raises(ValueError, match="null byte"):  # through spawn.start, as the CLI spawns
        spawn.start(None, "/bin/echo", ["echo", "x\0y"], None)
    with pytest.raises(ValueError, match="null byte"):
        spawn.start(None, "/bin/echo", ["echo"], None, cwd="/tmp\0/x")


def test_argv_and_environment_arrive_as_given(tmp_path) -> None:
    out = tmp_path / "out"
    script = b'printf "%s|" "$#" "$0" "$1" "$2" "$X" "$Y" > "$OUT"'
    args = _binding.SpawnArgs(b"/bin/sh", [b"sh", b"-c", script, b"zero", b"", b"two words"],
                              [b"X=", b"Y=y=z", b"OUT=" + bytes(out)])
    pid, failure = _binding.spawn(args)
    assert failure is None and os.waitpid(pid, 0)[1] == 0
    assert out.read_text() == "2|zero||two words||y=z|"


@pytest.mark.parametrize("other", ["a ruleset granting everything", "an ordinary file"])
def test_a_ruleset_descriptor_taken_by_another_file_is_caught_by_the_spawn(
        tmp_path, landlock, other) -> None:
    """A built ruleset is handed to the spawn without a check in Python;
    the spawn checks that its descriptor is still that ruleset.  Code that
    closed it and let another file take its number -- another ruleset that
    grants every read, or /dev/null -- must not change the next child's
    sandbox (it is built again), and that file is left open."""
    secret = tmp_path / "secret"
    secret.write_text("k")
    rs = landwrap.Ruleset.from_profile("default")
    cat = ["cat", str(secret)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    assert landwrap.run(cat, ruleset=rs, **quiet).returncode == 1  # denied: built
    fd = rs.plan()._fd
    read = compat.FS_RIGHTS["read_file"][0]
    if other.startswith("a ruleset"):
        new = _binding.create_ruleset(read, 0, 0, compat.ATTR_SIZE_FS)
        _binding.add_path_rules(new, ["/"], [read])
    else:
        new = os.open(os.devnull, os.O_RDONLY)
    os.dup2(new, fd, inheritable=False)  # closes the ruleset, as closerange would
    os.close(new)
    try:
        assert landwrap.run(cat, ruleset=rs, **quiet).returncode == 1
        assert landwrap.run(cat, ruleset=rs, **quiet).returncode == 1
        assert rs.plan()._fd != fd
        os.fstat(fd)  # still open: not ours, never closed
    finally:
        os.close(fd)
    # without the sandbox the file is readable (the test can fail)
    assert subprocess.run(cat, capture_output=True).stdout == b"k"


def test_fd_state_is_what_fstat_and_fcntl_say_and_marks_once(tmp_path) -> None:
    """The owner table's one C call (``_binding.fd_state``): the same
    st_dev, st_ino and status flags as os.fstat and fcntl, the mark or-ed
    in only when asked, and EBADF for a closed number."""
    import errno
    import fcntl

    path = tmp_path / "f"
    path.write_text("")
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert not flags & os.O_APPEND
        assert _binding.fd_state(fd) == (st.st_dev, st.st_ino, flags)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags  # looked at, not changed
        marked = _binding.fd_state(fd, os.O_APPEND)
        assert marked == (st.st_dev, st.st_ino, flags | os.O_APPEND)
        assert fcntl.fcntl(fd, fcntl.F_GETFL) == flags | os.O_APPEND
        assert _binding.fd_state(fd, os.O_APPEND) == marked
    finally:
        os.close(fd)
    with pytest.raises(OSError) as e:
        _binding.fd_state(fd)
    assert e.value.errno == errno.EBADF


def test_threads_that_find_the_ruleset_gone_build_it_once(landlock, monkeypatch) -> None:
    """Two threads spawning with the same plan, after code closed its
    ruleset's descriptor: the rebuild happens once (no second ruleset
    made and leaked by a thread that raced the first).  The binding's
    create_ruleset is slowed down (the kernel call itself is real) so that
    the second thread arrives while the first is building."""
    import threading
    import time

    rs = landwrap.Ruleset.from_profile("default")
    plan = rs.plan()
    fd = plan.ruleset_fd()
    os.close(fd)  # (as os.closerange would): the next spawn must build it anew
    made: list[int] = []
    real = _binding.create_ruleset

    def slow_create(*args):  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        new = real(*args)
        made.append(new)
        return new

    monkeypatch.setattr(_binding, "create_ruleset", slow_create)
    codes: list[int] = []
    start = threading.Barrier(2)

    def spawn() -> None:
        start.wait()
        codes.append(landwrap.run(["true"], ruleset=plan).returncode)

    threads = [threading.Thread(target=spawn) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [0, 0]
    assert len(made) == 1 and plan.ruleset_fd() == made[0]
    plan.close()


def test_a_child_forked_while_another_thread_builds_can_build(landlock, monkeypatch) -> None:
    """fork() while another thread holds a plan's build lock (it is making
    the ruleset): the child must not inherit the held lock, or its first
    spawn with that plan would wait for ever."""
    import threading
    import time

    plan = landwrap.Ruleset.from_profile("default").plan()
    real = _binding.create_ruleset
    inside = threading.Event()

    def slow_create(*args):  # type: ignore[no-untyped-def]
        inside.set()
        time.sleep(0.5)
        return real(*args)

    monkeypatch.setattr(_binding, "create_ruleset", slow_create)
    plan.close()  # the next ruleset_fd() builds (slowly)
    builder = threading.Thread(target=plan.ruleset_fd)
    builder.start()
    assert inside.wait(10)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            code = 0 if landwrap.run(["true"], ruleset=plan).returncode == 0 else 2
        finally:
            os._exit(code)
    builder.join()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the plan's build lock")
    assert os.waitstatus_to_exitcode(status) == 0
    plan.close()

"""Issue 8: what Landlock's hooks leave open, closed by the seccomp companion
filter, the capability drop, id checks and the subreaper launcher.

Every attack runs for real: tests/attacker.c (compiled here with gcc) makes
the system calls inside `landwrap run`, as root and as nobody (setpriv), and
prints NAME=ERRNO for each.  Each test also shows the allowed counterpart
still works, so a filter that refused everything would fail them.
"""

import errno
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tty

import pytest

from conftest import PY_ROX, lw, nobody_can_run_python

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/: the helpers
ROOT = os.geteuid() == 0
SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (and setpriv for nobody)")


@pytest.fixture(scope="module")
def attacker():
    """tests/attacker.c compiled into a directory everyone may enter."""
    if not shutil.which("gcc"):
        pytest.fail("gcc is needed to build tests/attacker.c")
    d = tempfile.mkdtemp(prefix="landwrap-attacker-")
    os.chmod(d, 0o755)
    exe = os.path.join(d, "attacker")
    subprocess.run(["gcc", "-O1", "-pthread", "-o", exe, os.path.join(HERE, "attacker.c")],
                   check=True)
    yield exe
    shutil.rmtree(d)


def results(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        name, eq, value = line.partition("=")
        if eq and value.lstrip("-").isdigit():
            out[name] = int(value)
    return out


def launch(exe, *cmd, opts=(), as_nobody=False, ctty=False, **kw):
    """`landwrap run` the attacker (as root, or with landwrap itself run as
    nobody; with *ctty*, in a new session whose controlling terminal is its
    stdin); returns (CompletedProcess, {name: errno})."""
    argv = [sys.executable, "-m", "landwrap", "run", "-q", "--rox", os.path.dirname(exe),
            *opts, "--", exe, *map(str, cmd)]
    if as_nobody:
        argv = SETPRIV + argv
    if ctty:
        argv = ["setsid", "--ctty"] + argv
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    r = subprocess.run(argv, text=True, cwd="/", timeout=60, **kw)
    return r, results(r.stdout)


#: As root, keep the capabilities that would let the sandbox act on another
#: root process anyway, so that only the seccomp filter can refuse.
NICE_CAPS = ["--cap-add", "sys_nice"] if ROOT else []


def users():
    return [False, True] if nobody_can_run_python() else [False]


@pytest.fixture
def outsider():
    """A process outside the sandbox, in its own process group."""
    p = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield p
    p.kill()
    p.wait()


def limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        return [line for line in f if line.startswith("Max cpu time")][0].split()[3:5]


# 1. typing into the calling shell ------------------------------------------

@pytest.mark.parametrize("as_nobody", users())
def test_tiocsti_cannot_inject_into_the_terminal(landlock, attacker, as_nobody):
    master, slave = pty.openpty()
    try:
        tty.setraw(slave)
        if as_nobody:
            os.fchown(slave, 65534, -1)
        # the pty is the launcher's stdin and controlling terminal: as nobody
        # TIOCSTI works there when dev.tty.legacy_tiocsti is 1
        r, res = launch(attacker, "tiocsti", "id>/tmp/x\n", as_nobody=as_nobody,
                        stdin=slave, ctty=True)
        assert r.returncode == 0, r.stderr
        assert res["tiocsti"] == errno.EPERM
        for sub in ("tiocsti64", "tioclinux"):
            r, res = launch(attacker, sub, as_nobody=as_nobody, stdin=slave, ctty=True)
            assert res[sub] == errno.EPERM, (sub, r.stdout, r.stderr)
        os.set_blocking(slave, False)
        try:
            queued = os.read(slave, 100)
        except BlockingIOError:
            queued = b""
        assert queued == b"", "input was injected into the terminal"
        # Control: outside landwrap the same call injects (so this test can
        # fail): as root always (CAP_SYS_ADMIN), as nobody on its controlling
        # terminal when dev.tty.legacy_tiocsti is 1.
        with open("/proc/sys/dev/tty/legacy_tiocsti") as f:
            legacy = f.read().strip() == "1"
        if not as_nobody or legacy:
            argv = ["setsid", "--ctty"] + (SETPRIV if as_nobody else []) + [attacker, "tiocsti", "Q"]
            subprocess.run(argv, stdin=slave, check=True, stdout=subprocess.DEVNULL)
            assert os.read(slave, 10) == b"Q"
    finally:
        os.close(master)
        os.close(slave)


def test_tiocsti_refused_by_restrict_in_process(landlock, attacker):
    code = (
        "import fcntl, termios, errno, landwrap\n"
        "landwrap.restrict(profile=False)\n"
        "try:\n"
        "    fcntl.ioctl(0, termios.TIOCSTI, b'X'); print('tiocsti=0')\n"
        "except OSError as e: print(f'tiocsti={e.errno}')\n")
    master, slave = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-c", code], stdin=slave, capture_output=True,
                           text=True, timeout=60)
        assert results(r.stdout) == {"tiocsti": errno.EPERM}, r.stderr
    finally:
        os.close(master)
        os.close(slave)


# 2. capabilities of a root sandbox -----------------------------------------

@needs_root
def test_root_sandbox_has_no_capabilities(landlock, attacker, tmp_path):
    r = lw("run", "-q", "--", "sh", "-c", "grep ^Cap /proc/self/status")
    assert r.returncode == 0, r.stderr
    caps = dict(line.split(":") for line in r.stdout.splitlines())
    assert {k: v.strip() for k, v in caps.items()} == {
        k: "0000000000000000" for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    os.chmod(tmp_path, 0o755)
    # (filesystem unrestricted: only the missing CAP_MKNOD can refuse it)
    r, res = launch(attacker, "mknod", tmp_path / "disk", opts=["--unrestricted-fs"])
    assert res["mknod_block"] == errno.EPERM, r.stderr
    assert not (tmp_path / "disk").exists()
    for sub, name in (("hostname", "sethostname"), ("rawsock", "raw_socket")):
        r, res = launch(attacker, sub)
        assert res[name] == errno.EPERM, (sub, r.stderr)
    # Control: the same program outside landwrap has the capability.
    out = subprocess.run([attacker, "rawsock"], capture_output=True, text=True)
    assert results(out.stdout)["raw_socket"] == 0


@needs_root
def test_cap_add_keeps_one_capability_across_execve(landlock, attacker, tmp_path):
    r, res = launch(attacker, "rawsock", opts=["--cap-add", "CAP_NET_RAW"])
    assert res["raw_socket"] == 0, r.stderr
    r = lw("run", "-q", "--cap-add", "net_raw", "--", "sh", "-c",
           "exec grep ^Cap /proc/self/status")
    caps = {k: v.strip() for k, v in (line.split(":") for line in r.stdout.splitlines())}
    assert caps["CapEff"] == caps["CapAmb"] == caps["CapBnd"] == f"{1 << 13:016x}"
    # mknod kept, yet `rw` no longer grants make_block: Landlock refuses it
    r, res = launch(attacker, "mknod", tmp_path / "disk",
                    opts=["--cap-add", "mknod", "--rw", tmp_path])
    assert res["mknod_block"] == errno.EACCES, r.stderr
    r, res = launch(attacker, "mkfifo", tmp_path / "fifo", opts=["--rw", tmp_path])
    assert res["mkfifo"] == 0, r.stderr


def test_cap_add_errors():
    r = lw("run", "--cap-add", "CAP_FLY", "--", "true")
    assert r.returncode == 125
    assert "--cap-add CAP_FLY: unknown capability" in r.stderr
    if ROOT:
        r = lw("run", "--cap-add", "net_raw", "--user", "nobody", "--", "true")
        assert r.returncode == 125 and "--user" in r.stderr
    if nobody_can_run_python():
        r = subprocess.run(SETPRIV + [sys.executable, "-m", "landwrap", "run", "--cap-add",
                                      "net_raw", "--", "true"],
                           capture_output=True, text=True, cwd="/")
        assert r.returncode == 125 and "needs root" in r.stderr, r.stderr


def test_rw_shorthand_has_no_device_nodes():
    from landwrap.engine import compat

    for name in ("rw", "rwx"):
        assert "make_block" not in compat.ACCESS_SETS[name]
        assert "make_char" not in compat.ACCESS_SETS[name]


# 3. ids ----------------------------------------------------------------------

@needs_root
@pytest.mark.parametrize("opt", ["--user", "--group"])
@pytest.mark.parametrize("value", ["4294967295", "4294967296", "-1", "99999999999999999999"])
def test_out_of_range_ids_are_usage_errors(opt, value):
    r = lw("run", "-q", f"{opt}={value}", "--", "id", "-u")
    assert r.returncode == 125
    assert value in r.stderr and "Traceback" not in r.stderr and "internal" not in r.stderr
    assert r.stdout == ""


def test_keep_fd_out_of_range():
    for value in ("99999999999", "-5"):
        r = lw("run", "-q", f"--keep-fd={value}", "--", "true")
        assert r.returncode == 125, r.stderr
        assert value in r.stderr and "internal" not in r.stderr


def test_api_rejects_out_of_range_ids_and_fds(landlock):
    import landwrap

    for kw in ({"user": 4294967295}, {"group": 4294967295}, {"user": 2 ** 40},
               {"pass_fds": [99999999999]}):
        with pytest.raises((ValueError, OverflowError)) as e:
            landwrap.run(["true"], profile="default", **kw)
        assert "4294967295" in str(e.value) or "99999999999" in str(e.value) \
            or str(2 ** 40) in str(e.value)
    for args, kw in ((["echo", "a\0b"], {}), (["true"], {"cwd": "/tmp\0/root"})):
        with pytest.raises(ValueError):
            landwrap.run(args, profile="default", **kw)


# 4. + E. other processes --------------------------------------------------------

@pytest.mark.parametrize("as_nobody", users())
def test_cannot_reach_outside_processes(landlock, attacker, as_nobody):
    if as_nobody:
        target = subprocess.Popen(SETPRIV + ["sleep", "120"], start_new_session=True)
    else:
        target = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        pid = target.pid
        before = limits(pid)
        for cmd, names in ((["prlimit", pid], ["prlimit"]),
                           (["setpriority", 0, pid], ["setpriority"]),
                           (["affinity", pid], ["sched_setaffinity"]),
                           (["scheduler", pid], ["sched_setscheduler", "sched_setparam",
                                                 "sched_setattr"]),
                           (["ioprio", 1, pid], ["ioprio_set"])):
            r, res = launch(attacker, *cmd, as_nobody=as_nobody,
                            opts=[] if as_nobody else NICE_CAPS)
            for name in names:
                assert res[name] == errno.EPERM, (name, r.stdout, r.stderr)
        assert limits(pid) == before
        assert target.poll() is None
        # process groups and users: refused whatever the id (here ids with no
        # process at all: ESRCH from the kernel without the filter)
        r, res = launch(attacker, "groups", 987654, 54321, as_nobody=as_nobody,
                        opts=[] if as_nobody else NICE_CAPS)
        assert res == {"pgrp_nice": errno.EPERM, "user_nice": errno.EPERM,
                       "ioprio_pgrp": errno.EPERM, "ioprio_user": errno.EPERM}, r.stderr
    finally:
        target.kill()
        target.wait()


@pytest.mark.parametrize("as_nobody", users())
def test_own_threads_and_limits_still_work(landlock, attacker, as_nobody):
    r, res = launch(attacker, "own", as_nobody=as_nobody)
    assert r.returncode == 0, r.stderr
    assert res == {"setrlimit": 0, "prlimit_self": 0, "nice_self": 0, "affinity_self": 0,
                   "thread_setaffinity_np": 0, "thread_setschedparam": 0,
                   "thread_nice_own_tid": 0, "thread_affinity_own_tid": 0,
                   "child_prlimit_self": 0}, r.stdout


def test_unrestricted_scope_lifts_the_process_part(landlock, attacker, outsider):
    # as root the sandbox needs CAP_SYS_NICE to touch a process with more
    # capabilities than it has (the capability drop alone would refuse)
    r, res = launch(attacker, "affinity", outsider.pid,
                    opts=["--unrestricted-scope"] + NICE_CAPS)
    assert res["sched_setaffinity"] == 0, r.stderr


def test_cannot_lower_the_launchers_cpu_limit(landlock, attacker):
    # The attacker aims at its parent, the launcher, which must survive and
    # return the attacker's status.
    script = f'{attacker} prlimit $PPID; {attacker} setpriority 0 $PPID; exit 7'
    # (issue 8 did it to a --log-denials launcher; the plain launcher is the
    # same process, and --log-denials shares a machine-wide audit lock)
    r = lw("run", "-q", "--rox", os.path.dirname(attacker), "--",
           "sh", "-c", script.replace("$PPID", "$(ps -o ppid= -p $$)"))
    assert r.returncode == 7, r.stderr
    res = results(r.stdout)
    assert res == {"prlimit": errno.EPERM, "setpriority": errno.EPERM}, r.stdout


def test_api_spawn_and_restrict_refuse_outside_processes(landlock, attacker, outsider):
    import landwrap

    r = landwrap.run([attacker, "prlimit", str(outsider.pid)], profile="default",
                     rox=os.path.dirname(attacker), capture_output=True, text=True)
    assert results(r.stdout) == {"prlimit": errno.EPERM}, r.stderr
    r = landwrap.run([attacker, "own"], profile="default", rox=os.path.dirname(attacker),
                     capture_output=True, text=True)
    res = results(r.stdout)
    # a plain filter: the process itself (id 0, its pid) passes; a secondary
    # thread aiming at itself by tid is refused (documented)
    assert res["setrlimit"] == res["nice_self"] == res["affinity_self"] == 0
    assert res["thread_setaffinity_np"] == errno.EPERM
    # restrict(): a thread started before it is covered too (TSYNC)
    code = (
        "import os, sys, threading, landwrap\n"
        "go = threading.Event(); res = {}\n"
        "def aim():\n"
        "    go.wait()\n"
        "    try:\n"
        "        os.sched_setaffinity(int(sys.argv[1]), {0}); res['x'] = 0\n"
        "    except OSError as e: res['x'] = e.errno\n"
        "t = threading.Thread(target=aim); t.start()\n"
        "landwrap.restrict(profile=False)\n"
        "go.set(); t.join()\n"
        "os.sched_setaffinity(0, os.sched_getaffinity(0))\n"
        "print(f\"affinity={res['x']}\")\n")
    r = subprocess.run([sys.executable, "-c", code, str(outsider.pid)], capture_output=True,
                       text=True, timeout=60)
    assert results(r.stdout) == {"affinity": errno.EPERM}, r.stderr


# 5. MPTCP -----------------------------------------------------------------------

def test_mptcp_cannot_go_around_tcp_rules(landlock, attacker):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        r, res = launch(attacker, "mptcp", port, opts=["--connect-tcp", str(port)])
        assert res["mptcp_socket"] == errno.EPROTONOSUPPORT, r.stderr
        assert res["mptcp6_socket"] == errno.EPROTONOSUPPORT
        assert res["tcp_socket"] == 0
        # io_uring creates sockets without the socket system call
        r, res = launch(attacker, "uring")
        assert res == {"io_uring_setup": errno.ENOSYS}, (r.stdout, r.stderr)
        r, res = launch(attacker, "uring", opts=["--unrestricted-net"])
        assert res == {"io_uring_setup": 0, "uring_mptcp_socket": 0}, (r.stdout, r.stderr)
        # Control: with the network unrestricted, MPTCP is the kernel's business.
        srv.settimeout(10)
        r, res = launch(attacker, "mptcp", port, opts=["--unrestricted-net"])
        assert res["mptcp_socket"] == 0, r.stderr
        assert res["mptcp_connect"] == 0
        conn, _ = srv.accept()
        assert conn.recv(5) == b"hello"
        conn.close()
    finally:
        srv.close()


# 6. nothing outlives the run ------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("ignore_term", [0, 1])
@pytest.mark.parametrize("as_nobody", users())
def test_setsid_grandchild_does_not_outlive_landwrap(landlock, attacker, ignore_term, as_nobody):
    d = tempfile.mkdtemp(prefix="landwrap-daemon-")
    os.chmod(d, 0o777)
    pidfile = os.path.join(d, "pid")
    try:
        r, res = launch(attacker, "daemon", pidfile, ignore_term,
                        opts=["--rw", d], as_nobody=as_nobody)
        assert r.returncode == 0 and res == {"daemon": 0}, r.stderr
        pid = int(open(pidfile).read())
        alive = _alive(pid)
        if alive:  # do not leave it behind when the test fails
            os.kill(pid, signal.SIGKILL)
        assert not alive, "the setsid grandchild survived landwrap"
    finally:
        shutil.rmtree(d)


def test_background_job_and_wait_still_work(landlock):
    r = lw("run", "-q", "--", "sh", "-c", "sleep 0.1 & wait; echo done $?")
    assert r.returncode == 0 and r.stdout == "done 0\n", r.stderr


def test_interactive_shell_under_a_pty(landlock):
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["PS1"] = "$ "
        os.execv(sys.executable, [sys.executable, "-m", "landwrap", "run", "-q", "--",
                                  "sh", "-i"])
    out = b""
    try:
        os.write(fd, b"sleep 0.1 & wait; echo x$((6*7))y\n")
        os.write(fd, b"exit 3\n")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if ready:
                try:
                    chunk = os.read(fd, 1024)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"x42y" in out, out
    assert os.waitstatus_to_exitcode(status) == 3


# the filter is part of the sandbox -------------------------------------------------

def test_dry_run_shows_the_companion():
    r = lw("run", "--dry-run", "--json", "--", "true")
    comp = json.loads(r.stdout)["companion"]
    assert comp["seccomp_filter"] and comp["terminal_injection"]
    assert comp["mptcp"] and comp["other_processes"]
    r = lw("run", "--dry-run", "--json", "--unrestricted-net", "--unrestricted-scope",
           "--", "true")
    comp = json.loads(r.stdout)["companion"]
    assert comp["terminal_injection"] and not comp["mptcp"] and not comp["other_processes"]
    r = lw("run", "--dry-run", "--", "true")
    assert "TIOCSTI" in r.stdout and "MPTCP" in r.stdout


def test_strict_mode_refuses_without_seccomp(landlock):
    nr = {"x86_64": 317, "aarch64": 277}[os.uname().machine]
    base = [sys.executable, os.path.join(HERE, "seccomp_exec.py"), "ENOSYS", str(nr), "--",
            sys.executable, "-m", "landwrap", "run"]
    r = subprocess.run(base + ["--", "true"], capture_output=True, text=True)
    assert r.returncode == 125
    assert "seccomp companion filter cannot be installed" in r.stderr
    r = subprocess.run(base + ["--best-effort", "--", "echo", "ran"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout == "ran\n"
    assert "seccomp companion filter" in r.stderr


def test_foreign_architecture_calls_are_refused():
    from landwrap.engine import _binding

    if os.uname().machine != "x86_64":
        pytest.skip("x86_64 only: i386/x32 entry points")
    prog = _binding.seccomp_program(_binding.SC_TTY, 1)
    # first instruction loads the arch, the second compares with AUDIT_ARCH_X86_64
    assert prog[:8] == bytes.fromhex("2000000004000000")
    assert int.from_bytes(prog[12:16], "little") == 0xC000003E


def test_learn_runs_the_command_with_the_companion_and_no_capabilities():
    """`learn` runs untrusted commands too: the seccomp filter and (as root)
    the capability drop apply to its rounds as to `landwrap run` (before,
    learn called the launcher without them)."""
    r = lw("learn", "--once", "--", "grep", "-E", "^(CapEff|CapBnd|Seccomp):",
           "/proc/self/status", stdin=subprocess.DEVNULL, timeout=120)
    # the command's own output goes to stderr (stdout is the profile)
    fields = dict(line.split(":\t") for line in r.stderr.splitlines() if ":\t" in line)
    assert fields.get("Seccomp") == "2", r.stdout + r.stderr
    if os.geteuid() == 0:
        assert fields["CapEff"] == "0000000000000000"
        assert fields["CapBnd"] == "0000000000000000"

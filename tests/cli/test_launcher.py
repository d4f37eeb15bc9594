"""The `landwrap run` launcher as a real process: exit statuses, signal
forwarding, no orphans, no leaked file descriptors, environment, ABI caps,
fail-closed behaviour when the Landlock system calls fail, and nesting."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import landwrap
from conftest import PY_ROX, lw, lw_py

pytestmark = pytest.mark.usefixtures("landlock")

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/: the helpers
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(landwrap.__file__)))
LW = [sys.executable, "-m", "landwrap"]


# exit statuses -----------------------------------------------------------

def test_exit_status_is_the_targets():
    assert lw("run", "-q", "--", "sh", "-c", "exit 3").returncode == 3
    assert lw("run", "-q", "--", "true").returncode == 0


def _launch(prelude, *args):
    """landwrap.__main__.launch() (the installed launcher's entry point)
    with *args*, after the Python statements *prelude*; stdout buffered, as
    the launcher's -I makes it whatever PYTHONUNBUFFERED says."""
    code = (f"import sys\n{prelude}\nsys.argv = ['landwrap'] + sys.argv[1:]\n"
            "from landwrap.__main__ import launch\nlaunch()\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_fast_exit_keeps_the_status_and_flushes_what_was_printed():
    """After `run` and `status`, launch() leaves with os._exit (no
    interpreter teardown): nothing printed may be lost on the way."""
    r = _launch("", "run", "--dry-run", "--", "true")
    assert r.returncode == 0 and "Landlock" in r.stdout and r.stdout.endswith("\n")
    r = _launch("print('x' * 100000, end='')", "run", "-q", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7 and r.stdout == "x" * 100000
    r = _launch("", "status")
    assert r.returncode == 0 and "Security model here" in r.stdout and \
        r.stdout.rstrip().endswith(")")  # its last line, "(AppArmor, ... too)"


@pytest.mark.parametrize("prelude", [
    "import atexit; atexit.register(print, 'atexit ran')",
    "import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), "
    "print('atexit ran'))).start()"])
def test_fast_exit_leaves_the_ordinary_way_when_something_is_pending(prelude):
    """An atexit handler or a thread still running: launch() does not cut
    them short with os._exit."""
    r = _launch(prelude, "run", "-q", "--", "sh", "-c", "exit 3")
    assert r.returncode == 3 and r.stdout == "atexit ran\n", r.stderr


def test_garbage_collector_is_off_for_start_up_and_on_while_the_target_runs():
    """launch() turns the collector off for `run`'s start-up; it is on
    again (and start-up's objects frozen) before the launcher waits."""
    prelude = ("import gc\nimport landwrap.cli.run as R, landwrap.engine.launcher as L\n"
               "def spy(f, what):\n"
               "    def g(*a, **k):\n"
               "        print(what, gc.isenabled(), gc.get_freeze_count() > 0, flush=True)\n"
               "        return f(*a, **k)\n"
               "    return g\n"
               "R.build_profile = spy(R.build_profile, 'start-up')\n"
               "L.run = spy(L.run, 'launch')\n")
    r = _launch(prelude, "run", "-q", "--", "true")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == ["start-up False False", "launch True True", ""]


def test_killed_by_signal_is_128_plus_n():
    assert lw("run", "-q", "--", "sh", "-c", "kill -TERM $$").returncode == 128 + 15
    assert lw("run", "-q", "--", "sh", "-c", "kill -KILL $$").returncode == 128 + 9


def test_not_found_is_127():
    r = lw("run", "-q", "--", "no-such-command-xyz")
    assert r.returncode == 127
    assert "command not found" in r.stderr
    assert lw("run", "-q", "--", "/no/such/file").returncode == 127


def test_not_executable_is_126(tmp_path):
    f = tmp_path / "plain"
    f.write_text("#!/bin/sh\n")
    r = lw("run", "-q", "--rox", tmp_path, "--", f)
    assert r.returncode == 126
    assert "denied by the sandbox" not in r.stderr


def test_landwrap_errors_are_125(tmp_path):
    marker = tmp_path / "ran"
    cases = [
        ["--ro", tmp_path / "missing"],
        ["--connect-tcp", "70000"],
        ["--connect-tcp", "80-20"],
        ["--bind-tcp", "http"],
        ["--abi", "11"],
        ["--abi", "x"],
        ["--json"],
        ["--no-such-option"],
        ["--env", "=x"],
        ["--keep-fd", "987"],
    ]
    for opts in cases:
        r = lw("run", *opts, "--", "touch", marker)
        assert r.returncode == 125, (opts, r.stderr)
        assert "Traceback" not in r.stderr
        assert r.stderr.strip(), opts
        assert not marker.exists(), opts


def test_missing_path_message_and_ignore_missing(tmp_path):
    r = lw("run", "--ro", tmp_path / "missing", "--", "true")
    assert r.returncode == 125
    assert f"--ro {tmp_path / 'missing'}" in r.stderr
    assert "No such file or directory" in r.stderr
    assert "--ignore-missing" in r.stderr
    r = lw("run", "-q", "--ignore-missing", "--ro", tmp_path / "missing", "--", "true")
    assert r.returncode == 0, r.stderr


def test_bad_port_message():
    r = lw("run", "--connect-tcp", "70000", "--", "true")
    assert "bad port '70000': ports are 0-65535" in r.stderr


def test_missing_command_is_a_usage_error():
    r = lw("run")
    assert r.returncode == 125
    assert "Missing argument" in r.stderr


def test_help_exits_zero():
    r = lw("run", "--help")
    assert r.returncode == 0
    assert "--connect-tcp" in r.stdout and "Exit status" in r.stdout


# signals ------------------------------------------------------------------

# The target reports with os.write: a handler that print()s can interrupt a
# print() still flushing "ready" and fail with a reentrant-call error.
TARGET = """
import os, signal, sys, time
def handler(n, f):
    os.write(1, b"got %d\\n" % n)
    if n == signal.SIGTERM:
        os._exit(0)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
          signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
    signal.signal(s, handler)
os.write(1, b"ready\\n")
while True:
    time.sleep(0.05)
"""


def test_signals_are_forwarded():
    p = subprocess.Popen(LW + ["run", "-q", *map(str, PY_ROX), "--", sys.executable,
                               "-I", "-S", "-c", TARGET],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        sent = [signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGWINCH, signal.SIGTERM]
        for s in sent:
            p.send_signal(s)
            assert p.stdout.readline().split() == ["got", str(int(s))]
        assert p.wait(10) == 0
    finally:
        p.kill()
        p.wait()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_orphan_when_launcher_is_killed():
    p = subprocess.Popen(LW + ["run", "-q", "--", "sh", "-c", "echo $$; exec sleep 60"],
                         stdout=subprocess.PIPE, text=True)
    child = int(p.stdout.readline())
    assert _alive(child)
    p.kill()
    p.wait()
    deadline = time.time() + 5
    while _alive(child) and time.time() < deadline:
        time.sleep(0.02)
    assert not _alive(child)


# file descriptors and environment -----------------------------------------

def test_fds_are_not_leaked_unless_kept(tmp_path):
    f = open(tmp_path / "secret", "w+")
    fd = os.dup2(f.fileno(), 42, inheritable=True)
    try:
        code = "import os\ntry:\n os.fstat(42); print('open')\nexcept OSError: print('closed')"
        r = lw_py(code, pass_fds=(42,))
        assert r.stdout.strip() == "closed", r.stderr
        r = lw_py(code, "--keep-fd", "42", pass_fds=(42,))
        assert r.stdout.strip() == "open", r.stderr
    finally:
        os.close(fd)
        f.close()


def test_environment():
    env = dict(os.environ, SECRET_TOKEN="x", LC_TIME="C", KEEP_ME="1")
    r = lw("run", "-q", "--", "env", env=env)
    assert "SECRET_TOKEN=x" in r.stdout
    r = lw("run", "-q", "--clean-env", "--env", "KEEP_ME", "--env", "SET=2", "--", "env", env=env)
    lines = set(r.stdout.splitlines())
    assert "SECRET_TOKEN=x" not in lines
    assert {"KEEP_ME=1", "SET=2", "LC_TIME=C"} <= lines
    names = {line.split("=", 1)[0] for line in lines}
    assert names <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "TERM", "TZ",
                     "TMPDIR", "KEEP_ME", "SET", "LC_TIME"}, names


# ABI caps and compatibility modes -------------------------------------------

def test_abi3_refuses_explicit_tcp_in_strict(tmp_path):
    marker = tmp_path / "ran"
    r = lw("run", "--abi", "3", "--connect-tcp", "80", "--", "touch", marker)
    assert r.returncode == 125
    assert "connect_tcp" in r.stderr and "ABI 4, Linux 6.7" in r.stderr
    assert "--best-effort" in r.stderr
    assert not marker.exists()


def test_abi3_best_effort_runs_and_says_what_it_dropped(tmp_path):
    r = lw("run", "--abi", "3", "--best-effort", "--rw", tmp_path, "--connect-tcp", "80",
           "--", "touch", tmp_path / "ran")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ran").exists()
    # what was asked for (connect_tcp) and dropped; bind_tcp was implicit
    assert "connect_tcp (ABI 4, Linux 6.7)" in r.stderr and "bind_tcp" not in r.stderr
    assert "best-effort" in r.stderr


def test_abi3_base_drops_implicit_tcp_and_scopes_quietly_and_lists_them():
    # Implicit restrictions the kernel lacks are not warned about on every
    # run; -v and --dry-run list them.
    r = lw("run", "--abi", "3", "--", "true")
    assert r.returncode == 0 and r.stderr == ""
    r = lw("run", "-v", "--abi", "3", "--", "true")
    assert r.returncode == 0
    assert "bind_tcp, connect_tcp (ABI 4" in r.stderr
    assert "abstract_unix_socket, signal (ABI 6" in r.stderr
    d = json.loads(lw("run", "--abi", "3", "--dry-run", "--json", "--", "true").stdout)
    assert any("bind_tcp, connect_tcp (ABI 4" in x for x in d["unenforceable"])
    assert d["dropped"] == [] and d["status"] == "fully"


def test_abi3_still_enforces_the_filesystem(tmp_path):
    (tmp_path / "f").write_text("x")
    r = lw("run", "-q", "--abi", "3", "--", "cat", tmp_path / "f")
    assert r.returncode == 1 and "Permission denied" in r.stderr


def test_abi_cap_is_visible_in_dry_run():
    d = json.loads(lw("run", "--abi", "4", "--dry-run", "--json", "--", "true").stdout)
    assert d["abi"] == 4
    assert "ioctl_dev" not in d["handled_access_fs"]
    assert d["scoped"] == []
    assert d["status"] == "fully"   # the scopes were not asked for explicitly
    assert any("abstract_unix_socket, signal (ABI 6" in x for x in d["unenforceable"])


# fail closed when the kernel will not cooperate ------------------------------

def _seccomp(err, nrs, *cmd):
    args = [sys.executable, os.path.join(HERE, "seccomp_exec.py"), err]
    if nrs:
        args.append(nrs)
    return subprocess.run(args + ["--", *map(str, cmd)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("err,words", [
    ("ENOSYS", ["not supported by this kernel", "CONFIG_SECURITY_LANDLOCK"]),
    ("EOPNOTSUPP", ["disabled", "lsm="]),
])
def test_no_landlock_refuses_to_run(tmp_path, err, words):
    marker = tmp_path / "ran"
    r = _seccomp(err, None, *LW, "run", "--", "touch", marker)
    assert r.returncode == 125, r.stderr
    for w in words:
        assert w in r.stderr
    assert not marker.exists()
    st = _seccomp(err, None, *LW, "status", "--json")
    assert json.loads(st.stdout)["landlock"] == err


def test_no_landlock_best_effort_runs_but_says_not_sandboxed(tmp_path):
    marker = tmp_path / "ran"
    r = _seccomp("ENOSYS", None, *LW, "run", "--best-effort", "--", "touch", marker)
    assert r.returncode == 0, r.stderr
    assert "NOT SANDBOXED" in r.stderr
    assert marker.exists()


@pytest.mark.parametrize("nr,err", [("446", "EPERM"), ("445", "EINVAL"), ("444", "ENOMEM")])
def test_enforcement_failure_never_runs_the_target(tmp_path, nr, err):
    marker = tmp_path / "ran"
    r = _seccomp(err, nr, *LW, "run", "--", "touch", marker)
    assert r.returncode == 125, r.stderr
    assert not marker.exists()
    assert "Traceback" not in r.stderr


# nesting ------------------------------------------------------------------

def test_nested_sandbox_can_only_narrow(tmp_path):
    for d in "abc":
        (tmp_path / d).mkdir()
    inner = [sys.executable, "-m", "landwrap", "run", "-q", *map(str, PY_ROX),
             "--rox", PKG_ROOT, "--rw", str(tmp_path / "b"), "--rw", str(tmp_path / "c"), "--",
             "sh", "-c",
             f"touch {tmp_path}/a/x; echo a=$?; touch {tmp_path}/b/x; echo b=$?; "
             f"touch {tmp_path}/c/x; echo c=$?"]
    r = lw("run", "-q", *PY_ROX, "--rox", PKG_ROOT, "--rw", tmp_path / "a",
           "--rw", tmp_path / "b", "--", *inner)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["a=1", "b=0", "c=1"]
    assert not (tmp_path / "a" / "x").exists()
    assert not (tmp_path / "c" / "x").exists()


# dry run and status --------------------------------------------------------

def test_dry_run_json(tmp_path):
    r = lw("run", "--dry-run", "--json", "--rw", tmp_path, "--connect-tcp", "443",
           "--", "ls")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["program"].endswith("/ls")
    assert {"path": str(tmp_path), "type": "dir"}.items() <= next(
        x for x in d["rules"] if x["path"] == str(tmp_path)).items()
    assert d["ports"] == [{"port": 443, "access": ["connect_tcp"],
                           "from": ["--connect-tcp 443"]}]
    assert "write_file" in d["handled_access_fs"]


def test_dry_run_does_not_run(tmp_path):
    r = lw("run", "--dry-run", "--rw", tmp_path, "--", "touch", tmp_path / "x")
    assert r.returncode == 0
    assert not (tmp_path / "x").exists()
    assert "Path rules" in r.stdout and str(tmp_path) in r.stdout


def test_python_dash_m_and_console_script_agree():
    import shutil
    exe = shutil.which("landwrap", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("console script not installed next to this interpreter")
    r = subprocess.run([exe, "run", "-q", "--", "sh", "-c", "exit 5"])
    assert r.returncode == 5


def test_dry_run_lists_globs_that_match_nothing(tmp_path):
    prof = tmp_path / "p.toml"
    prof.write_text(f'[filesystem]\nro = ["{tmp_path}/nothing-*"]\n')
    r = lw("run", "--dry-run", "-p", prof, "--", "true")
    assert r.returncode == 0, r.stderr
    assert f"{tmp_path}/nothing-*" in r.stdout and "matches nothing" in r.stdout


# what start-up imports ------------------------------------------------------

#: Modules that cost start-up time and that `run`, `status` (and
#: `status --json`) and `run --log-denials` do without (typing alone pulls in re, enum,
#: functools and contextlib: some 10 ms here).
_HEAVY = ("typing", "re", "enum", "click", "json", "tomllib", "tomli", "socket",
          "selectors", "signal", "subprocess", "dataclasses", "contextlib", "tempfile",
          "shutil", "shlex", "bisect")
#: ... and those `status` does without besides (some 0.1 ms each): it makes
#: no kernel ruleset (fcntl), starts nothing (the companion module), names
#: errno only without Landlock, and plan.py does without itertools.
_STATUS_LAZY = ("fcntl", "errno", "itertools", "landwrap.engine.companion")


@pytest.mark.parametrize("args", [["status"], ["status", "--json"],
                                  ["run", "-q", "--", "/bin/true"],
                                  ["run", "--log-denials", "-q", "--", "/bin/true"]])
def test_start_up_imports_nothing_heavy(args, tmp_path):
    import _cffi_backend

    if "--log-denials" in args and os.geteuid() != 0:
        pytest.skip("--log-denials reads the kernel's records as root (strace otherwise)")
    heavy = _HEAVY + (_STATUS_LAZY if args[0] == "status" else ())
    code = ("import sys\nsys.argv = ['landwrap'] + sys.argv[1:]\n"
            "from landwrap import __main__ as m\n"
            "try:\n    m.main()\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', sorted(x for x in {heavy!r} if x in sys.modules), "
            "file=sys.stderr)\n")
    (tmp_path / "cache").mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([PKG_ROOT, os.path.dirname(_cffi_backend.__file__)])}
    for _ in range(2):  # the first run fills the parse cache (and may parse TOML)
        r = subprocess.run([sys.executable, "-S", "-c", code, *args], capture_output=True,
                           text=True, timeout=60, env=env, cwd=str(tmp_path))
    loaded = [l for l in r.stderr.splitlines() if l.startswith("LOADED ")]
    assert loaded == ["LOADED []"], r.stderr

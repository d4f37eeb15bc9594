"""Enforcement on the real kernel: for each family of rights, a sandboxed
process shows the allowed action succeeds and the forbidden one fails with
EACCES/EPERM (or EXDEV where Landlock documents it)."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest

from conftest import PY_ROX, lw, lw_py, nobody_can_run_python

pytestmark = pytest.mark.usefixtures("landlock")

PROBE = textwrap.dedent("""
    import errno, os, socket, sys
    def probe(name, fn):
        try:
            fn()
            print(name, "OK")
        except OSError as e:
            print(name, errno.errorcode.get(e.errno, e.errno))
""")


def run_probes(body, *opts):
    """Run probe(...) calls inside the sandbox; {name: result}."""
    r = lw_py(PROBE + textwrap.dedent(body), *opts)
    assert r.returncode == 0, r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    return out


@pytest.fixture
def tree(tmp_path):
    """allowed/ and outside/ directories, each with a file f."""
    for d in ("a", "b", "outside"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "f").write_text(f"{d}\n")
    return tmp_path


def test_read(tree):
    res = run_probes(f"""
        probe("in", lambda: open("{tree}/a/f").read())
        probe("out", lambda: open("{tree}/outside/f").read())
    """, "--ro", tree / "a")
    assert res == {"in": "OK", "out": "EACCES"}


def test_list_dir(tree):
    res = run_probes(f"""
        probe("in", lambda: os.listdir("{tree}/a"))
        probe("out", lambda: os.listdir("{tree}/outside"))
        probe("file_rule_dir", lambda: os.listdir("{tree}/b"))
        probe("file_rule_read", lambda: open("{tree}/b/f").read())
    """, "--ro", tree / "a", "--ro", tree / "b" / "f")
    assert res == {"in": "OK", "out": "EACCES", "file_rule_dir": "EACCES",
                   "file_rule_read": "OK"}


def test_write(tree):
    res = run_probes(f"""
        probe("rw", lambda: open("{tree}/a/f", "a").write("x"))
        probe("ro", lambda: open("{tree}/b/f", "a").write("x"))
    """, "--rw", tree / "a", "--ro", tree / "b")
    assert res == {"rw": "OK", "ro": "EACCES"}
    assert (tree / "a" / "f").read_text() == "a\nx"
    assert (tree / "b" / "f").read_text() == "b\n"


def test_create(tree):
    res = run_probes(f"""
        probe("file", lambda: open("{tree}/a/new", "x").close())
        probe("dir", lambda: os.mkdir("{tree}/a/newdir"))
        probe("fifo", lambda: os.mkfifo("{tree}/a/fifo"))
        probe("sym", lambda: os.symlink("f", "{tree}/a/sym"))
        probe("ro_file", lambda: open("{tree}/b/new", "x").close())
        probe("ro_dir", lambda: os.mkdir("{tree}/b/newdir"))
        probe("ro_sym", lambda: os.symlink("f", "{tree}/b/sym"))
    """, "--rw", tree / "a", "--ro", tree / "b")
    assert res == {"file": "OK", "dir": "OK", "fifo": "OK", "sym": "OK",
                   "ro_file": "EACCES", "ro_dir": "EACCES", "ro_sym": "EACCES"}
    assert not (tree / "b" / "new").exists()


def test_remove(tree):
    (tree / "a" / "d").mkdir()
    (tree / "b" / "d").mkdir()
    res = run_probes(f"""
        probe("unlink", lambda: os.unlink("{tree}/a/f"))
        probe("rmdir", lambda: os.rmdir("{tree}/a/d"))
        probe("ro_unlink", lambda: os.unlink("{tree}/b/f"))
        probe("ro_rmdir", lambda: os.rmdir("{tree}/b/d"))
    """, "--rw", tree / "a", "--ro", tree / "b")
    assert res == {"unlink": "OK", "rmdir": "OK", "ro_unlink": "EACCES", "ro_rmdir": "EACCES"}
    assert (tree / "b" / "f").exists()


def test_refer_rename_and_link_across_directories(tree):
    res = run_probes(f"""
        probe("rename_rw_rw", lambda: os.rename("{tree}/a/f", "{tree}/b/moved"))
        probe("link_rw_rw", lambda: os.link("{tree}/b/moved", "{tree}/a/linked"))
        probe("rename_to_ro", lambda: os.rename("{tree}/b/moved", "{tree}/outside/x"))
        probe("link_from_ro", lambda: os.link("{tree}/outside/f", "{tree}/a/stolen"))
    """, "--rw", tree / "a", "--rw", tree / "b", "--ro", tree / "outside")
    assert res["rename_rw_rw"] == "OK"
    assert res["link_rw_rw"] == "OK"
    assert res["rename_to_ro"] in ("EACCES", "EXDEV")
    assert res["link_from_ro"] in ("EACCES", "EXDEV")
    assert (tree / "b" / "moved").exists() and not (tree / "outside" / "x").exists()


def test_refer_on_abi1_keeps_the_rest_of_the_sandbox(tree):
    """ABI 1 cannot allow refer: best-effort must not turn the sandbox off.
    Cross-directory renames fail with EXDEV, same-directory ones work, and
    reads outside are still denied."""
    r = lw_py(PROBE + textwrap.dedent(f"""
        probe("cross", lambda: os.rename("{tree}/a/f", "{tree}/b/moved"))
        probe("same", lambda: os.rename("{tree}/a/f", "{tree}/a/g"))
        probe("outside", lambda: open("{tree}/outside/f").read())
    """), "--abi", "1", "--rw", tree / "a", "--rw", tree / "b")
    assert r.returncode == 0, r.stderr
    assert "cross EXDEV" in r.stdout
    assert "same OK" in r.stdout
    assert "outside EACCES" in r.stdout


def test_truncate(tree):
    res = run_probes(f"""
        probe("rw", lambda: os.truncate("{tree}/a/f", 0))
        probe("ro", lambda: os.truncate("{tree}/b/f", 0))
    """, "--rw", tree / "a", "--ro", tree / "b")
    assert res == {"rw": "OK", "ro": "EACCES"}
    assert (tree / "b" / "f").read_text() == "b\n"


def test_truncate_is_not_restricted_below_abi3_and_says_so(tree):
    # Not asked for explicitly, so not warned about on every run: -v (and
    # --dry-run, `landwrap status`) list it.
    cmd = ["--abi", "2", "--ro", tree / "b", "--",
           sys.executable, "-I", "-S", "-c", f"import os; os.truncate('{tree}/b/f', 0)"]
    r = lw("run", *PY_ROX, *cmd)
    assert r.returncode == 0, r.stderr
    assert (tree / "b" / "f").read_text() == ""
    assert r.stderr == ""
    r = lw("run", "-v", *PY_ROX, *cmd)
    assert r.returncode == 0, r.stderr
    assert "truncate (ABI 3, Linux 6.2)" in r.stderr


def test_execute(tree):
    shutil.copy("/bin/true", tree / "a" / "true")
    shutil.copy("/bin/true", tree / "b" / "true")
    ok = lw("run", "-q", "--rox", tree / "a", "--", tree / "a" / "true")
    assert ok.returncode == 0, ok.stderr
    denied = lw("run", "-q", "--ro", tree / "b", "--", tree / "b" / "true")
    assert denied.returncode == 126
    assert "denied by the sandbox" in denied.stderr
    assert f"--rox {tree / 'b'}" in denied.stderr
    # and from inside: exec of a ro file fails with EACCES
    res = run_probes(f"""
        probe("exec", lambda: os.execv("{tree}/b/true", ["true"]))
    """, "--ro", tree / "b")
    assert res == {"exec": "EACCES"}


def test_exec_denied_names_the_missing_interpreter(tree):
    script = tree / "a" / "script"
    interp = tree / "b" / "true"
    shutil.copy("/bin/true", interp)
    script.write_text(f"#!{interp}\n")
    script.chmod(0o755)
    r = lw("run", "-q", "--rox", tree / "a", "--ro", tree / "b", "--", script)
    assert r.returncode == 126
    assert f"no execute access to {interp}" in r.stderr
    assert f"--rox {tree / 'b'}" in r.stderr


def _listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def test_tcp_connect():
    allowed, other = _listener(), _listener()
    pa, po = allowed.getsockname()[1], other.getsockname()[1]
    try:
        res = run_probes(f"""
            probe("allowed", lambda: socket.create_connection(("127.0.0.1", {pa}), 5))
            probe("other", lambda: socket.create_connection(("127.0.0.1", {po}), 5))
        """, "--connect-tcp", pa)
    finally:
        allowed.close()
        other.close()
    assert res == {"allowed": "OK", "other": "EACCES"}


def test_tcp_connect_denied_by_default():
    s = _listener()
    try:
        res = run_probes(f"""
            probe("c", lambda: socket.create_connection(("127.0.0.1", {s.getsockname()[1]}), 5))
        """)
    finally:
        s.close()
    assert res == {"c": "EACCES"}


def test_tcp_bind():
    probe_port = _listener()
    free = probe_port.getsockname()[1]
    probe_port.close()
    res = run_probes(f"""
        def bind(port):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port)); s.close()
        probe("allowed", lambda: bind({free}))
        probe("other", lambda: bind({free + 1 if free < 65535 else free - 1}))
    """, "--bind-tcp", free)
    assert res == {"allowed": "OK", "other": "EACCES"}


def test_unrestricted_net_allows_connect():
    s = _listener()
    try:
        res = run_probes(f"""
            probe("c", lambda: socket.create_connection(("127.0.0.1", {s.getsockname()[1]}), 5))
        """, "--unrestricted-network")
    finally:
        s.close()
    assert res == {"c": "OK"}


def test_signal_scope():
    outside = subprocess.Popen(["sleep", "60"])
    try:
        body = f"""
            import signal, subprocess
            probe("outside", lambda: os.kill({outside.pid}, 0))
            child = subprocess.Popen(["sleep", "60"])
            probe("own_child", lambda: os.kill(child.pid, signal.SIGTERM))
            child.wait()
        """
        assert run_probes(body) == {"outside": "EPERM", "own_child": "OK"}
        assert run_probes(body, "--unrestricted-scope") == {"outside": "OK", "own_child": "OK"}
        assert outside.poll() is None
    finally:
        outside.kill()
        outside.wait()


def test_abstract_unix_socket_scope():
    name = f"\0landwrap-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(name)
    srv.listen(4)
    body = f"""
        def conn():
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect({name!r})
        probe("outside", conn)
        own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        own.bind({name + "-inner"!r}); own.listen(1)
        def conn_own():
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect({name + "-inner"!r})
        probe("inside", conn_own)
    """
    try:
        assert run_probes(body) == {"outside": "EPERM", "inside": "OK"}
        assert run_probes(body, "--unrestricted-scope") == {"outside": "OK", "inside": "OK"}
    finally:
        srv.close()


def test_symlink_inside_allowed_dir_pointing_outside(tree):
    os.symlink(tree / "outside" / "f", tree / "a" / "link")
    res = run_probes(f"""
        probe("via_link", lambda: open("{tree}/a/link").read())
        probe("direct", lambda: open("{tree}/a/f").read())
    """, "--ro", tree / "a")
    assert res == {"via_link": "EACCES", "direct": "OK"}


def test_proc_self_fd_reopen_of_outside_file(tree):
    """An fd passed in keeps its access (Landlock cannot restrict it), but
    reopening it through /proc/self/fd is checked against the real file."""
    fd = os.open(tree / "outside" / "f", os.O_RDONLY)
    try:
        r = lw_py(PROBE + textwrap.dedent(f"""
            probe("use_fd", lambda: os.pread({fd}, 10, 0))
            probe("reopen_read", lambda: open("/proc/self/fd/{fd}").read())
            probe("reopen_write", lambda: open("/proc/self/fd/{fd}", "a").write("x"))
        """), "--keep-fd", fd, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["use_fd", "OK", "reopen_read", "EACCES",
                                "reopen_write", "EACCES"]
    assert (tree / "outside" / "f").read_text() == "outside\n"


@pytest.fixture
def suid_id():
    """A setuid-root copy of id(1) in a directory nobody can reach."""
    d = tempfile.mkdtemp(prefix="landwrap-suid-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "id")
    shutil.copy("/usr/bin/id", path)
    os.chown(path, 0, 0)
    os.chmod(path, 0o4755)
    yield path
    shutil.rmtree(d)


SETPRIV = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(not nobody_can_run_python(),
                    reason="needs root, setpriv and an interpreter nobody can run")
def test_setuid_binary_gains_nothing(suid_id):
    # Control: outside landwrap the setuid bit works (so the test can fail).
    plain = subprocess.run(SETPRIV + [suid_id, "-u"], capture_output=True, text=True)
    assert plain.stdout.strip() == "0"
    # landwrap itself run as nobody (root inside a sandbox has no
    # capability left to setpriv with).
    r = subprocess.run(SETPRIV + [sys.executable, "-m", "landwrap", "run", "-q",
                                  "--rox", os.path.dirname(suid_id), "--", suid_id, "-u"],
                       capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "65534"
    # --user drops to nobody before exec; no_new_privs still holds.
    r = lw("run", "-q", "--user", "65534", "--rox", os.path.dirname(suid_id), "--", suid_id, "-u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "65534"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_user_and_group_drop():
    r = lw("run", "-q", "--user", "nobody", "--group", "65534", "--", "sh", "-c",
           'echo "$(id -u) $(id -g) $(id -G) $USER"')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["65534", "65534", "65534", "nobody"]


"""The Python API as applications use it (issue 11), on the real kernel.

Each restrict() runs in a fresh interpreter (it is irreversible), with a
timeout so that a hang fails the test instead of blocking the run: a venv
interpreter that keeps importing, multiprocessing pools of every start
method, children started before restrict(), running sys.executable,
stale rulesets, subprocess's helpers, UDP arguments, errors as data, the
parse cache, and a threaded HTTP service restricted while serving."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import landwrap
from landwrap.engine import compat

from conftest import alive

pytestmark = pytest.mark.usefixtures("landlock")


def py(code, *args, env=None, timeout=60, check=True):
    """Run *code* in a new interpreter; the JSON it printed last."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    if check:
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])
    return r


# the interpreter keeps working ---------------------------------------------------

def test_restrict_keeps_the_interpreter_working_by_default(tmp_path):
    """In a venv the standard library lives under sys.base_prefix: the
    default allows it (and running sys.executable); python=False does not."""
    code = """
        import json, subprocess, sys, landwrap
        landwrap.restrict(python=sys.argv[1] == "1")
        out = {}
        try:
            import decimal, fractions  # imported lazily, after restrict()
            out["import"] = "ok"
        except PermissionError as e:
            out["import"] = "EACCES"
        try:
            r = subprocess.run([sys.executable, "-c", "import decimal"])
            out["exec"] = r.returncode
        except PermissionError:
            out["exec"] = "EACCES"
        try:
            open(sys.argv[2]).read()
            out["secret"] = "ok"
        except PermissionError:
            out["secret"] = "EACCES"
        print(json.dumps(out))
    """
    secret = tmp_path / "secret"
    secret.write_text("x")
    assert py(code, "1", secret) == {"import": "ok", "exec": 0, "secret": "EACCES"}
    if sys.base_prefix.startswith(("/usr/", "/bin/")):
        pytest.skip("the interpreter is a system one: python=False still reaches it")
    r = py(code, "0", secret, check=False)  # python=False: the stdlib is out of reach
    assert "PermissionError" in r.stderr or '"import": "EACCES"' in r.stdout, r.stderr


def test_python_paths_lists_exactly_the_interpreter():
    paths = landwrap.python_paths()
    assert os.path.realpath(sys.executable) in paths
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        assert p in paths
    assert all(p.startswith("/") for p in paths)  # never "" (the current directory)
    assert os.getcwd() not in paths or os.getcwd() in sys.path


# multiprocessing ---------------------------------------------------------------

MP = """
    import errno, json, multiprocessing as mp, os, sys, landwrap
    method, switch, secret = sys.argv[1], sys.argv[2] == "1", sys.argv[3]

    def work(x):
        try:
            open(secret).read()
            leak = "LEAK"
        except OSError as e:
            leak = errno.errorcode[e.errno]
        return x * x, leak, os.getpid()

    if __name__ == "__main__":
        landwrap.restrict(multiprocessing=switch)
        try:
            with mp.get_context(method).Pool(2) as pool:
                res = pool.map(work, range(4))
            print(json.dumps({"results": [r[:2] for r in res],
                              "workers_are_children": all(r[2] != os.getpid() for r in res),
                              "tmp": os.environ.get("TMPDIR", "")}))
        except PermissionError as e:
            print(json.dumps({"error": "PermissionError"}))
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_multiprocessing_pools_after_restrict(method, tmp_path):
    (tmp_path / "app").mkdir()  # the script's directory is on sys.path: readable
    script = tmp_path / "app" / "mpjob.py"
    script.write_text(textwrap.dedent(MP))
    secret = tmp_path / "secret"
    secret.write_text("x")
    run = lambda switch: subprocess.run(  # noqa: E731
        [sys.executable, str(script), method, switch, str(secret)],
        # the default profile reads the current directory (issue 10): run
        # from the script's directory, the secret outside it
        capture_output=True, text=True, timeout=90, cwd=tmp_path / "app")
    r = run("1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # every worker computed its result and could not read the secret
    assert out["results"] == [[0, "EACCES"], [1, "EACCES"], [4, "EACCES"], [9, "EACCES"]]
    assert out["workers_are_children"]
    assert out["tmp"].startswith("/dev/shm/landwrap-mp-")
    assert not os.path.exists(out["tmp"])  # removed at exit
    # without the switch, the pool cannot even make its semaphores
    r = run("0")
    assert "PermissionError" in r.stdout + r.stderr


def test_multiprocessing_tmpdir_removal_survives_what_the_sandbox_leaves(tmp_path):
    """The private directory's removal at exit runs inside the sandbox, on
    a tree the sandboxed program made: a tree deeper than the recursion
    limit gives one line, never a traceback; a fork of the program that
    exits normally does not remove the directory its parent still uses."""
    r = py("""
        import json, os, sys, tempfile, landwrap
        landwrap.restrict(multiprocessing=True)
        tmp = tempfile.gettempdir()
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # runs the atexit handlers it inherited
        os.waitpid(pid, 0)
        kept = os.path.isdir(tmp)
        if not kept:
            print(json.dumps({"tmp": tmp, "kept": kept}))
            sys.exit(0)
        fd = os.open(tmp, os.O_RDONLY)
        for i in range(sys.getrecursionlimit() + 200):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        print(json.dumps({"tmp": tmp, "kept": kept}))
    """, check=False)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    try:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert out["kept"] is True
        (line,) = r.stderr.splitlines()
        assert line == f"landwrap: could not remove the private temporary directory {out['tmp']}"
    finally:
        subprocess.run(["rm", "-rf", out["tmp"]], check=True)


FORKSERVER_FIRST = """
    import json, multiprocessing as mp, sys, warnings, landwrap
    secret = sys.argv[1]

    def work(_):
        try:
            open(secret).read()
            return "read"
        except OSError as e:
            return e.strerror

    if __name__ == "__main__":
        ctx = mp.get_context("forkserver")
        pool = ctx.Pool(1)
        assert pool.map(work, [0]) == ["read"]  # the forkserver runs from now on
        pool.close(); pool.join()
        warnings.simplefilter("ignore")  # the resource tracker is a child from before
        landwrap.restrict(multiprocessing=True)
        pool = ctx.Pool(2)
        out = {"workers": pool.map(work, [0, 1])}
        pool.close(); pool.join()
        print(json.dumps(out))
"""


def test_a_forkserver_started_before_restrict_forks_no_unsandboxed_worker(tmp_path):
    """multiprocessing's forkserver, started before restrict(), is outside
    the sandbox: every worker it forks afterwards would be too (and read
    what the sandbox denies).  restrict(multiprocessing=True) stops it, so
    the next pool starts a new one inside the sandbox."""
    (tmp_path / "app").mkdir()  # the script's directory is on sys.path: readable
    script = tmp_path / "app" / "fsfirst.py"
    script.write_text(textwrap.dedent(FORKSERVER_FIRST))
    secret = tmp_path / "secret"
    secret.write_text("x")
    r = subprocess.run([sys.executable, str(script), str(secret)], capture_output=True,
                       text=True, timeout=90, cwd=tmp_path / "app")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["workers"] == ["Permission denied", "Permission denied"]


# children started before restrict() ------------------------------------------------

POOL_FIRST = """
    import json, multiprocessing as mp, sys, warnings, landwrap
    strict = sys.argv[1] == "1"

    def sq(x):
        return x * x

    if __name__ == "__main__":
        pool = mp.get_context("fork").Pool(2)
        assert pool.map(sq, [3]) == [9]
        out = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                landwrap.restrict(multiprocessing=True, strict_children=strict)
                out["restricted"] = True
            except landwrap.EnforcementError as e:
                out["restricted"] = False
                out["children"] = len(e.children)
                out["errno"] = e.errno
                out["message"] = str(e)
        out["warnings"] = [str(w.message) for w in caught
                           if issubclass(w.category, landwrap.SandboxWarning)]
        if not out["restricted"]:
            pool.terminate()  # refused up front: the pool is still ours to stop
            pool.join()
            out["terminated"] = True
        else:
            out["pids"] = [p.pid for p in pool._pool]
            pool.close()  # terminate() would be denied (EPERM): close instead
            pool.join()
        print(json.dumps(out))
"""


def test_strict_children_refuses_up_front_and_terminate_still_works(tmp_path):
    script = tmp_path / "poolfirst.py"
    script.write_text(textwrap.dedent(POOL_FIRST))
    r = subprocess.run([sys.executable, str(script), "1"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["restricted"] is False and out["terminated"] is True
    assert out["children"] >= 2 and out["errno"] is None
    assert "nothing was restricted" in out["message"] and "python" in out["message"]


def test_live_children_are_named_in_a_warning(tmp_path):
    script = tmp_path / "poolfirst.py"
    script.write_text(textwrap.dedent(POOL_FIRST))
    r = subprocess.run([sys.executable, str(script), "0"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["restricted"] is True
    (w,) = out["warnings"]
    for pid in out["pids"]:
        assert str(pid) in w
    assert "cannot signal them" in w and "outside the sandbox" in w


def test_signals_to_children_from_before_are_denied_which_is_why_it_warns(tmp_path):
    """What the warning is about: after restrict(), kill() of a child that
    was started before fails with EPERM (and works for one started after)."""
    out = py("""
        import errno, json, subprocess, warnings, landwrap
        warnings.simplefilter("ignore")
        before = subprocess.Popen(["sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        landwrap.restrict()
        after = subprocess.Popen(["sleep", "30"])
        res = {"pid": before.pid}
        for name, p in (("before", before), ("after", after)):
            try:
                p.kill()
                res[name] = "ok"
            except PermissionError:
                res[name] = "EPERM"
        after.wait()
        print(json.dumps(res))
        before.stdout = None
        import os; os._exit(0)  # `before` cannot be killed from here: leave it to init
    """)
    os.kill(out.pop("pid"), signal.SIGKILL)  # the test process can
    assert out == {"before": "EPERM", "after": "ok"}


LATE_CHILD = """
    import json, os, sys, threading, warnings, landwrap
    strict, secret, out = sys.argv[1] == "1", sys.argv[2], sys.argv[3]
    child = (f"import time\\ntime.sleep(0.5)\\ntry:\\n open({secret!r}).read(); r = 'read'\\n"
             f"except OSError as e: r = e.strerror\\nopen({out!r}, 'w').write(r)\\n")
    go, spawned, pids = threading.Event(), threading.Event(), []

    def spawner():
        go.wait()
        pids.append(os.posix_spawn(sys.executable, [sys.executable, "-c", child], os.environ))
        spawned.set()

    def hook(frame, event, arg):
        # restrict() is past its check of the children and about to
        # restrict the threads: the spawner, not restricted yet, starts one
        if event == "call" and frame.f_code.co_name == "restrict_process":
            go.set()
            spawned.wait()

    t = threading.Thread(target=spawner)
    t.start()
    res = {}
    sys.setprofile(hook)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            landwrap.restrict(rw=[os.path.dirname(out)], python=True, strict_children=strict)
            res["restricted"] = True
        except landwrap.EnforcementError as e:
            res.update(error=str(e), restricted=e.restricted, children=e.children)
    sys.setprofile(None)
    t.join()
    res["pid"] = pids[0]
    res["warnings"] = [str(w.message) for w in caught]
    os.waitpid(pids[0], 0)
    print(json.dumps(res))
"""


@pytest.mark.parametrize("strict", [True, False])
def test_a_child_started_by_another_thread_during_restrict_is_reported(strict, tmp_path):
    """A thread that is not restricted yet may start a child while
    restrict() runs: the child is outside the sandbox (it reads what the
    sandbox denies) and was not there for the check before.  strict_children
    raises (the process itself is restricted); otherwise a warning names it."""
    (tmp_path / "app").mkdir()  # the script's directory is on sys.path: readable
    script = tmp_path / "app" / "late.py"
    script.write_text(textwrap.dedent(LATE_CHILD))
    secret, out, box = tmp_path / "secret", tmp_path / "box" / "out", tmp_path / "box"
    secret.write_text("x")
    box.mkdir()
    r = subprocess.run([sys.executable, str(script), "1" if strict else "0", secret, out],
                       capture_output=True, text=True, timeout=60, cwd=box)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert out.read_text() == "read"  # what makes it worth reporting
    pid = res["pid"]
    if strict:
        assert res["restricted"] is True
        assert [p for p, _ in res["children"]] == [pid]
        assert f"{pid} (python" in res["error"] and "outside the sandbox" in res["error"]
    else:
        assert res["restricted"] is True
        (w,) = res["warnings"]
        assert f"{pid} (python" in w and "while restrict() ran" in w


def test_threads_running_before_restrict_get_sibling_domains_below_tsync():
    """Without TSYNC each running thread restricts itself: the kernel gives
    each its own domain, and the scopes then separate them.  The main
    thread cannot connect to an abstract socket of a thread that was
    running before restrict(), nor signal its child; a thread started
    after shares the main thread's domain."""
    out = py("""
        import json, os, socket, subprocess, threading, landwrap
        def serve(go, res):
            go.wait()
            s = socket.socket(socket.AF_UNIX)
            s.bind(b"\\0lw-sibling-%d-%d" % (os.getpid(), threading.get_native_id()))
            s.listen(1)
            res["addr"] = s.getsockname()
            res["child"] = subprocess.Popen(["sleep", "30"], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            res["sock"] = s
            res["ready"].set()
        def probe(res):
            c = socket.socket(socket.AF_UNIX)
            try:
                c.connect(res["addr"])
                got = ["ok"]
            except PermissionError:
                got = ["EPERM"]
            try:
                res["child"].kill()
                got.append("ok")
            except PermissionError:
                got.append("EPERM")
            return got
        before = {"ready": threading.Event()}
        go = threading.Event()
        t = threading.Thread(target=serve, args=(go, before))
        t.start()
        e = landwrap.restrict(rox=["/usr/bin", "/bin"])
        go.set(); t.join()
        after = {"ready": threading.Event()}
        go2 = threading.Event()
        go2.set()
        t2 = threading.Thread(target=serve, args=(go2, after))
        t2.start(); t2.join()
        res = {"method": e.method, "before": probe(before), "after": probe(after),
               "pid": before["child"].pid}
        after["child"].wait()
        print(json.dumps(res))
        os._exit(0)  # the first child cannot be reaped from here: the test kills it
    """)
    os.kill(out.pop("pid"), signal.SIGKILL)
    if out["method"] == "signal":
        assert out["before"] == ["EPERM", "EPERM"]
    else:  # TSYNC: one domain for every thread
        assert out["before"] == ["ok", "ok"]
    assert out["after"] == ["ok", "ok"]


# running the interpreter --------------------------------------------------------------

def test_run_sys_executable_with_the_default_profile(tmp_path):
    r = landwrap.run([sys.executable, "-c", "import decimal, json; print(json.dumps(1))"],
                     capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1\n"
    secret = tmp_path / "s"
    secret.write_text("x")
    r = landwrap.run([sys.executable, "-c", f"open({str(secret)!r})"],
                     capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "PermissionError" in r.stderr
    if not os.path.realpath(sys.executable).startswith(("/usr/", "/bin/")):
        with pytest.raises(PermissionError) as e:
            landwrap.run([sys.executable, "-c", "pass"], python=False)
        assert e.value.denied_by_sandbox


# stale rulesets ---------------------------------------------------------------------

def test_ruleset_notices_a_replaced_directory(tmp_path):
    jobdir = tmp_path / "jobdir"
    jobdir.mkdir()
    rs = landwrap.Ruleset.from_profile("default").allow(jobdir, "rw")
    write = ["sh", "-c", 'echo x > "$1/out"', "sh", str(jobdir)]
    assert landwrap.run(write, ruleset=rs).returncode == 0
    plan = rs.plan()
    os.unlink(jobdir / "out")
    jobdir.rmdir()
    jobdir.mkdir()  # same path, new directory: the kernel rule is for the old one
    assert plan.replaced() == [str(jobdir)]
    # a Plan is used as it is: the old rule grants nothing on the new directory
    r = landwrap.run(write, ruleset=plan, capture_output=True, text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    # a Ruleset notices and rebuilds
    assert landwrap.run(write, ruleset=rs).returncode == 0
    assert (jobdir / "out").read_text() == "x\n"
    assert rs.plan() is not plan and rs.plan().replaced() == []
    assert rs.plan() is rs.plan()  # and then reuses the new one
    old = rs.plan()
    assert rs.refresh().plan() is not old


# subprocess parity ------------------------------------------------------------------

def test_check_output_check_call_call():
    assert landwrap.check_output(["echo", "hi"]) == b"hi\n"
    assert landwrap.check_output(["echo", "hi"], text=True) == "hi\n"
    assert landwrap.check_output(["cat"], input="in", text=True) == "in"
    assert landwrap.call(["sh", "-c", "exit 3"]) == 3
    assert landwrap.check_call(["true"]) == 0
    with pytest.raises(subprocess.CalledProcessError) as e:
        landwrap.check_call(["sh", "-c", "exit 4"])
    assert e.value.returncode == 4
    with pytest.raises(subprocess.CalledProcessError) as e:
        landwrap.check_output(["sh", "-c", "echo partial; exit 5"])
    assert e.value.output == b"partial\n"
    with pytest.raises(subprocess.TimeoutExpired):
        landwrap.call(["sleep", "30"], timeout=0.2)
    # and the child is sandboxed
    assert landwrap.call(["sh", "-c", "echo x > /tmp/lw-parity-denied"],
                         stderr=subprocess.DEVNULL) != 0


@pytest.mark.parametrize("kw", [
    {"args": ["echo", "a\0b"]},
    {"args": ["ec\0ho"]},
    {"args": ["true"], "cwd": "/tmp\0x"},
    {"args": ["true"], "env": {"A": "b\0c"}},
    {"args": ["true"], "env": {"A\0": "b"}},
])
def test_nul_bytes_raise_value_error_like_subprocess(kw):
    args = kw.pop("args")
    with pytest.raises(ValueError):
        subprocess.run(args, **kw)
    with pytest.raises(ValueError):
        landwrap.run(args, **kw)


DIE = """
    import json, os, sys, threading, time, landwrap
    mode = sys.argv[1]
    if mode == "thread":  # spawned from a thread that then exits
        box = []
        t = threading.Thread(target=lambda: box.append(
            landwrap.Popen(["sleep", "30"], die_with_parent=True)))
        t.start(); t.join()
        p = box[0]
        print(p.pid, flush=True)
        time.sleep(30)
    else:
        p = landwrap.Popen(["sleep", "30"], die_with_parent=mode == "die")
        print(p.pid, flush=True)
        time.sleep(30)
"""


@pytest.mark.parametrize("mode", ["die", "keep", "thread"])
def test_die_with_parent(mode):
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DIE), mode],
                         stdout=subprocess.PIPE, text=True)
    try:
        child = int(p.stdout.readline())
        if mode == "thread":  # the spawning thread is gone: so is its child
            deadline = time.monotonic() + 10
            while alive(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not alive(child)
            return
        assert alive(child)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(child) == (mode == "keep")
    finally:
        p.kill()
        p.wait()
        if mode == "keep" and alive(child):
            os.kill(child, signal.SIGKILL)


# UDP ------------------------------------------------------------------------------------

def test_udp_arguments_soft_below_abi_10_strict_when_asked():
    """Capped at ABI 9 (as a kernel without UDP control), so that this
    runs the same on any kernel."""
    out = py("""
        import json, landwrap
        res = {}
        try:
            landwrap.restrict(False, connect_udp=53, compat="strict", abi=9)
        except landwrap.UnsupportedFeature as e:
            res["strict"] = [e.message, e.needed_abi, e.hint, e.missing[0][0]]
        enf = landwrap.restrict(False, connect_udp=53, bind_udp="5000-5001", abi=9)
        res["soft"] = [enf.status, enf.unenforceable]
        print(json.dumps(res))
    """)
    msg, needed, hint, kind = out["strict"]
    assert "connect_send_udp" in msg and "bind_udp" not in msg
    assert needed == 10 and kind == "net"
    assert "compat='best-effort'" in hint and "--" not in hint
    # Soft: an allowance on a protocol the kernel does not control is not a
    # restriction that was asked for; it is listed as unenforceable.
    status, unenforceable = out["soft"]
    assert status == "fully" and any("connect_send_udp" in d for d in unenforceable)
    with pytest.raises(landwrap.UnsupportedFeature) as e:
        landwrap.Ruleset().allow_port(53, "connect_send_udp").resolve(abi=9)
    assert "connect_send_udp" in e.value.message and "bind_udp" not in e.value.message
    rs = landwrap.Ruleset().allow_udp(53)
    assert rs.need["net"] == compat.NET_RIGHTS["connect_send_udp"][0]
    # the same arguments in run()/Popen
    with landwrap.Popen(["true"], connect_udp=53, bind_udp=5353, abi=9) as p:
        assert p.wait(timeout=30) == 0
    assert any("connect_send_udp" in d for d in p.plan.unenforceable)
    with pytest.raises(landwrap.UnsupportedFeature) as e:
        landwrap.run(["true"], bind_udp=5353, compat="strict", abi=9)
    assert "bind_udp" in e.value.message and "connect_send_udp" not in e.value.message


# errors as data -------------------------------------------------------------------------

def test_errors_carry_fields_and_speak_to_their_caller(tmp_path):
    out = py("""
        import json, landwrap
        res = {}
        try:
            landwrap.restrict(False, connect_tcp=443, abi=3)
        except landwrap.UnsupportedFeature as e:
            res["unsupported"] = [e.message, e.hint, e.fixes, e.needed_abi, e.abi]
        try:
            landwrap.restrict(False, ro="/no/such/dir")
        except landwrap.PathError as e:
            res["path"] = [e.path, e.errno]
        print(json.dumps(res))
    """)
    msg, hint, fixes, needed, abi = out["unsupported"]
    assert "(capped with abi=3)" in msg and "--abi" not in msg
    assert hint == ("run on a newer kernel, drop the argument that needs it, or pass "
                    "compat='best-effort' to run without it")
    assert fixes == [["compat", "best-effort"]] and needed == 4 and abi == 3
    assert out["path"] == ["/no/such/dir", 2]
    # the CLI keeps its wording
    e = landwrap.UnsupportedFeature(3, 7, [("net", 2, "connect_tcp (ABI 4, Linux 6.7)")], 4)
    assert "--best-effort" in e.hint and "(capped with --abi 3)" in e.message


def test_enforcement_error_keeps_errno_and_cause():
    out = py("""
        import json, landwrap
        for i in range(17):
            try:
                landwrap.restrict(False, python=True)
            except landwrap.EnforcementError as e:
                print(json.dumps([i, e.errno, type(e.__cause__).__name__, e.restricted]))
                break
    """)
    assert out == [16, 7, "OSError", False]  # E2BIG: 16 layers at most


# the parse cache ------------------------------------------------------------------------

def test_ad_hoc_sandboxes_do_not_grow_the_cache(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("LANDWRAP_CACHE_DIR", None)
    py("""
        import json, os, sys, landwrap
        SYSTEM = [p for p in ("/usr", "/lib", "/lib64") if os.path.exists(p)]
        for i in range(20):
            landwrap.run(["true"], ro=sys.argv[1], check=True)
            landwrap.run(["/usr/bin/true"], profile=False, rox=SYSTEM, check=True)
            rs = landwrap.Ruleset().allow(sys.argv[1]).allow_paths(SYSTEM, "rox", origin="sys")
            landwrap.run(["/usr/bin/true"], ruleset=rs, check=True)
        landwrap.restrict(False, ro=sys.argv[1])
        print("{}")
    """, tmp_path, env=env)
    cache = tmp_path / "cache" / "landwrap"
    entries = sorted(os.listdir(cache)) if cache.exists() else []
    # at most one entry per profile file read (here: default, true/coreutils...)
    assert len(entries) <= 5, entries


# the bar: a threaded HTTP service restricted while serving ----------------------------

SERVICE = r'''
import errno, http.client, http.server, json, logging, os, socket, sqlite3, sys, threading
import landwrap

DATA = sys.argv[1]
DB, LOG = os.path.join(DATA, "app.db"), os.path.join(DATA, "app.log")
log = logging.getLogger("app")
log.addHandler(logging.FileHandler(LOG))
log.setLevel(logging.INFO)
with sqlite3.connect(DB) as db:
    db.execute("create table if not exists notes (body text)")


def probe(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a connection keeps its thread

    def log_message(self, *args):
        pass

    def do_GET(self):
        me = threading.get_ident()
        if self.path == "/restrict":
            enf = landwrap.restrict(rw=DATA, bind_tcp=self.server.server_address[1])
            out = {"status": enf.status, "threads": enf.threads}
        elif self.path.startswith("/write/"):
            body = self.path.split("/", 2)[2]
            with sqlite3.connect(DB) as db:
                db.execute("insert into notes values (?)", (body,))
            log.info("wrote %s", body)
            out = {"wrote": body}
        elif self.path == "/read":
            with sqlite3.connect(DB) as db:
                out = {"notes": [r[0] for r in db.execute("select body from notes")]}
        elif self.path == "/probe":
            home = os.environ["HOME"]
            out = {
                "bashrc": probe(lambda: open(os.path.join(home, ".bashrc")).read()),
                "other": probe(lambda: open(sys.argv[2]).read()),
                "other_port": probe(lambda: connect(int(sys.argv[3]))),
                "kill_init": probe(lambda: os.kill(1, 0)),
                "data_new_file": probe(lambda: open(os.path.join(DATA, "new"), "w").close()),
            }
        else:
            out = {}
        out["thread"] = me
        body = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
'''


def test_threaded_http_service_restricted_while_serving(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("secret")
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("other")
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "app").mkdir()
    script = tmp_path / "app" / "service.py"
    script.write_text(SERVICE)
    elsewhere = __import__("socket").create_server(("127.0.0.1", 0))
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(tmp_path / "cache"))
    srv = subprocess.Popen([sys.executable, str(script), str(data), str(other / "f"),
                            str(elsewhere.getsockname()[1])],
                           stdout=subprocess.PIPE, text=True, env=env)
    try:
        port = int(srv.stdout.readline())
        import http.client

        def get(conn, path):
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            return json.loads(resp.read())

        early = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        before = get(early, "/write/before")  # this connection's thread serves on
        assert get(early, "/probe")["bashrc"] == "ok"  # not sandboxed yet
        enf = get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "/restrict")
        assert enf["status"] in ("fully", "partially") and enf["threads"] >= 3
        late = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        results = {}
        for name, conn in (("before", early), ("after", late)):
            w = get(conn, f"/write/{name}")
            r = get(conn, "/read")
            p = get(conn, "/probe")
            results[name] = (w["thread"], r["notes"], p)
        # the old connection is still served by the thread made before restrict()
        assert results["before"][0] == before["thread"]
        assert results["after"][0] != before["thread"]
        for name in ("before", "after"):
            _, notes, p = results[name]
            assert "before" in notes and name in notes
            assert p.pop("thread")
            assert p == {"bashrc": "EACCES", "other": "EACCES", "other_port": "EACCES",
                         "kill_init": "EPERM", "data_new_file": "ok"}, name
        assert (data / "app.log").read_text().splitlines() == [
            "wrote before", "wrote before", "wrote after"]
    finally:
        srv.kill()
        srv.wait()
        elsewhere.close()


def test_exec_denied_hint_names_arguments_in_the_api_and_options_in_the_cli(tmp_path):
    prog = tmp_path / "mytrue"
    prog.write_bytes(open("/bin/true", "rb").read())
    prog.chmod(0o755)
    with pytest.raises(landwrap.CommandNotExecutable) as e:
        landwrap.run([str(prog)])
    assert e.value.hint == f"allow it with rox={str(tmp_path)!r} (or rox={str(prog)!r})"
    assert e.value.fixes == [("rox", str(tmp_path)), ("rox", str(prog))]
    assert e.value.errno == 13 and e.value.path == str(prog)
    r = subprocess.run([sys.executable, "-m", "landwrap", "run", "--", str(prog)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 126
    assert f"Hint: allow it with --rox {tmp_path} (or --rox {prog})" in r.stderr


def test_warning_points_at_the_callers_line_for_restrict_and_ruleset_restrict():
    r = py("""
        import json, subprocess, warnings, landwrap
        child = subprocess.Popen(["sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(child.pid)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            landwrap.restrict(scope=True)  # line 7
            landwrap.Ruleset.from_profile("default").restrict()  # line 8
        print(json.dumps([[w.lineno, w.category.__name__, str(child.pid) in str(w.message)]
                          for w in caught]))
        import os; os._exit(0)
    """, check=False)
    pid, res = r.stdout.splitlines()
    os.kill(int(pid), signal.SIGKILL)
    assert json.loads(res) == [[7, "SandboxWarning", True], [8, "SandboxWarning", True]]


def test_a_script_in_home_does_not_open_home(tmp_path):
    """python=True allows sys.path entries, but not one that is $HOME: a
    script run from ~ must not make ~/.ssh readable."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id").write_text("key")
    (home / "app").mkdir()
    (home / "app" / "data").write_text("d")
    script = home / "job.py"
    script.write_text(textwrap.dedent("""
        import json, sys, landwrap
        landwrap.restrict()
        def probe(p):
            try:
                open(p).read()
                return "ok"
            except PermissionError:
                return "EACCES"
        print(json.dumps([sys.path[0], probe(sys.argv[1]), probe(sys.argv[2])]))
    """))
    app = home / "app" / "job2.py"
    app.write_text(script.read_text())
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(tmp_path / "cache"))
    for prog, expect_data in ((script, "EACCES"), (app, "ok")):
        r = subprocess.run([sys.executable, str(prog), str(home / ".ssh" / "id"),
                            str(home / "app" / "data")],
                           capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        path0, key, data = json.loads(r.stdout)
        assert path0 == str(prog.parent)
        assert key == "EACCES"  # never ~/.ssh
        assert data == expect_data  # the script's own directory, when it is not ~

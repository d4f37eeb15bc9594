"""restrict() reaches every thread of the process, on the real kernel.

Each test runs in a fresh interpreter (restricting is irreversible) that
starts threads, calls landwrap.restrict() from one of them, and then proves
from inside each thread that a forbidden open fails with EACCES while an
allowed one works.  Also: threads created meanwhile (churn), the failure
modes (a thread that blocks signals, every signal in use, the 16-layer
limit), and that nothing is left behind (the borrowed signal)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from landwrap.engine import compat

pytestmark = pytest.mark.usefixtures("landlock")

PRELUDE = textwrap.dedent("""
    import errno, json, os, random, signal, socket, sys, threading, time
    import landwrap
    from landwrap.engine import _binding, threads as lwthreads
    ALLOWED, FORBIDDEN = sys.argv[1], sys.argv[2]
    PY = sorted({sys.prefix, sys.base_prefix,
                 os.path.dirname(os.path.realpath(sys.executable)),
                 os.path.dirname(os.path.dirname(landwrap.__file__))})

    def probe():
        out = []
        for path in (ALLOWED, FORBIDDEN):
            try:
                with open(path) as f:
                    f.read()
                out.append("ok")
            except OSError as e:
                out.append(errno.errorcode.get(e.errno, str(e.errno)))
        return out

    def sandbox(**kw):
        return landwrap.restrict(False, ro=[ALLOWED] + PY, **kw)
""")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "allowed").mkdir()
    (tmp_path / "forbidden").mkdir()
    a = tmp_path / "allowed" / "f"
    f = tmp_path / "forbidden" / "f"
    a.write_text("a")
    f.write_text("f")
    return str(a), str(f)


def child(code, files, timeout=120):
    """Run *code* (after PRELUDE) in a new interpreter; the JSON it prints
    last."""
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *files],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def expected_method(abi):
    return "tsync" if compat.has_tsync(abi) else "signal"


def test_fifty_threads_some_blocked_in_syscalls(files):
    out = child("""
        results, lock = {}, threading.Lock()
        ready = threading.Semaphore(0)
        after, idle_go = threading.Event(), threading.Event()

        def record(kind):
            with lock:
                results[f"{kind}-{threading.get_native_id()}"] = [after.is_set()] + probe()

        def sleeper():  # asleep in clock_nanosleep nearly all the time
            ready.release()
            while not after.is_set():
                time.sleep(0.5)
            record("sleep")

        def reader(fd):
            ready.release(); os.read(fd, 1); record("read")

        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        port = srv.getsockname()[1]

        def acceptor():
            ready.release(); c, _ = srv.accept(); c.close(); record("accept")

        def busy():  # runs Python code, holding the GIL half the time
            ready.release()
            n = 0
            while not after.is_set():
                n += 1
            record("busy")

        def idle():
            ready.release(); idle_go.wait(); record("idle")

        pipes = [os.pipe() for _ in range(12)]
        workers = ([threading.Thread(target=sleeper) for _ in range(14)]
                   + [threading.Thread(target=reader, args=(r,)) for r, _ in pipes]
                   + [threading.Thread(target=acceptor) for _ in range(10)]
                   + [threading.Thread(target=busy) for _ in range(4)]
                   + [threading.Thread(target=idle) for _ in range(10)])
        assert len(workers) == 50
        for t in workers:
            t.start()
        for _ in workers:
            ready.acquire()
        time.sleep(0.2)  # let them reach their blocking calls
        tasks = len(os.listdir("/proc/self/task")) + 1  # + the restricter
        enf = []

        def restricter():
            enf.append(sandbox(connect_tcp=port))
            after.set()
            record("restricter")
            late = threading.Thread(target=record, args=("late",))
            late.start(); late.join()

        r = threading.Thread(target=restricter)
        r.start(); r.join()
        for _, w in pipes:
            os.write(w, b"x")
        for _ in range(10):
            socket.create_connection(("127.0.0.1", port)).close()
        idle_go.set()
        for t in workers:
            t.join()
        record("main")
        e = enf[0]
        print(json.dumps({"status": e.status, "threads": e.threads, "method": e.method,
                          "abi": e.abi, "tasks": tasks, "results": results,
                          "signals_free": all(_binding.signal_is_free(s)
                                              for s in lwthreads.candidate_signals())}))
    """, files)
    assert out["status"] in ("fully", "partially")
    assert out["method"] == expected_method(out["abi"])
    assert out["threads"] == out["tasks"] == 52  # 50 + main + the restricter
    res = out["results"]
    kinds = sorted(k.split("-")[0] for k in res)
    assert kinds.count("sleep") == 14 and kinds.count("read") == 12
    assert kinds.count("accept") == 10 and kinds.count("busy") == 4
    assert kinds.count("idle") == 10
    assert {"main", "restricter", "late"} <= set(kinds)
    bad = {k: v for k, v in res.items() if v != [True, "ok", "EACCES"]}
    assert not bad
    assert out["signals_free"]  # the borrowed signal is back to its default


@pytest.mark.parametrize("run", range(3))
def test_thread_churn(files, run):
    """Threads are created and exit while restrict() runs; every probe that
    starts after restrict() returned, in any thread, is denied."""
    out = child("""
        records, lock = [], threading.Lock()
        stop, after = threading.Event(), threading.Event()

        def short(depth):
            flag = after.is_set()
            res = probe()
            with lock:
                records.append([flag] + res)
            if depth < 2 and random.random() < 0.3:
                t = threading.Thread(target=short, args=(depth + 1,))
                t.start(); t.join()
            time.sleep(random.random() * 0.002)

        def churner():
            live = []
            while not stop.is_set():
                t = threading.Thread(target=short, args=(0,))
                t.start()
                live.append(t)
                if len(live) > 15:
                    live.pop(0).join()
            for t in live:
                t.join()

        def steady():
            while not stop.is_set():
                flag = after.is_set()
                res = probe()
                with lock:
                    records.append([flag] + res)
                time.sleep(0.001)

        ts = ([threading.Thread(target=churner) for _ in range(8)]
              + [threading.Thread(target=steady) for _ in range(20)])
        for t in ts:
            t.start()
        time.sleep(0.3)
        enf = []

        def restricter():
            enf.append(sandbox())
            after.set()

        r = threading.Thread(target=restricter)
        r.start(); r.join()
        time.sleep(0.3)
        stop.set()
        for t in ts:
            t.join()
        print(json.dumps({"threads": enf[0].threads, "method": enf[0].method,
                          "abi": enf[0].abi, "records": records}))
    """, files)
    assert out["method"] == expected_method(out["abi"])
    assert out["threads"] >= 29  # 28 long-lived + the restricter, + churn
    before = [r for r in out["records"] if not r[0]]
    after = [r for r in out["records"] if r[0]]
    assert before and len(after) >= 100
    assert all(r[1:] == ["ok", "ok"] for r in before[:50])  # churn was live, unrestricted
    leaks = [r for r in after if r[1:] != ["ok", "EACCES"]]
    assert not leaks


def test_thread_blocking_signals_fails_before_restricting(files):
    if compat.has_tsync(compat.effective_abi(_kernel_abi())):
        pytest.skip("TSYNC kernels do not need the signal")
    out = child("""
        ready, go = threading.Event(), threading.Event()

        def blocker():
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            ready.set(); go.wait()

        t = threading.Thread(target=blocker)
        t.start(); ready.wait()
        try:
            sandbox()
            err = None
        except landwrap.EnforcementError as e:
            err = str(e)
        go.set(); t.join()
        print(json.dumps({"err": err, "tid": t.native_id, "probe": probe()}))
    """, files)
    assert out["err"] and str(out["tid"]) in out["err"]
    assert "nothing was restricted" in out["err"]
    assert out["probe"] == ["ok", "ok"]  # and indeed the process is untouched


def test_thread_that_never_answers_is_named(files):
    """If a thread cannot take the signal (here it blocks it after the
    pre-check), restrict() times out and names it; the error is honest:
    that thread is the one left unrestricted.  The pending signal is
    discarded, so the process survives the thread unblocking it."""
    if compat.has_tsync(compat.effective_abi(_kernel_abi())):
        pytest.skip("TSYNC kernels do not need the signal")
    out = child("""
        lwthreads.thread_info = lambda *a: {}   # skip the pre-check
        lwthreads.DEFAULT_TIMEOUT = 0.5
        ready, go, res = threading.Event(), threading.Event(), {}

        def blocker():
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            ready.set(); go.wait()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
            time.sleep(0.2)
            res["blocker"] = probe()

        def fine():
            ready.wait(); go.wait(); res["fine"] = probe()

        t, f = threading.Thread(target=blocker), threading.Thread(target=fine)
        t.start(); f.start(); ready.wait()
        try:
            sandbox()
            err = None
        except landwrap.EnforcementError as e:
            err = [str(e), e.hint, sorted(e.threads)]
        res["main"] = probe()
        go.set(); t.join(); f.join()
        print(json.dumps({"err": err, "tid": t.native_id, "res": res}))
    """, files)
    msg, hint, tids = out["err"]
    assert tids == [out["tid"]] and "did not answer" in msg
    assert "partly sandboxed" in hint
    assert out["res"] == {"main": ["ok", "EACCES"], "fine": ["ok", "EACCES"],
                          "blocker": ["ok", "ok"]}


def test_stall_is_escaped_not_deadlocked(files):
    """A thread that waits, with every signal blocked, for a lock owned by
    a thread the round holds would deadlock a naive hold (CPython's
    subprocess does this with the GIL after vfork).  The round lets the
    held threads go, collects the answer, holds everybody again and
    succeeds; every thread ends up restricted."""
    if compat.has_tsync(compat.effective_abi(_kernel_abi())):
        pytest.skip("TSYNC kernels do not need the signal")
    out = child("""
        lwthreads.thread_info = lambda *a: {}   # skip the pre-check
        rounds = []
        real = _binding.restrict_threads
        def spy(*a):
            r = real(*a)
            rounds.append([r[0], r[2]])
            return r
        _binding.restrict_threads = spy
        lock, res = threading.Lock(), {}
        owner_has_it, waiter_ready = threading.Event(), threading.Event()

        def owner():  # holds the lock across the round, asleep
            with lock:
                owner_has_it.set()
                time.sleep(0.5)
            res["owner"] = probe()

        def waiter():  # waits for it with every signal blocked
            owner_has_it.wait()
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            waiter_ready.set()
            with lock:
                pass
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
            res["waiter"] = probe()

        o, w = threading.Thread(target=owner), threading.Thread(target=waiter)
        o.start(); w.start(); waiter_ready.wait(); time.sleep(0.05)
        enf = sandbox()
        o.join(); w.join()
        res["main"] = probe()
        print(json.dumps({"threads": enf.threads, "rounds": rounds, "res": res}))
    """, files)
    assert out["threads"] == 3
    [[outcome, escapes]] = out["rounds"]
    assert outcome == 0 and escapes >= 1
    assert out["res"] == {"owner": ["ok", "EACCES"], "waiter": ["ok", "EACCES"],
                          "main": ["ok", "EACCES"]}


def test_subprocess_spawners_during_restrict(files):
    """Threads that keep spawning with subprocess (vfork, signals blocked)
    and with landwrap.run while restrict() runs: it succeeds, and every
    probe after it returned is denied."""
    out = child("""
        stop, after = threading.Event(), threading.Event()
        leaks, checks, lock = [], [0], threading.Lock()

        def spawner(use_landwrap):
            while not stop.is_set():
                if use_landwrap:
                    landwrap.run(["/bin/true"], profile=False, rox=["/usr", "/lib", "/lib64", "/bin"])
                else:
                    subprocess.run(["/bin/true"])
                flag = after.is_set()
                res = probe()
                with lock:
                    if flag:
                        checks[0] += 1
                        if res != ["ok", "EACCES"]:
                            leaks.append(res)

        import subprocess
        ts = [threading.Thread(target=spawner, args=(i % 2 == 0,)) for i in range(8)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        enf = sandbox(rox=["/usr", "/lib", "/lib64", "/bin"])
        after.set()
        time.sleep(0.3)
        stop.set()
        for t in ts:
            t.join()
        print(json.dumps({"threads": enf.threads, "checks": checks[0], "leaks": leaks,
                          "vfork_back": getattr(subprocess, "_USE_VFORK", True)}))
    """, files)
    assert out["threads"] == 9 and out["checks"] >= 8 and not out["leaks"]
    assert out["vfork_back"]  # subprocess's switch was restored


def test_sixteen_layers_exactly_no_thread_restricted_twice(files):
    """Landlock allows 16 stacked domains per thread.  With threads alive
    and new ones being created in between, 16 restrict() calls succeed only
    if no thread ever got a layer twice; the 17th fails cleanly."""
    out = child("""
        go = threading.Event()
        keep = [threading.Thread(target=go.wait) for _ in range(4)]
        for t in keep:
            t.start()
        done = 0
        err = None
        for i in range(17):
            try:
                sandbox()
                done += 1
            except landwrap.EnforcementError as e:
                err = [str(e), e.hint]
                break
            t = threading.Thread(target=go.wait)  # created by a restricted thread
            t.start(); keep.append(t)
        go.set()
        for t in keep:
            t.join()
        print(json.dumps({"done": done, "err": err}))
    """, files)
    assert out["done"] == 16
    msg, hint = out["err"]
    assert "nothing was restricted" in msg and "16" in hint


def test_signal_in_use_is_left_alone(files):
    out = child("""
        hits = []
        def handler(signum, frame):
            hits.append(signum)
        top = lwthreads.candidate_signals()[0]
        signal.signal(top, handler)
        go = threading.Event()
        t = threading.Thread(target=lambda: (go.wait(), res.append(probe())))
        res = []
        t.start()
        enf = sandbox()
        go.set(); t.join()
        print(json.dumps({"threads": enf.threads, "res": res,
                          "still_ours": signal.getsignal(top) is handler,
                          "top_free": _binding.signal_is_free(top)}))
    """, files)
    assert out["threads"] == 2 and out["res"] == [["ok", "EACCES"]]
    assert out["still_ours"] and not out["top_free"]


def test_every_signal_in_use_fails_clearly(files):
    if compat.has_tsync(compat.effective_abi(_kernel_abi())):
        pytest.skip("TSYNC kernels do not need the signal")
    out = child("""
        for s in lwthreads.candidate_signals():
            signal.signal(s, lambda *a: None)
        go = threading.Event()
        t = threading.Thread(target=go.wait)
        t.start()
        try:
            sandbox()
            err = None
        except landwrap.EnforcementError as e:
            err = str(e)
        go.set(); t.join()
        print(json.dumps({"err": err, "probe": probe()}))
    """, files)
    assert "already has a handler" in out["err"] and "nothing was restricted" in out["err"]
    assert out["probe"] == ["ok", "ok"]


def test_single_threaded(files):
    out = child("""
        enf = sandbox()
        print(json.dumps({"threads": enf.threads, "probe": probe()}))
    """, files)
    assert out == {"threads": 1, "probe": ["ok", "EACCES"]}


def test_tsync_is_decided_by_compat():
    assert not compat.has_tsync(7)
    assert compat.has_tsync(8) and compat.has_tsync(compat.LATEST_ABI)
    assert compat.TSYNC == 8


def _kernel_abi():
    from landwrap.engine import _binding

    return _binding.kernel_abi()


def test_a_fork_during_restrict_can_restrict_itself(files):
    """A thread forks while restrict() runs (here: during the signal round,
    the thread keeping the signal blocked so that it is not reached yet).
    The child inherits the round's state mid-flight -- the Python lock held
    by a thread it does not have, the C round marked busy -- and must still
    be able to restrict itself: not hang, not fail."""
    if compat.has_tsync(compat.effective_abi(_kernel_abi())):
        pytest.skip("TSYNC kernels do not run the signal round")
    out = child("""
        go, blocked, kid = threading.Event(), threading.Event(), []
        r, w = os.pipe()

        def forker():
            go.wait()
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            blocked.set()
            time.sleep(0.3)  # the round is running now
            pid = os.fork()
            if pid == 0:
                null = os.open(os.devnull, os.O_WRONLY)  # a hung child must not hold
                os.dup2(null, 1); os.dup2(null, 2)       # the test's pipes
                try:
                    e = sandbox()
                    res = {"method": e.method, "threads": e.threads, "probe": probe()}
                except Exception as e:
                    res = {"error": repr(e)}
                os.write(w, json.dumps(res).encode())
                os._exit(0)
            kid.append(pid)

        def hook(frame, event, arg):
            if event == "call" and frame.f_code.co_name == "_restrict_caller":
                go.set(); blocked.wait()

        t = threading.Thread(target=forker)
        t.start()
        sys.setprofile(hook)
        try:
            sandbox()
            err = None
        except landwrap.EnforcementError as e:
            err = str(e)
        sys.setprofile(None)
        t.join()
        os.close(w)
        import select
        ready = select.select([r], [], [], 20)[0]
        got = os.read(r, 65536).decode() if ready else ""
        print(json.dumps({"parent": err, "child": json.loads(got) if got else "hung",
                          "pid": kid[0]}))
    """, files)
    if out["child"] == "hung":  # outside this sandbox: the test kills it
        os.kill(out["pid"], 9)
    assert out["parent"] is None  # the forker exits after the fork: the round ends well
    assert out["child"] == {"method": "signal", "threads": 1, "probe": ["ok", "EACCES"]}


def test_companion_filter_refused_by_a_thread_says_the_process_is_restricted(files):
    """A thread that installed its own seccomp filter makes the companion's
    TSYNC install fail after Landlock is enforced on every thread: the
    error must say the process is restricted (exit rather than go on)."""
    out = child("""
        import ctypes, struct
        libc = ctypes.CDLL(None, use_errno=True)
        done, go = threading.Event(), threading.Event()

        def own_filter():
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            insn = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7fff0000))
            prog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", 1, ctypes.addressof(insn)))
            assert libc.syscall(317, 1, 0, prog) == 0  # seccomp(SET_MODE_FILTER): allow all
            done.set(); go.wait()

        t = threading.Thread(target=own_filter)
        t.start(); done.wait()
        try:
            sandbox()
            res = {"error": None}
        except landwrap.EnforcementError as e:
            res = {"error": str(e), "restricted": e.restricted}
        res["probe"] = probe()
        go.set(); t.join()
        print(json.dumps(res))
    """, files)
    assert "seccomp companion filter could not be installed" in out["error"]
    assert out["probe"] == ["ok", "EACCES"]  # Landlock is on...
    assert out["restricted"] is True       # ...and the error says so

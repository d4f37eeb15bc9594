"""The Python API on the real kernel.

restrict() runs in a child interpreter (it is irreversible) that then shows
what is allowed and denied; run()/Popen are compared with subprocess on the
same commands; spawn errors map to FileNotFoundError/PermissionError; 100
concurrent sandboxed spawns each prove they are sandboxed; importing the
package stays cheap."""

import concurrent.futures
import gc
import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import landwrap
from landwrap.engine import compat
from landwrap.engine.ruleset import PathRule

needs_landlock = pytest.mark.usefixtures("landlock")

PY = sorted({sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             os.path.dirname(os.path.dirname(os.path.abspath(landwrap.__file__)))})

PRELUDE = textwrap.dedent("""
    import errno, json, os, socket, subprocess, sys
    import landwrap
    PY = json.loads(sys.argv[1])
    A, SECRET, W = sys.argv[2:5]

    def probe(fn):
        try:
            fn()
            return "ok"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))

    def read(path):
        with open(path) as f:
            return f.read()

    def write(path):
        with open(path, "w") as f:
            f.write("x")

    def report(**kw):
        print(json.dumps(kw))
""")


@pytest.fixture
def tree(tmp_path):
    """a/f (allowed), secret/f (never allowed), w/ (writable)."""
    for d in ("a", "secret", "w"):
        (tmp_path / d).mkdir()
    (tmp_path / "a" / "f").write_text("a")
    (tmp_path / "secret" / "f").write_text("secret")
    return tmp_path


def child(code, tree, timeout=60):
    """Run *code* in a new interpreter; the JSON it printed last."""
    argv = [json.dumps(PY), str(tree / "a" / "f"), str(tree / "secret" / "f"), str(tree / "w")]
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *argv],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# restrict() -------------------------------------------------------------------

@needs_landlock
def test_restrict_allows_and_denies(tree):
    out = child("""
        srv_ok, srv_no = socket.socket(), socket.socket()
        for s in (srv_ok, srv_no):
            s.bind(("127.0.0.1", 0)); s.listen(1)
        ok_port, no_port = srv_ok.getsockname()[1], srv_no.getsockname()[1]
        enf = landwrap.restrict(False, ro=[A] + PY, rw=W, connect_tcp=ok_port)
        report(
            enforcement=[enf.status, enf.abi, enf.threads, enf.method, bool(enf)],
            read_allowed=probe(lambda: read(A)),
            read_secret=probe(lambda: read(SECRET)),
            list_secret=probe(lambda: os.listdir(os.path.dirname(SECRET))),
            write_w=probe(lambda: write(os.path.join(W, "new"))),
            write_ro=probe(lambda: write(A)),
            connect_allowed=probe(lambda: socket.create_connection(("127.0.0.1", ok_port)).close()),
            connect_denied=probe(lambda: socket.create_connection(("127.0.0.1", no_port)).close()),
        )
    """, tree)
    status, abi, threads, method, truthy = out.pop("enforcement")
    assert status in ("fully", "partially") and truthy
    assert abi == landwrap.abi() and threads == 1
    assert method == ("tsync" if compat.has_tsync(abi) else "signal")
    assert out == {"read_allowed": "ok", "read_secret": "EACCES", "list_secret": "EACCES",
                   "write_w": "ok", "write_ro": "EACCES", "connect_allowed": "ok",
                   "connect_denied": "EACCES"}
    assert (tree / "w" / "new").read_text() == "x"


@needs_landlock
def test_restrict_default_profile_and_children_inherit(tree):
    out = child("""
        enf = landwrap.restrict(ro=PY)
        cat = subprocess.run(["cat", SECRET], capture_output=True, text=True)
        report(profiles=enf.plan.request.sources,
               etc=probe(lambda: read("/etc/hostname")),
               secret=probe(lambda: read(SECRET)),
               tmp_write=probe(lambda: write(os.path.join(W, "x"))),
               child_exec=subprocess.run(["/bin/true"]).returncode,
               child_cat=[cat.returncode, "Permission denied" in cat.stderr])
    """, tree)
    assert out.pop("profiles")[-1].endswith("default.toml")  # after system-base
    assert out == {"etc": "ok", "secret": "EACCES", "tmp_write": "EACCES",
                   "child_exec": 0, "child_cat": [1, True]}


@needs_landlock
def test_strict_refuses_what_the_kernel_lacks_and_changes_nothing(tree):
    out = child("""
        try:
            landwrap.restrict(False, ro=PY, connect_tcp=443, abi=3)
            err = None
        except landwrap.UnsupportedFeature as e:
            err = [str(e), e.needed_abi]
        untouched = probe(lambda: read(SECRET))
        enf = landwrap.restrict(False, ro=PY, connect_tcp=443, abi=3, compat="best-effort")
        report(err=err, untouched=untouched, status=enf.status, abi=enf.abi,
               dropped=enf.dropped, after=probe(lambda: read(SECRET)))
    """, tree)
    msg, needed = out["err"]
    assert "connect_tcp" in msg and needed == 4
    assert out["untouched"] == "ok"
    assert out["status"] == "partially" and out["abi"] == 3
    assert any("connect_tcp" in d for d in out["dropped"])
    assert out["after"] == "EACCES"


@needs_landlock
def test_errors_before_enforcing_leave_the_process_alone(tree):
    out = child("""
        errs = []
        for kw in ({"ro": "/no/such/path"}, {"connect_tcp": 70000}, {"scope": ["nope"]},
                   {"compat": "loose"}):
            try:
                landwrap.restrict(False, **kw)
            except landwrap.LandwrapError as e:
                errs.append(type(e).__name__)
        try:
            landwrap.restrict("no-such-profile-xyz")
        except landwrap.ProfileError as e:
            errs.append(type(e).__name__)
        report(errs=errs, secret=probe(lambda: read(SECRET)))
    """, tree)
    assert out == {"errs": ["PathError", "UsageError", "UsageError", "UsageError",
                            "ProfileError"], "secret": "ok"}


@needs_landlock
def test_ruleset_builder(tree):
    prof = tree / "p.toml"
    prof.write_text(f'[filesystem]\nro = ["{tree / "a"}"]\n')
    out = child(f"""
        rs = landwrap.Ruleset.from_profile({str(prof)!r})
        for p in PY:
            rs.allow(p, "rox")
        rs.allow(W, ["read_dir", "make_reg", "write_file"])
        srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
        port = srv.getsockname()[1]
        rs.allow_tcp(port)
        plan = rs.plan()
        same = rs.plan() is plan
        enf = rs.restrict()
        report(same=same, threads=enf.threads,
               a=probe(lambda: read(A)), secret=probe(lambda: read(SECRET)),
               create=probe(lambda: write(os.path.join(W, "n"))),
               remove=probe(lambda: os.unlink(os.path.join(W, "n"))),
               connect=probe(lambda: socket.create_connection(("127.0.0.1", port)).close()))
    """, tree)
    assert out == {"same": True, "threads": 1, "a": "ok", "secret": "EACCES",
                   "create": "ok", "remove": "EACCES", "connect": "ok"}


def test_ruleset_plan_is_rebuilt_after_a_change(tree):
    rs = landwrap.Ruleset().allow(tree / "a", "ro")
    p1 = rs.plan()
    assert rs.plan() is p1
    rs.allow(tree / "w", "rw")
    p2 = rs.plan()
    assert p2 is not p1 and len(p2.rules) == 2
    with pytest.raises(landwrap.ProfileError):
        landwrap.Ruleset.from_profile("no-such-profile-xyz")


@needs_landlock
def test_hiding_in_a_used_ruleset_takes_effect(tree):
    """hide() after the ruleset ran a child: the next child cannot read
    the hidden file (the kept plan used to be reused, the file readable)."""
    rs = landwrap.Ruleset.from_profile("default").allow(tree, "ro")
    cat = ["cat", str(tree / "a" / "f")]
    assert landwrap.run(cat, ruleset=rs, capture_output=True).stdout == b"a"
    rs.hide(tree / "a" / "f")
    r = landwrap.run(cat, ruleset=rs, capture_output=True)
    assert r.returncode != 0 and b"Permission denied" in r.stderr
    assert landwrap.run(["cat", str(tree / "secret" / "f")], ruleset=rs,
                        capture_output=True).stdout == b"secret"


@needs_landlock
def test_a_list_swapped_for_one_of_the_same_length_takes_effect(tree):
    """The kept plan follows what the request holds, not how many entries:
    swapping the hidden file, or the allowed directory, for another leaves
    every count as it was (the old plan was reused: the newly hidden file
    readable, the directory no longer asked for still granted)."""
    def cat(path, rs):
        return landwrap.run(["cat", str(path)], ruleset=rs, capture_output=True)

    rs = landwrap.Ruleset.from_profile("default").allow(tree, "ro")
    rs.hide(tree / "a" / "f")
    assert cat(tree / "a" / "f", rs).returncode != 0
    assert cat(tree / "secret" / "f", rs).stdout == b"secret"
    rs.hidden[-1] = (str(tree / "secret" / "f"), "swapped")
    r = cat(tree / "secret" / "f", rs)
    assert r.returncode != 0 and b"Permission denied" in r.stderr
    assert cat(tree / "a" / "f", rs).stdout == b"a"

    rs = landwrap.Ruleset().allow(tree / "a", "ro").allow("/usr", "rox")
    assert cat(tree / "a" / "f", rs).stdout == b"a"
    rules = rs.paths
    rules[0] = PathRule(str(tree / "secret"), rules[0].access, "swapped", True)
    rs.paths = rules
    r = cat(tree / "a" / "f", rs)
    assert r.returncode != 0 and b"Permission denied" in r.stderr
    assert cat(tree / "secret" / "f", rs).stdout == b"secret"


# run() and Popen: parity with subprocess ---------------------------------------

@pytest.fixture(scope="module")
def rs():
    """The default profile, prebuilt once for every spawn below."""
    return landwrap.Ruleset.from_profile("default")


def both(rs, call):
    """call(run) with subprocess.run and with landwrap.run; both results."""
    def lw_run(*a, **kw):
        return landwrap.run(*a, ruleset=rs, **kw)
    return call(subprocess.run), call(lw_run)


def summary(r):
    return (r.args, r.returncode, r.stdout, r.stderr)


@needs_landlock
@pytest.mark.parametrize("call", [
    lambda run: run(["sh", "-c", "exit 7"]),
    lambda run: run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True),
    lambda run: run(["sh", "-c", "echo out; echo err >&2"], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT),
    lambda run: run(["cat"], input="héllo\n", capture_output=True, text=True),
    lambda run: run(["cat"], input=b"\x00\xff", capture_output=True),
    lambda run: run(["printf", "\\377"], capture_output=True, encoding="latin-1"),
    lambda run: run(["cat"], stdin=subprocess.DEVNULL, capture_output=True),
    lambda run: run(["pwd"], cwd="/usr/share", capture_output=True, text=True),
    lambda run: run(["sh", "-c", "echo $LW_X"], env={"LW_X": "1", "PATH": "/usr/bin:/bin"},
                    capture_output=True, text=True),
    lambda run: run("echo $((6 * 7))", shell=True, capture_output=True, text=True),
    lambda run: run(("echo", "tuple"), stdout=subprocess.PIPE),
], ids=["status", "capture", "stderr-to-stdout", "text-input", "bytes-input", "encoding",
        "devnull", "cwd", "env", "shell", "tuple-args"])
def test_run_parity(rs, call):
    a, b = both(rs, call)
    assert summary(a) == summary(b)


# run() without pipes or a timeout starts and reaps the child itself (no Popen
# object): the same results, the same sandbox, the same clean-up.

@needs_landlock
@pytest.mark.parametrize("call", [
    lambda run: run(["sh", "-c", "exit 7"]),
    lambda run: run(["sh", "-c", "kill -TERM $$"]),
    lambda run: run("exit 5", shell=True),
    lambda run: run(("sh", "-c", "exit 6")),
    lambda run: run(["sh", "-c", 'test "$LW_X" = 1'], env={"LW_X": "1", "PATH": "/usr/bin:/bin"}),
    lambda run: run(["sh", "-c", 'test "$PWD" = /usr/share'], cwd="/usr/share"),
    lambda run: run(["/bin/sh", "-c", "exit 9"], executable="/bin/sh"),
    lambda run: run(["sh", "-c", "exit 0"], stdin=None, stdout=None, stderr=None),
], ids=["status", "signal", "shell", "tuple", "env", "cwd", "executable", "explicit-none"])
def test_run_without_pipes_parity(rs, call):
    a, b = both(rs, call)
    assert summary(a) == summary(b)


@needs_landlock
def test_run_without_pipes_is_sandboxed(rs, tree):
    secret = tree / "secret" / "f"
    script = ["sh", "-c", 'exec cat "$0" >/dev/null 2>&1']
    assert subprocess.run([*script, str(secret)]).returncode == 0  # readable outside
    assert landwrap.run([*script, str(secret)], ruleset=rs).returncode == 1
    assert landwrap.run([*script, "/etc/os-release"], ruleset=rs).returncode == 0
    # the same through a profile built for the call, and from a Plan
    assert landwrap.run([*script, str(secret)]).returncode == 1
    assert landwrap.run([*script, str(secret)], ruleset=rs.plan()).returncode == 1
    with pytest.raises(subprocess.CalledProcessError) as e:
        landwrap.run([*script, str(secret)], ruleset=rs, check=True)
    assert (e.value.returncode, e.value.cmd, e.value.stdout) == (1, [*script, str(secret)], None)


@needs_landlock
def test_run_without_pipes_kills_and_reaps_the_child_when_interrupted(tmp_path):
    rs = landwrap.Ruleset.from_profile("default").allow(tmp_path, "rw")
    pidfile = tmp_path / "pid"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            landwrap.run(["sh", "-c", f'echo $$ > "{pidfile}"; exec sleep 30'], ruleset=rs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped, no zombie
        os.kill(pid, 0)


@needs_landlock
def test_run_without_pipes_with_sigchld_ignored_is_as_subprocess(rs):
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        a, b = both(rs, lambda run: run(["sh", "-c", "exit 3"]))
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert summary(a) == summary(b) == (["sh", "-c", "exit 3"], 0, None, None)


def test_run_raises_the_popen_audit_event(tmp_path):
    code = textwrap.dedent("""
        import sys, landwrap
        seen = []
        sys.addaudithook(lambda ev, args: seen.append(args[0]) if ev == "subprocess.Popen" else None)
        landwrap.run(["/bin/true"], ruleset=landwrap.Ruleset().allow("/usr", "rox"))
        landwrap.run(["/bin/true"], ruleset=landwrap.Ruleset().allow("/usr", "rox"),
                     capture_output=True)
        print(seen)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['/bin/true', '/bin/true']"


@needs_landlock
def test_run_check_raises_called_process_error(rs):
    for run in (subprocess.run, lambda *a, **kw: landwrap.run(*a, ruleset=rs, **kw)):
        with pytest.raises(subprocess.CalledProcessError) as e:
            run(["sh", "-c", "echo partial; exit 4"], check=True, capture_output=True, text=True)
        assert (e.value.returncode, e.value.stdout) == (4, "partial\n")


@needs_landlock
def test_run_timeout_kills_the_child(rs):
    with pytest.raises(subprocess.TimeoutExpired) as e:
        landwrap.run(["sh", "-c", "echo $$; exec sleep 30"], ruleset=rs,
                     stdout=subprocess.PIPE, timeout=0.5)
    pid = int(e.value.stdout)
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


@needs_landlock
def test_pass_fds_and_close_fds(rs):
    r, w = os.pipe()
    try:
        os.write(w, b"through fd")
        os.close(w)
        read_fd = [sys.executable, "-S", "-c", f"import os; print(os.read({r}, 99))"]
        got = landwrap.run(read_fd, rox=PY, pass_fds=[r], capture_output=True, text=True)
        assert (got.returncode, got.stdout) == (0, "b'through fd'\n")
        # not passed: closed in the child (as subprocess does by default)
        got = landwrap.run(read_fd, rox=PY, capture_output=True, text=True)
        assert got.returncode == 1 and "Bad file descriptor" in got.stderr
    finally:
        os.close(r)


#: A sandboxed program that adds a rule granting every filesystem right beneath /
#: to each Landlock ruleset among its descriptors (landlock_add_rule needs no privilege).
ADD_RULE = textwrap.dedent("""
    import ctypes, os, struct
    libc = ctypes.CDLL(None, use_errno=True)
    root = os.open("/", os.O_PATH)
    for fd in range(64):
        for bit in range(64):
            attr = struct.pack("=Qi", 1 << bit, root)
            if libc.syscall(445, fd, 1, attr, 0) == 0:   # landlock_add_rule
                print("widened", fd)
""")


@needs_landlock
def test_ruleset_descriptor_never_given_to_the_sandbox(tmp_path):
    """A reused Ruleset's kernel ruleset is shared by its spawns: a program
    given its descriptor (pass_fds, a standard stream, or a closed number
    the ruleset then takes) could add rules that every later spawn
    enforces.  Refused before anything runs; the next spawn stays narrow."""
    secret = tmp_path / "secret"
    secret.write_text("secret")
    rs = landwrap.Ruleset.from_profile("default").allow_paths(PY, "rox", origin="test")
    adder = [sys.executable, "-S", "-c", ADD_RULE]

    def cat():
        return landwrap.run(["cat", str(secret)], ruleset=rs, capture_output=True)

    assert cat().returncode == 1
    fd = rs.plan().ruleset_fd()
    for how in ({"pass_fds": [fd]}, {"stdin": fd}, {"stdout": fd}):
        with pytest.raises(landwrap.UsageError, match=f"descriptor {fd} is the sandbox.s own"):
            landwrap.run(adder, ruleset=rs, **how)
        assert cat().returncode == 1, how
    # a number not open yet, which a new ruleset takes when it is built
    fresh = landwrap.Ruleset.from_profile("default").allow_paths(PY, "rox", origin="test")
    free = os.dup(0)
    os.close(free)
    with pytest.raises(landwrap.UsageError, match=f"descriptor {free} is the sandbox.s own"):
        landwrap.run(adder, ruleset=fresh, pass_fds=[free])
    # another plan's ruleset is refused too (it would widen that plan's spawns)
    with pytest.raises(landwrap.UsageError, match=f"descriptor {fd} is a sandbox.s"):
        landwrap.run(adder, ruleset=fresh, pass_fds=[fd])
    assert cat().returncode == 1
    assert landwrap.run(["cat", str(secret)], ruleset=fresh,
                        capture_output=True).returncode == 1
    # an ordinary descriptor still passes
    assert landwrap.run(adder, ruleset=rs, pass_fds=[0]).returncode == 0


@needs_landlock
def test_profile_is_chosen_for_the_program_that_runs(tmp_path):
    """profile=None picks the profile named after the command only for
    the program it is for: the program that will run, found on *env*'s
    PATH (and relative to *cwd*), not the one this process's PATH finds.
    Here a file named ``tool`` on env's PATH (head, standing for any other
    program) must not get the profile made for the real ``tool`` (cat)."""
    real, evil, secret = tmp_path / "real", tmp_path / "evil", tmp_path / "secret"
    for d in (real, evil, secret, tmp_path / "profiles"):
        d.mkdir()
    (secret / "f").write_text("secret\n")
    os.symlink("/usr/bin/cat", real / "tool")
    os.symlink("/usr/bin/head", evil / "tool")
    (tmp_path / "profiles" / "tool.toml").write_text(
        f'extends = ["default"]\nprograms = ["{real / "tool"}"]\n'
        f'[filesystem]\nro = ["{secret}"]\n')
    script = textwrap.dedent(f"""
        import landwrap
        def run(path, **kw):
            env = {{"PATH": path + ":/usr/bin:/bin"}}
            r = landwrap.run(["tool", "{secret / 'f'}"], env=env, capture_output=True, **kw)
            return r.returncode
        print(run("{real}"), run("{evil}"))
        print(run("{evil}", cwd="{evil}"))
        r = landwrap.run(["./tool", "{secret / 'f'}"], cwd="{evil}", capture_output=True)
        print(r.returncode)
    """)
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               LANDWRAP_PROFILE_PATH=str(tmp_path / "profiles"),
               PATH=f"{real}:/usr/bin:/bin")
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=real,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # cat (the tool) reads the secret; head named tool does not, by PATH or by cwd
    assert out.stdout.split() == ["0", "1", "1", "1"]


@needs_landlock
def test_popen_surface(rs):
    with landwrap.Popen(["cat"], ruleset=rs, stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, text=True) as p:
        assert isinstance(p, subprocess.Popen) and p.pid > 0 and p.poll() is None
        p.stdin.write("line\n")
        p.stdin.close()
        assert p.stdout.read() == "line\n"
    assert p.returncode == 0
    p = landwrap.Popen(["sleep", "30"], ruleset=rs)
    with pytest.raises(subprocess.TimeoutExpired):
        p.communicate(timeout=0.2)
    p.send_signal(signal.SIGTERM)
    assert p.wait() == -signal.SIGTERM
    p = landwrap.Popen(["sleep", "30"], ruleset=rs, start_new_session=True)
    assert os.getsid(p.pid) == p.pid
    p.kill()
    assert p.wait() == -signal.SIGKILL
    assert p.args == ["sleep", "30"] and p.plan is rs.plan()


@needs_landlock
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_user_and_group(rs):
    a, b = both(rs, lambda run: run(["sh", "-c", "id -u; id -g; id -G"], user=65534,
                                    group=65534, extra_groups=[], capture_output=True,
                                    text=True))
    assert summary(a) == summary(b) and a.stdout.split() == ["65534"] * 3


# spawn errors ------------------------------------------------------------------

@needs_landlock
def test_missing_program_is_file_not_found(rs, tmp_path):
    for prog in ("no-such-program-xyz", "/no/such/program", "./nope"):
        for run in (subprocess.run, lambda *a, **kw: landwrap.run(*a, ruleset=rs, **kw)):
            with pytest.raises(FileNotFoundError) as e:
                run([prog], cwd=tmp_path)
            assert e.value.errno == 2 and e.value.filename == prog
    with pytest.raises(landwrap.CommandNotFound):  # and a landwrap error
        landwrap.run(["no-such-program-xyz"], ruleset=rs)


@needs_landlock
def test_missing_cwd_is_file_not_found(rs, tmp_path):
    for run in (subprocess.run, lambda *a, **kw: landwrap.run(*a, ruleset=rs, **kw)):
        with pytest.raises(FileNotFoundError) as e:
            run(["true"], cwd=tmp_path / "gone")
        assert e.value.filename == tmp_path / "gone"
        with pytest.raises(NotADirectoryError):
            run(["true"], cwd="/etc/hostname")


@needs_landlock
def test_relative_program_is_found_in_cwd(rs, tmp_path):
    (tmp_path / "bin").mkdir()
    shutil_true = tmp_path / "bin" / "t"
    shutil_true.write_bytes(open("/bin/true", "rb").read())
    shutil_true.chmod(0o755)
    r = landwrap.run(["bin/t"], cwd=tmp_path, rox=tmp_path)
    assert r.returncode == 0
    # a relative cwd too: the program is relative to it, as in subprocess
    # (the child changes directory before execve: it was looked for twice)
    old = os.getcwd()
    os.chdir(tmp_path.parent)
    try:
        for run in (subprocess.run, lambda *a, **kw: landwrap.run(*a, rox=tmp_path, **kw)):
            assert run(["./bin/t"], cwd=tmp_path.name).returncode == 0
    finally:
        os.chdir(old)


@needs_landlock
def test_not_executable_and_denied_by_sandbox_are_permission_errors(rs, tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError) as e:
        landwrap.run([str(plain)], rox=tmp_path)
    assert not e.value.denied_by_sandbox
    prog = tmp_path / "mytrue"
    prog.write_bytes(open("/bin/true", "rb").read())
    prog.chmod(0o755)
    assert subprocess.run([str(prog)]).returncode == 0
    with pytest.raises(PermissionError) as e:
        landwrap.run([str(prog)], ruleset=rs)  # the default profile has no --rox for it
    assert e.value.denied_by_sandbox and isinstance(e.value, landwrap.LandwrapError)
    assert landwrap.run([str(prog)], rox=tmp_path).returncode == 0


def test_refused_arguments(rs):
    with pytest.raises(ValueError, match="preexec_fn"):
        landwrap.Popen(["true"], ruleset=rs, preexec_fn=lambda: None)
    with pytest.raises(ValueError, match="umask"):
        landwrap.run(["true"], ruleset=rs, umask=0o22)
    with pytest.raises(landwrap.UsageError):
        landwrap.run(["true"], ruleset=rs, ro="/tmp")
    with pytest.raises(TypeError):
        landwrap.run(["true"], ruleset="default")


def test_execute_child_signature_is_the_one_overridden():
    """landwrap.Popen overrides subprocess.Popen._execute_child; a Python
    that changes its arguments must fail this test, not misbehave."""
    names = list(inspect.signature(subprocess.Popen._execute_child).parameters)
    expected = ["self", "args", "executable", "preexec_fn", "close_fds", "pass_fds",
                "cwd", "env", "startupinfo", "creationflags", "shell", "p2cread",
                "p2cwrite", "c2pread", "c2pwrite", "errread", "errwrite",
                "restore_signals", "gid", "gids", "uid", "umask", "start_new_session"]
    if sys.version_info >= (3, 11):
        expected.append("process_group")
    assert names == expected


# the sandbox is the child's alone; concurrency -----------------------------------

@needs_landlock
def test_only_the_child_is_sandboxed(rs, tree):
    secret = tree / "secret" / "f"
    r = landwrap.run(["cat", str(secret)], ruleset=rs, capture_output=True, text=True)
    assert r.returncode == 1 and "Permission denied" in r.stderr
    assert secret.read_text() == "secret"  # this process is untouched


@needs_landlock
def test_hundred_concurrent_sandboxed_spawns(rs, tree):
    secret = str(tree / "secret" / "f")
    script = 'if read x < "$1"; then echo LEAK; else echo denied; fi; echo "$2"'
    n = 100
    barrier = threading.Barrier(n)
    for _ in range(2):  # the second checks rs's plan: opens landwrap's one lasting fd
        landwrap.run(["true"], ruleset=rs)  # (engine/stale.py)
    gc.collect()  # plans of earlier tests, unreachable: their ruleset fds close now, not below
    fds_before = len(os.listdir("/proc/self/fd"))

    def one(i):
        argv = ["sh", "-c", script, "sh", secret, str(i)]
        barrier.wait()
        if i % 4 == 0:  # a fresh sandbox from the profile each time
            r = landwrap.run(argv, capture_output=True, text=True)
            return r.returncode, r.stdout
        if i % 4 == 1:
            with landwrap.Popen(argv, ruleset=rs, stdout=subprocess.PIPE, text=True) as p:
                out, _ = p.communicate(timeout=60)
            return p.returncode, out
        r = landwrap.run(argv, ruleset=rs, capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(one, range(n)))
    assert results == [(0, f"denied\n{i}\n") for i in range(n)]
    assert len(os.listdir("/proc/self/fd")) == fds_before  # nothing leaked


@needs_landlock
def test_profile_env_table_is_applied(tmp_path):
    prof = tmp_path / "withenv.toml"
    prof.write_text('extends = ["default"]\n[env]\nset = { LW_FROM_PROFILE = "yes" }\n')
    r = landwrap.run(["sh", "-c", "echo $LW_FROM_PROFILE"], profile=str(prof),
                     capture_output=True, text=True)
    assert r.stdout == "yes\n"


# the kernel; importing -------------------------------------------------------------

def test_abi_and_status():
    from landwrap.engine import _binding

    k = _binding.kernel_abi()
    assert landwrap.abi() == (k if k > 0 else 0)
    st = landwrap.status()
    assert st["kernel_abi"] == (k if k >= 0 else None)
    assert {f["name"] for f in st["features"]} >= {"filesystem", "net.tcp", "tsync"}
    # the TypedDicts say what status() returns: every key, nothing more
    from landwrap.api import KernelStatus, SecurityRow
    assert set(KernelStatus.__required_keys__) <= set(st) <= (
        KernelStatus.__required_keys__ | KernelStatus.__optional_keys__)
    assert st["security"] and all(set(r) == set(SecurityRow.__annotations__)
                                  for r in st["security"])
    from landwrap.cli.status import format_status
    assert format_status(st).startswith("Kernel:")


def test_import_is_cheap_and_lazy():
    code = ("import sys; before = set(sys.modules); import landwrap; "
            "new = sorted(set(sys.modules) - before); landwrap.run; "
            "print(new, 'landwrap.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "['landwrap'] True", out.stderr
    assert sorted(landwrap.__all__) == sorted(set(landwrap.__all__))
    for name in landwrap.__all__:
        assert getattr(landwrap, name) is not None

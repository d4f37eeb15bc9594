"""Issue 9 ("Hardening landwrap itself"), the learn / denials / small items
part: a hostile program (or another user) must not steer what `landwrap
learn` writes, what landwrap prints, or which ruleset a later spawn gets.

Each test reproduces an attack seen on the earlier code.  Pure tests drive
``learn.Learner``/``learn.Candidate`` with denial objects as the kernel
(or strace) would report them; the others run the real kernel."""

import fcntl
import glob
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import PY_ROX, audit_enabled, lw, needs_audit
from landwrap.cli import learn as learn_cli
from landwrap.diagnose import audit, learn
from landwrap.diagnose.audit import netlink
from landwrap.profiles import validate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@pytest.fixture
def home(tmp_path):
    """A temporary $HOME with the usual secrets in it."""
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    for name in ("id_rsa", "id_ed25519", "known_hosts"):
        (h / ".ssh" / name).write_text(f"secret {name}\n")
    (h / ".config" / "gh").mkdir(parents=True)
    (h / ".config" / "gh" / "hosts.yml").write_text("oauth_token: secret\n")
    for app in ("a", "b", "c"):
        (h / ".config" / app).mkdir()
        for n in ("1", "2", "3"):
            (h / ".config" / app / f"f{n}").write_text(n)
    (h / ".cache").mkdir()
    (h / ".bashrc").write_text("# rc\n")
    return h


def _env(home, **extra):
    env = dict(os.environ)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"))
    env.pop("LANDWRAP_PROFILE_PATH", None)
    env.update(extra)
    return env


def _learner(home, allow_sensitive=()):
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    lr = learn.Learner(["prog"], environ=env, allow_sensitive=allow_sensitive)
    lr.cand = learn.Candidate(["default"], str(home), sensitive=lr.sensitive)
    return lr


def _denial(right, path, exe="/usr/bin/prog"):
    d = audit.Denial("x", (f"fs.{right}",), {"path": str(path)})
    d.exe, d.comm = exe, os.path.basename(exe)
    return d


def _feed(lr, *denials, n=1):
    return lr._learn_from(list(denials), n)


def _granted(lr, path, rights=("read_file",)):
    return lr.cand.covering(str(path), set(rights)) is not None


# item 2: the real path, and the symlink on the way ----------------------------------

def test_learn_grants_the_real_path_and_names_the_symlink(home, tmp_path):
    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    (out / "cache").symlink_to(home / ".ssh")
    lr = _learner(home)
    # what `learn --via strace` sees: the path as the program wrote it
    _feed(lr, _denial("read_file", out / "cache" / "id_rsa", "/usr/bin/cat"))
    assert not _granted(lr, home / ".ssh" / "id_rsa")
    assert not any(str(out / "cache") in p for p in lr.cand.grants)
    text = lr.profile_text()
    assert "symlink" in text and str(out / "cache") in text
    # allowed explicitly: the rule names the real file, the comment the symlink
    lr = _learner(home, allow_sensitive=[str(home / ".ssh")])
    _feed(lr, _denial("read_file", out / "cache" / "id_rsa", "/usr/bin/cat"))
    assert list(lr.cand.grants) == [str(home / ".ssh" / "id_rsa")]
    g = lr.cand.grants[str(home / ".ssh" / "id_rsa")]
    assert any("symlink" in w and str(out / "cache") in w for w in g.why)


def test_strace_learn_through_a_planted_symlink_does_not_grant_ssh(home, tmp_path, landlock):
    if not os.access(learn.STRACE, os.X_OK):
        pytest.skip("strace is not installed")
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    key = home / ".ssh" / "id_rsa"
    learned = tmp_path / "learned.toml"
    script = f"ln -s {home / '.ssh'} out/cache; cat out/cache/id_rsa"
    r = lw("learn", "-y", "--via", "strace", "--rounds", "4", "-o", learned, "--",
           "sh", "-c", script, cwd=work, env=_env(home), stdin=subprocess.DEVNULL,
           timeout=300)
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr
    text = learned.read_text()
    assert "symlink" in text and ".ssh" in r.stderr
    os.unlink(work / "out" / "cache")
    os.symlink(home / ".ssh", work / "out" / "cache")
    r = lw("run", "-q", "-p", learned, "--", "cat", key, env=_env(home))
    assert r.returncode != 0 and "secret" not in r.stdout, r.stdout + r.stderr


# item 6: learn that a hostile program cannot steer -------------------------------------

def test_three_reads_in_ssh_grant_nothing_and_are_listed(home):
    lr = _learner(home)
    _feed(lr, *[_denial("read_file", home / ".ssh" / n)
                for n in ("id_rsa", "id_ed25519", "known_hosts")])
    for n in ("id_rsa", "id_ed25519", "known_hosts"):
        assert not _granted(lr, home / ".ssh" / n)
    assert not _granted(lr, home / ".ssh", ("read_dir",))
    text = lr.profile_text()
    assert str(home / ".ssh" / "id_rsa") in text and "--allow-sensitive" in text
    assert any(".ssh" in s for s in lr.sensitive_summary())
    tomllib.loads(text)


def test_listing_a_directory_first_does_not_open_it_for_writing(home):
    lr = _learner(home)
    _feed(lr, _denial("read_dir", home))
    assert lr.cand.grants[str(home)].effective() == {"read_dir"}
    _feed(lr, _denial("make_reg", home), n=2)
    assert lr.cand.grants[str(home)].effective() == {"read_dir"}
    assert str(home) in " ".join(lr.sensitive_summary())


def test_files_allowed_one_by_one_are_not_merged_into_their_directory(home):
    keys = [str(home / ".ssh" / n) for n in ("id_rsa", "id_ed25519", "known_hosts")]
    lr = _learner(home, allow_sensitive=keys)
    _feed(lr, *[_denial("read_file", k) for k in keys])
    assert sorted(lr.cand.grants) == sorted(keys)


def test_strace_learn_of_a_program_reading_secrets_and_configs(home, tmp_path, landlock):
    if not os.access(learn.STRACE, os.X_OK):
        pytest.skip("strace is not installed")
    ssh = " ".join(str(home / ".ssh" / n) for n in ("id_rsa", "id_ed25519", "known_hosts"))
    conf = " ".join(str(home / ".config" / a / f"f{n}") for a in "abc" for n in "123")
    learned = tmp_path / "learned.toml"
    r = lw("learn", "-y", "--via", "strace", "-o", learned, "--", "sh", "-c",
           f"cat {ssh} {conf}", env=_env(home), stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 1, r.stderr   # incomplete: the keys were not granted
    assert "NOT GRANTED" in r.stderr and str(home / ".ssh") in r.stderr
    for secret in (home / ".ssh" / "id_rsa", home / ".config" / "gh" / "hosts.yml"):
        c = lw("run", "-q", "-p", learned, "--", "cat", secret, env=_env(home))
        assert c.returncode == 1 and "secret" not in c.stdout, (secret, c.stdout)
    c = lw("run", "-q", "-p", learned, "--", "cat", home / ".config" / "a" / "f1",
           env=_env(home))
    assert c.returncode == 0 and c.stdout == "1", c.stderr
    # allowed explicitly, the same run learns them
    r = lw("learn", "-y", "--via", "strace", "--allow-sensitive", home / ".ssh", "-o", learned,
           "--", "sh", "-c", f"cat {ssh}", env=_env(home), stdin=subprocess.DEVNULL,
           timeout=300)
    assert r.returncode == 0, r.stderr
    assert "SENSITIVE, granted" in learned.read_text()


def test_a_sensitive_grant_can_be_confirmed_at_the_terminal(home):
    asked = []
    lr = _learner(home)
    lr.confirm_sensitive = lambda what, reason: asked.append((what, reason)) or \
        "id_rsa" in what
    _feed(lr, _denial("read_file", home / ".ssh" / "id_rsa"),
          _denial("read_file", home / ".ssh" / "known_hosts"))
    assert [w for w, _ in asked] == [f"read_file on {home / '.ssh' / n}"
                                     for n in ("id_rsa", "known_hosts")]
    assert _granted(lr, home / ".ssh" / "id_rsa")
    assert not _granted(lr, home / ".ssh" / "known_hosts")
    summary = lr.sensitive_summary()
    assert any(x.startswith("SENSITIVE, granted (confirmed)") for x in summary)
    assert any(x.startswith("NOT GRANTED") and "known_hosts" in x for x in summary)
    _feed(lr, _denial("read_file", home / ".ssh" / "known_hosts"), n=2)
    assert len(asked) == 2   # a "no" is not asked again in the next round


def test_allow_sensitive_grants_only_beneath_it(home):
    lr = _learner(home, allow_sensitive=[str(home / ".ssh")])
    _feed(lr, *[_denial("read_file", home / ".ssh" / n)
                for n in ("id_rsa", "id_ed25519", "known_hosts")])
    assert _granted(lr, home / ".ssh" / "id_rsa")
    assert not _granted(lr, home / ".bashrc")
    assert not _granted(lr, home / ".config" / "gh" / "hosts.yml")


def test_reads_in_app_configs_never_widen_to_config(home):
    lr = _learner(home)
    _feed(lr, *[_denial("read_file", home / ".config" / app / f"f{n}")
                for app in "abc" for n in "123"])
    # each application's own directory is fine ...
    assert _granted(lr, home / ".config" / "a" / "f1")
    assert not lr.sensitive_summary()
    # ... ~/.config as a whole (and with it gh's token) is not
    assert str(home / ".config") not in lr.cand.grants
    assert not _granted(lr, home / ".config" / "gh" / "hosts.yml")


def test_an_ancestor_of_home_is_never_reached(tmp_path):
    base = tmp_path / "x"
    h = base / "home"
    (h / ".ssh").mkdir(parents=True)
    for n in "123":
        (base / f"f{n}").write_text(n)
    lr = _learner(h)
    _feed(lr, *[_denial("read_file", base / f"f{n}") for n in "123"])
    assert _granted(lr, base / "f1")
    assert str(base) not in lr.cand.grants
    assert not _granted(lr, h / ".ssh" / "id_rsa")
    assert learn.too_broad(str(base), str(h))
    assert learn.too_broad("/var/lib", "/var/lib/svc")


def test_make_reg_grants_creation_where_it_happened(home, tmp_path):
    out = tmp_path / "proj" / "out"
    out.mkdir(parents=True)
    (tmp_path / "proj" / "existing.c").write_text("int x;\n")
    lr = _learner(home)
    _feed(lr, _denial("make_reg", out))
    g = lr.cand.grants[str(out)]
    assert "make_reg" in g.effective()
    assert not {"write_file", "truncate"} & g.effective()


def test_creating_in_home_or_cache_is_sensitive(home):
    lr = _learner(home)
    _feed(lr, _denial("make_reg", home), _denial("make_reg", home / ".cache"))
    assert not lr.cand.grants
    summary = " ".join(lr.sensitive_summary())
    assert str(home / ".cache") in summary and str(home) in summary


def test_sensitive_paths_and_what_is_not():
    h = "/home/u"
    s = learn.Sensitive(h, {"XDG_CONFIG_HOME": "/home/u/.config"})
    for p in ("/home/u/.ssh/id_rsa", "/home/u/.gnupg", "/home/u/.netrc",
              "/home/u/.git-credentials", "/home/u/.aws/credentials", "/home/u/.kube/config",
              "/home/u/.docker/config.json", "/home/u/.config/gh/hosts.yml",
              "/home/u/.mozilla/firefox", "/home/u/.config/google-chrome/Default",
              "/home/u/.local/share/keyrings/login.keyring", "/etc/shadow", "/etc/gshadow",
              "/run/docker.sock", "/var/run/docker.sock", "/run/dbus/system_bus_socket",
              "/home/u/.config/landwrap/profiles/x.toml", "/home/u/.cache/landwrap"):
        assert s.reason(p), p
    for p in ("/home/u/.config/app/settings.ini", "/home/u/project/a.c", "/usr/lib/x.so",
              "/etc/passwd", "/home/u/.docker/cli-plugins"):
        assert s.reason(p) is None, p
    assert s.holds("/home/u/.config") and s.holds("/etc") and s.holds("/home/u")
    assert not s.holds("/home/u/.config/app") and not s.holds("/usr")


# item 7: the output file and its strings -----------------------------------------------

def test_a_path_with_a_newline_cannot_inject_toml(tmp_path):
    cand = learn.Candidate(["default"], home="/nonexistent-home")
    cand.add_fs("/srv/data", True, {"read_file", "read_dir"}, True, "read_dir by x")
    evil = '/evil\nrwx = ["."]\n#'     # a top-level name: flagged "covers ... as a whole"
    cand.add_fs(evil, True, {"make_reg"}, False,
                f"make_reg by x: {evil} (round 1)", label=f"label {evil}")
    cand.add_port("connect_tcp", 1, 'why\nrwx = ["."]')
    text = cand.render([f"header {evil}"])
    doc = tomllib.loads(text)
    assert "rwx" not in doc.get("filesystem", {}) and "rwx" not in doc
    # (the "[" is written escaped, "[[]": the loader reads it back as "[")
    assert doc["filesystem"]["rule"] == [{"path": evil.replace("[", "[[]"),
                                          "access": ["make_reg"]}]
    assert validate._unescape(doc["filesystem"]["rule"][0]["path"]) == evil
    for line in text.splitlines():
        assert not line.startswith("rwx"), line


# item 8: a stale ruleset descriptor ----------------------------------------------------

def test_a_stale_ruleset_fd_is_not_reused(tmp_path, landlock):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("top secret\n")
    code = textwrap.dedent(f"""
        import os
        from landwrap.engine import launcher
        from landwrap.profiles import profile
        def plan(extra):
            rs = profile.load(["default"]).ruleset
            for p in extra:
                rs.allow(p, "ro")
            return rs.resolve()
        env = dict(os.environ)
        argv = ["cat", {str(secret / "key")!r}]
        strict = plan([])
        fd = strict.ruleset_fd()
        print("strict", launcher.run(strict, argv, env, stdio=(-1, 2, 2)))
        os.closerange(fd, fd + 1)
        loose = plan([{str(secret)!r}])
        print("same fd", loose.ruleset_fd() == fd)
        print("loose", launcher.run(loose, argv, env, stdio=(-1, 2, 2)))
        print("strict again", launcher.run(strict, argv, env, stdio=(-1, 2, 2)))
        print("fds differ", strict.ruleset_fd() != loose.ruleset_fd())
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines == ["strict 1", "same fd True", "loose 0", "strict again 1",
                     "fds differ True"], r.stdout + r.stderr


# item 11: nothing attacker-controlled reaches the terminal raw ---------------------------

@needs_audit
def test_log_denials_escapes_a_program_name_set_with_pr_set_name(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    code = ("import ctypes\n"
            "ctypes.CDLL(None).prctl(15, b'\\x1b[2J\\x1b[Hfake', 0, 0, 0)\n"
            f"try:\n    open({str(secret)!r})\nexcept OSError:\n    pass\n")
    r = lw("run", "-q", "--log-denials", *PY_ROX, "--", sys.executable, "-I", "-S",
           "-c", code)
    assert r.returncode == 0, r.stderr
    assert str(secret) in r.stderr
    assert "\x1b" not in r.stderr
    assert "\\x1b[2J" in r.stderr


def test_learn_progress_escapes_file_names(tmp_path, landlock):
    if not os.access(learn.STRACE, os.X_OK):
        pytest.skip("strace is not installed")
    work = tmp_path / "work"
    work.mkdir()
    name = "a\x1b[2Jb"
    (work / name).write_text("x\n")
    r = lw("learn", "-y", "--via", "strace", "--", "cat", work / name,
           stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stderr
    assert "a\\x1b[2Jb" in r.stderr
    ro = tomllib.loads(r.stdout)["filesystem"]["ro"]
    assert [validate._unescape(p) for p in ro] == [str(work / name)], ro


def test_learn_has_no_escaper_of_its_own():
    parts = glob.glob(os.path.join(os.path.dirname(learn.__file__), "*.py"))
    parts.append(learn_cli.__file__)
    assert len(parts) > 2
    for part in parts:
        src = open(part).read()
        assert "def _clean" not in src and "unicode_escape" not in src, part


# item 13: the small ones ---------------------------------------------------------------

def test_learn_survives_a_non_utf8_file_name(tmp_path, landlock):
    if not os.access(learn.STRACE, os.X_OK):
        pytest.skip("strace is not installed")
    work = tmp_path / "work"
    work.mkdir()
    bad = os.path.join(os.fsencode(work), b"caf\xe9")
    with open(bad, "wb") as f:
        f.write(b"x\n")
    r = subprocess.run([sys.executable, "-m", "landwrap", "learn", "-y", "--via", "strace",
                        "--rounds", "2", "--", b"cat", bad],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    err = r.stderr.decode("utf-8", "backslashreplace")
    assert r.returncode == 1, err
    assert "Traceback" not in err
    assert "not valid UTF-8" in err and "caf\\udce9" in err
    tomllib.loads(r.stdout.decode())


def test_restrict_called_reentrantly_raises_instead_of_deadlocking(tmp_path, landlock):
    code = textwrap.dedent("""
        import signal, sys
        import landwrap
        from landwrap.engine import threads
        seen = []
        def handler(signo, frame):
            try:
                landwrap.restrict(False, ro=[sys.prefix])
                seen.append("inner restrict returned")
            except landwrap.EnforcementError as e:
                seen.append(str(e))
        signal.signal(signal.SIGUSR1, handler)
        real = threads._proc_fds
        def proc_fds():
            signal.raise_signal(signal.SIGUSR1)   # arrives while restrict() runs
            return real()
        threads._proc_fds = proc_fds
        landwrap.restrict(None, ro=[sys.prefix, sys.base_prefix])
        print(seen)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "re-entrantly" in r.stdout, r.stdout


def test_why_rejects_an_empty_access_list():
    for access in (",", "", " , "):
        r = lw("why", "-a", access, "/etc/passwd")
        assert r.returncode == 125, (access, r.stdout, r.stderr)
        assert "empty access list" in r.stderr
        assert "allowed" not in r.stdout


def _netlink(type_, text):
    import struct

    body = text.encode() + b"\0"
    msg = struct.pack("=IHHII", 16 + len(body), type_, 0, 0, 0) + body
    return msg + b"\0" * (-len(msg) % 4)


def test_denial_records_are_tallied_as_they_arrive():
    import tracemalloc

    s = audit.Session()
    getattr(s, "_reset_collection", lambda: None)()  # (the earlier code had none)
    me = os.getpid()
    head = [_netlink(1424, f"audit(1.0:1): domain=abc status=allocated mode=enforcing "
                           f"pid=4242 uid=0 exe=\"/x\" comm=\"x\"")]
    s._take(b"".join(head))
    s.watch(4242)
    tracemalloc.start()
    n = 10000
    for i in range(2, n + 2):
        s._take(_netlink(1423, f'audit(1.0:{i}): domain=abc blockers=fs.read_file '
                               f'path="/secret" dev="vda" ino=7')
                + _netlink(1300, f'audit(1.0:{i}): arch=c000003e syscall=257 success=no '
                                 f'exit=-13 ppid={me} pid=4242 comm="cat" exe="/usr/bin/cat"')
                + _netlink(1320, f"audit(1.0:{i}): "))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 << 20, peak   # the earlier code kept every record: ~21 MB here
    result = s._analysis()
    assert sum(d.count for d in result.denials) == n
    assert len(result.denials) == 1


def test_distinct_denials_are_bounded():
    s = audit.Session()
    s._reset_collection()
    s._take(_netlink(1424, "audit(1.0:1): domain=abc status=allocated pid=4242"))
    s.watch(4242)
    n = audit.MAX_DISTINCT + 500
    for i in range(2, n + 2):
        s._take(_netlink(1423, f'audit(1.0:{i}): domain=abc blockers=fs.read_file '
                               f'path="/f{i}"') + _netlink(1320, f"audit(1.0:{i}): "))
    result = s._analysis()
    assert len(result.denials) <= audit.MAX_DISTINCT
    assert sum(d.count for d in result.denials) + result.untallied == n


@pytest.fixture
def audit_alone():
    """Run with no other landwrap audit session on the machine (helpers
    share it): hold the coordination locks of /run/landwrap the way a
    session does (the mutex, then every user's lock; never waiting for one
    while holding the other, which could deadlock with a session that is
    leaving), and put the audit switch back afterwards."""
    import time

    os.makedirs(audit.LOCK_DIR, mode=0o700, exist_ok=True)
    mutex = os.open(os.path.join(audit.LOCK_DIR, "audit.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    users = os.open(os.path.join(audit.LOCK_DIR, "audit.users"), os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + 120
    while True:
        fcntl.flock(mutex, fcntl.LOCK_EX)
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            fcntl.flock(mutex, fcntl.LOCK_UN)
        if time.monotonic() > deadline:
            os.close(mutex)
            os.close(users)
            pytest.skip("other landwrap audit sessions kept running for 2 minutes")
        time.sleep(0.2)
    before = audit_enabled()
    try:
        yield before
    finally:
        ctl = netlink.Control()
        try:
            if ctl.enabled() != before and before in (0, 1):
                ctl.set_enabled(before)
        finally:
            ctl.close()
        os.close(users)
        os.close(mutex)


def _set_enabled(value):
    ctl = netlink.Control()
    try:
        ctl.set_enabled(value)
    finally:
        ctl.close()


@needs_audit
def test_auditing_an_administrator_turned_on_during_a_session_stays_on(tmp_path, audit_alone):
    if audit_alone == 2:
        pytest.skip("auditing is locked on here")
    _set_enabled(0)   # (no landwrap session runs: audit_alone holds their locks)
    with audit.Session(lock_dir=str(tmp_path / "locks")) as s:
        assert audit_enabled() == 1
        _set_enabled(1)   # the administrator: `auditctl -e 1`
        r = s.finish()
        assert r is not None
    assert audit_enabled() == 1


@needs_audit
def test_a_stale_restore_note_does_not_switch_auditing_off(tmp_path, audit_alone):
    if audit_alone == 2:
        pytest.skip("auditing is locked on here")
    _set_enabled(0)   # (no landwrap session runs: audit_alone holds their locks)
    locks = tmp_path / "locks"
    locks.mkdir(mode=0o700)
    (locks / "audit.restore").write_text("0\n")   # left by a killed session
    _set_enabled(1)                               # later, an administrator
    with audit.Session(lock_dir=str(locks)):
        pass
    assert audit_enabled() == 1
    # and a session that switched it on itself still switches it off
    _set_enabled(0)
    with audit.Session(lock_dir=str(locks)):
        assert audit_enabled() == 1
    assert audit_enabled() == 0


def test_why_prints_paths_escaped(tmp_path):
    d = tmp_path / "x\x1b[2Jy"
    d.mkdir()
    r = lw("why", d)
    assert r.returncode == 1, r.stderr
    assert "\x1b" not in r.stdout and "x\\x1b[2Jy" in r.stdout


def test_learn_survives_a_deep_tree_left_in_the_private_tmp(tmp_path, landlock):
    """A command that leaves a tree deeper than Python's recursion limit in
    its round's private TMPDIR: learn still writes the profile, with no
    traceback, and names what it could not remove."""
    base = tmp_path / "tmp"
    base.mkdir()
    out = tmp_path / "out.toml"
    env = dict(os.environ, TMPDIR=str(base), HOME=str(tmp_path),
               XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    script = ('cd "$TMPDIR" && i=0; while [ $i -lt 1200 ]; do mkdir d && cd d || exit 9; '
              'i=$((i+1)); done')
    r = subprocess.run([sys.executable, "-m", "landwrap", "learn", "-y", "--once", "-o",
                        str(out), "--", "sh", "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode == 0, r.stderr
    tomllib.loads(out.read_text())
    left = os.listdir(base)
    assert all(p in r.stderr for p in left), r.stderr
    subprocess.run(["rm", "-rf", *(str(base / p) for p in left)], check=True)


def test_a_learned_file_named_like_a_pattern_grants_only_itself(home, tmp_path, landlock):
    """cat of a file named "a*": the learned profile once said "DIR/a*",
    a pattern granting every file of DIR starting with "a" (another-secret
    too).  The name is written escaped ("a[*]") and names that file only."""
    data = home / "data"
    data.mkdir()
    (data / "a*").write_text("star\n")
    (data / "another-secret").write_text("secret\n")
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out.toml"
    env = _env(home)
    r = subprocess.run([sys.executable, "-m", "landwrap", "learn", "-y", "-o", str(out), "--",
                        "cat", str(data / "a*")], cwd=work, env=env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0, r.stderr
    assert '"${HOME}/data/a[*]"' in out.read_text(), out.read_text()
    r = lw("run", "-q", "-p", out, "--", "cat", data / "a*", env=env, cwd=work)
    assert r.returncode == 0 and r.stdout == "star\n", r.stderr
    r = lw("run", "-q", "-p", out, "--", "cat", data / "another-secret", env=env, cwd=work)
    assert r.returncode == 1 and "secret" not in r.stdout


def test_a_flooded_strace_trace_is_tallied_in_bounded_memory(tmp_path):
    # The sandbox may write strace's output file (it shares strace's
    # domain), and a program can fail as many different calls as it likes:
    # 200,000 lines of it once kept every call as a Denial (210 MB, 80 s of
    # learning).  What is kept is bounded as with the kernel's records.
    from landwrap.diagnose.learn.strace import strace_denials
    from landwrap.profiles import profile

    n = audit.MAX_DISTINCT * 3
    trace = tmp_path / "trace"
    with open(trace, "w") as f:
        for i in range(n):
            f.write(f'7 openat(AT_FDCWD, "/nonexistent/d{i}/f", O_RDONLY) '
                    '= -1 EACCES (Permission denied)\n')
        for _ in range(10):  # the same call again: counted on the first
            f.write('7 openat(AT_FDCWD, "/nonexistent/d0/f", O_RDONLY) '
                    '= -1 EACCES (Permission denied)\n')
    plan = profile.load(["default"]).ruleset.resolve()
    found = strace_denials(str(trace), plan, "/", "/bin/true")
    assert len(found) == audit.MAX_DISTINCT
    assert sum(d.count for d in found) + found.untallied == n + 10
    assert found[0].path == "/nonexistent/d0/f" and found[0].count == 11


def test_a_file_that_never_existed_grants_nothing_on_its_directory(home, tmp_path):
    # strace's output is written in the sandbox, which may write a failed
    # read of a file that never existed into it: that read once became
    # read_file on the nearest existing directory -- every file beneath it.
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "secret.txt").write_text("secret\n")
    lr = _learner(home)
    _feed(lr, _denial("read_file", data / "nothere"),
          _denial("write_file", data / "sub" / "gone" / "deeper" / "f"))
    assert not _granted(lr, data / "secret.txt")
    assert not _granted(lr, data / "sub" / "x", ("write_file",))
    assert not lr.cand.grants
    assert any("not there after the run" in s for s in lr.stuck)


def test_a_temporary_file_the_program_made_and_removed_is_still_learned(home, tmp_path):
    # where the program may create files, a file it wrote and removed
    # (a journal, a temporary file) still becomes rights on its directory
    out = tmp_path / "out"
    out.mkdir()
    lr = _learner(home)
    _feed(lr, _denial("make_reg", out))
    _feed(lr, _denial("write_file", out / "tmp.123"), n=2)
    assert _granted(lr, out / "tmp.456", ("make_reg", "write_file"))


def test_strace_learn_of_a_forged_failed_read_grants_nothing(tmp_path, landlock):
    # end to end: the program writes one fake failed call into strace's
    # output (it may: it runs in strace's sandbox) and touches nothing
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.txt").write_text("TOPSECRET\n")
    code = textwrap.dedent(f"""
        import os
        trace = os.path.join(os.path.dirname(os.environ["TMPDIR"]), "trace-1")
        with open(trace, "a") as f:
            f.write('4242 openat(AT_FDCWD, "{data}/nothere", O_RDONLY) '
                    '= -1 EACCES (Permission denied)\\n')
    """)
    out = tmp_path / "learned.toml"
    work = tmp_path / "work"  # (not above data: the default profile reads ${CWD})
    work.mkdir()
    r = lw("learn", "-y", "--once", "--via", "strace", "-o", out, "--",
           "/usr/bin/python3", "-c", code, stdin=subprocess.DEVNULL, cwd=work, timeout=300)
    assert "not there after the run" in r.stderr, r.stderr
    r = lw("run", "-p", out, "--", "/bin/cat", data / "secret.txt")
    assert r.returncode != 0 and "TOPSECRET" not in r.stdout


def test_a_file_named_like_a_deleted_one_grants_only_itself(home, tmp_path):
    # the kernel writes " (deleted)" after the path of a deleted file; a
    # file the program names "private (deleted)" once stood for private
    out = tmp_path / "out"
    (out / "private").mkdir(parents=True)
    (out / "private" / "key").write_text("secret\n")
    named = out / "private (deleted)"
    named.write_text("")
    lr = _learner(home)
    d = _denial("read_file", named)
    d.ino = str(named.stat().st_ino)
    assert d.path == str(out / "private") and d.deleted
    _feed(lr, d)
    assert not _granted(lr, out / "private" / "key")
    assert _granted(lr, named)
    # a deleted file that is not there: nothing on the directory by its name
    gone = _denial("read_file", out / "private (deleted)")
    gone.ino = "1"
    lr = _learner(home)
    _feed(lr, gone)
    assert not _granted(lr, out / "private" / "key") and not lr.cand.grants


def _learn_once_with_audit(tmp_path, base, code):
    """`learn --once --via audit -p BASE` of Python *code* (run from a
    directory of its own: the default profile reads ${CWD}); the profile."""
    learned = tmp_path / "learned.toml"
    work = tmp_path / "work"
    work.mkdir()
    r = lw("learn", "-y", "--once", "--via", "audit", "-p", base, "-o", learned, "--",
           "/usr/bin/python3", "-c", code, stdin=subprocess.DEVNULL, cwd=work, timeout=300)
    assert "round 1: 1 denial" in r.stderr, r.stderr
    return learned


@needs_audit
def test_audit_learn_of_a_file_named_like_a_deleted_one(tmp_path, landlock):
    # end to end, with the kernel's records: the program may create files
    # in out/ but not read them; it names one after the directory private/
    # next to it and reads it
    out = tmp_path / "out"
    (out / "private").mkdir(parents=True)
    (out / "private" / "key").write_text("TOPSECRET\n")
    base = tmp_path / "base.toml"
    base.write_text(f'extends = ["default"]\n[[filesystem.rule]]\npath = "{out}"\n'
                    'access = ["make_reg", "write_file", "truncate"]\n')
    code = textwrap.dedent(f"""
        name = {str(out / "private (deleted)")!r}
        open(name, "w").close()
        try:
            open(name).read()
        except PermissionError:
            pass
    """)
    learned = _learn_once_with_audit(tmp_path, base, code)
    r = lw("run", "-p", learned, "--", "/bin/cat", out / "private" / "key")
    assert r.returncode != 0 and "TOPSECRET" not in r.stdout


def test_log_denials_suggests_nothing_for_a_file_named_like_a_deleted_one(tmp_path):
    from landwrap.diagnose import denials

    d = _denial("read_file", tmp_path / "private (deleted)")
    assert denials.suggest(d) is None
    assert denials.describe(d) == f"read_file '{tmp_path}/private (deleted)'"
    report = denials.format_report(type("R", (), {"denials": [d], "kernel_count": None})())
    assert "--ro" not in report and "deleted (or so named)" in report


def test_learn_refuses_an_output_directory_another_user_controls(tmp_path):
    # landwrap run -p would refuse the profile there (its owner can swap
    # it): learn says so before running anything, not after N rounds
    other = tmp_path / "other"
    other.mkdir()
    os.chown(other, 65534, 65534)
    ran = tmp_path / "ran"
    r = lw("learn", "-y", "--once", "-o", other / "p.toml", "--", "/bin/sh", "-c",
           f"echo > {ran}", stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert r.returncode == 125 and r.stderr.count("\n") == 1, r.stderr
    assert "owned by uid 65534" in r.stderr and "Traceback" not in r.stderr
    assert not (other / "p.toml").exists() and not ran.exists()


def test_another_users_domain_named_after_a_reused_pid_is_not_ours():
    # another user's sandbox made by a process whose pid our command now
    # has (pids are reused; pid_max is 32768 here) left a child that makes
    # the domain's first denial while our command runs: it was reported
    # (and learned) as the command's own
    def records(uid):
        t = audit.Tally(os.getpid())
        t.watch(4242, 0)
        for r in (f'type=1424 audit(1.0:1): domain=abc status=allocated mode=enforcing '
                  f'pid=4242 uid={uid} exe="/usr/bin/python3.11" comm="python3"',
                  'type=1423 audit(1.0:1): domain=abc blockers=fs.read_file '
                  'path="/etc/hostname" dev="vda" ino=7',
                  'type=1300 audit(1.0:1): arch=c000003e syscall=257 success=no exit=-13 '
                  'ppid=1 pid=5151 uid=65534 comm="python3" exe="/usr/bin/python3.11"',
                  "type=1320 audit(1.0:1): "):
            t.add(audit.parse_line(r))
        return t.result()

    theirs = records(65534)
    assert not theirs.denials and theirs.ignored == 1
    assert len(records(0).denials) == 1


def test_the_watched_uid_is_the_childs_own(tmp_path):
    from landwrap.diagnose.audit import session

    p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "sleep", "5"])
    try:
        for _ in range(200):  # until setpriv has switched (it then execs sleep)
            if session._child_uid(p.pid) == 65534:
                break
            import time
            time.sleep(0.01)
        assert session._child_uid(p.pid) == 65534
        assert session._child_uid(1) is None  # not our child
    finally:
        p.kill()
        p.wait()


def test_a_sandbox_cannot_write_the_audit_switch_state(tmp_path, landlock):
    # /run/landwrap holds the note that landwrap switched auditing on: a
    # sandbox that planted it (--rw /run) made `run --log-denials` switch
    # an administrator's auditing off when the command ended
    from landwrap.diagnose.audit.switch import LOCK_DIR
    from landwrap.profiles import lookup

    assert LOCK_DIR in lookup.state_dirs()
    planted = os.path.join(LOCK_DIR, f"planted-{os.getpid()}")
    try:
        r = lw("run", "-q", "--rw", "/run", "--", "/bin/sh", "-c",
               f"echo 0 > {planted}", cwd=tmp_path)
        assert r.returncode == 125 and "landwrap's own directory" in r.stderr, r.stderr
        assert not os.path.exists(planted)
        r = lw("run", "-q", "--best-effort", "--rw", "/run", "--", "/bin/sh", "-c",
               f"mkdir -p {LOCK_DIR}; echo 0 > {planted}", cwd=tmp_path)
        assert r.returncode != 0 and not os.path.exists(planted), r.stderr
    finally:
        if os.path.exists(planted):
            os.unlink(planted)


def test_a_symlink_put_on_a_denied_path_after_the_kernel_named_it_grants_nothing(home, tmp_path):
    # the kernel's records name the object through real directories; the
    # program, denied writing out/build/passwd (a file it made), renamed
    # build away and put a symlink to another directory in its place:
    # learn granted writing victim/passwd
    out, victim = tmp_path / "out", tmp_path / "victim"
    (out / "old").mkdir(parents=True)
    victim.mkdir()
    (victim / "passwd").write_text("root:x:0:0\n")
    (out / "old" / "passwd").write_text("")
    (out / "build").symlink_to(victim)
    d = _denial("write_file", out / "build" / "passwd")
    d.ino = str((out / "old" / "passwd").stat().st_ino)  # (a kernel record)
    lr = _learner(home)
    _feed(lr, d)
    assert not _granted(lr, victim / "passwd", ("write_file",))
    assert not lr.cand.grants
    assert any("symlink" in s for s in lr.stuck)


@needs_audit
def test_audit_learn_of_a_path_swapped_for_a_symlink(tmp_path, landlock):
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (victim / "passwd").write_text("root:x:0:0\n")
    base = tmp_path / "base.toml"
    base.write_text(f'extends = ["default"]\n[[filesystem.rule]]\npath = "{out}"\n'
                    'access = ["make_reg", "make_dir", "make_sym", "remove_dir", '
                    '"remove_file", "read_dir"]\n')
    code = textwrap.dedent(f"""
        import os, stat
        os.mkdir("{out}/build")
        os.mknod("{out}/build/passwd", stat.S_IFREG | 0o644)
        try:
            open("{out}/build/passwd", "w")
        except PermissionError:
            pass
        os.rename("{out}/build", "{out}/old")
        os.symlink("{victim}", "{out}/build")
    """)
    learned = _learn_once_with_audit(tmp_path, base, code)
    r = lw("run", "-p", learned, "--", "/bin/sh", "-c", f"echo x >> {victim}/passwd")
    assert r.returncode != 0 and (victim / "passwd").read_text() == "root:x:0:0\n"


def test_learn_output_is_not_written_where_a_symlink_put_in_its_way_leads(tmp_path, landlock):
    # the command (allowed to make and remove directories and symlinks in
    # its working directory) moved the -o directory away and put a symlink
    # to another directory in its place: root's profile was written there
    work, victim = tmp_path / "work", tmp_path / "victim"
    (work / "sub").mkdir(parents=True)
    victim.mkdir()
    base = tmp_path / "base.toml"
    base.write_text(f'extends = ["default"]\n[[filesystem.rule]]\npath = "{work}"\n'
                    'access = ["make_dir", "make_sym", "remove_dir", "read_dir"]\n')
    code = (f"import os; os.rename('{work}/sub', '{work}/sub.old'); "
            f"os.symlink('{victim}', '{work}/sub')")
    r = lw("learn", "-y", "--once", "-p", base, "-o", work / "sub" / "p.toml", "--",
           "/usr/bin/python3", "-c", code, stdin=subprocess.DEVNULL, cwd=work, timeout=300)
    assert os.path.islink(work / "sub"), r.stderr  # (the command did its part)
    assert not os.listdir(victim) and not os.listdir(work / "sub.old")
    assert r.returncode == 125 and "not the directory it was" in r.stderr, r.stderr

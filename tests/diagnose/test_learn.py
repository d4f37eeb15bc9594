"""`landwrap learn`: the generalisation rules and the TOML it writes (pure),
and acceptance on the real kernel for five real programs: the learned
profile runs the same command successfully, and an access the command never
made is still denied."""

import http.server
import os
import subprocess
import sys
import threading

import pytest

from conftest import lw, need_program, needs_audit
from landwrap.diagnose import learn
from landwrap.profiles import profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib




def need(program):
    return need_program(program)  # skips naming the Debian package


# pure: where a denial leads ---------------------------------------------------

def test_containers():
    home = "/home/u"
    c = learn.container
    assert c("/opt/py/lib/python3.11/site-packages/x/y.py", {"read_file"}, None, home) == \
        ("/opt/py/lib/python3.11", "Python library directory")
    assert c("/srv/app/.git/objects/ab/cd", {"read_file"}, None, home)[0] == "/srv/app/.git"
    assert c("/srv/app/node_modules/a/b.js", {"read_file"}, None, home)[0] == \
        "/srv/app/node_modules"
    assert c("/opt/x/share/locale/de/LC_MESSAGES/x.mo", {"read_file"}, None, home)[0] == \
        "/opt/x/share/locale"
    assert c("/opt/x/lib/libfoo.so.1", {"read_file"}, None, home) == \
        ("/opt/x/lib", "shared library directory")
    # a plain data file is not generalised
    assert c("/srv/data/config.ini", {"read_file"}, None, home) is None
    # never to a top-level directory or $HOME as a whole
    assert c("/lib/libfoo.so", {"read_file"}, None, home) is None
    assert c("/home/u/libx.so", {"read_file"}, None, home) is None
    assert c("/home/u/x", {"execute"}, "/usr/bin/git", home) is None


def test_program_directories_and_install_prefixes(tmp_path):
    home = str(tmp_path / "home")
    tool = tmp_path / "home" / ".tool"
    (tool / "bin").mkdir(parents=True)
    (tool / "lib").mkdir()
    plain = tmp_path / "plain" / "bin"
    plain.mkdir(parents=True)
    local = tmp_path / "home" / ".local"
    (local / "bin").mkdir(parents=True)
    (local / "share").mkdir()
    x = {"execute", "read_file"}
    assert learn.container(f"{tool}/bin/run", x, None, home)[0] == str(tool)
    assert learn.container(f"{plain}/run", x, None, home)[0] == str(plain)
    # ~/.local holds many installations and user data: only its bin
    assert learn.container(f"{local}/bin/run", x, None, home)[0] == f"{local}/bin"
    # reading a program is not executing it
    assert learn.container(f"{plain}/run", {"read_file"}, None, home) is None


def test_too_broad():
    assert learn.too_broad("/", "/home/u")
    assert learn.too_broad("/home/u", "/home/u")
    assert learn.too_broad("/home/other", "/home/u")
    assert learn.too_broad("/tmp", "/home/u")
    assert not learn.too_broad("/tmp/work", "/home/u")


def _cand_profile(tmp_path, cand):
    text = cand.render(["test header"])
    path = tmp_path / "learned.toml"
    path.write_text(text)
    return path, text


def test_render_is_a_valid_commented_profile(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "conf.ini").write_text("x")
    cand = learn.Candidate(["default"], home="/nonexistent-home")
    cand.add_fs(str(work / "conf.ini"), False, {"read_file"}, True,
                "read_file by /usr/bin/cat: conf (round 1)")
    cand.add_fs(str(work), True, {"make_reg", "write_file", "truncate"}, False,
                'make_reg by /usr/bin/sh: "quoted" (round 1)')
    cand.add_port("connect_tcp", 8080, "connect_tcp by curl: 127.0.0.1:8080 (round 2)")
    path, text = _cand_profile(tmp_path, cand)
    doc = tomllib.loads(text)
    assert doc["extends"] == ["default"]
    assert doc["filesystem"]["ro"] == [str(work / "conf.ini")]
    assert doc["filesystem"]["rule"] == [
        {"path": str(work), "access": ["write_file", "make_reg", "truncate"]}]
    assert doc["network"]["connect_tcp"] == [8080]
    assert "# read_file by /usr/bin/cat: conf (round 1)" in text
    assert "# connect_tcp by curl: 127.0.0.1:8080 (round 2)" in text
    prof = profile.load([str(path)])
    plan = prof.ruleset.resolve(kernel_abi=7)
    by_path = {r.path: r for r in plan.rules}
    assert str(work) in by_path and str(work / "conf.ini") in by_path
    assert [p for p, _, _ in plan.ports] == [8080]


def test_collapse_three_reads_in_one_directory(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    cand = learn.Candidate(["default"], home="/nonexistent-home")
    for name in ("a", "b"):
        (d / name).write_text(name)
        cand.add_fs(str(d / name), False, {"read_file"}, True, f"read_file by x: {name}")
    assert cand.collapse() == []
    (d / "c").write_text("c")
    cand.add_fs(str(d / "c"), False, {"read_file"}, True, "read_file by x: c")
    assert cand.collapse() == [str(d)]
    assert list(cand.grants) == [str(d)]
    assert cand.grants[str(d)].shorthand() == "ro"


def test_scope_denials_lift_the_scope_with_a_warning(tmp_path):
    cand = learn.Candidate(["default"], home="/nonexistent-home")
    assert cand.add_scope("signal", "signal by kill to pid 1 (init)")
    path, text = _cand_profile(tmp_path, cand)
    assert "signal = false" in text and "WARNING" in text
    assert cand.warnings and "scope.signal" in cand.warnings[0]
    assert profile.load([str(path)]).ruleset.scopes & 2 == 0


def test_parse_strace_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    lines = [
        '100 chdir("/srv")                  = 0\n',
        '100 openat(AT_FDCWD</srv>, "conf.ini", O_RDONLY|O_CLOEXEC) = -1 EACCES '
        '(Permission denied)\n',
        f'100 openat(AT_FDCWD</srv>, "{out}/new.txt", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, '
        '0666 <unfinished ...>\n',
        '101 execve("/opt/bin/tool", ["tool"], 0x7ff /* 3 vars */) = 0\n',
        '100 <... openat resumed>) = -1 EACCES (Permission denied)\n',
        '101 connect(3<TCP:[1234]>, {sa_family=AF_INET, sin_port=htons(8443), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EACCES (Permission denied)\n',
        '101 mkdir("/srv/d", 0777)        = -1 EPERM (Operation not permitted)\n',
        '101 openat(AT_FDCWD</srv>, "ok", O_RDONLY) = 3</srv/ok>\n',
        '101 unlink("/srv/gone")           = -1 ENOENT (No such file or directory)\n',
    ]
    calls = learn.parse_strace(lines, "/", "/usr/bin/prog")
    got = [(pid, exe, name, needs) for pid, exe, name, needs in calls]
    assert got == [
        ("100", "/usr/bin/prog", "openat", [("read_file", "/srv/conf.ini")]),
        ("100", "/usr/bin/prog", "openat", [("make_reg", str(out)),
                                            ("write_file", f"{out}/new.txt")]),
        ("101", "/opt/bin/tool", "connect", [("net", "connect_tcp", 8443, "127.0.0.1")]),
        ("101", "/opt/bin/tool", "mkdir", [("make_dir", "/srv")]),
    ]


# the real kernel: five programs ----------------------------------------------------

def learn_profile(tmp_path, *cmd, extra=(), cwd=None):
    out = tmp_path / "learned.toml"
    r = lw("learn", "-y", "-o", out, *extra, "--", *cmd, stdin=subprocess.DEVNULL,
           cwd=cwd, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "round 1:" in r.stderr and "the profile is complete" in r.stderr
    assert "internal error" not in r.stderr  # (the command's own errors may show)
    text = out.read_text()
    # a valid profile that `landwrap run -p` loads, commented with its origin
    profile.load([str(out)])
    assert tomllib.loads(text)["extends"]
    assert " by " in text and "(round 1)" in text
    check = lw("profile", "check", out)
    if "No such command" not in check.stderr:
        assert check.returncode == 0, check.stdout + check.stderr
    return out, r


def run_with(learned, *cmd, cwd=None):
    return lw("run", "-q", "-p", learned, "--", *cmd, cwd=cwd, stdin=subprocess.DEVNULL)


def assert_denied_read(learned, path):
    r = run_with(learned, "cat", path)
    assert r.returncode == 1 and "Permission denied" in r.stderr, r.stderr
    assert r.stdout == ""


def assert_denied_write(learned, path):
    r = run_with(learned, "sh", "-c", f"echo x > {path}")
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    assert not os.path.exists(path)


@needs_audit
def test_learn_python_reading_config_writing_output(tmp_path):
    python3 = need("python3")
    work = tmp_path / "work"
    work.mkdir()
    (work / "app.ini").write_text("answer = 42\n")
    (work / "secret.key").write_text("do not read\n")
    outdir = tmp_path / "out"
    outdir.mkdir()
    code = (f"data = open({str(work / 'app.ini')!r}).read()\n"
            f"open({str(outdir / 'result.txt')!r}, 'w').write(data.upper())\n")
    learned, r = learn_profile(tmp_path, python3, "-c", code)
    os.unlink(outdir / "result.txt")
    r = run_with(learned, python3, "-c", code)
    assert r.returncode == 0, r.stderr
    assert (outdir / "result.txt").read_text() == "ANSWER = 42\n"
    assert_denied_read(learned, work / "secret.key")
    assert_denied_write(learned, tmp_path / "elsewhere.txt")


@needs_audit
def test_learn_git_status(tmp_path):
    git = need("git")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("a\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "b.txt").write_text("b\n")
    (tmp_path / "secret").write_text("next to the repo\n")
    ident = ["-c", "user.email=t@example.org", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "."], [*ident, "commit", "-qm", "init"]):
        subprocess.run([git, "-C", repo, *args], check=True, capture_output=True)
    (repo / "a.txt").write_text("changed\n")
    learned, _ = learn_profile(tmp_path, git, "-C", repo, "status", "--short")
    r = run_with(learned, git, "-C", repo, "status", "--short")
    assert r.returncode == 0, r.stderr
    assert r.stdout == " M a.txt\n"
    assert_denied_read(learned, tmp_path / "secret")
    assert_denied_write(learned, tmp_path / "new-file")


class _Server:
    def __init__(self, root):
        outer = self
        self.requests = 0

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *a):
                outer.requests += 1

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@needs_audit
def test_learn_curl_against_a_local_server(tmp_path):
    curl = need("curl")
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello.txt").write_text("hello from the server\n")
    dl = tmp_path / "dl"
    dl.mkdir()
    server, other = _Server(www), _Server(www)
    try:
        url = f"http://127.0.0.1:{server.port}/hello.txt"
        cmd = [curl, "-sS", "-o", dl / "hello.txt", url]
        learned, _ = learn_profile(tmp_path, *cmd)
        assert "connect_tcp = [\n" in learned.read_text()
        os.unlink(dl / "hello.txt")
        r = run_with(learned, *cmd)
        assert r.returncode == 0, r.stderr
        assert (dl / "hello.txt").read_text() == "hello from the server\n"
        # another port is still denied: the other server never sees a request
        before = other.requests
        r = run_with(learned, curl, "-sS", "-o", dl / "other.txt",
                     f"http://127.0.0.1:{other.port}/hello.txt")
        assert r.returncode == 7, r.stderr  # curl: couldn't connect
        assert other.requests == before
        assert not (dl / "other.txt").exists()
    finally:
        server.close()
        other.close()


@needs_audit
def test_learn_tar_czf(tmp_path):
    tar = need("tar")
    base = tmp_path / "base"
    src = base / "src"
    (src / "deep").mkdir(parents=True)
    for name in ("one", "two", "three", "deep/four"):
        (src / name).write_text(name + "\n")
    (base / "secret").write_text("next to the archived directory\n")
    out = tmp_path / "out"
    out.mkdir()
    cmd = [tar, "czf", out / "src.tgz", "-C", base, "src"]
    learned, _ = learn_profile(tmp_path, *cmd)
    os.unlink(out / "src.tgz")
    r = run_with(learned, *cmd)
    assert r.returncode == 0, r.stderr
    names = subprocess.run([tar, "tzf", out / "src.tgz"], capture_output=True, text=True,
                           check=True).stdout.split()
    assert sorted(names) == ["src/", "src/deep/", "src/deep/four", "src/one", "src/three",
                             "src/two"]
    assert_denied_read(learned, base / "secret")
    assert_denied_write(learned, tmp_path / "elsewhere.tgz")


@needs_audit
def test_learn_sqlite3_on_a_database(tmp_path):
    sqlite3 = need("sqlite3")
    dbdir = tmp_path / "db"
    dbdir.mkdir()
    db = dbdir / "app.db"
    subprocess.run([sqlite3, db, "create table t(x); insert into t values (1);"], check=True)
    (tmp_path / "secret").write_text("outside the database directory\n")
    cmd = [sqlite3, db, "insert into t values (2); select count(*) from t;"]
    learned, _ = learn_profile(tmp_path, *cmd)
    r = run_with(learned, *cmd)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().isdigit() and int(r.stdout) >= 3  # one row per run
    assert_denied_read(learned, tmp_path / "secret")
    assert_denied_write(learned, tmp_path / "other.db")


# the fallback and the command line -------------------------------------------------

def test_learn_with_strace(tmp_path, landlock):
    need_program(learn.STRACE)
    python3 = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else need("python3")
    work = tmp_path / "work"
    work.mkdir()
    (work / "in.txt").write_text("traced\n")
    (work / "secret").write_text("never read\n")
    code = (f"open({str(work / 'out.txt')!r}, 'w').write("
            f"open({str(work / 'in.txt')!r}).read())")
    learned, r = learn_profile(tmp_path, python3, "-c", code, extra=["--via", "strace"])
    assert "strace" in learned.read_text()
    os.unlink(work / "out.txt")
    r = run_with(learned, python3, "-c", code)
    assert r.returncode == 0, r.stderr
    assert (work / "out.txt").read_text() == "traced\n"
    assert_denied_read(learned, work / "secret")


@needs_audit
def test_learn_once_and_to_stdout(tmp_path):
    secret = tmp_path / "data"
    secret.write_text("x\n")
    r = lw("learn", "--once", "--", "cat", secret, stdin=subprocess.DEVNULL)
    assert r.returncode == 1  # one round, which had a denial
    assert "round 2" not in r.stderr and "incomplete" in r.stderr
    doc = tomllib.loads(r.stdout)  # only the profile goes to stdout
    assert doc["filesystem"]["ro"] == [str(secret)]
    r = lw("learn", "-y", "--", "printf", "out%s\\n", "-put", stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert "out-put" in r.stderr and "out-put" not in r.stdout  # the command's output
    assert tomllib.loads(r.stdout)["extends"] == ["default"]


def test_learn_errors_are_125(tmp_path):
    r = lw("learn", "-y", "--", "no-such-command-xyz", stdin=subprocess.DEVNULL)
    assert r.returncode == 125 and "command not found" in r.stderr
    r = lw("learn", "-y", "-o", tmp_path / "no" / "dir.toml", "--", "true",
           stdin=subprocess.DEVNULL)
    assert r.returncode == 125 and "no such directory" in r.stderr
    r = lw("learn", "-y", "-p", "no-such-profile-xyz", "--", "true", stdin=subprocess.DEVNULL)
    assert r.returncode == 125 and "no profile named 'no-such-profile-xyz'" in r.stderr
    r = lw("learn", "--rounds", "0", "--", "true")
    assert r.returncode == 125
    assert "Traceback" not in r.stderr

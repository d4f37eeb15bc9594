"""The shipped profile library (profiles/*.toml) on the real kernel.

Every profile loads, has a description and resolves on this kernel.  Every
app profile (all but the building blocks) has a test below that runs the
real program doing its ordinary job under `landwrap run -p NAME` and shows
one thing the profile must deny, with the denial checked twice: the
program's own "Permission denied" (EACCES) and the effect that did not
happen (a file not written, a request not received).

Each test runs in a box: a temporary HOME holding a fake ~/.ssh/id_rsa, a
working directory (the cwd of `landwrap run`), a private TMPDIR and an
"outside" directory that no profile grants.  The environment is minimal so
that the tests do not depend on the user's HOME, XDG variables or agents.
The programs come from Debian packages that .ci/run installs; a test whose
program is missing skips naming the package (conftest.need_program), or
fails under LANDWRAP_REQUIRE_APPS=1.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import http.server
import json
import lzma
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import pytest

from conftest import missing, need_program
from landwrap.profiles import lookup, profile

pytestmark = pytest.mark.usefixtures("landlock")

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nfake-secret-for-landwrap-tests\n"
DENIED = "Permission denied"


class Box:
    """A fake home, a working directory, a private TMPDIR and an outside."""

    def __init__(self, root):
        self.root = root
        self.home = root / "home"
        self.work = root / "work"
        self.tmp = root / "tmp"
        self.outside = root / "outside"
        for d in (self.home, self.work, self.tmp, self.outside):
            d.mkdir()
        (self.home / ".ssh").mkdir(mode=0o700)
        self.secret = self.home / ".ssh" / "id_rsa"
        self.secret.write_text(SECRET)
        self.secret.chmod(0o600)
        (self.outside / "data.txt").write_text("outside data\n")
        self.env = {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.home),
            "USER": os.environ.get("USER", "root"),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "LANDWRAP_CACHE_DIR": "",  # no parse cache in the fake HOME
        }

    def run(self, name, *cmd, opts=(), input=None, timeout=60, env=None):
        """`landwrap run -q -p NAME [opts] -- cmd` in the working directory
        (skips the test when cmd's program is not installed)."""
        prog = str(cmd[0])
        if "/" in prog:
            prog = os.path.join(self.work, prog)
        need_program(prog, path=self.env["PATH"])
        args = [sys.executable, "-m", "landwrap", "run", "-q", "-p", name, *opts, "--", *cmd]
        return subprocess.run(list(map(str, args)), cwd=self.work,
                              env={**self.env, **(env or {})}, input=input,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def box(tmp_path):
    return Box(tmp_path)


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


def denied(r, *, code=None):
    """The program failed (or reported) with EACCES from the sandbox."""
    out = r.stdout + r.stderr
    assert DENIED in out, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    if code is not None:
        assert r.returncode == code, r.stderr
    assert SECRET.splitlines()[1] not in out
    return r


# the library as a whole --------------------------------------------------

def shipped():
    return sorted(f[:-5] for f in os.listdir(lookup.PACKAGE_PROFILES)
                  if f.endswith(".toml") and not f.endswith(".local.toml"))


#: Profiles that are not named after a program: composed by the others.
BLOCKS = {"default", "system-base", "system-libs", "terminal", "network-client", "tls", "cwd-ro",
          "cwd-rw", "tmpdir", "python-runtime", "node-runtime", "coreutils",
          "archive", "compiler"}

#: App profiles tested below, registered at import time by @app(...) or
#: covers(...) next to the test that runs them.
TESTED = set()


def covers(*names):
    TESTED.update(names)
    return names


def app(*names):
    """Decorator: this test covers the app profiles *names*."""
    covers(*names)
    return lambda f: f


def test_library_is_large_enough_and_blocks_exist():
    names = set(shipped())
    assert BLOCKS <= names
    assert len(names) >= 30


@pytest.mark.parametrize("name", shipped())
def test_profile_loads_and_resolves(name, tmp_path, monkeypatch):
    # From a project directory: ${CWD} must not be landwrap's own checkout
    # (its profiles are never writable from a sandbox).
    monkeypatch.chdir(tmp_path)
    prof = profile.load([name], dirs=[lookup.PACKAGE_PROFILES])
    assert prof.description.strip(), f"{name} has no description"
    assert prof.sources[-1] == os.path.join(lookup.PACKAGE_PROFILES, name + ".toml")
    plan = prof.ruleset.resolve()  # strict: everything asked for is enforceable here
    assert plan.fs, name
    if name not in ("cwd-ro", "cwd-rw", "tmpdir", "terminal", "tls", "network-client"):
        # Blocks aside, every profile can execute the system's programs.
        assert plan.allows("/usr/bin/env", 1), name


def test_blocks_say_they_are_blocks():
    for name in BLOCKS - {"default"}:
        prof = profile.load([name], dirs=[lookup.PACKAGE_PROFILES])
        assert prof.description.startswith("Building block"), name


def test_command_basename_selects_its_profile(box):
    for cmd, name in (("/usr/bin/git", "git"), ("curl", "curl"), ("/usr/bin/python3", "python3"),
                      # a pip of a venv is not /usr/bin/pip: profiles attach to
                      # executables, not to names (-p pip selects it)
                      (".venv/bin/pip", "default"), ("true", "default")):
        r = subprocess.run([sys.executable, "-m", "landwrap", "run", "--dry-run", "--json",
                            "--", cmd], cwd=box.work, env=box.env, capture_output=True,
                           text=True, timeout=60)
        assert json.loads(r.stdout)["profiles"][-1].endswith(f"/{name}.toml"), (cmd, r.stdout)


def test_system_libs_does_not_expose_etc_or_proc_pids():
    plan = profile.load(["system-libs"], dirs=[lookup.PACKAGE_PROFILES]).ruleset.resolve()
    read = 1 << 2
    assert plan.allows("/etc/ld.so.cache", read)
    assert not plan.allows("/etc/shadow", read)
    assert not plan.allows("/etc/ssh/ssh_host_ed25519_key", read)
    assert not plan.allows(f"/proc/{os.getpid()}/environ", read)


# read-only file tools ----------------------------------------------------

PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


READERS = {
    "cat": (["cat", "a.txt"], "beta"),
    "ls": (["ls", "-a"], "a.txt"),
    "grep": (["grep", "-rn", "beta", "."], "a.txt:2:beta"),
    "head": (["head", "-n", "1", "a.txt"], "gamma"),
    "tail": (["tail", "-n", "1", "a.txt"], "alpha"),
    "wc": (["wc", "-l", "a.txt"], "3 a.txt"),
    "diff": (["diff", "a.txt", "b.txt"], "> delta"),
    "sort": (["sort", "a.txt"], "alpha\nbeta\ngamma"),
    "jq": (["jq", "-r", ".name", "p.json"], "landwrap"),
    "file": (["file", "img.png"], "PNG image data"),
    "less": (["less", "-F", "a.txt"], "beta"),
}
covers(*READERS)


@pytest.mark.parametrize("name", sorted(READERS))
def test_reader_reads_the_working_directory_and_not_home(box, name):
    (box.work / "a.txt").write_text("gamma\nbeta\nalpha\n")
    (box.work / "b.txt").write_text("gamma\nbeta\nalpha\ndelta\n")
    (box.work / "p.json").write_text('{"name": "landwrap"}')
    (box.work / "img.png").write_bytes(PNG_1X1)
    cmd, expect = READERS[name]
    r = box.run(name, *cmd)
    assert r.returncode == (1 if name == "diff" else 0), r.stderr  # diff: 1 = files differ
    assert expect in r.stdout
    # Denied: the same tool on the user's SSH key.
    secret_cmd = {
        "ls": ["ls", box.home / ".ssh"],
        "grep": ["grep", "-r", "fake", box.home / ".ssh"],
        "diff": ["diff", "a.txt", box.secret],
        "jq": ["jq", "-R", ".", box.secret],
    }.get(name, [name, box.secret])
    r = box.run(name, *secret_cmd)
    if name == "file":  # file(1) words EACCES its own way and exits 0
        assert "no read permission" in r.stdout, r.stdout
    else:
        denied(r)
    assert SECRET.splitlines()[1] not in r.stdout + r.stderr
    # and nothing was written anywhere (read-only tools)
    assert sorted(os.listdir(box.work)) == ["a.txt", "b.txt", "img.png", "p.json"]


@app("sort")
@app("cat")
def test_cat_cannot_read_etc_shadow(box):
    # /etc is not granted wholesale: root may read /etc/shadow, cat here may not.
    if not os.access("/etc/shadow", os.R_OK):
        pytest.skip("/etc/shadow is not readable without the sandbox either (not root)")
    denied(box.run("cat", "cat", "/etc/shadow"), code=1)
    ok(box.run("cat", "cat", "/etc/passwd"))  # the NSS files are


def test_sort_spills_to_tmpdir_only(box):
    (box.work / "n.txt").write_text("".join(f"{i % 97}\n" for i in range(2000)))
    r = ok(box.run("sort", "sort", "-n", "-S", "1k", "n.txt"))  # tiny buffer: temp files
    assert r.stdout.splitlines()[0] == "0" and len(r.stdout.splitlines()) == 2000
    r = box.run("sort", "sort", "-T", box.outside, "-S", "1k", "n.txt")
    denied(r, code=2)
    assert os.listdir(box.outside) == ["data.txt"]


@app("man")
def test_man_formats_pages_but_cannot_read_home(box):
    r = ok(box.run("man", "man", "-P", "cat", "ls", env={"MANWIDTH": "80"}))
    assert "list directory contents" in r.stdout
    r = denied(box.run("man", "man", "-l", box.secret))
    assert r.returncode != 0


# interpreters -------------------------------------------------------------

@app("python3", "python")  # python: see also test_defaults (a venv's python)
def test_python3_runs_a_script_that_writes_here_but_cannot_read_ssh(box):
    (box.work / "script.py").write_text(
        "import os, sys, tempfile\n"
        "open('out.txt', 'w').write(open('in.txt').read().upper())\n"
        "with tempfile.NamedTemporaryFile() as t: t.write(b'x')\n"
        "try:\n"
        "    open(sys.argv[1]).read()\n"
        "    print('READ THE KEY')\n"
        "except PermissionError as e:\n"
        "    print('denied:', e.strerror)\n")
    (box.work / "in.txt").write_text("hello\n")
    r = ok(box.run("python3", "/usr/bin/python3", "script.py", box.secret))
    assert (box.work / "out.txt").read_text() == "HELLO\n"
    assert r.stdout.strip() == f"denied: {DENIED}"


@app("perl")
def test_perl_edits_in_place_but_cannot_read_ssh(box):
    (box.work / "a.txt").write_text("hello world\n")
    ok(box.run("perl", "perl", "-pi", "-e", "s/world/perl/", "a.txt"))
    assert (box.work / "a.txt").read_text() == "hello perl\n"
    r = box.run("perl", "perl", "-e", 'open(my $f, "<", $ARGV[0]) or die "open: $!\\n"; print <$f>',
                box.secret)
    denied(r)
    assert r.stderr.strip() == f"open: {DENIED}"


@app("node")
def test_node_runs_a_script_that_writes_here_but_cannot_read_ssh(box):
    (box.work / "s.js").write_text(
        "const fs = require('fs');\n"
        "fs.writeFileSync('out.txt', String(6 * 7));\n"
        "try { fs.readFileSync(process.argv[2]); console.log('READ THE KEY'); }\n"
        "catch (e) { console.log('denied:', e.code); }\n")
    r = ok(box.run("node", "node", "s.js", box.secret))
    assert (box.work / "out.txt").read_text() == "42"
    assert r.stdout.strip() == "denied: EACCES"


NPM_ENV = {"npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}


@app("npm")
def test_npm_init_and_run_script_but_scripts_cannot_escape(box):
    (box.home / ".npm").mkdir()
    ok(box.run("npm", "npm", "init", "-y", env=NPM_ENV))
    pkg = (box.work / "package.json").read_text()
    assert '"name": "work"' in pkg
    pkg = pkg.replace('"scripts": {', '"scripts": {\n    "build": "echo built > built.txt",\n'
                      f'    "evil": "echo pwned > {box.outside}/pwned",')
    (box.work / "package.json").write_text(pkg)
    ok(box.run("npm", "npm", "run", "build", env=NPM_ENV))
    assert (box.work / "built.txt").read_text() == "built\n"
    r = box.run("npm", "npm", "run", "evil", env=NPM_ENV)
    denied(r)
    assert r.returncode != 0
    assert not (box.outside / "pwned").exists()


# pip: a wheel built here, installed without network ----------------------

def make_wheel(dist_dir, name="lwdemo", version="1.0"):
    files = {f"{name}/__init__.py": b"VALUE = 42\n",
             f"{name}-{version}.dist-info/METADATA":
                 f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{name}-{version}.dist-info/WHEEL":
                 b"Wheel-Version: 1.0\nGenerator: landwrap-tests\nRoot-Is-Purelib: true\n"
                 b"Tag: py3-none-any\n"}
    record = []
    path = dist_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, data in files.items():
            z.writestr(p, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{p},sha256={digest.decode()},{len(data)}")
        record.append(f"{name}-{version}.dist-info/RECORD,,")
        z.writestr(f"{name}-{version}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


@pytest.mark.parametrize("name,venv", [("pip", ".venv"), ("pip3", "venv")])
@app("pip", "pip3")
def test_pip_installs_into_the_venv_only(box, name, venv):
    need_program("/usr/bin/python3")
    if name == "pip" and subprocess.run(["/usr/bin/python3", "-m", "ensurepip", "--version"],
                                        capture_output=True).returncode != 0:
        missing("python3's venv with pip (ensurepip)", "python3-venv")
    (box.work / "dist").mkdir()
    make_wheel(box.work / "dist")
    if name == "pip":
        # The venv's own pip (the usual `pip` of an activated venv).
        subprocess.run(["/usr/bin/python3", "-m", "venv", venv], cwd=box.work, check=True,
                       env=box.env, timeout=120)
        pip = [f"{venv}/bin/pip"]
    else:
        # The system's pip3 working on a venv (`pip --python`): no pip inside.
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", venv],
                       cwd=box.work, check=True, env=box.env, timeout=60)
        pip = ["/usr/bin/pip3", "--python", f"{venv}/bin/python"]
    opts = ["install", "--no-index", "--find-links", "dist", "--disable-pip-version-check"]
    ok(box.run(name, *pip, *opts, "lwdemo"))
    r = subprocess.run([f"{venv}/bin/python", "-c", "import lwdemo; print(lwdemo.VALUE)"],
                       cwd=box.work, capture_output=True, text=True, env=box.env)
    assert r.stdout.strip() == "42", r.stderr
    # Denied: installing anywhere but the venv.
    r = box.run(name, *pip, *opts, "--target", box.outside / "site", "lwdemo")
    denied(r)
    assert r.returncode != 0
    assert not (box.outside / "site").exists()


# version control and network clients --------------------------------------

@app("git")
def test_git_commits_in_the_repository_but_cannot_read_ssh(box):
    (box.home / ".gitconfig").write_text("[user]\n\tname = Land Wrap\n\temail = lw@example.org\n"
                                         "[init]\n\tdefaultBranch = main\n")
    (box.work / "a.txt").write_text("first\n")
    ok(box.run("git", "git", "init", "-q"))
    ok(box.run("git", "git", "add", "a.txt"))
    ok(box.run("git", "git", "commit", "-q", "-m", "first commit"))
    r = ok(box.run("git", "git", "log", "--format=%an %s"))
    assert r.stdout.strip() == "Land Wrap first commit"  # ~/.gitconfig was read
    r = box.run("git", "git", "hash-object", box.secret)
    denied(r, code=128)
    # A hook in the repository does not run (no execute in the work tree).
    hook = box.work / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {box.outside}/hook-ran\n")
    hook.chmod(0o755)
    (box.work / "a.txt").write_text("second\n")
    denied(box.run("git", "git", "commit", "-qam", "second"))
    assert not (box.outside / "hook-ran").exists()


class _Server:
    """A local HTTP server on 127.0.0.1 counting the requests it got."""

    def __init__(self, directory):
        hits = self.hits = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(directory), **kw)

            def do_GET(self):
                hits.append(self.path)
                super().do_GET()

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers(box):
    (box.root / "srv").mkdir()
    (box.root / "srv" / "page.html").write_text("<p>served</p>\n")
    made = [_Server(box.root / "srv"), _Server(box.root / "srv")]
    yield made
    for s in made:
        s.close()


@app("curl")
def test_curl_fetches_but_only_from_allowed_ports(box, servers):
    good, other = servers
    # The profile allows 80 and 443; the test server's port is added on the
    # command line, as a user would for a local server.
    ok(box.run("curl", "curl", "-sS", "-o", "page.html", f"http://127.0.0.1:{good.port}/page.html",
               opts=["--connect-tcp", good.port]))
    assert (box.work / "page.html").read_text() == "<p>served</p>\n"
    assert good.hits == ["/page.html"]
    # Denied: a port neither the profile nor the command line allows.
    r = box.run("curl", "curl", "-sSv", f"http://127.0.0.1:{other.port}/page.html",
                opts=["--connect-tcp", good.port])
    denied(r, code=7)  # "Immediate connect fail for 127.0.0.1: Permission denied"
    assert other.hits == []


def test_curl_profile_allows_only_http_ports(box, monkeypatch):
    monkeypatch.chdir(box.work)
    prof = profile.load(["curl"], dirs=[lookup.PACKAGE_PROFILES])
    plan = prof.ruleset.resolve()
    assert [p for p, bits, _ in plan.ports if bits & 2] == [80, 443]


@app("wget")
def test_wget_downloads_here_but_not_outside(box, servers):
    good, _ = servers
    url = f"http://127.0.0.1:{good.port}/page.html"
    ok(box.run("wget", "wget", "-q", url, opts=["--connect-tcp", good.port]))
    assert (box.work / "page.html").read_text() == "<p>served</p>\n"
    r = box.run("wget", "wget", "-q", "-O", box.outside / "page.html", url,
                opts=["--connect-tcp", good.port])
    denied(r)
    assert r.returncode != 0
    assert not (box.outside / "page.html").exists()


@pytest.fixture
def port22():
    """A fake SSH server on 127.0.0.1:22 (needs root) recording what the
    client sent; the sandboxed client may only connect to port 22."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind(("127.0.0.1", 22))
    except PermissionError:
        pytest.skip("binding port 22 needs root")
    except OSError as e:  # an sshd already listens: its banner exchange cannot be observed
        pytest.skip(f"127.0.0.1:22 is busy: {e.strerror}")
    srv.listen(1)
    got = []

    def serve():
        srv.settimeout(30)
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"SSH-2.0-landwrap-test\r\n")
            conn.settimeout(10)
            try:
                got.append(conn.recv(200))
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield got, t
    srv.close()


@app("ssh")
def test_ssh_connects_to_port_22_only(box, port22):
    got, thread = port22
    opts = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=10",
            "-o", f"UserKnownHostsFile={box.home}/.ssh/known_hosts"]
    r = box.run("ssh", "ssh", *opts, "-p", "22", "127.0.0.1", "true")
    thread.join(30)
    # The connection was made: the server got the client's banner (the
    # fake server then hangs up, so ssh itself fails).
    assert got and got[0].startswith(b"SSH-2.0-OpenSSH"), (got, r.stderr)
    # Denied: any other port, even with a server listening there.
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(1)
    other.settimeout(0.5)
    try:
        r = box.run("ssh", "ssh", *opts, "-p", other.getsockname()[1], "127.0.0.1", "true")
        assert r.returncode == 255
        assert f"port {other.getsockname()[1]}: {DENIED}" in r.stderr
        with pytest.raises(socket.timeout):
            other.accept()
    finally:
        other.close()


@app("ssh")
def test_ssh_reads_its_config_and_nothing_else_of_home(box):
    (box.home / ".ssh" / "config").write_text("Host lwtest\n  HostName 192.0.2.7\n  Port 2222\n")
    (box.home / ".aws").mkdir()
    (box.home / ".aws" / "credentials").write_text("Host x\n")
    r = ok(box.run("ssh", "ssh", "-G", "-F", box.home / ".ssh" / "config", "lwtest"))
    assert "hostname 192.0.2.7" in r.stdout and "port 2222" in r.stdout
    r = box.run("ssh", "ssh", "-G", "-F", box.home / ".aws" / "credentials", "lwtest")
    denied(r, code=255)


# databases, archives, compressors -----------------------------------------

@app("sqlite3")
def test_sqlite3_writes_a_database_here_but_not_outside(box):
    sql = "create table t(x); insert into t values (42); select x from t;"
    r = ok(box.run("sqlite3", "sqlite3", "app.db", sql))
    assert r.stdout.strip() == "42"
    import sqlite3

    assert sqlite3.connect(box.work / "app.db").execute("select x from t").fetchall() == [(42,)]
    r = box.run("sqlite3", "sqlite3", "app.db",
                f"attach '{box.outside}/evil.db' as e; create table e.t(x);")
    # sqlite3 reports EACCES as SQLITE_CANTOPEN ("unable to open database")
    assert r.returncode != 0 and "unable to open database" in r.stderr, r.stderr
    assert not (box.outside / "evil.db").exists()


@app("tar")
def test_tar_packs_the_working_directory_but_writes_nothing_outside(box):
    # The archive is written next to the tree it packs: packing "." into
    # ./pack.tgz makes tar race with its own output ("file changed as we
    # read it", exit 1).
    (box.work / "src" / "lib").mkdir(parents=True)
    (box.work / "src" / "lib" / "a.txt").write_text("a\n")
    ok(box.run("tar", "tar", "-czf", "pack.tgz", "src"))
    with tarfile.open(box.work / "pack.tgz") as t:
        assert "src/lib/a.txt" in t.getnames()
    (box.work / "out").mkdir()
    ok(box.run("tar", "tar", "-xzf", "pack.tgz", "-C", "out"))
    assert (box.work / "out" / "src" / "lib" / "a.txt").read_text() == "a\n"
    r = box.run("tar", "tar", "-czf", box.outside / "pack.tgz", "src")
    denied(r, code=2)
    assert not (box.outside / "pack.tgz").exists()


COMPRESSORS = {
    "gzip": (["gzip", "-k", "a.txt"], "a.txt.gz", gzip.decompress),
    "xz": (["xz", "-k", "a.txt"], "a.txt.xz", lzma.decompress),
    "bzip2": (["bzip2", "-k", "a.txt"], "a.txt.bz2", bz2.decompress),
    "zstd": (["zstd", "-q", "a.txt"], "a.txt.zst", None),
}
covers(*COMPRESSORS)


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_compressor_works_here_but_cannot_compress_the_key(box, name):
    cmd, out, decompress = COMPRESSORS[name]
    data = "landwrap " * 1000
    (box.work / "a.txt").write_text(data)
    ok(box.run(name, *cmd))
    packed = (box.work / out).read_bytes()
    assert len(packed) < len(data)
    if decompress is None:  # no zstd module in the standard library: unpack in the sandbox
        ok(box.run(name, name, "-d", "-q", "-o", "back.txt", out))
        assert (box.work / "back.txt").read_text() == data
    else:
        assert decompress(packed).decode() == data
    r = box.run(name, name, "-k", "-c", box.secret)
    denied(r)
    assert r.returncode != 0 and r.stdout == ""


@app("zip", "unzip")
def test_zip_and_unzip_work_here_but_not_outside(box):
    (box.work / "a.txt").write_text("zipped\n")
    ok(box.run("zip", "zip", "-q", "x.zip", "a.txt"))
    with zipfile.ZipFile(box.work / "x.zip") as z:
        assert z.read("a.txt") == b"zipped\n"
    ok(box.run("unzip", "unzip", "-q", "x.zip", "-d", "out"))
    assert (box.work / "out" / "a.txt").read_text() == "zipped\n"
    denied(box.run("zip", "zip", "-q", box.outside / "x.zip", "a.txt"))
    assert sorted(os.listdir(box.outside)) == ["data.txt"]
    r = box.run("unzip", "unzip", "-q", "x.zip", "-d", box.outside / "u")
    denied(r)
    assert r.returncode != 0
    assert not (box.outside / "u").exists()


# build tools ----------------------------------------------------------------

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello from landwrap"); return 0; }\n'
HELLO_CXX = '#include <iostream>\nint main() { std::cout << "hello from landwrap" << std::endl; }\n'


@pytest.mark.parametrize("name", covers("gcc", "cc", "g++", "c++"))
def test_compiler_builds_here_but_cannot_include_the_key(box, name):
    src = "hello.cpp" if "+" in name else "hello.c"
    (box.work / src).write_text(HELLO_CXX if "+" in name else HELLO_C)
    ok(box.run(name, name, "-O1", "-o", "hello", src))
    r = subprocess.run([box.work / "hello"], capture_output=True, text=True)
    assert r.stdout == "hello from landwrap\n"
    (box.work / "evil.c").write_text(f'#include "{box.secret}"\n')
    r = box.run(name, name, "-x", "c", "-c", "evil.c")
    denied(r, code=1)
    assert not (box.work / "evil.o").exists()


@app("make")
def test_make_builds_and_runs_here_but_recipes_cannot_write_outside(box):
    need_program("cc", path=box.env["PATH"])  # the recipe's compiler
    (box.work / "hello.c").write_text(HELLO_C)
    (box.work / "Makefile").write_text(
        "out.txt: hello\n\t./hello > out.txt\n"
        "hello: hello.c\n\t$(CC) -o $@ $<\n"
        f"evil:\n\techo pwned > {box.outside}/pwned\n")
    ok(box.run("make", "make"))
    assert (box.work / "out.txt").read_text() == "hello from landwrap\n"
    r = box.run("make", "make", "evil")
    denied(r, code=2)
    assert not (box.outside / "pwned").exists()


@app("cmake")
def test_cmake_configures_and_builds_here_but_not_outside(box):
    for prog in ("cc", "make"):  # the generated build's compiler and build tool
        need_program(prog, path=box.env["PATH"])
    (box.work / "hello.c").write_text(HELLO_C)
    (box.work / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(hello C)\nadd_executable(hello hello.c)\n")
    ok(box.run("cmake", "cmake", "-S", ".", "-B", "build", timeout=120))
    ok(box.run("cmake", "cmake", "--build", "build", timeout=120))
    r = subprocess.run([box.work / "build" / "hello"], capture_output=True, text=True)
    assert r.stdout == "hello from landwrap\n"
    r = box.run("cmake", "cmake", "-S", ".", "-B", box.outside / "build", timeout=120)
    assert r.returncode != 0
    # cmake words the failed mkdir (EACCES) as "Unable to (re)create ..."
    assert "Unable to (re)create" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not (box.outside / "build").exists()


# crypto ---------------------------------------------------------------------

@app("openssl")
def test_openssl_hashes_and_makes_keys_here_but_cannot_read_the_key(box):
    (box.work / "a.txt").write_bytes(b"landwrap\n")
    r = ok(box.run("openssl", "openssl", "dgst", "-sha256", "a.txt"))
    assert r.stdout.strip().endswith(hashlib.sha256(b"landwrap\n").hexdigest())
    ok(box.run("openssl", "openssl", "genpkey", "-algorithm", "ed25519", "-out", "key.pem"))
    assert (box.work / "key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    denied(box.run("openssl", "openssl", "dgst", "-sha256", box.secret), code=1)


@pytest.fixture
def gnupg_home(box):
    need_program("gpgconf", path=box.env["PATH"])  # before the test: the teardown runs it
    gh = box.home / ".gnupg"
    gh.mkdir(mode=0o700)
    yield gh
    # gpg started an agent inside the sandbox: stop it.
    subprocess.run(["gpgconf", "--kill", "all"], env=box.env, capture_output=True, timeout=30)


@app("gpg")
def test_gpg_encrypts_with_its_home_but_cannot_read_the_ssh_key(box, gnupg_home):
    (box.work / "a.txt").write_text("attack at dawn\n")
    gpg = ["gpg", "--batch", "--passphrase", "pw", "--pinentry-mode", "loopback"]
    ok(box.run("gpg", *gpg, "-c", "a.txt"))
    assert (box.work / "a.txt.gpg").read_bytes()[:1] in (b"\x8c", b"\xc3")  # symmetric packet
    ok(box.run("gpg", *gpg, "-o", "plain.txt", "-d", "a.txt.gpg"))
    assert (box.work / "plain.txt").read_text() == "attack at dawn\n"
    assert (gnupg_home / "pubring.kbx").exists()  # its home was written
    r = box.run("gpg", *gpg, "-o", "k.gpg", "-c", box.secret)
    denied(r, code=2)
    assert not (box.work / "k.gpg").exists()


# images and editors -----------------------------------------------------------

@app("convert", "identify", "mogrify")
def test_imagemagick_converts_here_but_not_outside(box):
    # /usr/bin: the Debian programs (a wrapper elsewhere on PATH would not be ImageMagick).
    ok(box.run("convert", "/usr/bin/convert", "-size", "8x6", "xc:red", "red.png"))
    assert (box.work / "red.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ok(box.run("mogrify", "/usr/bin/mogrify", "-resize", "4x3", "red.png"))
    r = ok(box.run("identify", "/usr/bin/identify", "red.png"))
    assert "PNG 4x3" in r.stdout
    # Denied: writing outside.  (ImageMagick misreports the EACCES of its
    # open() as "No such file or directory"; the file's absence is the proof.)
    r = box.run("convert", "/usr/bin/convert", "-size", "8x6", "xc:red", box.outside / "red.png")
    assert r.returncode != 0 and "unable to open image" in r.stderr, r.stderr
    assert not (box.outside / "red.png").exists()


@pytest.mark.parametrize("name", covers("vim", "vi"))
def test_vim_edits_here_but_cannot_write_outside(box, name):
    (box.work / "a.txt").write_text("hello\n")
    ok(box.run(name, name, "-Es", "-u", "NONE", "-c", "normal Aworld", "-c", "wq", "a.txt"))
    assert (box.work / "a.txt").read_text() == "helloworld\n"
    r = box.run(name, name, "-Es", "-u", "NONE", "-c", f"w {box.outside}/copy.txt", "-c", "q!",
                "a.txt")
    assert r.returncode != 0
    assert not (box.outside / "copy.txt").exists()
    r = box.run(name, name, "-Es", "-u", "NONE", "-c", f"r {box.secret}", "-c", "w! b.txt",
                "-c", "q!", "a.txt")
    assert SECRET.splitlines()[1] not in (box.work / "b.txt").read_text()


# every app profile has a test -------------------------------------------------

def test_every_app_profile_has_a_test():
    apps = set(shipped()) - BLOCKS
    missing = apps - TESTED
    assert not missing, f"app profiles without a test here: {sorted(missing)}"
    assert not TESTED - apps, f"tests for profiles that are not shipped: {sorted(TESTED - apps)}"

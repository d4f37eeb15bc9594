"""Defaults that work first time (issue 10): the `hide` key, the default
profile (/etc without its secrets and not executable, the current directory
readable, a private TMPDIR), one system base for every app profile, and
everyday jobs run with only the options the README shows for them.

Every job runs in a temporary project directory with a temporary HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import PY_ROX, lw, nobody_can_run_python
from landwrap.engine import compat
from landwrap.profiles import lookup, profile, variables

READ = compat.FS_RIGHTS["read_file"][0]
EXEC = compat.FS_RIGHTS["execute"][0]


@pytest.fixture
def proj(tmp_path):
    """(project dir, env): a project with a few files, HOME and XDG
    directories of its own, and a cache that cannot collide with others."""
    home = tmp_path / "home"
    home.mkdir()
    work = home / "proj"
    work.mkdir()
    (work / "data.txt").write_text("b 2\na 1\nc 3\n")
    (work / "sub").mkdir()
    (work / "sub" / "more.txt").write_text("x\n")
    (work / "notes.md").write_text("n\n")
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), LANDWRAP_PROFILE_PATH="")
    env.pop("TMPDIR", None)
    return work, env


def run(work, env, *args, timeout=120):
    return subprocess.run([sys.executable, "-m", "landwrap", "run", *map(str, args)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=timeout)


# hide ---------------------------------------------------------------------

@pytest.mark.usefixtures("landlock")
def test_hide_carves_a_file_and_a_directory_out_of_a_grant(tmp_path):
    """A profile granting a tree with one file and one directory hidden:
    those are denied (EACCES), their siblings and the rest of the tree
    are not; a file created later in a directory on the way is not granted
    (documented), one created in a granted sibling directory is."""
    tree = tmp_path / "tree"
    (tree / "a" / "secret").mkdir(parents=True)
    (tree / "a" / "secret" / "key").write_text("K")
    (tree / "a" / "ok.txt").write_text("ok")
    (tree / "b").mkdir()
    (tree / "b" / "c.txt").write_text("c")
    (tree / "shadow").write_text("S")
    (tree / "hosts").write_text("H")
    prof = tmp_path / "p.toml"
    prof.write_text('extends = ["system-libs"]\n[filesystem]\n'
                    f'rw = ["{tree}"]\nhide = ["{tree}/shadow", "{tree}/a/secret", '
                    f'"{tree}/nothere*"]\n')
    code = (
        "import sys\n"
        "def r(p):\n"
        "  try: return open(p).read()\n"
        "  except PermissionError: return 'EACCES'\n"
        "  except FileNotFoundError: return 'ENOENT'\n"
        f"t = {str(tree)!r}\n"
        "print(r(t+'/shadow'), r(t+'/a/secret/key'), r(t+'/hosts'), r(t+'/a/ok.txt'),"
        " r(t+'/b/c.txt'))\n"
        "open(t+'/b/new', 'w').write('n')\n"
        "try: open(t+'/new', 'w')\n"
        "except PermissionError: print('new-denied')\n")
    r = lw("run", "-q", "-p", prof, *PY_ROX, "--", sys.executable, "-I", "-S", "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["EACCES EACCES H ok c", "new-denied"]
    assert (tree / "b" / "new").read_text() == "n"
    # without hide, the same profile reads both (the test can fail)
    prof.write_text(f'extends = ["system-libs"]\n[filesystem]\nrw = ["{tree}"]\n')
    r = lw("run", "-q", "-p", prof, *PY_ROX, "--", sys.executable, "-I", "-S", "-c", code)
    assert r.stdout.startswith("S K H ok c"), r.stderr


@pytest.mark.usefixtures("landlock")
def test_hide_skips_symlinks_among_the_siblings(tmp_path):
    """A sibling symlink pointing at the hidden file gets no rule of its
    own (a rule would bind to the hidden file's inode)."""
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "shadow").write_text("S")
    (tree / "alias").symlink_to(tree / "shadow")
    prof = tmp_path / "p.toml"
    prof.write_text(f'[filesystem]\nro = ["{tree}"]\nhide = ["{tree}/shadow"]\n')
    plan = profile.load([str(prof)]).ruleset.resolve()
    assert not plan.allows(str(tree / "alias"), READ)
    assert not plan.allows(str(tree / "shadow"), READ)
    assert [r.path for r in plan.rules] == [str(tree)]  # read_dir only


def test_hide_shows_in_dry_run_and_why(proj):
    work, env = proj
    r = run(work, env, "--dry-run", "--json", "--", "true")
    import json

    d = json.loads(r.stdout)
    assert "/etc/shadow" in d["hidden"]
    etc = [x for x in d["rules"] if x["path"] == "/etc"]
    assert etc and etc[0]["access"] == ["read_dir"]
    r = subprocess.run([sys.executable, "-m", "landwrap", "why", "/etc/shadow"], cwd=work,
                       env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "/etc/shadow is hidden" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "landwrap", "profile", "show", "--resolved",
                        "default"], cwd=work, env=env, capture_output=True, text=True)
    assert "Hidden (" in r.stdout and "  /etc/shadow    # " in r.stdout, r.stdout
    assert "kernel rules around them, e.g. read_dir /etc" in r.stdout


# the default profile --------------------------------------------------------

@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(os.geteuid() != 0, reason="as root: the secrets are root's to read")
def test_default_as_root_hides_etc_secrets_and_runs_nothing_there(proj):
    work, env = proj
    etc_exe = next(p for p in ("/etc/init.d/procps", "/etc/init.d/dbus",
                               "/etc/init.d/hwclock.sh") if os.access(p, os.X_OK))
    code = (
        "import os, sys\n"
        "def r(p):\n"
        "  try: open(p).read(1); return 'ok'\n"
        "  except PermissionError: return 'EACCES'\n"
        "print(r('/etc/shadow'), r('/etc/gshadow'), r('/etc/hosts'))\n"
        f"try: os.execv({etc_exe!r}, [{etc_exe!r}])\n"
        "except PermissionError: print('exec-denied')\n")
    r = run(work, env, "-p", "default", *PY_ROX, "--", sys.executable, "-I", "-S", "-c", code)
    assert r.stdout.split("\n")[:2] == ["EACCES EACCES ok", "exec-denied"], r.stderr
    # the same file as root outside: readable (the test can fail)
    assert open("/etc/shadow").read(1)
    plan = profile.load(["default"]).ruleset.resolve()
    assert not plan.allows("/etc/ssh/ssh_host_ed25519_key", READ)
    assert not plan.allows("/etc/ssh/ssh_host_rsa_key", READ)
    for rule in plan.rules:
        if rule.path == "/etc" or rule.path.startswith("/etc/"):
            assert not rule.access & EXEC, rule.path


@pytest.mark.usefixtures("landlock")
def test_default_from_home_still_runs_without_home(proj):
    """From $HOME the default profile's ${CWD} rule is left out (noted in
    --dry-run), never widened to the home directory; the run goes ahead."""
    work, env = proj
    home = work.parent
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text("KEY")
    r = run(home, env, "-p", "default", "--", "cat", str(home / ".ssh" / "id_rsa"))
    assert r.returncode == 1 and "Permission denied" in r.stderr
    r = run(home, env, "--dry-run", "--", "true")
    assert r.returncode == 0 and "unsafe_cwd" in r.stdout, r.stdout + r.stderr


@pytest.mark.usefixtures("landlock")
def test_private_tmp_is_made_granted_and_removed(proj, tmp_path):
    work, env = proj
    outside = tmp_path / "outside"
    outside.mkdir()
    code = ("import os, tempfile, sys\n"
            "d = os.environ['TMPDIR']; st = os.stat(d)\n"
            "print(d, oct(st.st_mode & 0o777), tempfile.gettempdir() == d)\n"
            "os.symlink('/etc', d + '/link'); os.mkdir(d + '/sub')\n"
            "open(d + '/sub/f', 'w').write('x')\n"
            f"try: open({str(outside)!r} + '/f', 'w')\n"
            "except PermissionError: print('outside-denied')\n")
    r = run(work, env, *PY_ROX, "--", sys.executable, "-I", "-S", "-c", code)
    assert r.returncode == 0, r.stderr
    d, mode, same = r.stdout.split("\n")[0].split()
    assert mode == "0o700" and same == "True"
    assert "outside-denied" in r.stdout
    assert not os.path.lexists(d)            # removed, through the symlink too
    assert os.path.isdir("/etc")             # ...which was not followed
    r = run(work, env, "--keep-tmp", *PY_ROX, "--", sys.executable, "-I", "-S", "-c", code)
    d = r.stdout.split()[0]
    assert os.path.isdir(d) and "kept" in r.stderr
    shutil.rmtree(d)


def test_no_warning_for_true(proj):
    work, env = proj
    r = run(work, env, "--", "true")
    assert r.returncode == 0 and r.stderr == ""


# one system base ------------------------------------------------------------

#: Shipped profiles that deliberately leave out part of what `default`
#: allows under /usr, /lib*, /etc (none today).
NARROWER: dict = {}
BLOCK_ONLY = {"cwd-ro", "cwd-rw", "tmpdir", "terminal", "network-client", "tls"}


def _system_paths():
    out = []
    for top in ("/usr/bin", "/usr/lib", "/usr/share", "/lib", "/lib64", "/opt"):
        if os.path.isdir(top):
            out.append(top)
    for name in sorted(os.listdir("/etc"))[:400]:
        # a symlink (/etc/mtab -> /proc/self/mounts) leads where other
        # rules decide
        if not os.path.islink(os.path.join("/etc", name)):
            out.append(os.path.join("/etc", name))
    return out


def test_every_app_profile_has_defaults_system_access():
    """Whatever `default` allows under /usr, /lib*, /etc (and /opt), every
    shipped profile allows too, unless listed in NARROWER with a reason."""
    dirs = [lookup.PACKAGE_PROFILES]
    base = profile.load(["default"], dirs=dirs).ruleset.resolve()
    paths = _system_paths()
    want = {p: base.allows(p, READ | EXEC) for p in paths}
    failures = []
    for name, path, _, _ in profile.list_profiles(dirs):
        if name in BLOCK_ONLY or name in NARROWER:
            continue
        plan = profile.load([name], dirs=dirs).ruleset.resolve()
        missing = [p for p in paths if want[p] & ~plan.allows(p, READ | EXEC)]
        if missing:
            failures.append((name, missing[:3]))
    assert not failures, failures


# everyday jobs, first try -------------------------------------------------------

SYS_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture
def job(proj):
    """(work, env) with the distribution's python3 first on PATH."""
    work, env = proj
    env = dict(env, PATH=SYS_PATH)
    env.pop("VIRTUAL_ENV", None)
    return work, env


def ok(r):
    assert r.returncode == 0, r.stderr
    return r


@pytest.mark.usefixtures("landlock")
def test_read_only_jobs_in_the_project(job):
    work, env = job
    r = ok(run(work, env, "--", "find", ".", "-name", "*.txt"))
    assert sorted(r.stdout.split()) == ["./data.txt", "./sub/more.txt"]
    assert ok(run(work, env, "--", "awk", "{print $2}", "data.txt")).stdout == "2\n1\n3\n"
    assert ok(run(work, env, "--", "sha256sum", "data.txt")).stdout.split()[1] == "data.txt"
    assert ok(run(work, env, "--", "du", "-sh", ".")).stdout.split()[1] == "."
    assert "localhost" in ok(run(work, env, "--", "cat", "/etc/hosts")).stdout
    # ...and nothing of the home directory around the project
    (work.parent / ".netrc").write_text("password x")
    r = run(work, env, "--", "cat", str(work.parent / ".netrc"))
    assert r.returncode == 1 and "Permission denied" in r.stderr


@pytest.mark.usefixtures("landlock")
def test_sed_in_place_with_rw_dot(job):
    work, env = job
    ok(run(work, env, "--rw", ".", "--", "sed", "-i", "s/a/A/", "data.txt"))
    assert (work / "data.txt").read_text().startswith("b 2\nA 1")
    r = run(work, env, "--", "sed", "-i", "s/b/B/", "data.txt")   # without --rw .: denied
    assert r.returncode != 0 and (work / "data.txt").read_text().startswith("b 2")


@pytest.mark.usefixtures("landlock")
def test_sort_spills_to_the_private_tmpdir(job):
    work, env = job
    (work / "n.txt").write_text("".join(f"{i % 97}\n" for i in range(3000)))
    r = ok(run(work, env, "--", "sort", "-n", "-S", "1k", "n.txt"))
    assert len(r.stdout.split()) == 3000
    r = ok(run(work, env, "--", "sh", "-c", 'sort -n -S 1k -T "$TMPDIR" n.txt | head -1'))
    assert r.stdout == "0\n"
    r = run(work, env, "--dry-run", "--json", "--", "sort", "n.txt")
    import json

    assert not any(x["path"] == "/tmp" for x in json.loads(r.stdout)["rules"])


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system python3")
def test_python3_job_writes_out_also_from_an_outside_venv(job, tmp_path):
    work, env = job
    (work / "job.py").write_text("import tempfile\nwith tempfile.TemporaryFile() as t: "
                                 "t.write(b'x')\nopen('out', 'w').write('done')\n")
    ok(run(work, env, "--", "python3", "job.py"))
    assert (work / "out").read_text() == "done"
    (work / "out").unlink()
    venv = tmp_path / "venvs" / "v"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    venv_env = dict(env, VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{env['PATH']}")
    for cmd in ("python3", "python"):
        ok(run(work, venv_env, "--", cmd, "job.py"))
        assert (work / "out").read_text() == "done"
        (work / "out").unlink()


@pytest.mark.usefixtures("landlock")
def test_git_clone_of_a_local_repository(job, tmp_path):
    work, env = job
    repo = tmp_path / "repo"
    g = ["git", "-c", "user.email=a@b", "-c", "user.name=a"]
    subprocess.run(g + ["init", "-q", str(repo)], check=True)
    (repo / "f").write_text("x")
    subprocess.run(g + ["-C", str(repo), "add", "f"], check=True)
    subprocess.run(g + ["-C", str(repo), "commit", "-qm", "x"], check=True)
    ok(run(work, env, "--ro", repo, "--", "git", "clone", "-q", repo, "cl"))
    assert (work / "cl" / "f").read_text() == "x"


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(not shutil.which("cc") or not shutil.which("make"), reason="no cc/make")
def test_make_of_a_small_c_project(job):
    work, env = job
    make_c_project(work)
    ok(run(work, env, "--", "make"))
    assert subprocess.run([str(work / "app")]).returncode == 3


def make_c_project(d):
    (d / "main.c").write_text('#include "f.h"\nint main(void){return f() + g();}\n')
    (d / "f.h").write_text("int f(void);\nint g(void);\n")
    (d / "f.c").write_text('#include "f.h"\nint f(void){return 1;}\n')
    (d / "g.c").write_text('#include "f.h"\nint g(void){return 2;}\n')
    (d / "Makefile").write_text("app: main.o f.o g.o\n\tcc -o app main.o f.o g.o\n"
                                "%.o: %.c f.h\n\tcc -c $< -o $@\n")


def make_wheel(d):
    import base64
    import hashlib
    import zipfile

    files = {"mypk/__init__.py": b"X = 1\n",
             "mypk-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: mypk\nVersion: 0.1\n",
             "mypk-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\n"
                                         b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    whl = d / "mypk-0.1-py3-none-any.whl"
    rec = []
    with zipfile.ZipFile(whl, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
            h = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
            rec.append(f"{n},sha256={h},{len(b)}")
        z.writestr("mypk-0.1.dist-info/RECORD", "\n".join(rec + ["mypk-0.1.dist-info/RECORD,,"]))
    return whl


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system python3")
def test_pip_install_of_a_local_wheel_into_a_venv(job):
    work, env = job
    whl = make_wheel(work)
    venv = work / ".venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    venv_env = dict(env, VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{env['PATH']}")
    assert not (work.parent / ".cache" / "pip").exists()
    r = ok(run(work, venv_env, "-p", "pip", "--", "pip", "install", "-q", "--no-index",
               whl.name))
    assert "cache has been disabled" not in r.stderr
    assert (work.parent / ".cache" / "pip").is_dir()          # create = true
    assert oct((work.parent / ".cache" / "pip").stat().st_mode & 0o777) == "0o700"
    assert subprocess.run([str(venv / "bin" / "python"), "-c", "import mypk"]).returncode == 0


# variables and create = true --------------------------------------------------

def test_env_variable_in_a_path_and_skipped_when_unset(tmp_path, monkeypatch):
    d = tmp_path / "gnupg"
    d.mkdir()
    prof = tmp_path / "p.toml"
    prof.write_text('[filesystem]\nro = ["${env:LW_TEST_DIR}", "${env:LW_TEST_DIR}/x"]\n'
                    'rw = [{ path = "${env:LW_UNSET_DIR}/y" }]\n'
                    '[env.set]\nA = "${env:LW_UNSET_DIR}"\n')
    monkeypatch.setenv("LW_TEST_DIR", str(d))
    monkeypatch.delenv("LW_UNSET_DIR", raising=False)
    p = profile.load([str(prof)])
    assert [r.path for r in p.ruleset.paths] == [str(d), f"{d}/x"]
    assert "A" not in p.env_set
    monkeypatch.setenv("LW_TEST_DIR", "")   # empty counts as unset
    assert profile.load([str(prof)]).ruleset.paths == []


def test_exe_prefix_of_a_venv_and_of_the_real_interpreter(tmp_path):
    real = tmp_path / "opt" / "py" / "bin"
    real.mkdir(parents=True)
    (real / "python3.11").write_text("")
    venv = tmp_path / "v" / "bin"
    venv.mkdir(parents=True)
    (venv / "python3").symlink_to(real / "python3.11")
    assert variables.exe_prefixes(str(venv / "python3"), {"HOME": str(tmp_path / "h")}) == [
        str(tmp_path / "v"), str(tmp_path / "opt" / "py")]
    # a prefix that is $HOME (or above it) is left out
    assert variables.exe_prefixes(str(venv / "python3"), {"HOME": str(tmp_path / "v")}) == [
        str(tmp_path / "opt" / "py")]
    assert variables.exe_prefixes("/bin/sh", {"HOME": "/root"}) in ([], ["/usr"])


def test_an_escaped_exe_prefix_is_a_literal_name(tmp_path):
    """$${exe_prefix} is the literal name ${exe_prefix} (it was expanded as
    if it were a reference, and dropped when there was no command)."""
    lit = tmp_path / "${exe_prefix}"
    lit.mkdir()
    (tmp_path / "opt" / "bin").mkdir(parents=True)
    (tmp_path / "opt" / "share").mkdir()
    tool = tmp_path / "opt" / "bin" / "tool"
    tool.write_text("")
    tool.chmod(0o755)
    prof = tmp_path / "p.toml"
    prof.write_text(f'[filesystem]\nro = ["{tmp_path}/$${{exe_prefix}}", '
                    f'"${{exe_prefix}}/share", "${{exe_prefix}}/$${{exe_prefix}}"]\n')
    p = profile.load([str(prof)], environ={"HOME": "/root"})
    assert [r.path for r in p.ruleset.paths] == [str(lit)]
    p = profile.load([str(prof)], environ={"HOME": "/root"}, program=str(tool))
    assert [r.path for r in p.ruleset.paths] == [str(lit), str(tmp_path / "opt" / "share"),
                                                 str(tmp_path / "opt" / "${exe_prefix}")]
    # a program installed under a hostile name: the prefix is taken as it
    # is, never read as a reference (${HOME} here would grant /root/share)
    hostile = tmp_path / "o${HOME}"
    (hostile / "bin").mkdir(parents=True)
    (hostile / "share").mkdir()
    tool.rename(hostile / "bin" / "tool")
    p = profile.load([str(prof)], environ={"HOME": "/root"}, program=str(hostile / "bin" / "tool"))
    assert [r.path for r in p.ruleset.paths][1:] == [str(hostile / "share"),
                                                     str(hostile / "${exe_prefix}")]


@pytest.mark.usefixtures("landlock")
def test_create_refuses_symlinks_and_landwraps_state(proj, tmp_path):
    work, env = proj
    home = work.parent
    target = tmp_path / "elsewhere"
    target.mkdir()
    (home / ".cache").mkdir()
    (home / ".cache" / "link").symlink_to(target)
    prof = tmp_path / "p.toml"
    prof.write_text(f'[filesystem]\nrw = [{{ path = "{home}/.cache/link/new", create = true }}]\n')
    r = run(work, env, "-p", prof, "--", "true")
    assert r.returncode == 125 and "symlink" in r.stderr, r.stderr
    assert not (target / "new").exists()
    prof.write_text('[filesystem]\nrw = [{ path = "${XDG_CONFIG_HOME}/landwrap/profiles/x", '
                    'create = true }]\n')
    r = run(work, env, "-p", prof, "--", "true")
    assert r.returncode == 125 and "landwrap's own directory" in r.stderr, r.stderr
    assert not (home / ".config" / "landwrap").exists()
    # an ordinary one is made, 0700
    prof.write_text('extends = ["system-base"]\n'
                    '[filesystem]\nrw = [{ path = "~/.npm/x", create = true }]\n')
    ok(run(work, env, "-p", prof, "--", "true"))
    assert (home / ".npm" / "x").is_dir()
    assert (home / ".npm").stat().st_mode & 0o777 == 0o700


# after a failure ---------------------------------------------------------------

def _on_a_terminal(work, env, *args):
    """`landwrap run ARGS` with stderr on a pseudo-terminal; its stderr text."""
    import pty

    master, slave = pty.openpty()
    try:
        r = subprocess.run([sys.executable, "-m", "landwrap", "run", *map(str, args)],
                           cwd=work, env=env, stdout=subprocess.PIPE, stderr=slave,
                           stdin=subprocess.DEVNULL, timeout=60)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return r.returncode, out.decode(errors="replace")
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


@pytest.mark.usefixtures("landlock")
def test_a_failure_on_a_terminal_names_the_profile_and_the_next_step(job):
    work, env = job
    code, err = _on_a_terminal(work, env, "--", "cat", "/etc/shadow")
    assert code == 1
    assert 'cat exited 1 under profile "cat"; see what was denied with: landwrap run ' \
        "--log-denials -- cat /etc/shadow" in err, err
    code, err = _on_a_terminal(work, env, "-p", "default", "--", "sh", "-c", "kill -9 $$")
    assert code == 137 and 'killed by signal 9 under profile "default"' in err, err
    code, err = _on_a_terminal(work, env, "-q", "--", "cat", "/etc/shadow")
    assert code == 1 and "landwrap" not in err, err
    code, err = _on_a_terminal(work, env, "--", "true")
    assert code == 0 and err == "", err
    # not a terminal: nothing (scripts parse stderr)
    r = run(work, env, "--", "cat", "/etc/shadow")
    assert "landwrap" not in r.stderr


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(not os.access("/usr/bin/strace", os.X_OK), reason="strace not installed")
@pytest.mark.skipif(not nobody_can_run_python(),
                    reason="needs root, setpriv and an interpreter nobody can run")
def test_log_denials_without_root_falls_back_to_strace(tmp_path):
    """As nobody, on a file nobody may read outside the sandbox (so the
    denial is the sandbox's, not the file mode's)."""
    import pathlib
    import tempfile

    d = pathlib.Path(tempfile.mkdtemp(prefix="lw-t10-"))
    os.chmod(d, 0o755)
    (d / "s").write_text("secret")
    os.chmod(d / "s", 0o644)
    ok_outside = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534",
                                 "--clear-groups", "cat", str(d / "s")], capture_output=True)
    assert ok_outside.returncode == 0
    env = dict(os.environ, HOME=str(d), XDG_CACHE_HOME=str(d / "c"))
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-m", "landwrap", "run", "--log-denials", "-p",
                        "system-libs", "--", "cat", str(d / "s"), "/etc/hostname"],
                       cwd="/", env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "strace instead" in r.stderr
    assert f"read_file {d}/s  by /usr/bin/cat  -> allow with --ro {d}/s" in r.stderr, r.stderr
    shutil.rmtree(d)


# profile check says everything at once ------------------------------------------

def test_profile_check_reports_every_error_with_its_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\n[filesystem]\nro = ["/usr"]\nrw = [3]\n'
                   '[[filesystem.rule]]\npath = "/etc"\naccess = ["raed_file"]\n\n'
                   '[netwrok]\nconnect_tcp = [443]\n\n[network]\nconnect_tcp = [70000]\n')
    r = lw("profile", "check", bad)
    assert r.returncode == 1
    lines = sorted(r.stdout.splitlines())
    assert [x.split(": ")[0] for x in lines] == [f"{bad}:13", f"{bad}:4", f"{bad}:7",
                                                 f"{bad}:9"], r.stdout
    assert "netwrok: unknown table" in r.stdout and "raed_file" in r.stdout
    assert "70000" in r.stdout and "filesystem.rw" in r.stdout
    missing = tmp_path / "missing.toml"
    missing.write_text('[filesystem]\nro = [{ path = "/nonexistent/a", required = true }]\n'
                       '[[filesystem.rule]]\npath = "/nonexistent/b"\naccess = ["read_file"]\n'
                       'required = true\n')
    r = lw("profile", "check", missing)
    assert r.returncode == 1
    assert f"{missing}:2: filesystem.ro: /nonexistent/a: no such file" in r.stdout, r.stdout
    assert f"{missing}:4: filesystem.rule[0]: /nonexistent/b: no such file" in r.stdout


# learn ------------------------------------------------------------------------------

def learn(work, env, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "landwrap", "learn", "-y", *map(str, args)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system python3")
def test_learned_profile_uses_variables_and_survives_a_deleted_output_dir(job, tmp_path):
    work, env = job
    env = {k: v for k, v in env.items() if not k.startswith("XDG_")}
    home = work.parent
    (home / ".config" / "x").mkdir(parents=True)
    (home / ".config" / "x" / "conf").write_text("c")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text("KEY")
    (work / "s.py").write_text(
        "import os, sys\nopen(os.path.expanduser('~/.config/x/conf')).read()\n"
        "os.makedirs('out', exist_ok=True)\nopen('out/r.txt', 'w').write('x')\n"
        "try: open(os.path.expanduser('~/.ssh/id_rsa')).read(); print('KEY READ')\n"
        "except PermissionError: pass\n")
    out = tmp_path / "learned.toml"
    r = learn(work, env, "-o", out, "--", "python3", "s.py")
    # the key stays denied (sensitive: never granted unasked), so the last
    # round still had a denial
    assert r.returncode == 1 and "NOT GRANTED: read_file on" in r.stderr, r.stderr
    text = out.read_text()
    assert ".ssh" not in "\n".join(x for x in text.splitlines() if not x.startswith("#"))
    assert '"${HOME}/.config/x/conf"' in text and '"${CWD}/out"' in text, text
    assert "create = true" in text
    shutil.rmtree(work / "out")
    r = run(work, env, "-p", out, "--", "python3", "s.py")
    assert r.returncode == 0, r.stderr
    assert (work / "out" / "r.txt").read_text() == "x"
    assert "KEY READ" not in r.stdout
    # and from another project directory, the same profile is that project's
    other = home / "other"
    other.mkdir()
    (other / "s.py").write_text((work / "s.py").read_text())
    r = run(other, env, "-p", out, "--", "python3", "s.py")
    assert r.returncode == 0 and (other / "out" / "r.txt").exists(), r.stderr


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(not shutil.which("cc") or not shutil.which("make"), reason="no cc/make")
def test_learn_make_finishes_within_the_default_round_limit(job, tmp_path):
    from landwrap.diagnose.learn import DEFAULT_ROUNDS

    work, env = job
    make_c_project(work)
    out = tmp_path / "make.toml"
    r = learn(work, env, "-o", out, "--", "make")
    assert r.returncode == 0, r.stderr
    rounds = [x for x in r.stderr.splitlines() if x.startswith("landwrap: round ")]
    assert len(rounds) <= DEFAULT_ROUNDS and "the profile is complete" in rounds[-1]
    for f in work.glob("*.o"):
        f.unlink()
    (work / "app").unlink()
    ok(run(work, env, "-p", out, "--", "make"))


@pytest.mark.usefixtures("landlock")
def test_learn_on_a_failing_command_without_denials_exits_non_zero(job, tmp_path):
    work, env = job
    out = tmp_path / "f.toml"
    r = learn(work, env, "-o", out, "--", "sh", "-c", "exit 3")
    assert r.returncode == 1, r.stderr
    assert "failed without denials (exit status 3, expected 0)" in r.stderr
    assert "the profile is complete" not in r.stderr
    assert "not known to be complete" in out.read_text()
    r = learn(work, env, "--expect-exit", "3", "-o", out, "--", "sh", "-c", "exit 3")
    assert r.returncode == 0, r.stderr


@pytest.mark.usefixtures("landlock")
def test_learn_names_what_earlier_rounds_created(job, tmp_path):
    """git clone into ./cl: round 1 creates cl/, later rounds fail on it.
    learn exits non-zero and names cl."""
    work, env = job
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    r = learn(work, env, "-o", tmp_path / "g.toml", "--", "git", "clone", "-q", repo, "cl")
    if r.returncode == 0:   # learned cleanly in one go: nothing to point at
        return
    assert "the profile is complete" not in r.stderr
    assert f"  {work}/cl" in r.stderr, r.stderr


def test_learn_help_and_man_agree_on_p():
    from click.testing import CliRunner

    from landwrap.cli import main as cli

    h = " ".join(CliRunner().invoke(cli.cli, ["learn", "--help"]).output.split())
    assert "default: the default profile, not the command's own" in h, h
    man = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "man",
                            "landwrap.1")).read()
    i = man.index('Start from this profile (repeatable); by default, from the')
    assert ".B default\nprofile (not the profile" in man[i:i + 200]


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no system python3")
def test_learn_writes_exe_prefix_for_a_venv_interpreter(job, tmp_path):
    work, env = job
    venv = tmp_path / "venvs" / "v"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    venv_env = dict(env, VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{env['PATH']}")
    (work / "a.py").write_text("print(1)\n")
    out = tmp_path / "v.toml"
    r = learn(work, venv_env, "-p", "system-libs", "-o", out, "--", "python", "a.py")
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert '"${exe_prefix}/pyvenv.cfg"' in text and str(venv) not in \
        "\n".join(x for x in text.splitlines() if not x.lstrip().startswith("#")), text
    r = run(work, venv_env, "-p", out, "--", "python", "a.py")
    assert r.returncode == 0 and r.stdout == "1\n", r.stderr


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root")
def test_private_tmp_belongs_to_the_user_the_command_runs_as(tmp_path):
    os.chmod(tmp_path, 0o755)
    r = lw("run", "--user", "nobody", "--", "sh", "-c",
           'touch "$TMPDIR/f" && stat -c "%n %u %a" "$TMPDIR"', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d, uid, mode = r.stdout.split()
    assert uid == "65534" and mode == "700"
    assert not os.path.lexists(d)


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory another user owns")
def test_private_tmp_is_not_made_in_a_tmpdir_another_user_controls(tmp_path):
    """$TMPDIR survives `su` and `sudo -E`: in a directory another user owns,
    our private directory could be swapped for a symlink (to /etc, say)
    before its rule is made.  Such a TMPDIR is not used as the base."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    os.chmod(tmp_path, 0o755)
    env = dict(os.environ, TMPDIR=str(theirs))
    r = subprocess.run([sys.executable, "-m", "landwrap", "run", "-q", "--", "sh", "-c",
                        'echo "$TMPDIR"'], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    private = r.stdout.strip()
    assert os.path.basename(private).startswith("landwrap-")
    assert not private.startswith(str(theirs))
    # a TMPDIR of the caller's own is still used
    mine = tmp_path / "mine"
    mine.mkdir()
    env = dict(os.environ, TMPDIR=str(mine))
    r = subprocess.run([sys.executable, "-m", "landwrap", "run", "-q", "--", "sh", "-c",
                        'echo "$TMPDIR"'], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.strip().startswith(str(mine) + "/landwrap-"), r.stderr


@pytest.mark.usefixtures("landlock")
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make another user's files")
def test_a_private_tmp_swapped_for_a_symlink_does_not_remove_the_shared_tmp(tmp_path):
    """A command granted the shared temporary directory too (--rw /tmp, as
    profiles/tmpdir.toml suggests) renames its private TMPDIR away and puts
    a symlink to a directory in its place.  Removing the private directory
    must not follow it, nor open up and remove the directory *around* it
    (which held another user's files the command could not delete)."""
    os.chmod(tmp_path, 0o755)
    shared = tmp_path / "shared"             # stands in for /tmp
    shared.mkdir()
    os.chmod(shared, 0o1777)
    other = shared / "alice"
    other.mkdir()
    (other / "work").write_text("hers")
    os.chown(other / "work", 1234, 1234)
    os.chown(other, 1234, 1234)
    os.chmod(other, 0o700)
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep").write_text("k")
    env = dict(os.environ, TMPDIR=str(shared))
    script = ('mv "$TMPDIR" "$TMPDIR.x" && ln -s "$1" "$TMPDIR" && echo "$TMPDIR"; '
              '! rm -rf "$2" 2>/dev/null')
    r = subprocess.run([sys.executable, "-m", "landwrap", "run", "-q", "--rw", str(shared),
                        "--", "sh", "-c", script, "sh", str(target), str(other)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr       # the sandbox could not remove alice's files
    assert (other / "work").read_text() == "hers"
    assert os.stat(shared).st_mode & 0o7777 == 0o1777
    assert (target / "keep").read_text() == "k"
    private = r.stdout.strip()
    assert os.path.basename(private).startswith("landwrap-")
    assert not os.path.lexists(private)      # the symlink itself is removed
    assert "Traceback" not in r.stderr


@pytest.mark.usefixtures("landlock")
def test_a_deep_tree_left_in_the_private_tmp_keeps_the_exit_status(tmp_path):
    """A command that leaves a tree deeper than Python's recursion limit in
    its private TMPDIR: its exit status is still landwrap's, with a warning
    naming what was left -- not "internal error ... nothing was run"."""
    os.chmod(tmp_path, 0o755)
    env = dict(os.environ, TMPDIR=str(tmp_path))
    script = ('cd "$TMPDIR" && i=0; while [ $i -lt 1200 ]; do mkdir d && cd d || exit 9; '
              'i=$((i+1)); done; exit 3')
    r = subprocess.run([sys.executable, "-m", "landwrap", "run", "-q", "--", "sh", "-c", script],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "internal error" not in r.stderr and "nothing was run" not in r.stderr
    left = [p for p in os.listdir(tmp_path) if p.startswith("landwrap-")]
    assert all(p in r.stderr for p in left), r.stderr  # whatever is left is named
    subprocess.run(["rm", "-rf", *(str(tmp_path / p) for p in left)], check=True)

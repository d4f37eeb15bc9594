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

from conftest import PY_ROX, lw
from landwrap import compat, profile

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
        out.append(os.path.join("/etc", name))
    return out


def test_every_app_profile_has_defaults_system_access():
    """Whatever `default` allows under /usr, /lib*, /etc (and /opt), every
    shipped profile allows too, unless listed in NARROWER with a reason."""
    dirs = [profile.PACKAGE_PROFILES]
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

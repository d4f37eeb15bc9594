"""Issue 9, profiles: nothing a sandboxed program or another user writes
can widen a later run, and nothing hostile reaches the terminal raw.

Each test plays the attack for real (a forged cache entry, a .local.toml
owned by nobody, a copy of cat named gpg...) with a temporary HOME and
XDG directories, and checks the outcome with a real `landwrap run` where
the outcome is a sandbox.
"""

from __future__ import annotations

import json
import marshal
import os
import pwd
import shutil
import subprocess
import sys
import textwrap

import pytest

from landwrap import __version__
from landwrap.profiles import lookup, profile, validate, variables
from landwrap.engine.plan import Plan
from landwrap.engine.ruleset import Ruleset

from conftest import PY_ROX, lw

NOBODY = 65534
SECRET = "top-secret-value"


@pytest.fixture
def home(tmp_path):
    """A fake user: HOME with a secret, XDG dirs, a project directory."""
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True, mode=0o700)
    (h / ".ssh" / "id_rsa").write_text(SECRET + "\n")
    (h / ".cache").mkdir()
    (h / ".config").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "tmp").mkdir()
    env = {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(h),
        "USER": "root",
        "TMPDIR": str(tmp_path / "tmp"),
        "XDG_CACHE_HOME": str(h / ".cache"),
        "XDG_CONFIG_HOME": str(h / ".config"),
        "LANG": "C.UTF-8",
    }
    return h, env


def run_cat(env, path, *opts, cwd=None):
    return lw("run", *opts, "--", "cat", str(path), env=env, cwd=cwd)


# 1. parse-cache poisoning ------------------------------------------------

def _forge_default_entry(cache_dir, body_doc, mac=b"\0" * 32, old_format=False):
    """Write a cache entry for default.toml as a sandbox that can write the
    cache directory would: stat() is not restricted, the file is public."""
    path = os.path.join(lookup.PACKAGE_PROFILES, "default.toml")
    st = os.stat(path)
    raw = open(path, "rb").read()
    name = "%x-%x-%x-%x.%s.marshal" % (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size,
                                       __version__)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    entry = os.path.join(cache_dir, name)
    data = marshal.dumps((raw, body_doc)) if old_format else mac + marshal.dumps(body_doc)
    with open(entry, "wb") as f:
        f.write(data)
    os.chmod(entry, 0o600)
    return entry


@pytest.mark.usefixtures("landlock")
@pytest.mark.parametrize("old_format", [True, False], ids=["old-format", "new-format"])
def test_forged_cache_entry_does_not_widen_the_next_run(home, old_format):
    h, env = home
    secret = h / ".ssh" / "id_rsa"
    r = run_cat(env, secret, "-q", "-p", "default")
    assert r.returncode != 0 and SECRET not in r.stdout  # default: denied
    cache = h / ".cache" / "landwrap"
    _forge_default_entry(cache, {"description": "forged",
                                 "filesystem": {"unrestricted": True}},
                         old_format=old_format)
    r = run_cat(env, secret, "-q", "-p", "default")
    assert SECRET not in r.stdout, "a forged cache entry widened the sandbox"
    assert r.returncode != 0


@pytest.mark.usefixtures("landlock")
@pytest.mark.parametrize("grant", ["~/.cache", "~/.config", "~", "~/.cache/landwrap"])
def test_rw_over_landwraps_own_state_is_refused(home, grant):
    """--rw ~/.cache would let the sandbox write a cache entry (or the key)
    that decides the next run: refused in strict mode, naming the rule and
    the directory; with --best-effort a grant above the state directory
    runs with that directory hidden (its parent keeps only read_dir, so it
    cannot be created either), a grant on it is refused.  Nothing is
    created."""
    h, env = home
    (h / ".cache" / "landwrap").mkdir()
    path = grant.replace("~", str(h))
    code = ("import os, sys\ndef a():\n"
            f" os.makedirs({str(h)!r} + '/.config/landwrap/profiles', exist_ok=True)\n"
            f" open({str(h)!r} + '/.config/landwrap/profiles/default.local.toml', 'w')"
            ".write('[filesystem]\\nunrestricted = true\\n')\n"
            f"def b(): open({str(h)!r} + '/.cache/landwrap/planted', 'w')\n"
            "bad = 0\nfor f in (a, b):\n try: f()\n except PermissionError: bad += 1\n"
            "sys.exit(bad == 2 and 1)\n")
    r = lw("run", "-q", *PY_ROX, "--rw", path, "--", sys.executable, "-I", "-S",
           "-c", code, env=env)
    assert r.returncode == 125, r.stderr
    assert f"--rw {path}" in r.stderr and "landwrap's own directory" in r.stderr
    assert r.stderr.count("\n") <= 2  # one line (and a hint)
    r = lw("run", "-q", "--best-effort", *PY_ROX, "--rw", path, "--", sys.executable, "-I",
           "-S", "-c", code, env=env)
    if grant.endswith("landwrap"):
        assert r.returncode == 125, r.stderr
    else:
        assert r.returncode == 1, r.stderr  # both writes denied
    assert not (h / ".config" / "landwrap").exists()
    assert not (h / ".cache" / "landwrap" / "planted").exists()
    # a sibling directory is fine
    (h / ".cache" / "other").mkdir()
    r = lw("run", "-q", "--rw", str(h / ".cache" / "other"), "--", "true", env=env)
    assert r.returncode == 0, r.stderr


@pytest.mark.usefixtures("landlock")
def test_learned_profile_granting_the_cache_is_refused(home, tmp_path):
    """What `learn` wrote after a program created one file in ~/.cache: a
    profile granting ~/.cache read-write.  It never runs."""
    h, env = home
    learned = tmp_path / "learned.toml"
    learned.write_text(f'extends = ["default"]\n[filesystem]\nrw = ["{h}/.cache"]\n')
    r = lw("run", "-q", "-p", learned, "--", "true", env=env)
    assert r.returncode == 125
    assert f"{learned}: filesystem.rw" in r.stderr and "landwrap's own directory" in r.stderr


def test_state_dirs_cover_profiles_config_and_cache(home):
    h, env = home
    dirs = lookup.state_dirs(env)
    assert str(h / ".config" / "landwrap" / "profiles") in dirs
    assert str(h / ".config" / "landwrap") in dirs
    assert str(h / ".cache" / "landwrap") in dirs
    assert "/etc/landwrap/profiles" in dirs


# 2. rules that cannot move ------------------------------------------------

@pytest.mark.usefixtures("landlock")
def test_rule_through_a_symlink_the_sandbox_can_repoint_is_refused(home, tmp_path):
    h, env = home
    work = tmp_path / "work"
    (work / "out").mkdir()
    # after one run, the sandbox has replaced out/cache with a symlink to ~/.ssh
    os.symlink(h / ".ssh", work / "out" / "cache")
    prof = tmp_path / "build.toml"
    prof.write_text(textwrap.dedent("""\
        extends = ["default"]
        [filesystem]
        rw = ["${CWD}/out"]
        ro = ["${CWD}/out/cache"]
        """))
    r = run_cat(env, work / "out" / "cache" / "id_rsa", "-q", "-p", prof, cwd=work)
    assert SECRET not in r.stdout
    assert r.returncode == 125
    assert "symlink" in r.stderr and f"{work}/out/cache" in r.stderr
    # best-effort: the rule is left out, the rest runs
    r = run_cat(env, work / "out" / "cache" / "id_rsa", "-q", "--best-effort", "-p", prof,
                cwd=work)
    assert SECRET not in r.stdout and r.returncode != 0


# 3. profile trust ----------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to nobody")


def _nobody_dir(path):
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, NOBODY, NOBODY)
    return path


@needs_root
@pytest.mark.usefixtures("landlock")
@pytest.mark.parametrize("where", ["LANDWRAP_PROFILE_PATH", "XDG_CONFIG_HOME"])
def test_root_skips_a_local_toml_owned_by_nobody(home, tmp_path, where):
    h, env = home
    if where == "LANDWRAP_PROFILE_PATH":
        d = _nobody_dir(tmp_path / "theirs")
        env["LANDWRAP_PROFILE_PATH"] = str(d)
    else:  # su without -: root keeps nobody's XDG_CONFIG_HOME
        cfg = _nobody_dir(tmp_path / "nobody-config")
        d = _nobody_dir(cfg / "landwrap" / "profiles")
        os.chown(cfg / "landwrap", NOBODY, NOBODY)
        env["XDG_CONFIG_HOME"] = str(cfg)
    local = d / "cat.local.toml"  # `cat` runs with cat.toml
    local.write_text("[filesystem]\nunrestricted = true\n")
    os.chown(local, NOBODY, NOBODY)
    r = run_cat(env, h / ".ssh" / "id_rsa")
    assert SECRET not in r.stdout and r.returncode != 0
    warn = [ln for ln in r.stderr.splitlines() if "skipping" in ln]
    assert len(warn) == 1 and str(local) in warn[0] and "uid 65534" in warn[0], r.stderr


@needs_root
def test_group_writable_profile_dir_is_skipped_and_explicit_file_refused(tmp_path, home):
    h, env = home
    d = tmp_path / "shared"
    d.mkdir()
    (d / "mine.toml").write_text('description = "x"\n')
    os.chmod(d, 0o775)
    env["LANDWRAP_PROFILE_PATH"] = str(d)
    r = lw("profile", "list", env=env)
    assert "mine" not in r.stdout.split()
    assert "writable by group or others" in r.stderr
    r = lw("run", "-p", str(d / "mine.toml"), "--", "true", env=env)
    assert r.returncode == 125 and "not trusted" in r.stderr


@needs_root
def test_root_never_writes_its_cache_into_a_directory_it_does_not_own(home, tmp_path):
    h, env = home
    cache = _nobody_dir(tmp_path / "nobody-cache")
    os.chmod(cache, 0o755)
    env["LANDWRAP_CACHE_DIR"] = str(cache)  # as under sudo -E
    r = lw("run", "-q", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    assert os.listdir(cache) == []
    # nor creates its cache directory in one
    env["LANDWRAP_CACHE_DIR"] = str(cache / "landwrap")
    r = lw("run", "-q", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    assert os.listdir(cache) == []


# 4. profiles attach to executables ------------------------------------------

@pytest.mark.usefixtures("landlock")
def test_a_copy_of_cat_named_gpg_gets_default(home, tmp_path):
    h, env = home
    keys = h / ".gnupg" / "private-keys-v1.d"
    keys.mkdir(parents=True)
    (keys / "k.key").write_text(SECRET + "\n")
    dl = tmp_path / "Downloads"
    dl.mkdir()
    shutil.copy("/bin/cat", dl / "gpg")
    r = lw("run", "--dry-run", "--json", "--", dl / "gpg", env=env)
    d = json.loads(r.stdout)
    assert d["profiles"][-1].endswith("/default.toml"), d["profiles"]
    assert "not one of the programs" in d["profile_chosen"]
    r = lw("run", "-q", "--", dl / "gpg", keys / "k.key", env=env)
    assert SECRET not in r.stdout and r.returncode != 0
    # the real gpg (where installed) still gets gpg.toml, and says why
    if os.path.exists("/usr/bin/gpg"):
        r = lw("run", "--dry-run", "--", "gpg", env=env)
        assert "/gpg.toml" in r.stdout and "Chosen: gpg: /usr/bin/gpg is" in r.stdout


def test_gpg_profile_does_not_grant_every_terminal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    plan = profile.load(["gpg"], dirs=[lookup.PACKAGE_PROFILES]).ruleset.resolve()
    assert not plan.allows("/dev/pts/0", 2)  # write_file
    assert not any(r.path.startswith("/dev/pts") for r in plan.rules)


def test_programs_key_is_validated(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('programs = ["gpg"]\n')
    with pytest.raises(profile.ProfileError, match="absolute paths"):
        profile.load([str(p)], dirs=[])


# 5. ${CWD} -----------------------------------------------------------------

@pytest.mark.usefixtures("landlock")
def test_cwd_profile_started_in_home_does_not_get_home(home):
    h, env = home
    code = (f"print(open({str(h / '.ssh' / 'id_rsa')!r}).read());"
            f"open({str(h / '.bashrc')!r}, 'a').write('evil')")
    r = lw("run", "-q", "--", "python3", "-I", "-c", code, env=env, cwd=h)
    assert SECRET not in r.stdout and r.returncode == 125
    assert "${CWD}" in r.stderr and "cwd-rw.toml:" in r.stderr, r.stderr
    assert "Hint: run from the project directory" in r.stderr
    assert not (h / ".bashrc").exists()
    r = lw("run", "--best-effort", "--", "python3", "-I", "-c", code, env=env, cwd=h)
    assert SECRET not in r.stdout and r.returncode != 0
    assert "left out" in r.stderr
    # an explicit --rw . stays the user's choice (with landwrap's own state
    # outside it: that is never writable)
    env = {**env, "XDG_CONFIG_HOME": str(h.parent / "xdg-config"),
           "XDG_CACHE_HOME": str(h.parent / "xdg-cache")}
    r = lw("run", "-q", "--rw", ".", "--", "python3", "-I", "-c",
           "open('note', 'w').write('x')", env=env, cwd=h)
    assert r.returncode == 0, r.stderr


@pytest.mark.usefixtures("landlock")
def test_cwd_profile_from_root_dir_is_refused(home):
    h, env = home
    r = lw("run", "-q", "-p", "default", "-p", "cwd-rw", "--", "true", env=env, cwd="/")
    assert r.returncode == 125 and "${CWD} is /" in r.stderr


# 9. the command line is strict --------------------------------------------

@pytest.mark.usefixtures("landlock")
def test_extended_best_effort_profile_cannot_relax_connect_tcp(home, tmp_path):
    h, env = home
    (tmp_path / "lax.toml").write_text('compat = "best-effort"\nabi = 3\n')
    (tmp_path / "app.toml").write_text('extends = ["default", "lax.toml"]\n')
    r = lw("run", "-q", "-p", tmp_path / "app.toml", "--connect-tcp", "443", "--", "true",
           env=env)
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert "TCP" in r.stderr or "tcp" in r.stderr
    # the command line relaxes it itself
    r = lw("run", "-q", "--best-effort", "-p", tmp_path / "app.toml", "--connect-tcp", "443",
           "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    # --strict makes the whole run strict: the profile's own best-effort goes too
    (tmp_path / "scoped.toml").write_text(
        'extends = ["default", "lax.toml"]\n[scope]\nsignal = true\n')
    r = lw("run", "-q", "-p", tmp_path / "scoped.toml", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    r = lw("run", "-q", "--strict", "-p", tmp_path / "scoped.toml", "--", "true", env=env)
    assert r.returncode == 125 and "signal" in r.stderr
    r = lw("run", "--strict", "--best-effort", "--", "true", env=env)
    assert r.returncode == 125
    # --log-denials is explicit too: not silently dropped at the profile's abi 3
    r = lw("run", "-q", "--log-denials", "-p", tmp_path / "app.toml", "--", "true", env=env)
    assert r.returncode == 125 and "--log-denials" in r.stderr, r.stderr


# 10. --user ----------------------------------------------------------------

@needs_root
def test_user_resolves_variables_for_that_user(home, tmp_path):
    h, env = home
    target = pwd.getpwuid(NOBODY)
    p = tmp_path / "u.toml"
    p.write_text('extends = ["default"]\n[filesystem]\nro = ["${HOME}/x", "${XDG_CACHE_HOME}/y"]\n')
    r = lw("run", "--user", "nobody", "--dry-run", "--json", "-p", p, "--", "true", env=env)
    d = json.loads(r.stdout)
    paths = [s["path"] for s in d["skipped"]] + [x["path"] for x in d["rules"]]
    assert f"{target.pw_dir}/x" in paths and f"{target.pw_dir}/.cache/y" in paths, paths
    assert not any(x.startswith(str(h)) for x in paths)
    # and that user's landwrap state is protected as well as the caller's
    prof = profile.load([str(p)], dirs=lookup.search_path(env),
                        environ=variables.user_environ(target))
    assert f"{target.pw_dir}/.cache/landwrap" in prof.ruleset.protected
    assert f"{target.pw_dir}/.config/landwrap/profiles" in prof.ruleset.protected


# 11. output escaping --------------------------------------------------------

def test_profile_description_escapes_in_list_and_show(tmp_path, home):
    h, env = home
    d = tmp_path / "profs"
    d.mkdir()
    (d / "evil.toml").write_text('description = "ok\\u001b[2J\\u001b[1;1Hfake line\\nsecond"\n')
    env["LANDWRAP_PROFILE_PATH"] = str(d)
    for args in (("profile", "list"), ("profile", "show", "--resolved", "evil"),
                 ("profile", "show", "evil")):
        r = lw(*args, env=env)
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout, args
        assert "\\x1b[2J" in r.stdout or "\\u001b[2J" in r.stdout, (args, r.stdout)


@pytest.mark.usefixtures("landlock")
def test_dry_run_escapes_paths(tmp_path, home):
    h, env = home
    odd = tmp_path / "a\nFilesystem: not restricted\x1b[2J"
    odd.mkdir()
    r = lw("run", "--dry-run", "--ro", odd, "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    assert not any(ln.startswith("Filesystem: not restricted") for ln in r.stdout.splitlines())
    assert "a\\nFilesystem" in r.stdout


# 12. bounded input -----------------------------------------------------------

def _limited(args, env, mem=1 << 30):
    """Run landwrap with 1 GiB of address space: exhausting memory shows as
    a failure, not as a swapping machine."""
    import resource

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    return subprocess.run([sys.executable, "-m", "landwrap", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120, preexec_fn=cap)


def test_doubling_vars_is_a_one_line_error(tmp_path, home):
    h, env = home
    lines = ["[vars]", 'v0 = "xxxxxxxxxxxxxxxx"']
    lines += [f'v{i} = "${{v{i - 1}}}${{v{i - 1}}}"' for i in range(1, 40)]
    lines += ["[filesystem]", 'ro = ["/${v39}"]']
    p = tmp_path / "dbl.toml"
    p.write_text("\n".join(lines) + "\n")
    assert len(p.read_bytes()) < 1200
    for args in (("profile", "check", p), ("profile", "show", "--resolved", p),
                 ("run", "-p", p, "--", "true")):
        r = _limited(args, env)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr
        err = (r.stdout + r.stderr).strip().splitlines()
        assert err and f"{p}:" in err[0] and "vars.v" in err[0] and "characters" in err[0], err


def test_repeated_globstar_collapses(tmp_path, home):
    h, env = home
    tree = tmp_path / "t"
    for i in range(30):
        (tree / f"d{i}" / "e" / "f").mkdir(parents=True)
        (tree / f"d{i}" / "e" / "f" / "x").write_text("x")
    p = tmp_path / "g.toml"
    p.write_text(f'[filesystem]\nro = ["{tree}/**/**/**/**/**/*"]\n')
    prof = profile.load([str(p)], dirs=[])
    paths = [r.path for r in prof.ruleset.paths]
    assert len(paths) == len(set(paths))  # every match once
    assert validate._collapse_globstars("/usr/**/**/**/*") == "/usr/**/*"
    r = _limited(["run", "--dry-run", "-p", "default", "-p", p, "--", "true"], env)
    assert r.returncode == 0, r.stderr


def test_glob_match_limit_is_checked_while_matching(tmp_path, monkeypatch):
    monkeypatch.setattr(validate, "MAX_MATCHES", 50)
    tree = tmp_path / "t"
    tree.mkdir()
    for i in range(60):
        (tree / f"f{i}").write_text("")
    p = tmp_path / "g.toml"
    p.write_text(f'\n[filesystem]\nro = ["{tree}/*"]\n')
    with pytest.raises(profile.ProfileError) as e:
        profile.load([str(p)], dirs=[])
    assert str(e.value).startswith(f"{p}:3: filesystem.ro: ") and "more than 50" in str(e.value)


def test_landlockconfig_expansion_is_bounded_before_expanding(tmp_path, home):
    h, env = home
    values = ", ".join(f'"v{i}"' for i in range(316))
    text = f'abi = 4\n[[variable]]\nname = "v"\nliteral = [{values}]\n'
    # one entry, 40 templates of 99,856 paths each: the old per-entry check
    # came after 4 million paths had been built
    text += ('[[path_beneath]]\nallowed_access = ["read_file"]\nparent = ['
             + ", ".join(f'"/p{j}/${{v}}/${{v}}"' for j in range(40)) + "]\n")
    p = tmp_path / "big.toml"
    p.write_text(text)
    assert len(text) < 6000
    r = _limited(["profile", "check", p], env, mem=512 << 20)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr
    out = r.stdout.strip().splitlines()
    assert f"{p}:" in out[0] and "path_beneath[" in out[0] and "expands to more than" in out[0]


def _naive_ports(ports, handled):
    merged = {}
    for lo, hi, bits, origin in ports:
        bits &= handled
        if not bits:
            continue
        for port in range(lo, hi + 1):
            e = merged.setdefault(port, [0, []])
            e[0] |= bits
            if origin not in e[1]:
                e[1].append(origin)
    return [(p, e[0], e[1]) for p, e in sorted(merged.items())]


def test_port_ranges_are_merged_before_rules_are_made():
    import random

    rnd = random.Random(9)
    # exact equality with the per-port expansion, on random inputs
    for _ in range(300):
        ports = []
        for i in range(rnd.randint(0, 8)):
            lo = rnd.randint(0, 60)
            ports.append((lo, rnd.randint(lo, 70), rnd.choice((1, 2, 3)), f"o{i % 3}"))
        h = rnd.choice((1, 2, 3))
        plan = Plan(Ruleset(), "strict", 7)
        plan._resolve_ports(ports, h)
        assert plan.ports == _naive_ports(ports, h), ports


def test_a_thousand_full_port_ranges_cost_one_sweep(tmp_path, home):
    """1,000 x "0-65535" cost 9 s of CPU per run when every range was
    expanded port by port; a sweep over the ranges' ends costs one pass
    over the ports.  A CPU-time rlimit of 4 s (not a timing assertion:
    the kernel kills the process) tells them apart."""
    import resource

    h, env = home
    p = tmp_path / "ports.toml"
    p.write_text("[network]\nconnect_tcp = [" + ", ".join(['"0-65535"'] * 1000) + "]\n")

    def cap():
        resource.setrlimit(resource.RLIMIT_CPU, (4, 4))
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from landwrap.profiles import lookup, profile, validate, variables
        prof = profile.load([{str(p)!r}], dirs=[])
        plan = prof.ruleset.resolve(compat_mode="best-effort")
        print(len(plan.ports), len(plan.ports[0][2]))
        """)], env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        preexec_fn=cap)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["65536", "1"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files another user owns")
def test_rule_through_a_symlink_another_user_controls_is_refused(tmp_path):
    """$HOME survives `sudo -E` (and $TMPDIR, $XDG_* survive su): a root run
    whose profile grants ${HOME}/data, where that home belongs to another
    user who made data a symlink to /etc, would give the root sandbox /etc."""
    home = tmp_path / "home"
    home.mkdir()
    target = tmp_path / "target"   # stands for /etc: root's own directory
    target.mkdir()
    (home / "data").symlink_to(target)
    os.lchown(home / "data", 65534, 65534)
    os.chown(home, 65534, 65534)
    os.chmod(tmp_path, 0o755)
    prof = tmp_path / "p.toml"
    prof.write_text('[filesystem]\nrw = ["${HOME}/data"]\n')
    env = dict(os.environ, HOME=str(home))
    r = lw("run", "-q", "-p", prof, "--dry-run", "--", "true", env=env)
    assert r.returncode == 125, r.stdout + r.stderr
    assert "another user" in r.stderr and "data" in r.stderr
    # the same home owned by root (the invoking user): the link is trusted
    os.chown(home, 0, 0)
    os.lchown(home / "data", 0, 0)
    r = lw("run", "-q", "-p", prof, "--dry-run", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    assert str(target) in r.stdout


def test_cwd_is_never_a_shared_temporary_directory(tmp_path):
    """Started from /tmp, `ro ${CWD}` would let the default sandbox read every
    user's temporary files (and `rw ${CWD}` write them): left out (default)
    or refused (cwd-rw), like /, $HOME and above."""
    secret = tmp_path / "secret"
    secret.write_text("top secret\n")
    r = lw("run", "-q", "--", "sh", "-c", f"cat {secret}", cwd="/tmp")   # default profile
    assert r.returncode == 1 and "top secret" not in r.stdout, r.stdout + r.stderr
    assert "Permission denied" in r.stderr
    r = lw("run", "--dry-run", "-v", "--", "true", cwd="/tmp")
    assert "shared temporary directory" in r.stdout + r.stderr
    r = lw("run", "-q", "-p", "cwd-rw", "--", "true", cwd="/tmp")
    assert r.returncode == 125 and "shared temporary directory" in r.stderr


def test_hide_glob_hides_a_name_with_a_star_in_it(home, tmp_path):
    """filesystem.hide = ["DIR/secret.*"] hides DIR/secret.*x too (a * in
    the name once made the matcher take the pattern's * literally and leave
    the file readable among the carved directory's other entries)."""
    _, env = home
    d = tmp_path / "data"
    d.mkdir()
    (d / "public").write_text("public\n")
    (d / "secret.*x").write_text(SECRET + "\n")
    (d / "secret.1").write_text(SECRET + "\n")
    prof = tmp_path / "p.toml"
    prof.write_text(f'[filesystem]\nrox = ["/usr", "/lib", "/lib64", "/bin"]\n'
                    f'ro = ["{d}"]\nhide = ["{d}/secret.*"]\n')
    for name in ("secret.1", "secret.*x"):
        r = run_cat(env, d / name, "-q", "-p", str(prof))
        assert r.returncode == 1 and SECRET not in r.stdout, name
    assert run_cat(env, d / "public", "-q", "-p", str(prof)).stdout == "public\n"


@pytest.mark.usefixtures("landlock")
def test_a_deep_tree_under_a_globstar_is_a_one_line_error(home, tmp_path):
    """A profile globbing with ** over a directory the sandbox may write:
    one run leaves a tree deeper than Python's recursion limit there.  The
    next run refuses with a one-line error naming the file and key -- not
    "internal error: RecursionError"."""
    h, env = home
    work = tmp_path / "work"
    (work / "src").mkdir()
    p = work / "app.toml"
    p.write_text('extends = ["default"]\n[filesystem]\nrw = ["${CWD}/src"]\n'
                 'ro = ["${CWD}/src/**/*.py"]\n')
    r = lw("run", "-q", "-p", p, "--", "sh", "-c",
           'cd src && i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || exit 9; '
           'i=$((i+1)); done', env=env, cwd=work)
    assert r.returncode == 0, r.stderr
    r = lw("run", "-q", "-p", p, "--", "true", env=env, cwd=work)
    subprocess.run(["rm", "-rf", str(work / "src" / "d")], check=True)
    assert "internal error" not in r.stderr, r.stderr
    assert r.returncode == 125 and r.stderr.startswith(f"landwrap: {p}:4: filesystem.ro: ")
    assert "too deep" in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr


def test_a_deep_tree_under_a_hide_globstar_is_a_one_line_error(tmp_path):
    tree = tmp_path / "t"
    tree.mkdir()
    subprocess.run(["sh", "-c", 'cd "$1" && i=0; while [ $i -lt 1100 ]; do mkdir d && cd d '
                    '|| exit 9; i=$((i+1)); done', "sh", str(tree)], check=True)
    p = tmp_path / "h.toml"
    p.write_text(f'[filesystem]\nro = ["{tree}"]\nhide = ["{tree}/**/.env"]\n')
    try:
        with pytest.raises(profile.ProfileError) as e:
            profile.load([str(p)], dirs=[])
    finally:
        subprocess.run(["rm", "-rf", str(tree)], check=True)
    assert str(e.value).startswith(f"{p}:3: filesystem.hide: ") and "too deep" in str(e.value)


@pytest.mark.usefixtures("landlock")
def test_wildcards_in_a_variables_value_are_not_a_glob(home, tmp_path):
    """${CWD} (any variable) whose value has *, ? or [ in it -- a project
    directory unpacked as "proj*" -- names that one directory: the default
    profile's ro ${CWD} and cwd-rw's rw ${CWD} once granted every sibling
    the name matched as a glob ("projects", "proj-secret").  A pattern of
    the profile's own around the value still globs, with the value literal."""
    _, env = home
    top = tmp_path / "top"
    cwd = top / "proj*"
    cwd.mkdir(parents=True)
    (cwd / "mine.txt").write_text("mine\n")
    other = top / "proj-secret"
    other.mkdir()
    (other / "s.txt").write_text(SECRET + "\n")
    r = lw("run", "-q", "-p", "default", "-p", "cwd-rw", "--", "sh", "-c",
           f'cat mine.txt; cat {other}/s.txt; echo x > {other}/w', env=env, cwd=cwd)
    assert r.stdout == "mine\n" and SECRET not in r.stdout, r.stdout + r.stderr
    assert not (other / "w").exists()
    p = tmp_path / "g.toml"
    p.write_text('[filesystem]\nro = ["${CWD}/*.txt"]\n')
    r = lw("run", "--dry-run", "--json", "-p", p, "--", "true", env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    paths = [rule["path"] for rule in json.loads(r.stdout)["rules"]]
    assert str(cwd / "mine.txt") in paths and str(other / "s.txt") not in paths, paths
    # a relative path in a profile whose directory is named like a pattern
    pdir, twin = top / "pd*", top / "pdx"
    for d in (pdir, twin):
        (d / "sub").mkdir(parents=True)
    (pdir / "r.toml").write_text('[filesystem]\nro = ["sub", "s*b"]\n')
    r = lw("run", "--dry-run", "--json", "-p", pdir / "r.toml", "--", "true", env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    paths = [rule["path"] for rule in json.loads(r.stdout)["rules"]]
    assert str(pdir / "sub") in paths and str(twin / "sub") not in paths, paths


def test_an_exe_prefix_named_like_a_pattern_is_not_a_glob(home, tmp_path):
    """python-runtime grants rox on ${exe_prefix}: a venv in a directory
    named "venv*" once granted its sibling "venv-secret" too."""
    _, env = home
    venv = tmp_path / "venv*"
    (venv / "bin").mkdir(parents=True)
    os.symlink(sys.executable, venv / "bin" / "python3")
    (tmp_path / "venv-secret").mkdir()
    r = lw("run", "--dry-run", "--json", "-p", "python-runtime", "--",
           venv / "bin" / "python3", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    paths = [rule["path"] for rule in json.loads(r.stdout)["rules"]]
    assert str(venv) in paths and str(tmp_path / "venv-secret") not in paths, paths


def test_an_escaped_pattern_is_one_literal_path(tmp_path):
    """A path whose only wildcards are escapes ("a[*]", as learn writes a
    name with a star) is that one path: it may be created, and it is not
    a glob that skips silently."""
    d = tmp_path / "d"
    d.mkdir()
    p = tmp_path / "e.toml"
    p.write_text(f'[filesystem]\nrw = [{{ path = "{d}/new[*][?][[]", create = true }}]\n'
                 f'ro = ["{d}/x[*]"]\n')
    prof = profile.load([str(p)], dirs=[])
    assert prof.create_dirs == [(f"{d}/new*?[", f"{p}: filesystem.rw")]
    assert validate._unescape("/a/b[*]c") == "/a/b*c"
    assert validate._unescape("/a/[ab]") is None and validate._unescape("/a/*[*]") is None

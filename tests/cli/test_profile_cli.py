"""`landwrap profile list|show|check|export`, landlockconfig files given to
`landwrap run -p` (enforced for real), and shell completion, all driven as
real processes."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import lw

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LANDWRAP_BIN = os.path.join(os.path.dirname(sys.executable), "landwrap")
SYSTEM = ["/usr", "/bin", "/lib", "/lib64", "/etc", "/dev", "/proc"]


@pytest.fixture
def env(tmp_path):
    """A profile path of our own: $LANDWRAP_PROFILE_PATH = a:b, a config
    home with its own profiles, a private parse cache."""
    e = dict(os.environ)
    e["LANDWRAP_PROFILE_PATH"] = f"{tmp_path}/a:{tmp_path}/b"
    e["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    e["LANDWRAP_CACHE_DIR"] = str(tmp_path / "cache")
    for d in ("a", "b", "config/landwrap/profiles"):
        os.makedirs(tmp_path / d, exist_ok=True)
    return e


def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return str(path)


def one_line_error(r, code):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert lines and lines[0].startswith("landwrap: "), r.stderr
    assert all(x.startswith("Hint: ") for x in lines[1:]), r.stderr
    assert "Traceback" not in r.stderr


# list ----------------------------------------------------------------------

def test_list_names_origins_and_shadowing(tmp_path, env):
    write(tmp_path / "a/app.toml", 'description = "app from a"\n')
    write(tmp_path / "b/app.toml", 'description = "app from b"\n')
    write(tmp_path / "config/landwrap/profiles/mine.toml", 'description = "my own"\n')
    write(tmp_path / "b/mine.local.toml", '[filesystem]\nro = ["/x"]\n')
    write(tmp_path / "a/default.toml", 'description = "my default"\n')
    r = lw("profile", "list", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FROM", "DESCRIPTION"]
    row = {ln.split()[0]: ln for ln in lines[1:] if not ln.startswith(" ")}
    assert "LANDWRAP_PROFILE_PATH" in row["app"] and "app from a" in row["app"]
    assert "user" in row["mine"] and "(+1 .local.toml)" in row["mine"]
    assert "my default" in row["default"]
    shadowed = [ln.strip() for ln in lines if ln.startswith(" ")]
    assert f"LANDWRAP_PROFILE_PATH  shadowed: {tmp_path}/b/app.toml" in shadowed
    assert any(s.startswith("package") and s.endswith("/default.toml") for s in shadowed)
    data = {x["name"]: x for x in json.loads(lw("profile", "list", "--json", env=env).stdout)}
    assert data["app"]["path"] == f"{tmp_path}/a/app.toml"
    assert data["app"]["shadowed"] == [{"path": f"{tmp_path}/b/app.toml",
                                        "from": "LANDWRAP_PROFILE_PATH"}]
    assert data["mine"]["from"] == "user"
    assert data["mine"]["local"] == [f"{tmp_path}/b/mine.local.toml"]
    assert data["default"]["shadowed"][0]["from"] == "package"


# show ----------------------------------------------------------------------

def test_show_as_written_and_as_json(tmp_path, env):
    text = '# my app\ndescription = "x"\n[filesystem]\nro = ["/usr"]\n'
    write(tmp_path / "a/app.toml", text)
    r = lw("profile", "show", "app", env=env)
    assert (r.returncode, r.stdout) == (0, text)
    write(tmp_path / "b/app.local.toml", '[filesystem]\nrw = ["/tmp"]\n')
    r = lw("profile", "show", "app", env=env)
    assert r.stdout.startswith(f"# ==> {tmp_path}/a/app.toml\n{text}")
    assert f"# ==> {tmp_path}/b/app.local.toml (merged on top)\n" in r.stdout
    doc = json.loads(lw("profile", "show", "--json", "app", env=env).stdout)
    assert doc["document"] == {"description": "x", "filesystem": {"ro": ["/usr"]}}
    assert doc["local"][0]["document"] == {"filesystem": {"rw": ["/tmp"]}}


def test_show_resolved(tmp_path, env):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/sub").mkdir()
    write(tmp_path / "a/base.toml", f'[filesystem]\nro = ["{tmp_path}/data"]\n')
    write(tmp_path / "a/app.toml", f"""\
        description = "resolved app"
        extends = ["base"]
        [vars]
        D = "{tmp_path}/data"
        [filesystem]
        ro = ["${{D}}/sub", "${{D}}/missing", "{tmp_path}/nothing*"]
        [network]
        connect_tcp = [443]
        [scope]
        signal = false
        [env]
        pass = ["TERM"]
        """)
    r = lw("profile", "show", "--resolved", "app", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"Files: {tmp_path}/a/base.toml -> {tmp_path}/a/app.toml" in out
    lines = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("  ro ")}
    assert " present " in lines[f"{tmp_path}/data"]
    assert f"merged (covered by {tmp_path}/data)" in lines[f"{tmp_path}/data/sub"]
    assert "missing (No such file or directory)" in lines[f"{tmp_path}/data/missing"]
    assert f"glob matching nothing: {tmp_path}/nothing*" in out
    assert "connect_tcp  443" in out
    assert "Scopes: abstract_unix_socket isolated" in out
    assert "Env: pass TERM" in out
    view = json.loads(lw("profile", "show", "--resolved", "--json", "app", env=env).stdout)
    assert view["files"] == [f"{tmp_path}/a/base.toml", f"{tmp_path}/a/app.toml"]
    status = {p["path"]: p["status"] for p in view["filesystem"]["paths"]}
    assert status == {f"{tmp_path}/data": "present", f"{tmp_path}/data/sub": "merged",
                      f"{tmp_path}/data/missing": "missing"}
    assert view["network"]["ports"][0]["ports"] == "443"
    assert view["scope"] == {"abstract_unix_socket": True, "signal": False}
    assert view["env"]["pass"] == ["TERM"]


def test_show_and_export_errors_are_one_line_exit_1(tmp_path, env):
    one_line_error(lw("profile", "show", "no-such-profile", env=env), 1)
    one_line_error(lw("profile", "export", "no-such-profile", env=env), 1)
    bad = write(tmp_path / "bad.toml", '[filesystem]\nro = ["${NOPE}"]\n')
    r = lw("profile", "show", "--resolved", bad, env=env)
    one_line_error(r, 1)
    assert f"{bad}:2: filesystem.ro: unknown variable ${{NOPE}}" in r.stderr
    one_line_error(lw("profile", "export", bad, env=env), 1)
    assert lw("profile", "show", env=env).returncode == 2  # click usage error


# check ---------------------------------------------------------------------

def test_check(tmp_path, env):
    good = write(tmp_path / "good.toml", '[filesystem]\nro = ["/usr"]\n')
    ll = write(tmp_path / "ll.toml", '[[ruleset]]\nscoped = ["signal"]\n')
    bad = write(tmp_path / "bad.toml", '[filesystem]\nro = ["/usr"]\n\n[network]\n'
                'connect_tcp = [70000]\n')
    worse = write(tmp_path / "worse.toml", 'extends = ["nothing-like-it"]\n')
    r = lw("profile", "check", good, ll, env=env)
    assert (r.returncode, r.stdout) == (0, f"{good}: ok\n{ll}: ok\n")
    r = lw("profile", "check", good, bad, worse, env=env)
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[0] == f"{good}: ok"
    assert out[1] == f"{bad}:5: network.connect_tcp: bad port 70000: ports are 0-65535"
    assert out[2].startswith(f"{worse}:1: extends: no profile named 'nothing-like-it'")
    assert out[3].startswith("Hint: ")
    # a bare file name in the current directory is a file, not a profile name
    r = lw("profile", "check", "good.toml", env=env, cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, "good.toml: ok\n")
    req = write(tmp_path / "req.toml", f'[filesystem]\nro = [{{ path = "{tmp_path}/gone", '
                                       'required = true }]\n')
    r = lw("profile", "check", req, env=env)
    assert r.returncode == 1 and f"{tmp_path}/gone" in r.stdout


# export and landlockconfig files -------------------------------------------

def _kernel_view(d):
    return ([(r["path"], r["type"], r["access"]) for r in d["rules"]],
            [(p["port"], p["access"]) for p in d["ports"]],
            d["handled_access_fs"], d["handled_access_net"], d["scoped"])


@pytest.mark.usefixtures("landlock")
def test_export_round_trip(tmp_path, env):
    (tmp_path / "work").mkdir()
    app = write(tmp_path / "a/app.toml", f"""\
        extends = ["default"]
        [filesystem]
        rw = ["{tmp_path}/work", "{tmp_path}/gone"]
        [[filesystem.rule]]
        path = "{tmp_path}/work"
        access = ["make_reg", "execute"]
        [network]
        connect_tcp = [443, "8000-8003"]
        bind_tcp = [8080]
        [scope]
        signal = false
        """)
    r = lw("profile", "export", "app", env=env)
    assert r.returncode == 0, r.stderr
    doc = tomllib.loads(r.stdout)
    assert set(doc) == {"abi", "ruleset", "path_beneath", "net_port"}
    assert doc["ruleset"][0]["scoped"] == ["abstract_unix_socket"]
    assert "connect_tcp" in doc["ruleset"][0]["handled_access_net"]
    assert {"allowed_access": ["connect_tcp"], "port": [443, 8000, 8001, 8002, 8003]} \
        in doc["net_port"]
    parents = [p for e in doc["path_beneath"] for p in e["parent"]]
    assert f"{tmp_path}/work" in parents and "/usr" in parents
    assert f"{tmp_path}/gone" not in parents and "# Missing at export time" in r.stdout
    exported = tmp_path / "exported.toml"
    exported.write_text(r.stdout)
    js = lw("profile", "export", "--json", app, env=env)
    assert json.loads(js.stdout)["pathBeneath"]
    (tmp_path / "exported.json").write_text(js.stdout)
    want = json.loads(lw("run", "--dry-run", "--json", "-p", "app", "--", "true",
                         env=env).stdout)
    for f in ("exported.toml", "exported.json"):
        got = lw("run", "--dry-run", "--json", "-p", str(tmp_path / f), "--", "true", env=env)
        assert got.returncode == 0, got.stderr
        assert _kernel_view(json.loads(got.stdout)) == _kernel_view(want)


LLCONFIG = """\
    abi = 4

    [[variable]]
    name = "system"
    literal = [{system}]

    [[ruleset]]
    handled_access_fs = ["abi.all"]
    handled_access_net = ["bind_tcp"]
    scoped = ["signal"]

    [[path_beneath]]
    allowed_access = ["abi.read_execute"]
    parent = ["${{system}}", {python}]

    [[path_beneath]]
    allowed_access = ["abi.read_write"]
    parent = ["{allowed}"]

    [[net_port]]
    allowed_access = ["bind_tcp"]
    port = [{port}]
    """


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.usefixtures("landlock")
@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_landlockconfig_file_is_enforced(tmp_path, env, fmt):
    allowed, denied = tmp_path / "allowed", tmp_path / "denied"
    allowed.mkdir()
    denied.mkdir()
    (denied / "secret").write_text("s3cret\n")
    port = _free_port()
    pyroots = sorted({sys.prefix, sys.base_prefix,
                      os.path.dirname(os.path.realpath(sys.executable))})
    text = textwrap.dedent(LLCONFIG).format(
        system=", ".join(json.dumps(p) for p in SYSTEM),
        python=", ".join(json.dumps(p) for p in pyroots), allowed=allowed, port=port)
    path = tmp_path / f"policy.{fmt}"
    if fmt == "toml":
        path.write_text(text)
    else:
        doc = tomllib.loads(text)
        path.write_text(json.dumps({
            "abi": doc["abi"], "variable": doc["variable"],
            "ruleset": [{"handledAccessFs": ["abi.all"], "handledAccessNet": ["bind_tcp"],
                         "scoped": ["signal"]}],
            "pathBeneath": [{"allowedAccess": e["allowed_access"], "parent": e["parent"]}
                            for e in doc["path_beneath"]],
            "netPort": [{"allowedAccess": ["bind_tcp"], "port": [port]}]}))
    code = textwrap.dedent(f"""\
        import errno, socket, sys
        def try_(f):
            try:
                f()
                return "ok"
            except OSError as e:
                return errno.errorcode[e.errno]
        def bind(p):
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
        def connect():
            with socket.socket() as s:
                s.settimeout(2)
                s.connect(("127.0.0.1", {port}))
        print(try_(lambda: open("{allowed}/new", "w").write("x")),
              try_(lambda: open("{denied}/new", "w").write("x")),
              try_(lambda: open("{denied}/secret").read()),
              try_(lambda: bind({port})),
              try_(lambda: bind(0)),
              try_(connect))
        """)
    r = lw("run", "-q", "-p", str(path), "--", sys.executable, "-I", "-S", "-c", code, env=env)
    assert r.returncode == 0, r.stderr
    wrote, write_denied, read_denied, bind_ok, bind_other, connect = r.stdout.split()
    assert (wrote, write_denied, read_denied) == ("ok", "EACCES", "EACCES")
    assert (bind_ok, bind_other) == ("ok", "EACCES")
    # connect_tcp is not handled by the document: still allowed (refused: nobody listens)
    assert connect == "ECONNREFUSED"
    assert (allowed / "new").read_text() == "x" and not (denied / "new").exists()


@pytest.mark.usefixtures("landlock")
def test_landlockconfig_combines_with_options_and_reports_errors(tmp_path, env):
    bad = tmp_path / "bad.toml"
    bad.write_text('abi = 5\n[[ruleset]]\nhandled_access_fs = ["abi.all"]\n\n'
                   '[[path_beneath]]\nallowed_access = ["read_everything"]\nparent = ["/"]\n')
    r = lw("run", "-p", str(bad), "--", "true", env=env)
    one_line_error(r, 125)
    assert f"{bad}:6: path_beneath[0].allowed_access: unknown access right " \
           "'read_everything'" in r.stderr
    ok = tmp_path / "ok.toml"
    ok.write_text('[[path_beneath]]\nallowed_access = ["read_file"]\nparent = ["/etc/hostname"]\n')
    r = lw("run", "-q", "-p", str(ok), "--rox", "/usr", "--rox", "/lib", "--rox", "/lib64",
           "--", "cat", "/etc/hostname", env=env)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    r = lw("run", "-q", "-p", str(ok), "--rox", "/usr", "--rox", "/lib", "--rox", "/lib64",
           "--", "cat", "/etc/passwd", env=env)
    assert r.returncode == 1 and "Permission denied" in r.stderr


# completion ------------------------------------------------------------------

def complete(words, env, shell="bash"):
    """What `landwrap` answers to SHELL's completion request for *words*."""
    e = dict(env, _LANDWRAP_COMPLETE=f"{shell}_complete", COMP_WORDS=" ".join(words),
             COMP_CWORD=str(len(words) - 1))
    if shell == "zsh":
        e["COMP_WORDS"] = " ".join(words)
    if shell == "fish":
        e["COMP_WORDS"] = " ".join(words)
        e["COMP_CWORD"] = words[-1]
    r = subprocess.run([sys.executable, "-m", "landwrap"], env=e, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout.splitlines()


def test_completion_protocol(tmp_path, env):
    write(tmp_path / "a/devtool.toml", 'description = "a dev tool"\n')
    assert "plain,default" in complete(["landwrap", "run", "-p", "de"], env)
    assert "plain,devtool" in complete(["landwrap", "run", "-p", "de"], env)
    assert complete(["landwrap", "run", "--profile", "devt"], env) == ["plain,devtool"]
    assert complete(["landwrap", "profile", "show", "dev"], env) == ["plain,devtool"]
    assert complete(["landwrap", "profile", "export", "dev"], env) == ["plain,devtool"]
    assert complete(["landwrap", "run", "-p", "./x"], env) == ["file,./x"]
    assert complete(["landwrap", "run", "--ro", "/us"], env) == ["file,/us"]
    assert set(complete(["landwrap", ""], env)) >= {
        "plain,run", "plain,status", "plain,profile", "plain,completion"}
    assert complete(["landwrap", "profile", ""], env) == [
        "plain,check", "plain,export", "plain,list", "plain,show"]
    assert {"plain,--rox", "plain,--rw"} <= set(complete(["landwrap", "run", "--r"], env))
    assert "plain,sh" in complete(["landwrap", "run", "--", "sh"], env)
    assert complete(["landwrap", "run", "--", "sh", "scr"], env) == ["file,scr"]
    zsh = complete(["landwrap", "run", "-p", "devt"], env, "zsh")
    assert zsh[:3] == ["plain", "devtool", "a dev tool"]
    fish = complete(["landwrap", "run", "-p", "devt"], env, "fish")
    assert fish == ["plain,devtool\ta dev tool"]


@pytest.mark.skipif(shutil.which("bash") is None or not os.path.exists(LANDWRAP_BIN),
                    reason="needs bash and the installed landwrap script")
def test_bash_completion_script_for_real(tmp_path, env):
    """Source `landwrap completion bash` in bash and ask it to complete."""
    write(tmp_path / "a/devtool.toml", 'description = "a dev tool"\n')
    env = dict(env, PATH=os.path.dirname(LANDWRAP_BIN) + ":" + env.get("PATH", ""))
    script = r'''
        eval "$(landwrap completion bash)"
        complete -p landwrap
        COMP_WORDS=(landwrap run -p devt); COMP_CWORD=3
        _landwrap_completion landwrap devt -p
        echo "reply: ${COMPREPLY[*]}"
        COMPREPLY=(); COMP_WORDS=(landwrap profile ""); COMP_CWORD=2
        _landwrap_completion landwrap "" profile
        echo "reply: ${COMPREPLY[*]}"
    '''
    r = subprocess.run(["bash", "--norc", "-c", script], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == "complete -o nosort -F _landwrap_completion landwrap"
    assert out[1] == "reply: devtool"
    assert out[2] == "reply: check export list show"


def test_completion_scripts():
    for shell, marker in (("bash", "complete -o nosort -F _landwrap_completion landwrap"),
                          ("zsh", "#compdef landwrap"),
                          ("fish", "complete --no-files --command landwrap")):
        r = lw("completion", shell)
        assert r.returncode == 0 and marker in r.stdout and "_LANDWRAP_COMPLETE" in r.stdout
    assert lw("completion", "tcsh").returncode == 2


def test_run_fast_path_stays_free_of_click_for_landlockconfig_files(tmp_path, env):
    """A landlockconfig profile is read without click, json or re (and,
    through the parse cache, without tomllib)."""
    ll = tmp_path / "ll.toml"
    ll.write_text('[[path_beneath]]\nallowed_access = ["read_file"]\nparent = ["/etc"]\n')
    fill = "import sys; from landwrap.profiles import profile; profile.load([sys.argv[1]])"
    code = ("import sys; from landwrap.profiles import profile; profile.load([sys.argv[1]]); "
            "print(sorted(m for m in ('click', 'json', 're', 'typing', 'glob', 'tomllib') "
            "if m in sys.modules))")
    if sys.version_info < (3, 11):  # -S: give the first run tomli's directory
        env = {**env, "PYTHONPATH": os.path.dirname(os.path.dirname(tomllib.__file__))}
    for c in (fill, code):
        r = subprocess.run([sys.executable, "-S", "-c", c, str(ll)], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def _shipped():
    from landwrap.profiles import lookup, profile

    return [name for name, *_ in profile.list_profiles([lookup.PACKAGE_PROFILES])]


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_profile_exports_and_reads_back_the_same(name, tmp_path, monkeypatch):
    """In-process, for speed: export, load the export with -p, same kernel rules."""
    from landwrap.profiles import landlockconfig, lookup, profile
    from landwrap.engine.errors import UnsupportedFeature

    monkeypatch.setenv("LANDWRAP_CACHE_DIR", str(tmp_path / "cache"))
    # ${CWD} and ${TMPDIR}: directories of their own, not landwrap's checkout
    # nor the directory holding its cache (never writable from a sandbox)
    for d in ("work", "tmp"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    prof = profile.load([name], dirs=[lookup.PACKAGE_PROFILES])
    try:
        plan = prof.ruleset.resolve()
    except UnsupportedFeature:
        plan = prof.ruleset.resolve(compat_mode="best-effort")
    out = tmp_path / f"{name}.toml"
    out.write_text(landlockconfig.export(plan, profile=prof))
    back = profile.load([str(out)]).ruleset.resolve(compat_mode=plan.mode)
    assert _plan_view(back) == _plan_view(plan)


def _plan_view(plan):
    return ([(r.path, r.is_dir, r.access) for r in plan.rules],
            [(port, bits) for port, bits, _ in plan.ports], plan.fs, plan.net, plan.scoped)

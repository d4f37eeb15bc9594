"""The profile loader's pure logic (landwrap/profile.py and the
landlockconfig reader in landwrap/landlockconfig.py): lookup order, variables,
globs, extends, .local.toml additions, error messages with FILE:LINE: key,
and the parse cache's ownership checks.  No Landlock here: paths are only
resolved (stat/open O_PATH), never enforced."""

import json
import marshal
import os
import shutil
import textwrap

import pytest

from landwrap.engine import compat
from landwrap.profiles import cache, landlockconfig, lookup, parse, profile, variables
from landwrap.engine.errors import PathError, ProfileError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Each test gets its own cache, config home and profile path."""
    monkeypatch.setenv("LANDWRAP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LANDWRAP_PROFILE_PATH", raising=False)
    return tmp_path


def write(path, text):
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def load(path, **kw):
    return profile.load([str(path)], **kw)


def rule_paths(prof):
    return {r.path: r.access for r in prof.ruleset.paths}


# finding -----------------------------------------------------------------

def test_search_path_order(tmp_path):
    env = {"LANDWRAP_PROFILE_PATH": f"{tmp_path}/a::{tmp_path}/b", "HOME": "/home/x",
           "XDG_CONFIG_HOME": f"{tmp_path}/cfg"}
    assert lookup.search_path(env) == [
        f"{tmp_path}/a", f"{tmp_path}/b", f"{tmp_path}/cfg/landwrap/profiles",
        "/etc/landwrap/profiles", lookup.PACKAGE_PROFILES]
    # without XDG_CONFIG_HOME: ~/.config
    assert lookup.search_path({"HOME": "/home/x"})[0] == "/home/x/.config/landwrap/profiles"


def test_first_hit_wins_and_locals_merge_from_everywhere(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    user = tmp_path / "config" / "landwrap" / "profiles"
    monkeypatch.setenv("LANDWRAP_PROFILE_PATH", f"{a}:{b}")
    write(b / "app.toml", 'description = "from b"\n[filesystem]\nro = ["/b"]\n')
    write(user / "app.toml", 'description = "from user"\n[filesystem]\nro = ["/user"]\n')
    write(a / "app.local.toml", '[filesystem]\nro = ["/local-a"]\n')
    write(user / "app.local.toml", '[filesystem]\nro = ["/local-user"]\n')
    prof = profile.load(["app"])
    assert prof.description == "from b"
    assert set(rule_paths(prof)) == {"/b", "/local-a", "/local-user"}
    assert prof.sources == [str(b / "app.toml"), str(a / "app.local.toml"),
                            str(user / "app.local.toml")]
    # given as a path, a profile gets no .local additions
    assert set(rule_paths(profile.load([str(user / "app.toml")]))) == {"/user"}
    # list_profiles: one entry per name, the others shadowed; locals are not profiles
    rows = {name: (path, shadowed) for name, path, _, shadowed
            in profile.list_profiles(lookup.search_path())}
    assert rows["app"] == (str(b / "app.toml"), [str(user / "app.toml")])
    assert "app.local" not in rows and "default" in rows


def test_xdg_config_home_is_searched(tmp_path):
    exe = tmp_path / "bin" / "mine"
    exe.parent.mkdir()
    shutil.copy("/bin/true", exe)
    write(tmp_path / "config/landwrap/profiles/mine.toml",
          f'programs = ["{exe}"]\n[filesystem]\nro = ["/m"]\n')
    assert lookup.find("mine") == str(tmp_path / "config/landwrap/profiles/mine.toml")
    assert profile.default_for(str(exe)) == "mine"
    assert profile.default_for("/usr/bin/mine") == "default"  # not one of its programs
    assert profile.default_for("/usr/bin/no-such-profile-here") == "default"
    assert profile.default_for(".hidden") == "default"


def test_unknown_name_and_bad_names():
    with pytest.raises(ProfileError, match="no profile named 'nope-xyz'") as e:
        profile.load(["nope-xyz"])
    assert "profile list" in e.value.hint
    for bad in ("", ".hidden"):
        with pytest.raises(ProfileError, match="bad profile name"):
            profile.load([bad])


def test_list_profiles_marks_invalid(tmp_path):
    write(tmp_path / "p/broken.toml", "description = \n")
    rows = {n: d for n, _, d, _ in profile.list_profiles([str(tmp_path / "p")])}
    assert rows["broken"].startswith("(invalid:")


# variables and paths -----------------------------------------------------

def test_builtin_variables_follow_the_environment(tmp_path):
    env = {"HOME": "/h", "TMPDIR": "/t", "USER": "u"}
    v = variables.builtin_vars("/pd", env)
    assert (v["HOME"], v["TMPDIR"], v["USER"], v["PROFILE_DIR"]) == ("/h", "/t", "u", "/pd")
    assert v["XDG_CONFIG_HOME"] == "/h/.config"
    assert v["XDG_CACHE_HOME"] == "/h/.cache"
    assert v["XDG_DATA_HOME"] == "/h/.local/share"
    assert v["XDG_STATE_HOME"] == "/h/.local/state"
    assert v["XDG_RUNTIME_DIR"] == f"/run/user/{os.getuid()}"
    assert v["UID"] == str(os.getuid()) and v["CWD"] == os.getcwd()
    v = variables.builtin_vars("/pd", {"HOME": "/h", "XDG_CONFIG_HOME": "/c"})
    assert v["XDG_CONFIG_HOME"] == "/c" and v["TMPDIR"] == "/tmp"


def test_expand():
    v = {"HOME": "/h", "A": "x"}
    assert variables.expand("~", v) == "/h"
    assert variables.expand("~/a", v) == "/h/a"
    assert variables.expand("~root", v) == "~root"
    assert variables.expand("/${A}/${A}$$", v) == "/x/x$"
    with pytest.raises(KeyError):
        variables.expand("${B}", v)
    with pytest.raises(ValueError, match=r"\$\$"):
        variables.expand("/a$b", v)
    with pytest.raises(ValueError, match="unterminated"):
        variables.expand("${A", v)


def test_vars_and_paths(tmp_path):
    p = write(tmp_path / "p/x.toml", """\
        [vars]
        DATA = "${HOME}/data"
        SUB = "${DATA}/sub"
        [filesystem]
        ro = ["${SUB}", "~/.config/x", "rel/dir", "../up", "/trailing/", "/a/./b/../c"]
        rw = ["${XDG_CACHE_HOME}/app", "${TMPDIR}", "${PROFILE_DIR}"]
        """)
    prof = load(p, environ={"HOME": "/h", "TMPDIR": "/tt"})
    assert set(rule_paths(prof)) == {
        "/h/data/sub", "/h/.config/x", f"{tmp_path}/p/rel/dir", f"{tmp_path}/up",
        "/trailing", "/a/c", "/h/.cache/app", "/tt", f"{tmp_path}/p"}
    assert rule_paths(prof)["/tt"] == compat.access_bits("rw")


@pytest.mark.parametrize("body, key, line, message", [
    ('[vars]\nHOME = "/x"\n', "vars.HOME", 2, "cannot redefine the built-in"),
    ('[vars]\n"a-b" = "/x"\n', "vars.a-b", None, "letters, digits and _"),
    ('[filesystem]\nro = ["${NOPE}/x"]\n', "filesystem.ro", 2, "unknown variable ${NOPE}"),
    ('[filesystem]\nro = ["/a$b"]\n', "filesystem.ro", 2, "write $$"),
    ('[filesystem]\nro = [""]\n', "filesystem.ro", 2, "empty path"),
    ('[filesystem]\nro = [1]\n', "filesystem.ro", 2, "expected a path string, got an integer"),
    ('[vars]\nZ = "/a\\u0000"\n[filesystem]\nro = ["${Z}"]\n', "filesystem.ro", 4, "NUL"),
    ('description = 3\n', "description", 1, "expected a string"),
    ('\n\ncolour = "x"\n', "colour", 3, "unknown key"),
    ('[filesystem]\nrox = ["/a"]\nrwz = ["/b"]\n', "filesystem.rwz", 3, "unknown key"),
    ('[network]\nconnect_tcp = [443, 70000]\n', "network.connect_tcp", 2, "0-65535"),
    ('[network]\nbind_tcp = ["9-1"]\n', "network.bind_tcp", 2, "9 is above 1"),
    ('[network]\nbind_tcp = [true]\n', "network.bind_tcp", 2, "got a boolean"),
    ('[scope]\nsignal = "yes"\n', "scope.signal", 2, "expected a boolean"),
    ('compat = "lax"\n', "compat", 1, "'strict' or 'best-effort'"),
    ('abi = 99\n', "abi", 1, "from 1 to"),
    ('[env]\nset = { A = "a\\u0000b" }\n', "env.set.A", None, "NUL"),
    ('[env]\npass = ["A=B"]\n', "env.pass", 2, "bad variable name"),
    ('[filesystem]\nrule = 0\n', "filesystem.rule[0]", None, "expected a table"),
    ('[filesystem]\n"\\n" = 1\n', "filesystem.\\n", None, "unknown key"),
    ('[[filesystem.rule]]\npath = "/a"\naccess = ["read_file"]\n'
     '[[filesystem.rule]]\npath = "/b"\naccess = ["read_fil"]\n',
     "filesystem.rule[1].access", 6, "unknown right 'read_fil'"),
])
def test_errors_name_file_line_and_key(tmp_path, body, key, line, message):
    p = write(tmp_path / "e.toml", body)
    with pytest.raises(ProfileError) as e:
        load(p)
    err = e.value
    assert (err.file, err.key) == (p, key)
    if line is not None:
        assert err.line == line
    assert message in err.detail
    text = str(err)
    assert text.startswith(f"{p}:{line}: {key}: " if line else f"{p}")
    assert "\n" not in text


def test_globs(tmp_path):
    for f in ("d/a.txt", "d/b.txt", "d/c.log", "d/sub/deep/x.txt", "e1/f", "e2/f"):
        write(tmp_path / f, "")
    p = write(tmp_path / "g.toml", f"""\
        [filesystem]
        ro = ["{tmp_path}/d/*.txt", "{tmp_path}/d/?.log", "{tmp_path}/e[12]",
              "{tmp_path}/d/**/*.txt", "{tmp_path}/nothing*"]
        """)
    prof = load(p)
    got = set(rule_paths(prof))
    assert got == {f"{tmp_path}/d/a.txt", f"{tmp_path}/d/b.txt", f"{tmp_path}/d/c.log",
                   f"{tmp_path}/e1", f"{tmp_path}/e2", f"{tmp_path}/d/sub/deep/x.txt"}
    assert prof.skipped_globs == [(f"{tmp_path}/nothing*", f"{p}: filesystem.ro")]
    q = write(tmp_path / "r.toml", f"""\
        [filesystem]
        ro = [{{ path = "{tmp_path}/nothing*", required = true }}]
        """)
    with pytest.raises(ProfileError, match="matches nothing"):
        load(q)


def test_missing_paths_skip_unless_required(tmp_path):
    p = write(tmp_path / "m.toml", f'[filesystem]\nro = ["{tmp_path}/missing", "{tmp_path}"]\n')
    plan = load(p).ruleset.resolve(compat_mode="best-effort")
    assert [s[0] for s in plan.skipped] == [f"{tmp_path}/missing"]
    q = write(tmp_path / "q.toml",
              f'[filesystem]\nro = [{{ path = "{tmp_path}/missing", required = true }}]\n')
    with pytest.raises(PathError, match="missing"):
        load(q).ruleset.resolve(compat_mode="best-effort")


def test_rules_network_scope_env(tmp_path):
    p = write(tmp_path / "n.toml", """\
        compat = "best-effort"
        abi = 4
        [[filesystem.rule]]
        path = "/x"
        access = ["read_file", "truncate"]
        [network]
        bind_tcp = [8080]
        connect_tcp = ["443", "8000-8002"]
        connect_udp = [53]
        [scope]
        signal = false
        abstract_unix_socket = true
        [env]
        clean = true
        pass = ["TERM"]
        set = { GREETING = "hi ${USER}", PLAIN = "$$x" }
        """)
    prof = load(p, environ={"USER": "ann", "HOME": "/h"})
    rs = prof.ruleset
    truncate = compat.FS_RIGHTS["truncate"][0]
    assert rule_paths(prof)["/x"] == compat.FS_RIGHTS["read_file"][0] | truncate
    assert rs.need["fs"] & truncate  # exact rights are a requirement
    assert (rs.compat, rs.abi) == ("best-effort", 4)
    assert [(lo, hi) for lo, hi, _, _ in rs.ports] == [(8080, 8080), (443, 443), (8000, 8002),
                                                       (53, 53)]
    assert rs.ports[3][2] == compat.NET_RIGHTS["connect_send_udp"][0]
    assert not rs.scopes & compat.SCOPES["signal"][0]
    assert rs.scopes & compat.SCOPES["abstract_unix_socket"][0]
    assert prof.env_clean and prof.env_pass == ["TERM"]
    assert prof.env_set == {"GREETING": "hi ann", "PLAIN": "$x"}


def test_unrestricted_switches(tmp_path):
    p = write(tmp_path / "u.toml", "[filesystem]\nunrestricted = true\n"
              "[network]\nunrestricted = true\n")
    rs = load(p).ruleset
    assert rs.fs is False and rs.net is False


# extends -----------------------------------------------------------------

def test_extends_by_name_and_relative_path(tmp_path):
    d = tmp_path / "p"
    write(d / "base.toml", '[filesystem]\nro = ["/base"]\n')
    write(d / "sub/mid.toml", 'extends = ["base"]\n[filesystem]\nro = ["/mid"]\n')
    top = write(d / "top.toml", 'extends = ["sub/mid.toml"]\n[filesystem]\nro = ["/top"]\n')
    prof = load(top, dirs=[str(d)])
    assert set(rule_paths(prof)) == {"/base", "/mid", "/top"}
    assert prof.sources == [str(d / "base.toml"), str(d / "sub/mid.toml"), top]


def test_extends_cycle_is_an_error_with_the_chain(tmp_path):
    d = tmp_path / "p"
    write(d / "a.toml", '# a\nextends = ["b"]\n')
    write(d / "b.toml", 'extends = ["./a.toml"]\n')
    with pytest.raises(ProfileError) as e:
        load(d / "a.toml", dirs=[str(d)])
    assert "extends cycle" in str(e.value)
    assert e.value.key == "extends" and e.value.line == 2
    assert f"{d}/a.toml -> {d}/b.toml -> {d}/a.toml" in str(e.value)


def test_extends_depth_limit(tmp_path):
    d = tmp_path / "p"
    n = profile.MAX_DEPTH + 1
    for i in range(n):
        write(d / f"c{i}.toml", f'extends = ["c{i + 1}"]\n' if i + 1 < n else "")
    with pytest.raises(ProfileError, match=f"deeper than {profile.MAX_DEPTH}"):
        load(d / "c0.toml", dirs=[str(d)])
    os.remove(d / f"c{n - 1}.toml")
    write(d / f"c{n - 2}.toml", "")
    assert len(load(d / "c0.toml", dirs=[str(d)]).sources) == n - 1


def test_extends_missing_names_the_asking_file(tmp_path):
    p = write(tmp_path / "p/x.toml", '\nextends = ["nope-xyz"]\n')
    with pytest.raises(ProfileError) as e:
        load(p, dirs=[str(tmp_path / "p")])
    assert str(e.value).startswith(f"{p}:2: extends: no profile named 'nope-xyz'")
    q = write(tmp_path / "p/y.toml", 'extends = ["/a\\u0000b.toml"]\n')
    with pytest.raises(ProfileError, match="NUL"):
        load(q)


def test_diamond_extends_applies_each_file_once(tmp_path, monkeypatch):
    d = tmp_path / "p"
    n = 24  # each file extends the next twice: 2**24 visits without deduplication
    for i in range(n):
        ext = f'extends = ["q{i + 1}", "./q{i + 1}.toml"]\n' if i + 1 < n else ""
        write(d / f"q{i}.toml", ext + f'[filesystem]\nro = ["/m{i}"]\n')
    seen = []
    real = parse.load_document

    def counting(path):
        seen.append(path)
        assert len(seen) <= n, "a file was loaded twice"
        return real(path)

    monkeypatch.setattr(profile, "load_document", counting)
    prof = load(d / "q0.toml", dirs=[str(d)])
    assert len(rule_paths(prof)) == n and len(prof.sources) == n


# documents that must fail cleanly (each found by tests/profiles/test_profile_fuzz.py) --

@pytest.mark.parametrize("name, text, message", [
    ("deep.json", '{"a": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
    ("int.json", '{"abi": ' + "9" * 5000 + "}", "invalid JSON"),
    ("int.toml", "abi = " + "9" * 5000, "invalid TOML"),
    ("sur.json", '{"filesystem": {"ro": ["/\\ud800"]}}', "lone surrogate"),
    ("sur2.json", '{"env": {"set": {"A": "\\udcff"}}}', "lone surrogate"),
    ("bad.toml", b"[filesystem]\nro = ['\xff']\n", "not valid UTF-8"),
    ("list.json", "[1, 2]", "must be a table"),
])
def test_bad_documents_fail_cleanly(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ProfileError, match=message) as e:
        load(p)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo.toml")  # must not block on open
    with pytest.raises(ProfileError, match="not a regular file"):
        load(tmp_path / "fifo.toml")
    with pytest.raises(ProfileError, match="not a regular file"):
        load(f"{tmp_path}/")


# the parse cache -----------------------------------------------------------

def _cache_entries(tmp_path):
    d = tmp_path / "cache"
    return sorted(e for e in d.iterdir() if e.name != cache.KEY_NAME) if d.exists() else []


def _signed(tmp_path, raw, doc):
    """A cache entry as landwrap itself writes it (with the secret key)."""
    key = (tmp_path / "cache" / cache.KEY_NAME).read_bytes()
    body = marshal.dumps(doc)
    return cache._mac(key, raw, body) + body


def test_cache_is_used_only_when_owned_and_private(tmp_path):
    p = write(tmp_path / "c.toml", 'description = "real"\n')
    assert parse.load_document(p)["description"] == "real"
    (entry,) = _cache_entries(tmp_path)
    assert os.stat(tmp_path / "cache").st_mode & 0o777 == 0o700
    raw = open(p, "rb").read()

    def poison(mode=0o600, content=raw):
        """A trusted entry is what gets used: replace it to see."""
        entry.write_bytes(_signed(tmp_path, content, {"description": "from cache"}))
        os.chmod(entry, mode)

    # forged without the key (what a sandbox that can write the cache would
    # do, in the old format or the new one): ignored
    entry.write_bytes(marshal.dumps((raw, {"description": "forged"})))
    assert parse.load_document(p)["description"] == "real"
    entry.write_bytes(b"\0" * 32 + marshal.dumps({"description": "forged"}))
    assert parse.load_document(p)["description"] == "real"
    poison()
    assert parse.load_document(p)["description"] == "from cache"
    poison(0o620)  # group-writable: ignored (and replaced)
    assert parse.load_document(p)["description"] == "real"
    poison()
    os.chmod(tmp_path / "cache", 0o777)  # a directory others can write to: ignored
    assert parse.load_document(p)["description"] == "real"
    os.chmod(tmp_path / "cache", 0o700)
    poison()
    assert parse.load_document(p)["description"] == "from cache"
    poison(content=b"other bytes")  # an entry for other contents: ignored
    assert parse.load_document(p)["description"] == "real"
    if os.geteuid() == 0:
        poison()
        os.chown(entry, 65534, 65534)  # someone else's entry: ignored
        assert parse.load_document(p)["description"] == "real"
    # a symlink in place of the entry is not followed
    os.remove(entry)
    other = tmp_path / "other.marshal"
    other.write_bytes(marshal.dumps((raw, {"description": "via symlink"})))
    os.symlink(other, entry)
    assert parse.load_document(p)["description"] == "real"
    # an entry of another shape (an older landwrap's) is ignored
    os.remove(entry)
    entry.write_bytes(marshal.dumps({"description": "old format"}))
    os.chmod(entry, 0o600)
    assert parse.load_document(p)["description"] == "real"


def test_cache_notices_changes_that_timestamps_miss(tmp_path):
    """Same inode, same size, same mtime (set back, or within one coarse
    clock tick): the new contents are read, not the cached ones."""
    p = write(tmp_path / "c.toml", 'description = "one"\n')
    os.utime(p, ns=(10**18, 10**18))
    assert parse.load_document(p)["description"] == "one"
    assert len(_cache_entries(tmp_path)) == 1
    with open(p, "r+") as f:
        f.write('description = "two"\n')
    os.utime(p, ns=(10**18, 10**18))
    assert parse.load_document(p)["description"] == "two"


def test_cache_can_be_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDWRAP_CACHE_DIR", "")
    p = write(tmp_path / "c.toml", 'description = "x"\n')
    parse.load_document(p)
    assert _cache_entries(tmp_path) == []


# landlockconfig documents ------------------------------------------------------

LL = """\
    abi = 5
    [[variable]]
    name = "tmp"
    literal = ["/tmp", "/var/tmp"]
    [[variable]]
    name = "tmp"
    literal = ["/dev/shm"]
    [[variable]]
    name = "sub"
    literal = ["a", "b"]

    [[ruleset]]
    handled_access_fs = ["abi.all"]
    handled_access_net = ["bind_tcp"]
    scoped = ["signal"]

    [[path_beneath]]
    allowed_access = ["abi.read_execute"]
    parent = ["/usr", "${tmp}/${sub}", "/cost$$", "/a$b"]

    [[path_beneath]]
    allowed_access = ["v1.read_write", "truncate"]
    parent = ["/var"]

    [[net_port]]
    allowed_access = ["bind_tcp"]
    port = [80, 443]
    """


def test_landlockconfig_reading(tmp_path):
    prof = load(write(tmp_path / "ll.toml", LL))
    rs = prof.ruleset
    paths = rule_paths(prof)
    rx = compat.bits(compat.FS_RIGHTS, ("execute", "read_file", "read_dir", "refer"))
    v1_rw = compat.mask(compat.FS_RIGHTS, 1) & ~compat.FS_RIGHTS["execute"][0]
    assert paths["/usr"] == rx
    for t in ("/tmp", "/var/tmp", "/dev/shm"):  # every combination of the variables
        assert paths[f"{t}/a"] == rx and paths[f"{t}/b"] == rx
    assert paths["/cost$"] == rx and paths["/a$b"] == rx  # $$ is $, a lone $ is itself
    assert paths["/var"] == v1_rw | compat.FS_RIGHTS["truncate"][0]
    # ABI 5 handles up to ioctl_dev: later rights stay allowed everywhere
    assert paths["/"] == compat.FS_ALL & ~compat.mask(compat.FS_RIGHTS, 5)
    assert rs.need["fs"] & compat.FS_RIGHTS["truncate"][0]
    # network: bind on 80 and 443 only; connect (not handled) on every port
    bind, connect = compat.NET_RIGHTS["bind_tcp"][0], compat.NET_RIGHTS["connect_tcp"][0]
    assert (80, 80, bind) in [(lo, hi, b) for lo, hi, b, _ in rs.ports]
    assert any(lo == 0 and hi == 65535 and b & connect and not b & bind
               for lo, hi, b, _ in rs.ports)
    # scopes: signal asked for; abstract unix sockets not handled, so lifted
    assert prof.unscoped == compat.SCOPES["abstract_unix_socket"][0]
    assert rs.need["scoped"] == compat.SCOPES["signal"][0]
    assert prof.sources == [str(tmp_path / "ll.toml")]


def test_landlockconfig_json_spelling(tmp_path):
    doc = {"abi": 6, "ruleset": [{"handledAccessNet": ["abi.all"], "scoped": ["abi.all"]}]}
    p = tmp_path / "ll.json"
    p.write_text(json.dumps(doc))
    prof = load(p)
    # no filesystem right handled: the filesystem is not restricted
    assert prof.ruleset.fs is False and prof.ruleset.net is True
    assert prof.unscoped == 0
    # every TCP right handled and no TCP port allowed; UDP (ABI 10) is not
    # handled at ABI 6, so it stays allowed on every port
    assert [(lo, hi, b) for lo, hi, b, _ in prof.ruleset.ports] == [(0, 65535, compat.NET_UDP)]
    p.write_text(json.dumps({"ruleset": [{"handled_access_net": ["bind_tcp"]}]}))
    with pytest.raises(ProfileError, match="unknown key") as e:
        load(p)
    assert e.value.hint == "JSON spells it 'handledAccessNet'"


def test_landlockconfig_everything_allowed_at_root_means_unrestricted(tmp_path):
    p = write(tmp_path / "r.toml", """\
        [[ruleset]]
        handled_access_net = ["connect_tcp"]
        [[path_beneath]]
        allowed_access = ["refer"]
        parent = ["/"]
        """)
    rs = load(p).ruleset
    assert rs.fs is False and rs.net is True


@pytest.mark.parametrize("body, key, line, message", [
    ('abi = 0\n[[ruleset]]\nscoped = ["signal"]\n', "abi", 1, "from 1 to"),
    ('[[ruleset]]\nhandled_access_fs = ["abi.all"]\n', "ruleset[0].handled_access_fs", 2,
     "needs a top-level 'abi = N'"),
    ('[[ruleset]]\nhandled_access_fs = []\n', "ruleset[0].handled_access_fs", 2, "empty"),
    ('[[ruleset]]\n', "ruleset[0]", 1, "empty ruleset"),
    ('[[ruleset]]\nscoped = ["signal"]\n[[ruleset]]\nscoped = ["v5.all"]\n',
     "ruleset[1].scoped", 4, "unknown access right 'v5.all'"),
    ('[[path_beneath]]\nallowed_access = ["read_file"]\nparent = ["${x}"]\n',
     "path_beneath[0].parent", 3, "unknown variable ${x}"),
    ('[[path_beneath]]\nallowed_access = ["read_file"]\nparent = ["${x"]\n',
     "path_beneath[0].parent", 3, "unclosed"),
    ('[[path_beneath]]\nallowed_access = ["read_file"]\nparent = [""]\n',
     "path_beneath[0].parent", 3, "empty path"),
    ('[[path_beneath]]\nallowed_access = ["read_file"]\n', "path_beneath[0]", 1,
     "needs 'parent'"),
    ('[[path_beneath]]\nallowed_access = ["read_file"]\nparent = ["/"]\nx = 1\n',
     "path_beneath[0].x", 4, "unknown key"),
    ('[[net_port]]\nallowed_access = ["bind_tcp"]\nport = [70000]\n', "net_port[0].port", 3,
     "0-65535"),
    ('[[net_port]]\nallowed_access = ["bind_tcp"]\nport = ["80"]\n', "net_port[0].port", 3,
     "expected port numbers"),
    ('[[variable]]\nname = "1a"\n[[ruleset]]\nscoped = ["signal"]\n', "variable[0].name", 2,
     "bad variable name"),
    ('[[variable]]\nname = "a"\nliteral = ["x"]\n', None, None, "restricts nothing"),
    ('description = "x"\n[[ruleset]]\nscoped = ["signal"]\n', "description", 1,
     "unknown key"),
    ('path_beneath = 3\n', "path_beneath", 1, "expected an array of tables"),
])
def test_landlockconfig_errors(tmp_path, body, key, line, message):
    p = write(tmp_path / "bad.toml", body)
    with pytest.raises(ProfileError) as e:
        load(p)
    assert e.value.file == p and e.value.key == key and message in e.value.detail
    if line is not None:
        assert e.value.line == line


def test_landlockconfig_json_errors_have_lines(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{\n  "pathBeneath": [\n    {"allowedAccess": ["read_file"], "parent": ["/"]},\n'
                 '    {\n      "allowedAccess": ["nope"],\n      "parent": ["/"]\n    }\n  ]\n}\n')
    with pytest.raises(ProfileError) as e:
        load(p)
    assert (e.value.line, e.value.key) == (5, "pathBeneath[1].allowedAccess")


def test_access_groups():
    fs = compat.FS_RIGHTS
    assert landlockconfig.group_bits("fs", "read_execute", 1) == compat.bits(
        fs, ("execute", "read_file", "read_dir"))
    assert landlockconfig.group_bits("fs", "read_write", 3) == compat.mask(fs, 3) & ~fs["execute"][0]
    assert landlockconfig.group_bits("fs", "all", 99) == compat.FS_ALL
    assert landlockconfig.group_bits("net", "all", 4) == compat.NET_TCP
    assert landlockconfig.group_bits("scope", "all", 6) == compat.SCOPE_ALL
    assert landlockconfig.group_bits("net", "read_write", 6) is None


def test_local_file_extends_are_followed(tmp_path):
    d = tmp_path / "profiles"
    write(d / "app.toml", '[filesystem]\nro = ["/a"]\n')
    write(d / "block.toml", '[filesystem]\nro = ["/from-block"]\n')
    write(d / "app.local.toml", 'extends = ["block"]\n[filesystem]\nro = ["/local"]\n')
    prof = profile.load(["app"], dirs=[str(d)])
    assert set(rule_paths(prof)) == {"/a", "/from-block", "/local"}
    write(d / "app.local.toml", 'extends = ["no-such-block"]\n')
    with pytest.raises(ProfileError, match="no-such-block"):
        profile.load(["app"], dirs=[str(d)])


def test_cache_keeps_one_entry_per_profile_file(tmp_path):
    p = write(tmp_path / "p.toml", '[filesystem]\nro = ["/a"]\n')
    load(p)
    cache = tmp_path / "cache"
    assert len(_cache_entries(tmp_path)) == 1
    for i in range(3):  # edits: a new size each time
        write(p, '[filesystem]\nro = ["/a%s"]\n' % ("x" * (i + 1)))
        assert set(rule_paths(load(p))) == {"/a" + "x" * (i + 1)}
    assert len(_cache_entries(tmp_path)) == 1


@pytest.mark.parametrize("pattern", ["shadow.*", "shadow*", "*_key", "*_key-*", "s?adow", ".*",
                                     "*", "x*y*z", "shadow", "?", "*shadow*", "sh*w.?"])
def test_fast_glob_matches_what_glob_matches(tmp_path, pattern):
    """The default profile's hide patterns (one wildcard component) are
    matched without the glob module: exactly glob's answer, hidden names
    and names full of wildcard characters included (a * in a name once
    stopped /etc/shadow.* from matching /etc/shadow.*x)."""
    import glob

    from landwrap.profiles.validate import _iglob

    for n in ("shadow", "shadow.bak", "shadow-", "gshadow.1", ".shadow.x", "ssh_host_key",
              "ssh_host_key-cert", "a_key", "sxadow", "x1y2z", "xyz", ".hidden", "*weird",
              "?q", "shw.1", "shadow.", "s", "shadow.*x", "x*_key"):
        (tmp_path / n).write_text("")
    p = f"{tmp_path}/{pattern}"
    assert sorted(_iglob(p)) == sorted(glob.glob(p))

@pytest.mark.parametrize("items", [
    ["/a/x", "/b/.hidden", "/c.d/e."],                       # plain: one group as given
    ["/trailing/", "/a/x"], ["/a/./b", "/a/x"], ["/a/..", "/a/x"], ["/a/x", "rel"],
    ["/a*", "/a/x"], ["/a/x", "~/y"], ["${HOME}/z", "/a/x"], ["/", "/a/x"],
    ["/a/.", "/b"], ["/a/", "/b/", "/c"],
])
def test_a_long_list_read_in_one_go_means_what_each_entry_means(tmp_path, items):
    """A list of plain absolute paths is added as it is, in a few scans of
    it all; any entry that needs more (normalizing, a variable, a glob, a
    relative path) sends the whole list through the entry-by-entry reading,
    so both give the same rules."""
    body = "[filesystem]\nro = [" + ", ".join(f'"{p}"' for p in items) + "]\n"
    together = load(write(tmp_path / "p/long.toml", body), environ={"HOME": "/h"})
    alone = load(write(tmp_path / "p/one.toml", "".join(
        f'[[filesystem.rule]]\npath = "{p}"\naccess = ["ro"]\n' for p in items)),
        environ={"HOME": "/h"})
    assert sorted(r.path for r in together.ruleset.paths) == sorted(
        r.path for r in alone.ruleset.paths)
    assert together.ruleset.path_count == len(together.ruleset.paths)


def test_plain_lists_are_marked_in_the_cache_only(tmp_path):
    """A list found plain when its file was parsed is marked so in the
    (MAC'd) cache entry and not scanned again when read from it; what the
    caller gets has no such key, and the rules are the same either way."""
    p = write(tmp_path / "p/m.toml", """\
        [filesystem]
        ro = ["/a/x", "/b/y"]
        rw = ["/c", "${HOME}/d"]
        """)
    cold = parse.load_document(p)
    warm = parse.load_document(p)
    assert cold == warm and set(warm) == {"filesystem"}
    assert type(cold["filesystem"]["ro"]) is list
    assert type(warm["filesystem"]["ro"]) is parse.PlainPaths
    assert type(warm["filesystem"]["rw"]) is list     # a variable: not plain
    first, second = load(p, environ={"HOME": "/h"}), load(p, environ={"HOME": "/h"})
    assert [(r.path, r.access, r.origin) for r in first.ruleset.paths] == [
        (r.path, r.access, r.origin) for r in second.ruleset.paths]
    assert json.dumps(warm) == json.dumps(cold)

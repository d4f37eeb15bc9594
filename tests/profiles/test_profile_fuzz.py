"""Fuzzing the profile loader with hypothesis.

Thousands of generated documents (landwrap profiles and landlockconfig
files, TOML, JSON and raw bytes; wrong types, huge lists, deep and cyclic
``extends`` graphs, unknown keys, bad ports, bad UTF-8, NUL bytes, weird
variables) are written to files and loaded.  Every case must end in either
a Profile or a clean one-line :class:`ProfileError` naming the file, and a
profile that loads must carry every path and port it lists: nothing of it
may go missing on the way to the kernel.  A sample goes through the real
CLI, which must exit 0 or 125 with a one-line message, never a traceback.

The runs are derandomized (reproducible in CI); about 2,600 examples in all.
"""

import glob as globmod
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from landwrap.engine import compat
from landwrap.profiles import landlockconfig, parse, profile, validate
from landwrap.profiles.parse import toml_str
from landwrap.engine.errors import ProfileError
from landwrap.engine.plan import FS_WRITE, ProtectedStateError
from landwrap.engine.ruleset import parse_ports

# LANDWRAP_FUZZ_SCALE=N runs N times as many examples; LANDWRAP_FUZZ_RANDOM=1
# draws new ones each run (for hunting locally; CI stays reproducible).
SCALE = max(1, int(os.environ.get("LANDWRAP_FUZZ_SCALE", "1")))
# Health checks are on, but for too_slow: that one is a timing assertion,
# which the suite does not make (a loaded CI machine is not a failing test).
SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=os.environ.get("LANDWRAP_FUZZ_RANDOM") != "1")


def examples(n: int) -> int:
    return n * SCALE

# A fixed tree that generated profiles point into (made by the fixture below).
TREE = os.path.join(tempfile.gettempdir(), f"lw-fuzz-{os.getpid()}")
HOME = os.path.join(TREE, "home")
PROFILES = os.path.join(TREE, "profiles")
GRAPH = os.path.join(TREE, "graph")
TMPD = os.path.join(TREE, "tmp")
ENV = {"HOME": HOME, "TMPDIR": TMPD, "USER": "fuzz", "PATH": os.environ.get("PATH", "")}


@pytest.fixture(scope="module", autouse=True)
def tree():
    shutil.rmtree(TREE, ignore_errors=True)
    for d in ("home/.ssh", "home/docs", "data/sub/deep", "dir1", "dir2", "dollar$dir",
              "profiles", "graph", "tmp", "cache"):
        os.makedirs(os.path.join(TREE, d), exist_ok=True)
    for f in ("home/.ssh/id_rsa", "data/a.txt", "data/b.txt", "data/sub/c.txt",
              "data/sub/deep/d.txt"):
        with open(os.path.join(TREE, f), "w") as fh:
            fh.write("x\n")
    mp = pytest.MonkeyPatch()
    # the parse cache stays on: it is part of what is being fuzzed
    mp.setenv("LANDWRAP_CACHE_DIR", os.path.join(TREE, "cache"))
    yield
    mp.undo()
    shutil.rmtree(TREE, ignore_errors=True)


# serializing ---------------------------------------------------------------

def toml_key(k: str) -> str:
    if k and all(c.isascii() and (c.isalnum() or c in "-_") for c in k):
        return k
    return toml_str(k)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_doc(doc: dict) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())


def write(name: str, data) -> str:
    path = os.path.join(PROFILES, name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
    return path


def serialize(doc: dict, fmt: str) -> str:
    if fmt == "json":
        return write("fuzz.json", json.dumps(doc))
    return write("fuzz.toml", toml_doc(doc))


def load_clean(path: str, dirs=None):
    """Load; return the Profile or the ProfileError, which must be clean."""
    try:
        return profile.load([path], dirs=[PROFILES] if dirs is None else dirs, environ=ENV)
    except ProfileError as e:
        msg = str(e)
        assert "\n" not in msg, msg
        assert e.file, f"error without a file: {msg}"
        assert msg.startswith(e.file), msg
        return e


# strategies --------------------------------------------------------------

class Atom:
    """A path as a profile writes it, and what it must expand to."""

    def __init__(self, raw, expect, is_glob=False, var=None):
        self.raw, self.var, self.is_glob = raw, var, is_glob
        self.expect = os.path.normpath(expect)

    def paths(self):
        if self.is_glob:
            return sorted(globmod.glob(self.expect, recursive=True))
        return [self.expect]

    def required_ok(self):
        return bool(self.paths()) and all(os.path.exists(p) for p in self.paths())


ATOMS = [
    Atom(f"{TREE}/data", f"{TREE}/data"),
    Atom(f"{TREE}/data/a.txt", f"{TREE}/data/a.txt"),
    Atom(f"{TREE}/dir1/", f"{TREE}/dir1"),
    Atom(f"{TREE}/missing/x", f"{TREE}/missing/x"),
    Atom("~", HOME),
    Atom("~/.ssh/id_rsa", f"{HOME}/.ssh/id_rsa"),
    Atom("${HOME}/docs", f"{HOME}/docs"),
    Atom("${TMPDIR}", TMPD),
    Atom("${PROFILE_DIR}/../data/sub", f"{TREE}/data/sub"),
    Atom("../dir2", f"{TREE}/dir2"),
    Atom("${XDG_CONFIG_HOME}/x", f"{HOME}/.config/x"),
    Atom(f"{TREE}/dollar$$dir", f"{TREE}/dollar$dir"),
    Atom("${D}/x", f"{HOME}/docs/x", var=("D", "${HOME}/docs")),
    Atom("${E}", f"{TREE}/data/b.txt", var=("E", f"{TREE}/data/b.txt")),
    Atom(f"{TREE}/data/*.txt", f"{TREE}/data/*.txt", True),
    Atom(f"{TREE}/data/**", f"{TREE}/data/**", True),
    Atom(f"{TREE}/data/?.txt", f"{TREE}/data/?.txt", True),
    Atom(f"{TREE}/dir[12]", f"{TREE}/dir[12]", True),
    Atom(f"{TREE}/nomatch*", f"{TREE}/nomatch*", True),
]

PORTS = st.one_of(
    st.integers(0, 65535),
    st.integers(0, 65535).map(str),
    st.tuples(st.integers(0, 65535), st.integers(0, 300)).map(
        lambda t: f"{t[0]}-{min(65535, t[0] + t[1])}"),
)
ENV_NAME = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=8)


@st.composite
def valid_profiles(draw):
    """A well-formed profile and what it must allow: [(Atom, bits)],
    [(lo, hi, right)]."""
    doc, fs, paths, ports = {}, {}, [], []
    variables = {}
    for access in draw(st.lists(st.sampled_from(["ro", "rox", "rw", "rwx"]), unique=True)):
        entries = []
        for a in draw(st.lists(st.sampled_from(ATOMS), max_size=6)):
            if a.var:
                variables[a.var[0]] = a.var[1]
            if a.required_ok() and draw(st.booleans()):
                entries.append({"path": a.raw, "required": True})
            else:
                entries.append(a.raw)
            paths.append((a, compat.access_bits(access)))
        fs[access] = entries[0] if len(entries) == 1 and draw(st.booleans()) else entries
    rules = []
    for a in draw(st.lists(st.sampled_from(ATOMS), max_size=3)):
        if a.var:
            variables[a.var[0]] = a.var[1]
        names = draw(st.lists(st.sampled_from(list(compat.FS_RIGHTS) + ["ro", "rw"]),
                              min_size=1, max_size=4))
        rules.append({"path": a.raw, "access": names})
        bits = compat.bits(compat.FS_RIGHTS,
                           [n for x in names for n in (compat.ACCESS_SETS.get(x) or (x,))])
        paths.append((a, bits))
    if rules:
        fs["rule"] = rules
    if draw(st.integers(0, 20)) == 0:
        fs["unrestricted"] = True
    if fs:
        doc["filesystem"] = fs
    net = {}
    for key, right in validate.NET_RIGHT.items():
        specs = draw(st.lists(PORTS, max_size=3))
        if specs:
            net[key] = specs
            for s in specs:
                lo, hi = parse_ports(s)
                ports.append((lo, hi, compat.NET_RIGHTS[right][0]))
    if net:
        doc["network"] = net
    scope = draw(st.dictionaries(st.sampled_from(sorted(validate.SCOPE_KEYS)), st.booleans()))
    if scope:
        doc["scope"] = scope
    env = {}
    if draw(st.booleans()):
        env["clean"] = draw(st.booleans())
        env["pass"] = draw(st.lists(ENV_NAME, max_size=3))
        env["set"] = draw(st.dictionaries(ENV_NAME, st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="$\0"),
            max_size=10), max_size=3))
        doc["env"] = env
    if variables:
        doc["vars"] = variables
    if draw(st.booleans()):
        doc["description"] = draw(st.text(max_size=20))
    return doc, paths, ports


def check_complete(prof, doc, paths, ports):
    """Everything the document lists is in the ruleset and in the plan."""
    rs = prof.ruleset
    for atom, bits in paths:
        for p in atom.paths():
            assert any(r.path == p and r.access & bits == bits for r in rs.paths), \
                f"{atom.raw!r} -> {p} ({bits:#x}) missing from the ruleset"
    for lo, hi, bit in ports:
        assert any(lo2 <= lo and hi <= hi2 and b & bit for lo2, hi2, b, _ in rs.ports), \
            f"port {lo}-{hi} missing"
    for k, on in doc.get("scope", {}).items():
        assert bool(rs.scopes & compat.SCOPES[k][0]) == on
    env = doc.get("env", {})
    assert set(env.get("pass", ())) <= set(prof.env_pass)
    assert all(prof.env_set[k] == v for k, v in env.get("set", {}).items())
    try:
        plan = rs.resolve(compat_mode="best-effort")
    except ProtectedStateError as e:
        # landwrap's own state is never writable from a sandbox: the document
        # is refused, and it must really have asked for writing over it
        d = e.directory
        assert any(p == "/" or d == p or d.startswith(p + "/") or p.startswith(d + "/")
                   for atom, bits in paths if bits & FS_WRITE for p in atom.paths()), str(e)
        return None
    for atom, bits in paths:
        for p in atom.paths():
            if os.path.exists(p):
                want = bits if os.path.isdir(p) else bits & compat.FS_FILE
                if any(p == "/" or h.startswith(p + "/") for h in plan.hidden):
                    # best-effort hid landwrap's state beneath it (issue 10):
                    # the directory itself keeps read_dir, its other entries
                    # their rights
                    want &= compat.FS_RIGHTS["read_dir"][0]
                assert plan.allows(p, want) == want, f"{p} lost rights in the plan"
    have = {port: bits for port, bits, _ in plan.ports}
    for lo, hi, bit in ports:
        if plan.net & bit:
            for port in {lo, hi}:
                assert have.get(port, 0) & bit, f"port {port} lost in the plan"
    return plan


@settings(max_examples=examples(500), **SETTINGS)
@given(valid_profiles(), st.sampled_from(["toml", "json"]))
def test_valid_profiles_load_completely(case, fmt):
    doc, paths, ports = case
    path = serialize(doc, fmt)
    prof = load_clean(path)
    assert not isinstance(prof, ProfileError), f"{prof}\n{doc}"
    plan = check_complete(prof, doc, paths, ports)
    # and the landlockconfig export reads back to the same kernel rules
    if plan is not None and plan.enforces_anything:
        text = landlockconfig.export(plan, profile=prof)
        back = profile.load([write("fuzz-export.toml", text)], dirs=[PROFILES])
        plan2 = back.ruleset.resolve(compat_mode="best-effort")
        assert _kernel_view(plan2) == _kernel_view(plan)


def _kernel_view(plan):
    return ([(r.path, r.is_dir, r.access) for r in plan.rules],
            [(p, b) for p, b, _ in plan.ports], plan.fs, plan.net, plan.scoped)


# chaos: anything shaped like a document -----------------------------------

KEYS = sorted(validate.TOP_KEYS | validate.FS_KEYS | validate.NET_KEYS | validate.SCOPE_KEYS
              | validate.ENV_KEYS | validate.RULE_KEYS) + [
    "ruleset", "path_beneath", "net_port", "variable", "x", "", "Ro", "rox ", "\0"]
WEIRD = [
    "/", "", "~", "~root", "${HOME}", "${NOPE}", "$", "${", "${}", "$x", "$$", "a\0b",
    "/tmp/\0", f"{TREE}/data/*", f"{TREE}/**/*.txt", f"{TREE}/[", "443", "1-2", "70000",
    "65535-0", "-1", "0x50", " 80 ", "read_file", "rw", "abi.all", "v3.read_write", "../x",
    "/proc/self/root", "default", "p0", "fuzz.toml", "./fuzz.toml", "strict",
    "best-effort", "\udcff", "\ud800", "é/ü", "${PROFILE_DIR}", "${UID}", "${USER}x",
]
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0, 1, 7, 10, 11, 443, 65535, 65536, -1]),
    st.floats(),
    st.text(st.characters(blacklist_characters="*?["), max_size=20),
    st.sampled_from(WEIRD),
)
VALUES = st.recursive(
    SCALARS,
    lambda kids: st.one_of(st.lists(kids, max_size=5),
                           st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)),
                                           kids, max_size=4)),
    max_leaves=20)
SHAPED = st.fixed_dictionaries({}, optional={
    "description": VALUES, "extends": VALUES, "compat": VALUES, "abi": VALUES,
    "vars": st.dictionaries(st.text(max_size=6), VALUES, max_size=3),
    "filesystem": st.dictionaries(st.sampled_from(sorted(validate.FS_KEYS) + ["x"]), VALUES,
                                  max_size=4),
    "network": st.dictionaries(st.sampled_from(sorted(validate.NET_KEYS) + ["x"]), VALUES,
                               max_size=4),
    "scope": st.dictionaries(st.sampled_from(sorted(validate.SCOPE_KEYS) + ["x"]), VALUES,
                             max_size=3),
    "env": st.dictionaries(st.sampled_from(sorted(validate.ENV_KEYS) + ["x"]), VALUES,
                           max_size=3),
})
LL_ACCESS = st.lists(st.one_of(
    st.sampled_from(list(compat.FS_RIGHTS) + list(compat.NET_RIGHTS) + list(compat.SCOPES)
                    + ["abi.all", "abi.read_execute", "abi.read_write", "v1.all", "v5.read_write",
                       "v4.all", "v6.all", "v0.all", "v99.all", "v01.all", "abi.nope", "nope"]),
    SCALARS), max_size=4)
LL_PARENT = st.lists(st.one_of(st.sampled_from(
    [f"{TREE}/data", f"{TREE}/dir1", "/", ".", "${a}", "${a}/x", "${b}${a}", "$${a}", "${",
     "${1}", "", "a\0b", f"{TREE}/missing"]), SCALARS), max_size=4)
LLCONFIG = st.fixed_dictionaries({}, optional={
    "abi": st.one_of(st.integers(-3, 12), SCALARS),
    "variable": st.lists(st.fixed_dictionaries({}, optional={
        "name": st.one_of(st.sampled_from(["a", "b", "1x", "", "a-b"]), SCALARS),
        "literal": st.one_of(st.lists(st.sampled_from(["/x", f"{TREE}/data", "", "\0"]),
                                      max_size=3), SCALARS)}), max_size=3),
    "ruleset": st.one_of(st.lists(st.fixed_dictionaries({}, optional={
        "handled_access_fs": LL_ACCESS, "handled_access_net": LL_ACCESS,
        "scoped": LL_ACCESS, "x": SCALARS}), max_size=2), VALUES),
    "path_beneath": st.one_of(st.lists(st.fixed_dictionaries({}, optional={
        "allowed_access": LL_ACCESS, "parent": LL_PARENT, "x": SCALARS}), max_size=3), VALUES),
    "net_port": st.one_of(st.lists(st.fixed_dictionaries({}, optional={
        "allowed_access": LL_ACCESS,
        "port": st.lists(st.one_of(st.integers(-2, 70000), SCALARS), max_size=3)}),
        max_size=2), VALUES),
    "description": SCALARS,
})


def _camel(doc):
    """The JSON spelling of a landlockconfig document."""
    if isinstance(doc, dict):
        return {landlockconfig._CAMEL.get(k, k): _camel(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_camel(v) for v in doc]
    return doc


def _assert_clean(path):
    r = load_clean(path)
    if not isinstance(r, ProfileError):
        # a profile that loads must also resolve cleanly (or say why not)
        try:
            r.ruleset.resolve(compat_mode="best-effort")
        except ProfileError:
            raise
        except Exception as e:  # PathError for a required missing path is fine
            from landwrap.engine.errors import LandwrapError

            assert isinstance(e, LandwrapError), repr(e)
    return r


@settings(max_examples=examples(600), **SETTINGS)
@given(st.one_of(SHAPED, st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5)),
       st.sampled_from(["toml", "json"]))
def test_chaos_documents_fail_cleanly(doc, fmt):
    _assert_clean(serialize(doc, fmt))


@settings(max_examples=examples(400), **SETTINGS)
@given(LLCONFIG, st.sampled_from(["toml", "json"]))
def test_landlockconfig_documents_fail_cleanly_or_load_completely(doc, fmt):
    path = serialize(_camel(doc) if fmt == "json" else doc, fmt)
    r = _assert_clean(path)
    if isinstance(r, ProfileError):
        return
    rs = r.ruleset
    # every literal parent that exists is in the ruleset with its rights
    for pb in doc.get("path_beneath", []):
        bits, _ = landlockconfig._access(landlockconfig._Doc(path, doc), "fs", pb["allowed_access"],
                                   doc.get("abi"), "path_beneath", 0, "allowed_access")
        for raw in pb["parent"]:
            if "$" in raw:
                continue
            p = os.path.normpath(os.path.abspath(raw)) if raw != "/" else "/"
            if rs.fs:
                assert any(x.path == p and x.access & bits == bits for x in rs.paths), p
    for np_ in doc.get("net_port", []):
        if rs.net:
            for port in np_["port"]:
                assert any(lo <= port <= hi for lo, hi, _, _ in rs.ports), port


# one weird string in every position a string can take ----------------------

POSITIONS = [
    lambda w: {"filesystem": {"ro": [w]}},
    lambda w: {"filesystem": {"rw": {"path": w, "required": False}}},
    lambda w: {"filesystem": {"rule": [{"path": w, "access": ["read_file"]}]}},
    lambda w: {"filesystem": {"rule": [{"path": "/", "access": [w]}]}},
    lambda w: {"vars": {"X": w}, "filesystem": {"rox": ["/${X}"]}},
    lambda w: {"vars": {w: "/x"}},
    lambda w: {"extends": [w]},
    lambda w: {"network": {"connect_tcp": [w]}},
    lambda w: {"scope": {w: True}},
    lambda w: {"env": {"pass": [w]}},
    lambda w: {"env": {"set": {"A": w}}},
    lambda w: {"env": {"set": {w: "v"}}},
    lambda w: {"description": w, "compat": w},
    lambda w: {"ruleset": [{"handled_access_fs": [w]}]},
    lambda w: {"path_beneath": [{"allowed_access": ["read_file"], "parent": [w]}]},
    lambda w: {"variable": [{"name": "a", "literal": [w]}],
               "path_beneath": [{"allowed_access": ["read_file"], "parent": ["${a}"]}]},
    lambda w: {"net_port": [{"allowed_access": ["bind_tcp"], "port": [w]}]},
]
ANY_TEXT = st.text(st.characters(min_codepoint=0, blacklist_characters="*?["), max_size=12)


@settings(max_examples=examples(500), **SETTINGS)
@given(st.sampled_from(range(len(POSITIONS))), st.one_of(st.sampled_from(WEIRD), ANY_TEXT),
       st.sampled_from(["toml", "json"]))
def test_weird_strings_everywhere_fail_cleanly(pos, weird, fmt):
    doc = POSITIONS[pos](weird)
    if fmt == "toml" and any(0xD800 <= ord(c) <= 0xDFFF for c in weird):
        fmt = "json"  # TOML cannot carry a lone surrogate; JSON can
    r = _assert_clean(serialize(_camel(doc) if fmt == "json" else doc, fmt))
    if not isinstance(r, ProfileError):
        # what the launcher does with the environment must work too
        from landwrap.engine import launcher, spawn

        spawn.encode_env(launcher.build_env(r.env_clean, r.env_settings(), base=ENV))


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, pos, byte in ops:
        if not b:
            break
        pos %= len(b) + 1
        if kind == 0:
            b.insert(pos, byte)
        elif kind == 1 and pos < len(b):
            b[pos] = byte
        elif kind == 2:
            del b[pos:]
    return bytes(b)


SEED = (f'description = "seed"\nextends = ["default"]\n[vars]\nD = "${{HOME}}/docs"\n'
        f'[filesystem]\nro = ["{TREE}/data", "${{D}}"]\nrw = ["~/x"]\n'
        f'[[filesystem.rule]]\npath = "{TREE}/dir1"\naccess = ["read_file", "make_reg"]\n'
        f'[network]\nconnect_tcp = [443, "8000-8010"]\n[scope]\nsignal = false\n'
        f'[env]\npass = ["TERM"]\nset = {{ A = "b" }}\n').encode()
LL_SEED = (f'abi = 5\n[[variable]]\nname = "a"\nliteral = ["{TREE}/data"]\n'
           f'[[ruleset]]\nhandled_access_fs = ["abi.all"]\nhandled_access_net = ["bind_tcp"]\n'
           f'[[path_beneath]]\nallowed_access = ["abi.read_execute"]\nparent = ["${{a}}", "."]\n'
           f'[[net_port]]\nallowed_access = ["bind_tcp"]\nport = [80, 443]\n').encode()


@settings(max_examples=examples(400), **SETTINGS)
@given(st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from([SEED, LL_SEED, json.dumps({"filesystem": {"ro": ["/"]}}).encode()]),
              st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6),
                                 st.sampled_from([0, 0xFF, 0xC3, 0x80, 0x22, 0x5B, 0x0A, 0x24,
                                                  0x7B, 0x2A, 0x5C])),
                       min_size=1, max_size=6)).map(lambda t: _mutate(*t))),
    st.sampled_from(["fuzz.toml", "fuzz.json"]))
def test_raw_bytes_fail_cleanly(data, name):
    _assert_clean(write(name, data))


def test_huge_and_deep_documents_fail_cleanly():
    """Size limits and nesting: a clean error or a complete load, quickly."""
    big = [f"{TREE}/data/{i}" for i in range(validate.MAX_ITEMS + 1)]
    r = load_clean(write("big.toml", toml_doc({"filesystem": {"ro": big}})))
    assert isinstance(r, ProfileError) and "too many" in str(r)
    ok = load_clean(write("big.toml", toml_doc({"filesystem": {"ro": big[:20000]}})))
    assert len(ok.ruleset.paths) == 20000
    deep = "[" * 50000 + "]" * 50000
    for name, text in (("deep.json", '{"a": ' + deep + "}"), ("deep.toml", "a = " + deep),
                       ("hugeint.json", '{"abi": ' + "9" * 5000 + "}"),
                       ("hugeint.toml", "abi = " + "9" * 5000)):
        r = load_clean(write(name, text))
        assert isinstance(r, ProfileError), name


# extends graphs ----------------------------------------------------------

@st.composite
def extends_graphs(draw):
    n = draw(st.integers(1, 40))
    if draw(st.booleans()):  # a chain, possibly longer than the limit
        edges = [[("name", i + 1)] if i + 1 < n else [] for i in range(n)]
        if draw(st.booleans()):
            edges[-1] = [("path", draw(st.integers(0, n - 1)))]
    else:
        ref = st.one_of(st.tuples(st.just("name"), st.integers(0, n - 1)),
                        st.tuples(st.just("path"), st.integers(0, n - 1)),
                        st.just(("missing", 0)))
        edges = [draw(st.lists(ref, max_size=3)) for _ in range(n)]
    return edges


def _graph_expect(edges):
    """(reachable, problem) where problem is None, 'missing', 'cycle' or 'deep'."""
    problems = set()
    reach = set()
    depth_of = {}

    def visit(i, stack):
        if i in stack:
            problems.add("cycle")
            return 0
        if len(stack) >= profile.MAX_DEPTH:
            problems.add("deep")
            return 0
        reach.add(i)
        if i in depth_of:
            return depth_of[i]
        d = 0
        for kind, j in edges[i]:
            if kind == "missing":
                problems.add("missing")
                continue
            d = max(d, 1 + visit(j, stack + [i]))
        depth_of[i] = d
        return d

    visit(0, [])
    return reach, problems


@settings(max_examples=examples(200), **SETTINGS)
@given(extends_graphs())
def test_extends_graphs(edges):
    for i, out in enumerate(edges):
        ext = [f"p{j}" if k == "name" else f"./p{j}.toml" if k == "path" else "no-such-profile"
               for k, j in out]
        with open(os.path.join(GRAPH, f"p{i}.toml"), "w") as f:
            f.write(toml_doc({"extends": ext, "filesystem": {"ro": [f"{TREE}/marker/{i}"]}}))
    reach, problems = _graph_expect(edges)
    r = load_clean(os.path.join(GRAPH, "p0.toml"), dirs=[GRAPH])
    if isinstance(r, ProfileError):
        assert problems, f"unexpected error: {r}"
        assert ("cycle" in str(r) and "cycle" in problems or "deeper" in str(r)
                and "deep" in problems or "no profile named" in str(r)
                and "missing" in problems), (str(r), problems)
        return
    assert not problems, problems
    have = {p.path for p in r.ruleset.paths}
    for i in reach:
        assert f"{TREE}/marker/{i}" in have
        assert os.path.join(GRAPH, f"p{i}.toml") in r.sources


def test_diamond_extends_load_each_file_once(monkeypatch):
    """p_i extends p_{i+1} twice (by name and by path): 2**25 visits unless
    each file is applied once."""
    n = 25
    for i in range(n):
        ext = [f"q{i + 1}", f"./q{i + 1}.toml"] if i + 1 < n else []
        with open(os.path.join(GRAPH, f"q{i}.toml"), "w") as f:
            f.write(toml_doc({"extends": ext, "filesystem": {"ro": [f"{TREE}/marker/{i}"]}}))
    calls = []
    real = parse.load_document

    def counting(path):
        calls.append(path)
        assert len(calls) < 10 * n, "extends graph walked more than once per file"
        return real(path)

    monkeypatch.setattr(profile, "load_document", counting)
    r = profile.load([os.path.join(GRAPH, "q0.toml")], dirs=[GRAPH], environ=ENV)
    assert {p.path for p in r.ruleset.paths} == {f"{TREE}/marker/{i}" for i in range(n)}


# through the CLI ---------------------------------------------------------

def _cli(*args):
    env = dict(os.environ, **ENV, LANDWRAP_CACHE_DIR=os.path.join(TREE, "cache"))
    return subprocess.run([sys.executable, "-m", "landwrap", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def _one_clean_line(stderr):
    lines = stderr.splitlines()
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert 1 <= len(lines) <= 2, stderr
    assert lines[0].startswith("landwrap: "), stderr
    assert len(lines) == 1 or lines[1].startswith("Hint: "), stderr


@settings(max_examples=examples(30), **SETTINGS)
@given(st.one_of(SHAPED, LLCONFIG, st.binary(max_size=60).map(lambda b: b"[filesystem]\n" + b)),
       st.sampled_from(["toml", "json"]))
def test_cli_sample_exits_125_with_one_line(doc, fmt):
    if isinstance(doc, bytes):
        path = write("cli.toml", doc)
    else:
            path = serialize(_camel(doc) if fmt == "json" else doc, fmt)
    r = _cli("run", "--dry-run", "-p", path, "--", "true")
    assert r.returncode in (0, 125), (r.returncode, r.stderr)
    if r.returncode == 125:
        _one_clean_line(r.stderr)
    c = _cli("profile", "check", path)
    assert c.returncode in (0, 1), c.stderr
    assert "Traceback" not in c.stdout + c.stderr
    assert (c.returncode == 0) == (c.stdout.strip() == f"{path}: ok"), c.stdout

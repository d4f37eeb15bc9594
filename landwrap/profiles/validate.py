"""validate.py: one profile document -> rules added to a :class:`Profile`.

The key sets of each table (the schema), the checks of every key and value
(errors are :class:`ProfileError` with ``FILE:LINE: key: message``), glob
expansion and the ``${CWD}`` safety rule.  Input is bounded while it is
expanded (globs, rule counts).  Never follows ``extends`` (profile.py does)
and never enforces anything.
"""

from __future__ import annotations

import os

from ..engine import compat
from ..engine.errors import LandwrapError, ProfileError
from ..engine.safetext import printable
from ..engine.ruleset import Ruleset, parse_ports, plain_paths
from .lookup import SUFFIX, SYSTEM_BIN_DIRS
from .parse import PlainPaths, line_of, load_document
from .variables import BUILTIN_VARS, builtin_vars, expand, references, UnsetVariable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any, NoReturn, TypeVar

    T = TypeVar("T")

MAX_ITEMS = 100_000
MAX_MATCHES = 100_000   # paths one glob may match
MAX_RULES = 200_000     # path rules of one sandbox, all files together
TOP_KEYS = {"description", "extends", "compat", "abi", "filesystem", "network",
            "scope", "env", "vars", "programs"}
FS_KEYS = {"ro", "rox", "rw", "rwx", "rule", "unrestricted", "hide", "private_tmp"}
RULE_KEYS = {"path", "access", "required", "unsafe_cwd", "create"}
ENTRY_KEYS = {"path", "required", "unsafe_cwd", "create"}
NET_KEYS = {"bind_tcp", "connect_tcp", "bind_udp", "connect_udp", "unrestricted"}
NET_RIGHT = {"bind_tcp": "bind_tcp", "connect_tcp": "connect_tcp",
             "bind_udp": "bind_udp", "connect_udp": "connect_send_udp"}
#: The profile key (and API argument) of each network right.
NET_KEY = {right: key for key, right in NET_RIGHT.items()}
SCOPE_KEYS = {"signal", "abstract_unix_socket"}
ENV_KEYS = {"clean", "pass", "set"}


class Ctx:
    """Where we are, for error messages, and the variables in scope."""

    def __init__(self, path: str, variables: dict[str, str]) -> None:
        self.path = path
        self.vars = variables

    def fail(self, key: str, message: str, table: str | None = None, index: int | None = None,
             line_key: str | None = None, line: int | None = None) -> NoReturn:
        if line is None:
            line = line_of(self.path, table, line_key or key.rsplit(".", 1)[-1], index)
        raise ProfileError(printable(message), self.path, line, printable(key))


def type_name(v: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def _expect(ctx: Ctx, key: str, value: object, typ: type[T], table: str | None = None,
            index: int | None = None) -> T:
    if typ is int and isinstance(value, bool) or not isinstance(value, typ):
        want = {str: "a string", bool: "a boolean", int: "an integer", list: "an array",
                dict: "a table"}[typ]
        ctx.fail(key, f"expected {want}, got {type_name(value)}", table, index)
    return value


def as_list(ctx: Ctx, key: str, value: object, table: str | None = None,
            index: int | None = None) -> list[Any]:
    if isinstance(value, (str, int, dict)) and not isinstance(value, bool):
        value = [value]
    value = _expect(ctx, key, value, list, table, index)
    if len(value) > MAX_ITEMS:
        ctx.fail(key, f"too many entries ({len(value)}; at most {MAX_ITEMS})", table, index)
    return value


def _unknown(ctx: Ctx, table: str | None, got: dict[str, Any], known: set[str],
             index: int | None = None) -> None:
    for k in got:
        if k not in known:
            where = f"{table}.{k}" if table else k
            # a misspelt table ([netwrok]) is found by its header line
            line = line_of(ctx.path, where, None) if isinstance(got[k], dict) else None
            what = "unknown table" if isinstance(got[k], dict) else "unknown key"
            ctx.fail(where, f"{what} (expected one of: {', '.join(sorted(known))})",
                     table, index, line_key=k, line=line)


def table_of(key: str) -> tuple[str | None, str, int | None]:
    """(table, key, index) for :func:`line_of` from a rule origin's key:
    ``filesystem.ro`` -> ("filesystem", "ro", None), ``filesystem.rule[2]``
    -> ("filesystem.rule", "path", 2)."""
    head, _, last = key.rpartition(".")
    if last.endswith("]") and "[" in last:
        name, _, idx = last[:-1].partition("[")
        try:
            return (f"{head}.{name}" if head else name, "path", int(idx))
        except ValueError:
            pass
    return (head or None, last, None)


#: What stands in for a broken [[filesystem.rule]] while `profile check`
#: looks for more errors (indexes of the others stay the same).
_PLACEHOLDER_RULE = {"path": "/nonexistent", "access": ["read_file"]}


def _drop(doc: dict[str, Any], key: str) -> bool:
    """Take the key an error named (dotted, ``rule[N]`` for an array
    entry) out of *doc*; False when it is not there."""
    node = doc
    parts = key.split(".")
    for i, part in enumerate(parts):
        name, idx = part, None
        if part.endswith("]") and "[" in part:
            name, _, n = part[:-1].partition("[")
            try:
                idx = int(n)
            except ValueError:
                return False
        if not isinstance(node, dict) or name not in node:
            return False
        if idx is not None:
            entries = node[name]
            if isinstance(entries, list) and 0 <= idx < len(entries):
                if entries[idx] == _PLACEHOLDER_RULE:
                    return False
                entries[idx] = dict(_PLACEHOLDER_RULE)
            else:
                del node[name]
            return True
        if i == len(parts) - 1:
            del node[name]
            return True
        node = node[name]
    return False


def more_errors(path: str, first: ProfileError, limit: int = 100) -> list[ProfileError]:
    """The errors of the file at *path* after *first* (`profile check`
    reports them all): the key each error names is left out and the file
    validated again, up to *limit* errors."""
    import copy  # only on the error path (profile check)

    try:
        doc = copy.deepcopy(load_document(path))
    except ProfileError:
        return []
    out: list[ProfileError] = []
    err = first
    for _ in range(limit):
        if not err.key or not _drop(doc, err.key):
            break
        try:
            apply_document(Profile(), doc, path)
        except ProfileError as e:
            if e.file != path:
                break
            out.append(e)
            err = e
            continue
        break
    return out


def _path(ctx: Ctx, key: str, raw: object, table: str | None = None,
          index: int | None = None) -> str | None:
    if (type(raw) is str and raw[:1] == "/" and "$" not in raw and "\0" not in raw
            and "/." not in raw and "//" not in raw and "[" not in raw):
        return raw.rstrip("/") or "/" if raw[-1] == "/" else raw  # the common case
    if not isinstance(raw, str):
        ctx.fail(key, f"expected a path string, got {type_name(raw)}", table, index)
    if "\0" in raw:
        ctx.fail(key, "path contains a NUL byte", table, index)
    try:
        p = expand(raw, ctx.vars)
        literal = False
        if _is_glob(p):
            # wildcards from a variable's value (a ${CWD} named "proj*") are
            # that name's characters, never a pattern: the path is taken
            # literally, or the profile's own pattern around it globs with
            # the value escaped
            template = "${HOME}" + raw[1:] if raw == "~" or raw.startswith("~/") else raw
            own = "".join(x for x in references(template) if type(x) is str)
            if not _is_glob(own):
                literal = True
            else:
                p = expand(raw, ctx.vars, _glob_escape)
    except UnsetVariable:
        return None  # ${env:NAME} unset or empty: the rule is skipped
    except KeyError as e:
        ctx.fail(key, f"unknown variable ${{{e.args[0]}}} in {raw!r} (known: "
                 + ", ".join(sorted(ctx.vars)) + ")", table, index)
    except ValueError as e:
        ctx.fail(key, f"{e} in {raw!r}", table, index)
    if not p:
        ctx.fail(key, "empty path", table, index)
    if "\0" in p:  # through a variable
        ctx.fail(key, f"path {p!r} contains a NUL byte", table, index)
    if not p.startswith("/"):
        # relative paths are relative to the profile's directory (whose
        # name, like a variable's value, is never a pattern)
        d = ctx.vars["PROFILE_DIR"]
        if _is_glob(d):
            if literal or not _is_glob(p):
                literal = True
            else:
                d = _glob_escape(d)
        p = os.path.join(d, p)
    p = os.path.normpath(p) if "/./" in p or "/../" in p or p.endswith(("/.", "/..")) \
        else p.rstrip("/") or "/"
    if not literal and "[" in p:
        plain = _unescape(p)  # a pattern of escapes only ("a[*]"): that one name
        if plain is not None:
            return LiteralPath(plain)
    return LiteralPath(p) if literal else p


class LiteralPath(str):
    """A path whose wildcard characters all came from variables' values:
    a name, never a glob pattern (see :func:`_path`)."""
    __slots__ = ()


def _is_glob(p: str) -> bool:
    return type(p) is not LiteralPath and ("*" in p or "?" in p or "[" in p)


def _glob_escape(value: str) -> str:
    """*value* as a glob pattern matching only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in value)


def _unescape(p: str) -> str | None:
    """The one path glob pattern *p* matches when its only wildcards are
    escapes (``[*]``, ``[?]``, ``[[]``, as _glob_escape writes them);
    None when it has a real wildcard."""
    out, i, n = [], 0, len(p)
    while i < n:
        c = p[i]
        if c == "[" and i + 2 < n and p[i + 2] == "]" and p[i + 1] in "*?[":
            out.append(p[i + 1])
            i += 3
        elif c in "*?[":
            return None
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Profile:
    """A resolved profile: the sandbox (``ruleset``) and the environment
    settings, with ``sources`` listing every file used, in order."""

    def __init__(self) -> None:
        self.ruleset = Ruleset()
        #: the command as looked up on PATH by profile.for_command (None: not
        #: looked up, or not found)
        self.program: str | None = None
        self.env_clean = False
        self.env_pass: list[str] = []
        self.env_set: dict[str, str] = {}
        self.description = ""
        self.skipped_globs: list[tuple[str, str]] = []
        #: ${CWD} rules left out by ``unsafe_cwd = "skip"``: (path, origin, why)
        self.skipped_cwd: list[tuple[str, str, str]] = []
        self.unscoped = 0  # scopes some profile lifted (scope.X = false)
        self.applied: set[str] = set()  # real paths of the files applied (extends dedup)
        #: ${CWD} rules left out because the directory is /, $HOME or above
        #: it: (ProfileError, expanded path); `landwrap run` refuses them in
        #: strict mode and warns in best-effort.
        self.cwd_refused: list[ProfileError] = []
        #: Install prefixes of the command (``${exe_prefix}``): as found on
        #: PATH and, when that is a symlink, of its real path.
        self.exe_prefixes: list[str] = []
        #: ``create = true`` rules: [(path, origin)] that `landwrap run`
        #: creates (0700, owned by the user the command runs as) first.
        self.create_dirs: list[tuple[str, str]] = []
        #: ``private_tmp = true``: `landwrap run` gives the command a fresh
        #: TMPDIR of its own, removed when it ends.
        self.private_tmp = False
        #: The profile names (or files) asked for, for messages.
        self.names: list[str] = []
        #: Why this profile was chosen (automatic selection), for reports.
        self.why = ""

    @property
    def sources(self) -> list[str]:
        return self.ruleset.sources

    def env_settings(self) -> list[str]:
        """The [env] table as --env style settings."""
        return list(self.env_pass) + [f"{k}={v}" for k, v in self.env_set.items()]


def apply_document(prof: Profile, doc: dict[str, Any], path: str,
                   environ: Mapping[str, str] | None = None) -> None:
    """Validate *doc* and add its allowances to *prof* (not its extends),
    table by table, in the order the errors have always been reported."""
    pdir = os.path.dirname(os.path.abspath(path))
    variables = builtin_vars(pdir, environ)
    ctx = Ctx(path, variables)
    _unknown(ctx, None, doc, TOP_KEYS)
    _apply_vars(ctx, doc, variables)
    _apply_top(prof, ctx, doc, path)
    fs = _table(ctx, doc, "filesystem", FS_KEYS)
    _apply_access_lists(prof, ctx, fs, path)
    _apply_rules(prof, ctx, fs)
    _apply_hide(prof, ctx, fs, path)
    if _switch(ctx, fs, "filesystem", "private_tmp"):
        prof.private_tmp = True
    if _switch(ctx, fs, "filesystem", "unrestricted"):
        prof.ruleset.fs = False
    net = _table(ctx, doc, "network", NET_KEYS)
    _apply_ports(prof, ctx, net, path)
    if _switch(ctx, net, "network", "unrestricted"):
        prof.ruleset.net = False
    _apply_scope(prof, ctx, _table(ctx, doc, "scope", SCOPE_KEYS))
    env = _table(ctx, doc, "env", ENV_KEYS)
    if _switch(ctx, env, "env", "clean"):
        prof.env_clean = True
    _apply_env(prof, ctx, env, variables)


def _table(ctx: Ctx, doc: dict[str, Any], name: str, known: set[str]) -> dict[str, Any]:
    """The table *name* of *doc* (empty when absent), checked for unknown keys."""
    table: dict[str, Any] = doc.get(name, {})
    _expect(ctx, name, table, dict, name)
    _unknown(ctx, name, table, known)
    return table


def _switch(ctx: Ctx, table: dict[str, Any], name: str, key: str) -> bool:
    """Whether the boolean *key* of table *name* is present and true."""
    return key in table and _expect(ctx, f"{name}.{key}", table[key], bool, name)


def _apply_vars(ctx: Ctx, doc: dict[str, Any], variables: dict[str, str]) -> None:
    """[vars]: each value expanded with the variables defined before it."""
    raw_vars = doc.get("vars", {})
    _expect(ctx, "vars", raw_vars, dict, "vars")
    for name, value in raw_vars.items():
        key = f"vars.{name}"
        if name in BUILTIN_VARS:
            ctx.fail(key, f"cannot redefine the built-in variable ${{{name}}}", "vars")
        if not name.replace("_", "a").isalnum():
            ctx.fail(key, "variable names are letters, digits and _", "vars")
        _expect(ctx, key, value, str, "vars")
        try:
            variables[name] = expand(value, variables)
        except UnsetVariable as e:
            ctx.fail(key, f"${{{e.args[0]}}} is unset here: use ${{env:...}} in the paths "
                     "themselves (a rule naming an unset one is skipped)", "vars")
        except KeyError as e:
            ctx.fail(key, f"unknown variable ${{{e.args[0]}}}", "vars")
        except ValueError as e:
            ctx.fail(key, str(e), "vars")


def _apply_top(prof: Profile, ctx: Ctx, doc: dict[str, Any], path: str) -> None:
    """description, programs, compat and abi."""
    rs = prof.ruleset
    if "description" in doc:
        prof.description = _expect(ctx, "description", doc["description"], str)
    if "programs" in doc:
        programs(doc, path)
    if "compat" in doc:
        c = _expect(ctx, "compat", doc["compat"], str)
        if c not in compat.MODES:
            ctx.fail("compat", f"expected 'strict' or 'best-effort', got {c!r}")
        rs.compat = c
    if "abi" in doc:
        a = _expect(ctx, "abi", doc["abi"], int)
        if not compat.known_abi(a):
            ctx.fail("abi", f"expected an ABI from 1 to {compat.LATEST_ABI}, got {a}")
        rs.abi = a


def _apply_access_lists(prof: Profile, ctx: Ctx, fs: dict[str, Any], path: str) -> None:
    """filesystem.ro/rox/rw/rwx: paths, globs and entry tables."""
    rs = prof.ruleset
    for access in ("ro", "rox", "rw", "rwx"):
        key = f"filesystem.{access}"
        items = as_list(ctx, key, fs.get(access, []), "filesystem")
        # (a list found plain when it was cached is not scanned again)
        joined = ("\0".join(items) if type(items) is PlainPaths
                  else plain_paths(items) if len(items) > 1 else None)
        if joined:
            # absolute, normal, plain paths without variables or wildcards
            # (a generated profile's long list): what the loop below would
            # keep of each is the path itself
            if rs.path_count + len(items) > MAX_RULES:
                ctx.fail(key, f"more than {MAX_RULES} path rules in all", "filesystem")
            rs._add_group(items, access, f"{path}: {key}", False, joined=joined)
            continue
        plain = []  # optional, glob-free paths: added in one go
        for item in [v for it in items
                     for v in (_variants(prof, it) if type(it) is str else [it])]:
            required = False
            if type(item) is str:
                p = _path(ctx, key, item, "filesystem")
                if p is None or _cwd_refused(prof, ctx, key, item, p, "filesystem", None):
                    continue
                if not _is_glob(p):
                    plain.append(str(p))  # (a LiteralPath: a plain str from here)
                    continue
                _allow(prof, ctx, key, p, access, False, "filesystem", None)
                continue
            skip_unsafe = False
            if isinstance(item, dict):
                _unknown(ctx, "filesystem", item, ENTRY_KEYS)
                if "path" not in item:
                    ctx.fail(key, "an entry table needs a 'path'", "filesystem")
                required = _expect(ctx, key, item.get("required", False), bool, "filesystem")
                skip_unsafe = _unsafe_cwd(ctx, key, item, "filesystem", None)
                create = _expect(ctx, key, item.get("create", False), bool, "filesystem")
                item = item["path"]
            else:
                create = False
            p = _path(ctx, key, item, "filesystem")
            if p is None or _cwd_refused(prof, ctx, key, item, p, "filesystem", None,
                                         skip_unsafe):
                continue
            if create:
                _create(prof, ctx, key, p, "filesystem", None)
            _allow(prof, ctx, key, p, access, required, "filesystem", None)
        if rs.path_count + len(plain) > MAX_RULES:
            ctx.fail(key, f"more than {MAX_RULES} path rules in all", "filesystem")
        rs.allow_paths(plain, access, origin=f"{path}: {key}", required=False)


def _apply_rules(prof: Profile, ctx: Ctx, fs: dict[str, Any]) -> None:
    """[[filesystem.rule]]: a path with exact rights."""
    rules = fs.get("rule", [])
    if isinstance(rules, dict):
        rules = [rules]
    rules = as_list(ctx, "filesystem.rule", rules, "filesystem")
    for i, rule in enumerate(rules):
        key = f"filesystem.rule[{i}]"
        table = "filesystem.rule"
        _expect(ctx, key, rule, dict, table, i)
        _unknown(ctx, table, rule, RULE_KEYS, i)
        if "path" not in rule or "access" not in rule:
            ctx.fail(key, "a rule needs 'path' and 'access'", table, i)
        p = _path(ctx, key + ".path", rule["path"], table, i)
        if p is None or _cwd_refused(prof, ctx, key + ".path", rule["path"], p, table, i,
                                     _unsafe_cwd(ctx, key, rule, table, i)):
            continue
        if _expect(ctx, key + ".create", rule.get("create", False), bool, table, i):
            _create(prof, ctx, key + ".create", p, table, i)
        acc = as_list(ctx, key + ".access", rule["access"], table, i)
        if not acc:
            ctx.fail(key + ".access", "empty access list", table, i)
        for a in acc:
            if not isinstance(a, str) or (a not in compat.FS_RIGHTS and a not in compat.ACCESS_SETS):
                ctx.fail(key + ".access", f"unknown right {a!r} (known: "
                         + ", ".join(list(compat.FS_RIGHTS) + list(compat.ACCESS_SETS)) + ")",
                         table, i)
        names = [n for a in acc for n in (compat.ACCESS_SETS.get(a) or (a,))]
        exact = [a for a in acc if a in compat.FS_RIGHTS]
        required = _expect(ctx, key + ".required", rule.get("required", False), bool, table, i)
        bits = compat.bits(compat.FS_RIGHTS, names)
        _allow(prof, ctx, key, p, bits, required, table, i,
               exact=compat.bits(compat.FS_RIGHTS, exact))


def _apply_hide(prof: Profile, ctx: Ctx, fs: dict[str, Any], path: str) -> None:
    """filesystem.hide: paths (and globs) taken out of broader grants."""
    listed: dict[str, list[str]] = {}   # /etc, listed once for /etc/shadow.*, /etc/gshadow.*...
    for item in as_list(ctx, "filesystem.hide", fs.get("hide", []), "filesystem"):
        p = _path(ctx, "filesystem.hide", item, "filesystem")
        if p is None:
            continue
        if p == "/":
            ctx.fail("filesystem.hide", "cannot hide / (grant less instead)", "filesystem")
        found = [str(p)]  # even when nothing matches: its directory is carved, so
        if _is_glob(p):  # a matching file created later is not granted either
            _glob_into(found, ctx, "filesystem.hide", p, "filesystem", None, listed)
        for m in found:
            prof.ruleset.hide(m, origin=f"{path}: filesystem.hide")


def _apply_ports(prof: Profile, ctx: Ctx, net: dict[str, Any], path: str) -> None:
    """network.bind_tcp/connect_tcp/bind_udp/connect_udp: ports and ranges."""
    for k, right in NET_RIGHT.items():
        key = f"network.{k}"
        for spec in as_list(ctx, key, net.get(k, []), "network"):
            if isinstance(spec, bool) or not isinstance(spec, (int, str)):
                ctx.fail(key, f"expected a port or \"LOW-HIGH\", got {type_name(spec)}", "network")
            try:
                parse_ports(spec)
            except LandwrapError as e:
                ctx.fail(key, e.message, "network")
            prof.ruleset.allow_port(spec, right, origin=f"{path}: {key}",
                                       required=right in ("bind_tcp", "connect_tcp"))


def _apply_scope(prof: Profile, ctx: Ctx, scope: dict[str, Any]) -> None:
    """[scope]: true requires a scope, false lifts it."""
    for k in SCOPE_KEYS:
        if k in scope:
            bit = compat.SCOPES[k][0]
            if _expect(ctx, f"scope.{k}", scope[k], bool, "scope"):
                prof.ruleset.require_scopes(bit)
            else:
                prof.unscoped |= bit


def _apply_env(prof: Profile, ctx: Ctx, env: dict[str, Any],
               variables: dict[str, str]) -> None:
    """env.pass and env.set (env.clean is a switch)."""
    for name in as_list(ctx, "env.pass", env.get("pass", []), "env"):
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            ctx.fail("env.pass", f"bad variable name {name!r}", "env")
        if name not in prof.env_pass:
            prof.env_pass.append(name)
    sets = env.get("set", {})
    _expect(ctx, "env.set", sets, dict, "env")
    for name, value in sets.items():
        if not name or "=" in name or "\0" in name:
            ctx.fail("env.set", f"bad variable name {name!r}", "env")
        _expect(ctx, f"env.set.{name}", value, str, "env")
        if "\0" in value:
            ctx.fail(f"env.set.{name}", "the value contains a NUL byte", "env")
        try:
            prof.env_set[name] = expand(value, variables) if "$" in value else value
        except UnsetVariable:
            continue  # ${env:NAME} unset or empty: the setting is skipped
        except (KeyError, ValueError) as e:
            ctx.fail(f"env.set.{name}", f"bad value: {e}", "env")


def _iglob(p: str, listed: dict[str, list[str]] | None = None) -> Iterator[str]:
    """The paths glob pattern *p* matches.  A pattern whose wildcards (``*``
    and ``?`` only, not ``**``) are all in its last component -- ``/etc/shadow*``, the
    default profile's hidden secrets -- is matched with one listdir, without
    importing glob (glob, re, enum and contextlib cost ~14 ms of every run's
    start); anything else goes to glob.  *listed*: the directories listed
    so far (by the caller's other patterns), by path."""
    parent, _, last = p.rpartition("/")
    if "[" in p or "**" in last or _is_glob(parent) or not last:
        import glob  # only for richer patterns: its imports cost start-up time

        return glob.iglob(_collapse_globstars(p), recursive=True)
    names = None if listed is None else listed.get(parent or "/")
    if names is None:
        try:
            names = os.listdir(parent or "/")
        except OSError:
            names = []
        if listed is not None:
            listed[parent or "/"] = names
    # the pattern's literal start first: /etc/shadow.* turns most of /etc
    # away with a startswith each (0.15 ms of every run's start)
    head = last[:min((i for i in (last.find("*"), last.find("?")) if i >= 0), default=len(last))]
    return (f"{parent}/{n}" for n in names
            if n.startswith(head) and (n[0] != "." or last[0] == ".") and _wild_match(last, n))


def _wild_match(pattern: str, name: str) -> bool:
    """fnmatch's answer for a pattern of literal characters, ``*`` and
    ``?`` (no ``[...]``), without regular expressions."""
    p = n = 0
    star, mark = -1, 0
    while n < len(name):
        # a * in the pattern is a wildcard even against a * in the name
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, n
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", name[n]):
            p += 1
            n += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            n = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _glob_into(found: list[str], ctx: Ctx, key: str, p: str, table: str | None,
               index: int | None, listed: dict[str, list[str]] | None = None) -> None:
    """Append what glob pattern *p* matches to *found*: a one-line error
    when *found* grows beyond MAX_MATCHES paths, or when the pattern walks
    a tree too deep for glob's recursion (one a sandbox left, say)."""
    try:
        for m in _iglob(p, listed):
            found.append(m)
            if len(found) > MAX_MATCHES:
                ctx.fail(key, f"{p!r} matches more than {MAX_MATCHES} paths", table, index)
    except RecursionError:  # glob's ** recurses once per directory level
        ctx.fail(key, f"{p!r}: a directory tree it walks is too deep to match "
                 "(about a thousand levels)", table, index)


def _collapse_globstars(p: str) -> str:
    """``/**/**/`` matches what ``/**/`` matches, once; repeated, it makes
    glob walk the tree once per extra ``**`` and yield each match again."""
    while "/**/**" in p:
        p = p.replace("/**/**", "/**")
    return p


def _allow(prof: Profile, ctx: Ctx, key: str, p: str, access: str | int, required: bool,
           table: str | None, index: int | None, exact: int = 0) -> None:
    origin = f"{ctx.path}: {key}"
    rs = prof.ruleset
    if _is_glob(p):
        p = _collapse_globstars(p)
        matches: list[str] = []
        _glob_into(matches, ctx, key, p, table, index)
        matches = sorted(set(matches))
        if not matches:
            if required:
                ctx.fail(key, f"{p!r} matches nothing (and the rule is required)", table, index)
            prof.skipped_globs.append((p, origin))
            return
    else:
        matches = [str(p)]
    if rs.path_count + len(matches) > MAX_RULES:
        ctx.fail(key, f"more than {MAX_RULES} path rules in all", table, index)
    for m in matches:
        rs.allow(m, access, origin=origin, required=required, need=exact)


def _create(prof: Profile, ctx: Ctx, key: str, p: str, table: str | None,
            index: int | None) -> None:
    """``create = true``: `landwrap run` makes the directory before
    restricting (see runcmd.create_dirs); globs make no sense there."""
    if _is_glob(p):
        ctx.fail(key, f"create = true needs a plain path, not the glob {p!r}", table, index)
    prof.create_dirs.append((str(p), f"{ctx.path}: {key}"))


def _unsafe_cwd(ctx: Ctx, key: str, item: dict[str, Any], table: str | None,
                index: int | None) -> bool:
    """The ``unsafe_cwd`` key of an entry table: True for "skip"."""
    if "unsafe_cwd" not in item:
        return False
    v = _expect(ctx, key + ".unsafe_cwd", item["unsafe_cwd"], str, table, index)
    if v not in ("refuse", "skip"):
        ctx.fail(key + ".unsafe_cwd", f"expected 'refuse' or 'skip', got {v!r}", table, index)
    return v == "skip"


def _shared_tmp(path: str) -> bool:
    """Whether *path* is a directory everybody may write in, with the sticky
    bit (/tmp, /var/tmp, /dev/shm)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return mode & 0o1002 == 0o1002


def _cwd_refused(prof: Profile, ctx: Ctx, key: str, raw: object, p: str, table: str | None,
                 index: int | None, skip: bool = False) -> bool:
    """A rule using ${CWD} that would grant /, $HOME, a directory above
    $HOME or a shared temporary directory is left out (and recorded):
    started from such a directory, a project-directory profile would open
    the whole home or system, or every user's temporary files.  With
    *skip* (``unsafe_cwd = "skip"``) it is only noted (--dry-run, -v)."""
    if type(raw) is not str or "${CWD}" not in raw:
        return False
    home = os.path.realpath(ctx.vars.get("HOME") or "/")
    real = os.path.realpath(p)
    if real == "/":
        why = "/"
    elif real == home:
        why = "your home directory"
    elif home.startswith(real.rstrip("/") + "/"):
        why = "a directory above your home directory"
    elif _shared_tmp(real):
        # /tmp, /var/tmp, /dev/shm: every user's files, not a project
        why = "a shared temporary directory (writable by all, sticky)"
    else:
        return False
    if skip:
        prof.skipped_cwd.append((p, f"{ctx.path}: {key}",
                                 f"${{CWD}} is {why}: left out (unsafe_cwd = \"skip\"); "
                                 "pass --ro DIR yourself"))
        return True
    line = line_of(ctx.path, table, key.rsplit(".", 1)[-1], index)
    err = ProfileError(
        f"${{CWD}} is {printable(real)}, {why}: refusing to grant it", ctx.path, line,
        printable(key), "run from the project directory, or pass --rw DIR (or --ro DIR) "
        "yourself")
    err.path = real
    prof.cwd_refused.append(err)
    return True


def _variants(prof: Profile, raw: object) -> list[object]:
    """*raw* once per ``${exe_prefix}`` value (none when the command is
    unknown); other entries as they are."""
    if type(raw) is not str or "${exe_prefix}" not in raw:
        return [raw]
    try:
        parts = list(references(raw))
    except ValueError:
        return [raw]  # expanding it reports the error with file, key and line
    if ("exe_prefix",) not in parts:
        return [raw]  # only an escaped $${exe_prefix}: a literal name

    def esc(s: str) -> str:
        return s.replace("$", "$$")

    # a prefix named like a pattern ("venv*") matches only itself
    return ["".join(esc(p) if type(p) is str else
                    esc(_glob_escape(d) if _is_glob(d) else d) if p[0] == "exe_prefix"
                    else "${" + p[0] + "}" for p in parts)
            for d in prof.exe_prefixes]


def programs(doc: dict[str, Any], path: str, name: str | None = None) -> list[str]:
    """The executables a profile is for: its ``programs`` key, or NAME in
    each of :data:`SYSTEM_BIN_DIRS` (NAME from the file name)."""
    if "programs" not in doc:
        if name is None:
            name = os.path.basename(path)
            name = name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name
        return [os.path.join(d, name) for d in SYSTEM_BIN_DIRS]
    ctx = Ctx(path, {})
    out: list[str] = []
    for p in as_list(ctx, "programs", doc["programs"]):
        if type(p) is not str or not p.startswith("/") or "\0" in p:
            ctx.fail("programs", f"expected absolute paths of executables, got {p!r}")
        out.append(p)
    return out

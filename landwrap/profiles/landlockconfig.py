"""profiles/landlockconfig.py: the Landlock project's own configuration format.

"landlockconfig" (https://github.com/landlock-lsm/landlockconfig, read by its
``llconfig`` tool and by island) describes one Landlock domain:

    abi = 5                               # resolves the "abi.*" groups
    [[variable]]                          # name + literal list; ${name} in parents
    [[ruleset]]                           # handled_access_fs / _net, scoped
    [[path_beneath]]                      # allowed_access + parent paths
    [[net_port]]                          # allowed_access + port numbers

JSON spells the keys in camelCase (``pathBeneath``, ``allowedAccess``...).
:func:`apply` reads such a document into a landwrap
:class:`~landwrap.profile.Profile` (so ``-p FILE`` accepts one), and
:func:`export` writes a resolved sandbox back out in that format.

The two models differ in one way: landlockconfig handles exactly the rights
its rulesets and rules name, landwrap handles every right the kernel has.
A right the document leaves unhandled is therefore granted on ``/`` (the
same effect), and a document that handles no filesystem (or network) right
leaves that side unrestricted.  The semantics otherwise follow the
reference implementation: handled rights are completed with every right a
rule uses, paths that do not exist are skipped, relative paths are relative
to the current directory, variables expand to every combination.

Pure: no system calls (paths are checked when the ruleset is resolved).
Errors are :class:`ProfileError` (``FILE:LINE: key: message``).
"""

from __future__ import annotations

import itertools
import os

from .. import __version__
from ..engine import compat
from ..engine.errors import ProfileError
from ..engine.plan import Plan
from ..engine.present import short_access
from ..engine.ruleset import Ruleset
from .parse import json_line, line_of, toml_str
from .validate import Profile
from .variables import references
from ..engine.safetext import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, NoReturn, Tuple, Union

    Sandbox = Union[Plan, Ruleset, Profile]
    #: (real path, rights, rights named explicitly, origin)
    PathEntry = Tuple[str, int, int, str]
    #: (port, right names, required, origin)
    PortEntry = Tuple[int, "list[str]", bool, str]

#: Key names as TOML writes them -> as JSON writes them.
_CAMEL = {
    "path_beneath": "pathBeneath",
    "net_port": "netPort",
    "handled_access_fs": "handledAccessFs",
    "handled_access_net": "handledAccessNet",
    "allowed_access": "allowedAccess",
}
TOP_KEYS = ("abi", "variable", "ruleset", "path_beneath", "net_port")
SECTION_KEYS = {
    "variable": ("name", "literal"),
    "ruleset": ("handled_access_fs", "handled_access_net", "scoped"),
    "path_beneath": ("allowed_access", "parent"),
    "net_port": ("allowed_access", "port"),
}
#: The highest ABI the format's "abi" accepts (an i32 in the reference code).
MAX_ABI = 2**31 - 1
MAX_ITEMS = 100_000
MAX_RULES = 200_000  # path rules of one document, checked before expanding

_FS = compat.FS_RIGHTS
_READ_EXEC = compat.bits(_FS, ("execute", "read_file", "read_dir"))
_EXECUTE = _FS["execute"][0]
_TABLES = {"fs": compat.FS_RIGHTS, "net": compat.NET_RIGHTS, "scope": compat.SCOPES}
#: The first ABI with rights of each kind.
_GROUP_ABI = {kind: compat.first_abi(table) for kind, table in _TABLES.items()}


def group_bits(kind: str, group: str, abi: int) -> int | None:
    """The rights of an access group at *abi*: ``all`` for every kind, and
    ``read_execute`` / ``read_write`` for the filesystem (as the reference
    implementation defines them: read_execute is execute, read_file,
    read_dir and refer; read_write is everything but execute).  None for an
    unknown group."""
    abi = min(abi, compat.LATEST_ABI)
    every = compat.mask(_TABLES[kind], abi)
    if group == "all":
        return every
    if kind != "fs":
        return None
    if group == "read_execute":
        return (_READ_EXEC | compat.REFER) & every
    if group == "read_write":
        return every & ~_EXECUTE
    return None


# reading ---------------------------------------------------------------

class _Doc:
    """One document being read: its spelling (TOML or JSON) and where its
    keys are, for error messages."""

    def __init__(self, path: str, doc: dict[str, Any]) -> None:
        self.path = path
        self.doc = doc
        self.json = path.endswith(".json")
        self._text: str | None = None

    def name(self, key: str) -> str:
        return _CAMEL.get(key, key) if self.json else key

    def where(self, section: str | None = None, index: int | None = None,
              key: str | None = None) -> str:
        out = self.name(section) if section else ""
        if index is not None:
            out += f"[{index}]"
        if key:
            out += ("." if out else "") + self.name(key)
        return out

    def fail(self, message: str, section: str | None = None, index: int | None = None,
             key: str | None = None, hint: str | None = None) -> NoReturn:
        raise ProfileError(printable(message), self.path, self._line(section, index, key),
                           printable(self.where(section, index, key)), hint)

    def _line(self, section: str | None, index: int | None, key: str | None) -> int | None:
        try:
            if not self.json:
                if section is None:
                    return line_of(self.path, None, key)
                return line_of(self.path, section, key, index)
            if self._text is None:
                with open(self.path, encoding="utf-8", errors="replace") as f:
                    self._text = f.read()
            return json_line(self._text, self.name(section) if section else None,
                              index, self.name(key) if key else None)
        except (OSError, ValueError):
            return None


def _type(v: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def _entries(d: _Doc, section: str) -> list[dict[str, Any]]:
    """The array of tables under *section* (empty when absent)."""
    value = d.doc.get(d.name(section))
    if value is None:
        return []
    if not isinstance(value, list):
        d.fail(f"expected an array of tables ([[{d.name(section)}]]), got {_type(value)}",
               None, None, section)
    if not value:
        d.fail("must not be empty", None, None, section)
    if len(value) > MAX_ITEMS:
        d.fail(f"too many entries ({len(value)}; at most {MAX_ITEMS})", None, None, section)
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            d.fail(f"expected a table, got {_type(entry)}", section, i)
        known = SECTION_KEYS[section]
        for k in entry:
            if k not in [d.name(x) for x in known]:
                hint = _spelling_hint(d, k)
                raise ProfileError(
                    "unknown key (expected one of: "
                    + ", ".join(d.name(x) for x in known) + ")",
                    d.path, d._line(section, i, k), printable(f"{d.where(section, i)}.{k}"),
                    hint)
    return value


def _strings(d: _Doc, value: object, section: str | None, index: int | None,
             key: str | None) -> list[str]:
    if not isinstance(value, list):
        d.fail(f"expected an array, got {_type(value)}", section, index, key)
    if not value:
        d.fail("must not be empty", section, index, key)
    if len(value) > MAX_ITEMS:
        d.fail(f"too many entries ({len(value)}; at most {MAX_ITEMS})", section, index, key)
    for v in value:
        if not isinstance(v, str):
            d.fail(f"expected strings, got {_type(v)}", section, index, key)
        if "\0" in v:
            d.fail(f"{v!r} contains a NUL byte", section, index, key)
    return value


def _access(d: _Doc, kind: str, value: object, abi: int | None, section: str | None,
            index: int | None, key: str) -> tuple[int, int]:
    """(bits, explicitly named bits) of an access list."""
    table = _TABLES[kind]
    bits = named = 0
    for item in _strings(d, value, section, index, key):
        if item in table:
            bits |= table[item][0]
            named |= table[item][0]
            continue
        prefix, dot, group = item.partition(".")
        got = None
        if dot and prefix == "abi":
            if abi is None:
                d.fail(f"{item!r} needs a top-level 'abi = N' to say which ABI's rights "
                       "it means", section, index, key)
            got = group_bits(kind, group, abi)
        elif dot and prefix[:1] == "v" and prefix[1:].isdigit() and prefix[1:2] != "0":
            n = int(prefix[1:])
            if _GROUP_ABI[kind] <= n and compat.known_abi(n):
                got = group_bits(kind, group, n)
        if got is None:
            known = list(table) + [f"abi.{g}" for g in (
                ("all", "read_execute", "read_write") if kind == "fs" else ("all",))]
            d.fail(f"unknown access right {item!r} (known: {', '.join(known)}, "
                   f"and vN.* groups for ABI N)", section, index, key)
        bits |= got
    return bits, named


def _template(d: _Doc, raw: str, variables: dict[str, tuple[str, ...]], section: str,
              index: int, key: str, budget: int = MAX_ITEMS) -> list[str]:
    """Every path a parent template stands for: ``${name}`` takes each value
    of the variable, ``$$`` is a ``$``, any other ``$`` is itself.  At most
    *budget* paths (the rules the document may still have): the count is
    known before anything is expanded."""
    parts: list[tuple[str, ...]] = []
    text: list[str] = []
    pieces = references(raw, lone_dollar=True)
    while True:
        try:
            piece = next(pieces)
        except StopIteration:
            break
        except ValueError:
            d.fail(f"unclosed variable reference in {raw!r}", section, index, key)
        if type(piece) is str:
            if piece:
                text.append(piece)
        else:
            name = piece[0]
            if not _valid_name(name):
                d.fail(f"bad variable name {name!r} in {raw!r} (a letter, then letters, "
                       "digits and _)", section, index, key)
            if name not in variables:
                d.fail(f"unknown variable ${{{name}}} in {raw!r} (defined: "
                       + (", ".join(sorted(variables)) or "none") + ")", section, index, key,
                       hint=f"define it: [[variable]] name = \"{name}\" literal = [...]")
            if text:
                parts.append(("".join(text),))
                text = []
            parts.append(variables[name])
    if text or not parts:
        parts.append(("".join(text),))
    total = 1
    limit = min(MAX_ITEMS, budget)
    for p in parts:
        total *= len(p)
        if total > limit:
            d.fail(f"{raw!r} expands to more than {limit} paths"
                   + (f" (the document may have {MAX_RULES} path rules in all)"
                      if limit < MAX_ITEMS else ""), section, index, key)
    if total == 0:
        return []
    return ["".join(combo) for combo in itertools.product(*parts)]


def _valid_name(name: str) -> bool:
    return bool(name) and name[0].isascii() and name[0].isalpha() and all(
        c.isascii() and (c.isalnum() or c == "_") for c in name)


def _path(d: _Doc, p: str, section: str, index: int, key: str) -> str:
    if not p:
        d.fail("empty path", section, index, key)
    if not p.startswith("/"):
        # as the reference implementation opens them: from the current directory
        try:
            p = os.path.join(os.getcwd(), p)
        except OSError:
            d.fail(f"relative path {p!r} and no current directory", section, index, key)
    return os.path.normpath(p) if p != "/" else p


def apply(profile: Profile, doc: dict[str, Any], path: str) -> None:
    """Validate the landlockconfig document *doc* (read from *path*) and add
    its sandbox to *profile* (a :class:`landwrap.profile.Profile`).

    Raises :class:`ProfileError` naming the file, line and key."""
    d = _Doc(path, doc)
    known = [d.name(k) for k in TOP_KEYS]
    for k in doc:
        if k not in known:
            hint = _spelling_hint(d, k)
            if hint is None and k in ("description", "extends", "filesystem", "network",
                                      "scope", "env", "vars", "compat"):
                hint = ("this file was read as a landlockconfig document (it has a "
                        "ruleset/path_beneath/net_port/variable key); landwrap profile "
                        "keys cannot be mixed in")
            raise ProfileError("unknown key (expected one of: " + ", ".join(known) + ")",
                               path, d._line(None, None, k), printable(k), hint)

    abi = doc.get("abi")
    if abi is not None and (isinstance(abi, bool) or not isinstance(abi, int)):
        d.fail(f"expected an integer, got {_type(abi)}", None, None, "abi")
    if abi is not None and not 1 <= abi <= MAX_ABI:
        d.fail(f"expected an ABI version from 1 to {MAX_ABI}, got {abi}", None, None, "abi")

    variables: dict[str, tuple[str, ...]] = {}
    for i, var in enumerate(_entries(d, "variable")):
        if "name" not in var:
            d.fail("a variable needs a 'name'", "variable", i)
        name = var["name"]
        if not isinstance(name, str) or not _valid_name(name):
            d.fail(f"bad variable name {name!r} (a letter, then letters, digits and _)",
                   "variable", i, "name")
        values = set(variables.get(name, ()))
        if "literal" in var:
            values.update(_strings(d, var["literal"], "variable", i, "literal"))
        variables[name] = tuple(sorted(values))

    handled = {"fs": 0, "net": 0, "scope": 0}
    need = {"fs": 0, "net": 0, "scope": 0}
    for i, rs in enumerate(_entries(d, "ruleset")):
        if not rs:
            d.fail("empty ruleset (give handled_access_fs, handled_access_net or scoped)",
                   "ruleset", i)
        for key, kind in (("handled_access_fs", "fs"), ("handled_access_net", "net"),
                          ("scoped", "scope")):
            if d.name(key) in rs:
                b, named = _access(d, kind, rs[d.name(key)], abi, "ruleset", i, key)
                handled[kind] |= b
                need[kind] |= named

    rules: list[PathEntry] = []
    root = 0
    for i, pb in enumerate(_entries(d, "path_beneath")):
        b, named = _rule_access(d, "path_beneath", i, pb, "fs", abi)
        handled["fs"] |= b  # as the reference: rules complete the handled rights
        origin = f"{path}: {d.where('path_beneath', i)}"
        for raw in _strings(d, pb["parent"], "path_beneath", i, "parent"):
            for p in _template(d, raw, variables, "path_beneath", i, "parent",
                               MAX_RULES - len(rules)):
                p = _path(d, p, "path_beneath", i, "parent")
                if p == "/":
                    root |= b
                rules.append((p, b, named, origin))

    ports: list[PortEntry] = []
    for i, np_ in enumerate(_entries(d, "net_port")):
        b, named = _rule_access(d, "net_port", i, np_, "net", abi)
        handled["net"] |= b
        value = np_["port"]
        if not isinstance(value, list):
            d.fail(f"expected an array of port numbers, got {_type(value)}", "net_port", i,
                   "port")
        if not value:
            d.fail("must not be empty", "net_port", i, "port")
        if len(value) > MAX_ITEMS:
            d.fail(f"too many entries ({len(value)}; at most {MAX_ITEMS})", "net_port", i,
                   "port")
        origin = f"{path}: {d.where('net_port', i)}"
        for port in value:
            if isinstance(port, bool) or not isinstance(port, int):
                d.fail(f"expected port numbers, got {_type(port)}", "net_port", i, "port")
            if not 0 <= port <= 65535:
                d.fail(f"bad port {port}: ports are 0-65535", "net_port", i, "port")
            if b:
                ports.append((port, compat.names(compat.NET_RIGHTS, b), bool(named & b),
                              origin))

    if not (handled["fs"] or handled["net"] or handled["scope"]):
        # llconfig refuses to run with such a file; never read it as "lift everything"
        raise ProfileError("the document restricts nothing (no [[ruleset]], "
                           "[[path_beneath]] or [[net_port]] handles any right)", path,
                           hint="add a [[ruleset]] with handled_access_fs = [\"abi.all\"] "
                           "and an abi")
    _into(profile, path, handled, need, root, rules, ports)


def _spelling_hint(d: _Doc, k: str) -> str | None:
    if d.json and k in _CAMEL:
        return f"JSON spells it {_CAMEL[k]!r}"
    if not d.json and k in _CAMEL.values():
        return f"TOML spells it {_uncamel(k)!r}"
    return None


def _rule_access(d: _Doc, section: str, i: int, entry: dict[str, Any], kind: str,
                 abi: int | None) -> tuple[int, int]:
    """(bits, named bits) of a rule entry, after checking it has its keys."""
    for key in SECTION_KEYS[section]:
        if d.name(key) not in entry:
            d.fail(f"a {d.name(section)} rule needs '{d.name(key)}'", section, i)
    return _access(d, kind, entry[d.name("allowed_access")], abi, section, i,
                   "allowed_access")


def _uncamel(k: str) -> str:
    for snake, camel in _CAMEL.items():
        if k == camel:
            return snake
    return k


def _into(profile: Profile, path: str, handled: dict[str, int], need: dict[str, int], root: int,
          rules: list[PathEntry], ports: list[PortEntry]) -> None:
    rs = profile.ruleset
    fs = handled["fs"]
    if not fs or not fs & ~root:
        # nothing handled, or everything handled is allowed everywhere
        rs.fs = False
    else:
        for p, b, named, origin in rules:
            rs.allow(p, b, origin=origin, required=False, need=named & b)
        free = compat.FS_ALL & ~fs & ~compat.REFER
        if free:
            rs.allow("/", free, origin=f"{path}: filesystem rights it does not handle",
                     required=False, need=0)
            rs.unhandled_fs |= free
        rs.need["fs"] |= need["fs"]
    net = handled["net"]
    if not net:
        rs.net = False
    else:
        for port, names, required, origin in ports:
            rs.allow_port(port, names, origin=origin, required=required)
        free = compat.NET_ALL & ~net
        if free:
            rs.allow_port("0-65535", compat.names(compat.NET_RIGHTS, free),
                          origin=f"{path}: network rights it does not handle",
                          required=False)
        rs.need["net"] |= need["net"]
    profile.unscoped |= compat.SCOPE_ALL & ~handled["scope"]
    if need["scope"]:
        rs.require_scopes(need["scope"])


# writing ---------------------------------------------------------------

def _toml_str(s: str) -> str:
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in s):
        raise ProfileError(f"cannot export {s!r}: the path is not valid UTF-8")
    return toml_str(s)


def _comment(text: str) -> str:
    """A TOML comment line: control characters (a newline would end the
    comment and inject TOML) are written escaped."""
    return "# " + printable(text)


def _toml_list(items: Iterable[object]) -> str:
    return "[" + ", ".join(_toml_str(i) if isinstance(i, str) else str(i)
                           for i in items) + "]"


def _plan_of(obj: Sandbox, abi: int | None = None) -> Plan:
    if isinstance(obj, Plan):
        return obj
    rs = obj if isinstance(obj, Ruleset) else obj.ruleset
    return rs.resolve(abi=abi)


def to_document(obj: Sandbox, *, abi: int | None = None) -> dict[str, Any]:
    """The landlockconfig document (TOML spelling) for a resolved sandbox: a
    :class:`~landwrap.ruleset.Plan`, or a Profile/Ruleset resolved here for
    this kernel (capped at *abi*)."""
    plan = _plan_of(obj, abi)
    if not plan.enforces_anything:
        raise ProfileError("nothing to export: this sandbox restricts nothing on this "
                           "kernel", hint="a landlockconfig document must handle something")
    for r in plan.rules:
        if "\0" in r.path:  # cannot happen for real paths; be sure
            raise ProfileError(f"cannot export {r.path!r}: NUL byte")
    doc: dict[str, Any] = {"abi": plan.abi}
    ruleset: dict[str, list[str]] = {}
    if plan.fs:
        ruleset["handled_access_fs"] = compat.names(compat.FS_RIGHTS, plan.fs)
    if plan.net:
        ruleset["handled_access_net"] = compat.names(compat.NET_RIGHTS, plan.net)
    if plan.scoped:
        ruleset["scoped"] = compat.names(compat.SCOPES, plan.scoped)
    doc["ruleset"] = [ruleset]
    groups: dict[int, list[str]] = {}
    for r in plan.rules:
        if r.access:
            groups.setdefault(r.access, []).append(r.path)
    if groups:
        doc["path_beneath"] = [
            {"allowed_access": compat.names(compat.FS_RIGHTS, bits),
             "parent": [p.replace("$", "$$") for p in paths]}
            for bits, paths in groups.items()]
    ports: dict[int, list[int]] = {}
    for port, bits, _ in plan.ports:
        ports.setdefault(bits, []).append(port)
    if ports:
        doc["net_port"] = [{"allowed_access": compat.names(compat.NET_RIGHTS, bits),
                            "port": p} for bits, p in ports.items()]
    return doc


def export(obj: Sandbox, *, abi: int | None = None, fmt: str = "toml",
           profile: Profile | None = None) -> str:
    """A resolved sandbox as landlockconfig text (``fmt`` ``"toml"`` or
    ``"json"``).  *obj* is a Plan, Profile or Ruleset (the latter two are
    resolved for this kernel, capped at *abi*).  *profile* (or *obj* when it
    is a Profile) adds comments on what the format cannot carry."""
    if profile is None and isinstance(obj, Profile):
        profile = obj
    plan = _plan_of(obj, abi)
    doc = to_document(plan)
    if fmt == "json":
        import json  # only for --format json: json imports re

        out: dict[str, Any] = {"abi": doc["abi"],
               "ruleset": [{_CAMEL.get(k, k): v for k, v in doc["ruleset"][0].items()}]}
        for section in ("path_beneath", "net_port"):
            if section in doc:
                out[_CAMEL[section]] = [{_CAMEL.get(k, k): v for k, v in e.items()}
                                        for e in doc[section]]
        for e in out.get("pathBeneath", ()):
            for p in e["parent"]:
                _toml_str(p)  # refuses paths that are not valid UTF-8
        return json.dumps(out, indent=2) + "\n"
    if fmt != "toml":
        raise ValueError(f"unknown format {fmt!r}")
    notes = [f"Landlock configuration (landlockconfig format), exported by landwrap "
             f"{__version__}."]
    sources = list(plan.request.sources)
    if sources:
        notes.append("From: " + " -> ".join(sources))
    kabi = f"kernel ABI {plan.kernel_abi}" if plan.kernel_abi >= 0 else "no Landlock"
    notes.append(f"Resolved for Landlock ABI {plan.abi} ({kabi}); paths are the real "
                 "paths that existed at export time.")
    if plan.dropped:
        notes.append("Not enforceable at this ABI, left out: " + "; ".join(plan.dropped))
    if plan.skipped:
        notes.append("Missing at export time, left out: "
                     + ", ".join(p for p, _, _ in plan.skipped))
    if profile is not None and (profile.env_clean or profile.env_pass or profile.env_set):
        notes.append("Not expressible in this format: the [env] settings "
                     + " ".join(["clean"] * profile.env_clean + profile.env_settings()))
    if plan.request.compat != "strict":
        notes.append(f"Not expressible in this format: compat = {plan.request.compat!r}")
    lines = [_comment(n) for n in notes]
    lines += ["", f"abi = {doc['abi']}", "", "[[ruleset]]"]
    for k, v in doc["ruleset"][0].items():
        lines.append(f"{k} = {_toml_list(v)}")
    for e in doc.get("path_beneath", ()):
        bits = compat.bits(compat.FS_RIGHTS, e["allowed_access"])
        dirs = [r.is_dir for r in plan.rules if r.access == bits]
        short = short_access(bits, plan.fs, all(dirs) if dirs else True)
        lines += ["", "[[path_beneath]]"]
        if "," not in short:
            lines[-1] += f"  # {short}"
        lines.append(f"allowed_access = {_toml_list(e['allowed_access'])}")
        if len(e["parent"]) == 1:
            lines.append(f"parent = {_toml_list(e['parent'])}")
        else:
            lines.append("parent = [")
            lines += [f"    {_toml_str(p)}," for p in e["parent"]]
            lines.append("]")
    for e in doc.get("net_port", ()):
        lines += ["", "[[net_port]]",
                  f"allowed_access = {_toml_list(e['allowed_access'])}",
                  f"port = {_toml_list(e['port'])}"]
    return "\n".join(lines) + "\n"

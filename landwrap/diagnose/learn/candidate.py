"""learn/candidate.py: the profile being learned (:class:`Candidate`, its
:class:`Grant` rules) and its output as a commented TOML profile.  Pure:
no I/O beyond looking at paths; every string it writes is escaped
(``safetext.printable``, ``profile.toml_str``).
"""

from __future__ import annotations

import os
import shlex
from typing import Iterable, Mapping

from ...engine import compat
from ...engine.safetext import printable
from ...profiles.parse import toml_str
from ...profiles.validate import _glob_escape
from ...profiles.variables import builtin_vars, exe_prefixes
from .generalise import FILE_RIGHTS, READ_RIGHTS, Sensitive, too_broad

COLLAPSE = 3


class Grant:
    """One filesystem rule of the candidate: ``rights`` (names) on
    ``path``; ``short`` rules are written as ro/rox/rw/rwx, the others as
    an exact ``[[filesystem.rule]]``; ``why`` are the comment lines."""

    __slots__ = ("path", "is_dir", "rights", "short", "why", "label", "create")

    def __init__(self, path: str, is_dir: bool, rights: Iterable[str], short: bool,
                 label: str | None = None) -> None:
        self.path, self.is_dir, self.rights = path, is_dir, set(rights)
        self.short, self.label = short, label
        self.create = False
        self.why: list[str] = []

    def shorthand(self) -> str | None:
        r = self.rights
        if self.short:
            w = bool(r - READ_RIGHTS - {"execute"})
            x = "execute" in r
            return "rwx" if w and x else "rw" if w else "rox" if x else "ro"
        for name in ("ro", "rw"):
            want = set(compat.ACCESS_SETS[name])
            if not self.is_dir:
                want &= FILE_RIGHTS
            if r == want:
                return name
        return None

    def access_list(self) -> list[str]:
        return [n for n in compat.FS_RIGHTS if n in self.rights]

    def effective(self) -> set[str]:
        """The rights this rule grants as it will be written."""
        s = self.shorthand()
        if s is None:
            return set(self.rights)
        want = set(compat.ACCESS_SETS[s])
        return want if self.is_dir else want & FILE_RIGHTS


class Candidate:
    """The profile being learned: base profiles it extends, grants, ports
    and lifted scopes, each with where it was learned from."""

    def __init__(self, base: Iterable[str], home: str | None = None,
                 sensitive: "Sensitive | None" = None) -> None:
        self.base = list(base)
        self.grants: dict[str, Grant] = {}
        self.ports: dict[tuple[str, int], list[str]] = {}   # (key, port) -> [why]
        self.scopes: dict[str, list[str]] = {}  # name -> [why]
        self.warnings: list[str] = []
        self.home = home or os.path.expanduser("~")
        self.sensitive = sensitive or Sensitive(self.home)
        #: [(directory, "${NAME}")], longest first: how paths are written
        #: (see set_variables).
        self.variables: list[tuple[str, str]] = []

    def set_variables(self, cwd: str, environ: Mapping[str, str] | None = None,
                      program: str | None = None) -> None:
        """Write paths with the profile variables that match them: ${CWD}
        (unless it is /, $HOME or above it: a profile rule would refuse
        it), ${exe_prefix} (the command's own installation, not /usr),
        ${env:VIRTUAL_ENV} when a venv is active, the XDG directories,
        ${HOME}, and ${TMPDIR} when $TMPDIR is set; each as the real path
        too."""
        env = os.environ if environ is None else environ
        v = builtin_vars("/", env)
        home = os.path.realpath(self.home)
        pairs = []
        # the XDG variables only where the environment sets them (otherwise
        # ${HOME}/.config reads better and means the same)
        names = [n for n in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
                             "XDG_STATE_HOME") if env.get(n)] + ["HOME"]
        if env.get("TMPDIR"):
            names.append("TMPDIR")
        rc = os.path.realpath(cwd)
        if rc != "/" and rc != home and not home.startswith(rc.rstrip("/") + "/"):
            pairs.append((cwd, "${CWD}"))
        if program:
            pairs += [(d, "${exe_prefix}") for d in exe_prefixes(program, env)
                      if d not in ("/usr", "/usr/local", "/")]
        if os.environ.get("VIRTUAL_ENV", "").startswith("/"):
            pairs.append((os.environ["VIRTUAL_ENV"], "${env:VIRTUAL_ENV}"))
        for n in names:
            if v.get(n) and v[n] != "/":
                pairs.append((v[n], "${%s}" % n))
        out = []
        for d, name in pairs:
            for x in {os.path.normpath(d), os.path.realpath(d)}:
                if x != "/" and (x, name) not in out:
                    out.append((x, name))
        self.variables = sorted(out, key=lambda e: -len(e[0]))  # stable: earlier wins ties

    def spell(self, path: str) -> str:
        """*path* as written in the profile: the longest matching variable
        prefix, every other ``$`` doubled (the loader expands ``$``) and
        ``*``, ``?``, ``[`` escaped (``[*]``: the loader globs them)."""
        for d, name in self.variables:
            if path == d or path.startswith(d + "/"):
                return name + _glob_escape(path[len(d):]).replace("$", "$$")
        return _glob_escape(path).replace("$", "$$")

    def widen_ok(self, d: str) -> bool:
        """Whether a rule may be generalised to directory *d*: not too broad,
        not sensitive and holding no sensitive path (unless allowed)."""
        return not too_broad(d, self.home) and \
            self.sensitive.blocks(d, True, READ_RIGHTS) is None

    # questions -------------------------------------------------------------
    def covering(self, path: str, rights: Iterable[str]) -> Grant | None:
        """The grant (on *path* or a directory above it) that already gives
        every one of *rights*, or None."""
        rights = set(rights)
        p = path
        while True:
            g = self.grants.get(p)
            if g is not None and (g.is_dir or p == path) and rights <= g.effective():
                return g
            if p == "/":
                return None
            p = os.path.dirname(p)

    # changes ---------------------------------------------------------------
    def prune(self) -> None:
        """Drop rules that a rule on a directory above them covers."""
        for path in sorted(self.grants, key=len, reverse=True):
            g = self.grants[path]
            parent = os.path.dirname(path)
            if path != "/" and self.covering(parent, g.effective()) is not None:
                del self.grants[path]

    def add_fs(self, path: str, is_dir: bool, rights: Iterable[str], short: bool, why: str,
               label: str | None = None) -> bool:
        g = self.grants.get(path)
        if g is None:
            g = self.grants[path] = Grant(path, is_dir, rights, short, label)
            changed = True
        else:
            changed = not set(rights) <= g.rights
            g.rights |= set(rights)
            g.short = g.short or short
            g.label = g.label or label
        if why and why not in g.why and len(g.why) < 3:
            g.why.append(why)
        if changed and too_broad(path, self.home):
            self.warn(f"the rule on {path} covers {'$HOME' if path == self.home else path} "
                      "as a whole: review it")
        return changed

    def add_port(self, key: str, port: int, why: str) -> bool:
        entry = self.ports.get((key, port))
        if entry is None:
            self.ports[(key, port)] = [why]
            return True
        if why not in entry and len(entry) < 3:
            entry.append(why)
        return False

    def add_scope(self, name: str, why: str) -> bool:
        if name in self.scopes:
            return False
        self.scopes[name] = [why]
        self.warn(f"lifted scope.{name}: the program reached outside the sandbox "
                  f"({why}); Landlock cannot allow this for one target only")
        return True

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def collapse(self) -> list[str]:
        """Merge three or more plain read-only rules directly in one
        directory into ``ro`` on it; returns what was merged."""
        merged = []
        while True:
            by_parent: dict[str, list[Grant]] = {}
            for g in self.grants.values():
                if g.label or not g.short or not g.rights <= READ_RIGHTS:
                    continue
                by_parent.setdefault(os.path.dirname(g.path), []).append(g)
            done = False
            for parent, items in sorted(by_parent.items()):
                if len(items) < COLLAPSE or not self.widen_ok(parent):
                    continue
                why = f"{len(items)} entries read in it, e.g. " + \
                    "; ".join(i.why[0] for i in items[:2] if i.why)
                for i in items:
                    del self.grants[i.path]
                self.add_fs(parent, True, READ_RIGHTS, True, why)
                merged.append(parent)
                done = True
            if not done:
                return merged

    # output ----------------------------------------------------------------
    def render(self, header: Iterable[str] = ()) -> str:
        """The candidate as a commented TOML profile."""
        q = toml_str
        out = [f"# {printable(h)}" if h else "#" for h in header]
        out.append(f"description = {q('Learned by landwrap learn')}")
        out.append("extends = [" + ", ".join(q(b) for b in self.base) + "]")
        short: dict[str, list[Grant]] = {}
        exact = []
        for path in sorted(self.grants):
            g = self.grants[path]
            s = g.shorthand()
            if s:
                short.setdefault(s, []).append(g)
            else:
                exact.append(g)
        if short:
            out += ["", "[filesystem]"]
            for name in ("ro", "rox", "rw", "rwx"):
                if name not in short:
                    continue
                out.append(f"{name} = [")
                for g in short[name]:
                    out += _comment_lines(g, "  ")
                    out.append(f"  {{ path = {q(self.spell(g.path))}, create = true }},"
                               if g.create else f"  {q(self.spell(g.path))},")
                out.append("]")
        for g in exact:
            out.append("")
            out += _comment_lines(g, "")
            out.append("[[filesystem.rule]]")
            out.append(f"path = {q(self.spell(g.path))}")
            if g.create:
                out.append("create = true")
            out.append("access = [" + ", ".join(q(n) for n in g.access_list()) + "]")
        if self.ports:
            out += ["", "[network]"]
            keys: dict[str, list[tuple[int, list[str]]]] = {}
            for (key, port), why in sorted(self.ports.items()):
                keys.setdefault(key, []).append((port, why))
            for key, items in keys.items():
                out.append(f"{key} = [")
                for port, why in items:
                    out += [f"  # {printable(w)}" for w in why]
                    out.append(f"  {port},")
                out.append("]")
        if self.scopes:
            out += ["", "[scope]"]
            for name, why in sorted(self.scopes.items()):
                out.append("# WARNING: lifts the isolation of the whole sandbox; "
                           + printable(why[0]))
                out.append(f"{name} = false")
        return "\n".join(out) + "\n"


def show_command(argv: Iterable[str | bytes]) -> str:
    """*argv* for a shell, on one line ($'...' for control characters)."""
    out = []
    for a in argv:
        if isinstance(a, bytes):
            a = a.decode("utf-8", "surrogateescape")
        if printable(a) == a:
            out.append(shlex.quote(a))
        else:
            out.append("$'" + printable(a.replace("\\", "\\\\").replace("'", "\\'")) + "'")
    return " ".join(out)


def _comment_lines(g: Grant, indent: str) -> list[str]:
    lines = []
    if g.label:
        lines.append(f"{indent}# {printable(g.label)}:")
    for w in g.why:
        lines.append(f"{indent}# {printable(w)}")
    if too_broad(g.path, None):
        lines.append(f"{indent}# WARNING: this covers {printable(g.path)} as a whole")
    return lines

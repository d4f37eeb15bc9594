"""learn.py: `landwrap learn` -- write a profile for a program by running it.

Each round runs the command in the candidate sandbox, collects what the
sandbox denied, and widens the candidate minimally; it stops when a round
has no denials (that exact profile is the result) or at the round limit.

Denials come from the kernel's audit records (``audit.Session``, Landlock
ABI 7) or, where those cannot be read, from tracing the program's file and
network system calls with strace inside the sandbox (:func:`parse_strace`,
:func:`strace_denials`) and keeping the failures the sandbox explains.
The candidate is written to a TOML file every round and loaded exactly as
`landwrap run -p FILE` loads it, so what ran clean is what is written out.

How a denial becomes a rule (:meth:`Learner.propose`):

* every path is taken as the real path (symlinks resolved: what strace
  reports is the path as the program wrote it); a symlink on the way is
  named in the rule's comment;
* reads become ``ro``, execution ``rox`` (on the program's installation
  prefix or ``bin`` directory), writing a file ``rw`` on that file;
  creating or removing entries in a directory an exact
  ``[[filesystem.rule]]`` on that directory (``make_reg`` is creation only:
  ``write_file`` and ``truncate`` come when the program then writes a file
  it created), so the program does not also get to read everything next
  to its output;
* paths inside a recognised container are generalised to it: a Python
  library directory (``lib/pythonX.Y``), a shared library directory, a
  ``bin``/``sbin``/``libexec`` directory for programs, locale and other
  ``share`` data, ``.git``, ``node_modules``, ``__pycache__``, and a git work
  tree for git itself;
* files that vanished by the end of the round (temporary files, journals)
  and files the program created next to a directory it may create in become
  rights on that directory;
* three or more read-only rules directly in one directory are merged into
  ``ro`` on the directory;
* never ``/``, ``$HOME``, an ancestor of ``$HOME``, ``~/.config`` or a
  top-level directory as a whole by generalisation, nor a directory that
  holds a sensitive path; a rule that lands on a broad directory anyway is
  flagged with a warning;
* sensitive paths (:class:`Sensitive`: keys, credential stores, browser
  profiles, keyrings, /etc/shadow, container and D-Bus sockets, landwrap's
  own configuration and cache...) are granted only with ``--allow-sensitive
  PATH`` or an answer at the terminal; the others are listed in the summary
  and the profile's header.

Never runs anything outside the sandbox, and never writes the output file
before the learning is over; then writes it atomically (a new temporary
file, ``O_EXCL|O_NOFOLLOW``, renamed over the output).  Every string in
the profile and in progress lines is escaped (``safetext.printable``,
``parse.toml_str``): file names are chosen by the program.
"""

from __future__ import annotations

import fnmatch
import os
import sys

from ..engine import compat
from . import denials as dn
from ..cli import report
from ..engine.errors import CommandNotFound, LandwrapError, UsageError
from ..profiles.validate import NET_KEY
from ..profiles.parse import toml_str
from ..engine.safetext import printable

DEFAULT_ROUNDS = 8
COLLAPSE = 3
STRACE = "/usr/bin/strace"

READ_RIGHTS = {"read_file", "read_dir"}
FILE_RIGHTS = set(compat.names(compat.FS_RIGHTS, compat.FS_FILE))
SHARE_DATA = {"zoneinfo", "terminfo", "fonts", "i18n", "ca-certificates", "mime",
              "icons", "misc", "X11", "glib-2.0", "gtk-3.0"}

#: Sensitive paths in a home directory (relative to $HOME; ``.config/``
#: entries also under $XDG_CONFIG_HOME): keys, credential stores, browser
#: profiles, keyrings.
HOME_SECRETS = (
    ".ssh", ".gnupg", ".netrc", ".git-credentials", ".aws", ".kube", ".docker/config.json",
    ".azure", ".pypirc", ".npmrc", ".vault-token", ".password-store", ".pki",
    ".cargo/credentials", ".cargo/credentials.toml", ".gem/credentials",
    ".terraform.d/credentials.tfrc.json", ".mozilla", ".thunderbird",
    ".local/share/keyrings", ".local/share/kwalletd",
    ".config/gh", ".config/hub", ".config/gcloud", ".config/google-chrome",
    ".config/chromium", ".config/BraveSoftware", ".config/microsoft-edge",
    ".config/vivaldi", ".config/containers/auth.json", ".config/landwrap",
    ".cache/landwrap",
)
#: Files in a home directory that run code at the next login or shell:
#: sensitive to write, not to read.
HOME_STARTUP = (
    ".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zshenv",
    ".zprofile", ".config/autostart", ".config/systemd", ".config/environment.d",
)
#: Sensitive system paths (``*`` matches one path component).
SYSTEM_SECRETS = (
    "/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers",
    "/etc/sudoers.d", "/etc/ssh/ssh_host_*_key", "/etc/landwrap",
    "/run/docker.sock", "/var/run/docker.sock", "/run/containerd", "/run/podman",
    "/run/crio", "/run/snapd.socket", "/run/dbus", "/var/run/dbus", "/run/user/*/bus",
    "/run/user/*/podman", "/run/user/*/docker.sock", "/run/user/*/keyring",
    "/run/user/*/gnupg",
)
#: Rights that only list a directory: harmless on a directory that holds
#: a sensitive path.
LIST_ONLY = {"read_dir"}


class Sensitive:
    """Which paths learn never grants unasked (see :data:`HOME_SECRETS`,
    :data:`HOME_STARTUP`, :data:`SYSTEM_SECRETS`, and landwrap's own
    configuration, cache and profile directories wherever the environment
    puts them); *allowed* are the ``--allow-sensitive`` paths."""

    def __init__(self, home: str, environ=None, allowed=()):
        env = os.environ if environ is None else environ
        home = os.path.normpath(home)
        self.home = home
        config = os.path.normpath(env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"))
        cache = os.path.normpath(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"))
        secrets = set()
        for rel in HOME_SECRETS:
            secrets.add(os.path.join(home, rel))
            if rel.startswith(".config/"):
                secrets.add(os.path.join(config, rel[8:]))
        secrets |= {os.path.join(config, "landwrap"), os.path.join(cache, "landwrap")}
        for var in ("LANDWRAP_CACHE_DIR",):
            if env.get(var):
                secrets.add(os.path.normpath(os.path.abspath(env[var])))
        for d in (env.get("LANDWRAP_PROFILE_PATH") or "").split(":"):
            if d:
                secrets.add(os.path.normpath(os.path.abspath(d)))
        runtime = env.get("XDG_RUNTIME_DIR")
        if runtime:
            secrets |= {os.path.join(runtime, n) for n in ("bus", "podman", "docker.sock",
                                                            "keyring", "gnupg")}
        secrets |= set(SYSTEM_SECRETS)
        self.secrets = sorted(secrets)
        self.startup = sorted({os.path.join(home, r) for r in HOME_STARTUP} |
                              {os.path.join(config, r[8:]) for r in HOME_STARTUP
                               if r.startswith(".config/")})
        self.allowed = [os.path.realpath(os.path.expanduser(a)) for a in allowed]

    @staticmethod
    def _parts(p: str) -> list:
        return [c for c in p.split("/") if c]

    def _under(self, path: str, entry: str) -> bool:
        """*path* is *entry* or beneath it (entry components may be globs)."""
        P, E = self._parts(path), self._parts(entry)
        return len(P) >= len(E) and all(fnmatch.fnmatchcase(p, e) for p, e in zip(P, E))

    def _above(self, path: str, entry: str) -> bool:
        """*entry* lies strictly beneath directory *path*."""
        P, E = self._parts(path), self._parts(entry)
        return len(E) > len(P) and all(fnmatch.fnmatchcase(p, e) for p, e in zip(P, E))

    def is_allowed(self, path: str) -> bool:
        return any(path == a or path.startswith(a.rstrip("/") + "/") for a in self.allowed)

    def reason(self, path: str, write: bool = False) -> str | None:
        """The sensitive entry *path* is (or lies in), or None."""
        for e in self.secrets + (self.startup if write else []):
            if self._under(path, e):
                return e
        return None

    def holds(self, path: str) -> bool:
        """Whether directory *path* holds a sensitive path (or is $HOME or
        above it)."""
        return (path == self.home or self._above(path, self.home)
                or any(self._above(path, e) for e in self.secrets))

    def blocks(self, path: str, is_dir: bool, rights) -> str | None:
        """Why a grant of *rights* on *path* needs confirmation, or None."""
        if self.is_allowed(path):
            return None
        write = bool(set(rights) - READ_RIGHTS - {"execute"})
        e = self.reason(path, write)
        if e is not None:
            return f"{e} is sensitive"
        if is_dir and set(rights) - LIST_ONLY:
            held = [x for x in self.secrets + (self.startup if write else [])
                    if self._above(path, x) and not self.is_allowed(x)]
            if path == self.home or self._above(path, self.home):
                return f"{path} holds the home directory {self.home}"
            if held:
                return f"{path} holds sensitive {held[0]}"
        return None


class Grant:
    """One filesystem rule of the candidate: ``rights`` (names) on
    ``path``; ``short`` rules are written as ro/rox/rw/rwx, the others as
    an exact ``[[filesystem.rule]]``; ``why`` are the comment lines."""

    __slots__ = ("path", "is_dir", "rights", "short", "why", "label", "create")

    def __init__(self, path, is_dir, rights, short, label=None):
        self.path, self.is_dir, self.rights = path, is_dir, set(rights)
        self.short, self.label = short, label
        self.create = False
        self.why: list = []

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

    def access_list(self) -> list:
        return [n for n in compat.FS_RIGHTS if n in self.rights]

    def effective(self) -> set:
        """The rights this rule grants as it will be written."""
        s = self.shorthand()
        if s is None:
            return set(self.rights)
        want = set(compat.ACCESS_SETS[s])
        return want if self.is_dir else want & FILE_RIGHTS


class Candidate:
    """The profile being learned: base profiles it extends, grants, ports
    and lifted scopes, each with where it was learned from."""

    def __init__(self, base, home: str | None = None, sensitive: "Sensitive | None" = None):
        self.base = list(base)
        self.grants: dict = {}
        self.ports: dict = {}   # (key, port) -> [why]
        self.scopes: dict = {}  # name -> [why]
        self.warnings: list = []
        self.home = home or os.path.expanduser("~")
        self.sensitive = sensitive or Sensitive(self.home)
        #: [(directory, "${NAME}")], longest first: how paths are written
        #: (see set_variables).
        self.variables: list = []

    def set_variables(self, cwd: str, environ=None, program: str | None = None) -> None:
        """Write paths with the profile variables that match them: ${CWD}
        (unless it is /, $HOME or above it: a profile rule would refuse
        it), ${exe_prefix} (the command's own installation, not /usr),
        ${env:VIRTUAL_ENV} when a venv is active, the XDG directories,
        ${HOME}, and ${TMPDIR} when $TMPDIR is set; each as the real path
        too."""
        from ..profiles.variables import builtin_vars, exe_prefixes

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
        prefix, and every other ``$`` doubled (the loader expands ``$``)."""
        for d, name in self.variables:
            if path == d or path.startswith(d + "/"):
                return name + path[len(d):].replace("$", "$$")
        return path.replace("$", "$$")

    def widen_ok(self, d: str) -> bool:
        """Whether a rule may be generalised to directory *d*: not too broad,
        not sensitive and holding no sensitive path (unless allowed)."""
        return not too_broad(d, self.home) and \
            self.sensitive.blocks(d, True, READ_RIGHTS) is None

    # questions -------------------------------------------------------------
    def covering(self, path: str, rights):
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

    def add_fs(self, path, is_dir, rights, short, why, label=None) -> bool:
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

    def add_port(self, key, port, why) -> bool:
        entry = self.ports.get((key, port))
        if entry is None:
            self.ports[(key, port)] = [why]
            return True
        if why not in entry and len(entry) < 3:
            entry.append(why)
        return False

    def add_scope(self, name, why) -> bool:
        if name in self.scopes:
            return False
        self.scopes[name] = [why]
        self.warn(f"lifted scope.{name}: the program reached outside the sandbox "
                  f"({why}); Landlock cannot allow this for one target only")
        return True

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def collapse(self) -> list:
        """Merge three or more plain read-only rules directly in one
        directory into ``ro`` on it; returns what was merged."""
        merged = []
        while True:
            by_parent: dict = {}
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
    def render(self, header=()) -> str:
        """The candidate as a commented TOML profile."""
        q = toml_str
        out = [f"# {printable(h)}" if h else "#" for h in header]
        out.append(f"description = {q('Learned by landwrap learn')}")
        out.append("extends = [" + ", ".join(q(b) for b in self.base) + "]")
        short: dict = {}
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
            keys: dict = {}
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


def show_command(argv) -> str:
    """*argv* for a shell, on one line ($'...' for control characters)."""
    import shlex

    out = []
    for a in argv:
        if isinstance(a, bytes):
            a = a.decode("utf-8", "surrogateescape")
        if printable(a) == a:
            out.append(shlex.quote(a))
        else:
            out.append("$'" + printable(a.replace("\\", "\\\\").replace("'", "\\'")) + "'")
    return " ".join(out)


def _comment_lines(g: Grant, indent: str) -> list:
    lines = []
    if g.label:
        lines.append(f"{indent}# {printable(g.label)}:")
    for w in g.why:
        lines.append(f"{indent}# {printable(w)}")
    if too_broad(g.path, None):
        lines.append(f"{indent}# WARNING: this covers {printable(g.path)} as a whole")
    return lines


def too_broad(path: str, home: str | None) -> bool:
    """``/``, ``$HOME``, an ancestor of ``$HOME`` (``/tmp/x`` when $HOME is
    ``/tmp/x/home``, ``/var/lib`` for a service account), ``~/.config``, a
    top-level directory or a home directory."""
    if home is None:
        home = os.path.expanduser("~")
    home = home.rstrip("/") or "/"
    path = path.rstrip("/") or "/"
    parent = os.path.dirname(path)
    return (path == "/" or path == home or home.startswith(path + "/")
            or path == os.path.join(home, ".config") or parent == "/"
            or parent == "/home")


# --------------------------------------------------------------------------
# Where a denial leads

def _python_lib(parts):
    for i in range(1, len(parts) - 1):
        p = parts[i]
        if parts[i - 1] == "lib" and p.startswith("python") and \
                p[6:].replace(".", "").isdigit() and p[6:]:
            return "/".join(parts[:i + 1])
    return None


def container(path: str, rights, exe: str | None, home: str | None = None,
              widen_ok=None):
    """(directory, label) when *path* lies in a directory that is the
    sensible unit to allow, else None.  *widen_ok* (directory -> bool)
    decides where generalising may go (default: not :func:`too_broad`)."""
    parts = path.split("/")
    found = None
    lib = _python_lib(parts)
    if lib:
        found = (lib, "Python library directory")
    if found is None:
        for name, label in ((".git", "git repository data"),
                            ("node_modules", "Node.js modules"),
                            ("__pycache__", "Python bytecode cache")):
            if name in parts[1:]:
                i = parts.index(name, 1)
                found = ("/".join(parts[:i + 1]), label)
                break
    if found is None:
        for i in range(1, len(parts) - 2):
            if parts[i] in ("share", "lib") and parts[i + 1] == "locale":
                found = ("/".join(parts[:i + 2]), "locale data")
                break
            if parts[i] == "share" and parts[i + 1] in SHARE_DATA:
                found = ("/".join(parts[:i + 2]), f"{parts[i + 1]} data")
                break
    parent = os.path.dirname(path)
    base = parts[-1]
    if found is None and (base.endswith(".so") or ".so." in base):
        pb = os.path.basename(parent)
        gp = os.path.basename(os.path.dirname(parent))
        if pb in ("lib", "lib64", "lib32") or gp == "lib" or pb.endswith("-linux-gnu"):
            found = (parent, "shared library directory")
    if found is None and "execute" in rights and is_program_dir(parent):
        prefix = install_prefix(parent, home)
        found = (prefix, f"installation prefix of {base} (its programs, libraries and data)") \
            if prefix else (parent, "program directory")
    if found is None and exe and os.path.basename(exe).startswith("git"):
        d = path if os.path.isdir(path) else parent
        while d and d != "/":
            if os.path.isdir(os.path.join(d, ".git")):
                found = (d, "git work tree (git reads and checks its files)")
                break
            d = os.path.dirname(d)
    if found and (too_broad(found[0], home) if widen_ok is None else not widen_ok(found[0])):
        return None
    return found


def is_program_dir(d: str) -> bool:
    return dn.is_program_dir(d) or os.path.basename(d) == "shims"


def install_prefix(program_dir: str, home: str | None = None) -> str | None:
    """The installation a program directory belongs to (``~/.pyenv`` for
    ``~/.pyenv/shims``, ``/opt/app`` for ``/opt/app/bin``): its parent, when
    that has library or data directories next to it and is not a place
    that holds more than one installation (``/``, ``/usr``, ``$HOME``,
    ``~/.local``)."""
    prefix = os.path.dirname(program_dir)
    if home is None:
        home = os.path.expanduser("~")
    if too_broad(prefix, home) or prefix == os.path.join(home, ".local"):
        return None
    if any(os.path.isdir(os.path.join(prefix, d)) for d in
           ("lib", "lib64", "libexec", "share", "versions")):
        return prefix
    return None


def symlinks_on(path: str) -> list:
    """[(link, target)] for each symlink met while resolving *path* (an
    absolute path as the program wrote it)."""
    out = []
    cur = "/"
    for part in [c for c in path.split("/") if c]:
        cur = os.path.join(cur, part)
        try:
            if os.path.islink(cur):
                out.append((cur, os.readlink(cur)))
                cur = os.path.realpath(cur)
        except OSError:
            break
    return out


def _existing_ancestor(path: str) -> str:
    p = os.path.dirname(path.rstrip("/")) or "/"
    while p != "/" and not os.path.isdir(p):
        p = os.path.dirname(p)
    return p


class Learner:
    """Runs the rounds.  *progress* gets one line per event (to stderr in
    the CLI); *confirm* is asked before re-running the command (None: do
    not ask)."""

    def __init__(self, argv, *, base=(), rounds: int = DEFAULT_ROUNDS, once: bool = False,
                 via: str = "auto", stdout_fd: int = -1, progress=None, confirm=None,
                 environ=None, allow_sensitive=(), confirm_sensitive=None,
                 expect_exit: int = 0):
        self.expect_exit = expect_exit
        #: exit status of each round, and what each round left in the
        #: directories the command could create in (for created_hint)
        self.statuses: list = []
        if not argv:
            raise UsageError("no command to learn")
        if via not in ("auto", "audit", "strace"):
            raise UsageError(f"--via {via}: expected auto, audit or strace")
        if rounds < 1:
            raise UsageError("--rounds must be at least 1")
        self.argv = list(argv)
        self.base = [b if not _is_path(b) else os.path.abspath(os.path.expanduser(b))
                     for b in base]
        self.rounds = 1 if once else rounds
        self.via = via
        self.stdout_fd = stdout_fd
        # Progress lines name files the program chose: escaped, always.
        self.progress = (lambda line: progress(printable(line))) if progress \
            else (lambda line: None)
        self.confirm = confirm
        self.confirm_sensitive = confirm_sensitive
        self.environ = environ
        self.home = (environ or os.environ).get("HOME") or os.path.expanduser("~")
        self.sensitive = Sensitive(self.home, environ, allow_sensitive)
        self.refused: dict = {}        # path -> [rights, reason, [why]]
        self.confirmed: set = set()    # sensitive paths granted at the terminal
        self.cand = None
        self.method = None
        self.session = None
        self.tmp = None
        self.rounds_run = 0
        self.clean = False
        self.declined = False
        self.last_status = None
        self.program = None
        self.stuck: list = []
        self._changed = False
        self._touched: list = []
        self._before: dict = {}
        self._listing: dict = {}  # directory -> entries when make_reg was learned
        self.cwd = os.getcwd()

    # set-up -----------------------------------------------------------------
    def _choose_method(self):
        from ..engine import _binding
        from . import audit

        kabi = _binding.kernel_abi()
        logs = kabi >= 0 and compat.mask(compat.RESTRICT_FLAGS, compat.effective_abi(kabi)) \
            & dn.log_bit()
        if self.via in ("auto", "audit") and not logs:
            e = audit.AuditUnavailable("this kernel's Landlock cannot log denials",
                                       f"it needs {dn.needs()}")
            if self.via == "audit":
                raise LandwrapError(f"cannot use the kernel's denial records: {e.reason}",
                                    e.fix)
            why = e
        elif self.via in ("auto", "audit"):
            try:
                self.session = audit.Session()
                self.session.open()
                self.method = "audit"
                return
            except audit.AuditUnavailable as e:
                self.session = None
                if self.via == "audit":
                    raise LandwrapError(f"cannot read the kernel's denial records: {e.reason}",
                                        e.fix) from None
                why = e
        else:
            why = None
        if not os.access(STRACE, os.X_OK):
            reason = (f"cannot read the kernel's denial records ({why.reason}) and "
                      f"{STRACE} is not installed") if why else f"{STRACE} is not installed"
            fix = (f"{why.fix}, or install strace" if why else "install strace")
            raise LandwrapError(f"landwrap learn needs a way to see denials: {reason}", fix)
        if why is not None:
            self.progress(f"denial records unavailable ({why.reason}); "
                          "tracing the program with strace instead")
        self.method = "strace"

    def _base_specs(self) -> list:
        # Not the command's own profile (`landwrap run`'s choice): learning
        # starts from the minimal sandbox unless told otherwise.
        return self.base or ["default"]

    # the rounds ---------------------------------------------------------------
    def run(self) -> "Learner":
        import tempfile

        from ..profiles import profile

        self.cand = Candidate(self._base_specs(), self.home, self.sensitive)
        from ..engine.spawn import find_program

        try:
            self.program = find_program(self.argv[0], os.environ.get("PATH"))
        except LandwrapError:
            self.program = None
        self.cand.set_variables(self.cwd, self.environ, self.program)
        profile.load(self.cand.base, environ=self.environ)  # a bad base fails here
        self.tmp = tempfile.mkdtemp(prefix="landwrap-learn-")
        try:
            self._cwd_before = set(os.listdir(self.cwd))
        except OSError:
            self._cwd_before = set()
        try:
            self._choose_method()
            for n in range(1, self.rounds + 1):
                if n > 1 and self.confirm is not None:
                    # auditing is not kept switched on while a human thinks
                    if self.session is not None:
                        self.session.close()
                    if not self.confirm(n):
                        self.progress("stopped before re-running the command")
                        self.declined = True
                        break
                    if self.session is not None:
                        self.session.open()
                found = self._round(n)
                if not found:
                    self.clean = True
                    break
                if not self._changed:  # nothing more can be learned
                    break
        finally:
            if self.session is not None:
                self.session.close()
                self.session = None
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
        return self

    def _candidate_file(self, n: int) -> str:
        # A new file each round: the profile parse cache keys on the file's
        # identity and mtime, which a quick rewrite might not change.
        path = os.path.join(self.tmp, f"round-{n}.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.cand.render())
        return path

    def _round(self, n: int) -> int:
        from ..engine import launcher, spawn
        from ..profiles import profile

        self.rounds_run = n
        prof = profile.load([self._candidate_file(n)], environ=self.environ,
                            program=self.program)
        rs = prof.ruleset
        argv = self.argv
        trace = None
        if self.method == "audit":
            plan = dn.resolve_logged(rs)
        else:
            trace = os.path.join(self.tmp, f"trace-{n}")
            rs.allow(os.path.realpath(STRACE), "rox", origin="strace (learning only)")
            rs.allow(self.tmp, ("make_reg", "write_file", "truncate"),
                     origin="strace output (learning only)")
            plan = rs.resolve()
            argv = [STRACE, "-f", "-qq", "-yy", "-s", "4096", "-o", trace,
                    "-e", "trace=%file,%network,fchdir", "--", *self.argv]
        settings = prof.env_settings()
        if prof.private_tmp:
            # as `landwrap run` does: a fresh TMPDIR for this round only
            import tempfile

            private = tempfile.mkdtemp(prefix=f"tmp-{n}-", dir=self.tmp)
            rs.allow(private, "rw", origin="private TMPDIR (private_tmp)")
            settings.append(f"TMPDIR={private}")
            if self.method == "audit":
                plan = dn.resolve_logged(rs)
            else:
                plan = rs.resolve()
        env = launcher.build_env(prof.env_clean, settings)
        path = spawn.find_program(argv[0], env.get("PATH"))
        stdio = (-1, self.stdout_fd, -1)
        failed = None
        try:
            status = launcher.run(plan, argv, env, path=path, stdio=stdio,
                                  on_start=self.session.watch if self.session else None)
        except CommandNotFound:
            raise
        except LandwrapError as e:
            status = e.exit_code
            failed = e
        if self.session is not None:
            result = self.session.finish()
            found = result.denials
        else:
            found = strace_denials(trace, plan, self.cwd, self.argv[0], env.get("PATH"))
        self.last_status = status
        added = self._learn_from(found, n)
        count = sum(getattr(d, "count", 1) for d in found) + \
            (result.untallied if self.session is not None else 0)
        what = f"{count} denial{'s' if count != 1 else ''}"
        self.statuses.append(status)
        tail = f"added: {', '.join(added)}" if added else (
            "nothing new to add" if found else
            "the profile is complete" if status == self.expect_exit else
            f"no denials, but the command failed (exit status {status})")
        self.progress(f"round {n}: {what} (exit status {status}); {tail}")
        if failed is not None and not found:
            self.progress(f"round {n}: {failed}")
        for s in self.stuck:
            self.progress(f"round {n}: cannot allow: {s}")
        return len(found)

    # turning denials into rules ---------------------------------------------------
    def _learn_from(self, found, n: int) -> list:
        """Apply one round's denials; returns what was added, for the
        progress line."""
        self.stuck = []
        self._touched: list = []
        self._before = {p: g.effective() for p, g in self.cand.grants.items()}
        other = []
        launcher_exe = os.path.realpath(sys.executable)
        for d in found:
            other += [c for c in self.propose(d, dn.program_of(d, launcher_exe), n)
                      if c not in other]
        merged = self.cand.collapse()
        self.cand.prune()
        added = []
        for t in self._touched:
            g = self.cand.grants.get(t)
            if g is None or t in merged:
                continue
            before = self._before.get(t)
            if before is None:
                added.append(_describe_grant(g))
            else:
                new = [n for n in compat.FS_RIGHTS if n in g.effective() - before]
                added.append(f"{_describe_grant(g)} (+{','.join(new)})" if g.shorthand()
                             else f"+{','.join(new)} {t}")
        added += [f"ro {m} (merged)" for m in merged] + other
        for g in self.cand.grants.values():
            # a directory the program itself made: `landwrap run` creates it
            # (create = true) when it is gone, instead of a broad parent
            if g.is_dir and not g.create and self._made_here(g.path):
                g.create = True
        self._changed = bool(added)
        return added

    def propose(self, d, prog: str, n: int) -> list:
        """Apply denial *d* to the candidate.  Filesystem changes are
        recorded in ``_touched``; returns descriptions of other changes
        (ports, scopes)."""
        cand = self.cand
        rights = set(d.rights)
        kinds = d.kinds
        if kinds == {"net"} and d.port is not None:
            out = []
            for r in d.rights:
                key = NET_KEY.get(r)
                if key and cand.add_port(key, d.port,
                                         f"{r} by {prog}: {d.addr or '?'}:{d.port} (round {n})"):
                    out.append(f"{key} {d.port}")
            return out
        if kinds == {"scope"}:
            name = d.rights[0]
            target = f"pid {d.opid} ({d.ocomm})" if d.opid else "an abstract unix socket"
            return [f"scope.{name} = false"] if cand.add_scope(
                name, f"{name} by {prog} to {target} (round {n})") else []
        if kinds != {"fs"} or not d.path or not d.path.startswith("/"):
            self.stuck.append(f"{dn.describe(d)} by {prog}: no profile rule can allow it")
            return []
        written = os.path.normpath(d.path)
        # The real path: what strace reports is the path as the program
        # wrote it, and a symlink it planted there could point anywhere.
        path = os.path.realpath(written)
        why = f"{','.join(d.rights)} by {prog}: {path} (round {n})"
        links = symlinks_on(written)
        if links:
            why += " via symlink " + ", ".join(f"{a} -> {b}" for a, b in links)
        found = container(path, rights, d.exe, self.home, self.cand.widen_ok)
        if found:
            target, label = found
            add = rights | ({"read_file"} if "execute" in rights else set())
            if add & (dn.WRITE_RIGHTS | dn.DIR_ENTRY_RIGHTS):
                add |= READ_RIGHTS
            self._grant(d, prog, target, True, add | {"read_dir"}, True, why, label)
        elif not os.path.lexists(path):
            # creation only where it happened (the nearest existing directory)
            where = _existing_ancestor(path)
            self._grant(d, prog, where, True, self._creating(where, rights), False,
                        why.replace(f": {path}", f": {path} (not there after the run)"))
        elif os.path.isdir(path) and not os.path.islink(path):
            self._grant(d, prog, path, True, self._creating(path, rights), False, why)
        else:
            parent = os.path.dirname(path)
            pg = cand.grants.get(parent)
            if pg is not None and "make_reg" in pg.rights and self._made_here(path):
                # an output file the program created: its rights go where it
                # is created, so that a fresh run can create it again
                add = rights & FILE_RIGHTS
                if "write_file" in add:  # it writes what it creates: again next run
                    add.add("truncate")
                self._grant(d, prog, parent, True, pg.rights | add, pg.short,
                            why.replace(f": {path}", f": {path} (created by the program)"))
            else:
                add = rights & FILE_RIGHTS
                if "execute" in add:
                    add.add("read_file")
                self._grant(d, prog, path, False, add, True, why)
        return []

    def _creating(self, where: str, rights) -> set:
        """*rights* for creating in directory *where*; in the working
        directory (the project learn runs in) a file created is a file
        written: writing it comes with the creation, so that a half-written
        output (an empty main.o) does not stall the next round."""
        add = set(rights)
        cwd = os.path.realpath(self.cwd)
        if "make_reg" in add and (where == cwd or where.startswith(cwd + "/")) \
                and not too_broad(where, self.home):
            add |= {"write_file", "truncate"}
        return add

    def _grant(self, d, prog, target, is_dir, rights, short, why, label=None) -> None:
        try:
            target.encode("utf-8")
        except UnicodeEncodeError:
            self.stuck.append(f"{dn.describe(d)} by {prog}: the path is not valid UTF-8, "
                              "which a TOML profile cannot name; allow a directory above it "
                              "with -p or rename the file")
            return
        have = self.cand.grants.get(target)
        merged = Grant(target, is_dir, set(rights) | (have.rights if have else set()),
                       short or bool(have and have.short))
        effective = merged.effective()
        reason = self.sensitive.blocks(target, is_dir, effective)
        if reason is not None:
            asked = target not in self.refused and self.confirm_sensitive is not None and \
                self.confirm_sensitive(
                f"{','.join(n for n in compat.FS_RIGHTS if n in effective)} on {target}",
                reason)
            if not asked:
                entry = self.refused.setdefault(target, [set(), reason, []])
                entry[0] |= set(rights)
                if why not in entry[2] and len(entry[2]) < 3:
                    entry[2].append(why)
                self.stuck.append(f"{dn.describe(d)} by {prog}: not granted, {reason} "
                                  f"(to grant it: --allow-sensitive {target})")
                return
            self.sensitive.allowed.append(target)
            self.confirmed.add(target)
        cover = self.cand.covering(target, rights)
        if cover is not None:
            if cover.path not in self._touched:
                self.stuck.append(
                    f"{dn.describe(d)} by {prog}: already allowed by the rule on {cover.path} "
                    "(the path may be replaced or be a different file while the program runs)")
            elif why not in cover.why and len(cover.why) < 3:
                cover.why.append(why)
            return
        if is_dir and rights & {"make_reg", "make_dir"} and target not in self._listing:
            try:
                self._listing[target] = set(os.listdir(target))
            except OSError:
                pass
        self.cand.add_fs(target, is_dir, rights, short, why, label)
        if target not in self._touched:
            self._touched.append(target)

    def _made_here(self, path: str) -> bool:
        """Whether *path* appeared in its directory after the program was
        allowed to create files there (it was not there before)."""
        before = self._listing.get(os.path.dirname(path))
        return before is not None and os.path.basename(path) not in before

    # results ------------------------------------------------------------------------
    def created_hint(self) -> list:
        """When a later round failed where an earlier one succeeded: the
        paths the command created in earlier rounds (it may fail because
        they are there now, as `git clone` into an existing directory)."""
        if len(self.statuses) < 2 or self.statuses[-1] == self.expect_exit:
            return []
        try:
            now = set(os.listdir(self.cwd))
        except OSError:
            now = set()
        made = sorted(os.path.join(self.cwd, e) for e in now - self._cwd_before)
        earlier = any(s == self.expect_exit for s in self.statuses[:-1])
        lead = "an earlier round succeeded; " if earlier else ""
        if not made:
            return [lead + "each round re-ran the command with its side effects, which may "
                    "make a later round fail"] if earlier else []
        return [lead + "these paths in the working directory were created by earlier rounds "
                "and may make the later ones fail (remove them and learn again):"] + \
            [f"  {printable(p)}" for p in made[:20]]

    def header(self) -> list:
        cmd = show_command(self.argv)
        failed = self.clean and self.last_status != self.expect_exit
        state = (f"the last round ran without denials but the command failed (exit status "
                 f"{self.last_status}): this profile is not known to be complete" if failed
                 else "the last round ran without denials" if self.clean else
                 "the last round still had denials: this profile is incomplete "
                 "and its last additions are untested")
        via = {"audit": "the kernel's Landlock audit records",
               "strace": "strace (the kernel's denial records were unavailable)"}.get(
                   self.method, "?")
        lines = [
            "Landlock profile learned by `landwrap learn` for:",
            f"  {cmd}",
            f"Learned from {via} in {self.rounds_run} round"
            f"{'s' if self.rounds_run != 1 else ''}; {state}.",
            f"Starts from: {', '.join(self.cand.base)} (see `extends`).",
            "Each rule says what it was learned from: access, program, an example path.",
            "It allows what these runs of the program did; review it before relying on it.",
        ]
        for w in self.cand.warnings:
            lines.append(f"WARNING: {w}")
        lines += self.sensitive_summary()
        return lines

    def sensitive_summary(self) -> list:
        """Lines naming the sensitive paths the program asked for: those
        not granted, and those granted because they were allowed."""
        out = []
        for path, (rights, reason, why) in sorted(self.refused.items()):
            names = ",".join(n for n in compat.FS_RIGHTS if n in rights)
            out.append(f"NOT GRANTED: {names} on {path}: {reason}; to grant it, run learn "
                       f"again with --allow-sensitive {path}")
            out += [f"  asked for by {w}" for w in why]
        plain = Sensitive(self.home, self.environ)  # without the allowances
        for path, g in sorted(self.cand.grants.items()):
            reason = plain.blocks(path, g.is_dir, g.effective())
            if reason is not None:
                how = "confirmed" if path in self.confirmed else "--allow-sensitive"
                out.append(f"SENSITIVE, granted ({how}): {_describe_grant(g)}: {reason}")
        return out

    def profile_text(self) -> str:
        return self.cand.render(self.header())


def _describe_grant(g: Grant) -> str:
    s = g.shorthand()
    if s:
        return f"{s} {g.path}"
    return f"{','.join(g.access_list())} {g.path}"


def _is_path(spec: str) -> bool:
    return "/" in spec or spec.endswith((".toml", ".json"))


# --------------------------------------------------------------------------
# strace fallback: failed system calls the sandbox explains

_O = {"O_WRONLY": 1, "O_RDWR": 2}


def _split_args(text: str) -> list:
    """Top-level comma-separated arguments of a strace call."""
    out, depth, cur, i, n = [], 0, [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        out.append("".join(cur).strip())
    return out


def _unquote(arg: str) -> str | None:
    """The string of a strace ``"..."`` argument (C escapes decoded)."""
    arg = arg.strip()
    if arg.endswith("..."):
        arg = arg[:-3]
    if len(arg) < 2 or arg[0] != '"' or arg[-1] != '"':
        return None
    body = arg[1:-1]
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "\\": 92, '"': 34, "'": 39}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            e = body[i + 1]
            if e == "x":
                out.append(int(body[i + 2:i + 4], 16))
                i += 4
                continue
            if e.isdigit():
                j = i + 1
                while j < len(body) and j < i + 4 and body[j] in "01234567":
                    j += 1
                out.append(int(body[i + 1:j], 8) & 0xFF)
                i = j
                continue
            out.append(simple.get(e, ord(e)))
            i += 2
            continue
        out += c.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _fd_path(arg: str) -> str | None:
    """``3</tmp/x>`` -> ``/tmp/x``."""
    lt = arg.find("<")
    if lt < 0 or not arg.endswith(">"):
        return None
    return arg[lt + 1:-1]


def _resolve(base: str | None, cwd: str, p: str) -> str:
    if p.startswith("/"):
        return os.path.normpath(p)
    return os.path.normpath(os.path.join(base or cwd, p))


def parse_strace(lines, cwd: str, first_exe: str | None = None) -> list:
    """[(pid, exe, syscall, [(right, path)] | ("net", right, port, addr))]
    for the failed (EACCES/EPERM) calls in strace ``-f -yy`` output, with
    the rights each would have needed (before checking the sandbox)."""
    pending: dict = {}
    exes: dict = {}
    out = []
    for raw in lines:
        line = raw.rstrip("\n")
        pid_s, _, rest = line.partition(" ")
        if not pid_s.isdigit():
            pid_s, rest = "0", line
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending[pid_s] = rest[:-len("<unfinished ...>")].rstrip()
            continue
        if rest.startswith("<... "):
            head = pending.pop(pid_s, None)
            close = rest.find("resumed>")
            if head is None or close < 0:
                continue
            rest = head + rest[close + len("resumed>"):]
        paren = rest.find("(")
        eq = rest.rfind(" = ")
        call = rest[:eq].rstrip() if eq > 0 else ""
        if paren < 0 or not call.endswith(")"):
            continue
        name = rest[:paren]
        args = _split_args(call[paren + 1:-1])
        result = rest[eq + 3:].strip()
        if name in ("chdir", "fchdir") and result.startswith("0"):
            p = _unquote(args[0]) if name == "chdir" else _fd_path(args[0])
            if p is not None:
                cwd = _resolve(None, cwd, p)
            continue
        if name in ("execve", "execveat") and result.startswith("0"):
            p = _unquote(args[0] if name == "execve" else args[1])
            if p:
                exes[pid_s] = _resolve(None, cwd, p)
            continue
        if not (result.startswith("-1 EACCES") or result.startswith("-1 EPERM")):
            continue
        needs = _needs(name, args, cwd)
        if needs:
            out.append((pid_s, exes.get(pid_s, first_exe), name, needs))
    return out


def _at(args, i_fd, i_path, cwd):
    p = _unquote(args[i_path]) if len(args) > i_path else None
    if p is None:
        return None
    base = None
    if i_fd is not None and len(args) > i_fd:
        base = _fd_path(args[i_fd])  # -yy shows AT_FDCWD</cwd> too
    return _resolve(base, cwd, p)


def _parent(p: str) -> str:
    return os.path.dirname(p) or "/"


def _needs(name: str, args: list, cwd: str) -> list:
    """The rights failed call *name* needed: [(right, path)] or
    [("net", right, port, host)]."""
    parent = _parent
    if name in ("open", "openat", "creat", "openat2"):
        plain = name in ("open", "creat")
        p = _at(args, None if plain else 0, 0 if plain else 1, cwd)
        if p is None:
            return []
        if name == "creat":
            flags = "O_CREAT|O_WRONLY|O_TRUNC"
        else:
            flags = (args[1 if plain else 2] if len(args) > (1 if plain else 2) else "") or ""
        rights = []
        if "O_CREAT" in flags and not os.path.lexists(p):
            return [("make_reg", parent(p)), ("write_file", p)]
        if "O_DIRECTORY" in flags or os.path.isdir(p):
            return [("read_dir", p)]
        if "O_RDWR" in flags:
            rights += ["read_file", "write_file"]
        elif "O_WRONLY" in flags:
            rights.append("write_file")
        else:
            rights.append("read_file")
        if "O_TRUNC" in flags:
            rights.append("truncate")
        return [(r, p) for r in rights]
    if name in ("execve", "execveat"):
        p = _at(args, 0 if name == "execveat" else None, 1 if name == "execveat" else 0, cwd)
        return [("execute", p), ("read_file", p)] if p else []
    if name in ("mkdir", "mkdirat"):
        p = _at(args, 0 if name == "mkdirat" else None, 1 if name == "mkdirat" else 0, cwd)
        return [("make_dir", parent(p))] if p else []
    if name in ("unlink", "unlinkat", "rmdir"):
        p = _at(args, 0 if name == "unlinkat" else None, 1 if name == "unlinkat" else 0, cwd)
        if not p:
            return []
        is_dir = name == "rmdir" or (name == "unlinkat" and "AT_REMOVEDIR" in "".join(args[2:]))
        return [("remove_dir" if is_dir else "remove_file", parent(p))]
    if name in ("rename", "renameat", "renameat2", "link", "linkat"):
        two = name in ("rename", "link")
        src = _at(args, None if two else 0, 0 if two else 1, cwd)
        dst = _at(args, None if two else 2, 1 if two else 3, cwd)
        if not src or not dst:
            return []
        kind = "make_dir" if os.path.isdir(src) else "make_reg"
        out = [(kind, parent(dst))]
        if name.startswith("rename"):
            out.append(("remove_dir" if kind == "make_dir" else "remove_file", parent(src)))
        if parent(src) != parent(dst):
            out += [("refer", parent(src)), ("refer", parent(dst))]
        return out
    if name in ("symlink", "symlinkat"):
        p = _at(args, 1 if name == "symlinkat" else None, 2 if name == "symlinkat" else 1, cwd)
        return [("make_sym", parent(p))] if p else []
    if name in ("mknod", "mknodat"):
        p = _at(args, 0 if name == "mknodat" else None, 1 if name == "mknodat" else 0, cwd)
        mode = args[2 if name == "mknodat" else 1] if len(args) > 1 else ""
        kind = ("make_fifo" if "S_IFIFO" in mode else "make_sock" if "S_IFSOCK" in mode
                else "make_char" if "S_IFCHR" in mode else "make_block" if "S_IFBLK" in mode
                else "make_reg")
        return [(kind, parent(p))] if p else []
    if name in ("truncate",):
        p = _at(args, None, 0, cwd)
        return [("truncate", p)] if p else []
    if name in ("connect", "bind") and len(args) >= 2:
        sock, addr = args[0], args[1]
        if "AF_INET" not in addr or "htons(" not in addr:
            return []
        port_s = addr.split("htons(", 1)[1].split(")", 1)[0]
        if not port_s.isdigit():
            return []
        proto = "udp" if "UDP" in sock else "tcp"
        right = {("connect", "tcp"): "connect_tcp", ("bind", "tcp"): "bind_tcp",
                 ("connect", "udp"): "connect_send_udp", ("bind", "udp"): "bind_udp"}[(name, proto)]
        host = ""
        for key in ("inet_addr(\"", "inet_pton(AF_INET6, \""):
            if key in addr:
                host = addr.split(key, 1)[1].split('"', 1)[0]
        return [("net", right, int(port_s), host)]
    return []


def strace_denials(trace: str | None, plan, cwd: str, program: str, path_env=None) -> list:
    """Denials (``audit.Denial`` objects) reconstructed from a strace
    output file: failed calls whose rights the sandbox *plan* does not
    grant.  Calls that fail for other reasons (file modes) are dropped."""
    from . import audit
    from ..engine import spawn

    if not trace or not os.path.exists(trace):
        return []
    try:
        first = os.path.realpath(spawn.find_program(program, path_env))
    except LandwrapError:
        first = None
    with open(trace, encoding="utf-8", errors="surrogateescape") as f:
        calls = parse_strace(f, cwd, first)
    out = []
    for pid, exe, syscall, needs in calls:
        if needs and needs[0][0] == "net":
            _, right, port, host = needs[0]
            bit = compat.NET_RIGHTS[right][0]
            if not plan.net & bit or any(p == port and b & bit for p, b, _ in plan.ports):
                continue
            d = audit.Denial("strace", (f"net.{right}",), {"dest": str(port), "daddr": host})
        else:
            by_path: dict = {}
            for right, p in needs:
                bit = compat.FS_RIGHTS[right][0]
                if plan.allows(p, bit) != bit:
                    by_path.setdefault(p, []).append(right)
            if not by_path:
                continue
            for p, rights in by_path.items():
                d = audit.Denial("strace", tuple(f"fs.{r}" for r in rights), {"path": p})
                d.pid, d.exe, d.syscall = pid, exe, syscall
                d.comm = os.path.basename(exe) if exe else None
                out.append(d)
            continue
        d.pid, d.exe, d.syscall = pid, exe, syscall
        d.comm = os.path.basename(exe) if exe else None
        out.append(d)
    return out


# --------------------------------------------------------------------------
# The command

def write_output(output: str, text: str) -> None:
    """Write *text* to *output* atomically: a new temporary file next to
    it (random name, ``O_CREAT|O_EXCL|O_NOFOLLOW``: never a file or symlink
    someone planted there), then ``rename`` over *output* (which replaces
    a symlink at that name instead of writing through it)."""
    import secrets

    d = os.path.dirname(os.path.abspath(output))
    base = os.path.basename(output)
    data = text.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(d, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"cannot create a temporary file in {d}")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv, *, output: str | None = None, base=(), rounds: int = DEFAULT_ROUNDS,
         once: bool = False, yes: bool = False, via: str = "auto",
         allow_sensitive=(), expect_exit: int = 0) -> int:
    """`landwrap learn`: 0 when the profile ran without denials and the
    command exited *expect_exit*, 1 when it is incomplete or the command
    failed without denials, 125 on errors."""
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    progress = report.info
    cmd = show_command(argv)

    def confirm_sensitive(what, reason):
        # asked even with --yes: -y is about re-running, not about secrets
        sys.stderr.write(f"landwrap: the program asks for {printable(what)} "
                         f"({printable(reason)}). Grant it? [y/N] ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    def confirm(n):
        sys.stderr.write(f"landwrap: run `{cmd}` again (round {n}) with the widened profile? "
                         "[y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        return answer in ("y", "yes")

    try:
        if output is not None:
            out_dir = os.path.dirname(os.path.abspath(output))
            if not os.path.isdir(out_dir):
                raise UsageError(f"-o {output}: no such directory {out_dir}")
        if not once:
            report.warn(f"learn runs `{cmd}` up to {rounds} times, sandboxed; each round re-runs "
                        "it with its side effects: whatever it does (files it writes, requests "
                        "it sends) happens each time"
                        + ("" if yes or not interactive
                           else "; you will be asked before each re-run")
                        + ". Use --once for a single run.")
        learner = Learner(argv, base=base, rounds=rounds, once=once, via=via,
                          expect_exit=expect_exit,
                          stdout_fd=2 if output is None else -1, progress=progress,
                          confirm=None if yes or not interactive else confirm,
                          allow_sensitive=allow_sensitive,
                          confirm_sensitive=confirm_sensitive if interactive else None)
        learner.run()
    except LandwrapError as e:
        report.error(e)
        return 125
    except KeyboardInterrupt:
        report.info("interrupted")
        return 125
    text = learner.profile_text()
    for w in learner.cand.warnings:
        report.warn(printable(w))
    for line in learner.sensitive_summary():
        report.warn(printable(line.strip()))
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            write_output(output, text)
        except OSError as e:
            report.error(f"-o {printable(output)}: cannot write it: {e.strerror or e}")
            return 125
        report.info(f"wrote {printable(output)}")
    if learner.clean and learner.last_status != expect_exit:
        report.info(f"`{cmd}` failed without denials (exit status {learner.last_status}, "
                    f"expected {expect_exit}): the profile is not known to be complete")
        for line in learner.created_hint():
            report.info(line)
        return 1
    if learner.clean:
        report.info(f"the profile ran `{cmd}` without denials; use it with: "
                    f"landwrap run -p {show_command([output]) if output else 'FILE'} -- {cmd}")
        return 0
    if learner.declined:
        why = "(the command was not run again with its last additions)"
    elif once:
        why = "(--once: its additions are untested)"
    elif learner.rounds_run >= learner.rounds:
        why = "(round limit reached)"
    else:
        why = "(no further rule could be learned)"
    report.info("the profile is incomplete: the last round still had denials " + why)
    return 1

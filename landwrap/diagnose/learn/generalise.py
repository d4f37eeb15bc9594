"""learn/generalise.py: where a denial leads -- the directory that is the
sensible unit to allow (:func:`container`), what is too broad to allow as
a whole (:func:`too_broad`), and the sensitive paths learn never grants
unasked (:class:`Sensitive`).  Pure: looks at paths, never changes them.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Callable, Collection, Iterable, Mapping

from ...engine import compat
from .. import denials as dn

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

    def __init__(self, home: str, environ: Mapping[str, str] | None = None,
                 allowed: Iterable[str] = ()) -> None:
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
    def _parts(p: str) -> list[str]:
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

    def blocks(self, path: str, is_dir: bool, rights: Iterable[str]) -> str | None:
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

def _python_lib(parts: list[str]) -> str | None:
    for i in range(1, len(parts) - 1):
        p = parts[i]
        if parts[i - 1] == "lib" and p.startswith("python") and \
                p[6:].replace(".", "").isdigit() and p[6:]:
            return "/".join(parts[:i + 1])
    return None


def container(path: str, rights: Collection[str], exe: str | None, home: str | None = None,
              widen_ok: Callable[[str], bool] | None = None) -> tuple[str, str] | None:
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


def symlinks_on(path: str) -> list[tuple[str, str]]:
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

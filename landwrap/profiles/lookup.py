"""lookup.py: where profiles are and whether to trust them.

The profile path (user, system, shipped), finding a profile by name (and
its ``.local.toml`` additions), listing them, landwrap's own state
directories, and the ownership check every profile file and directory
above it must pass (:func:`untrusted`): root or the invoking user, writable
by nobody else.  Never parses a profile.
"""

from __future__ import annotations

import os
import sys

from ..engine.errors import ProfileError
from ..engine.trust import owner_ok, untrusted_dirs
from ..engine.safetext import printable

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    Environ = Mapping[str, str]

SUFFIX = ".toml"
LOCAL_SUFFIX = ".local.toml"
#: Where a profile named NAME applies by default (no ``programs`` key):
#: NAME in one of these directories, compared by real path.
SYSTEM_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                   "/sbin", "/bin")
#: Where the shipped profiles live: inside the installed package, or at the
#: top of the source tree (editable installs, running from a checkout).
_HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_PROFILES = os.path.join(_HERE, "shipped")  # landwrap.profiles.shipped
_CHECKOUT_PROFILES = None


if not os.path.isdir(PACKAGE_PROFILES):
    PACKAGE_PROFILES = os.path.join(os.path.dirname(os.path.dirname(_HERE)), "profiles")
    # A source checkout's profiles are the developer's working files, like
    # the rest of the checkout: not protected as landwrap state (an
    # installed package's are).
    _CHECKOUT_PROFILES = PACKAGE_PROFILES


def search_path(environ: Environ | None = None) -> list[str]:
    """The directories searched for profiles, in order."""
    env = os.environ if environ is None else environ
    dirs = [d for d in env.get("LANDWRAP_PROFILE_PATH", "").split(":") if d]
    config = env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config")
    dirs += [os.path.join(config, "landwrap", "profiles"), "/etc/landwrap/profiles",
             PACKAGE_PROFILES]
    return dirs


def is_path(spec: str) -> bool:
    return "/" in spec or spec.endswith((SUFFIX, ".json"))


def find(name: str, dirs: Iterable[str] | None = None) -> str | None:
    """The first trusted NAME.toml on the profile path, or None (untrusted
    ones are skipped with a warning, see :func:`untrusted`)."""
    for d in dirs if dirs is not None else search_path():
        p = os.path.join(d, name + SUFFIX)
        if os.path.isfile(p) and usable(p):
            return p
    return None


def find_locals(name: str, dirs: Iterable[str] | None = None) -> list[str]:
    """Every trusted NAME.local.toml on the profile path (site additions)."""
    out = []
    for d in dirs if dirs is not None else search_path():
        p = os.path.join(d, name + LOCAL_SUFFIX)
        if os.path.isfile(p) and usable(p):
            out.append(p)
    return out


_warned: set[str] = set()


def untrusted(path: str, uids: tuple[int, ...] | None = None) -> str | None:
    """Why the file at *path* must not be used as policy, or None.

    As sshd's StrictModes: the file (its real path) and every directory
    above it must be owned by root or by the invoking user and not be
    writable by group or others.  A root-owned directory with the sticky
    bit (``/tmp``) is accepted above it: others cannot rename or remove
    what they do not own there, and what they create is theirs."""
    uids = uids or (0, os.getuid())
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError as e:
        return e.strerror or str(e)
    if not owner_ok(st, uids):
        return f"owned by uid {st.st_uid}, not by root or uid {os.getuid()}"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {st.st_mode & 0o7777:04o})"
    return untrusted_dirs(os.path.dirname(real), uids)


def warn_once(message: str) -> None:
    """One ``landwrap: warning:`` line on stderr, once per process."""
    if message not in _warned:
        _warned.add(message)
        sys.stderr.write(f"landwrap: warning: {message}\n")


def usable(path: str) -> bool:
    why = untrusted(path)
    if why is None:
        return True
    warn_once(f"skipping {printable(path)}: {printable(why)}")
    return False


def require_trusted(path: str) -> None:
    why = untrusted(path)
    if why is not None:
        raise ProfileError(f"not trusted: {printable(why)}", printable(path),
                           hint="a profile must belong to root or to you and not be "
                           "writable by others, nor any directory above it")


def cache_dir(environ: Environ | None = None) -> str | None:
    env = os.environ if environ is None else environ
    d = env.get("LANDWRAP_CACHE_DIR")
    if d is not None:
        return d or None
    base = env.get("XDG_CACHE_HOME") or os.path.join(
        env.get("HOME") or "/nonexistent", ".cache")
    return os.path.join(base, "landwrap")


def config_dir(environ: Environ | None = None) -> str:
    env = os.environ if environ is None else environ
    return os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"), "landwrap")


#: Where `run --log-denials` and `learn` note that they switched the
#: kernel's auditing on (``diagnose.audit.switch``): a note planted there
#: made the last session switch an administrator's auditing off.
AUDIT_STATE_DIR = "/run/landwrap"


def state_dirs(environ: Environ | None = None) -> list[str]:
    """landwrap's own state for the user of *environ*: every profile
    directory, the configuration, the cache and the audit switch's notes.
    No sandbox may be granted write access to (or above, or in) any of
    them: what is there decides the next sandbox (or the next audit
    session)."""
    out = [d for d in search_path(environ) if d and d != _CHECKOUT_PROFILES]
    out.append(config_dir(environ))
    cache = cache_dir(environ)
    if cache:
        out.append(cache)
    out.append(AUDIT_STATE_DIR)
    seen = []
    for d in out:
        d = os.path.abspath(d)
        if d not in seen:
            seen.append(d)
    return seen


def locate(spec: str, base_dir: str | None, dirs: Sequence[str]) -> str:
    """The file of profile *spec*: a path (relative to *base_dir* when
    given) or a name found on *dirs*; ProfileError for a bad or unknown
    name."""
    if is_path(spec):
        if "\0" in spec:
            raise ProfileError(f"bad profile path {spec!r}: it contains a NUL byte")
        p = os.path.expanduser(spec)
        if not os.path.isabs(p) and base_dir is not None:
            p = os.path.join(base_dir, p)
        return os.path.abspath(p)
    if not spec or spec.startswith(".") or "\0" in spec:
        raise ProfileError(f"bad profile name {spec!r}")
    found = find(spec, dirs)
    if found is None:
        raise ProfileError(f"no profile named {spec!r} on the profile path",
                           hint="`landwrap profile list` shows them; searched: "
                           + ", ".join(dirs))
    return found

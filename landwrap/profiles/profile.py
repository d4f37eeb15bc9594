"""profile.py: TOML profiles -> :class:`Ruleset`.

Finds profiles on the profile path, loads them (through a parse cache, so
that the ordinary `landwrap run` does not pay for the TOML parser), checks
every key and value, expands variables and globs, follows ``extends`` and
merges everything into one Ruleset plus the environment settings.

Nothing here may trust a file another user (or a sandbox) could have
written: profile files and every directory above them must belong to root
or the invoking user and be writable by nobody else (:func:`untrusted`),
and cache entries carry a MAC keyed by a secret only the user can read.
Input is bounded while it is expanded (variables, globs, rule counts), and
every string from a profile is escaped before it reaches a terminal.

Errors are :class:`ProfileError` with ``FILE:LINE: key: message``.  Pure
apart from reading profile files and the cache; paths are only checked for
existence when the ruleset is resolved.
"""

from __future__ import annotations

import os
import sys

from ..engine import compat
from ..engine.errors import LandwrapError, ProfileError
from ..engine.safetext import printable
from ..engine.ruleset import Ruleset, parse_ports

SUFFIX = ".toml"
LOCAL_SUFFIX = ".local.toml"
MAX_DEPTH = 32
MAX_ITEMS = 100_000
#: Bounds on hostile input, checked while expanding (never after).
MAX_VALUE = 65_536      # characters of one expanded variable or path
MAX_MATCHES = 100_000   # paths one glob may match
MAX_RULES = 200_000     # path rules of one sandbox, all files together
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
BUILTIN_VARS = ("HOME", "CWD", "TMPDIR", "UID", "USER", "XDG_CONFIG_HOME",
                "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
                "XDG_RUNTIME_DIR", "PROFILE_DIR")


# finding ---------------------------------------------------------------

def search_path(environ=None) -> list:
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


def find(name: str, dirs=None) -> str | None:
    """The first trusted NAME.toml on the profile path, or None (untrusted
    ones are skipped with a warning, see :func:`untrusted`)."""
    for d in dirs if dirs is not None else search_path():
        p = os.path.join(d, name + SUFFIX)
        if os.path.isfile(p) and _usable(p):
            return p
    return None


def find_locals(name: str, dirs=None) -> list:
    """Every trusted NAME.local.toml on the profile path (site additions)."""
    out = []
    for d in dirs if dirs is not None else search_path():
        p = os.path.join(d, name + LOCAL_SUFFIX)
        if os.path.isfile(p) and _usable(p):
            out.append(p)
    return out


# trust -------------------------------------------------------------------

_dir_verdicts: dict = {}
_warned: set = set()


def _owner_ok(st, uids) -> bool:
    return st.st_uid in uids


def untrusted(path: str, uids=None) -> str | None:
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
    if not _owner_ok(st, uids):
        return f"owned by uid {st.st_uid}, not by root or uid {os.getuid()}"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {st.st_mode & 0o7777:04o})"
    return _untrusted_dirs(os.path.dirname(real), uids)


def _untrusted_dirs(d: str, uids) -> str | None:
    """Why directory *d* (real, absolute) or one above it could be changed
    by someone else, or None."""
    while True:
        key = (d, uids)
        verdict = _dir_verdicts.get(key)
        if verdict is None:
            try:
                dst = os.stat(d)
            except OSError as e:
                verdict = f"{d}: {e.strerror}"
            else:
                if not _owner_ok(dst, uids):
                    verdict = f"directory {d} is owned by uid {dst.st_uid}"
                elif dst.st_mode & 0o022 and not (dst.st_mode & 0o1000 and dst.st_uid == 0):
                    verdict = (f"directory {d} is writable by group or others "
                               f"(mode {dst.st_mode & 0o7777:04o})")
                else:
                    verdict = ""
            _dir_verdicts[key] = verdict
        if verdict:
            return verdict
        if d == "/":
            return None
        d = os.path.dirname(d)


def warn_once(message: str) -> None:
    """One ``landwrap: warning:`` line on stderr, once per process."""
    if message not in _warned:
        _warned.add(message)
        sys.stderr.write(f"landwrap: warning: {message}\n")


def _usable(path: str) -> bool:
    why = untrusted(path)
    if why is None:
        return True
    warn_once(f"skipping {printable(path)}: {printable(why)}")
    return False


def _require_trusted(path: str) -> None:
    why = untrusted(path)
    if why is not None:
        raise ProfileError(f"not trusted: {printable(why)}", printable(path),
                           hint="a profile must belong to root or to you and not be "
                           "writable by others, nor any directory above it")


def list_profiles(dirs=None) -> list:
    """[(name, path, description, shadowed_paths)] of every profile found."""
    seen: dict = {}
    for d in dirs if dirs is not None else search_path():
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        for f in entries:
            if not f.endswith(SUFFIX) or f.endswith(LOCAL_SUFFIX):
                continue
            name = f[:-len(SUFFIX)]
            path = os.path.join(d, f)
            if not _usable(path):
                continue
            if name in seen:
                seen[name][3].append(path)
                continue
            try:
                desc = load_document(path).get("description", "")
            except ProfileError as e:
                desc = f"(invalid: {e.detail})"
            seen[name] = [name, path, desc if isinstance(desc, str) else "", []]
    return [tuple(v) for _, v in sorted(seen.items())]


# loading ---------------------------------------------------------------

def _cache_dir(environ=None):
    env = os.environ if environ is None else environ
    d = env.get("LANDWRAP_CACHE_DIR")
    if d is not None:
        return d or None
    base = env.get("XDG_CACHE_HOME") or os.path.join(
        env.get("HOME") or "/nonexistent", ".cache")
    return os.path.join(base, "landwrap")


def config_dir(environ=None) -> str:
    env = os.environ if environ is None else environ
    return os.path.join(env.get("XDG_CONFIG_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".config"), "landwrap")


def state_dirs(environ=None) -> list:
    """landwrap's own state for the user of *environ*: every profile
    directory, the configuration and the cache.  No sandbox may be granted
    write access to (or above, or in) any of them: what is there decides
    the next sandbox."""
    out = [d for d in search_path(environ) if d and d != _CHECKOUT_PROFILES]
    out.append(config_dir(environ))
    cache = _cache_dir(environ)
    if cache:
        out.append(cache)
    seen = []
    for d in out:
        d = os.path.abspath(d)
        if d not in seen:
            seen.append(d)
    return seen


#: The cache key: 32 random bytes in the cache directory, mode 0600.
KEY_NAME = "key"


def _cache_key(cache: str, create: bool):
    """The secret that authenticates cache entries, or None.  landwrap's
    state directories are never writable from a sandbox, and the key file
    is readable by its owner only."""
    path = os.path.join(cache, KEY_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            return None
        key = os.urandom(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        try:
            os.write(fd, key)
        finally:
            os.close(fd)
        return key
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not (
                st.st_mode & 0o170000) == 0o100000:
            return None
        key = os.read(fd, 64)
        return key if len(key) == 32 else None
    finally:
        os.close(fd)


def _mac(key: bytes, raw: bytes, body: bytes) -> bytes:
    try:
        from _blake2 import blake2b  # the C module: hashlib would cost ~7 ms to import
    except ImportError:  # pragma: no cover
        from hashlib import blake2b
    h = blake2b(key=key, digest_size=32)
    h.update(len(raw).to_bytes(8, "little"))
    h.update(raw)
    h.update(body)
    return h.digest()


def _cache_trusted(cache: str) -> bool:
    """The cache directory is ours (owned by the effective user: root never
    uses or writes a cache in a directory it does not own) and nobody else
    can change it or anything above it."""
    try:
        st = os.lstat(cache)
    except OSError:
        return False
    if (st.st_mode & 0o170000) != 0o040000 or st.st_uid != os.geteuid() \
            or st.st_mode & 0o022:
        return False
    return untrusted(cache, (0, os.getuid(), os.geteuid())) is None


def load_document(path: str) -> dict:
    """The parsed TOML (or JSON) document at *path*.

    Parsed documents are cached in ``$XDG_CACHE_HOME/landwrap`` (marshal,
    keyed by file identity and mtime).  An entry holds the file's bytes,
    which must match, and a MAC over them and the parsed document, keyed
    by a secret only the user can read: a sandbox that can write some
    cache directory still cannot forge an entry.  The cache directory is
    used only when it belongs to the effective user and nothing above it
    is writable by others.
    """
    try:
        st = os.stat(path)
        if (st.st_mode & 0o170000) != 0o100000:
            raise ProfileError("not a regular file", path)
    except OSError as e:
        raise ProfileError(e.strerror or str(e), path) from None
    cache = _cache_dir()
    if not cache:
        return _parse(path)
    raw = _read(path)
    key = os.path.join(cache, "%x-%x-%x-%x.%s.marshal" % (
        st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size,
        __import__("landwrap").__version__))
    hit = _cache_read(cache, key, raw)
    if hit is not None:
        return hit
    doc = _parse(path, raw)
    _cache_write(cache, key, raw, doc)
    return doc


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ProfileError(e.strerror or str(e), path) from None


def _cache_read(cache, key, raw):
    import marshal

    try:
        fd = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not _cache_trusted(cache):
            return None
        secret = _cache_key(cache, False)
        if secret is None:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            entry = f.read()
        mac, body = entry[:32], entry[32:]
        from _operator import _compare_digest  # hmac.compare_digest, without hmac

        if len(mac) != 32 or not _compare_digest(mac, _mac(secret, raw, body)):
            return None
        doc = marshal.loads(body)
        return doc if type(doc) is dict else None
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)


def _cache_write(cache, key, raw, doc):
    import marshal

    try:
        body = marshal.dumps(doc)
    except ValueError:  # e.g. a datetime value: it will fail validation anyway
        return
    try:
        if not os.path.isdir(cache):
            # create it only in a directory nobody else controls: never in
            # another user's (root under sudo -E, su without -)
            parent = os.path.dirname(os.path.abspath(cache))
            if _untrusted_dirs(os.path.realpath(parent), (0, os.getuid(), os.geteuid())):
                return
            try:
                os.mkdir(cache, 0o700)
            except FileExistsError:
                pass
        if not _cache_trusted(cache):
            return
        secret = _cache_key(cache, True)
        if secret is None:
            return
        tmp = f"{key}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_mac(secret, raw, body) + body)
        os.replace(tmp, key)
        # Older entries for the same file (it was edited) are dead: drop them,
        # so the cache holds one entry per profile file.
        name = os.path.basename(key)
        prefix = name[:name.index("-", name.index("-") + 1) + 1]  # "dev-ino-"
        for old in os.listdir(cache):
            if old.startswith(prefix) and old != name:
                try:
                    os.unlink(os.path.join(cache, old))
                except OSError:
                    pass
    except OSError:
        pass


def _parse(path: str, raw: bytes | None = None) -> dict:
    if raw is None:
        raw = _read(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ProfileError("not valid UTF-8", path, line) from None
    if path.endswith(".json"):
        import json

        try:
            doc = json.loads(text)
        except ValueError as e:  # JSONDecodeError, or an integer too long to convert
            raise ProfileError(f"invalid JSON: {getattr(e, 'msg', e)}", path,
                               getattr(e, "lineno", None)) from None
        except RecursionError:
            raise ProfileError("invalid JSON: nested too deeply", path) from None
        try:  # JSON, unlike TOML, can carry lone surrogates (\ud800): no path or name
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ProfileError("invalid JSON: a \\uXXXX escape is a lone surrogate, "
                               "not a character", path) from None
        except (ValueError, RecursionError):
            pass
    else:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            msg = str(e)
            line = None
            if "(at line " in msg:
                msg, _, where = msg.rpartition(" (at line ")
                try:
                    line = int(where.split(",")[0])
                except ValueError:
                    pass
            elif msg.endswith("(at end of document)"):
                line = text.count("\n") + 1
                msg = msg[:-len(" (at end of document)")]
            raise ProfileError(f"invalid TOML: {msg}", path, line) from None
        except RecursionError:
            raise ProfileError("invalid TOML: nested too deeply", path) from None
        except ValueError as e:  # e.g. an integer too long to convert
            raise ProfileError(f"invalid TOML: {e}", path) from None
    if not isinstance(doc, dict):
        raise ProfileError("the document must be a table/object", path)
    return doc


def line_of(path: str, table: str | None, key: str | None, index: int | None = None):
    """Best-effort line number of *key* in *table* (dotted, ``None`` for the
    top level) of the TOML file at *path*; for an array of tables, *index*
    picks the entry.  Only used on the error path."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError:
        return None
    current = ""
    seen = -1
    header_line = None
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if s.startswith("["):
            name = s.strip("[]").split("#")[0].strip().strip("[]").strip()
            name = name.replace('"', "").replace("'", "").replace(" ", "")
            current = name
            if table is not None and name == table:
                seen += 1
                if index is None or seen == index:
                    header_line = n
                    if key is None:
                        return n
            continue
        if key is None:
            continue
        in_table = (table is None and current == "") or (
            table is not None and current == table and (index is None or seen == index))
        k = s.split("=", 1)[0].strip().strip('"').strip("'")
        if "=" in s and (k == key or k.endswith("." + key)) and (
                in_table or (table and k == f"{table.split('.')[-1]}.{key}")):
            return n
    return header_line


def toml_str(text: str) -> str:
    """*text* as a TOML basic string (for writing profiles)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# validation and expansion ----------------------------------------------

class _Ctx:
    """Where we are, for error messages, and the variables in scope."""

    def __init__(self, path: str, variables: dict):
        self.path = path
        self.vars = variables

    def fail(self, key: str, message: str, table=None, index=None, line_key=None, line=None):
        if line is None:
            line = line_of(self.path, table, line_key or key.rsplit(".", 1)[-1], index)
        raise ProfileError(printable(message), self.path, line, printable(key))


def user_environ(pw) -> dict:
    """The variables landwrap reads (HOME, USER, XDG directories) as they
    are for the user of the ``pwd`` entry *pw* (``--user``): that user's
    home and the XDG defaults under it, never the caller's."""
    return {"HOME": pw.pw_dir, "USER": pw.pw_name, "=uid": str(pw.pw_uid)}


def builtin_vars(profile_dir: str, environ=None) -> dict:
    env = os.environ if environ is None else environ
    home = env.get("HOME") or os.path.expanduser("~")
    uid = int(env["=uid"]) if "=uid" in env else os.getuid()
    try:
        user = env.get("USER") or __import__("pwd").getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/nonexistent"
    return {
        "HOME": home,
        "CWD": cwd,
        "TMPDIR": env.get("TMPDIR") or "/tmp",
        "UID": str(uid),
        "USER": user,
        "XDG_CONFIG_HOME": env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
        "XDG_CACHE_HOME": env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"),
        "XDG_DATA_HOME": env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"),
        "XDG_STATE_HOME": env.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state"),
        "XDG_RUNTIME_DIR": env.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}",
        "PROFILE_DIR": profile_dir,
    }


class UnsetVariable(Exception):
    """``${env:NAME}`` with NAME unset or empty: the rule is skipped."""


def expand(text: str, variables: dict) -> str:
    """``~`` at the start, ``${NAME}`` and ``${env:NAME}``; an unknown name
    raises KeyError, a malformed reference ValueError, an unset or empty
    environment variable UnsetVariable."""
    if text == "~" or text.startswith("~/"):
        text = "${HOME}" + text[1:]
    if "$" not in text:
        return text
    out = []
    i = size = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if text.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        if not text.startswith("${", j):
            raise ValueError("'$' must start a ${NAME} reference (write $$ for a '$')")
        k = text.find("}", j)
        if k < 0:
            raise ValueError("unterminated ${")
        name = text[j + 2:k]
        if name.startswith("env:"):
            value = os.environ.get(name[4:]) or ""
            if not value or not name[4:]:
                raise UnsetVariable(name)
        elif name == "exe_prefix" and name not in variables:
            raise UnsetVariable(name)  # no command (or a table entry): skipped
        elif name not in variables:
            raise KeyError(name)
        else:
            value = variables[name]
        out.append(value)
        size += len(value) + (j - i)
        if size > MAX_VALUE:
            raise ValueError(f"expands to more than {MAX_VALUE} characters")
        i = k + 1
    return "".join(out)


def _type_name(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def _expect(ctx, key, value, typ, table=None, index=None):
    if typ is int and isinstance(value, bool) or not isinstance(value, typ):
        want = {str: "a string", bool: "a boolean", int: "an integer", list: "an array",
                dict: "a table"}[typ]
        ctx.fail(key, f"expected {want}, got {_type_name(value)}", table, index)
    return value


def _list(ctx, key, value, table=None, index=None):
    if isinstance(value, (str, int, dict)) and not isinstance(value, bool):
        value = [value]
    _expect(ctx, key, value, list, table, index)
    if len(value) > MAX_ITEMS:
        ctx.fail(key, f"too many entries ({len(value)}; at most {MAX_ITEMS})", table, index)
    return value


def _unknown(ctx, table: str | None, got: dict, known: set, index=None):
    for k in got:
        if k not in known:
            where = f"{table}.{k}" if table else k
            # a misspelt table ([netwrok]) is found by its header line
            line = line_of(ctx.path, where, None) if isinstance(got[k], dict) else None
            what = "unknown table" if isinstance(got[k], dict) else "unknown key"
            ctx.fail(where, f"{what} (expected one of: {', '.join(sorted(known))})",
                     table, index, line_key=k, line=line)


def table_of(key: str) -> tuple:
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


def _drop(doc: dict, key: str) -> bool:
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


def more_errors(path: str, first: ProfileError, limit: int = 100) -> list:
    """The errors of the file at *path* after *first* (`profile check`
    reports them all): the key each error names is left out and the file
    validated again, up to *limit* errors."""
    import copy

    try:
        doc = copy.deepcopy(load_document(path))
    except ProfileError:
        return []
    out: list = []
    err = first
    for _ in range(limit):
        if not err.key or not _drop(doc, err.key):
            break
        try:
            _apply_document(Profile(), doc, path)
        except ProfileError as e:
            if e.file != path:
                break
            out.append(e)
            err = e
            continue
        break
    return out


def _path(ctx, key, raw, table=None, index=None) -> str | None:
    if (type(raw) is str and raw[:1] == "/" and "$" not in raw and "\0" not in raw
            and "/." not in raw and "//" not in raw):
        return raw.rstrip("/") or "/" if raw[-1] == "/" else raw  # the common case
    if not isinstance(raw, str):
        ctx.fail(key, f"expected a path string, got {_type_name(raw)}", table, index)
    if "\0" in raw:
        ctx.fail(key, "path contains a NUL byte", table, index)
    try:
        p = expand(raw, ctx.vars)
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
        # relative paths are relative to the profile's directory
        p = os.path.join(ctx.vars["PROFILE_DIR"], p)
    return os.path.normpath(p) if "/./" in p or "/../" in p or p.endswith(("/.", "/..")) \
        else p.rstrip("/") or "/"


def _is_glob(p: str) -> bool:
    return "*" in p or "?" in p or "[" in p


class Profile:
    """A resolved profile: the sandbox (``ruleset``) and the environment
    settings, with ``sources`` listing every file used, in order."""

    def __init__(self):
        self.ruleset = Ruleset()
        self.env_clean = False
        self.env_pass: list = []
        self.env_set: dict = {}
        self.description = ""
        self.skipped_globs: list = []
        #: ${CWD} rules left out by ``unsafe_cwd = "skip"``: (path, origin, why)
        self.skipped_cwd: list = []
        self.unscoped = 0  # scopes some profile lifted (scope.X = false)
        self.applied: set = set()  # real paths of the files applied (extends dedup)
        #: ${CWD} rules left out because the directory is /, $HOME or above
        #: it: (ProfileError, expanded path); `landwrap run` refuses them in
        #: strict mode and warns in best-effort.
        self.cwd_refused: list = []
        #: Install prefixes of the command (``${exe_prefix}``): as found on
        #: PATH and, when that is a symlink, of its real path.
        self.exe_prefixes: list = []
        #: ``create = true`` rules: [(path, origin)] that `landwrap run`
        #: creates (0700, owned by the user the command runs as) first.
        self.create_dirs: list = []
        #: ``private_tmp = true``: `landwrap run` gives the command a fresh
        #: TMPDIR of its own, removed when it ends.
        self.private_tmp = False
        #: The profile names (or files) asked for, for messages.
        self.names: list = []
        #: Why this profile was chosen (automatic selection), for reports.
        self.why = ""

    @property
    def sources(self) -> list:
        return self.ruleset.sources

    def env_settings(self) -> list:
        """The [env] table as --env style settings."""
        return list(self.env_pass) + [f"{k}={v}" for k, v in self.env_set.items()]


def _apply_document(prof: Profile, doc: dict, path: str, environ=None) -> None:
    """Validate *doc* and add its allowances to *prof* (not its extends)."""
    pdir = os.path.dirname(os.path.abspath(path))
    variables = builtin_vars(pdir, environ)
    ctx = _Ctx(path, variables)
    _unknown(ctx, None, doc, TOP_KEYS)
    rs = prof.ruleset

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

    fs = doc.get("filesystem", {})
    _expect(ctx, "filesystem", fs, dict, "filesystem")
    _unknown(ctx, "filesystem", fs, FS_KEYS)
    for access in ("ro", "rox", "rw", "rwx"):
        key = f"filesystem.{access}"
        plain = []  # optional, glob-free paths: added in one go
        for item in [v for it in _list(ctx, key, fs.get(access, []), "filesystem")
                     for v in (_variants(prof, it) if type(it) is str else [it])]:
            required = False
            if type(item) is str:
                p = _path(ctx, key, item, "filesystem")
                if p is None or _cwd_refused(prof, ctx, key, item, p, "filesystem", None):
                    continue
                if not _is_glob(p):
                    plain.append(p)
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
        if len(rs.paths) + len(plain) > MAX_RULES:
            ctx.fail(key, f"more than {MAX_RULES} path rules in all", "filesystem")
        rs.allow_paths(plain, access, origin=f"{path}: {key}", required=False)
    rules = fs.get("rule", [])
    if isinstance(rules, dict):
        rules = [rules]
    rules = _list(ctx, "filesystem.rule", rules, "filesystem")
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
        acc = _list(ctx, key + ".access", rule["access"], table, i)
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
    for item in _list(ctx, "filesystem.hide", fs.get("hide", []), "filesystem"):
        p = _path(ctx, "filesystem.hide", item, "filesystem")
        if p is None:
            continue
        if p == "/":
            ctx.fail("filesystem.hide", "cannot hide / (grant less instead)", "filesystem")
        found = [p]  # even when nothing matches: its directory is carved, so
        if _is_glob(p):  # a matching file created later is not granted either
            for m in _iglob(p):
                found.append(m)
                if len(found) > MAX_MATCHES:
                    ctx.fail("filesystem.hide", f"{p!r} matches more than {MAX_MATCHES} "
                             "paths", "filesystem")
        for m in found:
            rs.hide(m, origin=f"{path}: filesystem.hide")
    if "private_tmp" in fs and _expect(ctx, "filesystem.private_tmp", fs["private_tmp"],
                                       bool, "filesystem"):
        prof.private_tmp = True
    if "unrestricted" in fs and _expect(ctx, "filesystem.unrestricted", fs["unrestricted"],
                                        bool, "filesystem"):
        rs.fs = False

    net = doc.get("network", {})
    _expect(ctx, "network", net, dict, "network")
    _unknown(ctx, "network", net, NET_KEYS)
    for k, right in NET_RIGHT.items():
        key = f"network.{k}"
        for spec in _list(ctx, key, net.get(k, []), "network"):
            if isinstance(spec, bool) or not isinstance(spec, (int, str)):
                ctx.fail(key, f"expected a port or \"LOW-HIGH\", got {_type_name(spec)}", "network")
            try:
                parse_ports(spec)
            except LandwrapError as e:
                ctx.fail(key, e.message, "network")
            rs.allow_port(spec, right, origin=f"{path}: {key}",
                          required=right in ("bind_tcp", "connect_tcp"))
    if "unrestricted" in net and _expect(ctx, "network.unrestricted", net["unrestricted"],
                                         bool, "network"):
        rs.net = False

    scope = doc.get("scope", {})
    _expect(ctx, "scope", scope, dict, "scope")
    _unknown(ctx, "scope", scope, SCOPE_KEYS)
    for k in SCOPE_KEYS:
        if k in scope:
            bit = compat.SCOPES[k][0]
            if _expect(ctx, f"scope.{k}", scope[k], bool, "scope"):
                rs.require_scopes(bit)
            else:
                prof.unscoped |= bit

    env = doc.get("env", {})
    _expect(ctx, "env", env, dict, "env")
    _unknown(ctx, "env", env, ENV_KEYS)
    if "clean" in env and _expect(ctx, "env.clean", env["clean"], bool, "env"):
        prof.env_clean = True
    for name in _list(ctx, "env.pass", env.get("pass", []), "env"):
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


def _iglob(p: str):
    """The paths glob pattern *p* matches.  A pattern whose wildcards (``*``
    and ``?`` only, not ``**``) are all in its last component -- ``/etc/shadow*``, the
    default profile's hidden secrets -- is matched with one listdir, without
    importing glob (glob, re, enum and contextlib cost ~14 ms of every run's
    start); anything else goes to glob."""
    parent, _, last = p.rpartition("/")
    if "[" in p or "**" in last or _is_glob(parent) or not last:
        import glob  # only for richer patterns: its imports cost start-up time

        return glob.iglob(_collapse_globstars(p), recursive=True)
    try:
        names = os.listdir(parent or "/")
    except OSError:
        return iter(())
    return (f"{parent}/{n}" for n in names
            if (n[0] != "." or last[0] == ".") and _wild_match(last, n))


def _wild_match(pattern: str, name: str) -> bool:
    """fnmatch's answer for a pattern of literal characters, ``*`` and
    ``?`` (no ``[...]``), without regular expressions."""
    p = n = 0
    star, mark = -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] in ("?", name[n]):
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star, mark = p, n
            p += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            n = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _collapse_globstars(p: str) -> str:
    """``/**/**/`` matches what ``/**/`` matches, once; repeated, it makes
    glob walk the tree once per extra ``**`` and yield each match again."""
    while "/**/**" in p:
        p = p.replace("/**/**", "/**")
    return p


def _allow(prof, ctx, key, p, access, required, table, index, exact=0):
    origin = f"{ctx.path}: {key}"
    rs = prof.ruleset
    if _is_glob(p):
        p = _collapse_globstars(p)
        matches = []
        for m in _iglob(p):
            matches.append(m)
            if len(matches) > MAX_MATCHES:
                ctx.fail(key, f"{p!r} matches more than {MAX_MATCHES} paths", table, index)
        matches = sorted(set(matches))
        if not matches:
            if required:
                ctx.fail(key, f"{p!r} matches nothing (and the rule is required)", table, index)
            prof.skipped_globs.append((p, origin))
            return
    else:
        matches = (p,)
    if len(rs.paths) + len(matches) > MAX_RULES:
        ctx.fail(key, f"more than {MAX_RULES} path rules in all", table, index)
    for m in matches:
        rs.allow(m, access, origin=origin, required=required, need=exact)


def _create(prof, ctx, key, p, table, index) -> None:
    """``create = true``: `landwrap run` makes the directory before
    restricting (see runcmd.create_dirs); globs make no sense there."""
    if _is_glob(p):
        ctx.fail(key, f"create = true needs a plain path, not the glob {p!r}", table, index)
    prof.create_dirs.append((p, f"{ctx.path}: {key}"))


def _unsafe_cwd(ctx, key, item, table, index) -> bool:
    """The ``unsafe_cwd`` key of an entry table: True for "skip"."""
    if "unsafe_cwd" not in item:
        return False
    v = _expect(ctx, key + ".unsafe_cwd", item["unsafe_cwd"], str, table, index)
    if v not in ("refuse", "skip"):
        ctx.fail(key + ".unsafe_cwd", f"expected 'refuse' or 'skip', got {v!r}", table, index)
    return v == "skip"


def _cwd_refused(prof, ctx, key, raw, p, table, index, skip=False) -> bool:
    """A rule using ${CWD} that would grant /, $HOME or a directory above
    $HOME is left out (and recorded): started from such a directory, a
    project-directory profile would open the whole home or system.  With
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


def exe_prefixes(program: str, environ=None) -> list:
    """``${exe_prefix}``: the installation prefix of *program* (the
    directory above its ``bin``/``sbin``, else its directory), for the path
    as found and for its real path (a venv's python3 is a symlink to the
    real interpreter).  A prefix that is /, the home directory or above it
    is left out."""
    env = os.environ if environ is None else environ
    home = os.path.realpath(env.get("HOME") or "/")
    out = []
    for p in (os.path.abspath(program), os.path.realpath(program)):
        d = os.path.dirname(p)
        if os.path.basename(d) in ("bin", "sbin"):
            d = os.path.dirname(d)
        real = os.path.realpath(d)
        if real == "/" or real == home or home.startswith(real.rstrip("/") + "/"):
            continue
        if d not in out:
            out.append(d)
    return out


def _variants(prof, raw) -> list:
    """*raw* once per ``${exe_prefix}`` value (none when the command is
    unknown); other entries as they are."""
    if type(raw) is not str or "${exe_prefix}" not in raw:
        return [raw]
    return [raw.replace("${exe_prefix}", d.replace("$", "$$")) for d in prof.exe_prefixes]


def programs(doc: dict, path: str, name: str | None = None) -> list:
    """The executables a profile is for: its ``programs`` key, or NAME in
    each of :data:`SYSTEM_BIN_DIRS` (NAME from the file name)."""
    if "programs" not in doc:
        if name is None:
            name = os.path.basename(path)
            name = name[:-len(SUFFIX)] if name.endswith(SUFFIX) else name
        return [os.path.join(d, name) for d in SYSTEM_BIN_DIRS]
    ctx = _Ctx(path, {})
    out = []
    for p in _list(ctx, "programs", doc["programs"]):
        if type(p) is not str or not p.startswith("/") or "\0" in p:
            ctx.fail("programs", f"expected absolute paths of executables, got {p!r}")
        out.append(p)
    return out


# composition -----------------------------------------------------------

def locate(spec: str, base_dir: str | None, dirs) -> str:
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


def _load_into(prof: Profile, spec: str, base_dir, dirs, chain: list, environ) -> None:
    path = locate(spec, base_dir, dirs)
    if is_path(spec):
        _require_trusted(path)
    real = os.path.realpath(path)
    if real in chain:
        cycle = " -> ".join(chain[chain.index(real):] + [real])
        raise ProfileError(f"extends cycle: {cycle}", path, line_of(path, None, "extends"),
                           "extends")
    if len(chain) >= MAX_DEPTH:
        raise ProfileError(f"extends chain deeper than {MAX_DEPTH}", path,
                           line_of(path, None, "extends"), "extends")
    if real in prof.applied:
        return  # reached again through another extends: a union, once is enough
    prof.applied.add(real)
    doc = load_document(path)
    if is_landlockconfig(doc):
        from . import landlockconfig

        landlockconfig.apply(prof, doc, path)
        prof.ruleset.sources.append(path)
        return
    parents = doc.get("extends", [])
    ctx = _Ctx(path, {})
    parents = _list(ctx, "extends", parents)
    for parent in parents:
        if not isinstance(parent, str):
            ctx.fail("extends", f"expected profile names or paths, got {_type_name(parent)}")
        try:
            _load_into(prof, parent, os.path.dirname(path), dirs, chain + [real], environ)
        except ProfileError as e:
            if e.file is None:  # not found: say who asked
                raise ProfileError(e.detail, path, line_of(path, None, "extends"),
                                   "extends", e.hint) from None
            raise
    _apply_document(prof, doc, path, environ)
    if path not in prof.ruleset.sources:
        prof.ruleset.sources.append(path)
    if not is_path(spec):
        for local in find_locals(spec, dirs):
            # a local file is a profile of its own: its extends are followed
            _load_into(prof, local, None, dirs, chain + [real], environ)


def is_landlockconfig(doc: dict) -> bool:
    """Whether a parsed document is in landlockconfig rather than landwrap
    profile format (either spelling: TOML, or JSON's camelCase).  Here, not
    in landlockconfig.py, so that reading a profile does not import it."""
    return any(k in doc for k in ("ruleset", "path_beneath", "net_port", "variable",
                                  "pathBeneath", "netPort"))


def load(specs, *, dirs=None, environ=None, program: str | None = None) -> Profile:
    """Resolve profile names/paths (later ones add to earlier) into one
    :class:`Profile`.  *program* (the resolved command) gives
    ``${exe_prefix}``.  Raises ProfileError."""
    dirs = search_path(environ) if dirs is None else dirs
    prof = Profile()
    if program:
        prof.exe_prefixes = exe_prefixes(program, environ)
    protect(prof.ruleset, environ)
    for spec in specs:
        _load_into(prof, spec, None, dirs, [], environ)
    rs = prof.ruleset
    if prof.unscoped:
        rs.scopes &= ~prof.unscoped
        rs.need["scoped"] &= ~prof.unscoped
    return prof


def protect(rs: Ruleset, environ=None) -> None:
    """Mark landwrap's own state directories (for the user of *environ*,
    and for the caller) as never writable from *rs*'s sandbox."""
    for d in state_dirs(environ) + (state_dirs() if environ is not None else []):
        if d not in rs.protected:
            rs.protected.append(d)


def choose(command: str | None, dirs=None, path_env=None) -> tuple:
    """(profile name, why) for `landwrap run COMMAND` without -p.

    The profile named after the command's basename, if the command is one
    of the executables that profile is for (its ``programs``, compared by
    real path); otherwise ``default``.  A copy of ``cat`` named ``gpg`` in
    a download directory is not gpg."""
    if not command:
        return "default", "no command"
    name = os.path.basename(command)
    if not name or name.startswith("."):
        return "default", f"no profile is named after {printable(command)}"
    found = find(name, dirs if dirs is not None else search_path())
    if not found:
        return "default", f"no profile named {printable(name)}"
    from ..engine.spawn import find_program

    try:
        prog = find_program(command, os.environ.get("PATH") if path_env is None else path_env)
    except Exception:  # not found: the run will say so
        return "default", f"{printable(command)} was not found"
    real = os.path.realpath(prog)
    wanted = programs(load_document(found), found, name)
    for p in wanted:
        if os.path.realpath(p) == real:
            return name, (f"{printable(prog)} is {printable(p)}, one of the programs "
                          f"{printable(found)} is for")
    return "default", (f"{printable(prog)} (real path {printable(real)}) is not one of the "
                       f"programs {printable(found)} is for")


def default_for(command: str | None, dirs=None) -> str:
    """The profile `landwrap run COMMAND` uses without -p (see :func:`choose`)."""
    return choose(command, dirs)[0]


def for_command(profiles, command, *, dirs=None, environ=None) -> Profile:
    why = ""
    specs = list(profiles)
    if not specs:
        name, why = choose(command, dirs)
        specs = [name]
        why = f"{name}: {why}"
    program = None
    if command:
        from ..engine.spawn import find_program

        try:
            program = find_program(command, os.environ.get("PATH"))
        except Exception:  # not found: the run will say so
            pass
    prof = load(specs, dirs=dirs, environ=environ, program=program)
    prof.names = [os.path.basename(s)[:-len(SUFFIX)] if s.endswith(SUFFIX) else s
                  for s in specs]
    prof.why = why or "chosen with -p"
    return prof

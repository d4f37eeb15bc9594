"""cache.py: the parse cache, so that `landwrap run` does not pay for the
TOML parser.

Entries are marshal data carrying a MAC keyed by a secret only the user can
read (a sandbox that can write the cache cannot forge an entry); an entry
that fails the check is ignored, never trusted.  Never parses TOML itself.

Only profile *files* are cached (``parse.load_document``): rulesets built
in memory by the API never reach this module.  The cache is bounded
(:data:`MAX_ENTRIES` entries, :data:`MAX_BYTES` bytes, the least recently
used go first) and forgets files that are gone.  That upkeep
(:func:`maintain`) runs only when an entry is written -- a cache miss, when
the TOML parser ran anyway -- never on a hit, and checks the sources of
only the :data:`SOURCE_CHECKS` least recently used entries: a write costs
about as much with a full cache as with an empty one.  It works through a
descriptor of the cache directory, looks only at regular files owned by the
user with the names landwrap gives its entries, never follows a symlink
and removes nothing but directory entries of the cache directory itself.
"""

from __future__ import annotations

import marshal
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterator

from ..engine.trust import untrusted_dirs
from .lookup import untrusted

#: The cache key: 32 random bytes in the cache directory, mode 0600.
KEY_NAME = "key"

#: At most this many entries ...
MAX_ENTRIES = 256
#: ... and this many bytes of them (the entry just written is always kept,
#: however large).  A shipped profile's entry is 1-4 KiB.
MAX_BYTES = 16 << 20

#: A hit older than this (seconds) renews the entry's mtime, so that the
#: least recently *used* entries are evicted first without a write per run.
TOUCH_AFTER = 3600

#: Entries whose source file is checked on each write (the least recently
#: used: those eviction reaches first), so that a write costs the same
#: however full the cache is.
SOURCE_CHECKS = 16

#: A writer's temporary file older than this (seconds) was left by a crash.
STALE_TMP = 3600

# An entry's trailer (after the marshal data, which marshal.loads ignores;
# covered by the entry's MAC): the source file's absolute path, a MAC of the
# path alone (so that upkeep need not read whole entries), its length, magic.
_TRAILER_MAGIC = b"LWsrc1"
_TRAILER_SIZE = 2 + len(_TRAILER_MAGIC)
_PATH_MAC_SIZE = 16
_PATH_MAX = 4096


def _cache_key(cache: str, create: bool) -> bytes | None:
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


def _blake2b(key: bytes, size: int, person: bytes = b"") -> Any:
    try:
        from _blake2 import blake2b  # the C module: hashlib would cost ~7 ms to import
    except ImportError:  # pragma: no cover
        from hashlib import blake2b  # (Pythons without the C module)
    return blake2b(key=key, digest_size=size, person=person)


def _mac(key: bytes, raw: bytes, body: bytes) -> bytes:
    h = _blake2b(key, 32)
    h.update(len(raw).to_bytes(8, "little"))
    h.update(raw)
    h.update(body)
    return bytes(h.digest())


def _path_mac(key: bytes, path: bytes) -> bytes:
    h = _blake2b(key, _PATH_MAC_SIZE, b"landwrap-source")
    h.update(path)
    return bytes(h.digest())


def _trailer(key: bytes, source: str | None) -> bytes:
    """The trailer naming the entry's source file (empty: no usable path)."""
    if not source:
        return b""
    path = os.fsencode(os.path.abspath(source))
    if len(path) > _PATH_MAX or b"\0" in path:
        return b""
    return path + _path_mac(key, path) + len(path).to_bytes(2, "little") + _TRAILER_MAGIC


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


def read_entry(cache: str, key: str, raw: bytes) -> dict[str, Any] | None:
    """The document cached under *key* for a file whose bytes are *raw*, or
    None (no entry, or one that is not trusted or does not match)."""
    try:
        fd = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or (
                st.st_mode & 0o170000) != 0o100000 or not _cache_trusted(cache):
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
        doc = marshal.loads(body)  # (ignores the trailer)
        if type(doc) is not dict:
            return None
        if time.time() - st.st_mtime > TOUCH_AFTER:
            try:  # recently used: evicted last (see maintain)
                os.utime(fd)
            except OSError:
                pass
        return doc
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        os.close(fd)


def write_entry(cache: str, key: str, raw: bytes, doc: dict[str, Any],
                source: str | None = None) -> None:
    """Cache *doc*, parsed from the file *source* whose bytes are *raw*,
    under *key* (a path in *cache*); then keep the cache within its bounds
    (:func:`maintain`).  Fails silently: the cache is only an optimisation."""
    try:
        body = marshal.dumps(doc)
    except ValueError:  # e.g. a datetime value: it will fail validation anyway
        return
    try:
        if not os.path.isdir(cache):
            # create it only in a directory nobody else controls: never in
            # another user's (root under sudo -E, su without -)
            parent = os.path.dirname(os.path.abspath(cache))
            if untrusted_dirs(os.path.realpath(parent), (0, os.getuid(), os.geteuid())):
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
        body += _trailer(secret, source)
        tmp = f"{key}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(_mac(secret, raw, body) + body)
        os.replace(tmp, key)
    except OSError:
        return
    maintain(cache, keep=os.path.basename(key), secret=secret, sources=SOURCE_CHECKS)


# upkeep ---------------------------------------------------------------------

def _entry_identity(name: str) -> tuple[int, int, int, int] | None:
    """(dev, ino, mtime_ns, size) from an entry's name
    (``dev-ino-mtime-size.VERSION.marshal``, hex), or None: not an entry."""
    if not name.endswith(".marshal"):
        return None
    fields = name.split(".", 1)[0].split("-")
    if len(fields) != 4:
        return None
    try:
        dev, ino, mtime, size = (int(x, 16) for x in fields)
    except ValueError:
        return None
    return dev, ino, mtime, size


def _source_of(dfd: int, name: str, size: int, secret: bytes | None) -> str | None:
    """The source path in entry *name*'s trailer, when its path MAC checks
    out; None otherwise (an older entry, or not ours)."""
    if secret is None or size < 32 + _TRAILER_SIZE:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dfd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000 or st.st_uid != os.geteuid():
            return None
        start = max(32, st.st_size - (_TRAILER_SIZE + _PATH_MAC_SIZE + _PATH_MAX))
        tail = os.pread(fd, st.st_size - start, start)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not tail.endswith(_TRAILER_MAGIC) or len(tail) < _TRAILER_SIZE:
        return None
    n = int.from_bytes(tail[-_TRAILER_SIZE:-len(_TRAILER_MAGIC)], "little")
    end = len(tail) - _TRAILER_SIZE
    if n == 0 or end - _PATH_MAC_SIZE - n < 0:
        return None
    path, mac = tail[end - _PATH_MAC_SIZE - n:end - _PATH_MAC_SIZE], tail[end - _PATH_MAC_SIZE:end]
    from _operator import _compare_digest

    if not _compare_digest(mac, _path_mac(secret, path)):
        return None
    return os.fsdecode(path)


def _gone(source: str, ident: tuple[int, int, int, int]) -> bool:
    """Whether the entry for *ident* can never be used again: its source
    file is gone, or is now another file or other contents."""
    try:
        st = os.stat(source)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False  # cannot tell (a permission): keep it
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size) != ident


def _own_files(dfd: int) -> Iterator[tuple[str, os.stat_result]]:
    """(name, lstat) of each regular file owned by the user in the cache
    directory (never through a symlink: lstat relative to *dfd*)."""
    euid = os.geteuid()
    for name in os.listdir(dfd):
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except (OSError, ValueError):
            continue
        if (st.st_mode & 0o170000) == 0o100000 and st.st_uid == euid:
            yield name, st


def maintain(cache: str, keep: str | None = None, secret: bytes | None = None,
             max_entries: int | None = None, max_bytes: int | None = None,
             sources: int | None = None) -> int:
    """Keep the cache directory *cache* within its bounds; returns how many
    files were removed.  Removes, in this order: other entries for the same
    file as *keep* (the entry just written: an edited file's old entries),
    entries whose source file is gone or changed (*sources*: checked for
    that many of the least recently used entries, the ones eviction would
    reach first; None: all), writers' temporary files left by a crash, then
    the least recently used entries until at most *max_entries* entries of
    at most *max_bytes* bytes remain (*keep* is never removed).  Only
    regular files owned by the user with the names of entries or temporary
    files are looked at (not the key, nothing else) and only through a
    descriptor of the directory, never a symlink; a directory that is not
    trusted (see read_entry) is left alone."""
    try:
        dfd = os.open(cache, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    max_entries = MAX_ENTRIES if max_entries is None else max_entries
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    removed = 0
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not _cache_trusted(cache):
            return 0
        if secret is None:
            secret = _cache_key(cache, False)
        prefix = None
        if keep is not None and _entry_identity(keep) is not None:
            prefix = keep[:keep.index("-", keep.index("-") + 1) + 1]  # "dev-ino-"
        now = time.time()
        entries: list[tuple[float, int, str, tuple[int, int, int, int]]] = []
        for name, est in _own_files(dfd):
            if name == keep or name == KEY_NAME:
                continue
            if name.endswith(".tmp"):
                if _entry_identity(name.rsplit(".", 2)[0]) is not None \
                        and now - est.st_mtime > STALE_TMP:
                    removed += _unlink(dfd, name)
                continue
            ident = _entry_identity(name)
            if ident is None:
                continue  # not ours to judge
            if prefix is not None and name.startswith(prefix):
                removed += _unlink(dfd, name)
            else:
                entries.append((est.st_mtime, est.st_size, name, ident))
        entries.sort()
        live: list[tuple[int, str]] = []
        for i, (_, size, name, ident) in enumerate(entries):
            if sources is None or i < sources:
                source = _source_of(dfd, name, size, secret)
                if source is not None and _gone(source, ident):
                    removed += _unlink(dfd, name)
                    continue
            live.append((size, name))
        total = sum(size for size, _ in live)
        count = len(live) + (keep is not None)
        if keep is not None:
            try:
                total += os.stat(keep, dir_fd=dfd, follow_symlinks=False).st_size
            except OSError:
                pass
        for size, name in live:  # the least recently used first
            if count <= max_entries and total <= max_bytes:
                break
            removed += _unlink(dfd, name)
            count -= 1
            total -= size
    except OSError:
        pass
    finally:
        os.close(dfd)
    return removed


def _unlink(dfd: int, name: str) -> int:
    """Remove the directory entry *name* of *dfd* (a symlink itself, never
    what it points to); 1 if removed."""
    try:
        os.unlink(name, dir_fd=dfd)
        return 1
    except OSError:
        return 0


def clear(cache: str) -> int:
    """Remove every entry (and the key, and temporary files) of the cache
    directory *cache*; returns how many files were removed.  Nothing else
    in the directory is touched."""
    return maintain(cache, max_entries=0, max_bytes=0) + _clear_rest(cache)


def _clear_rest(cache: str) -> int:
    removed = 0
    try:
        dfd = os.open(cache, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        st = os.fstat(dfd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return 0
        for name, _ in _own_files(dfd):
            if name == KEY_NAME or (name.endswith(".tmp") and
                                    _entry_identity(name.rsplit(".", 2)[0]) is not None):
                removed += _unlink(dfd, name)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return removed

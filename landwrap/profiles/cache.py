"""cache.py: the parse cache, so that `landwrap run` does not pay for the
TOML parser.

Entries are marshal data carrying a MAC keyed by a secret only the user can
read (a sandbox that can write the cache cannot forge an entry); an entry
that fails the check is ignored, never trusted.  Never parses TOML itself.
"""

from __future__ import annotations

import marshal
import os

from ..engine.trust import untrusted_dirs
from .lookup import untrusted

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The cache key: 32 random bytes in the cache directory, mode 0600.
KEY_NAME = "key"


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


def _mac(key: bytes, raw: bytes, body: bytes) -> bytes:
    try:
        from _blake2 import blake2b  # the C module: hashlib would cost ~7 ms to import
    except ImportError:  # pragma: no cover
        from hashlib import blake2b  # (Pythons without the C module)
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


def read_entry(cache: str, key: str, raw: bytes) -> dict[str, Any] | None:
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


def write_entry(cache: str, key: str, raw: bytes, doc: dict[str, Any]) -> None:
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

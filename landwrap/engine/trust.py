"""trust.py: who else could change a directory.

sshd's StrictModes rule, in one place: a directory (and every one above
it) may be changed only by root and the given users when each is owned by
one of them and not writable by group or others -- a root-owned directory
with the sticky bit (/tmp) excepted, where others cannot rename or remove
what they do not own.  Used for profile trust (profiles.lookup) and for
rules that go through a symlink (engine.plan).  Only stat calls, cached.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Collection

_dir_verdicts: dict[tuple[str, tuple[int, ...]], str] = {}


def owner_ok(st: os.stat_result, uids: Collection[int]) -> bool:
    return st.st_uid in uids


def untrusted_dirs(d: str, uids: tuple[int, ...]) -> str | None:
    """Why directory *d* (real, absolute) or one above it could be changed
    by someone else than *uids*, or None."""
    while True:
        key = (d, uids)
        verdict = _dir_verdicts.get(key)
        if verdict is None:
            try:
                dst = os.stat(d)
            except OSError as e:
                verdict = f"{d}: {e.strerror}"
            else:
                if not owner_ok(dst, uids):
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

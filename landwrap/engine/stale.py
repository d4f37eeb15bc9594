"""stale.py: has a directory a plan's rules were bound to been replaced?

A Landlock rule binds to the inode its path named when the kernel ruleset
was built (LANDLOCK.md, pitfall 3): a directory deleted and re-created,
or renamed over, keeps its path but loses its rule.  A reused Ruleset
checks this before each spawn (issue 11).  Stat'ing every directory rule
each time costs one system call per rule (about 0.1 ms for the default
profile's 77, a sixth of a spawn), so this module asks a cheaper question
first:

A path names another inode only if (a) one of its ancestors had an entry
added, removed or renamed, which updates that ancestor's mtime and ctime,
(b) an ancestor itself names another inode, or (c) a mount changed (a
file system mounted over the directory itself: the rule, bound to the
directory beneath, does not reach into it; checked on 6.18).  So each
check stats the distinct ancestors of the rules (5 for the default
profile) and polls ``/proc/self/mountinfo`` (a priority event after any
mount or unmount in this mount namespace); only the rules beneath an
ancestor that changed, or all of them after a mount change, are stat'ed
one by one.  A rule's directory is compared by device, inode number and a
digest of its file handle (name_to_handle_at): a directory deleted and
made again may get the inode number just freed (ext4 hands it out again
at once), but not the same handle, which holds the inode's generation.

Timestamps are trusted only where they are kept by a local filesystem
(``TRUSTED_FS``; network filesystems do not see other clients' changes
this way, pseudo filesystems such as /proc do not always update them) and
only once they are ``SETTLE`` seconds old: a filesystem with coarse timestamps
could give two changes within one tick the same time.  Anything else --
an ancestor on another filesystem, a recent change, a mount table that
cannot be watched -- means the rules beneath it are stat'ed, as before.

No policy and no kernel ruleset here: stat calls and one open file.
"""

from __future__ import annotations

import os
import select
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # (typing costs start-up time)
    from typing import Optional, Sequence

from . import _binding

#: How old an ancestor's timestamps must be before they are trusted (s).
SETTLE = 2.0

#: Filesystems whose directory timestamps change with every entry change
#: made on this machine (local ones).
TRUSTED_FS = frozenset((
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "devtmpfs", "ramfs", "f2fs",
    "overlay", "zfs", "bcachefs", "jfs", "reiserfs", "nilfs2",
))

_lock = threading.Lock()
_mounts: Optional["_MountWatch"] = None
#: The generation the next watch starts at: above any a checker has seen.
_epoch = 0


class _MountWatch:
    """This process's mount table: a generation count bumped at each
    change seen, and which devices are on a trusted filesystem.

    Keeps /proc/self/mountinfo open (close-on-exec), the one descriptor
    landwrap holds for the life of a process that uses a Ruleset for
    spawning.  Code may close it (``os.closerange``) and let another file
    take its number: each check fstats it first, and a descriptor that is
    not the one opened here is left alone (never closed) and replaced."""

    __slots__ = ("fd", "ident", "poll", "generation", "trusted")

    def __init__(self, generation: int) -> None:
        self.fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(self.fd)
            self.trusted = trusted_devices()
        except OSError:
            os.close(self.fd)
            raise
        self.ident = (st.st_dev, st.st_ino)
        self.poll = select.poll()
        self.poll.register(self.fd, select.POLLPRI)
        self.generation = generation

    def ours(self) -> bool:
        try:
            st = os.fstat(self.fd)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.ident

    def check(self, changed: int | None = None) -> int:
        """The generation, bumped (and the devices read again) when the
        mount table changed since the last check (*changed*: what a poll
        just made by _binding.LstatIds.probe found; None: poll here)."""
        if self.poll.poll(0) if changed is None else changed:
            self.generation += 1
            self.trusted = trusted_devices()
        return self.generation


def trusted_devices() -> frozenset[int]:
    """The device numbers of this process's mounts of a TRUSTED_FS type."""
    with open("/proc/self/mountinfo", "rb") as f:
        text = f.read()
    out = set()
    for line in text.splitlines():
        fields = line.split()
        try:
            fstype = fields[fields.index(b"-") + 1].decode()
            major, minor = (int(x) for x in fields[2].split(b":"))
        except (ValueError, IndexError):
            continue
        if fstype in TRUSTED_FS:
            out.add(os.makedev(major, minor))
    return frozenset(out)


def mount_state() -> tuple[int, frozenset[int]]:
    """``(generation, trusted devices)`` of this process's mount table;
    generation -1 when it cannot be watched (then nothing is trusted)."""
    generation, trusted, _ = probe_state(None)
    return generation, trusted


def probe_state(lstat: Optional[_binding.LstatIds]
                ) -> tuple[int, frozenset[int], Optional[list[int]]]:
    """:func:`mount_state` and, with *lstat*, its paths' ids (None when
    they were not taken: no watch yet, or a watch found not ours), in one
    C call through the watch's descriptor.  All under the lock: the poll
    takes the event it finds, so no other check may poll in between and
    miss it."""
    global _mounts, _epoch
    with _lock:  # one poll at a time (select.poll refuses concurrent use)
        try:
            ids = None
            changed: Optional[int] = None
            if _mounts is not None:
                if lstat is not None:
                    got = lstat.probe(_mounts.fd, *_mounts.ident)
                    ours, changed, ids = bool(got[0]), got[1], got[2:]
                else:
                    ours = _mounts.ours()
                if not ours:
                    _epoch, _mounts = _mounts.generation + 1, None  # not ours: leave it
                    ids = changed = None
            if _mounts is None:
                _mounts = _MountWatch(_epoch)
            return _mounts.check(changed), _mounts.trusted, ids
        except OSError:  # no /proc (or a sandbox that denies it)
            return -1, frozenset(), None


def unchanged(lstat: _binding.LstatIds, generation: int, reference: object) -> bool:
    """Whether the mount table is still at *generation* (the watch ours,
    no event) and *lstat*'s paths have the very ids *reference* holds: the
    common answer of a check, in one C call that compares them itself.
    False sends the caller the long way (:func:`probe_state`); an event
    this poll took has bumped the generation first, under the lock."""
    global _mounts, _epoch
    with _lock:
        m = _mounts
        if m is None or m.generation != generation:
            return False
        got = lstat.same(m.fd, m.ident[0], m.ident[1], reference)
        if not got & 1:  # not ours any more: leave it (as probe_state does)
            _epoch, _mounts = m.generation + 1, None
            return False
        if got & 2:
            m.check(1)
            return False
        return bool(got & 4)


def _after_fork() -> None:
    """In a forked child: the open file is shared with the parent, whose
    events a poll here would take.  Close it (it is ours if it is still
    the one opened) and start over with a new generation."""
    global _mounts, _epoch, _lock
    _lock = threading.Lock()
    old, _mounts = _mounts, None
    if old is not None:
        if old.ours():
            os.close(old.fd)
        _epoch = old.generation + 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class DirCheck:
    """Which of *dirs* (``[(path, st_dev, st_ino, handle digest)]`` as
    bound) no longer name the same directory; see the module docstring."""

    __slots__ = ("dirs", "dirs_of", "_ancestors", "_beneath", "_seen", "_generation",
                 "_lstat", "_same")

    def __init__(self, dirs: Sequence[tuple[str, int, int, int]]) -> None:
        self.dirs_of = dirs  # the list given (a plan makes a new one on rebuilding)
        self.dirs = list(dirs)
        index: dict[str, int] = {}
        beneath: list[list[int]] = []
        for k, (path, *_ids) in enumerate(self.dirs):
            chain = [path] if path == "/" else []  # "/" changes only by chroot
            a = path
            while a not in ("/", ""):
                a = a.rpartition("/")[0] or "/"
                chain.append(a)
            for a in chain:
                i = index.setdefault(a, len(index))
                if i == len(beneath):
                    beneath.append([])
                beneath[i].append(k)
        self._ancestors = list(index)
        self._beneath = beneath
        #: per ancestor, its identity when last verified (settled, trusted,
        #: and every rule beneath it found unchanged after it was taken)
        self._seen: list[Optional[tuple[int, ...]]] = [None] * len(index)
        self._lstat = _binding.LstatIds(self._ancestors)
        #: (_seen, generation, ids, ids held for C) of the last check that
        #: found every ancestor as in _seen: the same ids again need no
        #: comparison (:func:`unchanged` makes it in C)
        self._same: Optional[tuple[list[Optional[tuple[int, ...]]], int, list[int],
                                   object]] = None
        self._generation = -2

    def replaced(self) -> list[str]:
        """The paths of *dirs* that name another directory now (or none)."""
        same = self._same
        if same is not None and same[0] is self._seen and unchanged(self._lstat, same[1],
                                                                     same[3]):
            return []  # as at the last check that found them all unchanged
        # One C call: the mount table's watch (still ours? an event?), then
        # the ancestors (see below); after the watch when it was new.
        generation, trusted, got = probe_state(self._lstat)
        ids = got if got is not None else self._lstat.ids()
        if generation < 0 or generation != self._generation:
            self._seen = [None] * len(self._ancestors)
            self._same = None
        # snapshots first, then the rules beneath: a change after the
        # snapshot shows on the ancestor at the next check
        seen = self._seen
        # (ok, st_dev, st_ino, ctime ns, mtime ns) per ancestor, in one call:
        # any change of an inode (entries, mode, owner, links) moves its
        # ctime, so these identify an unchanged directory.  A time before
        # 1970 reads as a huge number: never settled, so never trusted.
        same = self._same
        if same is not None and same[0] is seen and same[1] == generation and same[2] == ids:
            return []  # every ancestor as when last found unchanged (ctime never goes back)
        settled = int((time.time() - SETTLE) * 1e9)
        fresh: dict[int, Optional[tuple[int, ...]]] = {}
        for i in range(len(self._ancestors)):
            cur = tuple(ids[5 * i:5 * i + 5])
            if cur != seen[i]:
                ok = cur[0] and cur[1] in trusted and cur[3] < settled and cur[4] < settled
                fresh[i] = cur if ok else None
        if not fresh:
            self._same = (seen, generation, ids, self._lstat.reference(ids))
            return []
        self._same = None
        check = sorted({k for i in fresh for k in self._beneath[i]})
        out = []
        bad: set[int] = set()
        # (st_dev, st_ino, handle digest) now: the inode number alone would
        # not do, a new directory may get the one just freed (ext4 does)
        now = _binding.path_ids([self.dirs[k][0] for k in check])
        for k, now_ids in zip(check, now):
            path, dev, ino, handle = self.dirs[k]
            if now_ids != (dev, ino, handle):
                out.append(path)
                bad.add(k)
        for i, verified in fresh.items():
            if not bad.intersection(self._beneath[i]):
                seen[i] = verified
        self._generation = generation
        return out

"""kernel_ruleset.py: a Plan -> the kernel's Landlock ruleset.

Builds the ruleset once (:meth:`KernelRuleset.ruleset_fd`) and reuses it,
after checking that the descriptor is still the one this plan built (code
may have closed it and let another file take its number: see
:func:`fd_is_ours`).  Only the binding makes system calls; this module
never decides what to allow (plan.py does) and never prints.
"""

from __future__ import annotations

import os

from . import compat
from .errors import RulesetError

TYPE_CHECKING = False   # (typing costs start-up time: only for type checkers)
if TYPE_CHECKING:
    from _thread import RLock
    from typing import Any, Iterable

    from .plan import Rule
    from .stale import DirCheck

# Which Plan built the ruleset behind each descriptor number, and the open
# file it was: ``{fd: (plan id, (st_dev, st_ino), status flags)}``.  Every
# Landlock ruleset shares one anonymous inode (st_dev/st_ino are the same
# for all of them, checked on 6.18), so the inode alone tells a ruleset
# from another file but not one ruleset from another; the table tells
# landwrap's own rulesets apart, and the O_APPEND mark (meaningless on a
# ruleset, which cannot be read or written) those of other code.
_OWNERS: dict[int, tuple[int, tuple[int, int], int]] = {}
_MARK = os.O_APPEND

#: The plans a thread is in ruleset_fd for (once per thread), so that a
#: child forked meanwhile gets fresh build locks (one another thread held
#: at the fork would never be released there).
_building: list[Any] = []


def _after_fork() -> None:
    from _thread import RLock  # (built in, loaded at start-up)

    for plan in _building:
        plan._build_lock = RLock()
    _building.clear()


os.register_at_fork(after_in_child=_after_fork)


def claim_fd(fd: int, plan: object) -> None:
    from . import _binding  # (loaded: the ruleset was just made through it)

    dev, ino, flags = _binding.fd_state(fd, _MARK)
    _OWNERS[fd] = (id(plan), (dev, ino), flags)


def fd_is_ours(fd: int, plan: object) -> bool:
    """Whether descriptor *fd* is still the ruleset *plan* built."""
    entry = _OWNERS.get(fd)
    return entry is not None and entry[0] == id(plan) and _still_claimed(fd, entry)


def _still_claimed(fd: int, entry: tuple[int, tuple[int, int], int]) -> bool:
    """Whether *fd* is still the open file its :data:`_OWNERS` *entry* records."""
    from . import _binding  # (loaded: a ruleset was made through it)

    try:
        dev, ino, flags = _binding.fd_state(fd)
    except OSError:
        return False
    return (dev, ino) == entry[1] and flags == entry[2]


def ruleset_among(fds: Iterable[int]) -> int | None:
    """The first of *fds* that is one of landwrap's kernel rulesets (as
    built, :func:`claim_fd`), or None.  A program given such a descriptor
    can add rules to that ruleset (landlock_add_rule needs no privilege and
    works from inside a sandbox), and every later spawn that reuses it
    enforces them: a spawn must never hand one over.  Only numbers in the
    table are checked (a dict look-up each), with the fstat and flags of
    :func:`fd_is_ours` (a number whose ruleset was closed may hold any file now)."""
    for fd in fds:
        entry = _OWNERS.get(fd)
        if entry is not None and _still_claimed(fd, entry):
            return fd
    return None


class KernelRuleset:
    """The kernel half of :class:`~landwrap.engine.plan.Plan`: building,
    checking and closing its Landlock ruleset."""

    if TYPE_CHECKING:  # set by Plan
        fs: int
        net: int
        scoped: int
        ports: list[tuple[int, int, list[str]]]
        _fd: int
        _complete: bool
        _todo: set[str] | None
        _dirs: list[tuple[str, int, int, int]]
        track_dirs: bool
        _build_lock: RLock
        _special: dict[str, Rule]

        @property
        def rules(self) -> list[Rule]: ...

        @property
        def enforces_anything(self) -> bool: ...

    def ruleset_fd(self) -> int:
        """The kernel ruleset (built on first use, then reused), or -1 when
        there is nothing for Landlock to enforce.  Rules bind to the inodes
        opened while resolving (paths without a symlink on the way) or now
        (the rest, or all of them when the ruleset could not be made then).

        The kept descriptor is checked before each reuse (:func:`fd_is_ours`):
        code that closed it (``os.closerange``) may have let another ruleset,
        or any file, take its number.  Then the ruleset is built again, all
        of it -- by one thread at a time: threads spawning with the same plan
        that all find it gone build it once."""
        _building.append(self)
        try:
            with self._build_lock:
                return self._ruleset_fd()
        finally:
            _building.remove(self)

    def _ruleset_fd(self) -> int:
        if self._fd >= 0 and not fd_is_ours(self._fd, self):
            # not ours any more: never close what is not ours; start over
            self._fd, self._complete, self._todo = -1, False, None
        if self._complete or not self.enforces_anything:
            return self._fd
        from . import _binding  # compiled (cffi): loading a profile must not need it
        fd, self._fd = self._fd, -1
        if fd < 0:
            fd = self._new_ruleset()
            self._todo = None
            self._dirs = identities(r.path for r in self.rules if r.is_dir) \
                if self.track_dirs else []
        if self._todo is None:
            rules = self.rules
        else:
            rules = [self._special[p] for p in sorted(self._todo)]
            if self.track_dirs:
                self._dirs += identities(r.path for r in rules if r.is_dir)
        try:
            try:
                _binding.add_path_rules(fd, [r.path for r in rules], [r.access for r in rules])
            except OSError as e:
                raise rule_error(e) from e
            for port, bits, _ in self.ports:
                try:
                    _binding.add_net_rule(fd, bits, port)
                except OSError as e:
                    raise RulesetError(
                        f"failed to add a rule for port {port}: {e.strerror}",
                        errno=e.errno, port=port) from e
        except BaseException:
            _OWNERS.pop(fd, None)
            os.close(fd)
            self._todo = None
            raise
        self._fd = fd
        self._complete = True
        return fd

    def spawn_fd(self) -> tuple[int, tuple[int, int, int] | None]:
        """``(ruleset_fd(), identity)`` for a spawn: the identity
        ``(st_dev, st_ino, status flags)`` is what the descriptor must
        still be, checked by the spawn itself (_binding.SpawnArgs), so a
        built ruleset is handed over without a system call here.  After
        that check failed (ESTALE), :meth:`ruleset_fd` finds out and builds
        the ruleset again."""
        fd = self._fd
        entry = _OWNERS.get(fd) if self._complete and fd >= 0 else None
        if entry is None or entry[0] != id(self):
            fd = self.ruleset_fd()
            entry = _OWNERS.get(fd)
            if entry is None or entry[0] != id(self):
                return fd, None  # (-1: nothing for Landlock to enforce)
        return fd, (entry[1][0], entry[1][1], entry[2])

    _stale: "DirCheck | None" = None  # of _dirs, made at the first check

    def replaced(self) -> list[str]:
        """The directories of this plan's rules that are no longer the ones
        the kernel ruleset was built with (deleted, re-created, renamed
        over, mounted over): their rules now grant nothing.  A stat of each
        rule's ancestors, and of the rules only beneath one that changed
        (see stale.py); empty before the kernel ruleset is built, and for a
        plan resolved with ``track_dirs=False`` (one spawn)."""
        if self._fd < 0:
            return []
        check = self._stale
        if check is None or check.dirs_of is not self._dirs:
            from .stale import DirCheck  # lazy: keeps select off `landwrap run`'s start-up
            check = self._stale = DirCheck(self._dirs)
        return check.replaced()

    def _new_ruleset(self) -> int:
        from . import _binding  # compiled (cffi): loading a profile must not need it
        size = (compat.ATTR_SIZE_SCOPED if self.scoped else
                compat.ATTR_SIZE_NET if self.net else compat.ATTR_SIZE_FS)
        try:
            fd = _binding.create_ruleset(self.fs, self.net, self.scoped, size)
        except OSError as e:
            raise RulesetError(f"failed to create a ruleset: {e.strerror}",
                               errno=e.errno) from e
        claim_fd(fd, self)
        return fd

    def _eager_ruleset(self) -> int:
        """The kernel ruleset to bind path rules to while resolving, or -1
        (e.g. a plan for another kernel's ABI): ruleset_fd() then builds it,
        and reports why it cannot."""
        try:
            self._fd = self._new_ruleset()
        except RulesetError:
            self._fd = -1
        return self._fd

    def close(self) -> None:
        self._complete = False
        self._todo = None
        if self._fd >= 0:
            if fd_is_ours(self._fd, self):
                _OWNERS.pop(self._fd, None)
                os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def identities(paths: Iterable[str]) -> list[tuple[str, int, int, int]]:
    """``[(path, st_dev, st_ino, handle digest)]`` of the *paths* that
    exist (the digest tells a directory from a new one that was given the
    same inode number; see _binding.path_ids)."""
    from . import _binding  # compiled (cffi): loading a profile must not need it

    paths = list(paths)
    return [(p, *got) for p, got in zip(paths, _binding.path_ids(paths)) if got is not None]


def rule_error(e: OSError) -> RulesetError:
    return RulesetError(f"failed to add a rule for {e.filename}: {e.strerror}",
                        "the path may have changed (or become a symlink) since "
                        "it was resolved; run again", errno=e.errno, path=e.filename)

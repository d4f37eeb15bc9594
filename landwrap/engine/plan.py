"""plan.py: a request fitted to the kernel -- resolution and the Plan.

:func:`resolve` asks ``compat`` what this kernel's ABI can enforce (strict:
refuse what it cannot; best-effort: drop it and say so), opens each path
once (binding rules to those descriptors as it goes), merges and checks the
rules (landwrap's own state, hidden paths, symlinks the sandbox could
re-point) and returns a :class:`Plan`: exactly what the kernel will be
given, what was dropped and why.  Building the kernel ruleset is
kernel_ruleset.py's; wording for people is present.py's.  Never prints.
"""

from __future__ import annotations

import os
import stat
from _thread import RLock

from . import compat
from .errors import (LandlockUnavailable, NothingEnforced, PathError, UnsupportedFeature,
                     UsageError)
from .kernel_ruleset import KernelRuleset, identities, rule_error
from .present import Presentation
from .safetext import printable
from .trust import owner_ok, untrusted_dirs

TYPE_CHECKING = False   # (typing costs start-up time: only for type checkers)
if TYPE_CHECKING:
    from typing import Any, Callable, Final, Iterable

    from .compat import Status
    from .companion import Companion
    from .ruleset import PathRule, Ruleset

STRICT = compat.STRICT

#: Rights that change what a directory holds or what a file says: landwrap's
#: own state never gets any of them (see Plan._check_protected).  refer
#: alone changes nothing (moving also needs make_* and remove_*).
FS_WRITE = compat.FS_ALL & ~compat.bits(compat.FS_RIGHTS, (
    "execute", "read_file", "read_dir", "ioctl_dev", "resolve_unix", "refer"))
#: Rights that can replace a directory entry (re-point a symlink).
FS_RELINK = compat.bits(compat.FS_RIGHTS, ("remove_dir", "remove_file", "make_sym"))

FULLY: Final = compat.FULLY
PARTIALLY: Final = compat.PARTIALLY
NOT_ENFORCED: Final = compat.NOT_ENFORCED


class ProtectedStateError(PathError):
    """A rule would let the sandbox write in (or above, or beneath)
    landwrap's own state directory ``directory``; ``path`` is the rule's
    real path, ``origins`` where the rule comes from."""

    def __init__(self, message: str, hint: str, *, path: str, directory: str,
                 origins: list[str]) -> None:
        super().__init__(message, hint)
        self.path, self.directory, self.origins = path, directory, list(origins)


def resolve(request: Ruleset, *, compat_mode: str | None = None, abi: int | None = None,
            kernel_abi: int | None = None, bind: bool = True,
            track_dirs: bool = True, pinned: frozenset[str] = frozenset()) -> "Plan":
    """:meth:`Ruleset.resolve <landwrap.engine.ruleset.Ruleset.resolve>`:
    *request* fitted to the kernel (through ``compat``), its paths resolved
    and merged.  *bind* False: a plan only to be looked at (`landwrap
    status`), so no kernel ruleset is made while resolving (ruleset_fd()
    would make it all).  *track_dirs* False: a plan used for one spawn
    (`landwrap run`), which records nothing for :meth:`Plan.replaced`
    (the directories' identities cost a stat and a file handle each).
    *pinned*: paths that were directories, no symlink on the way, when an
    earlier plan of the same request was built (a rebuild, see
    Ruleset.plan): one that now leads elsewhere is treated as a symlink the
    sandbox can change (refused in strict mode, left out in best-effort)."""
    mode = compat_mode or request.compat
    if mode not in compat.MODES:
        raise UsageError(f"unknown compatibility mode {mode!r} "
                         "(expected 'strict' or 'best-effort')")
    cap = abi if abi is not None else request.abi
    if cap is not None and not compat.known_abi(cap):
        raise UsageError(f"bad ABI {cap}: landwrap knows ABI 1 to {compat.LATEST_ABI}")
    if kernel_abi is None:
        from . import _binding  # compiled (cffi): loading a profile must not need it
        kernel_abi = _binding.kernel_abi()
    plan = Plan(request, mode, kernel_abi)
    plan.track_dirs = track_dirs
    plan.pinned = pinned
    want = {
        "fs": compat.FS_ALL if request.fs else 0,
        "net": compat.NET_ALL if request.net else 0,
        "scoped": request.scopes,
        "flags": request.restrict_flags,
    }
    need = dict(request.need)
    if request.fs:
        need["fs"] |= compat.FS_ABI1  # Landlock itself
    refer_wanted = any(g.access & compat.REFER for g in request._groups)
    anything = any(want.values())
    if kernel_abi < 0:
        err = LandlockUnavailable(-kernel_abi)
        if mode == STRICT and anything:
            raise err
        plan.abi = 0
        plan.unavailable = err
        if anything:
            plan.dropped.append("the whole sandbox: " + err.message)
        plan.status = NOT_ENFORCED
        plan._resolve_paths(request._groups, 0)
        return plan
    plan.abi = compat.effective_abi(kernel_abi, cap)
    d = compat.downgrade(plan.abi, want, need, refer_wanted)
    if d.missing and mode == STRICT:
        raise UnsupportedFeature(plan.abi, min(kernel_abi, compat.LATEST_ABI),
                                 d.missing, d.needed_abi)
    # What was asked for explicitly and is not enforced (best-effort
    # only: strict refused above) makes the run "partially" enforced;
    # implicit restrictions this kernel lacks (UDP below ABI 10, say)
    # are listed apart and do not.  One line per kind in each list.
    plan.dropped += _describe_by_kind(d.missing)
    plan.unenforceable += _describe_by_kind(d.dropped)
    if d.refer_lost:
        plan.dropped.append(
            "refer (" + compat.since(compat.FS_RIGHTS["refer"][1]) + "): renaming "
            "or linking across directories fails with EXDEV inside the sandbox")
    plan.fs, plan.net, plan.scoped, plan.flags = d.fs, d.net, d.scoped, d.flags
    plan.explicit_missing = d.missing
    plan._resolve_paths(request._groups, d.fs, bind)
    plan._resolve_ports(request.ports, d.net)
    # A layer that handles no filesystem right leaves the filesystem
    # alone entirely: rename/link across directories and mount work in
    # it (checked on Linux 6.18).  Only a layer that handles some
    # filesystem right but not refer denies reparenting, so an
    # unrestricted filesystem handles nothing at all.
    if not (plan.fs or plan.net or plan.scoped):
        plan.status = NOT_ENFORCED
        if anything and mode == STRICT:
            # Everything asked for was implicit and this kernel has
            # none of it: running would mean no sandbox at all.
            raise NothingEnforced(plan.abi, kernel_abi, d.dropped)
    elif plan.dropped:
        plan.status = PARTIALLY
    else:
        plan.status = FULLY
    return plan


_TABLES = {"fs": compat.FS_RIGHTS, "net": compat.NET_RIGHTS,
           "scoped": compat.SCOPES, "flags": compat.RESTRICT_FLAGS}


def _describe_by_kind(lost: Iterable[tuple[str, int, str]]) -> list[str]:
    """One description per kind for ``(kind, bits, description)`` items."""
    merged: dict[str, int] = {}
    for key, bits, _ in lost:
        merged[key] = merged.get(key, 0) | bits
    return [compat.describe(_TABLES[key], bits) for key, bits in merged.items()]


#: Who changed a path that no longer leads where it led when it was resolved.
CHANGED = "the sandbox or another process (it changed while it was being resolved)"


def _symlink_on_way(path: str, can_change: Callable[[str, os.stat_result], str | None],
                    real: str | None = None) -> tuple[str, str] | None:
    """``(symlink, who)`` for the first symlink on *path* (absolute,
    lexical) that *can_change* says can be re-pointed (it returns who
    could: "the sandbox", "another user"), or None.  With *real*, the real
    path *path* had when it was resolved: ``(path, CHANGED)`` when the
    walk does not end there (the path was swapped in between, say a
    symlink the sandbox made replaced by a directory again, until after
    this walk: its target must not be allowed for that)."""
    parts = path.strip("/").split("/")
    cur = ""
    changed = None if real is None else (path, CHANGED)
    for part in parts:
        parent = cur or "/"
        cur = f"{cur}/{part}"
        try:
            st = os.lstat(cur)
        except OSError:
            return changed
        if stat.S_ISLNK(st.st_mode):
            who = can_change(parent, st)
            if who:
                return cur, who
            try:
                cur = os.path.realpath(cur)
            except OSError:
                return changed
    return changed if real is not None and cur != real else None


class Rule:
    __slots__ = ("path", "is_dir", "access", "origins")

    def __init__(self, path: str, is_dir: bool, access: int, origins: list[str]) -> None:
        self.path, self.is_dir, self.access, self.origins = path, is_dir, access, origins


def _lexical(path: str) -> str:
    """Absolute, lexically normalized *path* (cheap when it already is)."""
    if not path.startswith("/"):
        return os.path.abspath(path)
    if "//" in path or "/." in path or (path.endswith("/") and path != "/"):
        path = os.path.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
    return path


def _indexes_in(paths: list[str], ends: list[int], wanted: set[str]) -> list[int]:
    """The indexes of *paths* that are in *wanted*, looking only into the
    runs (ending at *ends*) that hold one: a long profile's list that
    holds none costs one set scan, not a loop."""
    out: list[int] = []
    start = 0
    for end in ends:
        # (a slice, not itertools.islice: itertools costs 0.1 ms of every start)
        if not wanted.isdisjoint(paths if end - start == len(paths) else paths[start:end]):
            out += [i for i in range(start, end) if paths[i] in wanted]
        start = end
    return out


def _realpaths() -> Callable[[str], str]:
    """``os.path.realpath``, for many paths that share directories (the
    hidden secrets in /etc, landwrap's state under $HOME): each directory
    on the way is resolved once, and a component with no symlink costs one
    lstat (realpath makes one per component of every path, in Python).  A
    symlink met, and a path that is not absolute and normal (an empty,
    ``.`` or ``..`` component), go to ``os.path.realpath`` itself."""
    done: dict[str, str] = {"/": "/"}

    def realpath(path: str) -> str:
        real = done.get(path)
        if real is not None:
            return real
        names = path.split("/")
        if names[0] or not all(names[1:]) or "." in names or ".." in names:
            return os.path.realpath(path)
        k = len(names) - 1   # names[:k]: the longest directory resolved already
        while (real := done.get("/".join(names[:k]) or "/")) is None:
            k -= 1
        for i in range(k, len(names)):
            step = ("" if real == "/" else real) + "/" + names[i]
            try:
                link = stat.S_ISLNK(os.lstat(step).st_mode)
            except OSError:   # (realpath goes on with it as it is, as here)
                link = False
            lexical = "/".join(names[:i + 1])
            real = done[lexical] = os.path.realpath(lexical) if link else step
        return real

    return realpath


def _group_at(ends: list[int], i: int) -> int:
    """The group of path *i* (``bisect.bisect_right(ends, i)``; bisect is
    not imported for this: two modules, one of them compiled, on every
    run's start-up)."""
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi) // 2
        if i < ends[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _ancestors(paths: Iterable[str]) -> set[str]:
    """Every directory above each of *paths* (absolute, normalized), up
    to /."""
    out: set[str] = set()
    for h in paths:
        d = h.rpartition("/")[0] or "/"
        while d not in out:
            out.add(d)
            if d == "/":
                break
            d = d.rpartition("/")[0] or "/"
    return out


class Plan(KernelRuleset, Presentation):
    """The sandbox as the kernel will get it (see :meth:`Ruleset.resolve`).

    ``status`` is ``"fully"``, ``"partially"`` or ``"not"``; ``dropped``
    says what was asked for and is not enforced (best-effort mode);
    ``unenforceable`` lists implicit restrictions this kernel lacks (not
    asked for, so they do not make the status "partially"); ``skipped`` lists optional paths
    that do not exist; ``redundant`` lists rules merged away.  ``request`` is the
    :class:`~landwrap.engine.ruleset.Ruleset` it was made from."""

    def __init__(self, request: Ruleset, mode: str, kernel_abi: int) -> None:
        self.request = request
        self.mode = mode
        self.kernel_abi = kernel_abi
        self.abi = 0
        self.fs = self.net = self.scoped = self.flags = 0
        self.ports: list[tuple[int, int, list[str]]] = []   # (port, bits, origins)
        self.dropped: list[str] = []
        self.unenforceable: list[str] = []
        self.explicit_missing: list[tuple[str, int, str]] = []
        self.skipped: list[tuple[str, str, str]] = []   # (path, origin, reason)
        self._rules: list[Rule] | None = []   # None: not merged yet (see rules)
        self._redundant: list[tuple[str, str, str | None]] | None = []
        self._res: tuple[Any, ...] | None = None   # what _resolve_paths found
        self._special: dict[str, Rule] = {}   # real path -> Rule the checks made
        self._seeded: set[str] = set()   # real paths whose every rule is in _special
        self.hidden: list[str] = []   # real paths carved out of broader grants
        self.status: Status = NOT_ENFORCED
        self.unavailable: LandlockUnavailable | None = None
        self._fd = -1
        self._build_lock = RLock()  # (see ruleset_fd; re-entrant: a signal handler may spawn)
        #: (euid, companion.Companion) for spawns, cached by the API.
        self._companion: tuple[int, Companion] | None = None
        #: (path, dev, ino, handle digest) of directory rules, at build time
        #: (none unless track_dirs)
        self._dirs: list[tuple[str, int, int, int]] = []
        self.track_dirs = True
        #: see resolve(): lexical paths that were directories when an earlier
        #: plan of the request was built
        self.pinned: frozenset[str] = frozenset()
        self._todo: set[str] | None = None  # real paths whose rules are still to add (None: all)
        self._complete = False

    def _resolve_paths(self, groups: list[Any], handled: int,   # ruleset.PathGroup
                       bind: bool = True) -> None:
        """Open every path once (csrc/paths.c), binding the rules of the
        paths without a symlink on the way to that same descriptor, and
        check what only some rules need: missing paths, symlinks, writable
        rules near landwrap's state, hidden paths.  Only the rules those
        checks touch become :class:`Rule` objects now; the rest (a long
        profile's plain paths, bound already) are merged into
        :attr:`rules` when that is first read."""
        from . import _binding  # compiled (cffi): loading a profile must not need it
        from .ruleset import PathRule  # (ruleset.py imports this module)

        originals = groups[0].paths if len(groups) == 1 else [
            p for g in groups for p in g.paths]
        lexical = originals   # unless the binding finds one to normalize
        joined = groups[0].joined if len(groups) == 1 else (
            "\0".join([g.joined or "" for g in groups]) if all(g.joined for g in groups)
            else None)
        ends: list[int] = []   # where each group ends (itertools.accumulate, without it)
        for g in groups:
            ends.append((ends[-1] if ends else 0) + len(g.paths))
        # Carve before binding: a directory rule above a hidden path (or, in
        # best-effort mode, above landwrap's state) may be replaced by rules
        # on its children, and a kernel ruleset cannot lose a rule: those
        # are not bound while resolving (ruleset_fd() adds what is left).
        realpath = _realpaths()
        hidden = [(realpath(p), origin) for p, origin in self.request.hidden]
        above = _ancestors(h for h, _ in hidden if h != "/")
        if self.mode != STRICT and handled:
            above |= _ancestors(p for d in self.request.protected
                                for p in {os.path.abspath(d), realpath(d)})
        fd = self._eager_ruleset() if handled and bind else -1

        def kept_from_binding(lexical: list[str]) -> bytearray | None:
            hits = _indexes_in(lexical, ends, above) if fd >= 0 and above else None
            if not hits:
                return None
            keep = bytearray(len(lexical))
            for i in hits:
                keep[i] = 1
            return keep

        nobind = kept_from_binding(lexical)
        try:
            rights = [g.access & handled for g in groups]
            found = _binding.open_add_paths(fd, lexical, ends, rights, nobind, compat.FS_FILE,
                                            joined, handles=self.track_dirs)
            if found is None:   # some path is relative or not normal (nothing opened)
                lexical = [_lexical(p) for p in originals]
                nobind = kept_from_binding(lexical)
                found = _binding.open_add_paths(fd, lexical, ends, rights, nobind,
                                                compat.FS_FILE, handles=self.track_dirs)
            if found is None:
                raise PathError("a path is not absolute and normal once normalized")
            special, dirs, bound_flags = found
        except OSError as e:
            self.close()
            raise rule_error(e) from e
        real_of: dict[int, str] = {}   # index -> real path, when a symlink is on the way
        dead: set[int] = set()    # indexes of paths that could not be opened
        dir_index = {i for i, *_ in dirs}
        for i, err, flags, real in special:
            if err:
                g = groups[_group_at(ends, i)]
                path = originals[i]
                reason = os.strerror(err)
                if g.required:
                    self.close()
                    hint = None
                    if g.origin and g.origin.startswith("--"):
                        hint = "create it first, or pass --ignore-missing to skip it"
                    raise PathError(f"{g.origin}: {path}: {reason}", hint,
                                    errno=err, path=path)
                self.skipped.append((path, g.origin, reason))
                dead.add(i)
                continue
            if flags & _binding.P_DIR:
                dir_index.add(i)
            if real != lexical[i]:
                real_of[i] = real
        self._res = (groups, originals, lexical, ends, real_of, dead, dir_index, handled)
        if not handled:
            return   # nothing to rule: no rules
        self._rules = self._redundant = None   # merged when first read
        # The real paths whose rules the checks below may read or change:
        # symlinks' targets, what lies above a hidden path, and (when there
        # is state to protect or a symlink to check) every writable rule.
        seeds = set(real_of.values())
        if above:
            seeds |= above.intersection(lexical)
        if self.request.protected or real_of:
            for g, end in zip(groups, ends):
                if g.access & handled & FS_WRITE:
                    seeds.update(lexical[end - len(g.paths):end])
        merged: dict[str, Rule] = {}
        moved: list[tuple[Any, str, str, int]] = []  # (rule, lexical, real, access)
        bound: dict[str, int] = {}  # real path -> rights bound while resolving
        if seeds:
            index = set(real_of)
            index.update(_indexes_in(lexical, ends, seeds))
            gi = 0   # the group of path i (i only grows)
            for i in sorted(index - dead):
                lex = lexical[i]
                real = real_of.get(i, lex)
                if real not in seeds:
                    continue
                while ends[gi] <= i:
                    gi += 1
                g = groups[gi]
                is_dir = i in dir_index
                access = g.access & handled
                if not is_dir:
                    access &= compat.FS_FILE
                if real != lex:
                    moved.append((PathRule(originals[i], g.access, g.origin, g.required),
                                  lex, real, access))
                elif fd >= 0 and not (nobind and nobind[i]):
                    bound[real] = bound.get(real, 0) | access
                entry = merged.get(real)
                if entry is None:
                    merged[real] = Rule(real, is_dir, access, [g.origin])
                else:
                    entry.access |= access
                    if g.origin not in entry.origins:
                        entry.origins.append(g.origin)
        try:
            hidden = self._check_protected(merged, hidden, realpath)
            self._carve_hidden(merged, hidden)
            self._check_moved(merged, moved)
        except BaseException:
            self.close()
            raise
        self._special = merged
        self._seeded = seeds
        if fd >= 0:
            # what resolving did not bind: symlinks' targets, carved rules
            self._todo = {p for p, r in merged.items() if r.access & ~bound.get(p, 0)}
            # the directories whose rules were bound, as they were then, for
            # replaced() (not those their ancestors' rules cover)
            own = _binding.P_BOUND | _binding.P_COVERED
            self._dirs = [(lexical[i], dev, ino, gen) for i, dev, ino, gen in dirs
                          if bound_flags[i] & own == _binding.P_BOUND] if self.track_dirs else []

    def _merge_all(self) -> None:
        """:attr:`rules` and :attr:`redundant`, from the paths resolved and
        the rules the checks made (see :meth:`_resolve_paths`)."""
        assert self._res is not None
        groups, originals, lexical, ends, real_of, dead, dir_index, handled = self._res
        special, seeded = self._special, self._seeded
        merged: dict[str, Rule] = {}
        start = 0
        for g, end in zip(groups, ends):
            access = g.access & handled
            file_access = access & compat.FS_FILE
            origin = g.origin
            for i in range(start, end):
                real = real_of.get(i) or lexical[i]
                if real in seeded or i in dead:   # (merged into special already)
                    continue
                is_dir = i in dir_index
                entry = merged.get(real)
                if entry is None:
                    merged[real] = Rule(real, is_dir, access if is_dir else file_access,
                                        [origin])
                else:
                    entry.access |= access if is_dir else file_access
                    if origin not in entry.origins:
                        entry.origins.append(origin)
            start = end
        for real, rule in special.items():
            entry = merged.get(real)
            if entry is None:
                merged[real] = rule
            else:
                entry.access |= rule.access
                entry.origins += [o for o in rule.origins if o not in entry.origins]
        # Drop rules whose rights their ancestors' rules already grant.
        # Sorted order puts every directory before what is beneath it, so the
        # coverage of a directory is final when it is first looked up.
        kept: dict[str, Rule] = {}
        redundant: list[tuple[str, str, str | None]] = []
        # dir -> (rights granted beneath, by)
        cover: dict[str, tuple[int, str | None]] = {"/": (0, None)}

        def covered(d: str) -> tuple[int, str | None]:
            c = cover.get(d)
            if c is None:
                parent = d.rpartition("/")[0] or "/"
                bits, by = covered(parent)
                k = kept.get(d)
                if k is not None:
                    bits, by = bits | k.access, by or k.path
                c = cover[d] = (bits, by)
            return c

        for real in sorted(merged):
            rule = merged[real]
            if not rule.access:
                redundant.append((real, rule.origins[0], None))
                continue
            if real == "/":
                kept[real] = rule
                cover["/"] = (rule.access, "/")
                continue
            bits, by = covered(real.rpartition("/")[0] or "/")
            if rule.access & ~bits:
                kept[real] = rule
            else:
                redundant.append((real, rule.origins[0], by))
        self._rules = list(kept.values())
        self._redundant = redundant

    @property
    def rules(self) -> list[Rule]:
        """The kernel's path rules (:class:`Rule`), sorted by path, rules
        that their ancestors' rules already grant merged away."""
        if self._rules is None:
            self._merge_all()
        assert self._rules is not None
        return self._rules

    @property
    def redundant(self) -> list[tuple[str, str, str | None]]:
        """``(path, origin, covered_by)`` of the rules merged away
        (``covered_by`` None: the rule grants nothing)."""
        if self._redundant is None:
            self._merge_all()
        assert self._redundant is not None
        return self._redundant

    def _check_protected(self, merged: dict[str, Rule], hidden: list[tuple[str, str]],
                         realpath: Callable[[str], str] = os.path.realpath
                         ) -> list[tuple[str, str]]:
        """landwrap's own state is never writable from the sandbox: a rule
        that lets it write in, above or beneath one of ``protected`` is
        refused in strict mode.  In best-effort mode a directory rule above
        a state directory keeps its grant with the state directory hidden
        (returned with the other hidden paths, see :meth:`_carve_hidden`);
        a rule on or beneath one is refused in every mode."""
        hidden = list(hidden)
        if not self.request.protected:
            return hidden
        state: list[tuple[str, str]] = []
        for rule in merged.values():
            free = self.request.unhandled_fs if rule.path == "/" else 0
            if not rule.access & FS_WRITE & ~free:
                continue
            if not state:   # (found only when some rule writes)
                for d in self.request.protected:
                    for p in {os.path.abspath(d), realpath(d)}:
                        state.append((p, d))
            top = rule.path.rstrip("/") + "/"
            for p, d in state:
                above = rule.is_dir and p.startswith(top)
                if p == rule.path or above or rule.path.startswith(p + "/"):
                    if above and self.mode != STRICT:
                        # (when it does not exist yet, its parent keeps only
                        # read_dir: nothing can create it)
                        hidden.append((p, "landwrap's own state (best-effort)"))
                        self.skipped.append((p, ", ".join(rule.origins),
                                             "landwrap's own state: hidden from the grant"))
                        continue
                    raise ProtectedStateError(
                        f"{printable(', '.join(rule.origins))}: {printable(rule.path)} would "
                        f"let the sandbox write in landwrap's own directory "
                        f"{printable(d)} (profiles, configuration, cache or audit notes "
                        "decide the next sandbox)",
                        "grant a narrower directory, or read-only access"
                        + (" (--best-effort hides the directory from a grant above it)"
                           if above else ""),
                        path=rule.path, directory=p, origins=rule.origins)
        return hidden

    def _carve_hidden(self, merged: dict[str, Rule], hidden: list[tuple[str, str]]) -> None:
        """Replace every directory rule above a hidden path by rules on the
        directory's other children, recursively down to the hidden path;
        the directories on the way keep only read_dir.  Symlinks among the
        children get no rule of their own (their targets have theirs).
        Entries created later in a directory on the way are not granted."""
        hidden = [(h, o) for h, o in hidden if h != "/"]
        if not hidden:
            return
        paths = {h for h, _ in hidden}
        above = set()
        for h in paths:
            d = h.rpartition("/")[0] or "/"
            while True:
                above.add(d)
                if d == "/":
                    break
                d = d.rpartition("/")[0] or "/"
        targets = [(r, r.access) for r in merged.values()
                   if r.is_dir and r.access and r.path in above]
        if not targets:
            return
        read_dir = compat.FS_RIGHTS["read_dir"][0]
        self.hidden = sorted(paths)

        def grant(p: str, is_dir: bool, access: int, origins: list[str]) -> None:
            if not is_dir:
                access &= compat.FS_FILE
            e = merged.get(p)
            if e is None:
                merged[p] = Rule(p, is_dir, access, list(origins))
            else:
                e.access |= access
                e.origins += [o for o in origins if o not in e.origins]

        def carve(d: str, access: int, origins: list[str]) -> None:
            grant(d, True, access & read_dir, origins)
            try:
                entries = list(os.scandir(d))
            except OSError:
                return
            for ent in entries:
                p = ent.path   # (os.path.join(d, ent.name), made in C)
                if p in paths:
                    continue
                try:
                    if ent.is_symlink():
                        continue
                    is_dir = ent.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir and p in above:
                    carve(p, access, origins)
                else:
                    grant(p, is_dir, access, origins)

        for rule, _ in targets:
            rule.access = 0
        for rule, access in targets:
            names = [h for h in sorted(paths)
                     if rule.path == "/" or h.startswith(rule.path + "/")]
            note = f" (hiding {names[0]}" + (f" and {len(names) - 1} more)" if names[1:] else ")")
            carve(rule.path, access, [o + note for o in rule.origins])

    def _check_moved(self, merged: dict[str, Rule],
                     moved: list[tuple[PathRule, str, str, int]]) -> None:
        """A rule reached through a symlink that sits in a directory this
        same sandbox may change can be re-pointed (say to /) for the next
        run: refused in strict mode, left out in best-effort."""
        if not moved:
            return
        free = self.request.unhandled_fs
        writable = [r for r in merged.values() if r.is_dir and r.access & FS_RELINK
                    & ~(free if r.path == "/" else 0)]

        uids = (0, os.geteuid())

        def can_change(d: str, link_st: os.stat_result) -> str | None:
            if any(w.path == "/" or d == w.path or d.startswith(w.path + "/")
                   for w in writable):
                return "the sandbox"
            # A symlink another user owns, or in a directory another user
            # can change (a $HOME or $TMPDIR that survived su or sudo -E):
            # it could point anywhere by the time the rule is made, or next run.
            if not owner_ok(link_st, uids) or untrusted_dirs(os.path.realpath(d), uids):
                return "another user"
            return None

        for r, lex, real, access in moved:
            if lex in self.pinned:
                # (a directory when the sandbox was first built: whatever
                # replaced it, another sandbox may have made)
                why = "was a directory when this sandbox was first built"
                msg = (f"{printable(r.origin)}: {printable(r.path)} {why} and now leads to "
                       f"{printable(real)}: a sandbox may have re-pointed it (refresh() "
                       "the Ruleset if the change is wanted)")
                why = f"{why}, now leads to {real}"
            else:
                found = _symlink_on_way(lex, can_change, real)
                if found is None:
                    continue
                link, who = found
                msg = (f"{printable(r.origin)}: {printable(r.path)} goes through the symlink "
                       f"{printable(link)}, which {who} can change: the rule could be "
                       "re-pointed")
                why = f"through the symlink {link}, which {who} could re-point"
            if self.mode == STRICT:
                raise PathError(msg, "call refresh() on the Ruleset to accept the change"
                                if lex in self.pinned else
                                f"name the real path ({printable(real)}) instead")
            entry = merged.get(real)
            if entry is not None:
                entry.access &= ~access
            self.skipped.append((r.path, r.origin, why))

    def _resolve_ports(self, ports: list[tuple[int, int, int, str]], handled: int) -> None:
        """One kernel rule per port (Landlock has no ranges), computed by
        sweeping over the ranges' ends: the cost is the number of ports
        allowed, not ranges × ports."""
        if not handled:
            return
        starts: dict[int, list[tuple[int, int, int, str]]] = {}
        for n, (lo, hi, bits, origin) in enumerate(ports):
            bits &= handled
            if bits:
                starts.setdefault(lo, []).append((hi, n, bits, origin))
        if not starts:
            return
        import heapq  # only for port rules: not on every run's path

        out: list[tuple[int, int, list[str]]] = []
        active: list[tuple[int, int, int, str]] = []  # heap of (hi, input order, bits, origin)
        bounds = sorted(starts)
        i = 0
        port = bounds[0]
        while i < len(bounds) or active:
            if not active:
                port = max(port, bounds[i])
            while i < len(bounds) and bounds[i] <= port:
                for entry in starts[bounds[i]]:
                    heapq.heappush(active, entry)
                i += 1
            # the segment [port, end] has a constant set of ranges
            end = min(active[0][0], bounds[i] - 1 if i < len(bounds) else 65535)
            bits = 0
            origins: list[str] = []
            for _, _, b, o in sorted(active, key=lambda e: e[1]):
                bits |= b
                if o not in origins:
                    origins.append(o)
            out.extend((p, bits, origins) for p in range(port, end + 1))
            port = end + 1
            while active and active[0][0] < port:
                heapq.heappop(active)
        self.ports = out

    # questions ---------------------------------------------------------
    def rules_for(self, path: str) -> list[Rule]:
        """The rules that apply to *path* (itself or an ancestor)."""
        real = os.path.realpath(path)
        return [r for r in self.rules
                if r.path == real or (r.is_dir and (
                    r.path == "/" or real.startswith(r.path + "/")))]

    def allows(self, path: str, bits: int) -> int:
        """The part of filesystem access *bits* this plan allows on *path*;
        rights the ruleset does not handle are allowed everywhere."""
        granted = compat.FS_ALL & ~self.fs
        for r in self.rules_for(path):
            granted |= r.access
        return bits & granted

    @property
    def enforces_anything(self) -> bool:
        return bool(self.fs or self.net or self.scoped)

"""ruleset.py: the sandbox model and its life cycle.

:class:`Ruleset` is what was asked for: which kinds of access to restrict,
which paths and ports to allow, and which of it is an explicit requirement.
:meth:`Ruleset.resolve` fits it to the running kernel (through ``compat``),
resolves and merges the paths, and returns a :class:`Plan`: exactly what the
kernel will be given, what was dropped and why.  :meth:`Plan.ruleset_fd`
builds the kernel ruleset once; it can then be enforced on the calling thread
or handed to spawned children any number of times.

Pure except for path resolution (open O_PATH, once per path: rules are bound
to those descriptors as they are resolved) and, in ``Plan``, the Landlock
system calls through ``_binding``.
"""

from __future__ import annotations

import os

from . import compat
from .errors import (LandlockUnavailable, NothingEnforced, PathError, RulesetError,
                     UnsupportedFeature, UsageError)

TYPE_CHECKING = False

STRICT = compat.STRICT
BEST_EFFORT = compat.BEST_EFFORT

#: Rights that change what a directory holds or what a file says: landwrap's
#: own state never gets any of them (see Plan._check_protected).  refer
#: alone changes nothing (moving also needs make_* and remove_*).
FS_WRITE = compat.FS_ALL & ~compat.bits(compat.FS_RIGHTS, (
    "execute", "read_file", "read_dir", "ioctl_dev", "resolve_unix", "refer"))
#: Rights that can replace a directory entry (re-point a symlink).
FS_RELINK = compat.bits(compat.FS_RIGHTS, ("remove_dir", "remove_file", "make_sym"))

FULLY = "fully"
PARTIALLY = "partially"
NOT_ENFORCED = "not"


def parse_access(access) -> tuple:
    """``(bits, required_bits)`` for an access spec: a shorthand (``"ro"``,
    ``"rox"``, ``"rw"``, ``"rwx"``: whatever of it the kernel has, nothing
    required), or an iterable of kernel right names or an int (each right
    required: strict mode refuses a kernel that lacks one)."""
    if isinstance(access, int) and not isinstance(access, bool):
        if access & ~compat.FS_ALL:
            raise UsageError(f"unknown filesystem right bits {access & ~compat.FS_ALL:#x}")
        return access, access
    if isinstance(access, str):
        if access in compat.ACCESS_SETS:
            return compat.access_bits(access), 0
        access = (access,)
    value = 0
    for name in access:
        entry = compat.FS_RIGHTS.get(name)
        if entry is None:
            raise UsageError(
                f"unknown filesystem right {name!r}",
                "known rights: " + ", ".join(compat.FS_RIGHTS))
        value |= entry[0]
    return value, value


def parse_ports(spec) -> tuple:
    """``(low, high)`` from ``443``, ``"443"`` or ``"8000-8080"``; anything
    outside 0..65535 is refused, never wrapped."""
    if isinstance(spec, bool):
        raise UsageError(f"bad port {spec!r}: expected a number 0-65535 or LOW-HIGH")
    if isinstance(spec, int):
        lo = hi = spec
    else:
        text = str(spec).strip()
        lo_s, sep, hi_s = text.partition("-")
        try:
            if not (lo_s.isascii() and lo_s.isdigit()) or (
                    sep and not (hi_s.isascii() and hi_s.isdigit())):
                raise ValueError
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise UsageError(
                f"bad port {spec!r}: expected a number 0-65535 or LOW-HIGH") from None
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535):
        raise UsageError(f"bad port {spec!r}: ports are 0-65535")
    if lo > hi:
        raise UsageError(f"bad port range {spec!r}: {lo} is above {hi}")
    return lo, hi


class ProtectedStateError(PathError):
    """A rule would let the sandbox write in (or above, or beneath)
    landwrap's own state directory ``directory``; ``path`` is the rule's
    real path, ``origins`` where the rule comes from."""

    def __init__(self, message: str, hint: str, *, path: str, directory: str, origins: list):
        super().__init__(message, hint)
        self.path, self.directory, self.origins = path, directory, list(origins)


class PathRule:
    __slots__ = ("path", "access", "origin", "required")

    def __init__(self, path, access, origin, required):
        self.path, self.access, self.origin, self.required = path, access, origin, required


class Ruleset:
    """A sandbox request, built up rule by rule.

    By default everything the kernel can restrict is restricted (filesystem,
    network, scopes) and nothing is allowed; :meth:`allow` and
    :meth:`allow_port` add exceptions.  Restrictions the kernel lacks are
    dropped with a warning unless they were asked for explicitly (a port
    rule needs TCP control, an exact right name needs that right), in which
    case strict mode refuses to run.
    """

    def __init__(self, *, fs: bool = True, net: bool = True, scope: bool = True):
        self.fs = fs
        self.net = net
        self.scopes = compat.SCOPE_ALL if scope is True else (scope or 0)
        self.need = {"fs": 0, "net": 0, "scoped": 0, "flags": 0}
        self.restrict_flags = 0
        self.paths: list = []
        self.ports: list = []   # (lo, hi, bits, origin)
        self.sources: list = []  # profile files used, in order
        self.compat = STRICT
        self.abi: int | None = None
        #: Directories no rule may grant writing in, above or beneath (landwrap's
        #: own state: profiles, configuration, cache); see profile.protect.
        self.protected: list = []
        #: Filesystem rights a document leaves unhandled (landlockconfig): its
        #: rule on / for them stands for "not restricted", like --unrestricted-fs.
        self.unhandled_fs = 0
        #: Paths taken out of broader grants: [(path, origin)].  Landlock has
        #: no deny rule, so a directory rule above a hidden path is replaced
        #: by rules on its other children (see Plan._carve_hidden).
        self.hidden: list = []

    # building ---------------------------------------------------------
    def allow(self, path, access="ro", *, origin: str | None = None,
              required: bool = True, need: int | None = None) -> "Ruleset":
        """Allow *access* beneath *path* (a directory) or on it (a file).

        *access* is ``"ro"``, ``"rox"``, ``"rw"``, ``"rwx"``, a list of
        kernel right names (``"read_file"``, ``"make_reg"``...) or their
        bits.  *required*: a missing path is an error at :meth:`resolve`
        time; otherwise it is skipped (it could only have granted access).
        *need* overrides which rights strict mode insists on."""
        bits, required_bits = parse_access(access)
        self.need["fs"] |= required_bits if need is None else need
        p = os.fspath(path)
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        if "\0" in p:
            raise PathError(f"path contains a NUL byte: {p!r}")
        if not p:
            raise PathError("empty path")
        self.paths.append(PathRule(p, bits, origin or p, required))
        return self

    def allow_paths(self, paths, access="ro", *, origin: str, required: bool = True,
                    need: int | None = None) -> "Ruleset":
        """:meth:`allow` for many paths with the same access and origin."""
        bits, required_bits = parse_access(access)
        self.need["fs"] |= required_bits if need is None else need
        for p in paths:
            if type(p) is not str:
                p = os.fspath(p)
                if isinstance(p, bytes):
                    p = os.fsdecode(p)
            if not p or "\0" in p:
                raise PathError(f"bad path {p!r}: empty or contains a NUL byte")
            self.paths.append(PathRule(p, bits, origin, required))
        return self

    def hide(self, path, *, origin: str | None = None) -> "Ruleset":
        """Leave *path* out of every broader grant (a rule on a directory
        above it).  Landlock cannot deny beneath an allowed directory, so
        the plan grants that directory's other children instead, one level
        at a time down to *path*; the directories on the way keep only
        read_dir.  Consequences, documented in landwrap-profile(5): entries
        created later in a directory on the way are not granted, the names
        (not contents) of a hidden directory's entries stay listable, and a
        rule on *path* itself or beneath it still grants what it says."""
        p = os.fsdecode(os.fspath(path))
        if not p or "\0" in p:
            raise PathError(f"bad path {p!r}: empty or contains a NUL byte")
        self.hidden.append((p, origin or p))
        return self

    def allow_port(self, port, access, *, origin: str | None = None,
                   required: bool = True) -> "Ruleset":
        """Allow network *access* (``"bind_tcp"``, ``"connect_tcp"``,
        ``"bind_udp"``, ``"connect_send_udp"`` or a list of them) on a port
        or ``"LOW-HIGH"`` range.  With *required*, control of that protocol
        becomes a requirement: strict mode refuses a kernel without it
        (rather than silently allowing every port)."""
        if isinstance(access, str):
            access = (access,)
        bits = 0
        for name in access:
            if name not in compat.NET_RIGHTS:
                raise UsageError(f"unknown network right {name!r}",
                                 "known rights: " + ", ".join(compat.NET_RIGHTS))
            bits |= compat.NET_RIGHTS[name][0]
        lo, hi = parse_ports(port)
        if required:
            self.need["net"] |= bits  # errors name only the rights asked for
        self.ports.append((lo, hi, bits, origin or str(port)))
        return self

    def allow_tcp(self, port, *, bind: bool = False, connect: bool = True,
                  origin: str | None = None) -> "Ruleset":
        access = [n for n, on in (("bind_tcp", bind), ("connect_tcp", connect)) if on]
        if not access:
            raise UsageError("allow_tcp: neither bind nor connect asked for")
        return self.allow_port(port, access, origin=origin)

    def allow_udp(self, port, *, bind: bool = False, connect: bool = True,
                  origin: str | None = None, required: bool = True) -> "Ruleset":
        """Allow UDP *bind* and/or *connect* (connect and send) on a port
        or range.  UDP control needs Landlock ABI 10 (Linux 7.2); with
        ``required=False`` a kernel without it just leaves UDP open (as it
        would be without any UDP rule) instead of failing strict mode."""
        access = [n for n, on in (("bind_udp", bind), ("connect_send_udp", connect)) if on]
        if not access:
            raise UsageError("allow_udp: neither bind nor connect asked for")
        return self.allow_port(port, access, origin=origin, required=required)

    def require_scopes(self, bits: int) -> None:
        """Scope restrictions asked for explicitly (e.g. by a profile)."""
        self.scopes |= bits
        self.need["scoped"] |= bits

    def request_flags(self, bits: int) -> None:
        """landlock_restrict_self() flags that must be honoured."""
        self.restrict_flags |= bits
        self.need["flags"] |= bits

    def merge(self, other: "Ruleset") -> "Ruleset":
        """Union of allowances: the result allows what either allows."""
        self.fs = self.fs and other.fs
        self.net = self.net and other.net
        self.scopes &= other.scopes
        for k, v in other.need.items():
            self.need[k] |= v
        self.restrict_flags |= other.restrict_flags
        self.paths += other.paths
        self.ports += other.ports
        self.sources += [s for s in other.sources if s not in self.sources]
        self.protected += [d for d in other.protected if d not in self.protected]
        self.hidden += [h for h in other.hidden if h not in self.hidden]
        return self

    if TYPE_CHECKING:
        # Defined in landwrap.api, the layer that knows profiles and
        # enforcement (importing ``landwrap.Ruleset`` loads it); see there.
        @classmethod
        def from_profile(cls, *profiles: str | os.PathLike) -> Ruleset: ...

        def restrict(self, *, compat: str | None = None, abi: int | None = None): ...

    # use ----------------------------------------------------------------
    def plan(self) -> "Plan":
        """:meth:`resolve`, done once and reused while this request is
        unchanged (adding a rule or changing a switch makes a new plan), so
        that many spawns share one kernel ruleset.  Paths are resolved, and
        rules bound to their inodes, on first use."""
        key = (self.fs, self.net, self.scopes, tuple(self.need.values()),
               self.restrict_flags, len(self.paths), len(self.ports),
               self.compat, self.abi)
        cached = getattr(self, "_plan", None)
        if cached is not None and cached[0] == key and not cached[1].replaced():
            return cached[1]
        plan = self.resolve()
        self._plan = (key, plan)
        return plan

    def refresh(self) -> "Ruleset":
        """Forget the plan (and kernel ruleset) :meth:`plan` keeps, so that
        the next use resolves every path again.  :meth:`plan` already does
        this by itself when a directory it allowed was replaced (deleted
        and re-created, or renamed over); call it after replacing an
        allowed *file*, which is not checked."""
        self._plan = None
        return self

    # resolution -------------------------------------------------------
    def resolve(self, *, compat_mode: str | None = None, abi: int | None = None,
                kernel_abi: int | None = None) -> "Plan":
        """Fit this request to the kernel and return the :class:`Plan`.

        Raises :class:`LandlockUnavailable` or :class:`UnsupportedFeature`
        when strict mode cannot enforce what was asked, and
        :class:`PathError` for a required path that does not exist."""
        mode = compat_mode or self.compat
        if mode not in compat.MODES:
            raise UsageError(f"unknown compatibility mode {mode!r} "
                             "(expected 'strict' or 'best-effort')")
        cap = abi if abi is not None else self.abi
        if cap is not None and not compat.known_abi(cap):
            raise UsageError(f"bad ABI {cap}: landwrap knows ABI 1 to {compat.LATEST_ABI}")
        if kernel_abi is None:
            from . import _binding
            kernel_abi = _binding.kernel_abi()
        plan = Plan(self, mode, kernel_abi)
        want = {
            "fs": compat.FS_ALL if self.fs else 0,
            "net": compat.NET_ALL if self.net else 0,
            "scoped": self.scopes,
            "flags": self.restrict_flags,
        }
        need = dict(self.need)
        if self.fs:
            need["fs"] |= compat.FS_ABI1  # Landlock itself
        refer_wanted = any(r.access & compat.REFER for r in self.paths)
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
            plan._resolve_paths(self.paths, 0)
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
        plan._resolve_paths(self.paths, d.fs)
        plan._resolve_ports(self.ports, d.net)
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


def _describe_by_kind(lost) -> list:
    """One description per kind for ``(kind, bits, description)`` items."""
    merged: dict = {}
    for key, bits, _ in lost:
        merged[key] = merged.get(key, 0) | bits
    return [compat.describe(_TABLES[key], bits) for key, bits in merged.items()]


def _symlink_on_way(path: str, can_change) -> str | None:
    """The first symlink on *path* (absolute, lexical) whose directory
    *can_change* says the sandbox may modify, or None."""
    import stat

    parts = path.strip("/").split("/")
    cur = ""
    for part in parts:
        parent = cur or "/"
        cur = f"{cur}/{part}"
        try:
            st = os.lstat(cur)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            if can_change(parent):
                return cur
            try:
                cur = os.path.realpath(cur)
            except OSError:
                return None
    return None


class Rule:
    __slots__ = ("path", "is_dir", "access", "origins")

    def __init__(self, path, is_dir, access, origins):
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


# Which Plan built the ruleset behind each descriptor number, and the open
# file it was: ``{fd: (plan id, (st_dev, st_ino), status flags)}``.  Every
# Landlock ruleset shares one anonymous inode (st_dev/st_ino are the same
# for all of them, checked on 6.18), so the inode alone tells a ruleset
# from another file but not one ruleset from another; the table tells
# landwrap's own rulesets apart, and the O_APPEND mark (meaningless on a
# ruleset, which cannot be read or written) those of other code.
_OWNERS: dict = {}
_MARK = os.O_APPEND


def _claim_fd(fd: int, plan) -> None:
    import fcntl

    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | _MARK)
    st = os.fstat(fd)
    _OWNERS[fd] = (id(plan), (st.st_dev, st.st_ino), fcntl.fcntl(fd, fcntl.F_GETFL))


def _fd_is_ours(fd: int, plan) -> bool:
    """Whether descriptor *fd* is still the ruleset *plan* built."""
    import fcntl

    entry = _OWNERS.get(fd)
    if entry is None or entry[0] != id(plan):
        return False
    try:
        st = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == entry[1] and flags == entry[2]


def _lexical_all(paths: list) -> list:
    """:func:`_lexical` of each path; one scan of them all when all are
    already absolute and normalized (as profiles give them)."""
    joined = "\0".join(paths)
    if (joined[:1] == "/" and joined.count("\0/") == len(paths) - 1 and "//" not in joined
            and "/." not in joined and "/\0" not in joined and joined[-1:] != "/"):
        return paths
    return [_lexical(p) for p in paths]


class Plan:
    """The sandbox as the kernel will get it (see :meth:`Ruleset.resolve`).

    ``status`` is ``"fully"``, ``"partially"`` or ``"not"``; ``dropped``
    says what was asked for and is not enforced (best-effort mode);
    ``unenforceable`` lists implicit restrictions this kernel lacks (not
    asked for, so they do not make the status "partially"); ``skipped`` lists optional paths
    that do not exist; ``redundant`` lists rules merged away."""

    def __init__(self, request: Ruleset, mode: str, kernel_abi: int):
        self.request = request
        self.mode = mode
        self.kernel_abi = kernel_abi
        self.abi = 0
        self.fs = self.net = self.scoped = self.flags = 0
        self.rules: list = []
        self.ports: list = []   # (port, bits, origins)
        self.dropped: list = []
        self.unenforceable: list = []
        self.explicit_missing: list = []
        self.skipped: list = []   # (path, origin, reason)
        self.redundant: list = []  # (path, origin, covered_by)
        self.hidden: list = []   # real paths carved out of broader grants
        self.status = NOT_ENFORCED
        self.unavailable = None
        self._fd = -1
        #: (euid, companion.Companion) for spawns, cached by the API.
        self._companion: tuple | None = None
        self._dirs: list = []  # (path, dev, ino) of directory rules, at build time
        self._todo = None  # real paths whose rules are still to add (None: all)
        self._complete = False

    def _resolve_paths(self, rules, handled: int) -> None:
        from . import _binding

        lexical = _lexical_all([r.path for r in rules])
        # Each path is opened once: the rules of paths without a symlink on
        # the way are bound now to the descriptor that told their type (the
        # rest are added by ruleset_fd()).
        fd = self._eager_ruleset() if handled else -1
        try:
            infos = _binding.open_add_paths(fd, lexical, [r.access & handled for r in rules],
                                        compat.FS_FILE)
        except OSError as e:
            self.close()
            raise _rule_error(e) from e
        merged: dict = {}
        moved = []  # (rule, lexical, real): a symlink was followed
        todo = self._todo = set() if fd >= 0 else None
        for r, lex, (err, mode, real, added) in zip(rules, lexical, infos):
            if err:
                reason = os.strerror(err)
                if r.required:
                    self.close()
                    hint = None
                    if r.origin and r.origin.startswith("--"):
                        hint = "create it first, or pass --ignore-missing to skip it"
                    raise PathError(f"{r.origin}: {r.path}: {reason}", hint,
                                    errno=err, path=r.path)
                self.skipped.append((r.path, r.origin, reason))
                continue
            real = real or lex
            if todo is not None and not added:
                todo.add(real)
            is_dir = (mode & 0o170000) == 0o040000
            access = r.access & handled
            if not is_dir:
                access &= compat.FS_FILE
            if real != lex:
                moved.append((r, lex, real, access))
            entry = merged.get(real)
            if entry is None:
                merged[real] = Rule(real, is_dir, access, [r.origin])
            else:
                entry.access |= access
                if r.origin not in entry.origins:
                    entry.origins.append(r.origin)
        if not handled:
            return
        try:
            hidden = self._check_protected(merged)
            self._carve_hidden(merged, hidden)
            self._check_moved(merged, moved)
        except BaseException:
            self.close()
            raise
        if self.hidden and fd >= 0:
            # The rules bound while resolving include the directory grants
            # that hiding has just replaced: a kernel ruleset cannot lose a
            # rule, so it is built again from the carved rules, all of them.
            self.close()
            fd = -1
        # Drop rules whose rights their ancestors' rules already grant.
        # Sorted order puts every directory before what is beneath it, so the
        # coverage of a directory is final when it is first looked up.
        kept: dict = {}
        cover: dict = {"/": (0, None)}   # dir -> (rights granted beneath, by)

        def covered(d):
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
                self.redundant.append((real, rule.origins[0], None))
                continue
            if real == "/":
                kept[real] = rule
                cover["/"] = (rule.access, "/")
                continue
            bits, by = covered(real.rpartition("/")[0] or "/")
            if rule.access & ~bits:
                kept[real] = rule
            else:
                self.redundant.append((real, rule.origins[0], by))
        self.rules = list(kept.values())
        if fd >= 0:   # the directories as they were bound, for replaced()
            self._dirs = _identities(r.path for r in self.rules if r.is_dir)

    def _check_protected(self, merged: dict) -> list:
        """landwrap's own state is never writable from the sandbox: a rule
        that lets it write in, above or beneath one of ``protected`` is
        refused in strict mode.  In best-effort mode a directory rule above
        a state directory keeps its grant with the state directory hidden
        (returned with the other hidden paths, see :meth:`_carve_hidden`);
        a rule on or beneath one is refused in every mode."""
        hidden = [(os.path.realpath(p), origin) for p, origin in self.request.hidden]
        if not self.request.protected:
            return hidden
        from .safetext import printable

        state = []
        for d in self.request.protected:
            for p in {os.path.abspath(d), os.path.realpath(d)}:
                state.append((p, d))
        for rule in merged.values():
            free = self.request.unhandled_fs if rule.path == "/" else 0
            if not rule.access & FS_WRITE & ~free:
                continue
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
                        f"{printable(d)} (profiles, configuration or cache decide the "
                        "next sandbox)",
                        "grant a narrower directory, or read-only access"
                        + (" (--best-effort hides the directory from a grant above it)"
                           if above else ""),
                        path=rule.path, directory=p, origins=rule.origins)
        return hidden

    def _carve_hidden(self, merged: dict, hidden: list) -> None:
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

        def grant(p, is_dir, access, origins):
            if not is_dir:
                access &= compat.FS_FILE
            e = merged.get(p)
            if e is None:
                merged[p] = Rule(p, is_dir, access, list(origins))
            else:
                e.access |= access
                e.origins += [o for o in origins if o not in e.origins]

        def carve(d, access, origins):
            grant(d, True, access & read_dir, origins)
            try:
                entries = list(os.scandir(d))
            except OSError:
                return
            for ent in entries:
                p = os.path.join(d, ent.name)
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

    def _check_moved(self, merged: dict, moved: list) -> None:
        """A rule reached through a symlink that sits in a directory this
        same sandbox may change can be re-pointed (say to /) for the next
        run: refused in strict mode, left out in best-effort."""
        if not moved:
            return
        from .safetext import printable

        free = self.request.unhandled_fs
        writable = [r for r in merged.values() if r.is_dir and r.access & FS_RELINK
                    & ~(free if r.path == "/" else 0)]

        def can_change(d):
            return any(w.path == "/" or d == w.path or d.startswith(w.path + "/")
                       for w in writable)

        for r, lex, real, access in moved:
            link = _symlink_on_way(lex, can_change)
            if link is None:
                continue
            msg = (f"{printable(r.origin)}: {printable(r.path)} goes through the symlink "
                   f"{printable(link)}, in a directory the sandbox can change: a program "
                   "could re-point the rule")
            if self.mode == STRICT:
                raise PathError(msg, f"name the real path ({printable(real)}) instead")
            entry = merged.get(real)
            if entry is not None:
                entry.access &= ~access
            self.skipped.append((r.path, r.origin, f"through the symlink {link}, which the "
                                 "sandbox could re-point"))

    def _resolve_ports(self, ports, handled: int) -> None:
        """One kernel rule per port (Landlock has no ranges), computed by
        sweeping over the ranges' ends: the cost is the number of ports
        allowed, not ranges × ports."""
        if not handled:
            return
        starts: dict = {}
        for n, (lo, hi, bits, origin) in enumerate(ports):
            bits &= handled
            if bits:
                starts.setdefault(lo, []).append((hi, n, bits, origin))
        if not starts:
            return
        import heapq

        out = []
        active: list = []  # heap of (hi, input order, bits, origin)
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
            origins: list = []
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
    def rules_for(self, path: str) -> list:
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

    # kernel -----------------------------------------------------------
    @property
    def enforces_anything(self) -> bool:
        return bool(self.fs or self.net or self.scoped)

    def ruleset_fd(self) -> int:
        """The kernel ruleset (built on first use, then reused), or -1 when
        there is nothing for Landlock to enforce.  Rules bind to the inodes
        opened while resolving (paths without a symlink on the way) or now
        (the rest, or all of them when the ruleset could not be made then).

        The kept descriptor is checked before each reuse (:func:`_fd_is_ours`):
        code that closed it (``os.closerange``) may have let another ruleset,
        or any file, take its number.  Then the ruleset is built again, all
        of it."""
        if self._fd >= 0 and not _fd_is_ours(self._fd, self):
            # not ours any more: never close what is not ours; start over
            self._fd, self._complete, self._todo = -1, False, None
        if self._complete or not self.enforces_anything:
            return self._fd
        from . import _binding
        fd, self._fd = self._fd, -1
        if fd < 0:
            fd = self._new_ruleset()
            self._todo = None
            self._dirs = _identities(r.path for r in self.rules if r.is_dir)
        rules = self.rules if self._todo is None else [
            r for r in self.rules if r.path in self._todo]
        try:
            try:
                _binding.add_path_rules(fd, [r.path for r in rules], [r.access for r in rules])
            except OSError as e:
                raise _rule_error(e) from e
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

    def replaced(self) -> list:
        """The directories of this plan's rules that are no longer the ones
        the kernel ruleset was built with (deleted, re-created, renamed
        over): their rules now grant nothing.  One stat per directory rule;
        empty before the kernel ruleset is built."""
        if self._fd < 0:
            return []
        out = []
        for p, dev, ino in self._dirs:
            try:
                st = os.stat(p)
            except OSError:
                out.append(p)
                continue
            if st.st_ino != ino or st.st_dev != dev:
                out.append(p)
        return out

    def _new_ruleset(self) -> int:
        from . import _binding
        size = (compat.ATTR_SIZE_SCOPED if self.scoped else
                compat.ATTR_SIZE_NET if self.net else compat.ATTR_SIZE_FS)
        try:
            fd = _binding.create_ruleset(self.fs, self.net, self.scoped, size)
        except OSError as e:
            raise RulesetError(f"failed to create a ruleset: {e.strerror}",
                               errno=e.errno) from e
        _claim_fd(fd, self)
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
            if _fd_is_ours(self._fd, self):
                _OWNERS.pop(self._fd, None)
                os.close(self._fd)
            self._fd = -1

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # reporting --------------------------------------------------------
    def summary_line(self) -> str:
        if self.status == NOT_ENFORCED:
            return "not enforced"
        return f"{self.status} enforced (Landlock ABI {self.abi})"

    def warning(self) -> str | None:
        """One line naming what this kernel cannot enforce, or None."""
        if not self.dropped:
            return None
        where = f"Landlock ABI {self.abi}" if self.abi else "this kernel"
        return f"{where} cannot enforce: " + "; ".join(self.dropped)

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "mode": self.mode,
            "abi": self.abi,
            "kernel_abi": self.kernel_abi if self.kernel_abi >= 0 else None,
            "handled_access_fs": compat.names(compat.FS_RIGHTS, self.fs),
            "handled_access_net": compat.names(compat.NET_RIGHTS, self.net),
            "scoped": compat.names(compat.SCOPES, self.scoped),
            "restrict_flags": compat.names(compat.RESTRICT_FLAGS, self.flags),
            "rules": [{"path": r.path, "type": "dir" if r.is_dir else "file",
                       "access": compat.names(compat.FS_RIGHTS, r.access),
                       "short": short_access(r.access, self.fs, r.is_dir),
                       "from": r.origins} for r in self.rules],
            "ports": [{"port": p, "access": compat.names(compat.NET_RIGHTS, b),
                       "from": o} for p, b, o in self.ports],
            "hidden": list(self.hidden),
            "dropped": list(self.dropped),
            "unenforceable": list(self.unenforceable),
            "skipped": [{"path": p, "from": o, "reason": why} for p, o, why in self.skipped],
            "merged": [{"path": p, "from": o, "covered_by": c}
                       for p, o, c in self.redundant],
            "profiles": list(self.request.sources),
        }


def _identities(paths) -> list:
    """``[(path, st_dev, st_ino)]`` of the *paths* that exist."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        out.append((p, st.st_dev, st.st_ino))
    return out


def _rule_error(e: OSError) -> RulesetError:
    return RulesetError(f"failed to add a rule for {e.filename}: {e.strerror}",
                        "the path may have changed (or become a symlink) since "
                        "it was resolved; run again", errno=e.errno, path=e.filename)


def short_access(bits: int, handled: int, is_dir: bool = True) -> str:
    """``ro``/``rox``/``rw``/``rwx`` when *bits* is exactly such a set (as far
    as the kernel handles it), else the right names joined by ``,``."""
    for name in ("rwx", "rw", "rox", "ro"):
        want = compat.access_bits(name) & handled
        if not is_dir:
            want &= compat.FS_FILE
        if bits == want:
            return name
    return ",".join(compat.names(compat.FS_RIGHTS, bits))

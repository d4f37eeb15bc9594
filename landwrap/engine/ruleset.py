"""ruleset.py: the sandbox request.

:class:`Ruleset` is what was asked for: which kinds of access to restrict,
which paths and ports to allow, and which of it is an explicit requirement.
:meth:`Ruleset.resolve` fits it to the running kernel (plan.py) and returns
a :class:`~landwrap.engine.plan.Plan`.  Pure: building a request checks its
values and touches nothing; never prints.
"""

from __future__ import annotations

import os

from . import compat, plan as _plan
from .errors import PathError, UsageError
from .plan import Plan

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable, Union

    #: A path as :meth:`Ruleset.allow` takes it.
    AnyPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
    #: Filesystem access: a shorthand set, right names, or their bits.
    Access = Union[str, int, Iterable[str]]

STRICT = compat.STRICT
BEST_EFFORT = compat.BEST_EFFORT


def parse_access(access: Access) -> tuple[int, int]:
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
    elif isinstance(access, bool):  # an int to Python, but it names no rights
        raise UsageError(f"bad access {access!r}: expected ro, rox, rw, rwx, right names "
                         "or their bits")
    value = 0
    for name in access:
        entry = compat.FS_RIGHTS.get(name)
        if entry is None:
            raise UsageError(
                f"unknown filesystem right {name!r}",
                "known rights: " + ", ".join(compat.FS_RIGHTS))
        value |= entry[0]
    return value, value


def parse_ports(spec: int | str) -> tuple[int, int]:
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


class PathRule:
    __slots__ = ("path", "access", "origin", "required")

    def __init__(self, path: str, access: int, origin: str, required: bool) -> None:
        self.path, self.access, self.origin, self.required = path, access, origin, required


class PathGroup:
    """Path rules that share their access, origin and requiredness: a
    profile's list of 10,000 paths is one group (one list of strings), not
    10,000 objects.  ``access`` is filesystem right bits."""

    __slots__ = ("paths", "access", "origin", "required", "joined")

    def __init__(self, paths: list[str], access: int, origin: str, required: bool,
                 joined: str | None = None) -> None:
        self.paths, self.access, self.origin, self.required = paths, access, origin, required
        #: the paths joined by NUL, when that was made while checking them
        self.joined = joined


def plain_paths(paths: list[Any]) -> str | None:
    """*paths* joined by NUL when every one is a ``str`` path that is absolute,
    without NUL, ``$``, ``*``, ``?`` or ``[``, without a trailing ``/``
    and without a ``.`` or ``..`` component (what a profile's long
    generated list holds), else None.  A few scans of them all joined (a
    search for one character is much faster than for two: they are
    chosen so)."""
    try:
        joined = "\0".join(paths)
    except TypeError:
        return None
    n = len(paths) - 1
    if (joined[:1] != "/" or "$" in joined or "*" in joined or "?" in joined
            or "[" in joined or joined[-1:] == "/" or joined.count("\0") != n
            or joined.count("\0/") != n or "/\0" in joined):
        return None
    if "." in joined:
        at = joined.find("/.")
        while at >= 0:
            nxt = joined[at + 2:at + 4]
            if nxt[:1] in ("/", "\0", "") or (nxt[:1] == "." and nxt[1:] in ("/", "\0", "")):
                return None
            at = joined.find("/.", at + 2)
    return joined


class Ruleset:
    """A sandbox request, built up rule by rule.

    By default everything the kernel can restrict is restricted (filesystem,
    network, scopes) and nothing is allowed; :meth:`allow` and
    :meth:`allow_port` add exceptions.  Restrictions the kernel lacks are
    dropped with a warning unless they were asked for explicitly (a port
    rule needs TCP control, an exact right name needs that right), in which
    case strict mode refuses to run.
    """

    def __init__(self, *, fs: bool = True, net: bool = True, scope: bool = True) -> None:
        self.fs = fs
        self.net = net
        self.scopes = compat.SCOPE_ALL if scope is True else (scope or 0)
        self.need = {"fs": 0, "net": 0, "scoped": 0, "flags": 0}
        self.restrict_flags = 0
        self._groups: list[PathGroup] = []   # in the order given
        self._npaths = 0
        self.ports: list[tuple[int, int, int, str]] = []   # (lo, hi, bits, origin)
        self.sources: list[str] = []  # profile files used, in order
        self.compat = STRICT
        self.abi: int | None = None
        #: Directories no rule may grant writing in, above or beneath (landwrap's
        #: own state: profiles, configuration, cache); see profile.protect.
        self.protected: list[str] = []
        #: Filesystem rights a document leaves unhandled (landlockconfig): its
        #: rule on / for them stands for "not restricted", like --unrestricted-fs.
        self.unhandled_fs = 0
        #: Paths taken out of broader grants: [(path, origin)].  Landlock has
        #: no deny rule, so a directory rule above a hidden path is replaced
        #: by rules on its other children (see Plan._carve_hidden).
        self.hidden: list[tuple[str, str]] = []

    # building ---------------------------------------------------------
    def allow(self, path: AnyPath, access: Access = "ro", *, origin: str | None = None,
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
        self._groups.append(PathGroup([p], bits, origin or p, required, p))
        self._npaths += 1
        return self

    def allow_paths(self, paths: Iterable[AnyPath], access: Access = "ro", *, origin: str,
                    required: bool = True,
                    need: int | None = None) -> "Ruleset":
        """:meth:`allow` for many paths with the same access and origin."""
        items: list[Any] = list(paths)   # (all str once checked)
        joined: str | None = None
        try:
            joined = "\0".join(items)
            ok = joined.count("\0") == len(items) - 1 and "" not in items
        except TypeError:   # not all str: checked one by one
            ok = False
        if not ok:
            joined = None
            for n, p in enumerate(items):
                if type(p) is not str:
                    p = items[n] = os.fspath(p)
                    if isinstance(p, bytes):
                        p = items[n] = os.fsdecode(p)
                if not p or "\0" in p:
                    raise PathError(f"bad path {p!r}: empty or contains a NUL byte")
        return self._add_group(items, access, origin, required, need, joined)

    def _add_group(self, paths: list[str], access: str | int | Iterable[str], origin: str,
                   required: bool, need: int | None = None,
                   joined: str | None = None) -> "Ruleset":
        """:meth:`allow_paths` for *paths* already checked (non-empty
        ``str`` without NUL), kept as they are (not copied); *joined*:
        them joined by NUL, if at hand."""
        bits, required_bits = parse_access(access)
        self.need["fs"] |= required_bits if need is None else need
        if paths:
            self._groups.append(PathGroup(paths, bits, origin, required, joined))
            self._npaths += len(paths)
        return self

    @property
    def paths(self) -> list[PathRule]:
        """The path rules, one :class:`PathRule` each (made on each call:
        :meth:`resolve` reads the groups they come from)."""
        return [PathRule(p, g.access, g.origin, g.required)
                for g in self._groups for p in g.paths]

    @paths.setter
    def paths(self, rules: list[PathRule]) -> None:
        self._groups = [PathGroup([r.path], r.access, r.origin, r.required) for r in rules]
        self._npaths = len(self._groups)

    @property
    def path_count(self) -> int:
        """How many path rules (``len(self.paths)``, without making them)."""
        return self._npaths

    def hide(self, path: AnyPath, *, origin: str | None = None) -> "Ruleset":
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

    def allow_port(self, port: int | str, access: str | Iterable[str], *,
                   origin: str | None = None,
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

    def allow_tcp(self, port: int | str, *, bind: bool = False, connect: bool = True,
                  origin: str | None = None) -> "Ruleset":
        access = [n for n, on in (("bind_tcp", bind), ("connect_tcp", connect)) if on]
        if not access:
            raise UsageError("allow_tcp: neither bind nor connect asked for")
        return self.allow_port(port, access, origin=origin)

    def allow_udp(self, port: int | str, *, bind: bool = False, connect: bool = True,
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
        self._groups += other._groups
        self._npaths += other._npaths
        self.ports += other.ports
        self.sources += [s for s in other.sources if s not in self.sources]
        self.protected += [d for d in other.protected if d not in self.protected]
        self.hidden += [h for h in other.hidden if h not in self.hidden]
        return self

    if TYPE_CHECKING:
        # Defined in landwrap.api, the layer that knows profiles and
        # enforcement (importing ``landwrap.Ruleset`` loads it); see there.
        @classmethod
        def from_profile(cls, *profiles: str | os.PathLike[str]) -> Ruleset: ...

        # a landwrap.Enforcement (that layer is above this one)
        def restrict(self, *, compat: str | None = None, abi: int | None = None) -> Any: ...

        _plan: tuple[tuple[object, ...], Plan] | None

    # use ----------------------------------------------------------------
    def plan(self) -> "Plan":
        """:meth:`resolve`, done once and reused while this request is
        unchanged (adding a rule or changing a switch makes a new plan), so
        that many spawns share one kernel ruleset.  Paths are resolved, and
        rules bound to their inodes, on first use."""
        # What the request holds, not how much of it: a list replaced by
        # another of the same length (``paths = ...``, an entry of
        # ``hidden`` swapped) must not reuse the old plan.  The groups are
        # compared as the objects they are (the key keeps them alive).
        key = (self.fs, self.net, self.scopes, tuple(self.need.values()),
               self.restrict_flags, tuple(self._groups), self._npaths, tuple(self.ports),
               self.compat, self.abi, tuple(self.hidden), tuple(self.protected),
               self.unhandled_fs)
        cached: tuple[tuple[object, ...], Plan] | None = getattr(self, "_plan", None)
        pinned: frozenset[str] = frozenset()
        if cached is not None and cached[0] == key:
            old = cached[1]
            if not old.replaced():
                return old
            # A directory of the old plan replaced by a symlink (or moved
            # under one) is not followed: another sandbox may have made it.
            pinned = old.pinned.union([d[0] for d in old._dirs])
        plan = _plan.resolve(self, pinned=pinned)
        self._plan = (key, plan)
        return plan

    def refresh(self) -> "Ruleset":
        """Forget the plan (and kernel ruleset) :meth:`plan` keeps, so that
        the next use resolves every path again.  :meth:`plan` already does
        this by itself when a directory it allowed was replaced (deleted
        and re-created, or renamed over); call it after replacing an
        allowed *file*, which is not checked, or to accept an allowed
        directory that has become a symlink (which that rebuild does not
        follow: another sandbox may have made it)."""
        self._plan = None
        return self

    # resolution -------------------------------------------------------
    def resolve(self, *, compat_mode: str | None = None, abi: int | None = None,
                kernel_abi: int | None = None) -> Plan:
        """Fit this request to the kernel and return the :class:`Plan`.

        Raises :class:`LandlockUnavailable` or :class:`UnsupportedFeature`
        when strict mode cannot enforce what was asked, and
        :class:`PathError` for a required path that does not exist."""
        return _plan.resolve(self, compat_mode=compat_mode, abi=abi, kernel_abi=kernel_abi)

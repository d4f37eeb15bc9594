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
system calls through ``_sys``.
"""

from __future__ import annotations

import os

from . import compat
from .errors import (LandlockUnavailable, NothingEnforced, PathError,
                     RulesetError, UnsupportedFeature, UsageError)

STRICT = "strict"
BEST_EFFORT = "best-effort"

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
        self.abi = None

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
            for proto in (compat.NET_TCP, compat.NET_UDP):
                if bits & proto:
                    self.need["net"] |= proto
        self.ports.append((lo, hi, bits, origin or str(port)))
        return self

    def allow_tcp(self, port, *, bind: bool = False, connect: bool = True,
                  origin: str | None = None) -> "Ruleset":
        access = [n for n, on in (("bind_tcp", bind), ("connect_tcp", connect)) if on]
        if not access:
            raise UsageError("allow_tcp: neither bind nor connect asked for")
        return self.allow_port(port, access, origin=origin)

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
        return self

    @classmethod
    def from_profile(cls, *profiles) -> "Ruleset":
        """The sandbox of one or more profiles: names on the profile path
        or files, later ones adding to earlier (as ``landwrap run -p``).
        Raises ProfileError.  A profile's ``[env]`` table is not part of a
        Ruleset (``landwrap.run(profile=...)`` applies it)."""
        if not profiles:
            raise UsageError("from_profile: give at least one profile name or path")
        from .profile import load

        return load([os.fsdecode(os.fspath(p)) for p in profiles]).ruleset

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
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = self.resolve()
        self._plan = (key, plan)
        return plan

    def restrict(self, *, compat: str | None = None, abi: int | None = None):
        """Enforce this sandbox on every thread of the calling process,
        irreversibly; returns a ``landwrap.Enforcement``.  See
        ``landwrap.restrict`` for what the kernel does."""
        from .api import enforce

        if compat is None and abi is None:
            return enforce(self.plan())
        return enforce(self.resolve(compat_mode=compat, abi=abi))

    # resolution -------------------------------------------------------
    def resolve(self, *, compat_mode: str | None = None, abi: int | None = None,
                kernel_abi: int | None = None) -> "Plan":
        """Fit this request to the kernel and return the :class:`Plan`.

        Raises :class:`LandlockUnavailable` or :class:`UnsupportedFeature`
        when strict mode cannot enforce what was asked, and
        :class:`PathError` for a required path that does not exist."""
        mode = compat_mode or self.compat
        if mode not in (STRICT, BEST_EFFORT):
            raise UsageError(f"unknown compatibility mode {mode!r} "
                             "(expected 'strict' or 'best-effort')")
        cap = abi if abi is not None else self.abi
        if cap is not None and not 1 <= cap <= compat.LATEST_ABI:
            raise UsageError(f"bad ABI {cap}: landwrap knows ABI 1 to {compat.LATEST_ABI}")
        if kernel_abi is None:
            from . import _sys
            kernel_abi = _sys.kernel_abi()
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
        # are listed apart and do not.
        plan.dropped += [desc for _, _, desc in d.missing]
        plan.unenforceable += [desc for _, _, desc in d.dropped]
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
        self.status = NOT_ENFORCED
        self.unavailable = None
        self._fd = -1
        self._todo = None  # real paths whose rules are still to add (None: all)
        self._complete = False

    def _resolve_paths(self, rules, handled: int) -> None:
        from . import _sys

        lexical = _lexical_all([r.path for r in rules])
        # Each path is opened once: the rules of paths without a symlink on
        # the way are bound now to the descriptor that told their type (the
        # rest are added by ruleset_fd()).
        fd = self._eager_ruleset() if handled else -1
        try:
            infos = _sys.open_add_paths(fd, lexical, [r.access & handled for r in rules],
                                        compat.FS_FILE)
        except OSError as e:
            self.close()
            raise _rule_error(e) from None
        merged: dict = {}
        todo = self._todo = set() if fd >= 0 else None
        for r, lex, (err, mode, real, added) in zip(rules, lexical, infos):
            if err:
                reason = os.strerror(err)
                if r.required:
                    self.close()
                    hint = None
                    if r.origin and r.origin.startswith("--"):
                        hint = "create it first, or pass --ignore-missing to skip it"
                    raise PathError(f"{r.origin}: {r.path}: {reason}", hint)
                self.skipped.append((r.path, r.origin, reason))
                continue
            real = real or lex
            if todo is not None and not added:
                todo.add(real)
            is_dir = (mode & 0o170000) == 0o040000
            access = r.access & handled
            if not is_dir:
                access &= compat.FS_FILE
            entry = merged.get(real)
            if entry is None:
                merged[real] = Rule(real, is_dir, access, [r.origin])
            else:
                entry.access |= access
                if r.origin not in entry.origins:
                    entry.origins.append(r.origin)
        if not handled:
            return
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

    def _resolve_ports(self, ports, handled: int) -> None:
        if not handled:
            return
        merged: dict = {}
        for lo, hi, bits, origin in ports:
            bits &= handled
            if not bits:
                continue
            for port in range(lo, hi + 1):
                e = merged.get(port)
                if e is None:
                    merged[port] = [bits, [origin]]
                else:
                    e[0] |= bits
                    if origin not in e[1]:
                        e[1].append(origin)
        self.ports = [(p, e[0], e[1]) for p, e in sorted(merged.items())]

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
        (the rest, or all of them when the ruleset could not be made then)."""
        if self._complete or not self.enforces_anything:
            return self._fd
        from . import _sys
        fd, self._fd = self._fd, -1
        if fd < 0:
            fd = self._new_ruleset()
            self._todo = None
        rules = self.rules if self._todo is None else [
            r for r in self.rules if r.path in self._todo]
        try:
            try:
                _sys.add_path_rules(fd, [r.path for r in rules], [r.access for r in rules])
            except OSError as e:
                raise _rule_error(e) from None
            for port, bits, _ in self.ports:
                try:
                    _sys.add_net_rule(fd, bits, port)
                except OSError as e:
                    raise RulesetError(
                        f"failed to add a rule for port {port}: {e.strerror}") from None
        except BaseException:
            os.close(fd)
            self._todo = None
            raise
        self._fd = fd
        self._complete = True
        return fd

    def _new_ruleset(self) -> int:
        from . import _sys
        size = (compat.ATTR_SIZE_SCOPED if self.scoped else
                compat.ATTR_SIZE_NET if self.net else compat.ATTR_SIZE_FS)
        try:
            return _sys.create_ruleset(self.fs, self.net, self.scoped, size)
        except OSError as e:
            raise RulesetError(f"failed to create a ruleset: {e.strerror}") from None

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
            "dropped": list(self.dropped),
            "unenforceable": list(self.unenforceable),
            "skipped": [{"path": p, "from": o, "reason": why} for p, o, why in self.skipped],
            "merged": [{"path": p, "from": o, "covered_by": c}
                       for p, o, c in self.redundant],
            "profiles": list(self.request.sources),
        }


def _rule_error(e: OSError) -> RulesetError:
    return RulesetError(f"failed to add a rule for {e.filename}: {e.strerror}",
                        "the path may have changed (or become a symlink) since "
                        "it was resolved; run again")


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

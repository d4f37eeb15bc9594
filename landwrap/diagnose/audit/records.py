"""audit/records.py: Landlock denial records, parsed and tallied.  Pure:
no I/O.  :func:`parse_message` turns the text of one audit record into a
:class:`Record`; :class:`Tally` groups records into
events and keeps the :class:`Denial` objects of the Landlock domains that
belong to one sandbox, in memory that does not grow with their number.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # (typing costs --log-denials start-up time)
    from typing import Any

# Audit record types (linux/audit.h).
AUDIT_SYSCALL = 1300
AUDIT_CONFIG_CHANGE = 1305
AUDIT_EOE = 1320
AUDIT_PROCTITLE = 1327
AUDIT_LANDLOCK_ACCESS = 1423
AUDIT_LANDLOCK_DOMAIN = 1424
#: "Trusted application message": a free-text user record.  Used as the
#: end-of-run marker: the kernel queues records in order, so once ours comes
#: back every record the finished command caused has been delivered.
AUDIT_TRUSTED_APP = 1121

#: Fields that the kernel writes with audit_log_untrustedstring(): quoted
#: when plain, hex-encoded when they contain spaces, quotes or controls.
_UNTRUSTED = {"path", "exe", "comm", "ocomm", "name", "cwd", "proctitle"}


# --------------------------------------------------------------------------
# Parsing (pure)

class Record:
    """One audit record: ``type``, the event ``serial`` and ``stamp`` from
    ``audit(STAMP:SERIAL):``, and its ``fields``."""

    __slots__ = ("type", "serial", "stamp", "fields")

    def __init__(self, type_: int, serial: int, stamp: str, fields: dict[str, str]):
        self.type, self.serial, self.stamp, self.fields = type_, serial, stamp, fields

    def __repr__(self) -> str:
        return f"Record({self.type}, {self.serial}, {self.fields!r})"


def _unhex(value: str) -> str | None:
    if len(value) % 2 or not value:
        return None
    try:
        return bytes.fromhex(value).decode("utf-8", "surrogateescape")
    except ValueError:
        return None


_UNSET = ("(null)", "?", "(none)")


def parse_fields(text: str) -> dict[str, str]:
    """``key=value`` pairs of an audit record body.  Values in double or
    single quotes are taken literally; an unquoted value of an untrusted
    string field (``path``, ``exe``, ``comm``...) is hex-decoded.

    The kernel never writes a space inside a double-quoted value (it
    hex-encodes such strings): the body is split at spaces, and only a body
    that breaks that rule (or has single quotes, ``msg='...'``) is scanned
    character by character (the same result, about 1.5x slower: a SYSCALL
    record has some 25 fields, and a flood of denials many)."""
    if "'" in text:
        return _parse_fields_scan(text)
    out: dict[str, str] = {}
    for tok in text.split(" "):
        eq = tok.find("=")
        if eq < 0:
            continue  # (an empty or junk word)
        key, value = tok[:eq], tok[eq + 1:]
        if value[:1] == '"':
            if len(value) < 2 or value[-1] != '"' or '"' in value[1:-1]:
                return _parse_fields_scan(text)
            value = value[1:-1]
        else:
            value = _unquoted(key, value)
        out[key] = value
    return out


def _unquoted(key: str, value: str) -> str:
    """An unquoted *value*: hex-decoded for an untrusted string field."""
    if key in _UNTRUSTED and value not in _UNSET:
        decoded = _unhex(value)
        if decoded is not None:
            return decoded
    return value


def _parse_fields_scan(text: str) -> dict[str, str]:
    """:func:`parse_fields`, character by character (any quoting)."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] == " ":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq]
        if " " in key:  # not a key: skip the junk word
            key = key.rsplit(" ", 1)[-1]
        j = eq + 1
        if j < n and text[j] in "\"'":
            close = text.find(text[j], j + 1)
            if close < 0:
                close = n
            value = text[j + 1:close]
            i = close + 1
        else:
            end = text.find(" ", j)
            if end < 0:
                end = n
            value = _unquoted(key, text[j:end])
            i = end
        out[key] = value
    return out


def parse_message(type_: int, payload: str | bytes | bytearray) -> Record | None:
    """A :class:`Record` from one netlink message (type and payload, the
    text ``audit(1729738800.268:30): field=value ...``), or None."""
    if isinstance(payload, (bytes, bytearray)):
        payload = bytes(payload).rstrip(b"\0").decode("utf-8", "surrogateescape")
    if not payload.startswith("audit("):
        return None
    close = payload.find("): ")
    if close < 0:
        close = payload.find(")")
        if close < 0:
            return None
        body = ""
    else:
        body = payload[close + 3:]
    stamp, _, serial = payload[6:close].partition(":")
    try:
        serial_n = int(serial)
    except ValueError:
        return None
    return Record(type_, serial_n, stamp, parse_fields(body))


def parse_line(line: str) -> Record | None:
    """A record from a log line as auditd or ``dmesg`` writes it:
    ``type=1423 audit(...): ...`` / ``type=LANDLOCK_ACCESS msg=audit(...): ...``
    (used by tests and to read saved logs)."""
    line = line.strip()
    if line.startswith("audit: "):
        line = line[7:]
    if not line.startswith("type="):
        return None
    word, _, rest = line.partition(" ")
    name = word[5:]
    type_ = _TYPE_NAMES.get(name)
    if type_ is None:
        try:
            type_ = int(name)
        except ValueError:
            return None
    if rest.startswith("msg="):
        rest = rest[4:]
    return parse_message(type_, rest)


_TYPE_NAMES = {"SYSCALL": AUDIT_SYSCALL, "EOE": AUDIT_EOE, "PROCTITLE": AUDIT_PROCTITLE,
               "LANDLOCK_ACCESS": AUDIT_LANDLOCK_ACCESS,
               "LANDLOCK_DOMAIN": AUDIT_LANDLOCK_DOMAIN}


#: What :meth:`Denial.key` returns: access, object and program.
DenialKey = tuple[object, ...]


class Denial:
    """One denied request, as the kernel logged it.

    ``blockers`` are the kernel's names (``fs.read_file``, ``net.connect_tcp``,
    ``scope.signal``...).  The object is ``path`` (filesystem), ``port`` and
    ``addr`` (network) or ``opid``/``ocomm`` (signals).  ``pid``, ``exe``
    and ``comm`` name the process that was denied (from the event's SYSCALL
    record; ``None`` when the kernel wrote none)."""

    __slots__ = ("domain", "blockers", "path", "dev", "ino", "port", "addr",
                 "opid", "ocomm", "pid", "ppid", "exe", "comm", "syscall", "serial", "count",
                 "deleted")
    pid: str | None
    ppid: str | None
    exe: str | None
    comm: str | None
    syscall: str | None

    def __init__(self, domain: str | None, blockers: tuple[str, ...], fields: dict[str, str],
                 serial: int = 0):
        self.domain = domain
        self.blockers = blockers
        self.serial = serial
        self.path = fields.get("path")
        #: The kernel named the object as deleted (`` (deleted)`` after the
        #: path) -- or so a file named like that says: ``ino`` tells them
        #: apart from the file now at ``path``.
        self.deleted = bool(self.path and self.path.endswith(" (deleted)"))
        if self.path and self.deleted:
            self.path = self.path[:-10]
        self.dev = fields.get("dev")
        self.ino = fields.get("ino")
        port = fields.get("dest", fields.get("src"))
        self.port = int(port) if port is not None and port.isdigit() else None
        self.addr = fields.get("daddr", fields.get("saddr"))
        self.opid = fields.get("opid")
        self.ocomm = fields.get("ocomm")
        self.pid = self.ppid = self.exe = self.comm = self.syscall = None
        self.count = 1  # identical denials tallied into this one

    def key(self) -> DenialKey:
        """What makes two denials the same for a report: access, object and
        program (not the pid)."""
        return (self.blockers, self.path, self.deleted, self.port, self.addr, self.opid,
                self.ocomm, self.exe, self.comm, self.syscall)

    @property
    def kinds(self) -> set[str]:
        """``{"fs"}``, ``{"net"}``, ``{"scope"}``... from the blockers."""
        return {b.partition(".")[0] for b in self.blockers}

    @property
    def rights(self) -> tuple[str, ...]:
        """The blockers without their prefix (``read_file``, ``connect_tcp``)."""
        return tuple(b.partition(".")[2] or b for b in self.blockers)

    @property
    def program(self) -> str:
        """Who was denied, for messages: ``cat (/usr/bin/cat)``."""
        if self.exe and self.comm and os.path.basename(self.exe) != self.comm:
            return f"{self.comm} ({self.exe})"
        return self.exe or self.comm or "?"

    def __repr__(self) -> str:
        obj = self.path or (f"{self.addr}:{self.port}" if self.port is not None else self.ocomm)
        return f"Denial({','.join(self.blockers)} {obj} by {self.program})"


class Analysis:
    """Records sorted out: ``denials`` of the sandbox's own domains (each
    stands for ``count`` identical ones), the ``domains`` found (id ->
    creator fields), the kernel's own count of denials per domain
    (``counted``, from deallocation records), the number of denials
    ``ignored`` because they belong to other domains, and ``untallied``
    denials of our domains that were counted but not itemized (more than
    :data:`MAX_DISTINCT` different ones)."""

    def __init__(self) -> None:
        self.denials: list[Denial] = []
        self.domains: dict[str | None, dict[str, str]] = {}
        self.counted: dict[str | None, int] = {}
        self.ignored = 0
        self.untallied = 0
        self.lost = 0  # receive-buffer overflows while collecting

    @property
    def total(self) -> int:
        """Denials of our domains, itemized or not."""
        return sum(d.count for d in self.denials) + self.untallied

    @property
    def kernel_count(self) -> int | None:
        """Denials the kernel counted in our domains (logged or not), when
        every one of them has been deallocated; else None."""
        if not self.domains or any(d not in self.counted for d in self.domains):
            return None
        return sum(self.counted[d] for d in self.domains)


#: Different denials itemized per collection; more are only counted.  A
#: sandboxed program can cause denials as fast as the kernel logs them: what
#: is kept must not grow with their number (a flood of 15 s once kept 650 MB).
MAX_DISTINCT = 2048
#: Different denials kept for each domain not yet known to be ours.
MAX_UNDECIDED = 256
#: Domains remembered (creators of other sandboxes included).
MAX_DOMAINS = 4096
#: Events held until their end-of-event record.
MAX_PENDING = 256


class Tally:
    """Denial records sorted out as they arrive, in bounded memory.

    Records are grouped into events (by serial; an event ends with its
    ``EOE`` record, or when :data:`MAX_PENDING` newer events are waiting),
    each denial is joined with its event's SYSCALL record and tallied with
    the identical ones.  A domain is the sandbox's own when its creator
    (the ``pid`` of its ``status=allocated`` record, the process that called
    restrict_self) is one of the *watched* pids, or a child of *parent_pid*
    according to a SYSCALL record (the launcher's child when it failed
    before reporting its pid).  Until that is known a domain's denials are
    kept in a small per-domain tally."""

    def __init__(self, parent_pid: int | None = None):
        self.parent = str(parent_pid) if parent_pid is not None else None
        self.pids: set[str] = set()
        self.uids: set[str] = set()   # the watched processes' real uids, when known
        self.children: set[str | None] = set()
        self.creators: dict[str | None, dict[str, str]] = {}   # domain -> allocated-record fields
        self.counted: dict[str | None, int] = {}
        self.own: dict[DenialKey, Denial] = {}  # Denial.key() -> Denial, for our domains
        self.own_domains: set[str | None] = set()
        self.undecided: dict[str | None, dict[DenialKey, Denial]] = {}  # domain -> {key: Denial}
        self.spill: dict[str | None, int] = {}      # domain -> denials counted, not itemized
        self.pending: dict[int, list[Any]] = {}    # serial -> [access fields..., syscall fields]
        self.untallied = 0
        self.received = 0

    # feeding -------------------------------------------------------------
    def watch(self, pid: int | str, uid: int | str | None = None) -> None:
        """*pid* (and, when known, its real *uid*) made the sandbox: the
        domains it (or a child of ours) creates are ours.  With a uid, a
        domain whose creator had another uid is not, whatever its pid: pids
        are reused, and another user's sandbox made before ours started
        can name a pid that is now our command's."""
        self.pids.add(str(pid))
        if uid is not None:
            self.uids.add(str(uid))
        self._promote()

    def add(self, r: Record) -> None:
        self.received += 1
        if r.type == AUDIT_LANDLOCK_DOMAIN:
            self._domain(r.fields)
        elif r.type in (AUDIT_LANDLOCK_ACCESS, AUDIT_SYSCALL):
            ev = self.pending.get(r.serial)
            if ev is None:
                if len(self.pending) >= MAX_PENDING:
                    self._finish_event(min(self.pending))
                ev = self.pending[r.serial] = [[], None]
            if r.type == AUDIT_SYSCALL:
                ev[1] = r.fields
            else:
                ev[0].append(r.fields)
        elif r.type == AUDIT_EOE and r.serial in self.pending:
            self._finish_event(r.serial)

    def _domain(self, f: dict[str, str]) -> None:
        dom = f.get("domain")
        status = f.get("status")
        if status == "allocated":
            if dom not in self.creators and len(self.creators) >= MAX_DOMAINS:
                for old in list(self.creators)[:len(self.creators) // 4]:
                    if old not in self.own_domains:
                        del self.creators[old]
                        self.counted.pop(old, None)
            self.creators[dom] = {k: f[k] for k in ("pid", "uid", "exe", "comm") if k in f}
            self._promote()
        elif status == "deallocated" and dom in self.creators and \
                f.get("denials", "").isdigit():
            self.counted[dom] = int(f["denials"])

    def _is_own(self, dom: str | None) -> bool:
        c = self.creators.get(dom)
        if c is None or (self.uids and c.get("uid") not in self.uids):
            return False
        return c.get("pid") in self.pids or c.get("pid") in self.children

    def _promote(self) -> None:
        for dom in list(self.undecided) + list(self.spill):
            if dom not in self.own_domains and self._is_own(dom):
                self.own_domains.add(dom)
                for d in self.undecided.pop(dom, {}).values():
                    self._keep(d)
                self.untallied += self.spill.pop(dom, 0)

    def _finish_event(self, serial: int) -> None:
        accesses, sysc = self.pending.pop(serial)
        if sysc is not None and self.parent is not None and sysc.get("ppid") == self.parent:
            if sysc.get("pid") not in self.children:
                self.children.add(sysc.get("pid"))
                self._promote()
        for f in accesses:
            dom = f.get("domain")
            blockers = tuple(b for b in f.get("blockers", "").split(",") if b)
            d = Denial(dom, blockers, f, serial)
            if sysc is not None:
                d.pid, d.ppid = sysc.get("pid"), sysc.get("ppid")
                d.exe, d.comm, d.syscall = sysc.get("exe"), sysc.get("comm"), sysc.get("syscall")
                if d.exe == "(null)":
                    d.exe = None
            if dom in self.own_domains or self._is_own(dom):
                self.own_domains.add(dom)
                self._keep(d)
                continue
            held = self.undecided.get(dom)
            if held is None and len(self.undecided) < MAX_DOMAINS // 16:
                held = self.undecided[dom] = {}
            if held is None or (d.key() not in held and len(held) >= MAX_UNDECIDED):
                self.spill[dom] = self.spill.get(dom, 0) + 1
            elif d.key() in held:
                held[d.key()].count += 1
            else:
                held[d.key()] = d

    def _keep(self, d: Denial) -> None:
        k = d.key()
        have = self.own.get(k)
        if have is not None:
            have.count += d.count
        elif len(self.own) < MAX_DISTINCT:
            self.own[k] = d
        else:
            self.untallied += d.count

    # results -------------------------------------------------------------
    def settled(self) -> bool:
        """Whether every domain of ours has reported its total."""
        own = [d for d in self.creators if d in self.own_domains or self._is_own(d)]
        return all(d in self.counted for d in own)

    def result(self) -> Analysis:
        """The analysis of everything fed so far (events still open are
        taken as complete)."""
        for serial in sorted(self.pending):
            self._finish_event(serial)
        self._promote()
        out = Analysis()
        out.denials = sorted(self.own.values(), key=lambda d: d.serial)
        out.untallied = self.untallied
        for dom, fields in self.creators.items():
            if dom in self.own_domains or self._is_own(dom):
                out.domains[dom] = fields
                if dom in self.counted:
                    out.counted[dom] = self.counted[dom]
        out.ignored = sum(d.count for held in self.undecided.values() for d in held.values()) \
            + sum(self.spill.values())
        return out

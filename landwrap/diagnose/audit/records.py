"""audit.py: Landlock denial records from the kernel audit subsystem.

Two halves:

* Pure parsing (no I/O): :func:`parse_message` turns the text of one audit
  record into a :class:`Record`; :func:`denials` groups records into
  events and returns the :class:`Denial` objects of the Landlock domains
  that belong to one sandbox.  Unit-testable from captured lines.
* :class:`Session`: the NETLINK_AUDIT side.  It subscribes to the read-log
  multicast group (``AUDIT_NLGRP_READLOG``), switches auditing on with
  ``AUDIT_SET`` only if it is off, collects records in a thread while the
  sandboxed command runs, drains what the kernel still has queued, and puts
  auditing back the way it found it.  Concurrent landwrap processes share
  the switch through lock files in ``/run/landwrap`` so that one does not
  turn auditing off under another.

What the kernel logs (ABI 7, Linux 6.15): a ``1423`` (AUDIT_LANDLOCK_ACCESS)
record per denial, ``domain=ID blockers=fs.read_file path="..." dev="..."
ino=N`` (``daddr=/dest=`` or ``saddr=/src=`` for TCP, ``opid=/ocomm=`` for
signals); a ``1424`` (AUDIT_LANDLOCK_DOMAIN) record ``status=allocated``
after the first logged denial of a domain, naming the *creator* (the process
that called landlock_restrict_self: ``pid``, ``exe``, ``comm``), and one
``status=deallocated denials=N`` when the domain is freed.  The ``1300``
SYSCALL record of the same event names the process that was denied.

Never changes audit rules, the failure mode or anything but the enabled
flag; never leaves auditing on that it found off (short of SIGKILL), and
switches off only what landwrap itself switched on, and only while nobody
else has set it since (an administrator's ``auditctl -e 1`` is seen as a
configuration-change record).  Keeps a tally, not the records: memory does
not grow with the number of denials.  Side effects while a session runs: without an
auditd, the kernel echoes each record to the kernel log (rate-limited), and
the end-of-run marker is itself a record.
"""

from __future__ import annotations

import os

# Netlink and audit constants (linux/netlink.h, linux/audit.h).
NETLINK_AUDIT = 9
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_STATUS_ENABLED = 0x0001
AUDIT_NLGRP_READLOG = 1
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

_NLHDR = "=IHHII"  # struct nlmsghdr: len, type, flags, seq, pid
_NLHDR_SIZE = 16
# struct audit_status: mask, enabled, failure, pid, rate_limit,
# backlog_limit, lost, backlog (then newer fields the kernel may add).
_STATUS = "=8I"

#: Fields that the kernel writes with audit_log_untrustedstring(): quoted
#: when plain, hex-encoded when they contain spaces, quotes or controls.
_UNTRUSTED = {"path", "exe", "comm", "ocomm", "name", "cwd", "proctitle"}


# --------------------------------------------------------------------------
# Parsing (pure)

class Record:
    """One audit record: ``type``, the event ``serial`` and ``stamp`` from
    ``audit(STAMP:SERIAL):``, and its ``fields``."""

    __slots__ = ("type", "serial", "stamp", "fields")

    def __init__(self, type_: int, serial: int, stamp: str, fields: dict):
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


def parse_fields(text: str) -> dict:
    """``key=value`` pairs of an audit record body.  Values in double or
    single quotes are taken literally; an unquoted value of an untrusted
    string field (``path``, ``exe``, ``comm``...) is hex-decoded."""
    out: dict = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] == " ":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq]
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
            value = text[j:end]
            i = end
            if key in _UNTRUSTED and value not in ("(null)", "?", "(none)"):
                decoded = _unhex(value)
                if decoded is not None:
                    value = decoded
        if " " in key:  # not a key: skip the junk word
            key = key.rsplit(" ", 1)[-1]
        out[key] = value
    return out


def parse_message(type_: int, payload) -> Record | None:
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


class Denial:
    """One denied request, as the kernel logged it.

    ``blockers`` are the kernel's names (``fs.read_file``, ``net.connect_tcp``,
    ``scope.signal``...).  The object is ``path`` (filesystem), ``port`` and
    ``addr`` (network) or ``opid``/``ocomm`` (signals).  ``pid``, ``exe``
    and ``comm`` name the process that was denied (from the event's SYSCALL
    record; ``None`` when the kernel wrote none)."""

    __slots__ = ("domain", "blockers", "path", "dev", "ino", "port", "addr",
                 "opid", "ocomm", "pid", "ppid", "exe", "comm", "syscall", "serial", "count")

    def __init__(self, domain: str, blockers: tuple, fields: dict, serial: int = 0):
        self.domain = domain
        self.blockers = blockers
        self.serial = serial
        self.path = fields.get("path")
        if self.path and self.path.endswith(" (deleted)"):
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

    def key(self) -> tuple:
        """What makes two denials the same for a report: access, object and
        program (not the pid)."""
        return (self.blockers, self.path, self.port, self.addr, self.opid, self.ocomm,
                self.exe, self.comm, self.syscall)

    @property
    def kinds(self) -> set:
        """``{"fs"}``, ``{"net"}``, ``{"scope"}``... from the blockers."""
        return {b.partition(".")[0] for b in self.blockers}

    @property
    def rights(self) -> tuple:
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

    def __init__(self):
        self.denials: list = []
        self.domains: dict = {}
        self.counted: dict = {}
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
        self.pids: set = set()
        self.children: set = set()
        self.creators: dict = {}   # domain -> allocated-record fields
        self.counted: dict = {}
        self.own: dict = {}        # Denial.key() -> Denial, for our domains
        self.own_domains: set = set()
        self.undecided: dict = {}  # domain -> {key: Denial}
        self.spill: dict = {}      # domain -> denials counted, not itemized
        self.pending: dict = {}    # serial -> [access fields..., syscall fields]
        self.untallied = 0
        self.received = 0

    # feeding -------------------------------------------------------------
    def watch(self, pid) -> None:
        self.pids.add(str(pid))
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

    def _domain(self, f: dict) -> None:
        dom = f.get("domain")
        status = f.get("status")
        if status == "allocated":
            if dom not in self.creators and len(self.creators) >= MAX_DOMAINS:
                for old in list(self.creators)[:len(self.creators) // 4]:
                    if old not in self.own_domains:
                        del self.creators[old]
                        self.counted.pop(old, None)
            self.creators[dom] = {k: f[k] for k in ("pid", "exe", "comm") if k in f}
            self._promote()
        elif status == "deallocated" and dom in self.creators and \
                f.get("denials", "").isdigit():
            self.counted[dom] = int(f["denials"])

    def _is_own(self, dom) -> bool:
        c = self.creators.get(dom)
        return c is not None and (c.get("pid") in self.pids or c.get("pid") in self.children)

    def _promote(self) -> None:
        for dom in list(self.undecided) + list(self.spill):
            if dom not in self.own_domains and self._is_own(dom):
                self.own_domains.add(dom)
                for d in self.undecided.pop(dom, {}).values():
                    self._keep(d)
                self.untallied += self.spill.pop(dom, 0)

    def _finish_event(self, serial) -> None:
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


def analyse(records, own_pids=(), parent_pid: int | None = None) -> Analysis:
    """Sort *records* (in the order they came) into an :class:`Analysis`
    (see :class:`Tally`).  Denials in other domains -- other sandboxes,
    and sandboxes nested inside this one -- are not reported."""
    t = Tally(parent_pid)
    for p in own_pids:
        t.pids.add(str(p))
    for r in records:
        t.add(r)
    return t.result()


# --------------------------------------------------------------------------
# The kernel side

class AuditUnavailable(Exception):
    """Denial records cannot be read here: ``reason`` says why, ``fix``
    what would make it work (each a short clause)."""

    def __init__(self, reason: str, fix: str):
        super().__init__(f"{reason}; {fix}")
        self.reason, self.fix = reason, fix


def _explain(err: OSError, doing: str, cap: str) -> AuditUnavailable:
    import errno

    if err.errno in (errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
        return AuditUnavailable(
            "the kernel has no audit subsystem (built without CONFIG_AUDIT, "
            "or booted with audit=0)",
            "boot with audit=1, on a kernel built with CONFIG_AUDIT=y")
    if err.errno in (errno.EPERM, errno.EACCES):
        if os.geteuid() != 0:
            return AuditUnavailable(f"{doing} needs root ({cap})",
                                    "run landwrap as root, e.g. with sudo (where auditd "
                                    "runs, the denials are in its log: ausearch -m 1423)")
        return AuditUnavailable(f"{doing} needs {cap}, which this process lacks",
                                "run landwrap with CAP_AUDIT_READ and CAP_AUDIT_CONTROL")
    if err.errno == errno.ECONNREFUSED:
        return AuditUnavailable(
            f"{doing}: the kernel refuses audit requests from this namespace "
            "(audit works only in the initial user and PID namespaces)",
            "run landwrap on the host, outside the container")
    what = os.strerror(err.errno) if err.errno else (str(err) or type(err).__name__)
    return AuditUnavailable(f"{doing} failed: {what}",
                            "check the kernel's audit configuration")


def _nl_messages(data: bytes):
    """(type, payload) of each netlink message in *data*."""
    import struct

    off = 0
    while off + _NLHDR_SIZE <= len(data):
        length, type_, _, _, _ = struct.unpack_from(_NLHDR, data, off)
        if length < _NLHDR_SIZE or off + length > len(data):
            break
        yield type_, data[off + _NLHDR_SIZE:off + length]
        off += (length + 3) & ~3


class _Control:
    """A unicast NETLINK_AUDIT socket for AUDIT_GET / AUDIT_SET."""

    def __init__(self):
        import socket

        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  NETLINK_AUDIT)
        self.sock.bind((0, 0))
        self.sock.settimeout(5)
        self.seq = 0

    def request(self, type_: int, payload: bytes = b"", want: int | None = None):
        """Send one request; returns the payload of the *want* reply (or
        None); raises OSError with the kernel's error."""
        import struct

        self.seq += 1
        seq = self.seq
        self.sock.send(struct.pack(_NLHDR, _NLHDR_SIZE + len(payload), type_,
                                   NLM_F_REQUEST | NLM_F_ACK, seq, 0) + payload)
        reply = None
        acked = False
        while not acked or (want is not None and reply is None):
            data = self.sock.recv(1 << 16)
            for t, body in _nl_messages(data):
                if t == NLMSG_ERROR:
                    err = struct.unpack_from("=i", body)[0]
                    if len(body) >= 4 + _NLHDR_SIZE and \
                            struct.unpack_from(_NLHDR, body, 4)[3] != seq:
                        continue
                    if err < 0:
                        raise OSError(-err, os.strerror(-err))
                    acked = True
                elif want is not None and t == want:
                    reply = body
        return reply

    def enabled(self) -> int:
        """0 off, 1 on, 2 on and locked."""
        import struct

        body = self.request(AUDIT_GET, want=AUDIT_GET)
        return struct.unpack_from(_STATUS, body.ljust(32, b"\0"))[1]

    def set_enabled(self, value: int) -> None:
        import struct

        self.request(AUDIT_SET, struct.pack(_STATUS, AUDIT_STATUS_ENABLED, value,
                                            0, 0, 0, 0, 0, 0))

    def user_message(self, text: str) -> None:
        self.request(AUDIT_TRUSTED_APP, text.encode() + b"\0")

    def close(self) -> None:
        self.sock.close()


LOCK_DIR = "/run/landwrap"


class _Switch:
    """Turns auditing on for a session and back off after the last
    concurrent landwrap session, using flock()s in :data:`LOCK_DIR`:
    ``audit.lock`` serialises the transitions, every session holds a shared
    lock on ``audit.users``, and ``audit.restore`` records that auditing was
    off before (it survives a killed session and is honoured by the next)."""

    def __init__(self, ctl: _Control, lock_dir: str = LOCK_DIR):
        self.ctl = ctl
        self.dir = lock_dir
        self.users = -1
        self.restore_off = False  # uncoordinated fallback

    def _open(self, name: str) -> int:
        return os.open(os.path.join(self.dir, name),
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)

    def _mutex(self) -> int:
        import fcntl

        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            st = os.lstat(self.dir)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return -1
            fd = self._open("audit.lock")
        except OSError:
            return -1
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _restore_file(self) -> str:
        return os.path.join(self.dir, "audit.restore")

    def acquire(self) -> bool:
        """Make sure auditing is on; returns True if this session (or a
        killed earlier one) turned it on."""
        import fcntl

        mutex = self._mutex()
        if mutex < 0:  # no lock directory: manage the switch alone
            if self.ctl.enabled() == 0:
                self.ctl.set_enabled(1)
                self.restore_off = True
            return self.restore_off
        try:
            self.users = self._open("audit.users")
            try:
                fcntl.flock(self.users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                first = True
            except BlockingIOError:
                first = False
            pending = os.path.exists(self._restore_file())
            if first and pending:
                # Left by a session that was killed: whether auditing is
                # still the way it left it (or an administrator has turned
                # it on since) cannot be known, so it is not switched off.
                pending = False
                os.unlink(self._restore_file())
            if self.ctl.enabled() == 0:
                self.ctl.set_enabled(1)
                if not pending:
                    fd = self._open("audit.restore")
                    os.write(fd, b"0\n")
                    os.close(fd)
                pending = True
            fcntl.flock(self.users, fcntl.LOCK_SH)
            return pending
        finally:
            os.close(mutex)

    def release(self, changed_by_others: bool = False) -> None:
        """Leave; the last session switches auditing back off if landwrap
        switched it on and nobody else has set it since
        (*changed_by_others*: a session saw a configuration change that was
        not landwrap's; the note is then dropped for every session)."""
        import fcntl

        if self.users < 0:
            if self.restore_off:
                self.restore_off = False
                if self.ctl.enabled() == 1 and not changed_by_others:
                    self.ctl.set_enabled(0)
            return
        mutex = self._mutex()
        try:
            try:
                fcntl.flock(self.users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                last = True
            except BlockingIOError:
                last = False
            if changed_by_others and os.path.exists(self._restore_file()):
                os.unlink(self._restore_file())
            if last and os.path.exists(self._restore_file()):
                if self.ctl.enabled() == 1:
                    self.ctl.set_enabled(0)
                os.unlink(self._restore_file())
        finally:
            os.close(self.users)
            self.users = -1
            if mutex >= 0:
                os.close(mutex)


class Session:
    """Collect the denial records of sandboxed commands.

    ::

        with Session() as s:              # raises AuditUnavailable
            launcher.run(plan, ..., on_start=s.watch)
            result = s.finish()           # an Analysis

    :meth:`open` subscribes and switches auditing on (only if it was off);
    :meth:`watch` names the sandbox's first process; :meth:`finish` drains
    the records still in flight and analyses them; :meth:`close` puts
    auditing back.  A session can collect several runs in turn (``learn``):
    :meth:`finish` starts a fresh collection.
    """

    #: Upper bounds for draining after the command ends (seconds).
    DRAIN_TIMEOUT = 3.0
    DEALLOC_WAIT = 0.5

    def __init__(self, lock_dir: str = LOCK_DIR):
        self.lock_dir = lock_dir
        self.ctl = None
        self.sock = None
        self.switch = None
        self.switched_on = False
        self.was_enabled = None
        self.lost = 0
        self._config_serial = None   # the latest switch change seen
        self._start_serial = None    # the serial of this session's start marker
        self._marker_serial = None
        self.tally = None
        self._tally_lock = None
        self._reset_collection()
        self._stop_r = self._stop_w = -1
        self._thread = None
        self._seen_marker = None
        self._marker = None
        self._old_handlers: dict = {}

    # life cycle ---------------------------------------------------------
    def __enter__(self) -> "Session":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Subscribe to the records and make sure auditing is on.  Raises
        :class:`AuditUnavailable` (having undone everything)."""
        import socket

        try:
            try:
                self.sock = socket.socket(socket.AF_NETLINK,
                                          socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_AUDIT)
            except OSError as e:
                raise _explain(e, "opening the audit netlink socket", "CAP_AUDIT_READ") from None
            try:
                self.sock.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
            except OSError as e:
                raise _explain(e, "reading audit records", "CAP_AUDIT_READ") from None
            for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
                    break
                except OSError:
                    continue
            try:
                self.ctl = _Control()
                self.was_enabled = self.ctl.enabled()
            except OSError as e:
                raise _explain(e, "querying the audit status", "CAP_AUDIT_CONTROL") from None
            self._trap_signals()
            self.switch = _Switch(self.ctl, self.lock_dir)
            try:
                self.switched_on = self.switch.acquire()
            except OSError as e:
                raise _explain(e, "switching auditing on", "CAP_AUDIT_CONTROL") from None
            self._start_reader()
            self._start_serial = self._mark("start")
        except BaseException:
            self.close()
            raise

    @property
    def changed_by_others(self) -> bool:
        """Whether someone else set the audit switch while this session ran
        (when the start marker never came back, any change seen counts)."""
        if self._config_serial is None:
            return False
        return self._start_serial is None or self._config_serial > self._start_serial

    def close(self) -> None:
        """Stop reading and put auditing back.  Idempotent."""
        self._stop_reader()
        try:
            if self.switch is not None:
                self.switch.release(self.changed_by_others)
        except OSError:
            pass
        finally:
            self.switch = None
            if self.ctl is not None:
                self.ctl.close()
                self.ctl = None
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            self._untrap_signals()

    def _trap_signals(self) -> None:
        """SIGTERM/SIGHUP would kill Python without running ``finally``:
        turn them into SystemExit while auditing may be switched on."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signo, frame):
            raise SystemExit(128 + signo)

        for s in (signal.SIGTERM, signal.SIGHUP):
            try:
                if signal.getsignal(s) in (signal.SIG_DFL, None):
                    self._old_handlers[s] = signal.signal(s, handler)
            except (ValueError, OSError):
                pass

    def _untrap_signals(self) -> None:
        import signal

        for s, old in self._old_handlers.items():
            try:
                signal.signal(s, old)
            except (ValueError, OSError):
                pass
        self._old_handlers = {}

    # reading ----------------------------------------------------------------
    def _start_reader(self) -> None:
        import signal
        import threading

        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._seen_marker = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name="landwrap-audit",
                                        daemon=True)
        # The launcher waits for SIGCHLD with sigwaitinfo() in the main
        # thread: a thread that left it unblocked could swallow it.  The
        # reader starts with every signal blocked.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            self._thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _read_loop(self) -> None:
        import errno
        import select

        sock = self.sock
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            events = dict(poller.poll())
            if sock.fileno() in events:
                while True:
                    try:
                        data = sock.recv(1 << 17)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno == errno.ENOBUFS:
                            self.lost += 1
                            continue
                        return
                    self._take(data)
            if self._stop_r in events:
                return

    def _reset_collection(self) -> None:
        import threading

        if self._tally_lock is None:
            self._tally_lock = threading.Lock()
        with self._tally_lock:
            self.tally = Tally(os.getpid())

    def _take(self, data: bytes) -> None:
        """Tally the records in one netlink read as they arrive: nothing is
        kept per record (see :class:`Tally`)."""
        for type_, body in _nl_messages(data):
            if type_ == AUDIT_TRUSTED_APP:
                if self._marker and self._marker.encode() in body:
                    rec = parse_message(type_, body)
                    self._marker_serial = rec.serial if rec is not None else None
                    self._seen_marker.set()
                continue
            if type_ == AUDIT_CONFIG_CHANGE:
                # Switching auditing on from off is not logged, so a change
                # of the switch seen here is someone else's (an
                # administrator's `auditctl -e 1`, an auditd starting) --
                # unless it was made before this session began: the kernel
                # delivers records late, and its serials tell the order.
                if b" audit_enabled=" in body or b" audit_pid=" in body:
                    rec = parse_message(type_, body)
                    serial = rec.serial if rec is not None else 1 << 62
                    self._config_serial = max(self._config_serial or 0, serial)
                continue
            if type_ in (AUDIT_LANDLOCK_ACCESS, AUDIT_LANDLOCK_DOMAIN, AUDIT_SYSCALL,
                         AUDIT_EOE):
                rec = parse_message(type_, body)
                if rec is not None:
                    with self._tally_lock:
                        self.tally.add(rec)

    def _analysis(self) -> Analysis:
        with self._tally_lock:
            result = self.tally.result()
        result.lost = self.lost
        return result

    def _stop_reader(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(5)
            self._thread = None
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._stop_r = self._stop_w = -1

    # collecting ---------------------------------------------------------------
    def watch(self, pid: int) -> None:
        """The sandbox's first process (the launcher's ``on_start`` hook)."""
        with self._tally_lock:
            self.tally.watch(pid)

    def drain(self) -> None:
        """Wait until the kernel has delivered every record of the finished
        command: send a marker record and wait for it to come back (bounded
        by :data:`DRAIN_TIMEOUT`).  Then give the kernel a moment (at most
        :data:`DEALLOC_WAIT`) to report the freed domains and their totals."""
        import time

        if self._mark("drain") is None:
            # No CAP_AUDIT_WRITE: wait for the stream to go quiet instead.
            last, deadline = -1, time.monotonic() + self.DRAIN_TIMEOUT
            while time.monotonic() < deadline and self.tally.received != last:
                last = self.tally.received
                time.sleep(0.1)
        deadline = time.monotonic() + self.DEALLOC_WAIT
        while time.monotonic() < deadline:
            with self._tally_lock:
                if self.tally.settled():
                    break
            time.sleep(0.01)

    def _mark(self, what: str) -> int | None:
        """Send a marker record and wait until it comes back (bounded by
        :data:`DRAIN_TIMEOUT`): every record queued before it has then been
        read.  Returns its serial, or None (no CAP_AUDIT_WRITE, timeout)."""
        import time

        self._seen_marker.clear()
        self._marker_serial = None
        self._marker = f"landwrap {what} {os.getpid()}.{time.monotonic_ns()}"
        try:
            self.ctl.user_message(self._marker)
        except OSError:
            return None
        if not self._seen_marker.wait(self.DRAIN_TIMEOUT):
            return None
        return self._marker_serial

    def finish(self) -> Analysis:
        """Drain, analyse, and start afresh for the next run."""
        if self.ctl is None:
            raise RuntimeError("audit session is not open")
        self.drain()
        result = self._analysis()
        self._reset_collection()
        self.lost = 0
        return result


def availability() -> AuditUnavailable | None:
    """Why denial records cannot be read here (without changing anything),
    or None when a :class:`Session` can probably be opened."""
    import socket

    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                          NETLINK_AUDIT)
    except OSError as e:
        return _explain(e, "opening the audit netlink socket", "CAP_AUDIT_READ")
    try:
        s.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
    except OSError as e:
        return _explain(e, "reading audit records", "CAP_AUDIT_READ")
    finally:
        s.close()
    try:
        ctl = _Control()
        try:
            ctl.enabled()
        finally:
            ctl.close()
    except OSError as e:
        return _explain(e, "querying the audit status", "CAP_AUDIT_CONTROL")
    return None


def audit_enabled() -> int:
    """The kernel's audit ``enabled`` flag (0, 1, 2 = locked on); raises
    OSError."""
    ctl = _Control()
    try:
        return ctl.enabled()
    finally:
        ctl.close()

"""audit/netlink.py: the NETLINK_AUDIT sockets -- the read-log
subscription (:func:`open_readlog`), AUDIT_GET/AUDIT_SET and user records
(:class:`Control`), and why they cannot be had here
(:class:`AuditUnavailable`, :func:`availability`).  Never changes anything
but the audit enabled flag, and that only when asked (``set_enabled``).
"""

from __future__ import annotations

import errno
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # (typing costs --log-denials start-up time)
    from typing import Iterator

# The C module: socket.py would cost ~4 ms to import (selectors, enums) for
# nothing a netlink socket uses.
import _socket as socket

from .records import AUDIT_TRUSTED_APP

# Netlink and audit constants (linux/netlink.h, linux/audit.h).
NETLINK_AUDIT = 9
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
AUDIT_GET = 1000
AUDIT_SET = 1001
AUDIT_STATUS_ENABLED = 0x0001
AUDIT_NLGRP_READLOG = 1

_NLHDR = "=IHHII"  # struct nlmsghdr: len, type, flags, seq, pid
_NLHDR_SIZE = 16
# struct audit_status: mask, enabled, failure, pid, rate_limit,
# backlog_limit, lost, backlog (then newer fields the kernel may add).
_STATUS = "=8I"


class AuditUnavailable(Exception):
    """Denial records cannot be read here: ``reason`` says why, ``fix``
    what would make it work (each a short clause)."""

    def __init__(self, reason: str, fix: str):
        super().__init__(f"{reason}; {fix}")
        self.reason, self.fix = reason, fix


def _explain(err: OSError, doing: str, cap: str) -> AuditUnavailable:
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


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink message in *data*."""
    off = 0
    while off + _NLHDR_SIZE <= len(data):
        length, type_, _, _, _ = struct.unpack_from(_NLHDR, data, off)
        if length < _NLHDR_SIZE or off + length > len(data):
            break
        yield type_, data[off + _NLHDR_SIZE:off + length]
        off += (length + 3) & ~3


class Control:
    """A unicast NETLINK_AUDIT socket for AUDIT_GET / AUDIT_SET."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  NETLINK_AUDIT)
        self.sock.bind((0, 0))
        self.sock.settimeout(5)
        self.seq = 0

    def request(self, type_: int, payload: bytes = b"", want: int | None = None) -> bytes | None:
        """Send one request; returns the payload of the *want* reply (or
        None); raises OSError with the kernel's error."""
        self.seq += 1
        seq = self.seq
        self.sock.send(struct.pack(_NLHDR, _NLHDR_SIZE + len(payload), type_,
                                   NLM_F_REQUEST | NLM_F_ACK, seq, 0) + payload)
        reply = None
        acked = False
        while not acked or (want is not None and reply is None):
            data = self.sock.recv(1 << 16)
            for t, body in messages(data):
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
        return self.status()[0]

    def status(self) -> tuple[int, int]:
        """(enabled, lost): the switch, and how many records the kernel has
        dropped since boot (rate limit, backlog, memory), machine-wide.
        Each call makes the kernel start a thread to send the reply: a
        millisecond or more on a loaded machine."""
        body = self.request(AUDIT_GET, want=AUDIT_GET)
        assert body is not None  # request() waits for the reply it wants
        fields = struct.unpack_from(_STATUS, body.ljust(32, b"\0"))
        return int(fields[1]), int(fields[6])

    def set_enabled(self, value: int) -> None:
        self.request(AUDIT_SET, struct.pack(_STATUS, AUDIT_STATUS_ENABLED, value,
                                            0, 0, 0, 0, 0, 0))

    def user_message(self, text: str) -> None:
        self.request(AUDIT_TRUSTED_APP, text.encode() + b"\0")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Control":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_readlog() -> socket.socket:
    """A NETLINK_AUDIT socket subscribed to the read-log multicast group
    (``AUDIT_NLGRP_READLOG``).  Raises :class:`AuditUnavailable`."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             NETLINK_AUDIT)
    except OSError as e:
        raise _explain(e, "opening the audit netlink socket", "CAP_AUDIT_READ") from None
    try:
        sock.bind((0, 1 << (AUDIT_NLGRP_READLOG - 1)))
    except OSError as e:
        sock.close()
        raise _explain(e, "reading audit records", "CAP_AUDIT_READ") from None
    return sock


def availability() -> AuditUnavailable | None:
    """Why denial records cannot be read here (without changing anything),
    or None when a :class:`Session` can probably be opened."""
    try:
        open_readlog().close()
    except AuditUnavailable as e:
        return e
    try:
        with Control() as ctl:
            ctl.enabled()
    except OSError as e:
        return _explain(e, "querying the audit status", "CAP_AUDIT_CONTROL")
    return None

"""diagnose/audit: Landlock denial records from the kernel audit subsystem.

Its parts:

* Pure parsing (no I/O): :func:`parse_message` turns the text of one audit
  record into a :class:`Record`; :class:`Tally` groups records into
  events and returns the :class:`Denial` objects of the Landlock domains
  that belong to one sandbox.  Unit-testable from captured lines (``records``).
* :class:`Session`: the NETLINK_AUDIT side.  It subscribes to the read-log
  multicast group (``AUDIT_NLGRP_READLOG``), switches auditing on with
  ``AUDIT_SET`` only if it is off, collects records in a thread while the
  sandboxed command runs, drains what the kernel still has queued, and puts
  auditing back the way it found it.  Concurrent landwrap processes share
  the switch through lock files in ``/run/landwrap`` so that one does not
  turn auditing off under another (``session``; the netlink sockets are
  ``netlink``, the lock files ``switch``).

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

from .netlink import AuditUnavailable, availability  # noqa: F401
from .records import Analysis, Denial, MAX_DISTINCT, Tally, parse_line  # noqa: F401
from .records import parse_message  # noqa: F401
from .session import Session  # noqa: F401
from .switch import LOCK_DIR  # noqa: F401

__all__ = ["AuditUnavailable", "availability", "Analysis", "Denial", "MAX_DISTINCT", "Tally",
           "parse_line", "parse_message", "Session", "LOCK_DIR"]

"""audit/switch.py: the audit enabled flag, shared by concurrent landwrap
sessions through lock files in :data:`LOCK_DIR`.  Never leaves auditing on
that it found off (short of SIGKILL), and switches off only what landwrap
itself switched on.

Each AUDIT_GET costs the kernel a thread to send its reply (milliseconds on
a loaded machine): the switch is read once per session, under the lock, and
never again -- switching off is an AUDIT_SET that is harmless when auditing
is already off, and refused when it is locked.
"""

from __future__ import annotations

import fcntl
import os

from ...profiles.lookup import AUDIT_STATE_DIR
from .netlink import Control

#: (a state directory: no sandbox is let write there, see profiles.lookup)
LOCK_DIR = AUDIT_STATE_DIR


class Switch:
    """Turns auditing on for a session and back off after the last
    concurrent landwrap session, using flock()s in :data:`LOCK_DIR`:
    ``audit.lock`` serialises the transitions, every session holds a shared
    lock on ``audit.users``, and ``audit.restore`` records that auditing was
    off before (it survives a killed session and is honoured by the next)."""

    def __init__(self, ctl: Control, lock_dir: str = LOCK_DIR):
        self.ctl = ctl
        self.dir = lock_dir
        self.users = -1
        self.restore_off = False  # uncoordinated fallback
        #: The switch as :meth:`acquire` found it (None: not read yet).
        self.was_enabled: int | None = None
        #: The kernel's count of dropped records then (see Control.status).
        self.lost_before: int | None = None

    def _open(self, name: str) -> int:
        return os.open(os.path.join(self.dir, name),
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)

    def _mutex(self) -> int:
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
        mutex = self._mutex()
        if mutex < 0:  # no lock directory: manage the switch alone
            self.was_enabled, self.lost_before = self.ctl.status()
            if self.was_enabled == 0:
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
            self.was_enabled, self.lost_before = self.ctl.status()
            if self.was_enabled == 0:
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
        if self.users < 0:
            if self.restore_off:
                self.restore_off = False
                if not changed_by_others:
                    self._switch_off()
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
                self._switch_off()
                os.unlink(self._restore_file())
        finally:
            os.close(self.users)
            self.users = -1
            if mutex >= 0:
                os.close(mutex)

    def _switch_off(self) -> None:
        """AUDIT_SET enabled=0, unread: when auditing is already off it
        changes nothing and logs nothing; locked on (2), it is refused."""
        try:
            self.ctl.set_enabled(0)
        except PermissionError:
            pass

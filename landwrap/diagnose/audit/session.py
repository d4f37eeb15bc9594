"""audit/session.py: :class:`Session` collects the denial records of
sandboxed commands -- subscribes, switches auditing on (``switch``), reads
in a thread while the command runs, drains what the kernel still has
queued, and puts auditing back.  Keeps a tally, not the records.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time

# The C modules: signal.py and socket.py would cost ~5 ms to import (enums,
# selectors) for nothing this module uses.
import _socket as socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal  # (_signal has no stubs; the same functions)
    from typing import Any, Callable, NoReturn
else:
    import _signal as signal

from .netlink import Control, _explain, messages, open_readlog
from .records import (AUDIT_CONFIG_CHANGE, AUDIT_EOE, AUDIT_LANDLOCK_ACCESS,
                      AUDIT_LANDLOCK_DOMAIN, AUDIT_SYSCALL, AUDIT_TRUSTED_APP, Analysis, Tally,
                      parse_message)
from .switch import LOCK_DIR, Switch


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
        self.ctl: Control | None = None
        self.sock: socket.socket | None = None
        self.switch: Switch | None = None
        self.switched_on = False
        self.was_enabled: int | None = None
        self.lost = 0
        self._config_serial: int | None = None   # the latest switch change seen
        self._start_serial: int | None = None    # the serial of this session's start marker
        self._marker_serial: int | None = None
        self.tally: Tally  # set by _reset_collection()
        self._tally_lock = threading.Lock()
        self._reset_collection()
        self._stop_r = self._stop_w = -1
        self._thread: threading.Thread | None = None
        self._seen_marker: threading.Event | None = None
        self._marker: str | None = None
        self._start_marker: str | None = None
        self._last_received = -1
        self._seen_start: threading.Event | None = None
        self._old_handlers: dict[int, Any] = {}

    # life cycle ---------------------------------------------------------
    def __enter__(self) -> "Session":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Subscribe to the records and make sure auditing is on.  Raises
        :class:`AuditUnavailable` (having undone everything)."""
        try:
            self.sock = open_readlog()
            for opt in (getattr(socket, "SO_RCVBUFFORCE", 33), socket.SO_RCVBUF):
                try:
                    self.sock.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
                    break
                except OSError:
                    continue
            try:
                self.ctl = Control()
            except OSError as e:
                raise _explain(e, "querying the audit status", "CAP_AUDIT_CONTROL") from None
            self._trap_signals()
            self.switch = Switch(self.ctl, self.lock_dir)
            try:
                self.switched_on = self.switch.acquire()
            except OSError as e:
                doing = "querying the audit status" if self.switch.was_enabled is None \
                    else "switching auditing on"
                raise _explain(e, doing, "CAP_AUDIT_CONTROL") from None
            self.was_enabled = self.switch.was_enabled
            self._start_reader()
            # Not waited for: the drain marker comes back after it, and the
            # reader notes its serial when it passes (changed_by_others).
            self._mark("start")
        except BaseException:
            self.close()
            raise

    @property
    def changed_by_others(self) -> bool:
        """Whether someone else set the audit switch while this session ran
        (when the start marker never came back, any change seen counts)."""
        if self._config_serial is None:
            return False
        if self._start_serial is None and self._seen_start is not None \
                and self._thread is not None:
            self._seen_start.wait(self.DRAIN_TIMEOUT)  # (only when a change was seen)
        return self._start_serial is None or self._config_serial > self._start_serial

    def close(self) -> None:
        """Stop reading and put auditing back.  Idempotent."""
        others = self.changed_by_others  # (while the reader still runs)
        self._stop_reader()
        try:
            if self.switch is not None:
                self.switch.release(others)
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
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signo: int, frame: object) -> NoReturn:
            raise SystemExit(128 + signo)

        for s in (signal.SIGTERM, signal.SIGHUP):
            try:
                if signal.getsignal(s) in (signal.SIG_DFL, None):
                    self._old_handlers[s] = signal.signal(s, handler)
            except (ValueError, OSError):
                pass

    def _untrap_signals(self) -> None:
        for s, old in self._old_handlers.items():
            try:
                signal.signal(s, old)
            except (ValueError, OSError):
                pass
        self._old_handlers = {}

    # reading ----------------------------------------------------------------
    def _start_reader(self) -> None:
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._seen_marker = threading.Event()
        self._seen_start = threading.Event()
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
        sock = self.sock
        assert sock is not None  # set before the reader starts
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            events = dict(poller.poll())
            if sock.fileno() in events and not self._read_available():
                return
            if self._stop_r in events:
                return

    def _read_available(self) -> bool:
        """Tally every record the socket holds now; False if it failed."""
        assert self.sock is not None  # open() made it
        while True:
            try:
                data = self.sock.recv(1 << 17)
            except BlockingIOError:
                return True
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                return False
            self._take(data)

    def _read_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Read and tally records in the calling thread (the reader
        stopped) until ``done()`` or *timeout* seconds; whether done."""
        deadline = time.monotonic() + timeout
        assert self.sock is not None  # open() made it
        self.sock.setblocking(False)
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if poller.poll(max(1, int(left * 1000))) and not self._read_available():
                return done()
        return True

    def _reset_collection(self) -> None:
        with self._tally_lock:
            self.tally = Tally(os.getpid())

    def _take(self, data: bytes) -> None:
        """Tally the records in one netlink read as they arrive: nothing is
        kept per record (see :class:`Tally`)."""
        for type_, body in messages(data):
            if type_ == AUDIT_TRUSTED_APP:
                if self._start_marker and self._start_marker.encode() in body:
                    rec = parse_message(type_, body)
                    self._start_serial = rec.serial if rec is not None else None
                    self._start_marker = None
                    assert self._seen_start is not None  # set with the marker
                    self._seen_start.set()
                elif self._marker and self._marker.encode() in body:
                    rec = parse_message(type_, body)
                    self._marker_serial = rec.serial if rec is not None else None
                    assert self._seen_marker is not None  # made before the reader starts
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
        """The sandbox's first process (the launcher's ``on_start`` hook).
        Restarts the reader thread that the previous :meth:`finish` stopped
        (``learn`` runs several commands in one session)."""
        uid = _child_uid(pid)
        with self._tally_lock:
            self.tally.watch(pid, uid)
        if self._thread is None and self.sock is not None:
            self._start_reader()

    def drain(self) -> None:
        """Wait until the kernel has delivered every record of the finished
        command: send a marker record and wait for it to come back (bounded
        by :data:`DRAIN_TIMEOUT`).  Then, only if records may have been
        dropped on the way, give the kernel a moment (at most
        :data:`DEALLOC_WAIT`) to report the freed domains and their totals:
        the totals tell how many denials the report is missing.

        Whether any were dropped is the kernel's own count of lost records
        (machine-wide, so a loss anywhere counts), read before and after; a
        domain's total comes only after its last process is gone and the
        kernel has freed it from a work queue (some 40 ms here), never while
        a process the command left behind still runs: that wait is not paid
        when nothing was lost."""
        # The reader thread stops (it has tallied what it read) and this
        # thread reads the rest itself: one thread to wake, not three
        # (kauditd, the reader, this one) in turn on a loaded machine.
        sent = self._mark("drain")
        self._stop_reader()
        if sent:
            assert self._seen_marker is not None  # made by _start_reader()
            self._read_until(self._seen_marker.is_set, self.DRAIN_TIMEOUT)
        else:
            # No CAP_AUDIT_WRITE: wait for the stream to go quiet instead.
            deadline = time.monotonic() + self.DRAIN_TIMEOUT
            self._received_more()
            while time.monotonic() < deadline:
                self._read_until(lambda: False, 0.1)
                if not self._received_more():
                    break
        with self._tally_lock:
            if self.tally.settled():
                return
        if not self.lost and self._nothing_dropped():
            return

        def settled() -> bool:
            with self._tally_lock:
                return bool(self.tally.settled())

        self._read_until(settled, self.DEALLOC_WAIT)

    def _nothing_dropped(self) -> bool:
        """Whether the kernel has dropped no audit record since the last
        look (the session's start, or the previous :meth:`drain`)."""
        before = self.switch.lost_before if self.switch is not None else None
        assert self.ctl is not None  # open() made it
        try:
            lost = self.ctl.status()[1]
        except OSError:
            return False
        if self.switch is not None:
            self.switch.lost_before = lost  # (the next run's baseline)
        return before is not None and lost == before

    def _mark(self, what: str) -> bool:
        """Send a marker record (a user message the kernel queues behind
        every record before it); whether it was sent.  The reader notes the
        start marker's serial (:attr:`changed_by_others`); :meth:`drain`
        reads until its own comes back."""
        text = f"landwrap {what} {os.getpid()}.{time.monotonic_ns()}"
        if what == "start":
            self._start_marker = text
        else:
            assert self._seen_marker is not None  # made by _start_reader()
            self._seen_marker.clear()
            self._marker_serial = None
            self._marker = text
        assert self.ctl is not None  # open() made it
        try:
            self.ctl.user_message(text)
        except OSError:
            return False
        return True

    def _received_more(self) -> bool:
        """Whether records came since the last call (the quiet-stream wait)."""
        last, self._last_received = self._last_received, self.tally.received
        return self.tally.received != last

    def finish(self) -> Analysis:
        """Drain, analyse, and start afresh for the next run."""
        if self.ctl is None:
            raise RuntimeError("audit session is not open")
        self.drain()
        result = self._analysis()
        self._reset_collection()
        self.lost = 0
        return result


def _child_uid(pid: int) -> int | None:
    """The real uid of *pid* when it is a child of this process (the
    sandbox's first process, exited or not: it is reaped later), else None."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            fields = dict(line.split(b":", 1) for line in f.read().splitlines() if b":" in line)
        if int(fields[b"PPid"]) != os.getpid():
            return None
        return int(fields[b"Uid"].split()[0])
    except (OSError, KeyError, ValueError, IndexError):
        return None

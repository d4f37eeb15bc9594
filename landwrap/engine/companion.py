"""companion.py: what landwrap enforces beside Landlock, for one sandbox.

Landlock hooks only some operations.  Two companions close the rest that
landwrap promises (issue 8; the filter itself is in ``csrc/landwrap.c``):

- the **seccomp filter**: terminal input injection (TIOCSTI/TIOCLINUX),
  Multipath TCP sockets while TCP is restricted (and io_uring, which could
  create them without a system call the filter sees), and resource limits,
  priority, affinity and scheduling of processes outside the sandbox while
  the signal scope is on;
- the **capability drop**: a root sandbox keeps no capability (bounding,
  permitted, effective, inheritable and ambient sets emptied, SECBIT_NOROOT
  locked) but those named with ``--cap-add``.

:func:`for_plan` decides which parts are on; :class:`Companion` describes
them (for --dry-run, --json and status) and gives the spawn flags.  Pure
but for reading ``/proc/sys/kernel/cap_last_cap`` and asking the kernel
whether seccomp filters are available.  Holds the capability name table
(capabilities are not Landlock ABI knowledge, so not in ``compat``).
"""

from __future__ import annotations

import os

from . import _binding, compat
from .errors import EnforcementError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

    from .plan import Plan

#: Linux capability names (without CAP_, lower case) by number.
CAPABILITIES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill",
    "setgid", "setuid", "setpcap", "linux_immutable", "net_bind_service",
    "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
    "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time",
    "sys_tty_config", "mknod", "lease", "audit_write", "audit_control",
    "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
    "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
)

#: Calls on another process that the filter refuses with the signal scope.
PROCESS_CALLS = ("prlimit64", "setpriority", "sched_setaffinity", "sched_setscheduler",
                 "sched_setparam", "sched_setattr", "ioprio_set")


def parse_cap(name: str) -> int:
    """The number of capability *name* (``CAP_NET_RAW``, ``net_raw``...);
    UsageError for an unknown one."""
    key = str(name).strip().lower()
    if key.startswith("cap_"):
        key = key[4:]
    try:
        return CAPABILITIES.index(key)
    except ValueError:
        raise UsageError(f"--cap-add {name}: unknown capability",
                         "names look like CAP_NET_RAW or net_raw; see capabilities(7)") from None


def _capabilities(field: bytes = b"CapPrm:") -> int | None:
    """This process's capability set *field* of /proc/self/status
    (permitted by default; None when unreadable)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


_bounding: int | None = None


def bounding() -> int:
    """This process's capability bounding set (every bit when unreadable).
    For the spawns' capability drop: what is not in it need not be
    dropped.  Read once: a bounding set never grows, so the value read
    stays a superset of the current one."""
    global _bounding
    if _bounding is None:
        b = _capabilities(b"CapBnd:")
        _bounding = b if b is not None else (1 << 64) - 1
    return _bounding


_cap_last = None


def cap_last() -> int:
    """The kernel's highest capability number (cap_last_cap; cached)."""
    global _cap_last
    if _cap_last is None:
        try:
            with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
                _cap_last = int(f.read())
        except (OSError, ValueError):
            _cap_last = 63  # try every bit; the child drops only what is there
    return _cap_last


class Companion:
    """The parts of the companion that are on for a sandbox.

    ``tty``, ``mptcp`` and ``processes`` are the filter's parts (``filter``
    is False when no filter is installed at all: best-effort on a kernel or
    architecture without one); ``supervised`` says that calls on another
    thread id go to the launcher; ``drop_caps`` that capabilities are
    dropped (root), ``keep_caps`` the names kept with --cap-add."""

    __slots__ = ("filter", "tty", "mptcp", "processes", "supervised", "drop_caps",
                 "keep_caps", "unavailable", "spawn_args")

    def __init__(self) -> None:
        self.filter = True
        self.tty = True
        self.mptcp = self.processes = self.supervised = False
        self.drop_caps = False
        self.keep_caps: list[str] = []
        self.unavailable: str | None = None
        #: spawn.companion_flags() of this companion, once decided (spawn.py)
        self.spawn_args: tuple[int, dict[str, int]] | None = None

    def parts(self) -> int:
        if not self.filter:
            return 0
        p = _binding.SC_TTY
        if self.mptcp:
            p |= _binding.SC_MPTCP
        if self.processes:
            p |= _binding.SC_PROCS
            if self.supervised:
                p |= _binding.SC_NOTIFY
        return p

    def keep_mask(self) -> int:
        return sum(1 << CAPABILITIES.index(n) for n in self.keep_caps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seccomp_filter": self.filter,
            "terminal_injection": self.filter and self.tty,
            "mptcp": self.filter and self.mptcp,
            "other_processes": self.filter and self.processes,
            "thread_ids_supervised": self.filter and self.processes and self.supervised,
            "capabilities": ("dropped" if self.drop_caps else "none to drop (not root)"),
            "capabilities_kept": ["CAP_" + n.upper() for n in self.keep_caps],
            "unavailable": self.unavailable,
        }

    def lines(self) -> list[str]:
        """Human lines for --dry-run."""
        out = []
        if not self.filter:
            out.append(f"seccomp filter: not installed ({self.unavailable})")
        else:
            out.append("seccomp filter: ioctl TIOCSTI/TIOCLINUX -> EPERM")
            out.append("  MPTCP sockets: " + ("EPROTONOSUPPORT, and io_uring_setup: ENOSYS "
                                              "(TCP is restricted)"
                                              if self.mptcp else "allowed (TCP unrestricted)"))
            if self.processes:
                how = ("other ids of the sandbox's own threads are checked by the launcher"
                       if self.supervised else "only id 0 and the process itself pass")
                out.append(f"  {', '.join(PROCESS_CALLS)} on another process: EPERM ({how})")
            else:
                out.append("  resource limits/scheduling of other processes: allowed "
                           "(signal scope off)")
        if self.drop_caps:
            kept = ", ".join("CAP_" + n.upper() for n in self.keep_caps) or "none"
            out.append(f"capabilities: all dropped, SECBIT_NOROOT locked; kept: {kept}")
        else:
            out.append("capabilities: none to drop (not root)")
        return out


def for_plan(plan: Plan, *, cap_add: Iterable[str] = (), supervised: bool = False,
             euid: int | None = None) -> Companion:
    """The companion for *plan* (a ruleset.Plan): the MPTCP part when TCP
    is restricted, the process part when the signal scope is on.  Strict
    mode raises EnforcementError when no filter can be installed here;
    best-effort records why in ``plan.dropped``."""
    c = Companion()
    req = plan.request
    c.mptcp = bool(req.net)
    c.processes = bool(req.scopes & compat.SCOPES["signal"][0])
    c.supervised = supervised and c.processes
    if euid is None:
        euid = os.geteuid()
    if cap_add:
        if euid != 0:
            raise UsageError("--cap-add needs root: a non-root sandbox has no "
                             "capability to keep")
        c.keep_caps = sorted({CAPABILITIES[parse_cap(n)] for n in cap_add},
                             key=CAPABILITIES.index)
        have = _capabilities()
        for name in c.keep_caps:
            if have is not None and not have >> CAPABILITIES.index(name) & 1:
                raise UsageError(f"--cap-add {name}: landwrap itself does not have "
                                 f"CAP_{name.upper()}, so it cannot keep it")
    c.drop_caps = euid == 0
    why = None
    if not _binding.seccomp_arch():
        why = "landwrap does not know this architecture's system call numbers"
    elif not _binding.seccomp_available(c.supervised):
        why = "the kernel cannot install seccomp filters (CONFIG_SECCOMP_FILTER)"
    if why:
        if plan.mode == "strict":
            raise EnforcementError(
                f"the seccomp companion filter cannot be installed: {why}",
                "without it terminal injection, MPTCP and calls on other processes "
                "stay open; --best-effort runs without it")
        c.filter = False
        c.unavailable = why
        line = f"the seccomp companion filter ({why})"
        if line not in plan.dropped:
            plan.dropped.append(line)
    return c

"""compat.py: everything landwrap knows about Landlock ABI versions.

This is the only module that compares against an ABI number.  It holds the
right and scope bits with the ABI and Linux release that introduced each, the
restrict_self flags, and the downgrade logic that turns "what was asked for"
into "what this kernel can enforce" (:func:`downgrade`).

It must never make a system call: detection lives in ``_binding``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final, Iterable, Literal, Mapping

    #: What enforcing a plan achieved (see FULLY below).
    Status = Literal["fully", "partially", "not"]

    #: One of the tables below: name -> (bit, ABI that adds it).
    Table = Mapping[str, tuple[int, int]]

#: The newest ABI landwrap knows.  A newer kernel is used at this ABI.
LATEST_ABI = 10

#: The compatibility modes: strict refuses a kernel that lacks something
#: asked for; best-effort runs without it and says what it dropped.
STRICT = "strict"
BEST_EFFORT = "best-effort"
MODES = (STRICT, BEST_EFFORT)

#: What enforcing a plan achieved: everything asked for, part of it
#: (best-effort dropped something asked for), or nothing at all.
FULLY: Final = "fully"
PARTIALLY: Final = "partially"
NOT_ENFORCED: Final = "not"

#: ABI -> first Linux release that has it.
KERNEL = {
    1: "5.13", 2: "5.19", 3: "6.2", 4: "6.7", 5: "6.10",
    6: "6.12", 7: "6.15", 8: "7.0", 9: "7.1", 10: "7.2",
}

# name: (bit, abi).  Kernel names, lower case, without the prefix.
FS_RIGHTS = {
    "execute": (1 << 0, 1),
    "write_file": (1 << 1, 1),
    "read_file": (1 << 2, 1),
    "read_dir": (1 << 3, 1),
    "remove_dir": (1 << 4, 1),
    "remove_file": (1 << 5, 1),
    "make_char": (1 << 6, 1),
    "make_dir": (1 << 7, 1),
    "make_reg": (1 << 8, 1),
    "make_sock": (1 << 9, 1),
    "make_fifo": (1 << 10, 1),
    "make_block": (1 << 11, 1),
    "make_sym": (1 << 12, 1),
    "refer": (1 << 13, 2),
    "truncate": (1 << 14, 3),
    "ioctl_dev": (1 << 15, 5),
    "resolve_unix": (1 << 16, 9),
}
NET_RIGHTS = {
    "bind_tcp": (1 << 0, 4),
    "connect_tcp": (1 << 1, 4),
    "bind_udp": (1 << 2, 10),
    "connect_send_udp": (1 << 3, 10),
}
SCOPES = {
    "abstract_unix_socket": (1 << 0, 6),
    "signal": (1 << 1, 6),
}
# landlock_restrict_self() flags.
RESTRICT_FLAGS = {
    "log_same_exec_off": (1 << 0, 7),
    "log_new_exec_on": (1 << 1, 7),
    "log_subdomains_off": (1 << 2, 7),
    "tsync": (1 << 3, 8),
}

#: The filesystem rights of ABI 1: restricting the filesystem at all needs
#: these, so they are always a requirement when the filesystem is restricted.
FS_ABI1 = sum(bit for bit, abi in FS_RIGHTS.values() if abi == 1)
FS_ALL = sum(bit for bit, _ in FS_RIGHTS.values())
NET_TCP = NET_RIGHTS["bind_tcp"][0] | NET_RIGHTS["connect_tcp"][0]
NET_UDP = NET_RIGHTS["bind_udp"][0] | NET_RIGHTS["connect_send_udp"][0]
NET_ALL = NET_TCP | NET_UDP
SCOPE_ALL = sum(bit for bit, _ in SCOPES.values())
REFER = FS_RIGHTS["refer"][0]

#: Rights that make sense on a non-directory.  The kernel refuses
#: (EINVAL) a rule on a file that carries any other right.
FS_FILE = sum(FS_RIGHTS[n][0] for n in (
    "execute", "write_file", "read_file", "truncate", "ioctl_dev", "resolve_unix"))

#: Rights checked on the directory that holds the entry being made or
#: removed, not on the entry itself.
DIR_ENTRY_RIGHTS = frozenset(("remove_dir", "remove_file", "make_char", "make_dir", "make_reg",
                              "make_sock", "make_fifo", "make_block", "make_sym", "refer"))

# The shorthand access sets of --ro/--rox/--rw/--rwx and of profiles.
# Writing does not include creating device nodes (make_char, make_block):
# a device node is access to the device, not to the directory; a profile
# that really means it names the exact right.
_RO = ("read_file", "read_dir")
_W = ("write_file", "remove_dir", "remove_file", "make_dir",
      "make_reg", "make_sock", "make_fifo", "make_sym",
      "refer", "truncate", "ioctl_dev", "resolve_unix")
ACCESS_SETS = {
    "ro": _RO,
    "rox": _RO + ("execute",),
    "rw": _RO + _W,
    "rwx": _RO + _W + ("execute",),
}

# Size of struct landlock_ruleset_attr up to and including each field.
ATTR_SIZE_FS, ATTR_SIZE_NET, ATTR_SIZE_SCOPED = 8, 16, 24


def known_abi(abi: int) -> bool:
    """Whether *abi* is one landwrap knows (1 to :data:`LATEST_ABI`)."""
    return 1 <= abi <= LATEST_ABI


def first_abi(table: Table) -> int:
    """The first ABI with any member of *table* (e.g. 4 for NET_RIGHTS)."""
    return min(since for _, since in table.values())


def mask(table: Table, abi: int) -> int:
    """Bits of *table* that exist at *abi*."""
    return sum(bit for bit, since in table.values() if since <= abi)


def bits(table: Table, names: Iterable[str]) -> int:
    """Bits for *names*; KeyError names the first unknown one."""
    value = 0
    for name in names:
        value |= table[name][0]
    return value


def names(table: Table, value: int) -> list[str]:
    """Names of the bits set in *value*, in bit order."""
    return [n for n, (bit, _) in table.items() if value & bit]


def access_bits(spec: str) -> int:
    """Bits of a shorthand set (``ro``, ``rox``, ``rw``, ``rwx``)."""
    return bits(FS_RIGHTS, ACCESS_SETS[spec])


def abi_of(table: Table, value: int) -> int:
    """The lowest ABI that has every bit in *value* (0 for no bits)."""
    return max((since for bit, since in table.values() if value & bit), default=0)


def effective_abi(kernel_abi: int, cap: int | None = None) -> int:
    """The ABI landwrap uses: the kernel's, clamped to what landwrap knows and
    to the user's ``--abi`` cap."""
    abi = min(kernel_abi, LATEST_ABI)
    if cap is not None:
        abi = min(abi, cap)
    return max(abi, 0)


def since(abi: int) -> str:
    """'ABI 4, Linux 6.7' — where a feature comes from, for messages."""
    return f"ABI {abi}, Linux {KERNEL[abi]}"


#: landlock_restrict_self() flag that restricts every thread of the process.
TSYNC = RESTRICT_FLAGS["tsync"][0]


def has_tsync(abi: int) -> bool:
    """Whether landlock_restrict_self() can restrict all threads at once
    (TSYNC).  Below that, each thread has to restrict itself."""
    return abi >= RESTRICT_FLAGS["tsync"][1]


# Features as users see them in `landwrap status` and in messages: name,
# description, the table and bits it covers.
FEATURES = (
    ("filesystem", "filesystem access control", FS_RIGHTS, FS_ABI1),
    ("fs.refer", "rename/link across directories (refer)", FS_RIGHTS, REFER),
    ("fs.truncate", "truncate control", FS_RIGHTS, FS_RIGHTS["truncate"][0]),
    ("net.tcp", "TCP bind/connect control", NET_RIGHTS, NET_TCP),
    ("fs.ioctl_dev", "ioctl on devices", FS_RIGHTS, FS_RIGHTS["ioctl_dev"][0]),
    ("scope.abstract_unix_socket", "abstract unix socket isolation", SCOPES,
     SCOPES["abstract_unix_socket"][0]),
    ("scope.signal", "signal isolation", SCOPES, SCOPES["signal"][0]),
    ("audit", "denial audit logging flags", RESTRICT_FLAGS, bits(RESTRICT_FLAGS, (
        "log_same_exec_off", "log_new_exec_on", "log_subdomains_off"))),
    ("tsync", "restricting every thread at once (TSYNC)", RESTRICT_FLAGS,
     RESTRICT_FLAGS["tsync"][0]),
    ("fs.resolve_unix", "pathname unix socket connect control", FS_RIGHTS,
     FS_RIGHTS["resolve_unix"][0]),
    ("net.udp", "UDP bind/connect-send control", NET_RIGHTS, NET_UDP),
)


def features(abi: int) -> list[tuple[str, str, int, str, bool]]:
    """[(name, description, abi_needed, kernel, supported)] at *abi*."""
    out = []
    for name, desc, table, value in FEATURES:
        need = abi_of(table, value)
        out.append((name, desc, need, KERNEL[need], need <= abi))
    return out


def describe(table: Table, value: int) -> str:
    """Human text for bits the kernel lacks, grouped by the ABI that adds
    them: 'truncate (ABI 3, Linux 6.2), bind_tcp, connect_tcp (ABI 4, ...)'."""
    groups: dict[int, list[str]] = {}
    for name, (bit, need) in table.items():
        if value & bit:
            groups.setdefault(need, []).append(name)
    return ", ".join(f"{', '.join(n)} ({since(a)})" for a, n in sorted(groups.items()))


class Downgrade:
    """What the kernel at ``abi`` will enforce of a request, and what it
    cannot.  ``missing`` lists what was asked for explicitly and cannot be
    enforced (strict mode refuses); ``dropped`` lists what is dropped either
    way, as human-readable lines."""

    __slots__ = ("abi", "fs", "net", "scoped", "flags", "missing", "dropped",
                 "refer_lost", "needed_abi")

    def __init__(self, abi: int) -> None:
        self.abi = abi
        self.needed_abi = abi
        self.fs = self.net = self.scoped = self.flags = 0
        self.missing: list[tuple[str, int, str]] = []
        self.dropped: list[tuple[str, int, str]] = []
        self.refer_lost = False


_KINDS = (
    ("fs", FS_RIGHTS, "filesystem rights"),
    ("net", NET_RIGHTS, "network rights"),
    ("scoped", SCOPES, "scopes"),
    ("flags", RESTRICT_FLAGS, "restrict flags"),
)


def downgrade(abi: int, want: Mapping[str, int], need: Mapping[str, int],
              refer_allowed: bool) -> Downgrade:
    """Fit a request to *abi*.

    *want* maps ``fs``/``net``/``scoped``/``flags`` to the bits to handle
    (restrict) or set; *need* maps them to the subset asked for explicitly.
    *refer_allowed* tells whether some rule grants ``refer``.

    The downgrade goes like the kernel sample sandboxer's fall-through:
    rights and scopes newer than *abi* are not handled (so they stay
    allowed), except ``refer``, which Landlock always denies across
    directories when it is not handled: a grant of it is lost, which is
    reported rather than turning the sandbox off.
    """
    d = Downgrade(abi)
    for key, table, _ in _KINDS:
        have = mask(table, abi)
        asked = want.get(key, 0)
        setattr(d, key, asked & have)
        lost = asked & ~have
        if not lost:
            continue
        hard = lost & need.get(key, 0)
        if hard:
            d.missing.append((key, hard, describe(table, hard)))
            d.needed_abi = max(d.needed_abi, abi_of(table, hard))
        soft = lost & ~hard
        if soft:
            d.dropped.append((key, soft, describe(table, soft)))
    if refer_allowed and not d.fs & REFER and want.get("fs", 0):
        d.refer_lost = True
    return d


# The security model, by kernel hook: for each class of operation a
# sandboxed program might attempt, what stops it.  (operation, mechanism,
# abi): *mechanism* is "landlock" (needs *abi*), "seccomp" (landwrap's
# companion filter, installed beside Landlock), "capabilities" (the
# capability drop of root sandboxes), "launcher" (`landwrap run` itself) or
# None (nothing landwrap adds: the operation stays possible).  Rendered by
# `landwrap status` for the running kernel, and in the README and
# landwrap(1) (tests/engine/test_security_model.py keeps them in step).
SECURITY_MODEL = (
    ("open, read, write, create, remove files; execve", "landlock", 1),
    ("ptrace, /proc/PID/{mem,root,cwd} of processes outside", "landlock", 1),
    ("mount, umount, pivot_root", "landlock", 1),
    ("rename or link across directories (refer)", "landlock", 2),
    ("truncate", "landlock", 3),
    ("TCP bind and connect", "landlock", 4),
    ("ioctl on device files", "landlock", 5),
    ("abstract unix sockets outside", "landlock", 6),
    ("signals to processes outside", "landlock", 6),
    ("pathname unix sockets (D-Bus, docker.sock)", "landlock", 9),
    ("UDP bind, connect and send", "landlock", 10),
    ("terminal input injection (TIOCSTI, TIOCLINUX)", "seccomp", None),
    ("Multipath TCP sockets (bypass the TCP rules)", "seccomp", None),
    ("io_uring (its socket operations bypass the seccomp filter)", "seccomp", None),
    ("prlimit, setpriority, sched_*, ioprio_set on other processes", "seccomp", None),
    ("root's privileges (mknod, raw sockets, bpf, sethostname...)", "capabilities", None),
    ("processes left running after the command exits", "launcher", None),
    ("/proc/PID/environ and maps of same-user processes", None, None),
    ("code run without execve (LD_PRELOAD, ld.so PROG, mmap PROT_EXEC)", None, None),
    ("file descriptors inherited from the caller", None, None),
    ("user namespaces (unshare -U; Landlock still applies inside)", None, None),
)

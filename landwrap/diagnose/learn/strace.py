"""learn/strace.py: the strace fallback -- failed system calls from an
strace output file (:func:`parse_strace`), kept as denials where the
sandbox explains them (:func:`strace_denials`).  Reads the trace file;
never runs anything.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable, Iterator, List, Tuple

from .. import audit
from ..audit.records import MAX_DISTINCT
from ...engine import compat, spawn
from ...engine.errors import LandwrapError

if TYPE_CHECKING:
    from ...engine.plan import Plan
    from ...engine.ruleset import Ruleset

STRACE = "/usr/bin/strace"


def allow_strace(rs: Ruleset, out_dir: str, origin: str, out_origin: str) -> None:
    """Let the sandbox *rs* (a Ruleset) run strace and write its trace in
    *out_dir* (only create and write files there), with these origins."""
    rs.allow(os.path.realpath(STRACE), "rox", origin=origin)
    rs.allow(out_dir, ("make_reg", "write_file", "truncate"), origin=out_origin)


def strace_argv(trace: str, argv: Iterable[str]) -> list[str]:
    """*argv* run under strace, its children too, writing the file and
    network calls (with the paths of descriptors) to *trace*."""
    return [STRACE, "-f", "-qq", "-yy", "-s", "4096", "-o", trace,
            "-e", "trace=%file,%network,fchdir", "--", *argv]

_O = {"O_WRONLY": 1, "O_RDWR": 2}
#: One right a failed call needed: ``(right, path)``, or
#: ``("net", right, port, host)`` (see :func:`_needs`).
Need = Tuple[Any, ...]


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a strace call."""
    out, depth, cur, i, n = [], 0, [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            cur.append(text[i:j + 1])
            i = j + 1
            continue
        if c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if cur:
        out.append("".join(cur).strip())
    return out


def _unquote(arg: str) -> str | None:
    """The string of a strace ``"..."`` argument (C escapes decoded)."""
    arg = arg.strip()
    if arg.endswith("..."):
        arg = arg[:-3]
    if len(arg) < 2 or arg[0] != '"' or arg[-1] != '"':
        return None
    body = arg[1:-1]
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "v": 11, "f": 12, "\\": 92, '"': 34, "'": 39}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            e = body[i + 1]
            if e == "x":
                out.append(int(body[i + 2:i + 4], 16))
                i += 4
                continue
            if e.isdigit():
                j = i + 1
                while j < len(body) and j < i + 4 and body[j] in "01234567":
                    j += 1
                out.append(int(body[i + 1:j], 8) & 0xFF)
                i = j
                continue
            out.append(simple.get(e, ord(e)))
            i += 2
            continue
        out += c.encode("utf-8", "surrogateescape")
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _fd_path(arg: str) -> str | None:
    """``3</tmp/x>`` -> ``/tmp/x``."""
    lt = arg.find("<")
    if lt < 0 or not arg.endswith(">"):
        return None
    return arg[lt + 1:-1]


def _resolve(base: str | None, cwd: str, p: str) -> str:
    if p.startswith("/"):
        return os.path.normpath(p)
    return os.path.normpath(os.path.join(base or cwd, p))


Call = Tuple[str, "str | None", str, "list[Need]"]


def parse_strace(lines: Iterable[str], cwd: str,
                 first_exe: str | None = None) -> list[Call]:
    """[(pid, exe, syscall, [(right, path)] | ("net", right, port, addr))]
    for the failed (EACCES/EPERM) calls in strace ``-f -yy`` output, with
    the rights each would have needed (before checking the sandbox)."""
    return list(iter_strace(lines, cwd, first_exe))


def iter_strace(lines: Iterable[str], cwd: str,
                first_exe: str | None = None) -> Iterator[Call]:
    """:func:`parse_strace`, one call at a time: the trace is written in
    the sandbox, which may make it as long as it likes."""
    pending: dict[str, str] = {}
    exes: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\n")
        pid_s, _, rest = line.partition(" ")
        if not pid_s.isdigit():
            pid_s, rest = "0", line
        rest = rest.strip()
        if rest.endswith("<unfinished ...>"):
            pending[pid_s] = rest[:-len("<unfinished ...>")].rstrip()
            continue
        if rest.startswith("<... "):
            head = pending.pop(pid_s, None)
            close = rest.find("resumed>")
            if head is None or close < 0:
                continue
            rest = head + rest[close + len("resumed>"):]
        paren = rest.find("(")
        eq = rest.rfind(" = ")
        call = rest[:eq].rstrip() if eq > 0 else ""
        if paren < 0 or not call.endswith(")"):
            continue
        name = rest[:paren]
        args = _split_args(call[paren + 1:-1])
        result = rest[eq + 3:].strip()
        if name in ("chdir", "fchdir") and result.startswith("0"):
            p = _unquote(args[0]) if name == "chdir" else _fd_path(args[0])
            if p is not None:
                cwd = _resolve(None, cwd, p)
            continue
        if name in ("execve", "execveat") and result.startswith("0"):
            p = _unquote(args[0] if name == "execve" else args[1])
            if p:
                exes[pid_s] = _resolve(None, cwd, p)
            continue
        if not (result.startswith("-1 EACCES") or result.startswith("-1 EPERM")):
            continue
        needs = _needs(name, args, cwd)
        if needs:
            yield (pid_s, exes.get(pid_s, first_exe), name, needs)


def _at(args: list[str], i_fd: int | None, i_path: int, cwd: str) -> str | None:
    p = _unquote(args[i_path]) if len(args) > i_path else None
    if p is None:
        return None
    base = None
    if i_fd is not None and len(args) > i_fd:
        base = _fd_path(args[i_fd])  # -yy shows AT_FDCWD</cwd> too
    return _resolve(base, cwd, p)


def _parent(p: str) -> str:
    return os.path.dirname(p) or "/"


def _needs(name: str, args: list[str], cwd: str) -> list[Need]:
    """The rights failed call *name* needed: [(right, path)] or
    [("net", right, port, host)]."""
    parent = _parent
    if name in ("open", "openat", "creat", "openat2"):
        plain = name in ("open", "creat")
        p = _at(args, None if plain else 0, 0 if plain else 1, cwd)
        if p is None:
            return []
        if name == "creat":
            flags = "O_CREAT|O_WRONLY|O_TRUNC"
        else:
            flags = (args[1 if plain else 2] if len(args) > (1 if plain else 2) else "") or ""
        rights = []
        if "O_CREAT" in flags and not os.path.lexists(p):
            return [("make_reg", parent(p)), ("write_file", p)]
        if "O_DIRECTORY" in flags or os.path.isdir(p):
            return [("read_dir", p)]
        if "O_RDWR" in flags:
            rights += ["read_file", "write_file"]
        elif "O_WRONLY" in flags:
            rights.append("write_file")
        else:
            rights.append("read_file")
        if "O_TRUNC" in flags:
            rights.append("truncate")
        return [(r, p) for r in rights]
    if name in ("execve", "execveat"):
        p = _at(args, 0 if name == "execveat" else None, 1 if name == "execveat" else 0, cwd)
        return [("execute", p), ("read_file", p)] if p else []
    if name in ("mkdir", "mkdirat"):
        p = _at(args, 0 if name == "mkdirat" else None, 1 if name == "mkdirat" else 0, cwd)
        return [("make_dir", parent(p))] if p else []
    if name in ("unlink", "unlinkat", "rmdir"):
        p = _at(args, 0 if name == "unlinkat" else None, 1 if name == "unlinkat" else 0, cwd)
        if not p:
            return []
        is_dir = name == "rmdir" or (name == "unlinkat" and "AT_REMOVEDIR" in "".join(args[2:]))
        return [("remove_dir" if is_dir else "remove_file", parent(p))]
    if name in ("rename", "renameat", "renameat2", "link", "linkat"):
        two = name in ("rename", "link")
        src = _at(args, None if two else 0, 0 if two else 1, cwd)
        dst = _at(args, None if two else 2, 1 if two else 3, cwd)
        if not src or not dst:
            return []
        kind = "make_dir" if os.path.isdir(src) else "make_reg"
        out = [(kind, parent(dst))]
        if name.startswith("rename"):
            out.append(("remove_dir" if kind == "make_dir" else "remove_file", parent(src)))
        if parent(src) != parent(dst):
            out += [("refer", parent(src)), ("refer", parent(dst))]
        return out
    if name in ("symlink", "symlinkat"):
        p = _at(args, 1 if name == "symlinkat" else None, 2 if name == "symlinkat" else 1, cwd)
        return [("make_sym", parent(p))] if p else []
    if name in ("mknod", "mknodat"):
        p = _at(args, 0 if name == "mknodat" else None, 1 if name == "mknodat" else 0, cwd)
        mode = args[2 if name == "mknodat" else 1] if len(args) > 1 else ""
        kind = ("make_fifo" if "S_IFIFO" in mode else "make_sock" if "S_IFSOCK" in mode
                else "make_char" if "S_IFCHR" in mode else "make_block" if "S_IFBLK" in mode
                else "make_reg")
        return [(kind, parent(p))] if p else []
    if name in ("truncate",):
        p = _at(args, None, 0, cwd)
        return [("truncate", p)] if p else []
    if name in ("connect", "bind") and len(args) >= 2:
        sock, addr = args[0], args[1]
        if "AF_INET" not in addr or "htons(" not in addr:
            return []
        port_s = addr.split("htons(", 1)[1].split(")", 1)[0]
        if not port_s.isdigit():
            return []
        proto = "udp" if "UDP" in sock else "tcp"
        right = {("connect", "tcp"): "connect_tcp", ("bind", "tcp"): "bind_tcp",
                 ("connect", "udp"): "connect_send_udp", ("bind", "udp"): "bind_udp"}[(name, proto)]
        host = ""
        for key in ("inet_addr(\"", "inet_pton(AF_INET6, \""):
            if key in addr:
                host = addr.split(key, 1)[1].split('"', 1)[0]
        return [("net", right, int(port_s), host)]
    return []


class TracedDenials(List["audit.Denial"]):
    """The denials :func:`strace_denials` found, identical ones counted
    once (``Denial.count``), at most :data:`audit.MAX_DISTINCT` different
    ones; ``untallied`` counts the rest."""

    untallied = 0


def strace_denials(trace: str | None, plan: Plan, cwd: str, program: str,
                   path_env: str | None = None) -> TracedDenials:
    """Denials (``audit.Denial`` objects) reconstructed from a strace
    output file: failed calls whose rights the sandbox *plan* does not
    grant.  Calls that fail for other reasons (file modes) are dropped.

    The sandboxed program can make the trace as long as it likes (it may
    even write to it): what is kept does not grow with it, as with the
    kernel's records (``audit.Tally``)."""
    out = TracedDenials()
    if not trace or not os.path.exists(trace):
        return out
    try:
        first = os.path.realpath(spawn.find_program(program, path_env))
    except LandwrapError:
        first = None
    kept: dict[tuple[object, ...], audit.Denial] = {}

    def keep(d: audit.Denial) -> None:
        have = kept.get(d.key())
        if have is not None:
            have.count += 1
        elif len(kept) < MAX_DISTINCT:
            kept[d.key()] = d
        else:
            out.untallied += 1

    with open(trace, encoding="utf-8", errors="surrogateescape") as f:
        for pid, exe, syscall, needs in iter_strace(f, cwd, first):
            if needs and needs[0][0] == "net":
                _, right, port, host = needs[0]
                bit = compat.NET_RIGHTS[right][0]
                if not plan.net & bit or any(p == port and b & bit for p, b, _ in plan.ports):
                    continue
                d = audit.Denial("strace", (f"net.{right}",), {"dest": str(port), "daddr": host})
                d.pid, d.exe, d.syscall = pid, exe, syscall
                d.comm = os.path.basename(exe) if exe else None
                keep(d)
                continue
            by_path: dict[str, list[str]] = {}
            for right, p in needs:
                bit = compat.FS_RIGHTS[right][0]
                if plan.allows(p, bit) != bit:
                    by_path.setdefault(p, []).append(right)
            for p, rights in by_path.items():
                d = audit.Denial("strace", tuple(f"fs.{r}" for r in rights), {"path": p})
                d.pid, d.exe, d.syscall = pid, exe, syscall
                d.comm = os.path.basename(exe) if exe else None
                keep(d)
    out.extend(kept.values())
    return out

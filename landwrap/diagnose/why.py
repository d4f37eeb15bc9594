"""why.py: `landwrap why` -- would a profile allow this access, and because
of which rule (file and line), or what would allow it.

Works on the resolved :class:`~landwrap.ruleset.Plan` (what the kernel would
be given on this machine), so merged, skipped and downgraded rules are taken
into account.  Reads profiles and stats paths; never runs anything and never
makes a Landlock system call beyond asking the kernel's ABI.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Literal, Mapping

from . import denials
from ..engine import compat
from ..engine.errors import LandlockUnavailable, UnsupportedFeature, UsageError
from ..engine.present import short_access
from ..engine.ruleset import parse_ports
from ..engine.safetext import printable
from ..profiles import profile
from ..profiles.parse import entry_line, line_of
from ..profiles.validate import NET_KEY

if TYPE_CHECKING:
    from ..engine.plan import Plan, Rule

#: Words for --access: (rights, checked on the parent directory?)
#: ``None`` for "on the parent" means: on PATH itself when it is an
#: existing directory, else on its parent.
WORDS = {
    "read": (("read_file",), False),
    "list": (("read_dir",), False),
    "write": (("write_file",), False),
    "exec": (("execute", "read_file"), False),
    "execute": (("execute", "read_file"), False),
    "truncate": (("truncate",), False),
    "ioctl": (("ioctl_dev",), False),
    "create": (("make_reg",), True),
    "mkdir": (("make_dir",), True),
    "symlink": (("make_sym",), True),
    "mkfifo": (("make_fifo",), True),
    "mksock": (("make_sock",), True),
    "remove": (None, True),  # remove_file or remove_dir, by what PATH is
    "delete": (None, True),
}
NET_WORDS = {
    "tcp": {"connect": "connect_tcp", "bind": "bind_tcp"},
    "udp": {"connect": "connect_send_udp", "send": "connect_send_udp", "bind": "bind_udp"},
}
_ENTRY = compat.DIR_ENTRY_RIGHTS


class Check:
    """One right asked about: ``right`` on ``where`` (the path the kernel
    checks), ``allowed``, ``why`` (a sentence) and ``grants`` ([(rule
    text, origin with file:line)])."""

    __slots__ = ("right", "where", "allowed", "why", "grants")

    def __init__(self, right: str, where: str) -> None:
        self.right, self.where = right, where
        self.allowed = False
        self.why = ""
        self.grants: list[tuple[str, str]] = []


class Answer:
    """The result of :func:`why`: ``target`` (as given), ``checks``,
    ``suggestion`` (the option that would allow what is denied, with its
    profile spelling), ``notes`` and ``allowed`` (every check passed)."""

    def __init__(self, target: str):
        self.target = target
        self.checks: list[Check] = []
        self.suggestion: str | None = None
        self.profile_line: str | None = None
        self.notes: list[str] = []

    @property
    def allowed(self) -> bool:
        return all(c.allowed for c in self.checks)


# --------------------------------------------------------------------------

def load_plan(specs: Iterable[str],
              environ: Mapping[str, str] | None = None) -> tuple[Plan, list[str]]:
    """The resolved plan of profiles *specs* on this kernel; a profile that
    needs more than the kernel has is resolved best-effort (noted)."""
    prof = profile.load(list(specs) or ["default"], environ=environ)
    notes = []
    try:
        plan = prof.ruleset.resolve()
    except (UnsupportedFeature, LandlockUnavailable) as e:
        plan = prof.ruleset.resolve(compat_mode="best-effort")
        notes.append(f"this kernel cannot enforce all of it ({e.message}); "
                     "answering for what it can")
    return plan, notes


def parse_target(text: str) -> tuple[Literal["net"], str, int] | tuple[Literal["fs"], str]:
    """('net', proto, port) for ``tcp:443``/``udp:53``, else ('fs', path)."""
    proto, sep, port = text.partition(":")
    if sep and proto in NET_WORDS and not text.startswith("/"):
        lo, hi = parse_ports(port)
        if lo != hi:
            raise UsageError(f"{text}: ask about one port at a time")
        return ("net", proto, lo)
    if not text:
        raise UsageError("empty path")
    return ("fs", os.path.abspath(os.path.expanduser(text)))


def fs_rights(path: str, access: Iterable[str]) -> list[tuple[str, str]]:
    """[(right, where)] for an --access list on *path*."""
    out = []
    is_dir = os.path.isdir(path)
    for word in access:
        word = word.strip()
        if not word:
            continue
        if word in WORDS:
            rights, on_parent = WORDS[word]
            if rights is None:
                is_real_dir = is_dir and not os.path.islink(path)
                rights = ("remove_dir",) if is_real_dir else ("remove_file",)
            if word == "read" and is_dir:
                rights = ("read_dir",)
        elif word in compat.FS_RIGHTS:
            rights = (word,)
            on_parent = word in _ENTRY and not is_dir
        else:
            raise UsageError(
                f"unknown access {word!r}",
                "use " + ", ".join(WORDS) + ", or a right: " + ", ".join(compat.FS_RIGHTS))
        where = os.path.dirname(path.rstrip("/")) or "/" if on_parent else path
        for r in rights:
            if (r, where) not in out:
                out.append((r, where))
    return out


def why(specs: Iterable[str], target: str, access: str | Iterable[str] | None = None, *,
        environ: Mapping[str, str] | None = None, plan: Plan | None = None) -> Answer:
    """Answer whether profiles *specs* allow *access* (words or right
    names; default ``read``, ``connect`` for ports) on *target* (a path, or
    ``tcp:PORT``/``udp:PORT``)."""
    notes: list[str] = []
    if plan is None:
        plan, notes = load_plan(specs, environ)
    if isinstance(access, str):
        access = access.split(",")
    if access is not None:
        access = [w.strip() for w in access if w.strip()]
        if not access:
            raise UsageError("--access: empty access list",
                             "name what to check, e.g. -a read or -a write,create")
    parsed = parse_target(target)
    ans = Answer(target)
    ans.notes += notes
    if parsed[0] == "net":
        _why_net(plan, ans, parsed[1], parsed[2], access or ["connect"])
    else:
        _why_fs(plan, ans, parsed[1], access or ["read"])
    return ans


def _why_fs(plan: Plan, ans: Answer, path: str, access: Iterable[str]) -> None:
    real = os.path.realpath(path)
    if real != path:
        ans.notes.append(f"{path} resolves to {real}")
    if not os.path.lexists(path):
        ans.notes.append(f"{path} does not exist (rules are checked on the "
                         "directories above it)")
    for h in getattr(plan, "hidden", ()):
        if real == h or real.startswith(h + "/"):
            origins = [o for p, o in plan.request.hidden if os.path.realpath(p) == h]
            ans.notes.append(f"{h} is hidden ({', '.join(origins) or 'hide'}): the grants "
                             "above it were replaced by rules on the other entries of each "
                             "directory on the way")
            break
    denied = set()
    for right, where in fs_rights(path, access):
        c = Check(right, where)
        bit = compat.FS_RIGHTS[right][0]
        if not plan.fs & bit:
            c.allowed = True
            c.why = _unhandled(plan, plan.request.fs, "filesystem", right, compat.FS_RIGHTS)
        else:
            for rule in plan.rules_for(where):
                if rule.access & bit:
                    c.grants.append((_rule_text(plan, rule), _origins(plan, rule, bit)))
            c.allowed = bool(c.grants)
            if not c.allowed:
                denied.add(right)
                have = [(_rule_text(plan, r), _origins(plan, r, None))
                        for r in plan.rules_for(where)]
                c.grants = have
                c.why = ("no rule covers " + where if not have else
                         "the rules that cover it do not grant " + right)
        ans.checks.append(c)
    if denied:
        where = next(c.where for c in ans.checks if not c.allowed)
        opt = denials.fs_option(denied, where)
        if opt:
            ans.suggestion = opt
            ans.profile_line = denials.profile_line(opt, denied)


def _unhandled(plan: Plan, restricted: bool, what: str, right: str,
               table: Mapping[str, tuple[int, int]]) -> str:
    """Why *right*, which the plan does not handle, is allowed."""
    if not restricted:
        return f"the {what} is not restricted by this profile"
    if plan.abi == 0:
        return "Landlock is not available here: nothing is enforced"
    return (f"Landlock ABI {plan.abi} cannot restrict {right} "
            f"(needs {compat.since(table[right][1])})")


def _why_net(plan: Plan, ans: Answer, proto: str, port: int, access: Iterable[str]) -> None:
    for word in access:
        right = NET_WORDS[proto].get(word) or (word if word in compat.NET_RIGHTS else None)
        if right is None:
            raise UsageError(f"unknown network access {word!r} for {proto}",
                             "use " + ", ".join(NET_WORDS[proto]))
        c = Check(right, f"{proto} port {port}")
        bit = compat.NET_RIGHTS[right][0]
        if not plan.net & bit:
            c.allowed = True
            c.why = _unhandled(plan, plan.request.net, "network", right, compat.NET_RIGHTS)
        else:
            for p, bits, origins in plan.ports:
                if p == port and bits & bit:
                    c.grants.append((f"{right} {port}",
                                     ", ".join(_locate(o) for o in origins)))
            c.allowed = bool(c.grants)
            if not c.allowed:
                c.why = f"no rule allows {right} on port {port}"
                key = NET_KEY[right]
                if right.endswith("_tcp"):
                    ans.suggestion = f"--{right.replace('_', '-')} {port}"
                else:
                    ans.suggestion = None
                ans.profile_line = f"[network] {key} = [{port}]"
        ans.checks.append(c)


def _rule_text(plan: Plan, rule: Rule) -> str:
    kind = "" if rule.is_dir else " (file)"
    return f"{short_access(rule.access, plan.fs, rule.is_dir)} {rule.path}{kind}"


def _origins(plan: Plan, rule: Rule, bit: int | None) -> str:
    """Where *rule* comes from, as ``FILE:LINE: key`` / ``--ro PATH``;
    with *bit*, only the origins that contribute that right."""
    wanted = []
    for pr in plan.request.paths:
        if pr.origin not in rule.origins:
            continue
        if bit is not None and not pr.access & bit:
            continue
        try:
            if os.path.realpath(pr.path) != rule.path:
                continue
        except OSError:
            continue
        loc = _locate(pr.origin, pr.path)
        if loc not in wanted:
            wanted.append(loc)
    if not wanted:
        wanted = [_locate(o) for o in rule.origins]
    return ", ".join(wanted)


def _locate(origin: str, path: str | None = None) -> str:
    """``FILE: filesystem.ro`` -> ``FILE:LINE: filesystem.ro`` (the line of
    the array entry naming *path* when it can be found)."""
    file, sep, key = origin.partition(": ")
    if not sep or not os.path.isfile(file):
        return origin
    table, _, name = key.rpartition(".")
    index = None
    if name.endswith("]") and "[" in name:
        name, _, idx = name[:-1].partition("[")
        try:
            index = int(idx)
        except ValueError:
            index = None
        table, name = f"{table}.{name}", "path"
    line = line_of(file, table or None, name, index)
    if line and path and index is None:
        line = entry_line(file, line, path) or line
    return f"{file}:{line}: {key}" if line else origin


def format_answer(ans: Answer) -> str:
    out = []
    verdict = "allowed" if ans.allowed else "denied"
    out.append(f"{ans.target}: {verdict}")
    for c in ans.checks:
        where = "" if c.where == ans.target or c.where.startswith(("tcp", "udp")) \
            else f" (checked on {c.where})"
        state = "allowed" if c.allowed else "DENIED"
        out.append(f"  {c.right}{where}: {state}")
        if c.allowed and c.grants:
            for text, origin in c.grants:
                out.append(f"    granted by: {text}    # {origin}")
        elif c.why:
            out.append(f"    {c.why}")
            if not c.allowed:
                for text, origin in c.grants:
                    out.append(f"    covered by: {text}    # {origin}")
    if not ans.allowed and (ans.suggestion or ans.profile_line):
        if ans.suggestion:
            out.append(f"  to allow it: {ans.suggestion}")
        if ans.profile_line:
            lines = ans.profile_line.split("\n")
            if len(lines) == 1:
                out.append(f"  in a profile: {lines[0]}")
            else:
                out.append("  in a profile:")
                out += [f"    {line}" for line in lines]
    for n in ans.notes:
        out.append(f"  note: {n}")
    # paths come from profiles and the filesystem: one harmless line each
    return "\n".join(printable(line) for line in out) + "\n"

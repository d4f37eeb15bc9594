"""learn/rounds.py: the round loop of `landwrap learn` (:class:`Learner`):
run the command in the candidate sandbox, collect its denials, widen the
candidate minimally (:meth:`Learner.propose`), until a round is clean.
Progress and questions go through callbacks: never prints or prompts.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

from .. import audit, denials as dn
from ...engine import _binding, compat, launcher, spawn
from ...engine.errors import CommandNotFound, LandwrapError, UsageError
from ...engine.safetext import printable
from ...profiles import profile
from ...profiles.validate import NET_KEY
from .candidate import Candidate, Grant, show_command
from .generalise import (FILE_RIGHTS, READ_RIGHTS, Sensitive, _existing_ancestor, container,
                         symlinks_on, too_broad)
from .strace import STRACE, allow_strace, strace_argv, strace_denials

if TYPE_CHECKING:
    from ..audit import Denial
    from ...engine.plan import Plan

DEFAULT_ROUNDS = 8


class Learner:
    """Runs the rounds.  *progress* gets one line per event (to stderr in
    the CLI); *confirm* is asked before re-running the command (None: do
    not ask)."""

    progress: Callable[[str], object]

    def __init__(self, argv: Sequence[str], *, base: Iterable[str] = (),
                 rounds: int = DEFAULT_ROUNDS, once: bool = False,
                 via: str = "auto", stdout_fd: int = -1,
                 progress: Callable[[str], object] | None = None,
                 confirm: Callable[[int], bool] | None = None,
                 environ: Mapping[str, str] | None = None, allow_sensitive: Iterable[str] = (),
                 confirm_sensitive: Callable[[str, str], bool] | None = None,
                 expect_exit: int = 0) -> None:
        self.expect_exit = expect_exit
        #: exit status of each round, and what each round left in the
        #: directories the command could create in (for created_hint)
        self.statuses: list[int] = []
        if not argv:
            raise UsageError("no command to learn")
        if via not in ("auto", "audit", "strace"):
            raise UsageError(f"--via {via}: expected auto, audit or strace")
        if rounds < 1:
            raise UsageError("--rounds must be at least 1")
        self.argv = list(argv)
        self.base = [b if not _is_path(b) else os.path.abspath(os.path.expanduser(b))
                     for b in base]
        self.rounds = 1 if once else rounds
        self.via = via
        self.stdout_fd = stdout_fd
        # Progress lines name files the program chose: escaped, always.
        self.progress = (lambda line: progress(printable(line))) if progress \
            else (lambda line: None)
        self.confirm = confirm
        self.confirm_sensitive = confirm_sensitive
        self.environ = environ
        self.home = (environ or os.environ).get("HOME") or os.path.expanduser("~")
        self.sensitive = Sensitive(self.home, environ, allow_sensitive)
        self.refused: dict[str, list[Any]] = {}  # path -> [rights, reason, [why]]
        self.confirmed: set[str] = set()    # sensitive paths granted at the terminal
        self.cand: Candidate  # made by run()
        self.method: str | None = None
        self.session: audit.Session | None = None
        self.tmp: str | None = None
        self.rounds_run = 0
        self.clean = False
        self.declined = False
        self.last_status: int | None = None
        self.program: str | None = None
        self.stuck: list[str] = []
        self._changed = False
        self._touched: list[str] = []
        self._before: dict[str, set[str]] = {}
        self._listing: dict[str, set[str]] = {}  # directory -> entries when make_reg was learned
        self._plan: Plan | None = None  # the last round's sandbox
        self.cwd = os.getcwd()

    # set-up -----------------------------------------------------------------
    def _choose_method(self) -> None:
        kabi = _binding.kernel_abi()
        logs = kabi >= 0 and compat.mask(compat.RESTRICT_FLAGS, compat.effective_abi(kabi)) \
            & dn.log_bit()
        if self.via in ("auto", "audit") and not logs:
            e = audit.AuditUnavailable("this kernel's Landlock cannot log denials",
                                       f"it needs {dn.needs()}")
            if self.via == "audit":
                raise LandwrapError(f"cannot use the kernel's denial records: {e.reason}",
                                    e.fix)
            why = e
        elif self.via in ("auto", "audit"):
            try:
                self.session = audit.Session()
                self.session.open()
                self.method = "audit"
                return
            except audit.AuditUnavailable as e:
                self.session = None
                if self.via == "audit":
                    raise LandwrapError(f"cannot read the kernel's denial records: {e.reason}",
                                        e.fix) from None
                why = e
        else:
            why = None
        if not os.access(STRACE, os.X_OK):
            reason = (f"cannot read the kernel's denial records ({why.reason}) and "
                      f"{STRACE} is not installed") if why else f"{STRACE} is not installed"
            fix = (f"{why.fix}, or install strace" if why else "install strace")
            raise LandwrapError(f"landwrap learn needs a way to see denials: {reason}", fix)
        if why is not None:
            self.progress(f"denial records unavailable ({why.reason}); "
                          "tracing the program with strace instead")
        self.method = "strace"

    def _base_specs(self) -> list[str]:
        # Not the command's own profile (`landwrap run`'s choice): learning
        # starts from the minimal sandbox unless told otherwise.
        return self.base or ["default"]

    # the rounds ---------------------------------------------------------------
    def run(self) -> "Learner":
        self.cand = Candidate(self._base_specs(), self.home, self.sensitive)
        try:
            self.program = spawn.find_program(self.argv[0], os.environ.get("PATH"))
        except LandwrapError:
            self.program = None
        self.cand.set_variables(self.cwd, self.environ, self.program)
        profile.load(self.cand.base, environ=self.environ)  # a bad base fails here
        self.tmp = tempfile.mkdtemp(prefix="landwrap-learn-")
        try:
            self._cwd_before = set(os.listdir(self.cwd))
        except OSError:
            self._cwd_before = set()
        try:
            self._choose_method()
            for n in range(1, self.rounds + 1):
                if n > 1 and self.confirm is not None:
                    # auditing is not kept switched on while a human thinks
                    if self.session is not None:
                        self.session.close()
                    if not self.confirm(n):
                        self.progress("stopped before re-running the command")
                        self.declined = True
                        break
                    if self.session is not None:
                        self.session.open()
                found = self._round(n)
                if not found:
                    self.clean = True
                    break
                if not self._changed:  # nothing more can be learned
                    break
        finally:
            if self.session is not None:
                self.session.close()
                self.session = None
            try:
                shutil.rmtree(self.tmp, ignore_errors=True)
            except RecursionError:  # the command left a tree too deep to remove
                pass
            if os.path.lexists(self.tmp):
                self.progress(f"warning: could not remove the temporary directory {self.tmp}")
        return self

    def _candidate_file(self, n: int) -> str:
        # A new file each round: the profile parse cache keys on the file's
        # identity and mtime, which a quick rewrite might not change.
        assert self.tmp is not None  # made by run()
        path = os.path.join(self.tmp, f"round-{n}.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.cand.render())
        return path

    def _round(self, n: int) -> int:
        self.rounds_run = n
        prof = profile.load([self._candidate_file(n)], environ=self.environ,
                            program=self.program)
        rs = prof.ruleset
        argv = self.argv
        trace: str | None = None
        assert self.tmp is not None  # made by run()
        if self.method == "audit":
            plan = dn.resolve_logged(rs)
        else:
            trace = os.path.join(self.tmp, f"trace-{n}")
            allow_strace(rs, self.tmp, "strace (learning only)", "strace output (learning only)")
            plan = rs.resolve()
            argv = strace_argv(trace, self.argv)
        settings = prof.env_settings()
        if prof.private_tmp:
            # as `landwrap run` does: a fresh TMPDIR for this round only
            private = tempfile.mkdtemp(prefix=f"tmp-{n}-", dir=self.tmp)
            rs.allow(private, "rw", origin="private TMPDIR (private_tmp)")
            settings.append(f"TMPDIR={private}")
            if self.method == "audit":
                plan = dn.resolve_logged(rs)
            else:
                plan = rs.resolve()
        env = launcher.build_env(prof.env_clean, settings)
        path = spawn.find_program(argv[0], env.get("PATH"))
        stdio = (-1, self.stdout_fd, -1)
        failed = None
        try:
            status = launcher.run(plan, argv, env, path=path, stdio=stdio,
                                  on_start=self.session.watch if self.session else None)
        except CommandNotFound:
            raise
        except LandwrapError as e:
            status = e.exit_code
            failed = e
        if self.session is not None:
            result = self.session.finish()
            found, untallied = result.denials, result.untallied
        else:
            traced = strace_denials(trace, plan, self.cwd, self.argv[0], env.get("PATH"))
            found, untallied = traced, traced.untallied
        self.last_status = status
        self._plan = plan
        added = self._learn_from(found, n)
        count = sum(getattr(d, "count", 1) for d in found) + untallied
        what = f"{count} denial{'s' if count != 1 else ''}"
        self.statuses.append(status)
        tail = f"added: {', '.join(added)}" if added else (
            "nothing new to add" if found else
            "the profile is complete" if status == self.expect_exit else
            f"no denials, but the command failed (exit status {status})")
        self.progress(f"round {n}: {what} (exit status {status}); {tail}")
        if failed is not None and not found:
            self.progress(f"round {n}: {failed}")
        for s in self.stuck:
            self.progress(f"round {n}: cannot allow: {s}")
        return len(found)

    # turning denials into rules ---------------------------------------------------
    def _learn_from(self, found: Sequence[Denial], n: int) -> list[str]:
        """Apply one round's denials; returns what was added, for the
        progress line."""
        self.stuck = []
        self._touched = []
        self._before = {p: g.effective() for p, g in self.cand.grants.items()}
        other = []
        launcher_exe = os.path.realpath(sys.executable)
        for d in found:
            other += [c for c in self.propose(d, dn.program_of(d, launcher_exe), n)
                      if c not in other]
        merged = self.cand.collapse()
        self.cand.prune()
        added = []
        for t in self._touched:
            g = self.cand.grants.get(t)
            if g is None or t in merged:
                continue
            before = self._before.get(t)
            if before is None:
                added.append(_describe_grant(g))
            else:
                new = [n for n in compat.FS_RIGHTS if n in g.effective() - before]
                added.append(f"{_describe_grant(g)} (+{','.join(new)})" if g.shorthand()
                             else f"+{','.join(new)} {t}")
        added += [f"ro {m} (merged)" for m in merged] + other
        for g in self.cand.grants.values():
            # a directory the program itself made: `landwrap run` creates it
            # (create = true) when it is gone, instead of a broad parent
            if g.is_dir and not g.create and self._made_here(g.path):
                g.create = True
        self._changed = bool(added)
        return added

    def propose(self, d: Denial, prog: str, n: int) -> list[str]:
        """Apply denial *d* to the candidate.  Filesystem changes are
        recorded in ``_touched``; returns descriptions of other changes
        (ports, scopes)."""
        cand = self.cand
        rights = set(d.rights)
        kinds = d.kinds
        if kinds == {"net"} and d.port is not None:
            out = []
            for r in d.rights:
                key = NET_KEY.get(r)
                if key and cand.add_port(key, d.port,
                                         f"{r} by {prog}: {d.addr or '?'}:{d.port} (round {n})"):
                    out.append(f"{key} {d.port}")
            return out
        if kinds == {"scope"}:
            name = d.rights[0]
            target = f"pid {d.opid} ({d.ocomm})" if d.opid else "an abstract unix socket"
            return [f"scope.{name} = false"] if cand.add_scope(
                name, f"{name} by {prog} to {target} (round {n})") else []
        if kinds != {"fs"} or not d.path or not d.path.startswith("/"):
            self.stuck.append(f"{dn.describe(d)} by {prog}: no profile rule can allow it")
            return []
        written = os.path.normpath(d.path)
        # The real path: what strace reports is the path as the program
        # wrote it, and a symlink it planted there could point anywhere.
        path = os.path.realpath(written)
        gone = False
        if getattr(d, "deleted", False) and not _same_inode(path, d.ino):
            # The kernel wrote " (deleted)" after the path -- or the file
            # is named so: the object denied is never the file now at the
            # name without it (a file named "x (deleted)" stood for x).
            named = written + " (deleted)"
            if _same_inode(os.path.realpath(named), d.ino):
                written, path = named, os.path.realpath(named)
            else:
                gone = True
        if d.ino is not None and path != written:
            # The kernel names the object through the real directories (its
            # records carry the inode; strace's do not): a symlink on the
            # path now was put there after the denial, by the program
            # itself, and leads anywhere.
            self.stuck.append(f"{dn.describe(d)} by {prog}: {written} now leads to {path} "
                              "through a symlink made after the denial: no rule is learned "
                              "from it")
            return []
        why = f"{','.join(d.rights)} by {prog}: {path} (round {n})"
        links = symlinks_on(written)
        if links:
            why += " via symlink " + ", ".join(f"{a} -> {b}" for a, b in links)
        found = container(path, rights, d.exe, self.home, self.cand.widen_ok)
        if found:
            target, label = found
            add = rights | ({"read_file"} if "execute" in rights else set())
            if add & (dn.WRITE_RIGHTS | dn.DIR_ENTRY_RIGHTS):
                add |= READ_RIGHTS
            self._grant(d, prog, target, True, add | {"read_dir"}, True, why, label)
        elif gone or not os.path.lexists(path):
            # (a deleted object is not the file now at its name: a file
            # named "x (deleted)" would otherwise stand for x)
            # creation only where it happened (the nearest existing directory)
            where = _existing_ancestor(path)
            if rights & FILE_RIGHTS and not self._may_create(where):
                # A file the program could not have made there and that is
                # gone (strace's output, written in the sandbox, may name a
                # file that never existed): its rights would be on every
                # file in the directory.
                self.stuck.append(f"{dn.describe(d)} by {prog}: {path} is not there after "
                                  "the run, and the program may not create files in "
                                  f"{where}: no rule is learned from it")
                rights -= FILE_RIGHTS
                if not rights:
                    return []
            self._grant(d, prog, where, True, self._creating(where, rights), False,
                        why.replace(f": {path}", f": {path} (not there after the run)"))
        elif os.path.isdir(path) and not os.path.islink(path):
            self._grant(d, prog, path, True, self._creating(path, rights), False, why)
        else:
            parent = os.path.dirname(path)
            pg = cand.grants.get(parent)
            if pg is not None and "make_reg" in pg.rights and self._made_here(path):
                # an output file the program created: its rights go where it
                # is created, so that a fresh run can create it again
                add = rights & FILE_RIGHTS
                if "write_file" in add:  # it writes what it creates: again next run
                    add.add("truncate")
                self._grant(d, prog, parent, True, pg.rights | add, pg.short,
                            why.replace(f": {path}", f": {path} (created by the program)"))
            else:
                add = rights & FILE_RIGHTS
                if "execute" in add:
                    add.add("read_file")
                self._grant(d, prog, path, False, add, True, why)
        return []

    def _may_create(self, where: str) -> bool:
        """Whether the program may create files or directories in *where*
        (the round's sandbox, or what this round has learned so far)."""
        if any(self.cand.covering(where, {r}) is not None for r in ("make_reg", "make_dir")):
            return True
        bits = compat.FS_RIGHTS["make_reg"][0] | compat.FS_RIGHTS["make_dir"][0]
        return self._plan is not None and bool(self._plan.allows(where, bits))

    def _creating(self, where: str, rights: Iterable[str]) -> set[str]:
        """*rights* for creating in directory *where*; in the working
        directory (the project learn runs in) a file created is a file
        written: writing it comes with the creation, so that a half-written
        output (an empty main.o) does not stall the next round."""
        add = set(rights)
        cwd = os.path.realpath(self.cwd)
        if "make_reg" in add and (where == cwd or where.startswith(cwd + "/")) \
                and not too_broad(where, self.home):
            add |= {"write_file", "truncate"}
        return add

    def _grant(self, d: Denial, prog: str, target: str, is_dir: bool, rights: set[str],
               short: bool, why: str, label: str | None = None) -> None:
        try:
            target.encode("utf-8")
        except UnicodeEncodeError:
            self.stuck.append(f"{dn.describe(d)} by {prog}: the path is not valid UTF-8, "
                              "which a TOML profile cannot name; allow a directory above it "
                              "with -p or rename the file")
            return
        have = self.cand.grants.get(target)
        merged = Grant(target, is_dir, set(rights) | (have.rights if have else set()),
                       short or bool(have and have.short))
        effective = merged.effective()
        reason = self.sensitive.blocks(target, is_dir, effective)
        if reason is not None:
            asked = target not in self.refused and self.confirm_sensitive is not None and \
                self.confirm_sensitive(
                f"{','.join(n for n in compat.FS_RIGHTS if n in effective)} on {target}",
                reason)
            if not asked:
                entry = self.refused.setdefault(target, [set(), reason, []])
                entry[0] |= set(rights)
                if why not in entry[2] and len(entry[2]) < 3:
                    entry[2].append(why)
                self.stuck.append(f"{dn.describe(d)} by {prog}: not granted, {reason} "
                                  f"(to grant it: --allow-sensitive {target})")
                return
            self.sensitive.allowed.append(target)
            self.confirmed.add(target)
        cover = self.cand.covering(target, rights)
        if cover is not None:
            if cover.path not in self._touched:
                self.stuck.append(
                    f"{dn.describe(d)} by {prog}: already allowed by the rule on {cover.path} "
                    "(the path may be replaced or be a different file while the program runs)")
            elif why not in cover.why and len(cover.why) < 3:
                cover.why.append(why)
            return
        if is_dir and rights & {"make_reg", "make_dir"} and target not in self._listing:
            try:
                self._listing[target] = set(os.listdir(target))
            except OSError:
                pass
        self.cand.add_fs(target, is_dir, rights, short, why, label)
        if target not in self._touched:
            self._touched.append(target)

    def _made_here(self, path: str) -> bool:
        """Whether *path* appeared in its directory after the program was
        allowed to create files there (it was not there before)."""
        before = self._listing.get(os.path.dirname(path))
        return before is not None and os.path.basename(path) not in before

    # results ------------------------------------------------------------------------
    def created_hint(self) -> list[str]:
        """When a later round failed where an earlier one succeeded: the
        paths the command created in earlier rounds (it may fail because
        they are there now, as `git clone` into an existing directory)."""
        if len(self.statuses) < 2 or self.statuses[-1] == self.expect_exit:
            return []
        try:
            now = set(os.listdir(self.cwd))
        except OSError:
            now = set()
        made = sorted(os.path.join(self.cwd, e) for e in now - self._cwd_before)
        earlier = any(s == self.expect_exit for s in self.statuses[:-1])
        lead = "an earlier round succeeded; " if earlier else ""
        if not made:
            return [lead + "each round re-ran the command with its side effects, which may "
                    "make a later round fail"] if earlier else []
        return [lead + "these paths in the working directory were created by earlier rounds "
                "and may make the later ones fail (remove them and learn again):"] + \
            [f"  {printable(p)}" for p in made[:20]]

    def header(self) -> list[str]:
        cmd = show_command(self.argv)
        failed = self.clean and self.last_status != self.expect_exit
        state = (f"the last round ran without denials but the command failed (exit status "
                 f"{self.last_status}): this profile is not known to be complete" if failed
                 else "the last round ran without denials" if self.clean else
                 "the last round still had denials: this profile is incomplete "
                 "and its last additions are untested")
        via = {"audit": "the kernel's Landlock audit records",
               "strace": "strace (the kernel's denial records were unavailable)"}.get(
                   self.method or "", "?")
        lines = [
            "Landlock profile learned by `landwrap learn` for:",
            f"  {cmd}",
            f"Learned from {via} in {self.rounds_run} round"
            f"{'s' if self.rounds_run != 1 else ''}; {state}.",
            f"Starts from: {', '.join(self.cand.base)} (see `extends`).",
            "Each rule says what it was learned from: access, program, an example path.",
            "It allows what these runs of the program did; review it before relying on it.",
        ]
        for w in self.cand.warnings:
            lines.append(f"WARNING: {w}")
        lines += self.sensitive_summary()
        return lines

    def sensitive_summary(self) -> list[str]:
        """Lines naming the sensitive paths the program asked for: those
        not granted, and those granted because they were allowed."""
        out = []
        for path, (rights, reason, why) in sorted(self.refused.items()):
            names = ",".join(n for n in compat.FS_RIGHTS if n in rights)
            out.append(f"NOT GRANTED: {names} on {path}: {reason}; to grant it, run learn "
                       f"again with --allow-sensitive {path}")
            out += [f"  asked for by {w}" for w in why]
        plain = Sensitive(self.home, self.environ)  # without the allowances
        for path, g in sorted(self.cand.grants.items()):
            reason = plain.blocks(path, g.is_dir, g.effective())
            if reason is not None:
                how = "confirmed" if path in self.confirmed else "--allow-sensitive"
                out.append(f"SENSITIVE, granted ({how}): {_describe_grant(g)}: {reason}")
        return out

    def profile_text(self) -> str:
        return self.cand.render(self.header())


def _describe_grant(g: Grant) -> str:
    s = g.shorthand()
    if s:
        return f"{s} {g.path}"
    return f"{','.join(g.access_list())} {g.path}"


def _same_inode(path: str, ino: str | None) -> bool:
    """Whether *path* is the inode numbered *ino* (a record's ``ino``)."""
    try:
        return ino is not None and os.lstat(path).st_ino == int(ino)
    except (OSError, ValueError):
        return False


def _is_path(spec: str) -> bool:
    return "/" in spec or spec.endswith((".toml", ".json"))

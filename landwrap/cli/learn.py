"""cli/learn.py: the `landwrap learn` command -- prompts, progress lines,
the summary and writing the profile file.  The rounds themselves are
``diagnose.learn.Learner``; this module only asks, prints and writes.
"""

from __future__ import annotations

import errno
import os
import secrets
import sys

from . import report
from ..diagnose.learn import DEFAULT_ROUNDS, Learner, show_command
from ..engine.errors import LandwrapError, UsageError
from ..engine.safetext import printable
from ..engine.trust import untrusted_dirs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def write_output(output: str, text: str, dir_fd: int | None = None) -> None:
    """Write *text* to *output* atomically: a new temporary file next to
    it (random name, ``O_CREAT|O_EXCL|O_NOFOLLOW``: never a file or symlink
    someone planted there), then ``rename`` over *output* (which replaces
    a symlink at that name instead of writing through it).  *dir_fd*: the
    output's directory, opened before the command ran (a directory on the
    way that the command replaced with a symlink then leads nowhere)."""
    d = os.path.dirname(os.path.abspath(output))
    base = os.path.basename(output)
    if dir_fd is None:
        dir_fd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return write_output(output, text, dir_fd)
        finally:
            os.close(dir_fd)
    now = os.stat(d)  # (OSError when it is gone)
    was = os.fstat(dir_fd)
    if (now.st_dev, now.st_ino) != (was.st_dev, was.st_ino):
        raise OSError(errno.ESTALE, f"{d} is not the directory it was when learning began "
                      "(moved, or replaced by a symlink, while the command ran)")
    data = text.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = f".{base}.{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"cannot create a temporary file in {d}")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def main(argv: list[str], *, output: str | None = None, base: Sequence[str] = (),
         rounds: int = DEFAULT_ROUNDS, once: bool = False, yes: bool = False, via: str = "auto",
         allow_sensitive: Sequence[str] = (), expect_exit: int = 0) -> int:
    """`landwrap learn`: 0 when the profile ran without denials and the
    command exited *expect_exit*, 1 when it is incomplete or the command
    failed without denials, 125 on errors."""
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    progress = report.info
    cmd = show_command(argv)

    def confirm_sensitive(what: str, reason: str) -> bool:
        # asked even with --yes: -y is about re-running, not about secrets
        sys.stderr.write(f"landwrap: the program asks for {printable(what)} "
                         f"({printable(reason)}). Grant it? [y/N] ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    def confirm(n: int) -> bool:
        sys.stderr.write(f"landwrap: run `{cmd}` again (round {n}) with the widened profile? "
                         "[y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        return answer in ("y", "yes")

    out_fd: int | None = None  # the output's directory, as it is now
    try:
        if output is not None:
            out_dir = os.path.dirname(os.path.abspath(output))
            if not os.path.isdir(out_dir):
                raise UsageError(f"-o {output}: no such directory {out_dir}")
            why = untrusted_dirs(os.path.realpath(out_dir), (0, os.getuid()))
            if why is not None:
                # `landwrap run -p` would refuse the profile there: whoever
                # can change the directory can swap the file
                raise UsageError(f"-o {printable(output)}: landwrap run would not trust a "
                                 f"profile there: {printable(why)}")
            try:
                out_fd = os.open(out_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise UsageError(f"-o {printable(output)}: {e.strerror or e}") from None
        if not once:
            report.warn(f"learn runs `{cmd}` up to {rounds} times, sandboxed; each round re-runs "
                        "it with its side effects: whatever it does (files it writes, requests "
                        "it sends) happens each time"
                        + ("" if yes or not interactive
                           else "; you will be asked before each re-run")
                        + ". Use --once for a single run.")
        learner = Learner(argv, base=base, rounds=rounds, once=once, via=via,
                          expect_exit=expect_exit,
                          stdout_fd=2 if output is None else -1, progress=progress,
                          confirm=None if yes or not interactive else confirm,
                          allow_sensitive=allow_sensitive,
                          confirm_sensitive=confirm_sensitive if interactive else None)
        learner.run()
    except LandwrapError as e:
        report.error(e)
        return _closed(out_fd, 125)
    except KeyboardInterrupt:
        report.info("interrupted")
        return _closed(out_fd, 125)
    try:
        return _finish(learner, output, out_fd, cmd, once, expect_exit)
    finally:
        _closed(out_fd, 0)


def _closed(fd: int | None, status: int) -> int:
    if fd is not None:
        os.close(fd)
    return status


def _finish(learner: Learner, output: str | None, out_fd: int | None, cmd: str,
            once: bool, expect_exit: int) -> int:
    """Write the profile and the summary; the exit status."""
    text = learner.profile_text()
    assert learner.cand is not None  # run() made the candidate
    for w in learner.cand.warnings:
        report.warn(printable(w))
    for line in learner.sensitive_summary():
        report.warn(printable(line.strip()))
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        try:
            write_output(output, text, out_fd)
        except OSError as e:
            report.error(f"-o {printable(output)}: cannot write it: {e.strerror or e}")
            return 125
        report.info(f"wrote {printable(output)}")
    if learner.clean and learner.last_status != expect_exit:
        report.info(f"`{cmd}` failed without denials (exit status {learner.last_status}, "
                    f"expected {expect_exit}): the profile is not known to be complete")
        for line in learner.created_hint():
            report.info(line)
        return 1
    if learner.clean:
        report.info(f"the profile ran `{cmd}` without denials; use it with: "
                    f"landwrap run -p {show_command([output]) if output else 'FILE'} -- {cmd}")
        return 0
    if learner.declined:
        why = "(the command was not run again with its last additions)"
    elif once:
        why = "(--once: its additions are untested)"
    elif learner.rounds_run >= learner.rounds:
        why = "(round limit reached)"
    else:
        why = "(no further rule could be learned)"
    report.info("the profile is incomplete: the last round still had denials " + why)
    return 1

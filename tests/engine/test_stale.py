"""engine/stale.py: the cheap check that a reused ruleset's directories are
still the ones its rules were bound to.  Real directories, real renames and
(as root) real mounts; the only thing faked is the clock, where a test needs
every timestamp to count as settled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import landwrap
from landwrap.engine import _binding, stale
from landwrap.engine.kernel_ruleset import identities


def _recording(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[object]:
    """Replace *owner*.*name* by a wrapper that records its argument."""
    calls: list[object] = []
    real = getattr(owner, name)

    def wrapper(arg):  # type: ignore[no-untyped-def]
        calls.append(arg)
        return real(arg)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def _counting_stat(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record the batches of paths stale.py stats one by one (the per-rule
    check); :func:`_flat` lists their paths."""
    return _recording(monkeypatch, _binding, "path_ids")


def _flat(batches: list[object]) -> list[str]:
    return [p for b in batches for p in b]  # type: ignore[attr-defined]


def test_unchanged_ancestors_spare_the_per_rule_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    dirs = ["/usr/share", "/usr/lib", "/usr/bin", "/etc"]
    check = stale.DirCheck(identities(dirs))
    # every timestamp settled (the clock is 1000 s ahead): the first check
    # verifies each rule and records the ancestors, later ones stat only those
    monkeypatch.setattr(time, "time", lambda: time.time_ns() / 1e9 + 1000)
    calls = _counting_stat(monkeypatch)
    assert check.replaced() == []
    assert sorted(_flat(calls)) == sorted(dirs)
    calls.clear()
    assert check.replaced() == [] and calls == []


def test_recent_changes_are_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "job").mkdir()
    check = stale.DirCheck(identities([str(tmp_path / "job")]))
    calls = _counting_stat(monkeypatch)
    for _ in range(3):  # tmp_path was just made: its timestamps prove nothing yet
        assert check.replaced() == []
    assert _flat(calls) == [str(tmp_path / "job")] * 3


def test_replacements_under_settled_ancestors_are_seen(tmp_path: Path) -> None:
    """The real clock: the ancestors are left to settle, then changed."""
    job = tmp_path / "a" / "job"              # deleted and re-created
    deep = tmp_path / "b" / "mid" / "job"     # an ancestor renamed away, re-made
    moved = tmp_path / "c" / "job"            # renamed over by another directory
    kept = tmp_path / "d" / "job"             # untouched
    for d in (job, deep, moved, kept):
        d.mkdir(parents=True)
    (tmp_path / "c" / "other").mkdir()
    rs = landwrap.Ruleset.from_profile("default")
    for d in (job, deep, moved, kept):
        rs.allow(d, "rw")
    write = ["sh", "-c", 'echo x > "$1/out"', "sh", str(job)]
    assert landwrap.run(write, ruleset=rs).returncode == 0
    plan = rs.plan()
    time.sleep(stale.SETTLE + 0.2)
    assert plan.replaced() == []  # records the now settled ancestors
    assert plan._stale is not None
    assert all(plan._stale._seen[plan._stale._ancestors.index(str(d.parent))]
               for d in (job, deep, moved, kept))
    os.unlink(job / "out")
    job.rmdir()
    job.mkdir()
    os.rename(deep.parent, tmp_path / "b" / "mid.old")
    deep.mkdir(parents=True)
    os.rename(tmp_path / "c" / "other", moved)
    assert sorted(plan.replaced()) == sorted(map(str, (job, deep, moved)))
    assert plan.replaced() != []  # still replaced when asked again
    # and a reused Ruleset rebuilds: the new directory is writable
    assert landwrap.run(write, ruleset=rs).returncode == 0
    assert (job / "out").read_text() == "x\n"
    assert rs.plan() is not plan and rs.plan().replaced() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_mount_over_a_rule_directory_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mount changes no ancestor: /proc/self/mountinfo's event tells."""
    job = tmp_path / "job"
    job.mkdir()
    check = stale.DirCheck(identities([str(job)]))
    monkeypatch.setattr(time, "time", lambda: time.time_ns() / 1e9 + 1000)
    assert check.replaced() == []
    assert all(check._seen)  # every ancestor recorded: no per-rule stat next time
    subprocess.run(["mount", "-t", "tmpfs", "lw-test", str(job)], check=True)
    try:
        assert check.replaced() == [str(job)]
    finally:
        subprocess.run(["umount", str(job)], check=True)
    assert check.replaced() == []  # the directory beneath is back


def test_the_answer_made_in_c_still_sees_a_replacement_and_a_mount(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a check found every ancestor as it was, the next ones are one C
    call that compares the ids itself (stale.unchanged).  That call must
    still send a replaced directory, and (as root) a mount over one, the
    long way."""
    job, mounted = tmp_path / "job", tmp_path / "mounted"
    job.mkdir()
    mounted.mkdir()
    check = stale.DirCheck(identities([str(job), str(mounted)]))
    monkeypatch.setattr(time, "time", lambda: time.time_ns() / 1e9 + 1000)
    long_way = _recording(monkeypatch, stale, "probe_state")

    def prime() -> None:
        assert check.replaced() == []  # verifies the rules, records the ancestors
        assert check.replaced() == []  # found as recorded: kept for the C comparison
        long_way.clear()
        assert check.replaced() == [] and long_way == []  # answered in C

    prime()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "lw-test", str(mounted)], check=True)
        try:
            assert check.replaced() == [str(mounted)] and long_way
        finally:
            subprocess.run(["umount", str(mounted)], check=True)
        prime()
    job.rmdir()
    job.mkdir()
    assert check.replaced() == [str(job)] and long_way


def test_a_plan_for_one_spawn_records_no_directories(tmp_path: Path) -> None:
    """`landwrap run` resolves its plan with track_dirs=False: it spawns
    once, so the identities a later stale check compares (a stat and a
    file handle per directory rule) are not taken.  A reusable plan (the
    API's) takes them, for the rules bound while resolving and for those
    added later (here, beneath a hidden path's carved parent)."""
    from landwrap.engine.plan import resolve

    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "secret").mkdir()
    rs = (landwrap.Ruleset(net=False, scope=False).allow(tmp_path / "d", "ro")
          .allow(tmp_path / "e", "rw", required=False).hide(tmp_path / "d" / "secret"))
    once = resolve(rs, track_dirs=False)
    once.ruleset_fd()
    assert once._dirs == [] and once.replaced() == []
    once.close()
    kept = rs.resolve()
    kept.ruleset_fd()
    assert str(tmp_path / "d" / "sub") in [d[0] for d in kept._dirs]
    if _binding.path_ids([str(tmp_path)])[0][2]:  # (ext4, xfs, btrfs, tmpfs: not all give one)
        assert all(d[3] for d in kept._dirs)  # a file handle's digest for each
    kept.close()


def test_forked_child_does_not_share_the_mount_watch() -> None:
    """After fork the child polls its own /proc/self/mountinfo: polling the
    parent's (a shared open file) would take the parent's events."""
    stale.mount_state()
    parent = stale._mounts
    assert parent is not None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            gen, _ = stale.mount_state()
            child = stale._mounts
            ok = (child is not None and child is not parent and gen > parent.generation)
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    os.waitpid(pid, 0)
    assert stale._mounts is parent and parent.ours()


def test_a_closed_watch_descriptor_is_replaced_not_closed() -> None:
    stale.mount_state()
    old = stale._mounts
    assert old is not None
    os.close(old.fd)
    other = os.open(sys.executable, os.O_RDONLY | os.O_CLOEXEC)  # may take its number
    try:
        gen, _ = stale.mount_state()
        assert stale._mounts is not old and gen > old.generation
        os.fstat(other)  # still open: landwrap did not close what is not its own
    finally:
        os.close(other)


def test_ancestor_ids_are_lstat_s(tmp_path: Path) -> None:
    """The one C call that stats the ancestors gives what os.lstat gives
    (a symlink itself, not its target), and zeros for a missing path."""
    from landwrap.engine import _binding
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "d")
    paths = ["/", str(tmp_path / "d"), str(tmp_path / "link"), str(tmp_path / "gone")]
    ids = _binding.LstatIds(paths).ids()
    for i, p in enumerate(paths[:3]):
        st = os.lstat(p)
        assert ids[5 * i:5 * i + 5] == [1, st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns]
    assert ids[15:] == [0] * 5


def test_the_probe_polls_the_mount_table_only_through_its_own_descriptor(tmp_path: Path) -> None:
    """LstatIds.probe: (ours, changed) for the watch, then the paths' ids.
    An event is reported once (the poll takes it) and only through the
    descriptor named with its identity: given another identity, it is
    left alone for the watch's own next check."""
    from landwrap.engine import _binding
    stale.mount_state()
    w = stale._mounts
    assert w is not None
    lst = _binding.LstatIds(["/"])
    assert lst.probe(w.fd, *w.ident)[:2] == [1, 0]
    (tmp_path / "m").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "lw-probe", str(tmp_path / "m")], check=True)
    try:
        assert lst.probe(w.fd, w.ident[0], w.ident[1] + 1)[:2] == [0, 0]  # not its file
        assert lst.probe(w.fd, *w.ident)[:2] == [1, 1]  # the event, still there
        assert lst.probe(w.fd, *w.ident)[:2] == [1, 0]  # taken
    finally:
        subprocess.run(["umount", str(tmp_path / "m")], check=True)
    st = os.lstat("/")
    assert lst.probe(-1, 0, 0) == [0, 0, 1, st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns]


@pytest.mark.parametrize("compat", ["strict", "best-effort"])
def test_a_symlink_swapped_back_while_resolving_grants_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compat: str) -> None:
    """A sandboxed child with rw on W turns W/sub (allowed rox) into a
    symlink to a directory it may not read; the next spawn of the reused
    Ruleset sees W/sub replaced and resolves again.  If the child swaps the
    directory back in the window between csrc/paths.c resolving the
    symlink (its target becomes the rule's real path) and
    Plan._check_moved walking the path, the walk finds no symlink: the
    target must not be granted for that.  The swap, a real rename, is put
    in that window here (a child can only hit it by chance).  Resolved
    afresh (refresh()): a rebuild refuses W/sub sooner (next test)."""
    from landwrap.engine import plan as plan_mod

    secret, w = tmp_path / "secret", tmp_path / "w"
    secret.mkdir()
    (secret / "f").write_text("secret\n")
    (w / "sub").mkdir(parents=True)
    rs = landwrap.Ruleset.from_profile("default").allow(w, "rw").allow(w / "sub", "rox")
    rs.compat = compat

    def cat() -> int | str:
        try:
            return landwrap.run(["cat", str(secret / "f")], ruleset=rs,
                                capture_output=True).returncode
        except landwrap.PathError as e:
            return f"refused: {e}"

    assert cat() == 1
    child = f'mv "$1/sub" "$1/old" && ln -s "$2" "$1/sub"'
    assert landwrap.run(["sh", "-c", child, "sh", str(w), str(secret)],
                        ruleset=rs).returncode == 0
    rs.refresh()  # a first resolution: no earlier plan pins W/sub (see the next test)
    real_check = plan_mod.Plan._check_moved

    def swapped_back(self: plan_mod.Plan, merged: dict[str, plan_mod.Rule],
                     moved: list[tuple[object, str, str, int]]) -> None:
        if any(lex == str(w / "sub") for _, lex, _, _ in moved):
            os.rename(w / "sub", w / "link")
            os.rename(w / "old", w / "sub")
        real_check(self, merged, moved)

    monkeypatch.setattr(plan_mod.Plan, "_check_moved", swapped_back)
    got = cat()
    monkeypatch.undo()
    if compat == "strict":
        assert isinstance(got, str) and "changed while" in got, got
    else:
        assert got == 1
    assert cat() == 1  # and the spawns after it


@pytest.mark.parametrize("compat", ["strict", "best-effort"])
def test_a_directory_another_sandbox_made_a_symlink_is_not_followed_on_rebuild(
        tmp_path: Path, compat: str) -> None:
    """Two Rulesets in one program: a child of WRITER (rw on W) replaces
    W/in, which READER allows, by a symlink to a directory neither may
    read.  The symlink is this user's, in a directory READER cannot
    change, so a first resolution would trust it; but READER was built when
    W/in was a directory, and its automatic rebuild must not follow what
    replaced it (Ruleset.refresh() accepts a wanted change)."""
    secret, w = tmp_path / "secret", tmp_path / "w"
    secret.mkdir()
    (secret / "f").write_text("secret\n")
    (w / "in").mkdir(parents=True)
    (w / "in" / "data").write_text("data\n")
    writer = landwrap.Ruleset.from_profile("default").allow(w, "rw")
    reader = landwrap.Ruleset.from_profile("default").allow(w / "in", "rox")
    reader.compat = compat

    def read(path: Path) -> int | str:
        try:
            return landwrap.run(["cat", str(path)], ruleset=reader,
                                capture_output=True).returncode
        except landwrap.PathError as e:
            return f"refused: {e}"

    assert (read(w / "in" / "data"), read(secret / "f")) == (0, 1)
    swap = f'mv "$1/in" "$1/old" && ln -s "$2" "$1/in"'
    assert landwrap.run(["sh", "-c", swap, "sh", str(w), str(secret)],
                        ruleset=writer).returncode == 0
    for _ in range(2):
        got = read(secret / "f")
        if compat == "strict":
            assert isinstance(got, str) and "was a directory" in got, got
        else:
            assert got == 1

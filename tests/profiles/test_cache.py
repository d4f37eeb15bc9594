"""The parse cache's upkeep (landwrap/profiles/cache.py): bounded, forgets
files that are gone, evicts the least recently used, written only for
profile files (never for the API's in-memory rulesets), and its eviction
cannot be turned against files outside the cache (symlinks, FIFOs, hostile
names, other users' files).  No Landlock here but in the API test, which
runs the library for real in a child with its own HOME."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from landwrap.profiles import cache, parse

NOBODY = 65534


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LANDWRAP_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(d: Path) -> list[str]:
    return sorted(e.name for e in d.iterdir() if e.name.endswith(".marshal")) \
        if d.exists() else []


def profile_file(d: Path, i: int, text: str = "") -> str:
    p = d / f"p{i}.toml"
    p.write_text(text or f'description = "profile {i}"\n')
    return str(p)


def age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def test_a_loop_writing_more_than_the_bound_stays_under_it(tmp_path: Path,
                                                           isolated: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    n = cache.MAX_ENTRIES + 40
    for i in range(n):
        assert parse.load_document(profile_file(src, i))["description"] == f"profile {i}"
    kept = entries(isolated)
    assert len(kept) == cache.MAX_ENTRIES
    # the newest are kept: the last file's entry is a hit, not a re-parse
    last = profile_file(src, n - 1)
    st = os.stat(last)
    assert any(e.startswith("%x-%x-" % (st.st_dev, st.st_ino)) for e in kept)


def test_the_byte_bound_and_least_recently_used_go_first(
        tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    paths = [profile_file(src, i, f'description = "{i}"\npad = "{"x" * 4000}"\n')
             for i in range(6)]
    for p in paths[:3]:
        parse.load_document(p)
    names = entries(isolated)
    assert len(names) == 3
    for k, name in enumerate(names):
        age(isolated / name, 7200 + k)   # all older than TOUCH_AFTER
    first = paths[0]
    st = os.stat(first)
    used = next(n for n in names if n.startswith("%x-%x-" % (st.st_dev, st.st_ino)))
    parse.load_document(first)           # a hit renews the entry
    assert time.time() - os.stat(isolated / used).st_mtime < 60
    size = os.stat(isolated / used).st_size
    monkeypatch.setattr(cache, "MAX_BYTES", 3 * size + size // 2)
    for p in paths[3:5]:                 # two new entries: the two unused old ones go
        parse.load_document(p)
        kept = entries(isolated)
        assert sum(os.stat(isolated / k).st_size for k in kept) <= cache.MAX_BYTES
    assert used in entries(isolated)     # used recently: evicted last
    assert len(entries(isolated)) == 3
    parse.load_document(paths[5])
    assert used not in entries(isolated)  # now the least recently used


def test_an_entry_whose_source_is_gone_is_dropped(tmp_path: Path, isolated: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    gone = profile_file(src, 0)
    parse.load_document(gone)
    (old,) = entries(isolated)
    os.unlink(gone)
    parse.load_document(profile_file(src, 1))     # a write runs the upkeep
    assert old not in entries(isolated) and len(entries(isolated)) == 1
    # a source in a directory that is gone too, and one edited elsewhere
    sub = src / "sub"
    sub.mkdir()
    p = profile_file(sub, 2)
    parse.load_document(p)
    edited = profile_file(src, 3)
    parse.load_document(edited)
    assert len(entries(isolated)) == 3
    os.unlink(p)
    sub.rmdir()
    with open(edited, "a") as f:
        f.write("# edited\n")
    assert cache.maintain(str(isolated)) == 2
    assert len(entries(isolated)) == 1            # the entry of p1.toml


def test_a_write_checks_the_sources_of_the_least_recently_used_only(
        tmp_path: Path, isolated: Path) -> None:
    """A write costs the same however full the cache is: it checks the
    sources of the SOURCE_CHECKS entries eviction would reach first."""
    src = tmp_path / "src"
    src.mkdir()
    n = cache.SOURCE_CHECKS * 2
    paths = [profile_file(src, i) for i in range(n)]
    for p in paths:
        parse.load_document(p)
    for k, name in enumerate(sorted(entries(isolated),
                                    key=lambda e: os.stat(isolated / e).st_mtime)):
        age(isolated / name, 10 ** 5 - k)   # the order of writing, made plain
    os.unlink(paths[0])                      # the least recently used: checked
    os.unlink(paths[-1])                     # the most recently used: not yet
    parse.load_document(profile_file(src, n))
    assert len(entries(isolated)) == n      # n + 1 written, one dropped
    assert cache.maintain(str(isolated)) == 1   # a full upkeep finds the other


def test_a_forged_source_path_is_not_trusted(tmp_path: Path, isolated: Path) -> None:
    """The source path is covered by a MAC: an entry whose path was
    rewritten (to make landwrap stat and drop something else) is kept."""
    src = tmp_path / "src"
    src.mkdir()
    p = profile_file(src, 0)
    parse.load_document(p)
    (name,) = entries(isolated)
    data = (isolated / name).read_bytes()
    old = os.fsencode(p)
    assert old in data
    forged = old[:-len(b"p0.toml")] + b"zz.toml"   # same length, a file that is gone
    (isolated / name).write_bytes(data.replace(old, forged))
    os.chmod(isolated / name, 0o600)
    assert cache.maintain(str(isolated)) == 0
    assert entries(isolated) == [name]


def test_eviction_never_goes_through_symlinks_or_past_hostile_entries(
        tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    src.mkdir()
    parse.load_document(profile_file(src, 0))     # creates the directory and key
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("keep me\n")
    # old-looking names, as an entry would have, planted in the cache
    planted = {
        "1-2-3-4.0.marshal": victim,                 # -> a file outside
        "1-3-3-4.0.marshal": outside,                # -> a directory outside
        "1-4-3-4.0.marshal": Path("/nonexistent/x"),  # -> nothing
    }
    for name, target in planted.items():
        os.symlink(target, isolated / name)
        age(isolated / name, 10 ** 6)
    os.mkfifo(isolated / "1-5-3-4.0.marshal")
    (isolated / "1-6-3-4.0.marshal").mkdir()
    (isolated / "1-6-3-4.0.marshal" / "inner").write_text("x")
    hostile = [b"1-7-3-4.0.marshal\n", b"\xff\xfe-1-1-1.0.marshal", b"..marshal",
               b"-.marshal", b"1-2-3.marshal.1.tmp", b"zz-zz-zz-zz.0.marshal"]
    for raw in hostile:
        with open(os.path.join(os.fsencode(isolated), raw), "wb") as f:
            f.write(b"junk")
    # an entry name whose trailer points at the victim: not ours (no MAC)
    (isolated / "1-8-3-4.0.marshal").write_bytes(
        b"\0" * 40 + os.fsencode(victim) + b"\0" * 16
        + len(os.fsencode(victim)).to_bytes(2, "little") + b"LWsrc1")
    os.chmod(isolated / "1-8-3-4.0.marshal", 0o600)
    if os.geteuid() == 0:
        other = isolated / "1-9-3-4.0.marshal"
        other.write_text("someone else's")
        os.chown(other, NOBODY, NOBODY)
        age(other, 10 ** 6)
    monkeypatch.setattr(cache, "MAX_ENTRIES", 1)
    for i in range(1, 5):                         # over the bound: evictions
        parse.load_document(profile_file(src, i))
    assert cache.clear(str(isolated)) >= 1
    assert victim.read_text() == "keep me\n" and outside.is_dir()
    left = set(os.listdir(isolated))
    # the symlinks, the FIFO and the directory are not regular files of the
    # user: left alone, as is what is not named like an entry
    assert set(planted) <= left
    assert {"1-5-3-4.0.marshal", "1-6-3-4.0.marshal"} <= left
    assert (isolated / "1-6-3-4.0.marshal" / "inner").exists()
    if os.geteuid() == 0:
        assert "1-9-3-4.0.marshal" in left
    assert "1-8-3-4.0.marshal" not in left   # the user's file with an entry's name: cleared
    # names that are not entries' are not landwrap's to remove
    assert {os.fsdecode(n) for n in hostile} <= left
    assert not [n for n in left if cache._entry_identity(n) and os.path.isfile(
        isolated / n) and not os.path.islink(isolated / n) and os.stat(
        isolated / n).st_uid == os.geteuid()]


def test_a_cache_directory_that_is_a_symlink_is_not_used_or_emptied(
        tmp_path: Path, isolated: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    victim = elsewhere / "1-2-3-4.0.marshal"
    victim.write_text("not landwrap's")
    os.chmod(victim, 0o600)
    os.symlink(elsewhere, isolated)
    assert parse.load_document(profile_file(tmp_path, 0))["description"] == "profile 0"
    assert cache.maintain(str(isolated), max_entries=0) == 0
    assert cache.clear(str(isolated)) == 0
    assert os.listdir(elsewhere) == ["1-2-3-4.0.marshal"]


def test_a_fifo_in_place_of_an_entry_does_not_hang_the_reader(tmp_path: Path,
                                                              isolated: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: a FIFO under
    an entry's name would hang every `landwrap run`."""
    p = profile_file(tmp_path, 0)
    parse.load_document(p)
    (name,) = entries(isolated)
    os.unlink(isolated / name)
    os.mkfifo(isolated / name)
    code = ("import sys; from landwrap.profiles import parse; "
            "print(parse.load_document(sys.argv[1])['description'])")
    r = subprocess.run([sys.executable, "-c", code, p], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, LANDWRAP_CACHE_DIR=str(isolated)))
    assert r.stdout == "profile 0\n", r.stderr


def test_stale_temporary_files_are_removed(tmp_path: Path, isolated: Path) -> None:
    parse.load_document(profile_file(tmp_path, 0))
    (name,) = entries(isolated)
    stale, fresh = isolated / f"{name}.999999.tmp", isolated / f"{name}.999998.tmp"
    for t in (stale, fresh):
        t.write_bytes(b"partial")
    age(stale, cache.STALE_TMP + 60)
    cache.maintain(str(isolated))
    assert not stale.exists() and fresh.exists()


def test_maintain_leaves_an_untrusted_directory_alone(tmp_path: Path, isolated: Path) -> None:
    parse.load_document(profile_file(tmp_path, 0))
    os.chmod(isolated, 0o777)
    try:
        assert cache.maintain(str(isolated), max_entries=0) == 0
        assert cache.clear(str(isolated)) == 0
        assert len(entries(isolated)) == 1
    finally:
        os.chmod(isolated, 0o700)
    assert cache.clear(str(isolated)) == 2          # the entry and the key
    assert os.listdir(isolated) == []


API_SCRIPT = textwrap.dedent("""
    import os, sys
    import landwrap
    base = ["/usr", "/lib", "/lib64", "/bin", "/etc"]
    for i in range(5):
        rs = landwrap.Ruleset()
        for p in base:
            if os.path.exists(p):
                rs.allow(p, "rox")
        assert landwrap.run(["/bin/true"], ruleset=rs).returncode == 0
        assert landwrap.run(["/bin/true"], profile=False,
                            rox=[p for p in base if os.path.exists(p)]).returncode == 0
    pid = os.fork()
    if pid == 0:
        landwrap.restrict(profile=False, rox=sys.argv[1:])
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    print("ok")
""")


@pytest.mark.usefixtures("landlock")
def test_the_api_with_ad_hoc_rules_writes_no_entries(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANDWRAP_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix})
    r = subprocess.run([sys.executable, "-c", API_SCRIPT, *prefixes], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr
    d = home / ".cache" / "landwrap"
    assert entries(d) == []
    # while a profile file is what gets cached, once per file, however often
    code = "import landwrap\nfor i in range(5): landwrap.run(['/bin/true'])\n"
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        if _ == 0:
            first = entries(d)
    assert first and entries(d) == first

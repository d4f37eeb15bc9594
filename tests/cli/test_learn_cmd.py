"""cli/learn.py: the `landwrap learn` command writes its output file safely
(moved from tests/diagnose/test_hardening_learn.py, item 7)."""

import os
import sys

import pytest

from landwrap.cli import learn
from landwrap.diagnose.learn import STRACE


def test_output_is_written_without_following_a_planted_symlink(tmp_path, landlock):
    if not os.access(STRACE, os.X_OK):
        pytest.skip("strace is not installed")
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    outdir = tmp_path / "shared"
    outdir.mkdir()
    output = outdir / "learned.toml"
    # the names the old code used (OUTPUT.PID.tmp) and a few more
    for name in (f"learned.toml.{os.getpid()}.tmp", "learned.toml.tmp"):
        os.symlink(victim, outdir / name)
    saved = sys.stdin
    sys.stdin = open(os.devnull)
    try:
        code = learn.main(["true"], output=str(output), once=True, yes=True, via="strace")
    finally:
        sys.stdin.close()
        sys.stdin = saved
    assert code == 0
    assert victim.read_text() == "precious\n"
    assert not output.is_symlink() and "extends" in output.read_text()
    left = sorted(p.name for p in outdir.iterdir())
    assert left == sorted(["learned.toml", f"learned.toml.{os.getpid()}.tmp",
                           "learned.toml.tmp"])


def test_write_output_replaces_a_symlink_at_the_output_name(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out.toml"
    out.symlink_to(victim)
    learn.write_output(str(out), "x = 1\n")
    assert victim.read_text() == "precious\n"
    assert not out.is_symlink() and out.read_text() == "x = 1\n"

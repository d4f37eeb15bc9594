"""What a run does when Landlock ends up restricting less than it seems:
an unrestricted filesystem must really be unrestricted (no stray refer
handling), and a run that Landlock would not restrict at all must say so,
and in strict mode refuse unless that is exactly what was asked for."""

import os
import shutil

import pytest

from conftest import lw
from landwrap.engine import compat
from landwrap.engine.errors import NothingEnforced
from landwrap.engine.ruleset import Ruleset

pytestmark = pytest.mark.usefixtures("landlock")


def test_unrestricted_fs_handles_no_filesystem_right():
    plan = Ruleset(fs=False).resolve(kernel_abi=7)
    assert plan.fs == 0 and plan.rules == []
    assert plan.net and plan.scoped and plan.status in ("fully", "partially")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="mounting in a new mount namespace needs root and unshare(1)")
def test_unrestricted_fs_allows_mount(tmp_path):
    """A layer that handles any filesystem right denies mount; with the
    filesystem unrestricted (network still restricted) mount must work."""
    script = (f"mount -t tmpfs none {tmp_path} && touch {tmp_path}/in-tmpfs "
              f"&& echo mounted")
    r = lw("run", "-q", *cap_sys_admin(), "--unrestricted-fs", "--",
           "unshare", "-m", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "mounted"
    assert not (tmp_path / "in-tmpfs").exists()  # it was in the private namespace
    # The same with the filesystem restricted: Landlock denies the mount.
    r = lw("run", "-q", *cap_sys_admin(), "--rwx", "/", "--",
           "unshare", "-m", "sh", "-c", script)
    assert r.returncode != 0 and "mounted" not in r.stdout


def test_unrestricted_fs_allows_rename_across_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    r = lw("run", "-q", "--unrestricted-fs", "--", "mv", tmp_path / "a" / "f", tmp_path / "b" / "f")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b" / "f").read_text() == "x"


def test_strict_refuses_when_landlock_would_enforce_nothing():
    """--unrestricted-fs at ABI 3 leaves only network and scopes, which ABI 3
    lacks: nothing would be enforced, silently, before this was fixed."""
    r = lw("run", "-q", "--unrestricted-fs", "--abi", "3", "--", "sh", "-c", "echo ran")
    assert r.returncode == 125
    assert "ran" not in r.stdout
    assert "NOT SANDBOXED" in r.stderr and "ABI 4" in r.stderr and "ABI 6" in r.stderr


def test_strict_refusal_in_the_model():
    with pytest.raises(NothingEnforced) as e:
        Ruleset(fs=False).resolve(kernel_abi=7, abi=3)
    assert e.value.abi == 3 and e.value.dropped


def test_best_effort_runs_unsandboxed_and_quiet_does_not_hide_it():
    r = lw("run", "-q", "--best-effort", "--unrestricted-fs", "--abi", "3", "--",
           "sh", "-c", "echo ran")
    assert r.returncode == 0 and r.stdout == "ran\n"
    assert "NOT SANDBOXED" in r.stderr


def test_everything_lifted_on_purpose_runs_and_says_so():
    r = lw("run", "-q", "--unrestricted-fs", "--unrestricted-net", "--unrestricted-scope",
           "--", "sh", "-c", "echo ran")
    assert r.returncode == 0 and r.stdout == "ran\n"
    assert "NOT SANDBOXED" in r.stderr


def test_a_real_sandbox_prints_no_such_line():
    r = lw("run", "-q", "--", "true")
    assert r.returncode == 0 and "NOT SANDBOXED" not in r.stderr


def cap_sys_admin():
    """--cap-add CAP_SYS_ADMIN where root sandboxes drop capabilities."""
    r = lw("run", "--help")
    return ["--cap-add", "CAP_SYS_ADMIN"] if "--cap-add" in r.stdout else []

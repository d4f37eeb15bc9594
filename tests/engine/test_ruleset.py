"""ruleset.py: request -> plan (path resolution, masking, merging, compat
modes).  Plans are resolved against a given ABI; only kernel_fd tests
touch Landlock."""

import os

import pytest

from landwrap.engine import compat
from landwrap.engine.errors import LandlockUnavailable, PathError, UnsupportedFeature, UsageError
from landwrap.engine.present import short_access
from landwrap.engine.ruleset import Ruleset, parse_ports


def plan_of(rs, abi=7, **kw):
    return rs.resolve(kernel_abi=abi, **kw)


def test_parse_ports():
    assert parse_ports(443) == (443, 443)
    assert parse_ports("8000-8080") == (8000, 8080)
    assert parse_ports("0") == (0, 0)
    for bad in ("70000", "-1", "1-70000", "80-20", "http", "", "1.5", True, 65536):
        with pytest.raises(UsageError):
            parse_ports(bad)


def test_file_rules_lose_directory_only_rights(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    plan = plan_of(Ruleset().allow(f, "rwx"))
    (rule,) = plan.rules
    assert not rule.is_dir
    assert rule.access == compat.FS_FILE & compat.mask(compat.FS_RIGHTS, 7)
    assert short_access(rule.access, plan.fs, rule.is_dir) == "rwx"


def test_covered_child_rules_are_merged_away(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    rs = Ruleset().allow(tmp_path, "rw").allow(tmp_path / "a", "ro").allow(tmp_path / "a" / "b", "rox")
    plan = plan_of(rs)
    paths = [r.path for r in plan.rules]
    assert paths == [str(tmp_path), str(tmp_path / "a" / "b")]  # rox adds execute
    assert [(p, c) for p, _, c in plan.redundant] == [(str(tmp_path / "a"), str(tmp_path))]


def test_same_path_twice_is_one_rule_with_the_union(tmp_path):
    rs = Ruleset().allow(tmp_path, "ro").allow(str(tmp_path) + "/", ["write_file"])
    (rule,) = plan_of(rs).rules
    assert rule.access == compat.access_bits("ro") | compat.FS_RIGHTS["write_file"][0]
    assert len(rule.origins) == 2


def test_symlinked_path_is_ruled_on_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    (rule,) = plan_of(Ruleset().allow(tmp_path / "link", "ro")).rules
    assert rule.path == str(tmp_path / "real")


def test_symlink_under_allowed_dir_is_not_merged_away(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "a" / "link")
    rs = Ruleset().allow(tmp_path / "a", "rw").allow(tmp_path / "a" / "link", "ro")
    # The sandbox may write a/, so it could re-point a/link before the next
    # run: strict refuses the rule (naming the symlink), best-effort drops it.
    with pytest.raises(PathError, match="symlink .*a/link"):
        plan_of(rs)
    plan = plan_of(rs, compat_mode="best-effort")
    paths = sorted(r.path for r in plan.rules)
    assert paths == [str(tmp_path / "a")]
    assert any("re-point" in why for _, _, why in plan.skipped)
    # Through a symlink in a directory the sandbox cannot change: followed.
    rs = Ruleset().allow(tmp_path / "a" / "link", "ro")
    assert [r.path for r in plan_of(rs).rules] == [str(tmp_path / "elsewhere")]


def test_missing_required_path_is_an_error_optional_is_skipped(tmp_path):
    with pytest.raises(PathError, match="No such file"):
        plan_of(Ruleset().allow(tmp_path / "nope", "ro", origin="--ro x"))
    plan = plan_of(Ruleset().allow(tmp_path / "nope", "ro", required=False))
    assert plan.rules == [] and plan.skipped[0][0] == str(tmp_path / "nope")


def test_strict_refuses_explicit_tcp_on_abi3_best_effort_drops_it():
    rs = Ruleset().allow_tcp(443)
    with pytest.raises(UnsupportedFeature) as e:
        plan_of(rs, 3)
    assert e.value.needed_abi == 4
    plan = plan_of(rs, 3, compat_mode="best-effort")
    assert plan.net == 0 and plan.status == "partially"
    assert any("connect_tcp" in d for d in plan.dropped)


def test_udp_allowance_not_required_is_soft():
    rs = Ruleset().allow_port(53, "connect_send_udp", required=False)
    plan = plan_of(rs, 7)
    assert plan.status == "fully" and plan.ports == []
    assert any("connect_send_udp" in d for d in plan.unenforceable)


def test_exact_right_is_required():
    with pytest.raises(UnsupportedFeature, match="ioctl_dev"):
        plan_of(Ruleset().allow("/dev/null", ["ioctl_dev"]), 4)


def test_bool_access_is_a_usage_error():
    """True and False are ints to Python but name no rights: a one-line
    UsageError, not a TypeError from iterating a bool."""
    for access in (True, False):
        with pytest.raises(UsageError, match="bad access"):
            Ruleset().allow("/tmp", access)


def test_no_landlock_strict_raises_best_effort_reports_not_enforced():
    with pytest.raises(LandlockUnavailable) as e:
        plan_of(Ruleset(), -38)
    assert e.value.reason == "ENOSYS"
    plan = plan_of(Ruleset(), -95, compat_mode="best-effort")
    assert plan.status == "not" and plan.dropped


def test_unrestricted_fs_handles_no_filesystem_right():
    # A layer that handles no filesystem right allows rename/link across
    # directories and mount (pitfall 12); handling refer would deny mount.
    plan = plan_of(Ruleset(fs=False))
    assert plan.fs == 0 and plan.rules == []
    assert plan.net and plan.scoped


def test_everything_unrestricted_enforces_nothing():
    plan = plan_of(Ruleset(fs=False, net=False, scope=False))
    assert plan.status == "not" and not plan.enforces_anything
    assert plan.ruleset_fd() == -1


def test_port_ranges_expand_and_merge():
    rs = Ruleset().allow_tcp("80-82").allow_tcp(81, bind=True, connect=False)
    plan = plan_of(rs)
    b, c = compat.NET_RIGHTS["bind_tcp"][0], compat.NET_RIGHTS["connect_tcp"][0]
    assert [(p, bits) for p, bits, _ in plan.ports] == [(80, c), (81, b | c), (82, c)]


def test_allows_answers_from_the_rules(tmp_path):
    (tmp_path / "a").mkdir()
    plan = plan_of(Ruleset().allow(tmp_path / "a", "ro"))
    rf, wf = compat.FS_RIGHTS["read_file"][0], compat.FS_RIGHTS["write_file"][0]
    assert plan.allows(str(tmp_path / "a" / "x"), rf | wf) == rf
    assert plan.allows(str(tmp_path / "b"), rf) == 0


def test_bad_mode_and_abi():
    with pytest.raises(UsageError):
        Ruleset().resolve(compat_mode="lenient", kernel_abi=7)
    with pytest.raises(UsageError):
        Ruleset().resolve(abi=11, kernel_abi=7)


def test_kernel_ruleset_builds_for_real(landlock):
    plan = Ruleset().allow("/usr", "rox").allow_tcp(443).resolve()
    fd = plan.ruleset_fd()
    assert fd >= 3 and plan.ruleset_fd() == fd  # built once
    plan.close()


def test_hidden_path_is_carved_before_binding_not_rebuilt(tmp_path, landlock):
    """A rule above a hidden path is not bound while the paths are
    resolved (a kernel ruleset cannot lose a rule): the ruleset made then
    is completed with the carved rules, never made again with every path
    opened a second time, and still denies the hidden path."""
    import subprocess
    import sys

    import landwrap

    d = tmp_path / "d"
    (d / "secret").mkdir(parents=True)
    (d / "secret" / "k").write_text("k")
    (d / "ok").write_text("ok")
    rs = Ruleset(net=False, scope=False).allow(d, "ro").hide(d / "secret")
    for p in sorted({sys.prefix, sys.base_prefix, "/usr", "/etc",
                     os.path.dirname(os.path.realpath(sys.executable))}):
        rs.allow(p, "rox")
    plan = rs.resolve()
    fd = plan._fd
    # only the carved rules are left to add: d (read_dir) and d/ok
    assert fd >= 0 and plan._todo == {str(d), str(d / "ok")}
    assert plan.ruleset_fd() == fd and plan._todo == {str(d), str(d / "ok")}
    code = ("import sys\nfor p in sys.argv[1:]:\n"
            " try: open(p).read(); print('read')\n except OSError as e: print(e.errno)")
    r = landwrap.run([sys.executable, "-I", "-S", "-c", code, str(d / "ok"),
                      str(d / "secret" / "k")], ruleset=plan, capture_output=True, text=True)
    assert r.stdout.split() == ["read", "13"], r.stderr
    assert subprocess.run(["cat", str(d / "secret" / "k")], capture_output=True).stdout == b"k"
    plan.close()


def test_a_rule_beneath_a_carved_directory_keeps_its_own_rights(tmp_path):
    # (found by the profile fuzzer) carving home/ around the hidden path
    # grants home/docs what home/ had: the rule on docs itself must still
    # add its own execute right, in the plan as in the kernel
    home = tmp_path / "home"
    (home / "docs").mkdir(parents=True)
    (home / "secret").mkdir()
    rs = (Ruleset().allow(home, "rw").allow(home / "docs", "rox")
          .hide(home / "secret"))
    plan = plan_of(rs)
    bits = compat.access_bits("rox")
    assert plan.allows(str(home / "docs" / "x"), bits) == bits
    # (names stay listable beneath home/, see Ruleset.hide; contents do not)
    assert plan.allows(str(home / "secret" / "x"), bits & compat.FS_FILE) == 0
    plan.close()

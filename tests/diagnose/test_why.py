"""`landwrap why`: which rule (file:line) grants an access, or what would.

The answers are computed on resolved plans; most tests resolve for a fixed
kernel ABI so that they hold on any machine, and the CLI tests run the real
command (exit 0 allowed, 1 denied, 125 errors)."""

import os

import pytest

from conftest import lw
from landwrap.profiles import lookup, profile
from landwrap.diagnose import why

PROFILE = """\
# a profile for the why tests
description = "why test"
extends = ["default"]

[filesystem]
ro = [
  "{work}/data",
]
rw = ["{work}/out/log.txt"]

[[filesystem.rule]]
path = "{work}/out"
access = ["make_reg"]

[network]
connect_tcp = [443]
"""


@pytest.fixture
def prof(tmp_path):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "file.txt").write_text("x")
    (work / "out").mkdir()
    (work / "out" / "log.txt").write_text("")
    p = tmp_path / "p.toml"
    p.write_text(PROFILE.format(work=work))
    return p, work


def ask(p, target, access=None, abi=7):
    plan = profile.load([str(p)]).ruleset.resolve(
        kernel_abi=abi, compat_mode="best-effort" if abi < 7 else None)
    return why.why([str(p)], str(target), access, plan=plan)


def test_read_granted_by_file_and_line(prof):
    p, work = prof
    a = ask(p, work / "data" / "file.txt")
    assert a.allowed
    (c,) = a.checks
    assert c.right == "read_file" and c.allowed
    assert c.grants == [(f"ro {work}/data", f"{p}:7: filesystem.ro")]
    text = why.format_answer(a)
    assert text.startswith(f"{work}/data/file.txt: allowed\n")
    assert f"granted by: ro {work}/data    # {p}:7: filesystem.ro" in text


def test_write_denied_says_what_covers_it_and_what_would_allow_it(prof):
    p, work = prof
    a = ask(p, work / "data" / "file.txt", "write")
    assert not a.allowed
    assert a.checks[0].right == "write_file"
    assert a.checks[0].grants == [(f"ro {work}/data", f"{p}:7: filesystem.ro")]
    assert a.suggestion == f"--rw {work}/data/file.txt"
    assert a.profile_line == f'[filesystem] rw = ["{work}/data/file.txt"]'
    assert "DENIED" in why.format_answer(a)


def test_exact_rule_and_parent_directory_checks(prof):
    p, work = prof
    a = ask(p, work / "out" / "new.txt", "create")
    assert a.allowed
    (c,) = a.checks
    assert (c.right, c.where) == ("make_reg", str(work / "out"))
    assert c.grants[0][1] == f"{p}:12: filesystem.rule[0]"
    # creating is allowed there, reading what is there is not
    assert not ask(p, work / "out" / "new.txt", "read").allowed
    # the rw file rule
    a = ask(p, work / "out" / "log.txt", "read,write")
    assert a.allowed and [c.right for c in a.checks] == ["read_file", "write_file"]
    assert a.checks[1].grants[0][1] == f"{p}:9: filesystem.rw"
    # removing is checked on the directory; suggest the exact right
    a = ask(p, work / "data" / "file.txt", "remove")
    assert not a.allowed
    assert (a.checks[0].right, a.checks[0].where) == ("remove_file", str(work / "data"))
    assert a.suggestion == f"--rw {work}/data"
    assert a.profile_line == (f'[[filesystem.rule]]\npath = "{work}/data"\n'
                              'access = ["remove_file"]')
    # a directory's default access is listing it
    a = ask(p, work / "data")
    assert a.allowed and a.checks[0].right == "read_dir"


def test_rules_inherited_from_the_base_profile(prof):
    p, _ = prof
    a = ask(p, "/usr/bin/cat", "read")
    assert a.allowed
    origin = a.checks[0].grants[0][1]
    base = lookup.find("system-base")  # default extends it
    assert origin.startswith(base) and ": filesystem.rox" in origin
    line = int(origin.split(":")[1])
    assert "rox" in open(base).read().split("\n")[line - 1]
    a = ask(p, "/etc/hostname", "write")
    assert not a.allowed and a.suggestion == "--rw /etc/hostname"


def test_ports(prof):
    p, _ = prof
    a = ask(p, "tcp:443")
    assert a.allowed and a.checks[0].grants == [("connect_tcp 443",
                                                 f"{p}:16: network.connect_tcp")]
    a = ask(p, "tcp:80")
    assert not a.allowed
    assert a.suggestion == "--connect-tcp 80"
    assert a.profile_line == "[network] connect_tcp = [80]"
    a = ask(p, "tcp:443", "bind")
    assert not a.allowed and a.suggestion == "--bind-tcp 443"


def test_rights_the_kernel_or_profile_do_not_restrict(prof, tmp_path):
    p, work = prof
    # truncate needs ABI 3: on ABI 2 it is not restricted, hence allowed
    a = ask(p, work / "data" / "file.txt", "truncate", abi=2)
    assert a.allowed
    assert "Landlock ABI 2 cannot restrict truncate (needs ABI 3, Linux 6.2)" in \
        a.checks[0].why
    assert ask(p, work / "data" / "file.txt", "truncate", abi=7).allowed is False
    free = tmp_path / "free.toml"
    free.write_text("[filesystem]\nunrestricted = true\n")
    a = ask(free, "/root/anything", "write")
    assert a.allowed and "not restricted" in a.checks[0].why


def test_bad_questions(prof):
    p, work = prof
    from landwrap.engine.errors import UsageError

    with pytest.raises(UsageError):
        ask(p, work, "fly")
    with pytest.raises(UsageError):
        ask(p, "tcp:70000")
    with pytest.raises(UsageError):
        ask(p, "tcp:80-90")


# the command ---------------------------------------------------------------

def test_cli_exit_codes(prof, landlock):
    p, work = prof
    r = lw("why", "-p", p, work / "data" / "file.txt")
    assert r.returncode == 0, r.stderr
    assert f"{p}:7: filesystem.ro" in r.stdout
    r = lw("why", "-p", p, "--access", "write", work / "data" / "file.txt")
    assert r.returncode == 1
    assert f"to allow it: --rw {work}/data/file.txt" in r.stdout
    r = lw("why", "-p", p, "tcp:8080")
    assert r.returncode == 1 and "--connect-tcp 8080" in r.stdout
    for args in (["-p", p, "--access", "fly", work], ["-p", os.path.join(work, "nope.toml"),
                                                      "/etc"], ["-p", p], ["-p", p, "tcp:x"]):
        r = lw("why", *map(str, args))
        assert r.returncode == 125, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr


def test_cli_answer_matches_enforcement(prof, landlock):
    """What why says is what a sandboxed process experiences."""
    p, work = prof
    target = work / "data" / "file.txt"
    assert lw("why", "-p", p, target).returncode == 0
    assert lw("run", "-q", "-p", p, "--", "cat", target).returncode == 0
    assert lw("why", "-p", p, "--access", "write", target).returncode == 1
    r = lw("run", "-q", "-p", p, "--", "sh", "-c", f"echo y >> {target}")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert target.read_text() == "x"

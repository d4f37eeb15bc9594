"""Denial records: parsing captured kernel records (pure), and
`landwrap run --log-denials` end to end as root on the real kernel, with the
audit switch put back the way it was found."""

import errno
import os
import shutil
import subprocess
import sys

import pytest

from conftest import KERNEL_ABI, audit_enabled, lw, needs_audit
from landwrap.diagnose import audit, denials
from landwrap.diagnose.audit import netlink

# Records as this machine's kernel (Linux 6.18, Landlock ABI 7) sent them
# over the audit read-log multicast group (the netlink payloads).
SAMPLE = [
    (1423, 'audit(1795630066.112:2): domain=1b373f58c blockers=fs.read_file '
           'path="/tmp/aw/secret" dev="vda" ino=2204377'),
    (1424, 'audit(1795630066.112:2): domain=1b373f58c status=allocated mode=enforcing '
           'pid=8032 uid=0 exe="/root/.pyenv/versions/3.11.7/bin/python3.11" comm="python"'),
    (1300, 'audit(1795630066.112:2): arch=c000003e syscall=257 success=no exit=-13 '
           'a0=ffffff9c a1=7ffe7fdd5adb a2=0 a3=0 items=0 ppid=8032 pid=8033 '
           'auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 '
           'tty=(none) ses=4294967295 comm="cat" exe="/usr/bin/cat" key=(null)'),
    (1327, 'audit(1795630066.112:2): proctitle=636174002F746D702F61772F736563726574'),
    (1320, 'audit(1795630066.112:2): '),
    (1423, 'audit(1795630066.112:3): domain=1b373f58c blockers=fs.make_reg '
           'path="/tmp/aw" dev="vda" ino=2204376'),
    (1300, 'audit(1795630066.112:3): arch=c000003e syscall=257 success=no exit=-13 '
           'ppid=8029 pid=8032 comm="sh" exe="/usr/bin/dash" key=(null)'),
    (1423, 'audit(1795630077.272:9): domain=1b373f58c blockers=net.connect_tcp '
           'daddr=127.0.0.1 dest=4444'),
    (1423, 'audit(1795630077.272:10): domain=1b373f58c blockers=net.connect_tcp '
           'daddr=::1 dest=4445'),
    (1423, 'audit(1795630077.272:11): domain=1b373f58c blockers=net.bind_tcp '
           'saddr=127.0.0.1 src=4446'),
    (1423, 'audit(1795630077.272:12): domain=1b373f58c blockers=scope.signal '
           'opid=1 ocomm="process_api"'),
    (1423, 'audit(1795630077.272:13): domain=1b373f58c blockers=fs.remove_file,fs.make_reg '
           'path="/tmp/aw" dev="vda" ino=2204376'),
    # another sandbox on the same machine: never reported as ours
    (1423, 'audit(1795630077.300:14): domain=2aaaaaaaa blockers=fs.read_file '
           'path="/etc/other" dev="vda" ino=9'),
    (1424, 'audit(1795630077.300:14): domain=2aaaaaaaa status=allocated mode=enforcing '
           'pid=999 uid=0 exe="/usr/bin/other" comm="other"'),
    (1424, 'audit(1795630066.176:16): domain=1b373f58c status=deallocated denials=9'),
]


def records():
    return [audit.parse_message(t, p) for t, p in SAMPLE]


# parsing -----------------------------------------------------------------

def test_parse_message_fields_and_serial():
    r = audit.parse_message(*SAMPLE[0])
    assert (r.type, r.serial, r.stamp) == (1423, 2, "1795630066.112")
    assert r.fields == {"domain": "1b373f58c", "blockers": "fs.read_file",
                        "path": "/tmp/aw/secret", "dev": "vda", "ino": "2204377"}
    # payloads come as bytes, sometimes NUL-terminated
    r = audit.parse_message(1424, SAMPLE[1][1].encode() + b"\0")
    assert r.fields["exe"] == "/root/.pyenv/versions/3.11.7/bin/python3.11"
    assert r.fields["pid"] == "8032"
    assert audit.parse_message(1423, "garbage") is None
    assert audit.parse_message(1423, "audit(1.2:x): a=b") is None


def test_untrusted_strings_are_hex_decoded():
    # the kernel hex-encodes paths with spaces, quotes or control characters
    path = "/tmp/a dir/x\"y"
    r = audit.parse_message(1423, "audit(1.0:5): domain=1 blockers=fs.read_file path="
                            + path.encode().hex().upper() + ' dev="vda" ino=3')
    assert r.fields["path"] == path
    assert r.fields["dev"] == "vda"
    # but not other fields, nor the (null) placeholder
    r = audit.parse_message(1300, "audit(1.0:5): a0=ffffff9c exe=(null) key=(null)")
    assert r.fields == {"a0": "ffffff9c", "exe": "(null)", "key": "(null)"}


def test_the_fast_field_split_agrees_with_the_scan():
    """parse_fields splits at spaces (kernel bodies never have one inside
    a double-quoted value) and falls back to the character scan otherwise:
    the same fields either way, on real bodies and on shuffled junk."""
    import random

    from landwrap.diagnose.audit import records

    bodies = [p.partition("): ")[2] for _, p in SAMPLE]
    bodies += ['path="a b" dev="vda"', "msg='op=x res=1' pid=3", 'a="x"y=1 b=2',
               'comm="', 'exe=6869 path=(null) junk word=1', 'k= v=""', '  a=1  b="2"  ']
    rnd = random.Random(14)
    parts = ["a", "=", '"', "'", " ", "path", "exe", "=6869", "x=1", "(null)", '"a b"']
    bodies += ["".join(rnd.choice(parts) for _ in range(rnd.randint(0, 14)))
               for _ in range(20000)]
    for b in bodies:
        assert records.parse_fields(b) == records._parse_fields_scan(b), b
    assert records.parse_fields('path="a b" dev="vda"') == {"path": "a b", "dev": "vda"}


def test_parse_log_lines():
    r = audit.parse_line('type=LANDLOCK_ACCESS msg=audit(1729738800.221:34): domain=1a6fdc679 '
                         'blockers=fs.write_file path="/etc/passwd" dev="vda2" ino=143821')
    assert (r.type, r.serial, r.fields["path"]) == (1423, 34, "/etc/passwd")
    r = audit.parse_line('audit: type=1424 audit(1729738800.261:35): domain=1a6fdc679 '
                         'status=deallocated denials=2')
    assert (r.type, r.fields["denials"]) == (1424, "2")
    assert audit.parse_line("hello") is None


def analyse(recs, own_pids=(), parent_pid=None):
    """*recs* tallied as audit.Session tallies them (Tally, watch, add)."""
    t = audit.Tally(parent_pid)
    for pid in own_pids:
        t.watch(pid)
    for r in recs:
        t.add(r)
    return t.result()


def test_analyse_attributes_only_our_domain():
    a = analyse(records(), own_pids=[8032])
    assert list(a.domains) == ["1b373f58c"]
    assert a.ignored == 1  # the other sandbox's denial
    assert all(d.domain == "1b373f58c" for d in a.denials)
    assert len(a.denials) == 7
    first = a.denials[0]
    assert first.rights == ("read_file",) and first.path == "/tmp/aw/secret"
    # the denied program comes from the event's SYSCALL record: cat, not the
    # domain's creator
    assert (first.exe, first.comm, first.pid) == ("/usr/bin/cat", "cat", "8033")
    net = [d for d in a.denials if d.kinds == {"net"}]
    assert [(d.rights, d.addr, d.port) for d in net] == [
        (("connect_tcp",), "127.0.0.1", 4444), (("connect_tcp",), "::1", 4445),
        (("bind_tcp",), "127.0.0.1", 4446)]
    sig = next(d for d in a.denials if d.kinds == {"scope"})
    assert (sig.opid, sig.ocomm) == ("1", "process_api")
    assert a.kernel_count == 9


def test_analyse_without_our_pid_uses_the_launchers_child():
    # the launcher's child failed to exec, so its pid never came back: the
    # SYSCALL record's ppid (the launcher) identifies it
    assert analyse(records(), own_pids=[]).denials == []
    a = analyse(records(), own_pids=[], parent_pid=8029)
    assert list(a.domains) == ["1b373f58c"]
    assert analyse(records(), own_pids=[999]).domains.keys() == {"2aaaaaaaa"}


def test_suggestions_and_report():
    a = analyse(records(), own_pids=[8032])
    d = {(x.rights, x.path or x.port): x for x in a.denials}
    assert denials.suggest(d[(("read_file",), "/tmp/aw/secret")]) == "--ro /tmp/aw/secret"
    assert denials.suggest(d[(("make_reg",), "/tmp/aw")]) == "--rw /tmp/aw"
    assert denials.suggest(d[(("connect_tcp",), 4444)]) == "--connect-tcp 4444"
    assert denials.suggest(d[(("bind_tcp",), 4446)]) == "--bind-tcp 4446"
    text = denials.format_report(a)
    assert text.startswith("landwrap: the sandbox denied 7 accesses:")
    assert "read_file /tmp/aw/secret  by /usr/bin/cat  -> allow with --ro /tmp/aw/secret" in text
    assert "make_reg in /tmp/aw  by sh (/usr/bin/dash)" in text
    assert "connect_tcp [::1]:4445" in text
    assert "signal to pid 1 (process_api)" in text
    assert "/etc/other" not in text
    assert "the kernel counted 9 denials; 2 were not logged" in text


def test_report_counts_duplicates_and_exec_suggestion():
    recs = records()[:3] + [audit.parse_message(1423, SAMPLE[0][1].replace(":2)", ":20)")),
                            audit.parse_message(1300, SAMPLE[2][1].replace(":2)", ":20)"))]
    a = analyse(recs, own_pids=[8032])
    assert "2x read_file /tmp/aw/secret" in denials.format_report(a)
    ex = audit.Denial("1", ("fs.execute", "fs.read_file"), {"path": "/opt/tool/bin/run"})
    assert denials.suggest(ex) == "--rox /opt/tool/bin"
    ex = audit.Denial("1", ("fs.execute",), {"path": "/srv/app/run.sh"})
    assert denials.suggest(ex) == "--rox /srv/app/run.sh"
    sp = audit.Denial("1", ("fs.read_file",), {"path": "/tmp/a b"})
    assert denials.suggest(sp) == "--ro '/tmp/a b'"
    assert denials.format_report(audit.Analysis()) == \
        "landwrap: --log-denials: the sandbox denied nothing\n"


def test_unavailable_reasons_are_one_actionable_line():
    e = netlink._explain(OSError(errno.EPROTONOSUPPORT, "x"), "opening", "CAP_AUDIT_READ")
    assert "audit=0" in e.reason and "audit=1" in e.fix
    e = netlink._explain(OSError(errno.ECONNREFUSED, "x"), "reading", "CAP_AUDIT_READ")
    assert "namespace" in e.reason
    e = netlink._explain(OSError(errno.EPERM, "x"), "reading audit records", "CAP_AUDIT_READ")
    assert "CAP_AUDIT_READ" in e.reason and "\n" not in str(e)


# the real kernel -----------------------------------------------------------



@pytest.fixture
def secret(tmp_path):
    s = tmp_path / "secret"
    s.write_text("top secret\n")
    os.chmod(s, 0o600)
    return s


@needs_audit
def test_log_denials_names_path_program_and_option(secret):
    before = audit_enabled()
    r = lw("run", "-q", "--log-denials", "--", "cat", secret)
    assert r.returncode == 1  # cat's own status
    assert "top secret" not in r.stdout
    assert "Permission denied" in r.stderr
    line = next(x for x in r.stderr.splitlines() if str(secret) in x and "read_file" in x)
    assert "by /usr/bin/cat" in line
    assert f"--ro {secret}" in line
    assert audit_enabled() == before


@needs_audit
def test_log_denials_covers_children_and_keeps_the_exit_status(secret, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = lw("run", "-q", "--log-denials", "--", "sh", "-c",
           f"cat {secret}; echo x > {out}/f; exit 7")
    assert r.returncode == 7
    # cat is a child of the exec'd shell: logged thanks to LOG_NEW_EXEC_ON
    assert f"read_file {secret}  by /usr/bin/cat" in r.stderr
    assert f"make_reg in {out}  by sh (/usr/bin/dash)" in r.stderr or \
        f"make_reg in {out}  by " in r.stderr
    assert f"--rw {out}" in r.stderr


@needs_audit
def test_denials_just_before_exit_are_reported(secret, tmp_path):
    """The denied calls are the command's last before it exits: their
    records reach the launcher after it has reaped the command.  The
    end-of-run marker (a record landwrap sends and waits for) comes back
    after them, so none is lost -- with no timeout to wait out."""
    other = tmp_path / "other"
    other.write_text("x")
    code = ("import os, sys\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n        os.open(p, os.O_RDONLY)\n"
            "    except OSError:\n        pass\n"
            "os._exit(3)\n")
    before = audit_enabled()
    for _ in range(5):
        r = lw("run", "-q", "--log-denials", "--", "/usr/bin/python3", "-I", "-S", "-c", code,
               secret, other)
        assert r.returncode == 3, r.stderr
        assert "denied 2 accesses" in r.stderr, r.stderr
        for p in (secret, other):
            assert f"read_file {p}  by python3 " in r.stderr, r.stderr
    assert audit_enabled() == before


@needs_audit
def test_log_denials_network_and_allowed_run(tmp_path):
    code = ("import socket\n"
            "s = socket.socket()\n"
            "try:\n    s.connect(('127.0.0.1', 9))\n"
            "except OSError as e:\n    print(e.errno)\n")
    r = lw("run", "-q", "--log-denials", "--", "/usr/bin/python3", "-I", "-c", code)
    assert r.returncode == 0
    assert r.stdout.strip() == str(errno.EACCES)
    assert "connect_tcp 127.0.0.1:9" in r.stderr and "--connect-tcp 9" in r.stderr
    r = lw("run", "-q", "--log-denials", "--", "true")
    assert r.returncode == 0
    assert "the sandbox denied nothing" in r.stderr


@needs_audit
def test_log_denials_when_the_command_cannot_start(tmp_path):
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\necho ran\n")
    prog.chmod(0o755)
    r = lw("run", "-q", "--log-denials", "--", prog)
    assert r.returncode == 126
    assert "ran" not in r.stdout
    assert f"execute,read_file {prog}  by landwrap (starting the command)" in r.stderr
    assert f"--rox {prog}" in r.stderr


@needs_audit
def test_concurrent_sandboxes_get_only_their_own_denials(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    before = audit_enabled()
    cmd = [sys.executable, "-m", "landwrap", "run", "-q", "--log-denials", "--", "sh", "-c"]
    procs = [subprocess.Popen(cmd + [f"cat {p}; sleep 0.3; cat {p}; sleep 0.3; cat {p}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in (a, b)]
    results = [p.communicate(timeout=60) for p in procs]
    (_, err_a), (_, err_b) = results
    assert f"3x read_file {a}" in err_a and str(b) not in err_a
    assert f"3x read_file {b}" in err_b and str(a) not in err_b
    assert audit_enabled() == before


@needs_audit
def test_audit_switch_is_restored_after_a_session():
    before = audit_enabled()
    with audit.Session() as s:
        assert audit_enabled() in (1, 2)
        assert s.was_enabled == before
    assert audit_enabled() == before


@needs_audit
def test_session_reader_thread_does_not_steal_sigchld():
    # The launcher waits for its child with sigwaitinfo() in the main thread.
    # A reader thread that left SIGCHLD unblocked would receive it instead
    # (and drop it), hanging the run: the timeout turns that into a failure.
    code = (
        "import os\n"
        "from landwrap.diagnose import audit, denials\n"
        "from landwrap.engine import launcher\n"
        "from landwrap.profiles import profile\n"
        "plan = denials.resolve_logged(profile.load(['default']).ruleset)\n"
        "with audit.Session() as s:\n"
        "    codes = [launcher.run(plan, ['sh', '-c', 'exit %d' % (i % 5)], dict(os.environ),\n"
        "                          on_start=s.watch) for i in range(20)]\n"
        "    r = s.finish()\n"
        "print(codes, len(r.denials))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([i % 5 for i in range(20)]) + " 0"


def test_without_audit_capabilities_the_command_still_runs(secret):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to drop the audit capabilities")
    if KERNEL_ABI < 7:
        pytest.skip("needs denial logging (Landlock ABI 7)")
    r = subprocess.run(["setpriv", "--bounding-set", "-audit_read,-audit_control,-audit_write",
                        sys.executable, "-m", "landwrap", "run", "-q", "--log-denials", "--",
                        "sh", "-c", f"cat {secret}; exit 3"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3
    lines = [x for x in r.stderr.splitlines() if x.startswith("landwrap:")]
    if not os.access("/usr/bin/strace", os.X_OK):
        assert lines == ["landwrap: --log-denials: cannot read the denial records: reading "
                         "audit records needs CAP_AUDIT_READ, which this process lacks; run "
                         "landwrap with CAP_AUDIT_READ and CAP_AUDIT_CONTROL, or install strace"]
        return
    # issue 10: strace stands in for the records
    assert lines[0] == ("landwrap: --log-denials: cannot read the denial records (reading "
                        "audit records needs CAP_AUDIT_READ, which this process lacks); "
                        "tracing the command with strace instead"), lines
    assert f"read_file {secret}" in r.stderr, r.stderr


def test_log_denials_needs_abi_7(landlock):
    marker = "/nonexistent-landwrap-marker"
    r = lw("run", "-q", "--abi", "6", "--log-denials", "--", "touch", marker)
    assert r.returncode == 125
    assert "--log-denials needs denial logging (ABI 7, Linux 6.15)" in r.stderr
    assert "Landlock ABI 6 (capped with --abi 6) lacks it" in r.stderr
    assert "Traceback" not in r.stderr
    r = lw("run", "--best-effort", "--abi", "6", "--log-denials", "--", "sh", "-c", "exit 5")
    assert r.returncode == 5
    assert "cannot log denials" in r.stderr


def test_log_denials_is_a_run_option():
    from landwrap.cli import options

    opts = options.parse_run(["--log-denials", "--", "true"])
    assert opts["log_denials"] is True and opts["command"] == ["true"]
    assert options.parse_run(["true"])["log_denials"] is False

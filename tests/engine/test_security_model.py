"""The security model table (compat.SECURITY_MODEL): `landwrap status`
renders it for the running kernel, and the README and landwrap(1) list
every row, so the three cannot drift apart."""

import json
import os
import re

from conftest import lw
from landwrap.engine import compat, status as kernel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _plain(text):
    """Text with roff escapes and markdown emphasis removed."""
    return re.sub(r"\\f[BIRP]|\\", "", text).replace("**", "").replace("`", "")


def test_readme_and_man_page_list_every_row():
    readme = _plain(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read())
    man = _plain(open(os.path.join(ROOT, "man", "landwrap.1"), encoding="utf-8").read())
    for op, mech, abi in compat.SECURITY_MODEL:
        assert op in readme, f"README lacks security-model row {op!r}"
        assert op in man, f"landwrap(1) lacks security-model row {op!r}"
        if mech == "landlock":
            where = f"Landlock ABI {abi} (Linux {compat.KERNEL[abi]})"
            row = next(line for line in readme.splitlines() if line.startswith(f"| {op} |"))
            assert where in row, row


def test_rows_follow_the_abi():
    by_op = {r["operation"]: r for r in kernel.security_model(3)}
    assert by_op["truncate"]["covered"]
    assert not by_op["TCP bind and connect"]["covered"]
    assert "not on this kernel" in by_op["TCP bind and connect"]["by"]
    assert not by_op["code run without execve (LD_PRELOAD, ld.so PROG, mmap PROT_EXEC)"]["covered"]
    by_op = {r["operation"]: r for r in kernel.security_model(compat.LATEST_ABI)}
    assert by_op["UDP bind, connect and send"]["covered"]


def test_status_prints_the_table_and_the_lsm_stack():
    r = lw("status")
    assert r.returncode == 0, r.stderr
    assert "Security model here" in r.stdout and "Active LSMs:" in r.stdout
    for op, _, _ in compat.SECURITY_MODEL:
        assert op in r.stdout
    r = lw("status", "--json", "--abi", "3")
    st = json.loads(r.stdout)
    rows = {x["operation"]: x["covered"] for x in st["security"]}
    assert rows["TCP bind and connect"] is False and rows["truncate"] is True
    assert "lsm" in st

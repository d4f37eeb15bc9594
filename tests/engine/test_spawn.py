"""engine/spawn.py and the C child: what the fast paths of a sandboxed spawn
keep -- the environment inherited as subprocess inherits it, the capability
drop with a bounding set read once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import landwrap

_CAPS_CHILD = r"""
import ctypes, sys
import landwrap
from landwrap.engine import companion
libc = ctypes.CDLL(None, use_errno=True)
PR_CAPBSET_DROP = 24
# the first spawn reads the bounding set (all of root's)
r = landwrap.run(["true"], profile="default")
assert r.returncode == 0 and companion.bounding() != 0
# then this process empties it and gives up CAP_SETPCAP: the bounding set
# landwrap read is now a superset, and dropping needs a capability gone
for cap in range(companion.cap_last() + 1):
    assert libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0
# (and locks SECBIT_NOROOT as the child would: setting it needs CAP_SETPCAP)
assert libc.prctl(28, 1 | 2 | 32, 0, 0, 0) == 0  # PR_SET_SECUREBITS
class Hdr(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
class Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]
data = (Data * 2)()
assert libc.capget(ctypes.byref(Hdr(0x20080522, 0)), data) == 0
for d in data:  # no CAP_SETPCAP (8) any more
    d.effective &= ~(1 << 8)
    d.permitted &= ~(1 << 8)
assert libc.capset(ctypes.byref(Hdr(0x20080522, 0)), data) == 0
r = landwrap.run(["grep", "-E", "^Cap(Bnd|Eff|Prm)", "/proc/self/status"],
                 profile="default", capture_output=True, text=True)
print(r.returncode, r.stdout, r.stderr, file=sys.stderr)
sys.exit(r.returncode)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="the capability drop is root's")
def test_capability_drop_with_a_shrunken_bounding_set() -> None:
    """The child drops what the bounding set held when landwrap read it;
    a capability gone since is recognised as gone (not a failure), even
    without CAP_SETPCAP to drop it with."""
    r = subprocess.run([sys.executable, "-c", _CAPS_CHILD], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "CapBnd:\t0000000000000000" in r.stderr
    assert "CapEff:\t0000000000000000" in r.stderr


def test_inherited_environment_is_the_current_one() -> None:
    """env=None: the child gets this process's environment as it is now
    (os.environ writes through to the C environment), as with subprocess."""
    key = "LW_SPAWN_TEST_ENV"
    os.environ[key] = "first"
    try:
        rs = landwrap.Ruleset.from_profile("default")
        out = landwrap.run(["sh", "-c", f'echo "${key}"'], ruleset=rs,
                           capture_output=True, text=True).stdout
        assert out == "first\n"
        os.environ[key] = "second"
        out = landwrap.run(["sh", "-c", f'echo "${key}"'], ruleset=rs,
                           capture_output=True, text=True).stdout
        assert out == "second\n"
        del os.environ[key]
        mine = landwrap.run(["env"], ruleset=rs, capture_output=True, text=True).stdout
        theirs = subprocess.run(["env"], capture_output=True, text=True).stdout
        assert key not in mine and sorted(mine.splitlines()) == sorted(theirs.splitlines())
    finally:
        os.environ.pop(key, None)


def test_given_environment_replaces_it() -> None:
    rs = landwrap.Ruleset.from_profile("default")
    out = landwrap.run(["env"], ruleset=rs, env={"ONLY": "this"}, capture_output=True,
                       text=True).stdout
    assert out == "ONLY=this\n"

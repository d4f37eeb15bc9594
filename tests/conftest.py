"""Shared test helpers.

Enforcement tests run real sandboxed processes on the real kernel.  With
LANDWRAP_REQUIRE_LANDLOCK=1 (as .ci/run sets) a kernel without Landlock
fails the run instead of skipping those tests.
"""

import os
import subprocess
import sys

import pytest

from landwrap import _sys

KERNEL_ABI = _sys.kernel_abi()
REQUIRE = os.environ.get("LANDWRAP_REQUIRE_LANDLOCK") == "1"

#: What a sandboxed Python interpreter needs: the venv and the base install.
PY_ROX = []
for _p in sorted({sys.prefix, sys.base_prefix,
                  os.path.dirname(os.path.realpath(sys.executable))}):
    PY_ROX += ["--rox", _p]


def _audit_reason():
    """Why the kernel's denial records cannot be read here, or None."""
    if os.geteuid() != 0:
        return "not root: reading audit records needs CAP_AUDIT_READ/CAP_AUDIT_CONTROL"
    if KERNEL_ABI < 7:
        return f"kernel Landlock ABI {KERNEL_ABI} has no denial logging (needs ABI 7)"
    from landwrap import audit

    why = audit.availability()
    return f"audit netlink unavailable: {why}" if why else None


needs_audit = pytest.mark.skipif(_audit_reason() is not None, reason=_audit_reason() or "")


def pytest_sessionstart(session):
    if REQUIRE and KERNEL_ABI < 0:
        pytest.exit(f"LANDWRAP_REQUIRE_LANDLOCK=1 but Landlock is unavailable "
                    f"(errno {-KERNEL_ABI})", returncode=1)


@pytest.fixture
def landlock():
    """Marks a test that needs the kernel's Landlock."""
    if KERNEL_ABI < 0:
        pytest.skip("Landlock unavailable (set LANDWRAP_REQUIRE_LANDLOCK=1 to fail instead)")
    return KERNEL_ABI


def lw(*args, env=None, input=None, timeout=60, **kw):
    """Run the landwrap CLI as a real process."""
    return subprocess.run([sys.executable, "-m", "landwrap", *map(str, args)],
                          capture_output=True, text=True, env=env, input=input,
                          timeout=timeout, **kw)


def lw_py(code, *args, **kw):
    """Run Python *code* inside `landwrap run` with *args* as run options."""
    return lw("run", "-q", *PY_ROX, *args, "--", sys.executable, "-I", "-S", "-c", code, **kw)


def alive(pid):
    """Whether process *pid* exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

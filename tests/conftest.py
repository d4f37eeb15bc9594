"""Shared test helpers.

Enforcement tests run real sandboxed processes on the real kernel.  With
LANDWRAP_REQUIRE_LANDLOCK=1 (as .ci/run sets) a kernel without Landlock
fails the run instead of skipping those tests.  Tests that run a program
which is not installed skip, naming its Debian package; with
LANDWRAP_REQUIRE_APPS=1 (as .ci/run sets after installing them) they fail.

Run from a checkout, the tests test the checkout when its extension is
built (an editable install) and the installed landwrap otherwise.
"""

import atexit
import glob
import importlib.machinery
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _test_the_installed_landwrap():
    """Let a regular (non-editable) install be tested from its checkout.

    `python -m pytest` puts the working directory first on sys.path, and so
    do `python -m landwrap` and `python -c` in the tests' subprocesses: in a
    checkout, the source tree's package shadows the installed one, and has
    no extension unless it was installed editable.  Then drop the checkout
    from sys.path (and see pytest_sessionstart).
    """
    if not os.path.isfile(os.path.join(ROOT, "setup.py")) or \
            glob.glob(os.path.join(ROOT, "landwrap", "_lwcffi*.so")):
        return
    root = os.path.realpath(ROOT)
    if root not in (os.path.realpath(p or os.curdir) for p in sys.path):
        return
    path = [p for p in sys.path if os.path.realpath(p or os.curdir) != root]
    if importlib.machinery.PathFinder.find_spec("landwrap", path) is None:
        raise SystemExit(f"{ROOT}: landwrap is not installed and this source tree's extension "
                         f"is not built: run `pip install -e '.[test]'` here")
    sys.path[:] = path


_test_the_installed_landwrap()

from landwrap.engine import _binding  # noqa: E402  (after choosing which landwrap)

KERNEL_ABI = _binding.kernel_abi()
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
    from landwrap.diagnose import audit

    why = audit.availability()
    return f"audit netlink unavailable: {why}" if why else None


needs_audit = pytest.mark.skipif(_audit_reason() is not None, reason=_audit_reason() or "")


def audit_enabled():
    """The kernel's audit enabled flag (0, 1, 2 = locked on), read the way
    audit.Session reads it."""
    from landwrap.diagnose.audit import netlink

    with netlink.Control() as ctl:
        return ctl.enabled()


def pytest_sessionstart(session):
    # Subprocesses (`python -m landwrap`, `python -S -c ...`) import landwrap
    # from their working directory first: make it the landwrap under test
    # (the checkout's, or the installed one run from the checkout, from nox
    # or from cibuildwheel's temporary directory).
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(_binding.__file__)))  # landwrap/
    if os.path.realpath(os.path.join(os.getcwd(), "landwrap")) != os.path.realpath(pkg):
        cwd = tempfile.mkdtemp(prefix="landwrap-tests-cwd-")
        atexit.register(shutil.rmtree, cwd, True)
        os.symlink(pkg, os.path.join(cwd, "landwrap"))
        os.chdir(cwd)
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


# programs the tests run ---------------------------------------------------

REQUIRE_APPS = os.environ.get("LANDWRAP_REQUIRE_APPS") == "1"

#: The Debian package of each program a test runs (.ci/run installs them).
DEBIAN_PACKAGES = {
    "bzip2": "bzip2", "c++": "g++", "cat": "coreutils", "cc": "gcc", "cmake": "cmake",
    "convert": "imagemagick", "curl": "curl", "diff": "diffutils", "file": "file",
    "g++": "g++", "gcc": "gcc", "git": "git", "gpg": "gnupg", "gpgconf": "gnupg",
    "grep": "grep", "gzip": "gzip", "head": "coreutils", "identify": "imagemagick",
    "jq": "jq", "less": "less", "ls": "coreutils", "make": "make", "man": "man-db",
    "mogrify": "imagemagick", "node": "nodejs", "npm": "npm", "openssl": "openssl",
    "perl": "perl", "pip3": "python3-pip", "python3": "python3", "sort": "coreutils",
    "sqlite3": "sqlite3", "ssh": "openssh-client", "strace": "strace", "tail": "coreutils",
    "tar": "tar", "unzip": "unzip", "vi": "vim", "vim": "vim", "wc": "coreutils",
    "wget": "wget", "xz": "xz-utils", "zip": "zip", "zstd": "zstd",
}


def missing(what, package):
    """Skip the test: *what* is not installed (fail with LANDWRAP_REQUIRE_APPS=1)."""
    msg = f"{what} is not installed (Debian package {package})"
    if REQUIRE_APPS:
        pytest.fail(f"LANDWRAP_REQUIRE_APPS=1 but {msg}", pytrace=False)
    pytest.skip(f"{msg}; .ci/run installs it, LANDWRAP_REQUIRE_APPS=1 fails instead")


def need_program(program, path=None):
    """The path of *program* (a name looked up in *path* or $PATH, or a
    path), or skip the test naming the Debian package that has it."""
    found = shutil.which(program, path=path)
    if found is None:
        name = os.path.basename(program)
        missing(program, DEBIAN_PACKAGES.get(name, name))
    return found


def nobody_can_run_python():
    """Whether this interpreter runs as nobody (setpriv): a Python built
    with a shared libpython under /root (pyenv) cannot, since nobody cannot
    read it; such an interpreter cannot run the tests that act as nobody."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return False
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-c", "pass"], capture_output=True, cwd="/")
    return r.returncode == 0

"""noxfile.py: the test suite on every CPython landwrap supports.

`nox` runs the suite on each of CPython 3.9-3.13 found on PATH (or by
pyenv); missing interpreters are skipped.  Each session installs landwrap
regularly (its wheel, built from this checkout) and runs the tests from a
temporary directory, so they test what a user installs, not the source
tree.  Arguments after `--` go to pytest: `nox -s tests-3.12 -- -k profile`.
"""

import glob
import os
import shutil
import tempfile

import nox

ROOT = os.path.dirname(os.path.abspath(__file__))
PYTHONS = ["3.9", "3.10", "3.11", "3.12", "3.13"]

# pyenv's interpreters, after PATH's own (pyenv's shims only answer for the
# versions selected with `pyenv global/local`).
_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
os.environ["PATH"] = os.pathsep.join(
    [os.environ.get("PATH", "")] +
    sorted(glob.glob(os.path.join(_root, "versions", "3.*", "bin")), reverse=True))

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False


@nox.session(python=PYTHONS)
def tests(session):
    session.install(f"{ROOT}[test]")
    # Not session.create_tmp(): it sets TMPDIR inside the session's venv, which
    # the tests grant to sandboxed Pythons, so every tmp_path would be granted.
    tmp = tempfile.mkdtemp(prefix="landwrap-nox-")
    try:
        session.chdir(tmp)
        session.run("python", "-m", "pytest", "-p", "no:cacheprovider",
                    os.path.join(ROOT, "tests"), *session.posargs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

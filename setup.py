"""setup.py: what pyproject.toml cannot say.

- the cffi extension (``cffi_modules``);
- one ``cp39-abi3`` wheel for every CPython from 3.9 (the extension uses only
  the stable ABI: cffi builds it with ``Py_LIMITED_API``);
- a one-line error, before the build's output, when no working C compiler or
  no Python headers are installed.
"""

import os
import re
import shlex
import shutil
import subprocess
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build import build
from setuptools.command.build_ext import build_ext

HINT = ("install a C compiler and Python's headers (Debian/Ubuntu: apt install gcc "
        "libc6-dev python3-dev; Fedora: dnf install gcc python3-devel; Alpine: apk add "
        "gcc musl-dev python3-dev), or install a prebuilt landwrap wheel")

_probed = []


def probe_compiler(cc=None):
    """Compile a one-line file with *cc* (default: the compiler setuptools
    will use) and exit with one line naming what is missing if that fails."""
    cc = list(cc or shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"))
    if cc in _probed:
        return
    if shutil.which(cc[0]) is None:
        raise SystemExit(f"error: landwrap needs a C compiler to build its extension, "
                         f"and {cc[0]!r} was not found: {HINT}")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <Python.h>\n#include <stdint.h>\nint lw_probe(void) { return 0; }\n")
        cmd = cc + ["-I", sysconfig.get_paths()["include"], "-c", src,
                    "-o", os.path.join(tmp, "probe.o")]
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
        except OSError as e:
            raise SystemExit(f"error: landwrap cannot run the C compiler {cc[0]!r} "
                             f"({e.strerror}): {HINT}") from None
    if r.returncode != 0:
        out = r.stdout.strip().splitlines()
        first = next((line for line in out if "error" in line), out[0] if out else "")
        # gcc: "Python.h: No such file or directory"; clang: "'Python.h' file not found"
        no_python_h = re.search(r"\bPython\.h'?:? (No such file|file not found)", r.stdout)
        what = "Python's headers (Python.h)" if no_python_h else "a working C compiler"
        raise SystemExit(f"error: landwrap's extension cannot be built without {what} "
                         f"({cc[0]} says: {first.strip() or f'exit {r.returncode}'}): {HINT}")
    _probed.append(cc)


class Build(build):
    """build that checks the compiler before anything else is built."""

    def run(self):
        probe_compiler()
        super().run()


class BuildExt(build_ext):
    """build_ext that checks the compiler it was given (editable installs
    build the extension without the build command)."""

    def build_extensions(self):
        probe_compiler(getattr(self.compiler, "compiler_so", None))
        super().build_extensions()


setup(
    cffi_modules=["landwrap/_build.py:ffibuilder"],
    cmdclass={"build": Build, "build_ext": BuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)

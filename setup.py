"""setup.py: what pyproject.toml cannot say.

- the cffi extension (``cffi_modules``);
- one ``cp39-abi3`` wheel for every CPython from 3.9 (the extension uses only
  the stable ABI: cffi builds it with ``Py_LIMITED_API``);
- a one-line error, before any compiler output, when no working C compiler
  or Python headers are installed.
"""

import os
import shutil
import subprocess
import sysconfig
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

HINT = ("install a C compiler and Python's headers (Debian/Ubuntu: apt install gcc "
        "python3-dev; Fedora: dnf install gcc python3-devel; Alpine: apk add gcc musl-dev "
        "python3-dev), or install a prebuilt landwrap wheel")


class BuildExt(build_ext):
    """build_ext that first compiles a one-line probe and says what is missing."""

    def build_extensions(self):
        self._probe_compiler()
        super().build_extensions()

    def _probe_compiler(self):
        cc = list(getattr(self.compiler, "compiler_so", None) or ["cc"])
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
            what = "Python's headers (Python.h)" if "Python.h" in r.stdout else "a working C compiler"
            raise SystemExit(f"error: landwrap's extension cannot be built without {what} "
                             f"({cc[0]} says: {first.strip() or f'exit {r.returncode}'}): {HINT}")


setup(
    cffi_modules=["landwrap/_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)

"""_build.py: the cffi builder (API, out-of-line mode), named in setup.py's
``cffi_modules``.  Declarations come from csrc/landwrap.h, code from
csrc/landwrap.c and csrc/threads.c; no C lives in Python strings beyond
the include."""

import os

from cffi import FFI

_CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")

ffibuilder = FFI()
with open(os.path.join(_CSRC, "landwrap.h"), encoding="utf-8") as f:
    ffibuilder.cdef(f.read())

ffibuilder.set_source(
    "landwrap._lwcffi",
    '#include <stdint.h>\n#include <stddef.h>\n#include "landwrap.h"\n',
    sources=[os.path.relpath(os.path.join(_CSRC, name))
             for name in ("landwrap.c", "threads.c", "floor.c", "paths.c")],
    include_dirs=[os.path.relpath(_CSRC)],
    depends=[os.path.relpath(os.path.join(_CSRC, name)) for name in ("landwrap.h", "lwsys.h")],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

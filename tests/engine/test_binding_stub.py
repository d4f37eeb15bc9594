"""landwrap/_lwcffi.pyi (the types mypy sees for the compiled extension)
declares exactly what the extension has, each function with as many
parameters as csrc/landwrap.h gives it: a stub out of step would let mypy
pass calls the C side rejects."""

import ast
import os
import re

from landwrap._lwcffi import lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stub_lib():
    """``{name: parameter count or None for a constant}`` of the stub's ``_Lib``."""
    with open(os.path.join(ROOT, "landwrap", "_lwcffi.pyi"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Lib")
    out = {}
    for n in cls.body:
        if isinstance(n, ast.FunctionDef):
            out[n.name] = len(n.args.args) - 1  # self
        elif isinstance(n, ast.AnnAssign):
            assert isinstance(n.target, ast.Name)
            out[n.target.id] = None
    return out


def header_functions():
    """``{name: parameter count}`` of the functions csrc/landwrap.h declares."""
    with open(os.path.join(ROOT, "csrc", "landwrap.h"), encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    out = {}
    for name, params in re.findall(r"\b(lw_\w+)\s*\(([^)]*)\)\s*;", text):
        params = params.strip()
        out[name] = 0 if params in ("", "void") else params.count(",") + 1
    return out


def test_stub_declares_what_the_extension_has():
    assert set(stub_lib()) == {n for n in dir(lib) if not n.startswith("_")}


def test_stub_functions_take_the_headers_parameters():
    stub = {n: k for n, k in stub_lib().items() if k is not None}
    assert stub == header_functions()

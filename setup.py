# The cffi extension needs setup()'s cffi_modules; everything else is in
# pyproject.toml.
from setuptools import setup

setup(cffi_modules=["landwrap/_build.py:ffibuilder"])

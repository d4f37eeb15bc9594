"""landwrap: Landlock sandboxing for Linux.

A launcher (`landwrap run`), per-app profiles and a Python library sharing
one engine.  Importing this package is cheap: the library's names are loaded
on first use, so that `landwrap run` starts fast.
"""

__version__ = "0.1.0"

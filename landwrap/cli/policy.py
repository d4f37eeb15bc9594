"""policy.py: turn `landwrap run` options into a :class:`Ruleset`.

Knows the meaning of --ro/--rox/--rw/--rwx, the port options and the
--unrestricted-* switches.  Pure: no system calls (paths are checked when the
ruleset is resolved).
"""

from __future__ import annotations

from ..engine.ruleset import Ruleset

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: ``--ro`` etc.: option name -> access set.
PATH_OPTIONS = ("ro", "rox", "rw", "rwx")
PORT_OPTIONS = {"bind_tcp": "bind_tcp", "connect_tcp": "connect_tcp"}


def apply_options(rs: Ruleset, opts: Mapping[str, Any]) -> Ruleset:
    """Add the command line's allowances and switches to *rs*."""
    required = not opts.get("ignore_missing")
    for access in PATH_OPTIONS:
        for path in opts.get(access) or ():
            rs.allow(path, access, origin=f"--{access} {path}", required=required)
    for key, right in PORT_OPTIONS.items():
        for spec in opts.get(key) or ():
            rs.allow_port(spec, right, origin=f"--{key.replace('_', '-')} {spec}")
    if opts.get("unrestricted_fs"):
        rs.fs = False
    if opts.get("unrestricted_net"):
        rs.net = False
    if opts.get("unrestricted_scope"):
        rs.scopes = 0
        rs.need["scoped"] = 0
    if opts.get("best_effort"):
        rs.compat = "best-effort"
    if opts.get("abi") is not None:
        rs.abi = opts["abi"]
    return rs


"""profile.py: profile names -> one :class:`Profile` (the layer's entry).

:func:`load` finds each profile (lookup.py), reads it (parse.py, through
the cache), follows ``extends`` (bounded depth, no cycles), applies each
document (validate.py, or landlockconfig.py for that format) and adds the
``.local.toml`` files; :func:`for_command` picks the profile for a command.

Nothing here may trust a file another user (or a sandbox) could have
written (see lookup.untrusted); every string from a profile is escaped
before it reaches a terminal.  Errors are :class:`ProfileError` with
``FILE:LINE: key: message``.  Pure apart from reading profile files and the
cache; paths are only checked for existence when the ruleset is resolved.
"""

from __future__ import annotations

import os

from ..engine.errors import ProfileError
from ..engine.safetext import printable
from ..engine.ruleset import Ruleset
from .lookup import (require_trusted, usable, find, find_locals, is_path, LOCAL_SUFFIX,
                     locate, search_path, state_dirs, SUFFIX)
from .parse import line_of, load_document
from .variables import exe_prefixes
from .validate import apply_document, Ctx, as_list, type_name, Profile, programs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

MAX_DEPTH = 32


def list_profiles(dirs: Iterable[str] | None = None) -> list[tuple[str, str, str, list[str]]]:
    """[(name, path, description, shadowed_paths)] of every profile found."""
    seen: dict[str, list[Any]] = {}
    for d in dirs if dirs is not None else search_path():
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        for f in entries:
            if not f.endswith(SUFFIX) or f.endswith(LOCAL_SUFFIX):
                continue
            name = f[:-len(SUFFIX)]
            path = os.path.join(d, f)
            if not usable(path):
                continue
            if name in seen:
                seen[name][3].append(path)
                continue
            try:
                desc = load_document(path).get("description", "")
            except ProfileError as e:
                desc = f"(invalid: {e.detail})"
            seen[name] = [name, path, desc if isinstance(desc, str) else "", []]
    return [tuple(v) for _, v in sorted(seen.items())]


def _load_into(prof: Profile, spec: str, base_dir: str | None, dirs: Sequence[str],
               chain: list[str], environ: Mapping[str, str] | None) -> None:
    path = locate(spec, base_dir, dirs)
    if is_path(spec):
        require_trusted(path)
    real = os.path.realpath(path)
    if real in chain:
        cycle = " -> ".join(chain[chain.index(real):] + [real])
        raise ProfileError(f"extends cycle: {cycle}", path, line_of(path, None, "extends"),
                           "extends")
    if len(chain) >= MAX_DEPTH:
        raise ProfileError(f"extends chain deeper than {MAX_DEPTH}", path,
                           line_of(path, None, "extends"), "extends")
    if real in prof.applied:
        return  # reached again through another extends: a union, once is enough
    prof.applied.add(real)
    doc = load_document(path)
    if is_landlockconfig(doc):
        from . import landlockconfig  # only for that format: the ordinary run never loads it

        landlockconfig.apply(prof, doc, path)
        prof.ruleset.sources.append(path)
        return
    parents = doc.get("extends", [])
    ctx = Ctx(path, {})
    parents = as_list(ctx, "extends", parents)
    for parent in parents:
        if not isinstance(parent, str):
            ctx.fail("extends", f"expected profile names or paths, got {type_name(parent)}")
        try:
            _load_into(prof, parent, os.path.dirname(path), dirs, chain + [real], environ)
        except ProfileError as e:
            if e.file is None:  # not found: say who asked
                raise ProfileError(e.detail, path, line_of(path, None, "extends"),
                                   "extends", e.hint) from None
            raise
    apply_document(prof, doc, path, environ)
    if path not in prof.ruleset.sources:
        prof.ruleset.sources.append(path)
    if not is_path(spec):
        for local in find_locals(spec, dirs):
            # a local file is a profile of its own: its extends are followed
            _load_into(prof, local, None, dirs, chain + [real], environ)


def is_landlockconfig(doc: dict[str, Any]) -> bool:
    """Whether a parsed document is in landlockconfig rather than landwrap
    profile format (either spelling: TOML, or JSON's camelCase).  Here, not
    in landlockconfig.py, so that reading a profile does not import it."""
    return any(k in doc for k in ("ruleset", "path_beneath", "net_port", "variable",
                                  "pathBeneath", "netPort"))


def load(specs: Iterable[str], *, dirs: Sequence[str] | None = None,
         environ: Mapping[str, str] | None = None, program: str | None = None) -> Profile:
    """Resolve profile names/paths (later ones add to earlier) into one
    :class:`Profile`.  *program* (the resolved command) gives
    ``${exe_prefix}``.  Raises ProfileError."""
    dirs = search_path(environ) if dirs is None else dirs
    prof = Profile()
    if program:
        prof.exe_prefixes = exe_prefixes(program, environ)
    protect(prof.ruleset, environ)
    for spec in specs:
        _load_into(prof, spec, None, dirs, [], environ)
    rs = prof.ruleset
    if prof.unscoped:
        rs.scopes &= ~prof.unscoped
        rs.need["scoped"] &= ~prof.unscoped
    return prof


def protect(rs: Ruleset, environ: Mapping[str, str] | None = None) -> None:
    """Mark landwrap's own state directories (for the user of *environ*,
    and for the caller) as never writable from *rs*'s sandbox."""
    for d in state_dirs(environ) + (state_dirs() if environ is not None else []):
        if d not in rs.protected:
            rs.protected.append(d)


_LOOK_UP: Any = object()  # typed Any: it stands in for a str | None argument


def choose(command: str | None, dirs: Sequence[str] | None = None, path_env: str | None = None,
           program: str | None = _LOOK_UP) -> tuple[str, str]:
    """(profile name, why) for `landwrap run COMMAND` without -p.

    The profile named after the command's basename, if the command is one
    of the executables that profile is for (its ``programs``, compared by
    real path); otherwise ``default``.  A copy of ``cat`` named ``gpg`` in
    a download directory is not gpg.  *program*: the command as already
    looked up on PATH (None: not found); left out, it is looked up here."""
    if not command:
        return "default", "no command"
    name = os.path.basename(command)
    if not name or name.startswith("."):
        return "default", f"no profile is named after {printable(command)}"
    found = find(name, dirs if dirs is not None else search_path())
    if not found:
        return "default", f"no profile named {printable(name)}"
    prog = _find_program(command, path_env) if program is _LOOK_UP else program
    if prog is None:
        return "default", f"{printable(command)} was not found"
    real = os.path.realpath(prog)
    wanted = programs(load_document(found), found, name)
    for p in wanted:
        if os.path.realpath(p) == real:
            return name, (f"{printable(prog)} is {printable(p)}, one of the programs "
                          f"{printable(found)} is for")
    return "default", (f"{printable(prog)} (real path {printable(real)}) is not one of the "
                       f"programs {printable(found)} is for")


def default_for(command: str | None, dirs: Sequence[str] | None = None) -> str:
    """The profile `landwrap run COMMAND` uses without -p (see :func:`choose`)."""
    return choose(command, dirs)[0]


def _find_program(command: str, path_env: str | None = None) -> str | None:
    """*command* looked up on PATH as execvp would, or None."""
    from ..engine.spawn import find_program  # spawn loads the compiled binding; profiles do not

    try:
        return find_program(command, os.environ.get("PATH") if path_env is None else path_env)
    except Exception:  # not found: the run will say so
        return None


def for_command(profiles: Iterable[str], command: str | None, *, dirs: Sequence[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Profile:
    """The profiles *profiles* (``-p``), or the one :func:`choose` picks for
    *command*.  The command is looked up on PATH once, here: ``program``
    of the result is that path (None when not found)."""
    why = ""
    specs = list(profiles)
    program = _find_program(command) if command else None
    if not specs:
        name, why = choose(command, dirs, program=program)
        specs = [name]
        why = f"{name}: {why}"
    prof = load(specs, dirs=dirs, environ=environ, program=program)
    prof.program = program
    prof.names = [os.path.basename(s)[:-len(SUFFIX)] if s.endswith(SUFFIX) else s
                  for s in specs]
    prof.why = why or "chosen with -p"
    return prof

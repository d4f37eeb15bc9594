"""variables.py: ``${NAME}`` in profiles.

The built-in variables (HOME, CWD, XDG_*, ...), the user's environment,
``${exe_prefix}`` (the install prefixes of the command) and
:func:`expand`, bounded by MAX_VALUE.  Pure: reads the environment and
the password database, never a file.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pwd import struct_passwd


#: Bounds on hostile input, checked while expanding (never after).
MAX_VALUE = 65_536      # characters of one expanded variable or path
BUILTIN_VARS = ("HOME", "CWD", "TMPDIR", "UID", "USER", "XDG_CONFIG_HOME",
                "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
                "XDG_RUNTIME_DIR", "PROFILE_DIR")


def user_environ(pw: struct_passwd) -> dict[str, str]:
    """The variables landwrap reads (HOME, USER, XDG directories) as they
    are for the user of the ``pwd`` entry *pw* (``--user``): that user's
    home and the XDG defaults under it, never the caller's."""
    return {"HOME": pw.pw_dir, "USER": pw.pw_name, "=uid": str(pw.pw_uid)}


def builtin_vars(profile_dir: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    home = env.get("HOME") or os.path.expanduser("~")
    uid = int(env["=uid"]) if "=uid" in env else os.getuid()
    try:
        user = env.get("USER") or __import__("pwd").getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = "/nonexistent"
    return {
        "HOME": home,
        "CWD": cwd,
        "TMPDIR": env.get("TMPDIR") or "/tmp",
        "UID": str(uid),
        "USER": user,
        "XDG_CONFIG_HOME": env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config"),
        "XDG_CACHE_HOME": env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"),
        "XDG_DATA_HOME": env.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"),
        "XDG_STATE_HOME": env.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state"),
        "XDG_RUNTIME_DIR": env.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}",
        "PROFILE_DIR": profile_dir,
    }


class UnsetVariable(Exception):
    """``${env:NAME}`` with NAME unset or empty: the rule is skipped."""


def references(text: str, lone_dollar: bool = False) -> Iterator[str | tuple[str]]:
    """*text* in pieces, in order: literal strings and ``(name,)`` for each
    ``${name}``, with ``$$`` read as ``$`` (the one reader of ``${}`` syntax,
    for profiles and landlockconfig).  Any other ``$`` is itself with
    *lone_dollar*, else ValueError; so is an unterminated ``${``.  A
    generator: an error is raised only when reading reaches it."""
    i = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            yield text[i:]
            return
        yield text[i:j]
        if text.startswith("$$", j):
            yield "$"
            i = j + 2
            continue
        if not text.startswith("${", j):
            if not lone_dollar:
                raise ValueError("'$' must start a ${NAME} reference (write $$ for a '$')")
            yield "$"
            i = j + 1
            continue
        k = text.find("}", j)
        if k < 0:
            raise ValueError("unterminated ${")
        yield (text[j + 2:k],)
        i = k + 1


def expand(text: str, variables: Mapping[str, str],
           escape: Callable[[str], str] | None = None) -> str:
    """``~`` at the start, ``${NAME}`` and ``${env:NAME}``; an unknown name
    raises KeyError, a malformed reference ValueError, an unset or empty
    environment variable UnsetVariable.  *escape*: applied to each value
    (not to the text around it)."""
    if text == "~" or text.startswith("~/"):
        text = "${HOME}" + text[1:]
    if "$" not in text:
        return text
    out = []
    size = 0
    for part in references(text):
        if type(part) is str:
            out.append(part)
            size += len(part)
            continue
        name = part[0]
        if name.startswith("env:"):
            value = os.environ.get(name[4:]) or ""
            if not value or not name[4:]:
                raise UnsetVariable(name)
        elif name == "exe_prefix" and name not in variables:
            raise UnsetVariable(name)  # no command (or a table entry): skipped
        elif name not in variables:
            raise KeyError(name)
        else:
            value = variables[name]
        if escape is not None:
            value = escape(value)
        out.append(value)
        size += len(value)
        if size > MAX_VALUE:
            raise ValueError(f"expands to more than {MAX_VALUE} characters")
    return "".join(out)


def exe_prefixes(program: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """``${exe_prefix}``: the installation prefix of *program* (the
    directory above its ``bin``/``sbin``, else its directory), for the path
    as found and for its real path (a venv's python3 is a symlink to the
    real interpreter).  A prefix that is /, the home directory or above it
    is left out."""
    env = os.environ if environ is None else environ
    home = os.path.realpath(env.get("HOME") or "/")
    out = []
    for p in (os.path.abspath(program), os.path.realpath(program)):
        d = os.path.dirname(p)
        if os.path.basename(d) in ("bin", "sbin"):
            d = os.path.dirname(d)
        real = os.path.realpath(d)
        if real == "/" or real == home or home.startswith(real.rstrip("/") + "/"):
            continue
        if d not in out:
            out.append(d)
    return out

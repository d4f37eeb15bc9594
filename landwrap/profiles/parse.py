"""parse.py: a profile file -> its document (a dict), and back to lines.

Reads TOML (or landlockconfig JSON) through the cache, finds the line of a
key for error messages (the one home of line finding, only on the error
path: :func:`line_of` and :func:`entry_line` in TOML, :func:`json_line` in
JSON) and writes TOML strings.  Checks no keys: that is validate.py's.
"""

from __future__ import annotations

import os
import sys

from ..engine.errors import ProfileError
from ..engine.ruleset import plain_paths
from .lookup import cache_dir
from .cache import read_entry, write_entry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

def load_document(path: str) -> dict[str, Any]:
    """The parsed TOML (or JSON) document at *path*.

    Parsed documents are cached in ``$XDG_CACHE_HOME/landwrap`` (marshal,
    keyed by file identity and mtime).  An entry holds the file's bytes,
    which must match, and a MAC over them and the parsed document, keyed
    by a secret only the user can read: a sandbox that can write some
    cache directory still cannot forge an entry.  The cache directory is
    used only when it belongs to the effective user and nothing above it
    is writable by others.
    """
    try:
        st = os.stat(path)
        if (st.st_mode & 0o170000) != 0o100000:
            raise ProfileError("not a regular file", path)
    except OSError as e:
        raise ProfileError(e.strerror or str(e), path) from None
    cache = cache_dir()
    if not cache:
        return _parse(path)
    raw = _read(path)
    key = os.path.join(cache, "%x-%x-%x-%x.%s.p.marshal" % (
        st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size,
        __import__("landwrap").__version__))
    hit = read_entry(cache, key, raw)
    if hit is not None:
        entry: dict[Any, Any] = hit   # (_PLAIN is not a str: no TOML key can be it)
        plain = entry.pop(_PLAIN, None)
        if plain:
            fs = entry["filesystem"]
            for k in plain:
                fs[k] = PlainPaths(fs[k])
        return hit
    doc: dict[Any, Any] = _parse(path, raw)
    plain = _plain_lists(doc)
    if plain:   # (only in the entry: what is returned has no such key)
        doc[_PLAIN] = plain
    write_entry(cache, key, raw, doc, source=path)
    doc.pop(_PLAIN, None)
    return doc


class PlainPaths(list[str]):
    """A ``filesystem.ro``/``rox``/``rw``/``rwx`` list found plain (see
    :func:`~landwrap.engine.ruleset.plain_paths`: absolute, normal paths,
    no variable, no wildcard) when its document was parsed and cached;
    made only from a cache entry whose MAC held, so validate.py need not
    scan it again."""

    __slots__ = ()


#: The key, in a cache entry, of the list of the filesystem table's keys
#: whose lists are plain.  Not a string: no TOML or JSON document has it.
_PLAIN = (0, "plain")


def _plain_lists(doc: dict[str, object]) -> list[str]:
    """The keys of *doc*'s filesystem table whose lists are plain."""
    fs = doc.get("filesystem")
    if not isinstance(fs, dict):
        return []
    return [k for k in ("ro", "rox", "rw", "rwx")
            if type(v := fs.get(k)) is list and len(v) > 1 and plain_paths(v)]


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ProfileError(e.strerror or str(e), path) from None


def _parse(path: str, raw: bytes | None = None) -> dict[str, Any]:
    if raw is None:
        raw = _read(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line: int | None = raw[:e.start].count(b"\n") + 1
        raise ProfileError("not valid UTF-8", path, line) from None
    if path.endswith(".json"):
        import json  # only for JSON (landlockconfig) files: json imports re

        try:
            doc = json.loads(text)
        except ValueError as e:  # JSONDecodeError, or an integer too long to convert
            raise ProfileError(f"invalid JSON: {getattr(e, 'msg', e)}", path,
                               getattr(e, "lineno", None)) from None
        except RecursionError:
            raise ProfileError("invalid JSON: nested too deeply", path) from None
        try:  # JSON, unlike TOML, can carry lone surrogates (\ud800): no path or name
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ProfileError("invalid JSON: a \\uXXXX escape is a lone surrogate, "
                               "not a character", path) from None
        except (ValueError, RecursionError):
            pass
    else:
        if sys.version_info >= (3, 11):
            import tomllib  # only on a cache miss: the parser is what the cache saves
        else:  # pragma: no cover
            import tomli as tomllib  # likewise
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            msg = str(e)
            line = None
            if "(at line " in msg:
                msg, _, where = msg.rpartition(" (at line ")
                try:
                    line = int(where.split(",")[0])
                except ValueError:
                    pass
            elif msg.endswith("(at end of document)"):
                line = text.count("\n") + 1
                msg = msg[:-len(" (at end of document)")]
            raise ProfileError(f"invalid TOML: {msg}", path, line) from None
        except RecursionError:
            raise ProfileError("invalid TOML: nested too deeply", path) from None
        except ValueError as e:  # e.g. an integer too long to convert
            raise ProfileError(f"invalid TOML: {e}", path) from None
    if not isinstance(doc, dict):
        raise ProfileError("the document must be a table/object", path)
    return doc


def line_of(path: str, table: str | None, key: str | None,
            index: int | None = None) -> int | None:
    """Best-effort line number of *key* in *table* (dotted, ``None`` for the
    top level) of the TOML file at *path*; for an array of tables, *index*
    picks the entry.  Only used on the error path."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError:
        return None
    current = ""
    seen = -1
    header_line = None
    for n, raw in enumerate(lines, 1):
        s = raw.strip()
        if s.startswith("["):
            name = s.strip("[]").split("#")[0].strip().strip("[]").strip()
            name = name.replace('"', "").replace("'", "").replace(" ", "")
            current = name
            if table is not None and name == table:
                seen += 1
                if index is None or seen == index:
                    header_line = n
                    if key is None:
                        return n
            continue
        if key is None:
            continue
        in_table = (table is None and current == "") or (
            table is not None and current == table and (index is None or seen == index))
        k = s.split("=", 1)[0].strip().strip('"').strip("'")
        if "=" in s and (k == key or k.endswith("." + key)) and (
                in_table or (table and k == f"{table.split('.')[-1]}.{key}")):
            return n
    return header_line


def json_line(text: str, section: str | None, index: int | None,
              key: str | None) -> int | None:
    """Best-effort line of ``"key"`` inside entry *index* of the top-level
    array ``"section"`` of a JSON text (or of a top-level key)."""
    def find_key(name: str, start: int, end: int) -> int | None:
        i = text.find(f'"{name}"', start, end)
        return None if i < 0 else i

    if section is None:
        pos = find_key(key, 0, len(text)) if key else None
        return None if pos is None else text.count("\n", 0, pos) + 1
    pos = find_key(section, 0, len(text))
    if pos is None:
        return None
    # walk the array: find entry *index* (objects at depth 1 of the array)
    i = text.find("[", pos)
    if i < 0 or index is None:
        return text.count("\n", 0, pos) + 1
    depth, n, in_str, start = 0, -1, False, None
    j = i
    while j < len(text):
        c = text[j]
        if in_str:
            if c == "\\":
                j += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            if depth == 2 and c == "{":
                n += 1
                if n == index:
                    start = j
        elif c in "]}":
            depth -= 1
            if depth == 1 and start is not None:
                k = find_key(key, start, j) if key else start
                return text.count("\n", 0, start if k is None else k) + 1
            if depth == 0:
                break
        j += 1
    return text.count("\n", 0, pos) + 1


def entry_line(file: str, key_line: int, path: str) -> int | None:
    """The line naming *path* (quoted) in the array that starts at line
    *key_line* of the TOML file *file*, or None.  Only on the error path."""
    try:
        with open(file, encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
    except OSError:
        return None
    for n in range(key_line - 1, len(lines)):
        s = lines[n].strip()
        if n > key_line - 1 and (s.startswith("[") and not s.startswith("[\"") or
                                 ("=" in s.split("#")[0] and not s.startswith(("\"", "'")))):
            break
        if f'"{path}"' in s or f"'{path}'" in s:
            return n + 1
    return None


def toml_str(text: str) -> str:
    """*text* as a TOML basic string (for writing profiles)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)

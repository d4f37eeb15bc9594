"""safetext.py: text that reaches a terminal or a one-line message.

Program names, paths, profile descriptions and keys can come from a
sandboxed program or another user; printed raw, an escape sequence in one
could clear the screen or fake a line.  :func:`printable` is the one place
that escapes them.  Pure: no I/O.
"""

from __future__ import annotations


def printable(text: object) -> str:
    """*text* with every non-printable character (controls, escape
    sequences, newlines, lone surrogates from undecodable bytes) written
    as a Python escape, so it stays one harmless line.  Bytes are decoded
    with surrogateescape first."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    text = str(text)
    if text.isprintable() and text.isascii():
        return text
    return "".join(c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF
                   else ascii(c)[1:-1] for c in text)

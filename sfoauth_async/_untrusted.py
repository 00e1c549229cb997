"""`printable`: text from the other side of the wire, made safe to put in a message or a log.

Salesforce's ``error`` and ``error_description``, and the ``error_description`` of an
authorization callback, are free text chosen by whoever answered. Put verbatim into an
exception message they can forge log lines (CR/LF), recolour or erase a terminal (ANSI
escapes), reorder what is shown (bidi controls) or flood a log (a megabyte of text). Every
message of the library passes such text through `printable` once; the exceptions keep the raw
value in their attributes for code that needs it.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_SHOWN_CHARS", "printable"]

MAX_SHOWN_CHARS = 200
"""How many characters of an untrusted value a message shows before cutting it short."""

# Cc: C0/C1 controls (CR, LF, ESC, DEL, ...); Cf: format characters (bidi overrides, zero
# width); Zl/Zp: the Unicode line and paragraph separators; Cs: lone surrogates, which cannot
# even be written to a UTF-8 log.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _escaped(char: str) -> str:
    if char == "\\" or unicodedata.category(char) in _ESCAPED_CATEGORIES:
        # "\\x1b", "\\n", "\\u202e": the same notation as Python's own repr().
        return char.encode("unicode_escape").decode("ascii")
    return char


def printable(value: str, *, limit_chars: int = MAX_SHOWN_CHARS) -> str:
    r"""``value`` with control characters escaped and cut to ``limit_chars``, for messages.

    Control and format characters (CR, LF, ESC, bidi overrides, line separators, ...) and
    the backslash become Python escapes (``\r``, ``\x1b``, ``\u202e``, ``\\``), so the
    result is one unambiguous line. Past ``limit_chars`` the rest is replaced by a count.

    Args:
        value: Untrusted text, e.g. an ``error_description``.
        limit_chars: How many characters of ``value`` to keep.

    Returns:
        A single line that is safe to put in an exception message or a log record.

    Example:
        ```python
        assert printable("bad\r\nINFO forged") == "bad\\r\\nINFO forged"
        assert printable("x" * 300).endswith("... (100 more characters)")
        ```
    """
    kept = value[:limit_chars]
    if not kept.isprintable() or "\\" in kept:
        kept = "".join(_escaped(char) for char in kept)
    if len(value) > limit_chars:
        kept += f"... ({len(value) - limit_chars} more characters)"
    return kept

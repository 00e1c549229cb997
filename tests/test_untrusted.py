"""`printable`: untrusted text made safe for messages and logs (issue 8, item 10)."""

from __future__ import annotations

import logging

import pytest

from sfoauth_async._untrusted import MAX_SHOWN_CHARS, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("authentication failure", "authentication failure"),
        ("line\r\nINFO forged", "line\\r\\nINFO forged"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("tab\there", "tab\\there"),
        ("bell\x07 del\x7f c1\x85", "bell\\x07 del\\x7f c1\\x85"),
        ("rtl\u202eevil\u2066", "rtl\\u202eevil\\u2066"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("back\\slash", "back\\\\slash"),
        ("café ü 東京 \u00a0nbsp", "café ü 東京 \u00a0nbsp"),
    ],
)
def test_control_characters_are_escaped(raw: str, shown: str):
    """Controls, format characters and separators become escapes; other text stays."""
    assert printable(raw) == shown


def test_escaping_is_unambiguous():
    """A real newline and the two characters backslash-n read differently."""
    assert printable("a\nb") != printable("a\\nb")


def test_long_text_is_cut_with_a_count():
    """Past the limit the rest is replaced by how many characters were left out."""
    assert printable("x" * (MAX_SHOWN_CHARS + 5)) == "x" * MAX_SHOWN_CHARS + (
        "... (5 more characters)"
    )
    assert printable("x" * MAX_SHOWN_CHARS) == "x" * MAX_SHOWN_CHARS
    assert printable("abcdef", limit_chars=3) == "abc... (3 more characters)"


def test_a_megabyte_is_cut_before_it_is_escaped():
    """A megabyte of control characters costs a short line, not a megabyte of escapes."""
    shown = printable("\x1b" * 1_000_000)
    assert len(shown) < 1000
    assert shown.endswith("(999800 more characters)")


def test_escaped_text_makes_one_log_line(caplog: pytest.LogCaptureFixture):
    """Logged through printable, forged text cannot start a second log record."""
    caplog.set_level(logging.INFO)
    logging.getLogger("sfoauth_async.test").info(
        "refused: %s", printable("x\n2026-01-01 INFO admin logged in")
    )
    assert caplog.text.count("\n") == 1

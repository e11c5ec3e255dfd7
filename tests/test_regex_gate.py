"""ASCII twins: a case-insensitive regex run case-sensitively on lower-cased ASCII text, only where provably
the same matches."""

from __future__ import annotations

import re

import pytest

from pipeline.heads.regex_gate import TwinRegex, _twin_char, lower_ascii_twin


def test_characters_folding_to_ascii_letters_are_refused() -> None:
    """Every non-ASCII character re matches to an ASCII letter ignoring case (recomputed over all of
    Unicode: the long s, dotless i, dotted capital I, Kelvin sign) is refused; other letters are not."""
    letter = re.compile("[a-z]", re.IGNORECASE)
    folding = [c for c in range(0x80, 0x110000) if letter.fullmatch(chr(c))]
    assert {chr(c) for c in folding} == set("\u0130\u0131\u017f\u212a")
    assert not any(_twin_char(c) for c in folding)
    assert all(_twin_char(ord(ch)) for ch in "abz09 -_äéкш")
    assert not any(_twin_char(ord(ch)) for ch in "AZ")


@pytest.mark.parametrize(
    ("pattern", "flags", "twinned"),
    [
        ("abc|mdma", re.I, True),
        (r"\bspeed\b(?! ?(delivery|shipping))", re.I, True),
        (r"\d\s*(?:mg|ug)\b", re.I, True),
        ("[a-z]+", re.I, True),
        (r"(?i)ships? from", 0, True),  # a leading inline flag counts as IGNORECASE
        ("aBc", re.I, False),  # an upper-case literal
        ("[A-Z]x", re.I, False),  # a range over upper-case letters
        ("x\u212a", re.I, False),  # the Kelvin sign matches "k" ignoring case
        ("[\u0100-\u0200]", re.I, False),  # holds the long s, which matches "s" ignoring case
        ("(?-i:ab)", re.I, False),  # an inline flag group
        ("(?=K)a", re.I, False),  # inside a look-ahead
        (r"(a)\1", re.I, False),  # a back reference
        ("[^A]", re.I, False),
        ("abc", 0, False),  # not case-insensitive: lower-casing the text would change its matches
        ("abc", re.I | re.MULTILINE, False),  # other flags: not proven
    ],
)
def test_twin_only_when_certain(pattern: str, flags: int, twinned: bool) -> None:
    twin = lower_ascii_twin(re.compile(pattern, flags))
    assert (twin is not None) == twinned
    if twin is not None:
        assert not twin.flags & re.IGNORECASE


@pytest.mark.parametrize(
    "text",
    ["MDMA 10G 84%", "Ships From Germany", "speed Delivery", "", "ſpeed", "KETAMINE \u212a", "x" * 300],
)
@pytest.mark.parametrize("pattern", [r"(?i)\bspeed\b(?! ?(delivery))", r"(?i)ships? from|mdma|\d+\s*g\b"])
def test_twin_regex_finditer_equals_finditer(pattern: str, text: str) -> None:
    regex = re.compile(pattern)
    expected = [(m.span(), m.lastindex) for m in regex.finditer(text)]
    assert [(m.span(), m.lastindex) for m in TwinRegex(regex).finditer(text)] == expected

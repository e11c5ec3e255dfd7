"""Cheap substring gates for lexicon regexes: a pattern only runs on texts that hold one of its literals.

Shared by the rule heads (laundering, origin) so the hot path skips regexes that cannot match.
"""

from __future__ import annotations

from typing import Final

_META: Final = frozenset(".^$*+?{}[]()|\\")


def literal_prefixes(fragment: str) -> list[str] | None:
    """Lower-case literals, one of which every match of the regex ``fragment`` contains; None if unknown.

    Used as a cheap gate: a lexicon's regex only runs on a text holding one of its prefixes as a substring.
    """
    frag = fragment
    for flag in ("(?-i:", "(?i:"):
        frag = frag.removeprefix(flag)
    if frag.startswith("(?:"):
        depth, j = 0, 0
        for j, ch in enumerate(frag):
            if ch == "(" and (j == 0 or frag[j - 1] != "\\"):
                depth += 1
            elif ch == ")" and frag[j - 1] != "\\":
                depth -= 1
                if depth == 0:
                    break
        inner = frag[3:j]
        if "(" in inner or (j + 1 < len(frag) and frag[j + 1] in "?*"):
            return None
        out: list[str] = []
        for alt in inner.split("|"):
            sub = literal_prefixes(alt)
            if sub is None:
                return None
            out.extend(sub)
        return out
    lit: list[str] = []
    for ch in frag:
        if ch in _META:
            if ch in "?*{" and lit:
                lit.pop()
            break
        lit.append(ch)
    prefix = "".join(lit).lower().strip()
    return [prefix] if prefix else None


def gate_for(fragments: list[str]) -> tuple[str, ...] | None:
    """The union of :func:`literal_prefixes` of all fragments, or None when one of them has none."""
    out: set[str] = set()
    for frag in fragments:
        sub = literal_prefixes(frag)
        if sub is None:
            return None
        out.update(sub)
    return tuple(sorted(out))

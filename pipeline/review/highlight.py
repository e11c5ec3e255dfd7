"""Evidence spans -> highlight markup, built on the server with every piece of text escaped.

Spans come from the labelled record: ``evidence.drug_type`` (lexicon hits), ``quantities``,
``evidence.origin``, ``evidence.laundering``, ``crypto_addresses`` and ``contacts`` (each with ``start`` and
``end``, character offsets into ``text``). Spans may overlap, so the text is cut at every span boundary and
each piece is wrapped in one ``<mark>`` naming all the spans that cover it: no nesting, no broken markup.
A span whose offsets do not point at its own ``text`` is moved to the nearest occurrence of that text, or
dropped and reported; scraped text is hostile and a bad span must not break the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

#: Highlight kinds in display order, with the legend text the page shows.
KINDS: dict[str, str] = {
    "drug": "drug-type lexicon hit",
    "qty": "quantity",
    "origin": "origin / destination",
    "hint": "laundering hint",
    "addr": "crypto address",
    "contact": "contact",
}


@dataclass(frozen=True)
class Span:
    """One highlight: ``text[start:end]`` is evidence of ``kind`` with a human ``label``."""

    start: int
    end: int
    kind: str
    label: str


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _label(kind: str, item: dict[str, Any]) -> str:
    if kind == "drug":
        return f"drug type: {item.get('code')}"
    if kind == "qty":
        role = item.get("role") or "mention"
        primary = ", primary offer" if item.get("primary") else ""
        return f"quantity: {_fmt(item.get('value'))} {item.get('unit') or ''} ({role}{primary})"
    if kind == "origin":
        role = {"from": "ships from", "to": "ships to"}.get(str(item.get("role")), "place")
        return f"{role}: {item.get('code')}"
    if kind == "hint":
        return f"laundering hint: {item.get('code')}"
    if kind == "addr":
        valid = "checksum valid" if item.get("valid") else "checksum fails"
        return f"{item.get('currency')} address ({valid})"
    return f"contact: {item.get('platform')} {item.get('handle') or ''}".strip()


def record_spans(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every span item of a labelled record as ``(kind, item)`` pairs, in kind order."""
    evidence = record.get("evidence") or {}
    sources = {
        "drug": evidence.get("drug_type") or [],
        "qty": record.get("quantities") or [],
        "origin": evidence.get("origin") or [],
        "hint": evidence.get("laundering") or [],
        "addr": record.get("crypto_addresses") or [],
        "contact": record.get("contacts") or [],
    }
    return [{"kind": kind, "item": item} for kind, items in sources.items() for item in items]


def _span_text(kind: str, item: dict[str, Any]) -> str | None:
    if kind == "addr":
        return item.get("address")
    text = item.get("text")
    return text if isinstance(text, str) and text else None


def align(text: str, kind: str, item: dict[str, Any]) -> tuple[Span | None, str]:
    """The span of ``item`` in ``text`` and how it was found: ``ok``, ``moved`` or ``dropped``."""
    start, end = item.get("start"), item.get("end")
    expected = _span_text(kind, item)
    if (
        isinstance(start, int)
        and isinstance(end, int)
        and 0 <= start < end <= len(text)
        and (expected is None or text[start:end] == expected)
    ):
        return Span(start, end, kind, _label(kind, item)), "ok"
    if expected:
        # nearest occurrence of the span's own text (offsets counted in another unit, or shifted)
        hits = []
        at = text.find(expected)
        while at != -1:
            hits.append(at)
            at = text.find(expected, at + 1)
        if hits:
            anchor = start if isinstance(start, int) else 0
            best = min(hits, key=lambda h: abs(h - anchor))
            return Span(best, best + len(expected), kind, _label(kind, item)), "moved"
    return None, "dropped"


def spans_for(record: dict[str, Any]) -> tuple[list[Span], dict[str, int]]:
    """Aligned spans of a record and counts of how alignment went (``ok``, ``moved``, ``dropped``)."""
    text = record.get("text") or ""
    spans: list[Span] = []
    counts = {"ok": 0, "moved": 0, "dropped": 0}
    for entry in record_spans(record):
        span, how = align(text, entry["kind"], entry["item"])
        counts[how] += 1
        if span is not None:
            spans.append(span)
    return spans, counts


def highlight(text: str, spans: list[Span]) -> Markup:
    """``text`` as escaped HTML with each covered piece in ``<mark class="hl hl-KIND ...">``.

    Each mark carries ``data-start``/``data-end`` (offsets of the piece in ``text``), ``data-kinds`` and a
    ``title`` listing every span that covers it. Nothing from ``text`` or the labels reaches the output
    unescaped."""
    cuts = sorted({0, len(text), *(s.start for s in spans), *(s.end for s in spans)})
    parts: list[str] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        if a >= b:
            continue
        piece = escape(text[a:b])
        covering = [s for s in spans if s.start <= a and s.end >= b]
        if not covering:
            parts.append(str(piece))
            continue
        kinds = [k for k in KINDS if any(s.kind == k for s in covering)]
        classes = " ".join(["hl", *(f"hl-{k}" for k in kinds)])
        title = " · ".join(dict.fromkeys(s.label for s in covering))
        parts.append(
            f'<mark class="{classes}" data-start="{a}" data-end="{b}" data-kinds="{" ".join(kinds)}" '
            f'title="{escape(title)}">{piece}</mark>'
        )
    return Markup("".join(parts))

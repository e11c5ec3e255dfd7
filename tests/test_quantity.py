"""Tests of the quantity head (pipeline/heads/quantity.py) against the contract, section 2.

Rules one by one, spans, invariances, the head's save/load round trip, and the exact-match accuracy on the
hand-labelled gold set data/gold/quantity.jsonl.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.heads.base import Head
from pipeline.heads.quantity import (
    CONFIG_FILE,
    QuantityHead,
    _clean_number,
    extract_quantities,
    load_unit_table,
    score_quantity,
)
from pipeline.taxonomy import QUANTITY_FIELDS

GOLD = Path(__file__).resolve().parents[1] / "data" / "gold" / "quantity.jsonl"
GOLD_MIN_ACCURACY = 0.95
MENTION_KINDS = {"mass", "units", "dose", "volume", "pack"}


def q(
    total_grams: float | None = None,
    units: float | None = None,
    dose_mg: float | None = None,
    volume_ml: float | None = None,
) -> dict[str, float | None]:
    return {"total_grams": total_grams, "units": units, "dose_mg": dose_mg, "volume_ml": volume_ml}


# (text, lang, expected quantity): one or more cases per rule of the contract and the brief
RULES: list[tuple[str, str | None, dict[str, float | None]]] = [
    # grams and their spellings, decimals, decimal commas
    ("Lemon Haze 3.5g indoor", None, q(total_grams=3.5)),
    ("Peruvian flake 2 gr", None, q(total_grams=2)),
    ("Afghan hash 5 grams", None, q(total_grams=5)),
    ("Brown 1 gram sample", None, q(total_grams=1)),
    ("Speed 25 grs paste", None, q(total_grams=25)),
    ("Shards 0,5g", None, q(total_grams=0.5)),
    ("Moonrocks .5g", None, q(total_grams=0.5)),
    ("Tusi 1,25 g", "es", q(total_grams=1.25)),
    # kilograms
    ("2kg bulk amnesia", None, q(total_grams=2000)),
    ("Kilo of flake", None, q(total_grams=1000)),
    ("1 kilo Speedpaste", None, q(total_grams=1000)),
    # milligrams and micrograms
    ("LSD 150ug tabs x 10", None, q(units=10, dose_mg=0.15)),
    ("LSD 200mcg blotter 5 hits", None, q(units=5, dose_mg=0.2)),
    ("1P-LSD 100µg x 20", None, q(units=20, dose_mg=0.1)),
    ("ALD-52 150μg x 5", None, q(units=5, dose_mg=0.15)),
    # ounces and street fractions
    ("Sour Diesel 1 oz", None, q(total_grams=28.35)),
    ("Wedding Cake ounce", None, q(total_grams=28.35)),
    ("an eighth of Blue Dream", None, q(total_grams=3.54)),
    ("8th of Runtz", None, q(total_grams=3.54)),
    ("1/8 of Zkittlez", None, q(total_grams=3.54)),
    ("Quarter ounce Gelato", None, q(total_grams=7.09)),
    ("QP Purple Punch", None, q(total_grams=113.4)),
    ("Quarter pound of OG", None, q(total_grams=113.4)),
    ("Half O Sherbet", None, q(total_grams=14.17)),
    ("half oz Gushers", None, q(total_grams=14.17)),
    ("HP Tangie", None, q(total_grams=226.8)),
    ("1 lb outdoor mids", None, q(total_grams=453.6)),
    ("1p exotics", None, q(total_grams=453.6)),
    ("1/2 oz Runtz", None, q(total_grams=14.17)),
    ("Pound of trim", None, q(total_grams=453.6)),
    # x-multipliers
    ("100x Valium 10mg", None, q(units=100, dose_mg=10)),
    ("Valium 10mg x100", None, q(units=100, dose_mg=10)),
    ("100 x Valium 10mg", None, q(units=100, dose_mg=10)),
    ("(50) Alprazolam 1mg", None, q(units=50, dose_mg=1)),
    ("2 x 5g Lemon Haze", None, q(total_grams=10)),
    ("5g x2 Lemon Haze", None, q(total_grams=10)),
    ("3 x 1/8 Runtz", None, q(total_grams=10.62)),
    # counted units in every language
    ("Ritalin 10mg 30 tabs", None, q(units=30, dose_mg=10)),
    ("Diazepam 60 tablets 10mg", None, q(units=60, dose_mg=10)),
    ("XTC 25 pills 200mg", None, q(units=25, dose_mg=200)),
    ("LSD 10 blotters Hofmann", None, q(units=10)),
    ("Psilocybin 30 caps 200mg", None, q(units=30, dose_mg=200)),
    ("Test E 5 vials", None, q(units=5)),
    ("Ketamine 10 ampoules", None, q(units=10)),
    ("Nandrolone 10 amps", None, q(units=10)),
    ("Xanax 2mg - 20 bars yellow", None, q(units=20, dose_mg=2)),
    ("Gelato 41 feminised 5 seeds", None, q(units=5)),
    ("Hash 10 pcs", None, q(units=10)),
    ("THC jellies 10mg 20 pieces", None, q(units=20, dose_mg=10)),
    ("Fentanyl 75mcg 5 patches", None, q(units=5, dose_mg=0.075)),
    ("Speed 10 Gramm", "de", q(total_grams=10)),
    ("Ecstasy 20 Stück 200mg", "de", q(units=20, dose_mg=200)),
    ("Xanax 2mg 10 Stk", "de", q(units=10, dose_mg=2)),
    ("Diazepam 10mg 50 Tabletten", "de", q(units=50, dose_mg=10)),
    ("XTC 30 Pillen", "de", q(units=30)),
    ("Speed 5 gram", "nl", q(total_grams=5)),
    ("XTC 10 stuks", "nl", q(units=10)),
    ("MDMA 20 pillen", "nl", q(units=20)),
    ("Cocaína 2 gramos", "es", q(total_grams=2)),
    ("Éxtasis 10 pastillas", "es", q(units=10)),
    ("Oxycodone 20mg 10 comprimés", "fr", q(units=10, dose_mg=20)),
    ("Ecstasy 10 cachets", "fr", q(units=10)),
    ("Mefedron 2 gramy", "pl", q(total_grams=2)),
    ("Ecstasy 10 tabletki", "pl", q(units=10)),
    ("Ecstasy 10 szt", "pl", q(units=10)),
    ("Мефедрон 2 гр", "ru", q(total_grams=2)),
    ("Мефедрон 1 г", "ru", q(total_grams=1)),
    ("Шишки 3 грамм", "ru", q(total_grams=3)),
    ("Амфетамин 1 кг", "ru", q(total_grams=1000)),
    ("Экстази 10 шт", "ru", q(units=10)),
    ("Трамадол 50мг 20 таб", "ru", q(units=20, dose_mg=50)),
    ("Феназепам 1мг 10 табл", "ru", q(units=10, dose_mg=1)),
    ("Метадон 20 мл", "ru", q(volume_ml=20)),
    ("Гашиш 1,5 г", "ru", q(total_grams=1.5)),
    # milligrams of powder are mass, beside pills a dose
    ("250mg DMT", None, q(total_grams=0.25)),
    ("5-MeO-DMT 50mg", None, q(total_grams=0.05)),
    ("MDMA crystal 500mg", None, q(total_grams=0.5)),
    ("Xanax 1mg", None, q(dose_mg=1)),
    ("Tesla pills 250mg", None, q(dose_mg=250)),
    # volumes, fluid ounces, concentrations, ampoules
    ("GHB 100ml", None, q(volume_ml=100)),
    ("GBL 1L", None, q(volume_ml=1000)),
    ("GBL 0,5 l", "de", q(volume_ml=500)),
    ("Codeine syrup 8 fl oz", None, q(volume_ml=236.56)),
    ("Lean 2 fl. oz", None, q(volume_ml=59.14)),
    ("Methadone 10mg/ml 100ml", None, q(volume_ml=100)),
    ("Test C 250mg/ml 10 vials", None, q(units=10)),
    ("15mg/3ml 10 ampoules", None, q(units=10, dose_mg=15)),
    ("Liquid LSD 5ml, 50 doses", None, q(volume_ml=5)),
    # nested packs
    ("1 sheet (100 hits) Lucy", None, q(units=100)),
    ("8 boxes - 56 jellies", None, q(units=56)),
    ("2 sheets of 100 blotters", None, q(units=200)),
    ("Box of 30 Ritalin 10mg", None, q(units=30, dose_mg=10)),
    ("3 blisters x 10 tabs Valium", None, q(units=30)),
    # the same amount written twice: grams win
    ("Ounce (28 grams) OG", None, q(total_grams=28)),
    ("1/2 lb (226g) Blue Dream", None, q(total_grams=226)),
    ("3.5g (1/8) Runtz", None, q(total_grams=3.5)),
    # price tiers and menus
    ("Amnesia 1g/5g/10g", None, q(total_grams=1)),
    ("Coke 2g | 1g | 5g", None, q(total_grams=1)),
    ("1g - 10€\n2g - 18€\n5g - 40€", None, q(total_grams=1)),
    ("Weed 5g 40€\nHash 2g 25€", None, q(total_grams=5)),
    ("Xanax 2mg\n10 pills $40\n30 pills $100", None, q(units=10, dose_mg=2)),
    # free items and minimum orders
    ("Haze 10g + 2g free", None, q(total_grams=10)),
    ("Free 1g with every 5g order", None, q(total_grams=5)),
    ("Coke 5g - minimum order 5g", None, q(total_grams=5)),
    ("Speed, minimum order 100g", None, q()),
    ("Hash 25g - free shipping", None, q(total_grams=25)),
    # no quantity: prices, purity, years, times, phone numbers, drug names, imprints, grades
    ("$100 Blue Dream special", None, q()),
    ("100% pure cocaine", None, q()),
    ("Harvest 2024 Amnesia", None, q()),
    ("THC 28% Gelato", None, q()),
    ("24/7 delivery", None, q()),
    ("Call +49 151 2345678", None, q()),
    ("AK-47 feminised", None, q()),
    ("OG #18", None, q()),
    ("2C-B", None, q()),
    ("4-MMC", None, q()),
    ("M30 blues", None, q()),
    ("#4 heroin", None, q()),
    ("Chemistry Handbook 8th edition", None, q()),
    ("Weed $10 a gram", None, q()),
]


def _ids(cases: list[tuple[str, str | None, dict[str, float | None]]]) -> list[str]:
    return [text[:40] for text, _, _ in cases]


@pytest.mark.parametrize(("text", "lang", "expected"), RULES, ids=_ids(RULES))
def test_rule(text: str, lang: str | None, expected: dict[str, float | None]) -> None:
    got = extract_quantities(text, lang).primary
    assert score_quantity(got, expected), f"{text!r}: got {got}, expected {expected}"


def test_enough_rule_cases() -> None:
    assert len(RULES) >= 60


# ------------------------------------------------------------------------------------------ spans


@pytest.mark.parametrize(("text", "lang", "expected"), RULES, ids=_ids(RULES))
def test_mentions_are_well_formed(text: str, lang: str | None, expected: dict[str, float | None]) -> None:
    result = extract_quantities(text, lang)
    assert list(result.primary) == list(QUANTITY_FIELDS)
    assert result.primary["total_grams"] is None or result.primary["units"] is None
    starts = [m["start"] for m in result.mentions]
    assert starts == sorted(starts)
    for m in result.mentions:
        assert text[m["start"] : m["end"]] == m["text"]
        assert m["kind"] in MENTION_KINDS
        assert isinstance(m["value"], int | float)


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("Valium 5mg x100", ["5mg", "x100"]),
        ("100 x Valium 10mg", ["100 x", "10mg"]),
        ("2 x 5g Lemon Haze", ["2 x 5g"]),
        ("Ounce (28 grams) OG", ["Ounce", "28 grams"]),
        ("1 sheet (100 hits) Lucy", ["1 sheet", "100 hits"]),
        ("1g - 10€\n2g - 18€", ["1g", "2g"]),
        ("Мефедрон 0,5г - 1500₽", ["0,5г"]),
        ("🔥🔥 Haze 3.5g 🔥", ["3.5g"]),
        ("Haze 10g + 2g free", ["10g", "2g"]),
        ("Codeine syrup 8 fl oz", ["8 fl oz"]),
    ],
)
def test_spans_point_at_the_amounts(text: str, spans: list[str]) -> None:
    mentions = extract_quantities(text).mentions
    assert [m["text"] for m in mentions] == spans
    for m in mentions:
        assert text[m["start"] : m["end"]] == m["text"]


def test_mention_roles() -> None:
    mentions = {m["text"]: m for m in extract_quantities("Haze 10g + 2g free, minimum order 5g").mentions}
    assert mentions["10g"]["role"] == "offer" and mentions["10g"]["primary"]
    assert mentions["2g"]["role"] == "free" and not mentions["2g"]["primary"]
    assert mentions["5g"]["role"] == "min_order"
    conc = extract_quantities("Methadone 10mg/ml 100ml").mentions[0]
    assert conc["kind"] == "dose" and conc["role"] == "concentration" and conc["per_ml"] == 1
    tiers = extract_quantities("1g - 10€\n2g - 18€").mentions
    assert [m["primary"] for m in tiers] == [True, False]


# ------------------------------------------------------------------------------------------ invariance

INVARIANT = [text for text, _, _ in RULES if "\n" not in text]


@pytest.mark.parametrize("text", INVARIANT, ids=[t[:40] for t in INVARIANT])
def test_case_whitespace_emoji_invariance(text: str) -> None:
    base = extract_quantities(text).primary
    variants = [
        text.upper(),
        text.lower(),
        "  " + text.replace(" ", "  ") + "  ",
        "🔥 " + text + " 🔥✅",
        "💊" + text,
    ]
    for variant in variants:
        got = extract_quantities(variant).primary
        assert score_quantity(got, base), f"{variant!r}: {got} != {base}"


def test_nothing_found_in_plain_text() -> None:
    for text in ["", "   ", "🔥🔥🔥", "Fresh stock, fast shipping, escrow accepted", "DM me on Telegram"]:
        result = extract_quantities(text)
        assert result.primary == dict.fromkeys(QUANTITY_FIELDS)
        assert result.mentions == []


# ------------------------------------------------------------------------------------------ scoring


def test_score_quantity() -> None:
    gold = q(total_grams=28.35)
    assert score_quantity(q(total_grams=28), gold)  # within 2 %
    assert not score_quantity(q(total_grams=27), gold)
    assert not score_quantity(q(total_grams=28.35, dose_mg=1), gold)  # None must match None
    assert not score_quantity(q(), gold)
    assert score_quantity(q(), q())
    assert score_quantity({"units": 10}, q(units=10))  # missing keys are None
    assert not score_quantity(q(units=0), q(units=1))
    assert score_quantity(q(units=0), q(units=0))
    assert score_quantity(q(units=100), q(units=104), tol=0.05)


# ------------------------------------------------------------------------------------------ the head


def _records() -> pd.DataFrame:
    title = "Lemon Amnesia 5g"
    body = "1g 10€ / 5g 45€ / 10g 85€"
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "title": [title, None, "Xanax 2mg", None],
            "text": [title + "\n" + body, "Speed 10 Gramm + 1 Gramm gratis", "Xanax 2mg\n10 pills $40", ""],
            "lang": ["en", "de", None, None],
        }
    )


def test_head_predict_columns_and_title() -> None:
    head = QuantityHead()
    assert isinstance(head, Head)
    assert head.fit(_records()) is head
    out = head.predict(_records())
    assert set(out) == {"quantity", "quantities"}
    assert len(out["quantity"]) == len(out["quantities"]) == 4
    # the title names the offer; without it the smallest tier would win
    assert out["quantity"][0] == q(total_grams=5)
    assert extract_quantities(_records()["text"][0]).primary == q(total_grams=1)
    assert out["quantity"][1] == q(total_grams=10)
    assert out["quantity"][2] == q(units=10, dose_mg=2)
    assert out["quantity"][3] == q()
    text = _records()["text"][0]
    for m in out["quantities"][0]:
        assert text[m["start"] : m["end"]] == m["text"]


def test_head_without_optional_columns() -> None:
    out = QuantityHead().predict(pd.DataFrame({"text": ["2 x 5g Haze", "Valium 10mg x 100"]}))
    assert out["quantity"] == [q(total_grams=10), q(units=100, dose_mg=10)]


def test_head_save_load_round_trip(tmp_path: Path) -> None:
    head = QuantityHead().fit(_records())
    before = head.predict(_records())
    head.save(tmp_path)
    saved = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["head"] == "quantity" and saved["version"] and "units" in saved["table"]
    loaded = QuantityHead.load(tmp_path)
    assert isinstance(loaded, QuantityHead)
    assert loaded.predict(_records()) == before


def test_saved_head_keeps_its_tables(tmp_path: Path) -> None:
    table = load_unit_table()
    table["units"]["g"]["words"].append("gramz")  # a table edit travels with the saved head
    QuantityHead(table=table).save(tmp_path)
    loaded = QuantityHead.load(tmp_path)
    frame = pd.DataFrame({"text": ["Haze 7 gramz"]})
    assert loaded.predict(frame)["quantity"] == [q(total_grams=7)]
    assert QuantityHead().predict(frame)["quantity"] == [q()]


def test_load_rejects_other_heads(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"head": "origin", "table": {}}), encoding="utf-8")
    with pytest.raises(ValueError):
        QuantityHead.load(tmp_path)


# ------------------------------------------------------------------------------------------ gold set


def _gold() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_gold_file_is_well_formed() -> None:
    rows = _gold()
    assert len(rows) >= 260
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert len({r["text"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) <= {"id", "text", "lang", "quantity", "note"}
        assert list(r["quantity"]) == list(QUANTITY_FIELDS)
        assert r["quantity"]["total_grams"] is None or r["quantity"]["units"] is None
        assert all(v is None or isinstance(v, int | float) for v in r["quantity"].values())
    langs = {r["lang"] for r in rows}
    assert {"en", "de", "nl", "fr", "es", "pl", "ru"} <= langs
    english = sum(r["lang"] == "en" for r in rows) / len(rows)
    assert 0.6 <= english <= 0.8


def test_gold_exact_match_accuracy() -> None:
    rows = _gold()
    misses = []
    for r in rows:
        got = extract_quantities(r["text"], r["lang"]).primary
        if not score_quantity(got, r["quantity"]):
            misses.append(f"{r['id']} {r['text']!r}: got {got}, gold {r['quantity']}")
    accuracy = 1 - len(misses) / len(rows)
    report = f"gold exact match {accuracy:.3f} ({len(rows) - len(misses)}/{len(rows)})"
    assert accuracy >= GOLD_MIN_ACCURACY, report + "\n" + "\n".join(misses)


# ------------------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    "value",
    [None, 0.0, -0.0, 1.0, 5.0, -3.0, 2.0**53, 1e16, 1e300, 0.1, 3.5, 1 / 3, 2.0000000001, 1e-7, 28.349523],
)
def test_clean_number_shortcut_for_whole_numbers(value: float | None) -> None:
    def by_rounding(v: float | None) -> float | int | None:  # the general path, for every number
        if v is None or not math.isfinite(v):
            return None
        rounded = round(v, 6)
        return int(rounded) if rounded.is_integer() else rounded

    assert repr(_clean_number(value)) == repr(by_rounding(value))
    for special in (math.inf, -math.inf, math.nan):
        assert _clean_number(special) is None

"""The ad_detector head: fit / predict / save / load, evidence, and the ad-detection rule for the Tagger."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.heads.ad_detector import (
    AdDetectorHead,
    AdDetectorParams,
    CueMatcher,
    apply_ad_detection,
    clear_offer_fields,
    load_cues,
    normalise,
)
from pipeline.heads.base import Head

# Written for this test (not from the generator or the gold set): one offer and one non-offer per language.
OFFERS = [
    "🔥 Menu 🔥\nSkunk 3.5g £28 | 7g £50\nCharlie 1g £75\nDM @test_plug_one",
    "Frisches Hasch da 🍫 5g 45€ / 10g 80€, Versand aus DE, schreib @test_kiosk",
    "Wiet Haze 5 gram €40, 10 gram €75 — bezorging in Leiden, app @test_leiden",
    "Beuh Gelato 10g 70€, livraison sur Lille, Snap : test_lille",
    "Cogollos 5g 35€ / 10g 60€, envío desde Sevilla, escribe a @test_sevilla",
    "Zioło Haze 5g 180 zł, paczkomat z Gdańska, pisz @test_gdansk",
    "Шишки 2г 3000₽ / 5г 7000₽, клады в Самаре, оператор @test_samara",
]
NON_OFFERS = [
    "Anyone know if the post office is open tomorrow? Waiting on a parcel",
    "Die Polizei hat gestern in Bremen 40 Kilo Kokain beschlagnahmt, passt auf euch auf",
    "Iemand een idee waarom het kanaal zo stil is vandaag?",
    "Réduction des risques : ne mélangez jamais l'alcool et la kéta, restez accompagnés",
    "¿Alguien sabe a qué hora abre la tienda hoy?",
    "Policja zatrzymała wczoraj kuriera w Lublinie, uważajcie na siebie",
    "Всем доброе утро, хорошего дня ☀️",
]


def _frame(texts: list[str], kind: str = "ad") -> pd.DataFrame:
    return pd.DataFrame({"id": [f"t{i}" for i in range(len(texts))], "kind": kind, "text": texts})


@pytest.fixture(scope="module")
def fitted() -> tuple[AdDetectorHead, pd.DataFrame]:
    frame = _frame(OFFERS + NON_OFFERS)
    labels = [True] * len(OFFERS) + [False] * len(NON_OFFERS)
    params = AdDetectorParams(min_df=1, C=50.0)
    return AdDetectorHead(params).fit(frame, labels), frame


def test_head_interface_and_overfit(fitted: tuple[AdDetectorHead, pd.DataFrame]) -> None:
    head, frame = fitted
    assert isinstance(head, Head) and head.name == "ad_detector"
    out = head.predict(frame)
    assert set(out) == {"is_offer", "offer_score", "offer_evidence"}
    assert out["is_offer"] == [True] * len(OFFERS) + [False] * len(NON_OFFERS)
    assert all(0.0 <= s <= 1.0 for s in out["offer_score"])


def test_save_and_reload_give_the_same_predictions(
    fitted: tuple[AdDetectorHead, pd.DataFrame], tmp_path: Path
) -> None:
    head, frame = fitted
    head.save(tmp_path / "ad_detector")
    assert {p.name for p in (tmp_path / "ad_detector").iterdir()} == {
        "model.skops",
        "params.json",
        "cues.json",
        "head.json",
    }
    again = AdDetectorHead.load(tmp_path / "ad_detector")
    assert again.params == head.params and again.cues == head.cues
    assert again.predict(frame) == head.predict(frame)
    unseen = _frame(["Koks 1g 70€, Abholung in Köln, schreib @x_test_koeln", "who is going to the match?"])
    assert again.predict(unseen) == head.predict(unseen)


def test_load_refuses_another_head(tmp_path: Path) -> None:
    (tmp_path / "head.json").write_text(json.dumps({"head": "quantity"}))
    with pytest.raises(ValueError, match="ad_detector"):
        AdDetectorHead.load(tmp_path)


def test_bad_params_and_one_class_data() -> None:
    with pytest.raises(ValueError, match="family"):
        AdDetectorHead(AdDetectorParams(family="bert"))
    with pytest.raises(ValueError, match="offers and non-offers"):
        AdDetectorHead().fit(_frame(OFFERS), [True] * len(OFFERS))
    with pytest.raises(RuntimeError):
        AdDetectorHead().predict(_frame(OFFERS))


@pytest.mark.parametrize("family", ["char", "char_cues"])
def test_other_families_fit(family: str) -> None:
    frame = _frame(OFFERS + NON_OFFERS)
    labels = [True] * len(OFFERS) + [False] * len(NON_OFFERS)
    head = AdDetectorHead(AdDetectorParams(family=family, min_df=1, C=50.0)).fit(frame, labels)
    assert head.predict(frame)["is_offer"] == labels


def test_evidence_spans_point_into_the_text(fitted: tuple[AdDetectorHead, pd.DataFrame]) -> None:
    head, frame = fitted
    for text, hits in zip(frame["text"], head.predict(frame)["offer_evidence"], strict=True):
        for h in hits:
            assert text[h["start"] : h["end"]] == h["text"]
            assert h["polarity"] in (1, -1)
    menu = head.predict(_frame([OFFERS[0]]))["offer_evidence"][0]
    assert {"price", "amount", "menu_line", "drug", "order_call"} <= {h["cue"] for h in menu}


def test_cues_in_every_language() -> None:
    matcher = CueMatcher(load_cues())
    cases = {
        "Koks 2g 120€, Lieferung in Köln": {"drug", "amount", "price", "menu_line", "delivery"},
        "Hat jemand Gras in Dresden?": {"question", "drug"},
        "Politie heeft 3000 kilo coke onderschept": {"news", "drug"},
        "Je cherche de la beuh, qui a ?": {"request", "question", "drug"},
        "Duplica tus bitcoins en una hora": {"scam"},
        "Szukam mefy w Gdańsku": {"request", "drug"},
        "Где купить мефа? Подскажите": {"question", "drug"},
        "ПРАВИЛА: без торга": {"rules"},
    }
    for text, expected in cases.items():
        assert expected <= set(matcher.counts(text)), text


def test_normalise_masks_identities_and_digits() -> None:
    text = "Coke 1g £75 @plug_uk t.me/plug_backup 05" + "a" * 64
    out = normalise(text)
    assert "@handle" in out and "tmelink" in out and "sessionid" in out
    assert "plug_uk" not in out and "75" not in out and "0g £00" in out


def test_apply_ad_detection_changes_non_offer_ads_only() -> None:
    kinds = ["ad", "ad", "listing", "listing"]
    is_offer = [True, False, False, True]
    codes = [["cocaine"], ["cocaine", "cannabis"], ["mdma"], ["non_drug"]]
    assert apply_ad_detection(kinds, is_offer, codes) == [["cocaine"], ["non_drug"], ["mdma"], ["non_drug"]]
    assert codes[1] == ["cocaine", "cannabis"]  # input untouched
    with pytest.raises(ValueError):
        apply_ad_detection(["ad"], [True, False], [["mdma"]])


def test_clear_offer_fields_blanks_quantity_and_origin_of_non_offers() -> None:
    quantity = {"total_grams": 2.0, "units": None, "dose_mg": None, "volume_ml": None}
    records = [
        {
            "quantity": dict(quantity),
            "ships_from": ["DE"],
            "ships_to": ["DE"],
            "quantities": [{"text": "2g"}],
        },
        {"quantity": dict(quantity), "ships_from": ["DE"], "ships_to": []},
        {"quantity": dict(quantity), "ships_from": ["NL"], "ships_to": []},
    ]
    clear_offer_fields(["ad", "ad", "listing"], [False, True, False], records)
    assert records[0]["quantity"] == dict.fromkeys(quantity) and records[0]["ships_from"] == []
    assert records[0]["quantities"] == [{"text": "2g"}]  # mentions stay as evidence
    assert records[1]["quantity"] == quantity and records[2]["ships_from"] == ["NL"]

"""Per-language behaviour on messenger ads, rule layers only (no training): slang and inflection in the drug
lexicon, negated payment terms, flags and local delivery in the origin head, menus in the quantity head,
contacts. Every text is written for this test."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.heads.contacts import find_contacts
from pipeline.heads.drug_type import Lexicon, load_lexicon_terms, load_strong_terms
from pipeline.heads.laundering import detect_hints
from pipeline.heads.origin import OriginHead
from pipeline.heads.quantity import extract_quantities


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon(load_lexicon_terms())


@pytest.fixture(scope="module")
def strong() -> Lexicon:
    return Lexicon(load_strong_terms())


# slang and inflected forms -> code
SLANG = [
    (
        "de",
        "Frisches Gras und Pep, dazu Teile und Pappen",
        {"cannabis", "amphetamine", "mdma", "psychedelic"},
    ),
    ("de", "Koks aus Peru, Keta Nadeln", {"cocaine", "dissociative"}),
    ("nl", "Wiet, snuif, paddo's en keta", {"cannabis", "cocaine", "psychedelic", "dissociative"}),
    ("fr", "Beuh, shit, taz, kéta et buvards", {"cannabis", "mdma", "dissociative", "psychedelic"}),
    ("es", "Farlopa, perico, maría y cogollos, tripis", {"cocaine", "cannabis", "psychedelic"}),
    ("es", "Éxtasis líquido (GHB)", {"ghb"}),
    ("pl", "Zioło, koka, amfa, kryształ MDMA", {"cannabis", "cocaine", "amphetamine", "mdma"}),
    ("ru", "Шишки, бошки, гашиш, соль, меф", {"cannabis", "cathinone"}),
    (
        "ru",
        "Амфетамин, первитин, экстази, кетамин",
        {"amphetamine", "methamphetamine", "mdma", "dissociative"},
    ),
]

# inflected forms (case endings) must still match
INFLECTED = [
    ("pl", "nie łączcie mefedronu z alkoholem", "cathinone"),
    ("pl", "5g zioła za 200 zł", "cannabis"),
    ("pl", "10g amfy", "amphetamine"),
    ("pl", "szukam mefy", "cathinone"),
    ("pl", "grama koksu", "cocaine"),
    ("pl", "paczka grzybków", "psychedelic"),
    ("ru", "3 грамма мефа", "cathinone"),
    ("ru", "нет шишек", "cannabis"),
    ("ru", "кусок гашиша", "cannabis"),
    ("ru", "изъято 150 кг мефедрона", "cathinone"),
    ("ru", "дозировка кокаина", "cocaine"),
    ("ru", "пять марок", "psychedelic"),
    ("de", "des Haschischs", "cannabis"),
    ("es", "dos gramos de cocaína", "cocaine"),
]


@pytest.mark.parametrize(("lang", "text", "codes"), SLANG)
def test_street_names_per_language(lexicon: Lexicon, lang: str, text: str, codes: set[str]) -> None:
    found = {m["code"] for m in lexicon.matches(text.lower())}
    assert codes <= found, (lang, found)


@pytest.mark.parametrize(("lang", "text", "code"), INFLECTED)
def test_inflected_forms_match(lexicon: Lexicon, lang: str, text: str, code: str) -> None:
    assert code in {m["code"] for m in lexicon.matches(text.lower())}, (lang, text)


def test_strong_names_per_language(strong: Lexicon) -> None:
    text = "mefedronu, мефедрона, heroína, кокаина, ketaminy, тестостерона, amfetaminy, marihuany"
    codes = {m["code"] for m in strong.matches(text)}
    assert {"cathinone", "heroin", "cocaine", "dissociative", "steroid", "amphetamine", "cannabis"} <= codes


def test_false_friends_stay_out(lexicon: Lexicon) -> None:
    # liquid ecstasy is GHB, not MDMA; an ordinary sentence names no drug
    assert {m["code"] for m in lexicon.matches("éxtasis líquido 100ml")} == {"ghb"}
    assert lexicon.matches("wir sind morgen wieder da, schönes wochenende") == []


# negated payment terms per language
NEGATION = [
    ("en", "BTC only, I don't take PayPal", {"bitcoin"}),
    ("de", "Nur Monero oder Bitcoin, keine Überweisung!", {"bitcoin", "privacy_coin"}),
    ("de", "Wir nehmen ab sofort nur noch Monero. Bitcoin wird nicht mehr akzeptiert.", {"privacy_coin"}),
    ("nl", "Geen Tikkie, alleen BTC", {"bitcoin"}),
    ("fr", "Paiement en Monero uniquement, pas de PayPal", {"privacy_coin"}),
    ("es", "No aceptamos Bizum, solo Monero", {"privacy_coin"}),
    ("pl", "Nie przyjmujemy BLIK, tylko BTC", {"bitcoin"}),
    ("ru", "Оплата только Monero или BTC, перевод на карту не принимаем", {"bitcoin", "privacy_coin"}),
    ("ru", "Принимаем только Monero, биткоин больше не принимаем", {"privacy_coin"}),
]


@pytest.mark.parametrize(("lang", "text", "hints"), NEGATION)
def test_negated_payment_terms(lang: str, text: str, hints: set[str]) -> None:
    assert set(detect_hints(text, lang)[0]) == hints, (lang, text)


# flags and local delivery
ORIGIN = [
    ("en", "Coke 1g £70 🇬🇧 Shipping from the UK", ["GB"], []),
    ("de", "Koks 🇨🇴 Qualität 90%, 1g 70€", [], []),  # a product's flag is not the origin
    ("de", "Gras 5g 50€ – Lieferung in Hamburg", ["DE"], ["DE"]),
    ("nl", "Pillen 10 stuks €30 🇳🇱 Verzending vanuit NL", ["NL"], []),
    ("fr", "Shit 10g 50€, envoi depuis Lyon", ["FR"], []),
    ("es", "Hachís 🍫 polen marroquí 10g 50€", [], []),  # Spanish "polen" is no Poland
    ("pl", "Zioło 5g 200 zł, odbiór osobisty w Krakowie", ["PL"], ["PL"]),
    ("ru", "Меф 1г 2500₽, закладки в Москве", ["RU"], ["RU"]),
    ("ru", "Кетамин 1г, Екатеринбург, тайники", ["RU"], ["RU"]),
]


@pytest.mark.parametrize(("lang", "text", "ships_from", "ships_to"), ORIGIN)
def test_origin_from_flags_and_text(lang: str, text: str, ships_from: list[str], ships_to: list[str]) -> None:
    out = OriginHead().predict(pd.DataFrame({"text": [text], "lang": [lang]}))
    assert (out["ships_from"][0], out["ships_to"][0]) == (ships_from, ships_to), text


# price menus: the primary offer is the first product listed, its smallest tier; every mention reported
MENUS = [
    ("en", "🔥 MENU\nHaze 3.5g £30 / 7g £55\nCoke 1g £70", {"total_grams": 3.5}, 3),
    ("de", "Teile Tesla 250mg\n10 Stück 45€, 50 Stück 180€", {"units": 10, "dose_mg": 250}, 3),
    ("nl", "Speed 10 gram €30, 1 ons €200", {"total_grams": 10}, 2),
    ("fr", "Xanax 2mg, plaquette de 10 cachets 25€", {"units": 10, "dose_mg": 2}, 2),
    ("es", "Keta 2g 50€ / 5g 100€", {"total_grams": 2}, 2),
    ("pl", "Kwas LSD 200µg, 5 kartonów 200 zł, 10 kartonów 350 zł", {"units": 5, "dose_mg": 0.2}, 3),
    ("ru", "Меф 1г 2500₽ / 2г 4500₽ / 5г 10000₽", {"total_grams": 1}, 3),
    ("ru", "Экстази Tesla 250мг – 5 шт 4000₽, 10 шт 7000₽", {"units": 5, "dose_mg": 250}, 3),
]


@pytest.mark.parametrize(("lang", "text", "primary", "mentions"), MENUS)
def test_quantity_in_price_menus(lang: str, text: str, primary: dict[str, float], mentions: int) -> None:
    result = extract_quantities(text, lang)
    expected = {"total_grams": None, "units": None, "dose_mg": None, "volume_ml": None, **primary}
    assert result.primary == pytest.approx(expected), text
    assert len(result.mentions) >= mentions


CONTACTS = [
    ("Оператор: @shishki_test_op", ("telegram", "@shishki_test_op")),
    ("Резерв: t.me/test_backup_ru", ("telegram", "@test_backup_ru")),
    ("Wickr: keta_test_bxl", ("wickr", "keta_test_bxl")),
    ("Threema: K9D4XW2T", ("threema", "K9D4XW2T")),
    ("Signal: rdam_test.10", ("signal", "rdam_test.10")),
    ("Kontakt na Signalu: pregab.12", ("signal", "pregab.12")),
    ("Session: 05" + "ab" * 32, ("session", "05" + "ab" * 32)),
    ("WhatsApp: +31 6 12345678", ("whatsapp", "+31612345678")),
    ("Heroína 1g 45€, llama al 612 987 654", ("phone", "612987654")),
]


@pytest.mark.parametrize(("text", "contact"), CONTACTS)
def test_contacts_in_ads(text: str, contact: tuple[str, str]) -> None:
    assert contact in {(c["platform"], c["handle"]) for c in find_contacts(text)}

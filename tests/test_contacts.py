"""Contacts finder: one case per platform and rule, multi-language cues, look-alikes, spans, head, gold F1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.heads import contacts as C
from pipeline.heads.contacts import ContactsHead, find_contacts
from pipeline.taxonomy import CONTACT_PLATFORMS

GOLD = Path(__file__).resolve().parents[1] / "data" / "gold" / "laundering.jsonl"
SESSION_ID = "05" + "ab12" * 16

CASES: list[tuple[str, set[tuple[str, str]]]] = [
    # telegram
    ("tg: @uk_plug_real", {("telegram", "@uk_plug_real")}),
    ("TG @green_garden_nl", {("telegram", "@green_garden_nl")}),
    ("telegram: frostyvendor", {("telegram", "@frostyvendor")}),
    ("join t.me/berlin_delivery_24 today", {("telegram", "@berlin_delivery_24")}),
    ("https://t.me/+AbCdEfGh1234", {("telegram", "t.me/+AbCdEfGh1234")}),
    ("DM @nightshift_rx for the menu", {("telegram", "@nightshift_rx")}),
    ("пиши в телеграм @moscow_shop77", {("telegram", "@moscow_shop77")}),
    ("Kontakt über Telegram: berlinweed", {("telegram", "@berlinweed")}),
    # wickr
    ("wickr: ukplug22", {("wickr", "ukplug22")}),
    ("Wickr me greengarden", {("wickr", "greengarden")}),
    ("Schreib mir auf Wickr: berlin_b", {("wickr", "berlin_b")}),
    # signal
    ("Signal: +44 7700 900123", {("signal", "+447700900123")}),
    ("signal: frank.42", {("signal", "frank.42")}),
    # session
    (f"Session ID: {SESSION_ID}", {("session", SESSION_ID)}),
    # threema
    ("threema: AB12CD34 for orders", {("threema", "AB12CD34")}),
    ("Threema (ID: 9XK4PQ2M)", {("threema", "9XK4PQ2M")}),
    # whatsapp
    ("WhatsApp +34 612 345 678", {("whatsapp", "+34612345678")}),
    ("wa.me/447700900123", {("whatsapp", "+447700900123")}),
    ("ватсап +7 915 123 45 67", {("whatsapp", "+79151234567")}),
    # several platforms on one handle
    ("WhatsApp/Signal: +49 151 23456789", {("whatsapp", "+4915123456789"), ("signal", "+4915123456789")}),
    ("TG/Wickr: sam_uk", {("telegram", "@sam_uk"), ("wickr", "sam_uk")}),
    # wire
    ("wire: @mr_wire_uk", {("wire", "mr_wire_uk")}),
    # jabber vs email
    ("jabber: kingpin@jabber.ccc.de", {("jabber", "kingpin@jabber.ccc.de")}),
    ("xmpp: greenleaf@xmpp.jp", {("jabber", "greenleaf@xmpp.jp")}),
    ("reach me at greenpost@exploit.im", {("jabber", "greenpost@exploit.im")}),
    ("email me: Kingpin.Shop@ProtonMail.com", {("email", "kingpin.shop@protonmail.com")}),
    # phone
    ("call 07700 900123 for meetups", {("phone", "07700900123")}),
    ("Phone: +31 6 12345678", {("phone", "+31612345678")}),
    ("Tel.: 0612345678", {("phone", "0612345678")}),
    ("Телефон: +7 915 123-45-67", {("phone", "+79151234567")}),
    ("Numer: 512 345 678 (SMS)", {("phone", "512345678")}),
    # kik, snapchat, instagram, other
    ("kik: plugman_uk", {("kik", "plugman_uk")}),
    ("snap: weedking.uk", {("snapchat", "weedking.uk")}),
    ("snapchat.com/add/ldnplug22", {("snapchat", "ldnplug22")}),
    ("ig: @the.plug.uk", {("instagram", "the.plug.uk")}),
    ("instagram.com/dankdeliveries", {("instagram", "dankdeliveries")}),
    ("Discord: plugman#1234", {("other", "plugman#1234")}),
    ("Viber: +380 67 123 4567", {("other", "+380671234567")}),
]

NEGATIVES = [
    "Price 1200, dated 2023-01-15, order 12345678",
    "1g @ 10, 5g @ 45",
    "we accept wire transfer and bank transfer",
    "Bonus: 30 Minutes Skype Credit With Every Order",
    "HALF OZ - 14g - BHO - SHATTER - NEW PRICE",
    "INSTAGRAM: Growth Secrets for Getting More Followers",
    "UK ISP email logins (@btinternet pack)",
    "48 hour flood on any @Yahoo address",
    "Tracking number 00340434161234567890 follows",
    "Message the vendor through the market inbox only.",
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_contact_cases(text: str, expected: set[tuple[str, str]]) -> None:
    assert {(c["platform"], c["handle"]) for c in find_contacts(text)} == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_spans_point_at_the_handle(text: str, expected: set[tuple[str, str]]) -> None:
    for hit in find_contacts(text):
        span = text[hit["start"] : hit["end"]]
        if hit["platform"] in ("phone", "whatsapp", "signal", "other") and any(c.isdigit() for c in span):
            assert "".join(ch for ch in span if ch.isdigit()) in hit["handle"].replace("+", "")
        else:
            assert hit["handle"].lstrip("@").lower() in span.lower() or span.lower() in hit["handle"].lower()


@pytest.mark.parametrize("text", NEGATIVES)
def test_not_contacts(text: str) -> None:
    assert find_contacts(text) == []


def test_every_platform_is_a_contract_code() -> None:
    platforms = {c["platform"] for text, _ in CASES for c in find_contacts(text)}
    assert platforms == set(CONTACT_PLATFORMS)


def test_same_contact_reported_once() -> None:
    hits = find_contacts("TG @repeat_shop ... again @repeat_shop")
    assert [(h["platform"], h["handle"]) for h in hits] == [("telegram", "@repeat_shop")]


def test_head_predict_save_load(tmp_path: Path) -> None:
    records = pd.DataFrame({"text": [text for text, _ in CASES[:10]] + [None]})
    head = ContactsHead().fit(records)
    before = head.predict(records)
    head.save(tmp_path)
    after = ContactsHead.load(tmp_path).predict(records)
    assert before == after
    assert before["contacts"][-1] == []
    assert len(before["contacts"]) == len(records)


def test_gold_contacts_f1() -> None:
    rows = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()]
    tp = fp = fn = 0
    for row in rows:
        predicted = {(c["platform"], c["handle"]) for c in find_contacts(row["text"])}
        gold = {(c["platform"], c["handle"]) for c in row["contacts"]}
        tp, fp, fn = tp + len(predicted & gold), fp + len(predicted - gold), fn + len(gold - predicted)
    assert {c["platform"] for row in rows for c in row["contacts"]} == set(CONTACT_PLATFORMS)
    assert 2 * tp / (2 * tp + fp + fn) >= 0.90


# ------------------------------------------------------------------------------------------ prefilters

#: Texts at the edges of the prefilters: link hosts in any case, digits just under and over eight (also
#: non-ASCII ones), keyword words in odd case forms (Kelvin sign, long s, fullwidth, Cyrillic capitals).
PREFILTER_TEXTS = [
    *(text for text, _ in CASES),
    *NEGATIVES,
    "",
    "T.ME/Berlin_Delivery_24 and WA.ME/447700900123",
    "see https://example.com/menu or 1/2oz for 80",
    "API.WHATSAPP.COM/send?phone=447700900123",
    "SIGNAL.ME/#p/+447700900123",
    "Signal: +44 7700 9001",
    "call 0770 0900",
    "call 1234567 or 12345678",
    "order 1 2 3 4 5 6 7 8",
    "WhatsApp +٤٤ ٧٧٠٠ ٩٠٠١٢٣",
    "\u212aIK: plugman_uk",
    "\u017fignal: frank.42",
    "ＴＧ: frostyvendor",
    "ВИКР: shop_1 / ТЕЛЕГРАМ: shop_2",
    "WICKR ME: PharmaKing",
    "tg:name_ok sc: snapking ig: the.plug",
    "Wickr: PharmaKing",
]


@pytest.mark.parametrize("text", PREFILTER_TEXTS)
def test_keyword_gate_equals_the_case_insensitive_regex(text: str) -> None:
    assert C._may_name_platform(text) == (C._KW_GATE_RE.search(text) is not None)


@pytest.mark.parametrize("text", PREFILTER_TEXTS)
def test_phone_prefilter_changes_nothing(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = find_contacts(text)
    monkeypatch.setattr(C, "_may_hold_phone", lambda _text: True)
    assert find_contacts(text) == fast


@pytest.mark.parametrize("text", PREFILTER_TEXTS)
def test_link_prefilter_changes_nothing(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = find_contacts(text)
    monkeypatch.setattr(C, "_LINK_HINT_RE", re.compile(""))  # matches every text
    assert find_contacts(text) == fast

"""Laundering hints: one rule per code, negation in seven languages, scores and evidence, head, gold F1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from pipeline.heads import crypto as C
from pipeline.heads.laundering import (
    LaunderingHead,
    LaunderingLexicon,
    _trie_pattern,
    default_lexicon,
    detect_hints,
    gate_for,
    literal_prefixes,
)
from pipeline.taxonomy import LAUNDERING_HINTS

GOLD = Path(__file__).resolve().parents[1] / "data" / "gold" / "laundering.jsonl"
BTC = C.make_btc_p2pkh(C.payload_from_seed("laundering-test"))
XMR = C.make_xmr(C.payload_from_seed("l-s", 32), C.payload_from_seed("l-v", 32))

POSITIVE: list[tuple[str, str]] = [
    ("bitcoin", "Payment in BTC only"),
    ("bitcoin", "оплата биткоин"),
    ("privacy_coin", "XMR preferred"),
    ("privacy_coin", "we also take Zcash"),
    ("other_crypto", "USDT TRC20 or LTC"),
    ("other_crypto", "Bitcoin Cash accepted"),
    ("mixer", "use a bitcoin mixer first"),
    ("mixer", "Wasabi coinjoin outputs welcome"),
    ("mixer", "chain-hopping recommended"),
    ("mixer", "clean coins only"),
    ("mixer", "Используйте миксер"),
    ("cash_by_mail", "cash in the mail accepted"),
    ("cash_by_mail", "Bargeld per Post möglich"),
    ("cash_by_mail", "efectivo por correo"),
    ("gift_card", "Amazon gift cards at 70%"),
    ("gift_card", "Paysafecard and Neosurf"),
    ("gift_card", "cartes cadeaux acceptées"),
    ("money_transfer", "Western Union or MoneyGram"),
    ("money_transfer", "bank transfer (SEPA)"),
    ("money_transfer", "PayPal F&F"),
    ("money_transfer", "Płatność BLIK"),
    ("money_transfer", "перевод на карту"),
    ("money_transfer", "Cash App, Zelle, Venmo"),
    ("cashout_service", "cash out service for your BTC"),
    ("cashout_service", "bank drops and drop accounts"),
    ("cashout_service", "money mules wanted"),
    ("cashout_service", "обнал и дропы"),
    ("escrow_bypass", "FE only"),
    ("escrow_bypass", "finalize early required"),
    ("escrow_bypass", "no escrow, direct deals"),
    ("escrow_bypass", "pay outside the market"),
    ("escrow_bypass", "sin escrow para habituales"),
    ("crypto_address", f"send to {BTC}"),
]

NEGATED: list[tuple[str, str]] = [
    ("money_transfer", "no PayPal"),
    ("money_transfer", "we do not take Western Union"),
    ("money_transfer", "No PayPal, Skrill or bank transfer"),
    ("money_transfer", "PayPal not accepted"),
    ("money_transfer", "PayPal, Skrill not accepted"),
    ("money_transfer", "Western Union: NO"),
    ("money_transfer", "kein PayPal"),
    ("cash_by_mail", "geen contant geld per post"),
    ("money_transfer", "pas de Western Union"),
    ("money_transfer", "nous n'acceptons pas PayPal"),
    ("money_transfer", "sin PayPal"),
    ("money_transfer", "nie przyjmujemy BLIK"),
    ("money_transfer", "не принимаем переводы на карту"),
    ("money_transfer", "PayPal не принимаем"),
    ("escrow_bypass", "We never do FE"),
    ("escrow_bypass", "Don't finalize early"),
    ("gift_card", "Gift cards ❌"),
    ("cash_by_mail", "We no longer accept cash by mail"),
]

NOT_NEGATED: list[tuple[str, str]] = [
    ("bitcoin", "Not a scam, pay in BTC"),
    ("bitcoin", "Don't forget to pay in BTC"),
    ("bitcoin", "We don't accept PayPal, we take BTC"),
    ("bitcoin", "PayPal не принимаем, оплата биткоин"),
    ("bitcoin", "Gift cards ❌  Bank ❌  BTC ✅"),
    ("bitcoin", "no PayPal, only BTC"),
]


@pytest.mark.parametrize(("code", "text"), POSITIVE)
def test_rule_hits(code: str, text: str) -> None:
    hints, scores, evidence = detect_hints(text)
    assert code in hints
    assert scores[code] == 1.0
    assert any(ev["code"] == code for ev in evidence)


@pytest.mark.parametrize(("code", "text"), NEGATED)
def test_negated_mentions_do_not_count(code: str, text: str) -> None:
    hints, scores, evidence = detect_hints(text)
    assert code not in hints
    assert scores[code] == 0.0
    assert all(ev["code"] != code for ev in evidence)


@pytest.mark.parametrize(("code", "text"), NOT_NEGATED)
def test_negation_scope_ends(code: str, text: str) -> None:
    assert code in detect_hints(text)[0]


@pytest.mark.parametrize(
    "text",
    [
        "Do not mix with alcohol",
        "Mix the powder with water",
        "10g MDMA crystal 84% - Dutch quality",
        "diethyl ether solvent 500ml",
        "ideal for beginners",
        "Vendor PGP fingerprint: 7A3F 9C2B 11D4 E8F0",
        "",
    ],
)
def test_no_hints(text: str) -> None:
    hints, scores, evidence = detect_hints(text)
    assert hints == [] and evidence == []
    assert set(scores) == set(LAUNDERING_HINTS) and not any(scores.values())


def test_scores_cover_all_codes_and_hints_follow_contract_order() -> None:
    hints, scores, _ = detect_hints("Western Union or XMR or BTC, FE for vets")
    assert list(scores) == list(LAUNDERING_HINTS)
    assert hints == [c for c in LAUNDERING_HINTS if c in hints]
    assert hints == ["bitcoin", "privacy_coin", "money_transfer", "escrow_bypass"]


def test_evidence_spans() -> None:
    text = f"Pay via Revolut or XMR to {XMR}; no PayPal. Cash by mail OK."
    _, _, evidence = detect_hints(text)
    for ev in evidence:
        assert text[ev["start"] : ev["end"]] == ev["text"]
    assert {ev["code"] for ev in evidence} == {
        "money_transfer",
        "privacy_coin",
        "crypto_address",
        "cash_by_mail",
    }
    assert all(ev["text"] != "PayPal" for ev in evidence)


def test_address_sets_currency_code_too() -> None:
    eth = C.make_eth(C.payload_from_seed("l-eth"))
    assert detect_hints(f"wallet {eth}")[0] == ["other_crypto", "crypto_address"]
    assert detect_hints(f"{XMR}")[0] == ["privacy_coin", "crypto_address"]


def test_gates_are_literal_prefixes() -> None:
    assert literal_prefixes(r"bitcoins?(?!\s*cash)") == ["bitcoin"]
    assert literal_prefixes(r"(?:btc|coin)\s*mixer") == ["btc", "coin"]
    assert literal_prefixes(r"(?-i:FE)") == ["fe"]
    assert literal_prefixes(r"(?:a)?b") is None
    assert gate_for([r"(?:a)?b", "c"]) is None


def test_head_predict_save_load(tmp_path: Path) -> None:
    texts = [text for _, text in POSITIVE] + [text for _, text in NEGATED] + [None]
    records = pd.DataFrame({"text": texts, "lang": ["en"] * len(texts)})
    head = LaunderingHead().fit(records)
    before = head.predict(records)
    assert set(before) == {"laundering_hints", "laundering_scores", "laundering_evidence", "crypto_addresses"}
    assert all(len(col) == len(records) for col in before.values())
    head.save(tmp_path)
    assert (tmp_path / "laundering_terms.yaml").is_file()
    after = LaunderingHead.load(tmp_path).predict(records)
    assert before == after
    address_rows = [row for row in before["crypto_addresses"] if row]
    assert address_rows == [
        [{"currency": "BTC", "address": BTC, "valid": True, "start": 8, "end": 8 + len(BTC)}]
    ]


def test_gold_hints_micro_f1() -> None:
    rows = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()]
    assert len(rows) >= 220
    tp = fp = fn = 0
    for row in rows:
        predicted = set(detect_hints(row["text"], row["lang"])[0])
        gold = set(row["laundering_hints"])
        tp, fp, fn = tp + len(predicted & gold), fp + len(predicted - gold), fn + len(gold - predicted)
    assert {c for row in rows for c in row["laundering_hints"]} == set(LAUNDERING_HINTS)
    assert sum(not row["laundering_hints"] for row in rows) >= 40  # texts without any hint
    assert 2 * tp / (2 * tp + fp + fn) >= 0.90


# ------------------------------------------------------------------------------------------ gates

#: Texts for the one-scan gates: literals overlapping one another ("tether" holds "eth"), inside words
#: ("method"), in upper case, lower-casing that changes length ("İ"), Cyrillic, the rule cases above.
GATE_TEXTS = [
    "",
    "   ",
    "Tether (USDT TRC20) or Ethereum",
    "TETHER, ETHEREUM, BITCOIN CASH",
    "methylone 10g, diethyl ether",
    "bankdrops and cashouts, coinjoin via Wasabi",
    "İstanbul bitcoin escrow-free",
    "amazon-gutschein oder bol.com-bon",
    "100% FE, F/E or F.E. only",
    "оплата биткоин или монеро, миксер",
    "Western Union WU MoneyGram",
    "mixers recommended: clean coins",
    "no escrow, deal direct, pay me directly",
    *(text for _, text in POSITIVE + NEGATED + NOT_NEGATED),
]


@pytest.mark.parametrize("text", GATE_TEXTS)
def test_one_gate_scan_equals_each_gate_tested_alone(text: str) -> None:
    lexicon = default_lexicon()
    low = text.lower()
    alone = {code for code, gate in lexicon.gates.items() if gate is None or any(lit in low for lit in gate)}
    assert lexicon.runnable_codes(low) == alone


@pytest.mark.parametrize("text", GATE_TEXTS)
def test_gates_change_no_hint(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gated = detect_hints(text)
    monkeypatch.setattr(LaunderingLexicon, "runnable_codes", lambda self, low: frozenset(self.patterns))
    assert detect_hints(text) == gated


def test_trie_pattern_matches_the_longest_literal_as_written() -> None:
    trie = re.compile(_trie_pattern(["ab", "abcd", "abx", "a.c", "b"]))
    for text, longest in [("abcdz", "abcd"), ("abcz", "ab"), ("abxy", "abx"), ("a.c", "a.c"), ("bcd", "b")]:
        match = trie.match(text)
        assert match is not None and match.group() == longest
    assert trie.match("axc") is None  # "." is a literal dot


def test_texts_without_hints_get_scores_of_their_own() -> None:
    _, first, _ = detect_hints("nothing to see")
    first["bitcoin"] = 1.0
    _, second, _ = detect_hints("nothing to see")
    assert second == dict.fromkeys(LAUNDERING_HINTS, 0.0)

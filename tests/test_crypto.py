"""Crypto address finder: every currency's checksum, public test vectors, look-alikes, gold set."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.heads import crypto as C

GOLD = Path(__file__).resolve().parents[1] / "data" / "gold" / "laundering.jsonl"


def _p(seed: str, n: int = 20) -> bytes:
    return C.payload_from_seed("test/" + seed, n)


#: (generator, currency) for every supported address kind
KINDS: dict[str, tuple[Callable[[], str], str]] = {
    "btc_p2pkh": (lambda: C.make_btc_p2pkh(_p("a")), "BTC"),
    "btc_p2sh": (lambda: C.make_btc_p2sh(_p("b")), "BTC"),
    "btc_bech32_p2wpkh": (lambda: C.make_btc_bech32(_p("c")), "BTC"),
    "btc_bech32_p2wsh": (lambda: C.make_btc_bech32(_p("c2", 32)), "BTC"),
    "btc_taproot": (lambda: C.make_btc_taproot(_p("d", 32)), "BTC"),
    "ltc_p2pkh": (lambda: C.make_ltc_p2pkh(_p("e")), "LTC"),
    "ltc_p2sh": (lambda: C.make_ltc_p2sh(_p("f")), "LTC"),
    "ltc_bech32": (lambda: C.make_ltc_bech32(_p("g")), "LTC"),
    "doge": (lambda: C.make_doge(_p("h")), "DOGE"),
    "trx": (lambda: C.make_trx(_p("i")), "TRX"),
    "eth": (lambda: C.make_eth(_p("j")), "ETH"),
    "xmr_standard": (lambda: C.make_xmr(_p("k", 32), _p("l", 32)), "XMR"),
    "xmr_subaddress": (lambda: C.make_xmr(_p("m", 32), _p("n", 32), "subaddress"), "XMR"),
    "xmr_integrated": (lambda: C.make_xmr(_p("o", 32), _p("q", 32), "integrated", _p("r", 8)), "XMR"),
}


# ------------------------------------------------------------------------------------------- vectors

BIP_VALID = [  # BIP-173 / BIP-350 valid segwit addresses
    "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
    "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
    "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
    "BC1SW50QGDZ25J",
    "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
]
BIP_INVALID = [  # BIP-350 invalid: wrong checksum variant for the witness version, mixed case, bad char
    "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
    "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
    "bc1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3tb",
]
EIP55_VALID = [  # EIP-55 test vectors: mixed case, all caps, all lower
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
]


@pytest.mark.parametrize("address", BIP_VALID)
def test_bip_valid_vectors(address: str) -> None:
    assert C.segwit_decode(address) is not None


@pytest.mark.parametrize("address", BIP_INVALID)
def test_bip_invalid_vectors(address: str) -> None:
    assert C.segwit_decode(address) is None


@pytest.mark.parametrize("address", EIP55_VALID)
def test_eip55_valid_vectors(address: str) -> None:
    assert C.validate_eth(address)


@pytest.mark.parametrize("address", EIP55_VALID[:4])
def test_eip55_one_case_flip_is_invalid(address: str) -> None:
    idx = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    flipped = address[:idx] + address[idx].swapcase() + address[idx + 1 :]
    assert not C.validate_eth(flipped)


def test_public_base58_and_monero_vectors() -> None:
    assert C.validate_b58check("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa") == "BTC"  # the genesis block address
    monero = "44AFFq5kSiGBoZ4NMDwYtN18obc8AemS33DBLWs3H7otXft3XjrpDtQGv7SqSsaBYBb98uNbr2VBBEt7f2wfn3RVGQBEP3A"
    assert C.validate_xmr(monero) == "standard"  # the Monero project's donation address


def test_bech32_roundtrip_program() -> None:
    program = _p("prog")
    decoded = C.segwit_decode(C.make_btc_bech32(program))
    assert decoded == ("bc", 0, program)


def test_monero_base58_roundtrip() -> None:
    for n in range(1, 40):
        data = _p(f"xmr{n}", n)
        assert C.xmr_b58_decode(C.xmr_b58_encode(data)) == data


# ------------------------------------------------------------------------------------------- generators


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generated_address_is_found_valid(kind: str) -> None:
    make, currency = KINDS[kind]
    address = make()
    text = f"Payment to: {address} please"
    hits = C.find_addresses(text)
    assert [(h["currency"], h["address"], h["valid"]) for h in hits] == [(currency, address, True)]
    assert text[hits[0]["start"] : hits[0]["end"]] == address


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_one_changed_char_fails_checksum(kind: str) -> None:
    make, currency = KINDS[kind]
    address = make()
    bad = C.corrupt(address)
    assert bad != address and len(bad) == len(address)
    assert sum(a != b for a, b in zip(address, bad, strict=True)) == 1
    hits = C.find_addresses(f"wallet address: {bad}")
    assert [(h["currency"], h["address"], h["valid"]) for h in hits] == [(currency, bad, False)]


def test_unchecksummed_eth_is_valid_and_cannot_be_corrupted_detectably() -> None:
    lower = C.make_eth(_p("low"), checksummed=False)
    assert lower == lower.lower() and C.validate_eth(lower)
    assert C.validate_eth("0x" + lower[2:].upper())
    with pytest.raises(ValueError):
        C.corrupt(lower)


def test_generators_reject_wrong_payload_size() -> None:
    with pytest.raises(ValueError):
        C.make_btc_p2pkh(b"\x00" * 19)
    with pytest.raises(ValueError):
        C.make_btc_taproot(b"\x00" * 20)


def test_several_addresses_in_order_with_spans() -> None:
    btc, xmr, eth = KINDS["btc_p2pkh"][0](), KINDS["xmr_standard"][0](), KINDS["eth"][0]()
    text = f"BTC {btc}\nXMR: {xmr} / ETH {eth}."
    hits = C.find_addresses(text)
    assert [h["currency"] for h in hits] == ["BTC", "XMR", "ETH"]
    for h in hits:
        assert text[h["start"] : h["end"]] == h["address"]


# ------------------------------------------------------------------------------------------- precision

LOOKALIKES = [
    "Vendor PGP fingerprint: 7A3F 9C2B 11D4 E8F0 5B6A 92C1 3D4E 5F60 7182 93A4",
    "fingerprint 7A3F9C2B11D4E8F95B6A92C13D4E5F6A718293A4",
    "My shop: SuperDankVendorOfficialShop2021 on every market",
    "1TheBestVendorOnTheMarketForYouToday",
    "Order 9f2c4e1a7b3d5e6f8a9b0c1d2e3f4a5b",
    "tx 4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00 (too long for an address)",
    "bc1 is a prefix, bc1qshort is not an address",
]


@pytest.mark.parametrize("text", LOOKALIKES)
def test_lookalikes_are_not_addresses(text: str) -> None:
    assert C.find_addresses(text) == []


def test_invalid_base58_needs_a_currency_word_nearby() -> None:
    bad = C.corrupt(KINDS["btc_p2pkh"][0]())
    assert C.find_addresses(f"the code is {bad}") == []
    assert len(C.find_addresses(f"send BTC to {bad}")) == 1


def test_text_inside_pgp_armour_is_skipped() -> None:
    address = KINDS["btc_p2pkh"][0]()
    armour = f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{address}\n-----END PGP PUBLIC KEY BLOCK-----"
    text = f"{armour}\nBTC: {address}"
    hits = C.find_addresses(text)
    assert len(hits) == 1 and hits[0]["start"] > text.index("END PGP")


def test_empty_text() -> None:
    assert C.find_addresses("") == []


# ------------------------------------------------------------------------------------------- gold


def test_gold_address_precision_and_recall() -> None:
    rows = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()]
    tp = fp = fn = 0
    for row in rows:
        predicted = {(h["currency"], h["address"], h["valid"]) for h in C.find_addresses(row["text"])}
        gold = {(a["currency"], a["address"], a["valid"]) for a in row["crypto_addresses"]}
        tp, fp, fn = tp + len(predicted & gold), fp + len(predicted - gold), fn + len(gold - predicted)
    assert tp >= 30  # the gold set holds addresses of every currency, valid and corrupted
    assert fp == 0, "address precision must be 1.0"
    assert tp / (tp + fn) >= 0.95


# ------------------------------------------------------------------------------------------- prefilter

#: Texts at the edges of ``may_hold_address``: every kind of address (bare, in words, upper case), segwit
#: prefixes in both cases and too short, runs of 24 and 25 letters and digits, look-alikes, PGP armour.
PREFILTER_TEXTS = [
    "",
    "bc1",
    "abc1 def LTC1",
    "pay to bc1qw508d6 (cut short)",
    "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
    "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
    "x" * 24,
    "wallet: A1b2C3d4E5f6G7h8J9k1M2n3",
    "wallet: A1b2C3d4E5f6G7h8J9k1M2n3P",
    "send BTC to 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa now",
    "адрес:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "0x" + "ab" * 19,
    "ETH 0X" + "AB" * 20,
    *LOOKALIKES,
    *BIP_VALID,
    *BIP_INVALID,
    *EIP55_VALID,
    *(f"pay {make()} thanks" for make, _ in KINDS.values()),
    *(f"pay {make().upper()}" for make, _ in KINDS.values()),
    *(f"send BTC to {C.corrupt(make())}" for make, _ in KINDS.values()),
    f"-----BEGIN PGP SIGNATURE-----\n{KINDS['btc_p2pkh'][0]()}\n-----END PGP SIGNATURE-----",
]


@pytest.mark.parametrize("text", PREFILTER_TEXTS)
def test_address_prefilter_changes_nothing(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = C.find_addresses(text)
    monkeypatch.setattr(C, "may_hold_address", lambda _text: True)  # the full scans on every text
    assert C.find_addresses(text) == fast
    if not C.may_hold_address(text):
        assert fast == []

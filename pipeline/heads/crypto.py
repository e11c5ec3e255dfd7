"""Cryptocurrency addresses in free text, validated with each currency's own checksum.

Currencies (reported with their ticker in ``currency``):

- ``BTC``: P2PKH (``1...``) and P2SH (``3...``) Base58Check; segwit v0 ``bc1q...`` (bech32, BIP-173) and
  v1+ ``bc1p...`` (bech32m, BIP-350).
- ``LTC``: ``L...``/``M...`` Base58Check, ``ltc1...`` bech32/bech32m. (A ``3...`` P2SH address is the same
  string on both chains and is reported as ``BTC``.)
- ``DOGE``: ``D...`` P2PKH and ``9...``/``A...`` P2SH Base58Check.
- ``TRX``: ``T...`` Base58Check (version byte 0x41), also what USDT-TRC20 is paid to.
- ``ETH``: ``0x`` + 40 hex digits. EIP-55: a mixed-case address must match its checksum; an all-lower or
  all-upper address carries no checksum and is reported ``valid=True`` (EIP-55 defines both as valid
  unchecksummed forms, and wallets accept them).
- ``XMR``: standard (``4...``, 95 chars), subaddress (``8...``, 95) and integrated (``4...``, 106)
  addresses in Monero's block Base58 with a 4-byte Keccak-256 checksum.

Precision comes first. A string is reported when its checksum passes (a random word passes a 32-bit checksum
with probability 2**-32), or, with ``valid=False``, when its *shape* is unambiguous:

- ``bc1``/``ltc1`` + bech32 characters of a segwit length, ``0x`` + exactly 40 hex digits, ``4``/``8`` + 94 or
  105 Base58 characters: no word or hash looks like that;
- a Base58Check-shaped token (right first character and length, mixing digits, upper and lower case) only
  when a currency or wallet word stands within :data:`CONTEXT_CHARS` before it. Long vendor names and PGP
  fingerprints (hex, no lower case g-z) never qualify; text inside PGP armour is skipped altogether.

Generators (``make_btc_p2pkh`` ...) build valid addresses from arbitrary payload bytes so that tests and
sample data never need real ones; :func:`corrupt` changes one character so the checksum fails.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Final, TypedDict

import base58
from Crypto.Hash import keccak

B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32M_CONST: Final = 0x2BC830A3
#: How far before a Base58Check-shaped token a currency word must stand for an *invalid* one to be reported.
CONTEXT_CHARS: Final = 80

#: Base58Check version byte -> currency.
_B58_VERSIONS: Final[dict[int, str]] = {
    0x00: "BTC",
    0x05: "BTC",
    0x30: "LTC",
    0x32: "LTC",
    0x1E: "DOGE",
    0x16: "DOGE",
    0x41: "TRX",
}
#: first character of an address -> (currency, allowed lengths) for shape-only (invalid) reports.
_B58_SHAPES: Final[dict[str, tuple[str, range]]] = {
    "1": ("BTC", range(26, 35)),
    "3": ("BTC", range(34, 35)),
    "L": ("LTC", range(34, 35)),
    "M": ("LTC", range(34, 35)),
    "D": ("DOGE", range(34, 35)),
    "T": ("TRX", range(34, 35)),
}
_BECH32_HRPS: Final[dict[str, str]] = {"bc": "BTC", "ltc": "LTC"}
#: Monero network bytes (mainnet) -> kind.
_XMR_NETBYTES: Final[dict[int, str]] = {18: "standard", 19: "integrated", 42: "subaddress"}
_XMR_BLOCK_SIZES: Final = (0, 2, 3, 5, 6, 7, 9, 10, 11)


class AddressHit(TypedDict):
    """One address found in a text; ``text[start:end] == address``."""

    currency: str
    address: str
    valid: bool
    start: int
    end: int


# --------------------------------------------------------------------------------------------- hashing


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (the pre-standard SHA-3 that Ethereum and Monero use)."""
    return keccak.new(digest_bits=256, data=data).digest()


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


# --------------------------------------------------------------------------------------------- base58check


def b58check_encode(version: int, payload: bytes) -> str:
    """Base58Check of one version byte + payload."""
    raw = bytes([version]) + payload
    return base58.b58encode(raw + _sha256d(raw)[:4]).decode("ascii")


def b58check_decode(address: str) -> bytes | None:
    """The version byte + payload of a Base58Check string, or None when the checksum fails."""
    try:
        raw = base58.b58decode(address)
    except ValueError:
        return None
    if len(raw) < 5 or _sha256d(raw[:-4])[:4] != raw[-4:]:
        return None
    return raw[:-4]


def validate_b58check(address: str) -> str | None:
    """The currency of a valid 25-byte Base58Check address, or None."""
    raw = b58check_decode(address)
    if raw is None or len(raw) != 21:
        return None
    return _B58_VERSIONS.get(raw[0])


# --------------------------------------------------------------------------------------------- bech32
# Reference implementation of BIP-173 / BIP-350 (segwit_addr.py by Pieter Wuille), trimmed to what is used.


def _bech32_polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= generator[i] if ((top >> i) & 1) else 0
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    return [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp]


def _bech32_create_checksum(hrp: str, data: list[int], bech32m: bool) -> list[int]:
    const = BECH32M_CONST if bech32m else 1
    polymod = _bech32_polymod(_bech32_hrp_expand(hrp) + data + [0] * 6) ^ const
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def bech32_decode(bech: str) -> tuple[str, list[int], bool] | None:
    """(hrp, data without checksum, is_bech32m) of a bech32/bech32m string, or None when invalid."""
    if any(ord(x) < 33 or ord(x) > 126 for x in bech) or (bech.lower() != bech and bech.upper() != bech):
        return None
    bech = bech.lower()
    pos = bech.rfind("1")
    if pos < 1 or pos + 7 > len(bech) or len(bech) > 90:
        return None
    if not all(x in BECH32_CHARSET for x in bech[pos + 1 :]):
        return None
    hrp = bech[:pos]
    data = [BECH32_CHARSET.find(x) for x in bech[pos + 1 :]]
    const = _bech32_polymod(_bech32_hrp_expand(hrp) + data)
    if const not in (1, BECH32M_CONST):
        return None
    return hrp, data[:-6], const == BECH32M_CONST


def _convertbits(data: list[int] | bytes, frombits: int, tobits: int, pad: bool) -> list[int] | None:
    acc = 0
    bits = 0
    ret: list[int] = []
    maxv = (1 << tobits) - 1
    max_acc = (1 << (frombits + tobits - 1)) - 1
    for value in data:
        if value < 0 or (value >> frombits):
            return None
        acc = ((acc << frombits) | value) & max_acc
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            ret.append((acc >> bits) & maxv)
    if pad:
        if bits:
            ret.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        return None
    return ret


def segwit_decode(address: str) -> tuple[str, int, bytes] | None:
    """(hrp, witness version, program) of a valid segwit address (bech32 for v0, bech32m for v1+)."""
    decoded = bech32_decode(address)
    if decoded is None:
        return None
    hrp, data, is_m = decoded
    if not data:
        return None
    program = _convertbits(data[1:], 5, 8, False)
    if program is None or not 2 <= len(program) <= 40 or data[0] > 16:
        return None
    if data[0] == 0 and len(program) not in (20, 32):
        return None
    if (data[0] == 0) == is_m:  # v0 must be bech32, v1+ bech32m (BIP-350)
        return None
    return hrp, data[0], bytes(program)


def segwit_encode(hrp: str, witver: int, program: bytes) -> str:
    """A segwit address: bech32 for witness v0, bech32m for v1+."""
    converted = _convertbits(program, 8, 5, True)
    assert converted is not None  # 8-bit input always converts
    data = [witver] + converted
    checksum = _bech32_create_checksum(hrp, data, witver != 0)
    address = hrp + "1" + "".join(BECH32_CHARSET[d] for d in data + checksum)
    if segwit_decode(address) is None:
        raise ValueError(f"not a valid segwit program: v{witver}, {len(program)} bytes")
    return address


# --------------------------------------------------------------------------------------------- EIP-55


def eth_checksum_address(hex40: str) -> str:
    """The EIP-55 mixed-case form of a 40-hex-digit address (with ``0x``)."""
    lower = hex40.lower().removeprefix("0x")
    digest = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(lower)
    )


def validate_eth(address: str) -> bool:
    """EIP-55: all-lower / all-upper are valid unchecksummed forms; mixed case must match the checksum."""
    body = address[2:]
    if len(body) != 40 or any(c not in "0123456789abcdefABCDEF" for c in body):
        return False
    if body == body.lower() or body == body.upper():
        return True
    return eth_checksum_address(body) == "0x" + body


# --------------------------------------------------------------------------------------------- Monero


def xmr_b58_encode(data: bytes) -> str:
    """Monero's base58: 8-byte blocks -> 11 characters each, the last block shorter."""
    out: list[str] = []
    for i in range(0, len(data), 8):
        block = data[i : i + 8]
        num = int.from_bytes(block, "big")
        size = _XMR_BLOCK_SIZES[len(block)]
        chars = []
        for _ in range(size):
            num, rem = divmod(num, 58)
            chars.append(B58_ALPHABET[rem])
        out.append("".join(reversed(chars)))
    return "".join(out)


def xmr_b58_decode(text: str) -> bytes | None:
    """Inverse of :func:`xmr_b58_encode`; None on a bad character, block size or overflow."""
    out = bytearray()
    for i in range(0, len(text), 11):
        chunk = text[i : i + 11]
        if len(chunk) not in _XMR_BLOCK_SIZES:
            return None
        size = _XMR_BLOCK_SIZES.index(len(chunk))
        num = 0
        for c in chunk:
            idx = B58_ALPHABET.find(c)
            if idx < 0:
                return None
            num = num * 58 + idx
        if num >> (8 * size):
            return None
        out += num.to_bytes(size, "big")
    return bytes(out)


def validate_xmr(address: str) -> str | None:
    """The kind ('standard', 'integrated', 'subaddress') of a valid Monero mainnet address, or None."""
    raw = xmr_b58_decode(address)
    if raw is None or len(raw) not in (69, 77):
        return None
    if keccak256(raw[:-4])[:4] != raw[-4:]:
        return None
    kind = _XMR_NETBYTES.get(raw[0])
    if kind is None or (kind == "integrated") != (len(raw) == 77):
        return None
    return kind


# --------------------------------------------------------------------------------------------- generators


def payload_from_seed(seed: str, n: int = 20) -> bytes:
    """Deterministic pseudo-random bytes for generators (tests, sample data)."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return out[:n]


def _need(payload: bytes, n: int) -> bytes:
    if len(payload) != n:
        raise ValueError(f"payload must be {n} bytes, got {len(payload)}")
    return payload


def make_btc_p2pkh(payload: bytes) -> str:
    """A valid ``1...`` address for a 20-byte public-key hash."""
    return b58check_encode(0x00, _need(payload, 20))


def make_btc_p2sh(payload: bytes) -> str:
    """A valid ``3...`` address for a 20-byte script hash."""
    return b58check_encode(0x05, _need(payload, 20))


def make_btc_bech32(program: bytes) -> str:
    """A valid segwit v0 ``bc1q...`` address (20-byte P2WPKH or 32-byte P2WSH program)."""
    return segwit_encode("bc", 0, program)


def make_btc_taproot(program: bytes) -> str:
    """A valid segwit v1 (bech32m) ``bc1p...`` address for a 32-byte output key."""
    return segwit_encode("bc", 1, _need(program, 32))


def make_ltc_p2pkh(payload: bytes) -> str:
    """A valid ``L...`` Litecoin address."""
    return b58check_encode(0x30, _need(payload, 20))


def make_ltc_p2sh(payload: bytes) -> str:
    """A valid ``M...`` Litecoin address."""
    return b58check_encode(0x32, _need(payload, 20))


def make_ltc_bech32(program: bytes) -> str:
    """A valid ``ltc1q...`` Litecoin segwit v0 address."""
    return segwit_encode("ltc", 0, program)


def make_doge(payload: bytes) -> str:
    """A valid ``D...`` Dogecoin address."""
    return b58check_encode(0x1E, _need(payload, 20))


def make_trx(payload: bytes) -> str:
    """A valid ``T...`` Tron address."""
    return b58check_encode(0x41, _need(payload, 20))


def make_eth(payload: bytes, checksummed: bool = True) -> str:
    """An Ethereum address for 20 bytes: EIP-55 mixed case, or all lower case unless ``checksummed``."""
    hex40 = _need(payload, 20).hex()
    return eth_checksum_address(hex40) if checksummed else "0x" + hex40


def make_xmr(spend: bytes, view: bytes, kind: str = "standard", payment_id: bytes | None = None) -> str:
    """A valid Monero mainnet address: ``standard``, ``subaddress`` or ``integrated`` (8-byte payment id)."""
    netbyte = {v: k for k, v in _XMR_NETBYTES.items()}[kind]
    raw = bytes([netbyte]) + _need(spend, 32) + _need(view, 32)
    if kind == "integrated":
        raw += _need(payment_id or b"\0" * 8, 8)
    return xmr_b58_encode(raw + keccak256(raw)[:4])


def corrupt(address: str, position: int | None = None) -> str:
    """The address with one character changed (within its own alphabet) so that its checksum fails."""
    if address.lower().startswith("0x"):
        body = address[2:]
        if body in (body.lower(), body.upper()):
            raise ValueError("an unchecksummed (single-case) ETH address cannot be corrupted detectably")
        alphabet, lo = "0123456789abcdef", 2
    elif re.match(r"(?i)(bc|ltc)1", address):
        alphabet, lo = BECH32_CHARSET, address.index("1") + 1
    else:
        alphabet, lo = B58_ALPHABET, 1
    pos = len(address) // 2 if position is None else position
    pos = max(lo, min(pos, len(address) - 1))
    for step in range(1, len(alphabet)):
        char = address[pos]
        upper = char.isupper() and alphabet is not B58_ALPHABET
        base = alphabet.index(char.lower() if alphabet is not B58_ALPHABET else char)
        new = alphabet[(base + step) % len(alphabet)]
        new = new.upper() if upper else new
        candidate = address[:pos] + new + address[pos + 1 :]
        if _validate_any(candidate) is None:
            return candidate
    raise ValueError("could not corrupt address")  # pragma: no cover - every alphabet has > 1 choice


def _validate_any(address: str) -> str | None:
    if address.lower().startswith("0x"):
        return "ETH" if validate_eth(address) else None
    if re.match(r"(?i)(bc|ltc)1", address):
        dec = segwit_decode(address)
        return _BECH32_HRPS.get(dec[0]) if dec else None
    if len(address) in (95, 106):
        return "XMR" if validate_xmr(address) else None
    return validate_b58check(address)


# --------------------------------------------------------------------------------------------- finder

_B58C = "1-9A-HJ-NP-Za-km-z"
_BECH32_RE: Final = re.compile(r"(?<![0-9A-Za-z])(?:bc1|ltc1|BC1|LTC1)[0-9A-Za-z]{6,87}(?![0-9A-Za-z])")
_ETH_RE: Final = re.compile(r"(?<![0-9A-Za-z])0[xX][0-9a-fA-F]{40}(?![0-9A-Za-z])")
_B58_RE: Final = re.compile(
    rf"(?<![0-9A-Za-z])[{_B58C}]{{25,35}}(?![0-9A-Za-z])|(?<![0-9A-Za-z])[48][{_B58C}]{{94}}(?:[{_B58C}]{{11}})?(?![0-9A-Za-z])"
)
_PGP_RE: Final = re.compile(r"-----BEGIN PGP.*?(?:-----END PGP[^-]*-----|\Z)", re.S)
_CONTEXT_RE: Final = re.compile(
    r"(?i)\b(?:btc|bitcoin|xbt|ltc|litecoin|doge|dogecoin|trx|tron|trc-?20|usdt|tether|crypto|wallet|"
    r"address|addr|adres|adresse|direcci[oó]n|portefeuille|geldb[oö]rse|portfel|кошел[её]к|кошелька|адрес|"
    r"send|pay|deposit|payment|zahlung|betaling|paiement|pago|płatnoś[cć]|оплата)"
)


def _b58_shape_ok(token: str) -> bool:
    """Real addresses mix digits, upper and lower case; hashes (hex) and words do not."""
    digits = sum(c.isdigit() for c in token[1:])
    upper = sum(c.isupper() for c in token[1:])
    lower = sum(c.islower() for c in token[1:])
    non_hex_lower = any(c.islower() and c not in "abcdef" for c in token)
    return digits >= 2 and upper >= 3 and lower >= 3 and non_hex_lower


#: A run of 25 ASCII letters and digits: every Base58 address (25 to 35 characters, Monero 95 or 106) and
#: every Ethereum one (``0x`` + 40 hex digits) contains one.
_LONG_ALNUM_RUN_RE: Final = re.compile(r"[0-9A-Za-z]{25}")


def may_hold_address(text: str) -> bool:
    """False only when ``text`` cannot hold an address, so :func:`find_addresses` may skip it.

    A necessary condition for a match of any address pattern, proven from the patterns: ``_BECH32_RE``
    matches start with ``bc1``/``ltc1``/``BC1``/``LTC1`` (each contains ``c1`` or ``C1``); ``_ETH_RE`` and
    ``_B58_RE`` matches are runs of at least 25 ASCII letters and digits. Most listings have neither, and
    this check costs a fraction of the three scans.
    """
    return "c1" in text or "C1" in text or _LONG_ALNUM_RUN_RE.search(text) is not None


def find_addresses(text: str) -> list[AddressHit]:
    """Every cryptocurrency address in ``text``, in order, with its currency and checksum result."""
    if not text or not may_hold_address(text):
        return []
    hits: list[AddressHit] = []
    masked: list[tuple[int, int]] = (
        [m.span() for m in _PGP_RE.finditer(text)] if "-----BEGIN PGP" in text else []
    )

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in masked)

    def add(currency: str, start: int, end: int, valid: bool) -> None:
        hits.append(
            {"currency": currency, "address": text[start:end], "valid": valid, "start": start, "end": end}
        )
        masked.append((start, end))

    if "1" in text:
        for m in _BECH32_RE.finditer(text):
            if not free(*m.span()):
                continue
            token = m.group()
            dec = segwit_decode(token)
            hrp = "ltc" if token.lower().startswith("ltc") else "bc"
            if dec is not None and dec[0] in _BECH32_HRPS:
                add(_BECH32_HRPS[dec[0]], m.start(), m.end(), True)
            elif len(token) - len(hrp) in (40, 60) and (token.lower() == token or token.upper() == token):
                # segwit length (v0 P2WPKH / P2WSH and v1 taproot) in one case: unambiguous shape
                add(_BECH32_HRPS[hrp], m.start(), m.end(), False)
    if "0x" in text or "0X" in text:
        for m in _ETH_RE.finditer(text):
            if free(*m.span()):
                add("ETH", m.start(), m.end(), validate_eth(m.group()))
    for m in _B58_RE.finditer(text):
        if not free(*m.span()):
            continue
        token = m.group()
        if len(token) in (95, 106):
            add("XMR", m.start(), m.end(), validate_xmr(token) is not None)
            continue
        currency = validate_b58check(token)
        if currency is not None:
            add(currency, m.start(), m.end(), True)
            continue
        shape = _B58_SHAPES.get(token[0])
        if (
            shape is not None
            and len(token) in shape[1]
            and _b58_shape_ok(token)
            and _CONTEXT_RE.search(text, max(0, m.start() - CONTEXT_CHARS), m.start())
        ):
            add(shape[0], m.start(), m.end(), False)
    hits.sort(key=lambda h: h["start"])
    return hits


#: Generators by currency name, for sample-data builders.
GENERATORS: Final[dict[str, Callable[..., str]]] = {
    "btc_p2pkh": make_btc_p2pkh,
    "btc_p2sh": make_btc_p2sh,
    "btc_bech32": make_btc_bech32,
    "btc_taproot": make_btc_taproot,
    "ltc_p2pkh": make_ltc_p2pkh,
    "ltc_p2sh": make_ltc_p2sh,
    "ltc_bech32": make_ltc_bech32,
    "doge": make_doge,
    "trx": make_trx,
    "eth": make_eth,
    "xmr": make_xmr,
}

"""What every ingest adapter yields: raw records with provenance, or rejections with a reason.

Adapters never drop input silently: each input record becomes exactly one :class:`RawRecord` or one
:class:`Rejected`, so the ``clean`` stage can prove ``read = kept + quarantined`` per source.
"""

from __future__ import annotations

import codecs
import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Provenance:
    """Where a record came from: the file, its place in the file and the adapter that read it."""

    file: str
    locator: str  # "line 12", "offset 4096", "message 57", "row 3", "page" ...
    adapter: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class RawRecord:
    """One scraped listing or message, as read, before cleaning.

    ``id`` is the id the input gave (kept unchanged through every output); when the input has none,
    :func:`stable_id` derives one from ``source`` and ``native_key``.
    """

    source: str
    kind: str  # "listing" | "ad"
    provenance: Provenance
    id: str | None = None
    native_key: str | None = None
    market: str | None = None  # market name, or messenger channel
    vendor: str | None = None  # vendor, or message sender
    title: str | None = None
    body: str | None = None
    price: float | None = None
    currency: str | None = None
    ships_from_raw: str | None = None
    ships_to_raw: str | None = None
    category_raw: str | None = None
    posted_at: str | None = None  # ISO 8601 text as given or normalised by the adapter
    extra: dict[str, Any] = field(default_factory=dict)  # adapter-specific fields worth keeping


@dataclass
class Rejected:
    """An input record (or a whole unreadable file) that could not become a RawRecord."""

    source: str
    reason: str  # short machine-readable code, e.g. "invalid_json", "unreadable_file", "no_text"
    provenance: Provenance
    detail: str = ""
    raw_excerpt: str = ""  # at most a few hundred characters of the offending input

    def __post_init__(self) -> None:
        self.raw_excerpt = self.raw_excerpt[:300]
        self.detail = self.detail[:500]


def stable_id(source: str, native_key: str) -> str:
    """A stable id from the source name and the record's native key (same input -> same id)."""
    digest = hashlib.blake2b(f"{source}\x1f{native_key}".encode(), digest_size=10).hexdigest()
    return f"{source}:{digest}"


# --- helpers shared by the adapters ------------------------------------------------------------------------

#: Every ``Rejected.reason`` the ingest adapters use.
REJECT_REASONS: tuple[str, ...] = (
    "unreadable_file",  # the whole file: missing, binary junk, not the format, truncated whole-file JSON
    "truncated_file",  # a stream that breaks off part-way (cut gzip, corrupt parquet row group)
    "invalid_json",  # a JSON Lines line that does not parse
    "invalid_record",  # parses, but is not an object or has a field of a type that cannot be read
    "malformed_row",  # a CSV row the csv module cannot split, or with more cells than the header
    "no_text",  # neither title nor body/text
)

Item = RawRecord | Rejected


class SourceReader:
    """Iterable over one source: yields a :class:`RawRecord` or a :class:`Rejected` for every input record.

    After (each) iteration ``skipped`` counts input items that are not records at all (e.g. Telegram service
    messages), ``counts`` the records and rejections yielded, and ``files`` lists the files read.
    Subclasses implement :meth:`_iter`.
    """

    adapter: str = ""

    def __init__(self, path: Path | str, source: str) -> None:
        self.path = Path(path)
        self.source = source
        self.files: list[str] = []
        self.skipped: dict[str, int] = {}
        self.counts: dict[str, int] = {"records": 0, "rejected": 0}

    def __iter__(self) -> Iterator[Item]:
        self.skipped = {}
        records = rejected = 0
        try:
            for item in self._iter():
                if type(item) is RawRecord:
                    records += 1
                else:
                    rejected += 1
                yield item
        finally:
            self.counts = {"records": records, "rejected": rejected}

    def _iter(self) -> Iterator[Item]:
        raise NotImplementedError

    def skip(self, reason: str) -> None:
        """Count an input item that is not a record (so it is neither kept nor quarantined)."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def reject(self, reason: str, file: str, locator: str, detail: str = "", raw: str = "") -> Rejected:
        """A :class:`Rejected` of this source and adapter."""
        return Rejected(self.source, reason, Provenance(file, locator, self.adapter), detail, raw)


def list_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``root`` (recursive) whose lower-cased name ends with one of ``suffixes``, sorted.

    Hidden files and folders (``.name``) are left out: they are editor and VCS litter, not data.
    """
    found = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.name.lower().endswith(suffixes)
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def looks_binary(sample: bytes) -> bool:
    """True when a byte sample is not text in any encoding worth repairing: over 5% control bytes.

    Random or compressed bytes have ~11% (28 of 256 values); text with a stray NUL line does not reach 5%,
    so such a file is read and its bad line rejected on its own. UTF-16 without a BOM (every other byte NUL)
    counts as binary; UTF-16/32 with a BOM is text, which callers check first.
    """
    if not sample:
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls / len(sample) > 0.05


_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def sniff_encoding(sample: bytes) -> str | None:
    """The text encoding of a file from its first bytes, or None when it looks like binary junk.

    A BOM wins. Otherwise UTF-8, unless the sample has invalid UTF-8 and not one valid multi-byte character:
    then cp1252, the usual encoding of old CSV exports. (A UTF-8 file with a few bad bytes stays UTF-8; its
    bad bytes become U+FFFD when read with ``errors="replace"``.)
    """
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    if looks_binary(sample):
        return None
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(sample, final=False)
    if "\ufffd" in text and not any(ord(c) > 127 and c != "\ufffd" for c in text):
        return "cp1252"
    return "utf-8"


_CURRENCY_NAMES: dict[str, str] = {
    "$": "USD",
    "us$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "฿": "BTC",
    "₿": "BTC",
    "btc": "BTC",
    "xbt": "BTC",
    "bitcoin": "BTC",
    "xmr": "XMR",
    "monero": "XMR",
    "ɱ": "XMR",
    "ltc": "LTC",
    "eth": "ETH",
    "₽": "RUB",
    "руб": "RUB",
    "rub": "RUB",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "¥": "JPY",
    "₹": "INR",
    "zł": "PLN",
}


def normalise_currency(value: str) -> str | None:
    """A three-letter currency code from a code, symbol or name ("usd", "$", "฿" -> USD, USD, BTC).

    Returns None for anything else ("BTC_binned", "USDT"), which callers keep raw in ``extra``.
    """
    text = value.strip().rstrip(".").lower()
    if text in _CURRENCY_NAMES:
        return _CURRENCY_NAMES[text]
    if len(text) == 3 and text.isascii() and text.isalpha():
        return text.upper()
    return None


_NUMBER = r"\d+(?:[.,\s'\u00a0\u202f]\d{3})*(?:[.,]\d+)?|[.,]\d+"
_CUR = r"[^\d\s.,+\-]{1,8}"
_PRICE_RE = re.compile(rf"^\s*(?P<pre>{_CUR})?\s*(?P<num>{_NUMBER})\s*(?P<post>{_CUR})?\s*$")


def _to_float(num: str) -> float | None:
    digits = num.replace(" ", "").replace("\u00a0", "").replace("\u202f", "").replace("'", "")
    if "," in digits and "." in digits:
        # the separator written last is the decimal one: 1,234.50 / 1.234,50
        if digits.rfind(",") > digits.rfind("."):
            digits = digits.replace(".", "").replace(",", ".")
        else:
            digits = digits.replace(",", "")
    elif digits.count(",") == 1 and len(digits.split(",")[1]) != 3:
        digits = digits.replace(",", ".")  # 12,5 -> 12.5 (but 1,200 -> 1200)
    else:
        digits = digits.replace(",", "")
    try:
        return float(digits)
    except ValueError:
        return None


def parse_price(value: Any) -> tuple[float | None, str | None]:
    """``(price, currency)`` from a number or a price text ("0.1 BTC", "$120", "1.234,50 €", "120").

    Only a text that is one price (a number with at most a currency before and after) is parsed; anything
    else ("[1e-07,1.49)", "ask me") gives ``(None, None)``. Non-finite numbers give None.
    """
    if isinstance(value, bool):
        return None, None
    if isinstance(value, int | float):
        number = float(value)
        return (number, None) if math.isfinite(number) else (None, None)
    if not isinstance(value, str):
        return None, None
    match = _PRICE_RE.match(value)
    if match is None:
        return None, None
    parsed = _to_float(match["num"])
    if parsed is None or not math.isfinite(parsed):
        return None, None
    currency = None
    for part in (match["pre"], match["post"]):
        if part:
            currency = normalise_currency(part)
            if currency is None:
                return None, None  # "12 pills" is not a price
    return parsed, currency

"""The one schema of cleaned records (``data/interim/records.parquet``) and its validation.

Every stage after ``clean`` reads records in this schema; the labelled-record schema of the contract
(section 6) is built by :mod:`pipeline.tagger`.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from pipeline.taxonomy import KINDS

#: Cleaned-record schema. ``text`` is what the models read; ``text_folded`` the de-obfuscated copy.
RECORD_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("market", pa.string()),
        pa.field("vendor", pa.string()),
        pa.field("title", pa.string()),
        pa.field("body", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("ships_from_raw", pa.string()),
        pa.field("ships_to_raw", pa.string()),
        pa.field("category_raw", pa.string()),
        pa.field("posted_at", pa.string()),
        pa.field("lang", pa.string()),
        pa.field("text", pa.string(), nullable=False),
        pa.field("text_folded", pa.string(), nullable=False),
        pa.field("dup_group", pa.string(), nullable=False),
        pa.field("is_representative", pa.bool_(), nullable=False),
        pa.field("extra", pa.string()),  # JSON object: adapter-specific fields (market labels, urls ...)
        pa.field("prov_file", pa.string(), nullable=False),
        pa.field("prov_locator", pa.string(), nullable=False),
        pa.field("prov_adapter", pa.string(), nullable=False),
    ]
)
RECORD_COLUMNS: tuple[str, ...] = tuple(RECORD_SCHEMA.names)

#: Longest text a record may carry; longer ones are quarantined (a 10 MB field is junk, not a listing).
MAX_TEXT_CHARS = 100_000
MIN_TEXT_CHARS = 2


def validate_record(row: dict[str, Any]) -> str | None:
    """Return the reason a cleaned record breaks the schema, or None when it is valid.

    Checks what pyarrow's types cannot: required text present and of sane length, known ``kind``,
    finite non-negative price, three-letter currency.
    """
    for name in ("id", "source", "kind", "text", "prov_file", "prov_locator", "prov_adapter"):
        if not isinstance(row.get(name), str) or not row[name]:
            return f"missing_{name}"
    if row["kind"] not in KINDS:
        return "unknown_kind"
    text = row["text"]
    if len(text.strip()) < MIN_TEXT_CHARS:
        return "empty_text"
    if len(text) > MAX_TEXT_CHARS:
        return "text_too_long"
    price = row.get("price")
    if price is not None and (not isinstance(price, float | int) or not math.isfinite(price) or price < 0):
        return "invalid_price"
    currency = row.get("currency")
    if currency is not None and (len(currency) != 3 or not currency.isalpha()):
        return "invalid_currency"
    return None

"""What every ingest adapter yields: raw records with provenance, or rejections with a reason.

Adapters never drop input silently: each input record becomes exactly one :class:`RawRecord` or one
:class:`Rejected`, so the ``clean`` stage can prove ``read = kept + quarantined`` per source.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
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

"""Read a scored batch (labelled records, ../shared/spec/labels.md section 6) for review.

A scored batch is what ``narcotag score ... --out`` writes: a JSONL (optionally gzipped) or Parquet file of
labelled records, or an output folder whose ``parts/`` hold such files. The review app needs the text the
evidence spans index into; records without ``text`` get it (with ``title``, ``posted_at`` and ``price``) from
the cleaned records passed as ``records`` (``data/interim/records.parquet`` or a ``narcotag clean --out``
table), joined on ``id``.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, NON_DRUG, QUANTITY_FIELDS, empty_quantity

#: Columns taken from cleaned records when the scored record lacks them.
JOIN_FIELDS = ("title", "text", "posted_at", "price", "currency", "market", "vendor", "lang", "kind")


class BatchError(ValueError):
    """The scored batch cannot be reviewed; the message says why and what to pass."""


@dataclass
class Batch:
    """Normalised labelled records, in batch order, and what was set aside while reading."""

    name: str
    records: list[dict[str, Any]]
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)


def scored_files(path: Path) -> list[Path]:
    """The record files of a scored batch: the file itself, or a score output folder's parts."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BatchError(f"{path}: no such scored batch (a .jsonl/.parquet file or a score output folder)")
    folder = path / "parts" if (path / "parts").is_dir() else path
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and _is_records_file(p) and "quarantine" not in p.name and p.name != "manifest.json"
    )
    if not files:
        raise BatchError(f"{path}: no .jsonl or .parquet files of labelled records found")
    return files


def _is_records_file(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.gz", ".parquet", ".pq", ".json"))


def iter_scored(path: Path) -> Iterator[dict[str, Any]]:
    """Labelled records as dicts, file by file, in order (JSONL, JSONL.gz, JSON array, Parquet)."""
    for file in scored_files(path):
        name = file.name.lower()
        if name.endswith((".parquet", ".pq")):
            yield from pq.read_table(file).to_pylist()
        elif name.endswith(".json"):
            data = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(data, list):
                raise BatchError(f"{file}: a .json batch must hold a list of labelled records")
            yield from data
        else:
            opener = gzip.open if name.endswith(".gz") else open
            with opener(file, "rt", encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise BatchError(f"{file}:{number}: not JSON ({e})") from e


def read_cleaned(path: Path) -> dict[str, dict[str, Any]]:
    """Cleaned records (Parquet or JSONL) by id, only the columns the review joins."""
    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        names = set(pq.read_schema(path).names)
        rows = pq.read_table(path, columns=["id", *(c for c in JOIN_FIELDS if c in names)]).to_pylist()
    else:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return {str(r["id"]): r for r in rows}


def normalise(record: dict[str, Any]) -> dict[str, Any]:
    """A labelled record with every field the review reads present and of the right type.

    Unknown extra fields are kept. Missing lists become empty, missing scores empty maps, a missing
    ``confidence`` is worked out from the scores (:func:`fallback_confidence`)."""
    if record.get("id") in (None, ""):
        raise BatchError("a labelled record without an id")
    out = dict(record)
    out["id"] = str(record["id"])
    for key in ("drug_types", "ships_from", "ships_to", "laundering_hints"):
        out[key] = [str(v) for v in (record.get(key) or [])]
    for key in ("quantities", "crypto_addresses", "contacts"):
        out[key] = [dict(v) for v in (record.get(key) or []) if isinstance(v, dict)]
    out["drug_type_scores"] = _scores(record.get("drug_type_scores"), DRUG_TYPES)
    out["laundering_scores"] = _scores(record.get("laundering_scores"), LAUNDERING_HINTS)
    quantity = record.get("quantity") or {}
    out["quantity"] = {k: _number(quantity.get(k)) for k in QUANTITY_FIELDS} if quantity else empty_quantity()
    evidence = record.get("evidence") or {}
    out["evidence"] = {
        k: [dict(v) for v in (evidence.get(k) or []) if isinstance(v, dict)]
        for k in ("drug_type", "origin", "laundering")
    }
    model = record.get("model") or {}
    out["model"] = {"name": str(model.get("name") or ""), "version": str(model.get("version") or "")}
    confidence = _number(record.get("confidence"))
    if confidence is None:
        confidence = fallback_confidence(out["drug_type_scores"], out["drug_types"])
    out["confidence"] = float(confidence)
    out["provenance"] = dict(record.get("provenance") or {})
    for key in ("title", "text", "market", "vendor", "lang", "kind", "source", "posted_at"):
        value = record.get(key)
        out[key] = None if value is None else str(value)
    return out


def fallback_confidence(scores: dict[str, float], codes: list[str], threshold: float = 0.5) -> float:
    """Confidence of a record that carries none: the smallest distance of a drug-type score from a
    ``threshold`` on the side of its decision, rescaled to [0, 1] (the Tagger's rule, without its learned
    per-code thresholds). No scores: 0, so such records come first in the queue."""
    margins = []
    for code, score in scores.items():
        if code in codes:
            margins.append((score - threshold) / (1 - threshold))
        elif code != NON_DRUG or NON_DRUG in codes:
            margins.append((threshold - score) / threshold)
    return round(min(1.0, max(0.0, min(margins))), 4) if margins else 0.0


def _scores(value: Any, codes: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {code: float(s) for code in codes if (s := _number(value.get(code))) is not None}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def load_batch(path: Path, records: Path | None = None) -> Batch:
    """Read and normalise a scored batch; join text (and date, price) from cleaned ``records`` if given.

    Raises :class:`BatchError` when a record has no text to review and none can be joined."""
    path = Path(path)
    cleaned = read_cleaned(records) if records is not None else {}
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    duplicates = 0
    missing_text = 0
    for raw in iter_scored(path):
        record = normalise(raw)
        if record["id"] in seen:
            duplicates += 1
            continue
        seen.add(record["id"])
        joined = cleaned.get(record["id"])
        if joined:
            for key in JOIN_FIELDS:
                if record.get(key) in (None, "") and joined.get(key) not in (None, ""):
                    record[key] = joined[key]
        if not record.get("text"):
            missing_text += 1
        out.append(record)
    if missing_text:
        hint = (
            "pass the cleaned records they were scored from with --records "
            "(e.g. data/interim/records.parquet)"
            if records is None
            else f"{records} has no text for them either"
        )
        raise BatchError(f"{path}: {missing_text} labelled record(s) carry no `text` to review; {hint}")
    notes = [f"{duplicates} record(s) with an id seen before were skipped"] if duplicates else []
    name = path.name.removesuffix(".gz")
    return Batch(name=name, records=out, duplicates=duplicates, notes=notes)

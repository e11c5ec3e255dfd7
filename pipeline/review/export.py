"""Reviewed labels out of the review database: ``data/labels/reviewed.jsonl`` and a Hugging Face dataset.

``reviewed.jsonl`` is what ``prepare`` reads (:func:`pipeline.labels.reviewed.load_reviewed_labels`): one
JSON object per line with ``id`` and ``drug_types`` plus the other reviewed heads and who/when/which model.
The file is a plain git-tracked input; exporting *merges* into it by default (lines for records this
database does not know are kept; for a record in both, the later ``reviewed_at`` wins), sorted by id so
that diffs stay small. Round-1 decisions are exported (round 2 only where round 1 was taken back).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.review.labels import changed_fields, predicted_labels
from pipeline.review.storage import ReviewStore
from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, QUANTITY_FIELDS


def reviewed_rows(store: ReviewStore) -> list[dict[str, Any]]:
    """One row per reviewed record: the decision in force (round 1, else round 2), contract fields first."""
    chosen: dict[str, dict[str, Any]] = {}
    for decision in store.current_decisions():
        rid = decision["rid"]
        if rid not in chosen or decision["round"] < chosen[rid]["round"]:
            chosen[rid] = decision
    rows = []
    for rid in sorted(chosen):
        d = chosen[rid]
        labels = d["after"]
        rows.append(
            {
                "id": rid,
                **{
                    k: labels[k]
                    for k in ("drug_types", "quantity", "ships_from", "ships_to", "laundering_hints")
                },
                "reviewer": d["reviewer"],
                "reviewed_at": d["created_at"],
                "model_version": d["model_version"],
                "action": d["action"],
                "round": d["round"],
                "decision": d["seq"],
                "source": d["source"],
                "changed": changed_fields(predicted_labels(d["payload"]), labels),
            }
        )
    return rows


def read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    """A reviewed-labels file as id -> latest line (later lines win, as ``prepare`` reads it)."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                    out[str(entry["id"])] = entry
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{number}: {e}") from e
    return out


def write_jsonl_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write JSON lines to ``path`` via a temporary file in the same folder (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_reviewed(store: ReviewStore, out: Path, merge: bool = True) -> dict[str, int]:
    """Write the latest decision per record to ``out`` (JSONL, compatible with ``prepare``).

    With ``merge`` the lines already in ``out`` for other records are kept, and for a record in both the
    later ``reviewed_at`` wins. Returns counts: exported, kept from the file, written, corrections."""
    rows = {r["id"]: r for r in reviewed_rows(store)}
    existing = read_jsonl(out) if merge else {}
    kept = 0
    merged: dict[str, dict[str, Any]] = {}
    for rid, entry in existing.items():
        ours = rows.get(rid)
        if ours is None or str(entry.get("reviewed_at") or "") > str(ours["reviewed_at"]):
            merged[rid] = entry
            kept += 1
    for rid, row in rows.items():
        merged.setdefault(rid, row)
    ordered = [merged[k] for k in sorted(merged)]
    write_jsonl_atomic(out, ordered)
    return {
        "exported": len(rows),
        "kept": kept,
        "written": len(ordered),
        "corrections": sum(1 for r in rows.values() if r["changed"]),
    }


def hf_features() -> Any:
    """The Hugging Face ``datasets`` features of the reviewed dataset (codes as ClassLabels)."""
    from datasets import ClassLabel, Features, Sequence, Value

    return Features(
        {
            "id": Value("string"),
            "title": Value("string"),
            "text": Value("string"),
            "market": Value("string"),
            "kind": Value("string"),
            "lang": Value("string"),
            "drug_types": Sequence(ClassLabel(names=list(DRUG_TYPES))),
            **{q: Value("float64") for q in QUANTITY_FIELDS},
            "ships_from": Sequence(Value("string")),
            "ships_to": Sequence(Value("string")),
            "laundering_hints": Sequence(ClassLabel(names=list(LAUNDERING_HINTS))),
            "reviewer": Value("string"),
            "reviewed_at": Value("string"),
            "model_version": Value("string"),
            "action": Value("string"),
        }
    )


def export_hf_dataset(store: ReviewStore, out: Path) -> dict[str, int]:
    """Save the reviewed records (text + reviewed labels) as a ``datasets.Dataset`` at ``out``
    (``datasets.load_from_disk(out)`` reads it back)."""
    from datasets import Dataset

    texts = {r["rid"]: r for r in store.current_decisions()}
    rows = []
    for row in reviewed_rows(store):
        source = texts[row["id"]]
        rows.append(
            {
                "id": row["id"],
                "title": source["title"],
                "text": source["text"],
                "market": source["market"],
                "kind": source["kind"],
                "lang": source["lang"],
                "drug_types": row["drug_types"],
                **{q: row["quantity"].get(q) for q in QUANTITY_FIELDS},
                "ships_from": row["ships_from"],
                "ships_to": row["ships_to"],
                "laundering_hints": row["laundering_hints"],
                "reviewer": row["reviewer"],
                "reviewed_at": row["reviewed_at"],
                "model_version": row["model_version"],
                "action": row["action"],
            }
        )
    features = hf_features()
    dataset = (
        Dataset.from_list(rows, features=features)
        if rows
        else Dataset.from_dict({k: [] for k in features}, features=features)
    )
    dataset.save_to_disk(str(out))
    return {"rows": len(rows)}

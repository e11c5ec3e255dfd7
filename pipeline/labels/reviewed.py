"""Reviewed labels: analysts' corrections (``data/labels/reviewed.jsonl``), gold that overrides market labels.

One JSON object per line with at least ``id`` and ``drug_types``; later lines for the same id win (the
review log is append-only, so the latest decision is the one that counts).
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.taxonomy import DRUG_TYPES, enforce_non_drug_exclusive


class ReviewedLabelsError(ValueError):
    """A reviewed-labels file breaks the contract; the message names the line."""


def load_reviewed_labels(path: Path) -> dict[str, list[str]]:
    """Map record id -> reviewed drug_types codes; an absent file means no reviews yet."""
    if not path.exists():
        return {}
    reviewed: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                codes = list(entry["drug_types"])
                record_id = str(entry["id"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ReviewedLabelsError(f"{path}:{number}: {e}") from e
            unknown = set(codes) - set(DRUG_TYPES)
            if unknown:
                raise ReviewedLabelsError(f"{path}:{number}: unknown drug_types {sorted(unknown)}")
            reviewed[record_id] = enforce_non_drug_exclusive(codes)
    return reviewed

"""The one Tagger: cleaned records in, labelled records (../shared/spec/labels.md section 6) out.

Evaluate, export (the MLflow pyfunc), ``narcotag score``, the Spark UDF, ``mlflow models serve`` and the
review app all call :meth:`Tagger.tag`, so a figure measured in evaluation is the figure users get.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.heads.registry import HEADS, head_class
from pipeline.taxonomy import DRUG_TYPES, NON_DRUG

MODEL_NAME = "narcotag-tagger"


def models_fingerprint(models_dir: Path) -> str:
    """A short content hash of a models folder: the model version when no registry version is known."""
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(p for p in models_dir.rglob("*") if p.is_file() and p.name != "train_metrics.json"):
        digest.update(str(path.relative_to(models_dir)).encode())
        digest.update(path.read_bytes())
    return "local-" + digest.hexdigest()


class Tagger:
    """All heads together. ``tag`` turns a DataFrame of cleaned records into labelled records."""

    def __init__(
        self, heads: dict[str, Any], model_name: str = MODEL_NAME, model_version: str = "unversioned"
    ) -> None:
        missing = set(HEADS) - set(heads)
        if missing:
            raise ValueError(f"Tagger needs every head; missing {sorted(missing)}")
        self.heads = heads
        self.model = {"name": model_name, "version": model_version}

    @classmethod
    def load(cls, models_dir: Path, model_name: str = MODEL_NAME, model_version: str | None = None) -> Tagger:
        """Load every head from ``models_dir/<head>/``."""
        models_dir = Path(models_dir)
        absent = [name for name in HEADS if not (models_dir / name).is_dir()]
        if absent:
            raise FileNotFoundError(
                f"{models_dir} lacks trained heads {absent}: run `narcotag train` (or `dvc repro`) first"
            )
        heads = {name: head_class(name).load(models_dir / name) for name in HEADS}
        return cls(heads, model_name, model_version or models_fingerprint(models_dir))

    def tag(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        """Labelled records, one per input row, in input order; ``id`` passed through unchanged."""
        if records.empty:
            return []
        records = records.reset_index(drop=True)
        columns: dict[str, list[Any]] = {}
        for name in HEADS:
            columns.update(self.heads[name].predict(records))
        thresholds = getattr(self.heads["drug_type"], "thresholds_", None)
        out = []
        for i, row in enumerate(records.itertuples(index=False)):
            scores = columns["drug_type_scores"][i]
            codes = columns["drug_types"][i]
            out.append(
                {
                    "id": row.id,
                    "source": getattr(row, "source", None),
                    "kind": getattr(row, "kind", None),
                    "market": getattr(row, "market", None),
                    "vendor": getattr(row, "vendor", None),
                    "lang": getattr(row, "lang", None),
                    "drug_types": codes,
                    "drug_type_scores": scores,
                    "quantity": columns["quantity"][i],
                    "quantities": columns["quantities"][i],
                    "ships_from": columns["ships_from"][i],
                    "ships_to": columns["ships_to"][i],
                    "laundering_hints": columns["laundering_hints"][i],
                    "laundering_scores": columns["laundering_scores"][i],
                    "crypto_addresses": columns["crypto_addresses"][i],
                    "contacts": columns["contacts"][i],
                    "evidence": {
                        "drug_type": columns["drug_type_evidence"][i],
                        "origin": columns["origin_evidence"][i],
                        "laundering": columns["laundering_evidence"][i],
                    },
                    "confidence": decision_confidence(scores, codes, thresholds),
                    "model": self.model,
                    "provenance": {
                        "file": getattr(row, "prov_file", None),
                        "locator": getattr(row, "prov_locator", None),
                        "adapter": getattr(row, "prov_adapter", None),
                    },
                }
            )
        return out


def decision_confidence(
    scores: dict[str, float], codes: list[str], thresholds: Iterable[float] | None
) -> float:
    """How sure the drug-type decision is, in [0, 1]: the smallest distance of any code's score from its
    threshold, rescaled. Reviewers see the least confident records first."""
    limits = dict(
        zip(DRUG_TYPES, thresholds if thresholds is not None else [0.5] * len(DRUG_TYPES), strict=True)
    )
    margins = []
    for code, score in scores.items():
        t = limits[code]
        if code in codes:
            margins.append((score - t) / (1 - t) if t < 1 else 0.0)
        elif code != NON_DRUG or NON_DRUG in codes:
            margins.append((t - score) / t if t > 0 else 0.0)
    return round(float(np.clip(min(margins) if margins else 0.0, 0.0, 1.0)), 4)


def to_json_line(record: dict[str, Any]) -> str:
    """One labelled record as a JSON line (numpy numbers made plain)."""
    return json.dumps(record, ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

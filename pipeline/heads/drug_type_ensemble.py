"""The ``ensemble`` family: drug_type heads of other families whose scores are averaged.

Chosen by ``export`` only when the ``compare`` stage measured it better than every single family at the
throughput floor. Each member keeps its own preprocessing in its own folder (``members/<family>/``); the
ensemble owns only the thresholds for the averaged scores (tuned on validation data, never on test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.heads.drug_type import (
    DrugTypeParams,
    Lexicon,
    binarize,
    drug_type_columns,
    load_lexicon_terms,
    tune_thresholds,
)
from pipeline.taxonomy import DRUG_TYPES


class EnsembleDrugTypeHead:
    """Mean of the members' per-code scores, then per-class thresholds (family ``ensemble``)."""

    name = "drug_type"

    def __init__(self, members: dict[str, Any] | None = None, params: DrugTypeParams | None = None) -> None:
        self.members = dict(members or {})
        self.params = params or DrugTypeParams()
        self.thresholds_ = np.full(len(DRUG_TYPES), self.params.default_threshold)
        self.lexicon = Lexicon(load_lexicon_terms())

    def fit(
        self,
        records: pd.DataFrame,
        labels: list[list[str]] | None = None,
        val_records: pd.DataFrame | None = None,
        val_labels: list[list[str]] | None = None,
    ) -> EnsembleDrugTypeHead:
        """Fit every member on the same data, then tune the ensemble's thresholds on validation."""
        for member in self.members.values():
            member.fit(records, labels, val_records, val_labels)
        if val_records is not None and len(val_records):
            val_labels = val_labels if val_labels is not None else list(val_records["labels"])
            self.tune(self.predict_scores(val_records), binarize(val_labels))
        return self

    def tune(self, val_scores: np.ndarray, val_y: np.ndarray) -> None:
        """Set the thresholds from averaged validation scores (e.g. the members' stored val scores)."""
        self.thresholds_ = tune_thresholds(val_scores, val_y, self.params)

    def predict_scores(self, records: pd.DataFrame) -> np.ndarray:
        """The members' (n, 17) score matrices, averaged."""
        if not self.members:
            raise RuntimeError("EnsembleDrugTypeHead has no members")
        return np.mean([np.asarray(m.predict_scores(records)) for m in self.members.values()], axis=0)

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]:
        """``drug_types``, ``drug_type_scores`` and ``drug_type_evidence`` per record (as every family)."""
        return drug_type_columns(
            self.predict_scores(records), self.thresholds_, self.params.fallback_ratio, self.lexicon, records
        )

    def save(self, directory: Path) -> None:
        """Members under ``members/<family>/``, plus thresholds, params and the head marker."""
        from dataclasses import asdict

        from pipeline.families import write_head_marker

        directory.mkdir(parents=True, exist_ok=True)
        for family, member in self.members.items():
            member.save(directory / "members" / family)
        (directory / "thresholds.json").write_text(
            json.dumps(dict(zip(DRUG_TYPES, map(float, self.thresholds_), strict=True)), indent=2)
        )
        (directory / "params.json").write_text(json.dumps(asdict(self.params), indent=2))
        write_head_marker(directory, "ensemble", members=list(self.members))

    @classmethod
    def load(cls, directory: Path) -> EnsembleDrugTypeHead:
        """Load the members (each by its own marker) and the ensemble's thresholds."""
        from pipeline.families import load_drug_type_head

        marker = json.loads((directory / "head.json").read_text())
        members = {f: load_drug_type_head(directory / "members" / f) for f in marker["members"]}
        head = cls(members, DrugTypeParams(**json.loads((directory / "params.json").read_text())))
        thresholds = json.loads((directory / "thresholds.json").read_text())
        head.thresholds_ = np.array([thresholds[c] for c in DRUG_TYPES])
        return head

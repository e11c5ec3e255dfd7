"""The ``ensemble`` family: drug_type heads of other families whose scores are averaged.

Chosen by ``export`` only when the ``compare`` stage measured it better than every single family at the
throughput floor. Each member keeps its own preprocessing in its own folder (``members/<family>/``); the
ensemble owns only the thresholds for the averaged scores (tuned on validation data, never on test).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
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
)
from pipeline.heads.vendor_context import VendorContextRule, record_keys, tune_in_context
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
            self.tune(self.predict_scores(val_records), binarize(val_labels), record_keys(val_records))
        return self

    def tune(
        self,
        val_scores: np.ndarray,
        val_y: np.ndarray,
        keys: Sequence[tuple[Hashable, Hashable] | None] | None = None,
    ) -> None:
        """Set the thresholds from averaged validation scores (e.g. the members' stored val scores);
        ``keys`` (:func:`~pipeline.heads.vendor_context.record_keys` of the validation records) for the
        re-tuning on vendor-shifted scores when the params turn it on."""
        self.thresholds_ = tune_in_context(
            val_scores, val_y, keys, VendorContextRule.of(self.params), self.params
        )

    def _adapting(self) -> Any | None:
        """The member that adapts to a market's class mix (the sklearn head, when adaptation is on)."""
        return next((m for m in self.members.values() if getattr(m, "adapts_priors", False)), None)

    @property
    def adapts_priors(self) -> bool:
        """Whether a member shifts a market's scores towards its class mix (that member alone does)."""
        return self._adapting() is not None

    def estimate_mixes(self, records: pd.DataFrame, groups: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
        """The adapting member's estimate of each market's class mix (nothing when no member adapts)."""
        member = self._adapting()
        return member.estimate_mixes(records, groups) if member is not None else {}

    def shifts_for(self, mixes: dict[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:
        """The adapting member's log-odds shifts for ``mixes``."""
        member = self._adapting()
        return member.shifts_for(mixes) if member is not None else {}

    def predict_scores(
        self,
        records: pd.DataFrame,
        groups: Sequence[Hashable] | None = None,
        logit_shift: np.ndarray | None = None,
    ) -> np.ndarray:
        """The members' (n, 17) score matrices, averaged; ``groups``/``logit_shift`` go to the adapting member
        only (the shifts are in its log-odds), as the stored member scores ``compare`` averages were made."""
        if not self.members:
            raise RuntimeError("EnsembleDrugTypeHead has no members")
        adapting = self._adapting()
        scores = []
        for member in self.members.values():
            extra = {"groups": groups, "logit_shift": logit_shift} if member is adapting else {}
            scores.append(np.asarray(member.predict_scores(records, **extra)))
        return np.mean(scores, axis=0)

    def predict(self, records: pd.DataFrame, logit_shift: np.ndarray | None = None) -> dict[str, list[Any]]:
        """``drug_types``, ``drug_type_scores`` and ``drug_type_evidence`` per record (as every family)."""
        scores = self.predict_scores(records, logit_shift=logit_shift)
        return drug_type_columns(scores, self.thresholds_, self.params, self.lexicon, records)

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

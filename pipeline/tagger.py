"""The one Tagger: cleaned records in, labelled records (../shared/spec/labels.md section 6) out.

Evaluate, export (the MLflow pyfunc), ``narcotag score``, the Spark UDF, ``mlflow models serve`` and the
review app all call :meth:`Tagger.tag`, so a figure measured in evaluation is the figure users get.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.heads.prior_shift import row_shifts
from pipeline.heads.registry import HEADS, OPTIONAL_HEADS, head_class
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
        from pipeline.families import load_drug_type_head

        # drug_type: whichever family export chose (its head.json names it); the other heads by name
        heads = {
            name: load_drug_type_head(models_dir / name)
            if name == "drug_type"
            else head_class(name).load(models_dir / name)
            for name in HEADS
        }
        for name in OPTIONAL_HEADS:  # e.g. the ad detector: used when trained
            if (models_dir / name).is_dir():
                heads[name] = head_class(name).load(models_dir / name)
        return cls(heads, model_name, model_version or models_fingerprint(models_dir))

    def tag(
        self, records: pd.DataFrame, prior_shifts: Mapping[str, Sequence[float]] | None = None
    ) -> list[dict[str, Any]]:
        """Labelled records, one per input row, in input order; ``id`` passed through unchanged.

        Rows whose model input (:data:`MODEL_INPUT_COLUMNS`) repeats an earlier row's are tagged once:
        re-listed offers are common in scrapes. Every record is its own object all the same.

        ``prior_shifts`` maps a market (:func:`prior_group_keys`) to the drug_type log-odds shift estimated
        for the whole batch's records of that market (``narcotag score`` does; see
        :mod:`pipeline.heads.prior_shift`). Without it, a record is tagged on its own.
        """
        if records.empty:
            return []
        records = records.reset_index(drop=True)
        drug_head = self.heads["drug_type"]
        adapt = prior_shifts if prior_shifts and getattr(drug_head, "adapts_priors", False) else None
        groups = prior_group_keys(records) if adapt else None
        unique, where = _unique_rows(records, groups)  # a row's market is part of its model input then
        columns: dict[str, list[Any]] = {}
        for name in HEADS:
            if name == "drug_type" and adapt and groups is not None:
                slot_groups: list[str | None] = [None] * len(unique)
                for row, slot in enumerate(where):
                    slot_groups[slot] = groups[row]
                shifts = {k: np.asarray(v, dtype=np.float64) for k, v in adapt.items()}
                matrix = row_shifts(slot_groups, shifts, len(DRUG_TYPES))
                columns.update(drug_head.predict(unique, logit_shift=matrix))
            else:
                columns.update(self.heads[name].predict(unique))
        ad_head = self.heads.get("ad_detector")
        kinds = records["kind"].tolist() if "kind" in records else [None] * len(records)
        # the offer decision concerns messenger ads only: listings never pay for the ad detector
        ad_slots = sorted({where[row] for row, kind in enumerate(kinds) if kind == "ad"})
        ads = ad_head.predict(unique.iloc[ad_slots]) if ad_head is not None and ad_slots else None
        ad_position = {slot: j for j, slot in enumerate(ad_slots)}
        thresholds = getattr(self.heads["drug_type"], "thresholds_", None)
        confidence = decision_confidences(columns["drug_type_scores"], columns["drug_types"], thresholds)
        passed = {
            name: (records[name].tolist() if name in records else [None] * len(records))
            for name in ("id", "source", "kind", "market", "vendor", "lang", "prov_file", "prov_locator",
                         "prov_adapter")
        }  # fmt: skip
        rows = zip(*passed.values(), where, strict=True)
        first_use: set[int] = set()
        out = []
        for rid, source, kind, market, vendor, lang, file, locator, adapter, i in rows:
            record = {
                "id": rid,
                "source": source,
                "kind": kind,
                "market": market,
                "vendor": vendor,
                "lang": lang,
                "drug_types": columns["drug_types"][i],
                "drug_type_scores": columns["drug_type_scores"][i],
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
                "confidence": confidence[i],
                # set by `narcotag score` for a listing its vendor's other listings gave context
                # (pipeline/heads/vendor_context.py); a record tagged on its own has none
                "vendor_context": None,
                "model": dict(self.model),
                "provenance": {"file": file, "locator": locator, "adapter": adapter},
            }
            if ads is not None and kind == "ad":
                j = ad_position[i]
                _apply_offer_decision(
                    record, ads["is_offer"][j], ads["offer_score"][j], ads["offer_evidence"][j]
                )
            if i in first_use:  # a repeated row: its own copy of the nested values
                record = {k: copy.deepcopy(v) if isinstance(v, dict | list) else v for k, v in record.items()}
            first_use.add(i)
            out.append(record)
        return out


def _apply_offer_decision(record: dict[str, Any], is_offer: bool, score: float, evidence: Any) -> None:
    """A messenger ad that offers nothing (channel rules, news, a buyer asking) is ``non_drug`` and has no
    primary quantity or origin; its mentions stay as evidence (pipeline/heads/ad_detector.py)."""
    from pipeline.heads.ad_detector import apply_ad_detection, clear_offer_fields

    record["is_offer"] = bool(is_offer)
    record["offer_score"] = score
    record["evidence"] = {**record["evidence"], "ad_detector": evidence}
    record["drug_types"] = apply_ad_detection(["ad"], [bool(is_offer)], [record["drug_types"]])[0]
    clear_offer_fields(["ad"], [bool(is_offer)], [record])


#: The cleaned-record columns the heads read. Rows equal on all of them get equal labels, so a repeated
#: row is tagged once (tests/test_score.py checks that the heads read nothing else).
MODEL_INPUT_COLUMNS: tuple[str, ...] = (
    "text",
    "text_folded",
    "title",
    "lang",
    "ships_from_raw",
    "ships_to_raw",
)


def prior_group_key(kind: Any, market: Any, source: Any) -> str | None:
    """The market a record's class mix is estimated for: its ``market``, else its ``source``; None for a
    messenger ad. The adaptation's setting was chosen on market listings; no labelled channel data has
    measured it on ads, so they are tagged as they are."""
    if kind == "ad":
        return None
    if isinstance(market, str) and market.strip():
        return market
    return source if isinstance(source, str) else ""


def prior_group_keys(records: pd.DataFrame) -> list[str | None]:
    """:func:`prior_group_key` of every row of ``records``."""
    n = len(records)
    columns = [records[c].tolist() if c in records else [None] * n for c in ("kind", "market", "source")]
    return [prior_group_key(k, m, s) for k, m, s in zip(*columns, strict=True)]


def _unique_rows(
    records: pd.DataFrame, groups: list[str | None] | None = None
) -> tuple[pd.DataFrame, list[int]]:
    """The rows with distinct model input (and ``groups`` key, when given), and for every row the position
    of its twin among them."""
    present = [c for c in MODEL_INPUT_COLUMNS if c in records]
    if not present:
        return records, list(range(len(records)))
    values = [records[c].tolist() for c in present] + ([groups] if groups is not None else [])
    keys = zip(*values, strict=True)
    first: dict[tuple[Any, ...], int] = {}
    where = [first.setdefault(key, len(first)) for key in keys]
    if len(first) == len(records):
        return records, where
    positions = [0] * len(first)
    for row, slot in enumerate(where):
        if positions[slot] == 0 and row:
            positions[slot] = row
    # slot 0 is always row 0; every other slot's first row is > 0
    return records.iloc[positions].reset_index(drop=True), where


def decision_confidences(
    scores: list[dict[str, float]], codes: list[list[str]], thresholds: Iterable[float] | None
) -> list[float]:
    """:func:`decision_confidence` of many records at once (vectorised; the same numbers)."""
    if not scores:
        return []
    t = np.asarray(list(thresholds) if thresholds is not None else [0.5] * len(DRUG_TYPES), dtype=float)
    index = {code: k for k, code in enumerate(DRUG_TYPES)}
    matrix = np.array([[row[c] for c in DRUG_TYPES] for row in scores], dtype=float)
    chosen = np.zeros(matrix.shape, dtype=bool)
    for r, row_codes in enumerate(codes):
        chosen[r, [index[c] for c in row_codes]] = True
    with np.errstate(divide="ignore", invalid="ignore"):
        above = np.where(t < 1, (matrix - t) / (1 - t), 0.0)
        below = np.where(t > 0, (t - matrix) / t, 0.0)
    margins = np.where(chosen, above, below)
    non_drug = index[NON_DRUG]
    counted = chosen.copy()
    counted[:, [k for k in range(len(DRUG_TYPES)) if k != non_drug]] = True
    counted[:, non_drug] |= chosen[:, non_drug]
    margins = np.where(counted, margins, np.inf)
    least = margins.min(axis=1)
    least = np.where(np.isfinite(least), least, 0.0)
    return [round(float(v), 4) for v in np.clip(least, 0.0, 1.0)]


def to_json_line(record: dict[str, Any]) -> str:
    """One labelled record as a JSON line (numpy numbers made plain)."""
    return json.dumps(record, ensure_ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

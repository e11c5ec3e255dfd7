"""Model families for the drug_type head, compared on the same splits through one code path.

A *family* is a drug_type head class with the one head interface plus two members the comparison needs:

- ``fit(records, labels=None, val_records=None, val_labels=None) -> self`` (thresholds tuned on val);
- ``predict_scores(records) -> (n, 17) array`` in :data:`pipeline.taxonomy.DRUG_TYPES` order;
- ``predict(records) -> {"drug_types", "drug_type_scores", "drug_type_evidence"}``; ``thresholds_``;
- ``save(directory)`` (which also writes ``head.json`` naming the class, see :func:`write_head_marker`)
  and ``load(directory)``.

Every family's stage writes the *scores* of its leave-one-market-out rotations (validation and test parts)
and of its in-market model to ``reports/<data>/families/<family>_scores.parquet``
(:data:`SCORE_COLUMNS`). The ``compare`` stage then tunes thresholds on each rotation's validation part and
measures the test part with the same :func:`pipeline.heads.drug_type.decide` for every family (and for
ensembles of them), so a difference in the table is a difference between models, not between metric code.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.taxonomy import DRUG_TYPES

#: family name -> "module:Class" of its drug_type head
FAMILIES: dict[str, str] = {
    "sklearn": "pipeline.heads.drug_type:DrugTypeHead",
    "spacy": "pipeline.heads.drug_type_spacy:SpacyDrugTypeHead",
    "transformer": "pipeline.heads.drug_type_transformer:TransformerDrugTypeHead",
    # the same fine-tuned model exported to ONNX with dynamic int8 quantisation, run by onnxruntime
    "transformer_int8": "pipeline.heads.drug_type_transformer:TransformerDrugTypeHead",
    "ensemble": "pipeline.heads.drug_type_ensemble:EnsembleDrugTypeHead",
}

#: family name -> its trained model folder under models/ (the ensemble is assembled by export)
FAMILY_MODEL_DIRS: dict[str, str] = {
    "sklearn": "drug_type",
    "spacy": "drug_type_spacy",
    "transformer": "drug_type_transformer",
    "transformer_int8": "drug_type_transformer_int8",
}

#: columns of a family's scores file: one row per (rotation, part, record)
SCORE_COLUMNS: tuple[str, ...] = ("id", "market_key", "rotation", "part", "labels", "scores")
#: optional: the record's vendor, for the vendor-context step (a table written before it lacks the column)
VENDOR_COLUMN = "vendor"

#: ``rotation`` value of the in-market model's rows (the others are held-out market keys)
IN_MARKET = "in_market"
#: ``part`` of a rotation's out-of-market tuning rows: its training markets, each scored by a head fitted on
#: the others (a head fitted with ``cross_market_thresholds``; see DrugTypeHead.cross_market_scores)
CROSS_MARKET = "cross_market"

HEAD_MARKER = "head.json"


def family_class(family: str) -> Any:
    """The head class of ``family`` (imported on first use, so torch loads only when needed)."""
    if family not in FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {sorted(FAMILIES)}")
    module, _, cls = FAMILIES[family].partition(":")
    return getattr(importlib.import_module(module), cls)


def write_head_marker(directory: Path, family: str, **extra: Any) -> None:
    """Record in a saved head folder which family wrote it (the Tagger and export read this)."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = {"head": "drug_type", "family": family, "class": FAMILIES[family], **extra}
    (directory / HEAD_MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def head_family(directory: Path) -> str:
    """The family of a saved drug_type head folder (``sklearn`` for folders written before markers)."""
    marker = Path(directory) / HEAD_MARKER
    if not marker.exists():
        return "sklearn"
    family = str(json.loads(marker.read_text())["family"])
    if family not in FAMILIES:
        raise ValueError(f"{marker} names unknown family {family!r}; known: {sorted(FAMILIES)}")
    return family


def load_drug_type_head(directory: Path) -> Any:
    """Load a saved drug_type head of any family (the class comes from an allow-list, never the file)."""
    return family_class(head_family(directory)).load(Path(directory))


# --- the splits every family uses ------------------------------------------------------------------------


def rotation_frames(frame: pd.DataFrame, market: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Leave-one-market-out: (train, val) from the other markets' train/val splits; test = every labelled
    record of ``market``. The one definition of a rotation for all families."""
    others = frame[frame["market_key"] != market]
    test = frame[frame["market_key"] == market]
    return others[others["split"] == "train"], others[others["split"] == "val"], test


def score_rows(records: pd.DataFrame, scores: np.ndarray, rotation: str, part: str) -> pd.DataFrame:
    """Rows of a scores table (:data:`SCORE_COLUMNS`) for ``records`` scored ``scores``."""
    return pd.DataFrame(
        {
            "id": records["id"].astype(str).to_numpy(),
            "market_key": records["market_key"].astype(str).to_numpy(),
            "rotation": rotation,
            "part": part,
            "labels": [list(x) for x in records["labels"]],
            "scores": [row.astype(np.float32).tolist() for row in np.asarray(scores)],
            VENDOR_COLUMN: (
                records[VENDOR_COLUMN].fillna("").astype(str).to_numpy() if VENDOR_COLUMN in records else ""
            ),
        }
    )


def lomo_scores(
    frame: pd.DataFrame,
    markets: list[str],
    make_head: Callable[[], Any],
    on_rotation: Callable[[str, Any], None] | None = None,
) -> pd.DataFrame:
    """Fit a fresh head (``make_head()``) per held-out market and collect its val and test scores."""
    parts = []
    for market in markets:
        train, val, test = rotation_frames(frame, market)
        head = make_head().fit(train, val_records=val if len(val) else None)
        if len(val):
            parts.append(score_rows(val, head.predict_scores(val), market, "val"))
        cross = getattr(head, "cross_market_", None)
        if cross is not None:
            parts.append(score_rows(cross[1], cross[0], market, CROSS_MARKET))
        parts.append(score_rows(test, market_scores(head, test), market, "test"))
        if on_rotation is not None:
            on_rotation(market, head)
    return pd.concat(parts, ignore_index=True) if parts else empty_scores()


def in_market_scores(head: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The trained (all-markets) head's scores on its val and test splits."""
    parts = []
    for part in ("val", "test"):
        records = frame[frame["split"] == part]
        if len(records):
            scores = market_scores(head, records) if part == "test" else head.predict_scores(records)
            parts.append(score_rows(records, scores, IN_MARKET, part))
    return pd.concat(parts, ignore_index=True) if parts else empty_scores()


def market_scores(head: Any, records: pd.DataFrame) -> np.ndarray:
    """``head``'s scores of test records as ``narcotag score`` makes them: a head that adapts to each
    market's class mix (``adapts_priors``) estimates it from the records of that market (``market_key``)
    among ``records``. Validation scores are never adapted: thresholds are tuned on the training mix."""
    if getattr(head, "adapts_priors", False):
        return np.asarray(head.predict_scores(records, groups=records["market_key"].astype(str).tolist()))
    return np.asarray(head.predict_scores(records))


def empty_scores() -> pd.DataFrame:
    """A scores table with no rows."""
    return pd.DataFrame({c: [] for c in SCORE_COLUMNS})


def scores_path(reports: Path, family: str) -> Path:
    """Where a family's scores live: reports/<data>/families/<family>_scores.parquet."""
    return reports / "families" / f"{family}_scores.parquet"


def info_path(reports: Path, family: str) -> Path:
    """Where a family's facts (texts/s, fit time, params) live: reports/<data>/families/<family>.json."""
    return reports / "families" / f"{family}.json"


def write_family_outputs(reports: Path, family: str, scores: pd.DataFrame, info: dict[str, Any]) -> None:
    """Write a family's scores table and its info JSON (``texts_per_second`` is required)."""
    if "texts_per_second" not in info:
        raise ValueError("a family's info needs texts_per_second (the export's throughput floor reads it)")
    path = scores_path(reports, family)
    path.parent.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(path, index=False)
    info_path(reports, family).write_text(json.dumps({"family": family, **info}, indent=2) + "\n")


def read_scores(path: Path) -> pd.DataFrame:
    """A scores table written by :func:`write_family_outputs`."""
    frame = pd.read_parquet(path)
    missing = set(SCORE_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks score columns {sorted(missing)}")
    return frame


def score_matrix(rows: pd.DataFrame) -> np.ndarray:
    """The (n, 17) score matrix of some rows of a scores table."""
    if rows.empty:
        return np.zeros((0, len(DRUG_TYPES)), dtype=np.float32)
    return np.vstack([np.asarray(s, dtype=np.float32) for s in rows["scores"]])


def texts_per_second(head: Any, records: pd.DataFrame, limit: int = 2000, repeats: int = 2) -> float:
    """Scoring throughput of ``head.predict`` on ``limit`` records (best of ``repeats``), in records per
    second on this machine, single process. Fewer records are repeated up to ``limit``: a batch of a few
    hundred measures per-call overhead, not throughput, and the figure decides the champion."""
    if records.empty:
        return 0.0
    records = records.iloc[np.resize(np.arange(len(records)), limit)]  # repeated or cut to exactly limit
    head.predict(records.head(8))  # warm-up: lazy loads, first-call allocations
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        head.predict(records)
        best = min(best, time.perf_counter() - started)
    return round(len(records) / best, 1)


# --- figures from a scores table (the same code for every family and ensemble) ----------------------------


def rotation_thresholds(
    table: pd.DataFrame, rotation: str, tuning: Any, fallback_ratio: float | None = None
) -> np.ndarray:
    """Per-class thresholds tuned on ``rotation``'s val part (the default threshold without one), as the
    heads' ``fit`` tunes them (:func:`~pipeline.heads.drug_type.validation_thresholds`: re-tuned on the
    vendor-shifted scores when ``tuning`` turns that on and the table has vendors), then on its
    out-of-market rows when the table has them (:data:`CROSS_MARKET`; the codes they hold positives of).
    ``tuning`` carries ``threshold_grid_step`` and ``default_threshold`` (a ``DrugTypeParams``) and the
    vendor and cross-market settings; ``fallback_ratio`` (default ``tuning``'s) is the decision rule's."""
    from pipeline.heads.drug_type import cross_market_thresholds, validation_thresholds

    ours = table[table["rotation"] == rotation]
    rows = ours[ours["part"] == "val"]
    if fallback_ratio is not None and hasattr(tuning, "fallback_ratio"):
        tuning = dataclasses.replace(tuning, fallback_ratio=fallback_ratio)
    thresholds = (
        validation_thresholds(score_matrix(rows), rows, list(rows["labels"]), tuning)
        if len(rows)
        else np.full(len(DRUG_TYPES), tuning.default_threshold)
    )
    cross = ours[ours["part"] == CROSS_MARKET]
    if len(cross) and getattr(tuning, "cross_market_thresholds", False):
        thresholds = cross_market_thresholds(thresholds, score_matrix(cross), cross, tuning)
    return thresholds


def rotation_decisions(
    table: pd.DataFrame, rotation: str, tuning: Any, fallback_ratio: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """For one rotation: thresholds tuned on its val part (never on test), then the decisions on its test
    part. Returns (y_true, y_pred, test scores, test rows)."""
    from pipeline.heads.drug_type import binarize

    thresholds = rotation_thresholds(table, rotation, tuning, fallback_ratio)
    test = table[(table["rotation"] == rotation) & (table["part"] == "test")]
    scores = score_matrix(test)
    y_true = binarize([list(x) for x in test["labels"]])
    y_pred = binarize(table_decisions(test, scores, thresholds, tuning, fallback_ratio))
    return y_true, y_pred, scores, test


def table_decisions(
    rows: pd.DataFrame, scores: np.ndarray, thresholds: np.ndarray, tuning: Any, fallback_ratio: float
) -> list[list[str]]:
    """The codes of some rows of a scores table (``scores``: their matrix) as ``narcotag score`` decides
    them: :func:`~pipeline.heads.drug_type.decide` with ``tuning``'s rescue settings, and, when ``tuning``
    turns it on and the table has vendors, the context of each vendor's other rows among ``rows``
    (:mod:`pipeline.heads.vendor_context`)."""
    from pipeline.heads.drug_type import decide
    from pipeline.heads.vendor_context import VendorContextRule, decide_with_vendors, vendor_keys

    rule = dataclasses.replace(VendorContextRule.of(tuning), fallback_ratio=fallback_ratio)
    if rule.active and VENDOR_COLUMN in rows and len(rows):
        keys = vendor_keys(rows["market_key"].tolist(), rows[VENDOR_COLUMN].tolist())
        return decide_with_vendors(scores, thresholds, keys, rule)
    return decide(scores, thresholds, fallback_ratio, rule.rescue_over_non_drug)


def family_report(
    table: pd.DataFrame, tuning: Any, fallback_ratio: float, min_support: int
) -> dict[str, Any]:
    """Per-class and summary figures of one scores table: every leave-one-market-out rotation, their mean,
    and the in-market test."""
    from pipeline.metrics import multilabel_report

    report: dict[str, Any] = {}
    rotations = [r for r in dict.fromkeys(table["rotation"]) if r != IN_MARKET]
    lomo = {}
    for rotation in rotations:
        y_true, y_pred, _, _ = rotation_decisions(table, rotation, tuning, fallback_ratio)
        lomo[str(rotation)] = multilabel_report(y_true, y_pred, min_support=min_support)
    if lomo:
        report["lomo"] = lomo
        report["lomo_mean"] = {
            key: round(float(np.mean([r["summary"][key] for r in lomo.values()])), 4)
            for key in ("macro_f1", "macro_f1_supported", "micro_f1")
        }
    if (table["rotation"] == IN_MARKET).any():
        y_true, y_pred, _, _ = rotation_decisions(table, IN_MARKET, tuning, fallback_ratio)
        report["in_market_test"] = multilabel_report(y_true, y_pred, min_support=min_support)
    return report

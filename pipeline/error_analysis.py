"""Error analysis of the drug_type model families, from the scores tables the family stages write.

``notebooks/error_analysis.ipynb`` calls these functions; they read only the scores tables
(``reports/<data>/families/<family>_scores.parquet``, see :mod:`pipeline.families`) and, for the titles of
the worst errors, the prepared frame (``data/processed/drug_type.parquet``).

Every test part is decided the way the ``compare`` stage decides it: thresholds tuned on the same
rotation's validation part (:func:`pipeline.heads.drug_type.tune_thresholds`, never on test), then
:func:`pipeline.heads.drug_type.decide`. The functions give

- a confusion table of the single-label test records (actual code x arg-max code) and a per-class
  TP/FP/FN table of the thresholded decisions;
- the worst errors per class: missed records with the lowest score for their true code, and false alarms
  with the highest score;
- per-market drift: per-class F1 per rotation side by side, each market's label distribution, and the
  gap between the in-market test F1 and the leave-one-market-out F1 of each class;
- a family x rotation macro-F1 table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipeline.families import (
    FAMILIES,
    IN_MARKET,
    read_scores,
    rotation_thresholds,
    score_matrix,
    table_decisions,
)
from pipeline.heads.drug_type import DrugTypeParams, binarize
from pipeline.metrics import multilabel_report
from pipeline.taxonomy import DRUG_TYPES

SCORES_SUFFIX = "_scores.parquet"
#: characters of a title the notebook shows (never whole texts)
TITLE_WIDTH = 80


# --- loading ---------------------------------------------------------------------------------------------


def load_family_scores(reports: Path) -> dict[str, pd.DataFrame]:
    """Every family's scores table under ``reports/families/``: family -> table (``labels`` as lists).

    Known families come first in :data:`pipeline.families.FAMILIES` order, then any others by name; an
    absent folder gives an empty dict.
    """
    folder = Path(reports) / "families"
    if not folder.is_dir():
        return {}
    found = {p.name.removesuffix(SCORES_SUFFIX): p for p in folder.glob(f"*{SCORES_SUFFIX}") if p.is_file()}
    order = [f for f in FAMILIES if f in found] + sorted(set(found) - set(FAMILIES))
    tables = {}
    for family in order:
        table = read_scores(found[family])
        table["labels"] = [[str(c) for c in codes] for codes in table["labels"]]
        tables[family] = table
    return tables


def rotations(table: pd.DataFrame) -> list[str]:
    """The rotations of a scores table: held-out markets by name, then ``in_market`` last."""
    found = {str(r) for r in table["rotation"].unique()}
    return sorted(found - {IN_MARKET}) + ([IN_MARKET] if IN_MARKET in found else [])


def load_titles(processed: Path, width: int = TITLE_WIDTH) -> dict[str, str]:
    """id -> title truncated to ``width`` characters, from the prepared frame; ``{}`` when it is absent.

    A record without a title gets the first line of its text. Only titles are ever shown, never texts.
    """
    path = Path(processed)
    if not path.is_file():
        return {}
    present = set(pq.read_schema(path).names)
    if "id" not in present:
        return {}
    frame = pd.read_parquet(path, columns=[c for c in ("id", "title", "text") if c in present])
    titles = frame["title"] if "title" in frame else pd.Series([None] * len(frame), index=frame.index)
    texts = frame["text"] if "text" in frame else pd.Series([None] * len(frame), index=frame.index)
    out = {}
    for record_id, title, text in zip(frame["id"].astype(str), titles, texts, strict=True):
        line = title if isinstance(title, str) and title.strip() else _first_line(text)
        out[record_id] = truncate(line, width)
    return out


def _first_line(text: object) -> str:
    if not isinstance(text, str):
        return ""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def truncate(text: str, width: int = TITLE_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters (an ellipsis marks a cut)."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


# --- deciding a rotation's test part ---------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """A rotation's test part, decided with thresholds tuned on its validation part."""

    family: str
    rotation: str
    rows: pd.DataFrame  # the test rows of the scores table (index 0..n-1)
    scores: np.ndarray  # (n, 17)
    y_true: np.ndarray  # (n, 17) 0/1
    y_pred: np.ndarray  # (n, 17) 0/1
    predicted: list[list[str]]
    thresholds: np.ndarray  # (17,)


def decide_rotation(
    table: pd.DataFrame,
    rotation: str,
    family: str = "",
    params: DrugTypeParams | None = None,
    fallback_ratio: float | None = None,
) -> Decided:
    """Tune thresholds on ``rotation``'s val part, decide its test part (as the compare stage does, with
    ``params``: the project's ``train.drug_type``; ``fallback_ratio`` defaults to theirs, or 0.5 without).

    A rotation without validation rows keeps the default thresholds (``params.default_threshold``).
    """
    if fallback_ratio is None:
        fallback_ratio = params.fallback_ratio if params is not None else 0.5
    params = params or DrugTypeParams()
    test = table[(table["rotation"] == rotation) & (table["part"] == "test")].reset_index(drop=True)
    thresholds = rotation_thresholds(table, rotation, params, fallback_ratio)  # the compare stage's
    scores = score_matrix(test)
    predicted = table_decisions(test, scores, thresholds, params, fallback_ratio) if len(test) else []
    return Decided(
        family=family,
        rotation=rotation,
        rows=test,
        scores=scores,
        y_true=binarize([list(x) for x in test["labels"]]),
        y_pred=binarize(predicted),
        predicted=predicted,
        thresholds=thresholds,
    )


def report(decided: Decided) -> dict[str, Any]:
    """:func:`pipeline.metrics.multilabel_report` of a decided test part."""
    return multilabel_report(decided.y_true, decided.y_pred)


# --- confusion -------------------------------------------------------------------------------------------


def confusion_table(decided: Decided, all_codes: bool = False) -> pd.DataFrame:
    """Single-label test records: actual code (rows) x arg-max code of the scores (columns), counts.

    Multi-label records are left out (they have no one actual code). Both axes list the same codes in
    :data:`DRUG_TYPES` order: every code when ``all_codes``, else those that occur on either axis.
    """
    single = np.flatnonzero(decided.y_true.sum(axis=1) == 1)
    actual = decided.y_true[single].argmax(axis=1)
    argmax = decided.scores[single].argmax(axis=1) if len(single) else np.zeros(0, dtype=int)
    counts = np.zeros((len(DRUG_TYPES), len(DRUG_TYPES)), dtype=int)
    np.add.at(counts, (actual, argmax), 1)
    keep = (
        np.arange(len(DRUG_TYPES))
        if all_codes
        else np.flatnonzero((counts.sum(axis=0) > 0) | (counts.sum(axis=1) > 0))
    )
    codes = [DRUG_TYPES[i] for i in keep]
    return pd.DataFrame(
        counts[np.ix_(keep, keep)],
        index=pd.Index(codes, name="actual"),
        columns=pd.Index(codes, name="predicted"),
    )


def class_counts(decided: Decided) -> pd.DataFrame:
    """The multi-label variant: per class TP, FP, FN, support, precision, recall, F1 of the thresholded
    decisions (every code, :data:`DRUG_TYPES` order)."""
    t, p = decided.y_true.astype(bool), decided.y_pred.astype(bool)
    tp = (t & p).sum(axis=0)
    fp = (~t & p).sum(axis=0)
    fn = (t & ~p).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return pd.DataFrame(
        {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "support": tp + fn,
            "precision": np.round(precision, 4),
            "recall": np.round(recall, 4),
            "f1": np.round(f1, 4),
        },
        index=pd.Index(DRUG_TYPES, name="code"),
    )


# --- worst errors ----------------------------------------------------------------------------------------

ERROR_COLUMNS = ("code", "error", "rank", "id", "market_key", "labels", "predicted", "score", "title")


def worst_errors(decided: Decided, k: int = 5, titles: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The ``k`` worst errors per class (:data:`ERROR_COLUMNS`).

    ``error="FN"``: records carrying the code that the decision missed, lowest score for the code first;
    ``error="FP"``: records predicted with the code that do not carry it, highest score first. ``title``
    comes from ``titles`` (see :func:`load_titles`), empty when unknown.
    """
    titles = titles or {}
    ids = decided.rows["id"].astype(str).tolist()
    markets = decided.rows["market_key"].astype(str).tolist()
    labels = [list(x) for x in decided.rows["labels"]]
    out = []
    t, p = decided.y_true.astype(bool), decided.y_pred.astype(bool)
    for c, code in enumerate(DRUG_TYPES):
        for error, mask, descending in (("FN", t[:, c] & ~p[:, c], False), ("FP", ~t[:, c] & p[:, c], True)):
            rows = np.flatnonzero(mask)
            column = decided.scores[rows, c]
            # stable sort, ties broken by position; negate for descending so ties keep the same order
            order = rows[np.argsort(-column if descending else column, kind="stable")][:k]
            for rank, i in enumerate(order, start=1):
                out.append(
                    {
                        "code": code,
                        "error": error,
                        "rank": rank,
                        "id": ids[i],
                        "market_key": markets[i],
                        "labels": labels[i],
                        "predicted": decided.predicted[i],
                        "score": round(float(decided.scores[i, c]), 4),
                        "title": titles.get(ids[i], ""),
                    }
                )
    return pd.DataFrame(out, columns=list(ERROR_COLUMNS))


# --- per-market drift ------------------------------------------------------------------------------------


def per_class_f1(table: pd.DataFrame, family: str = "", params: DrugTypeParams | None = None) -> pd.DataFrame:
    """Per-class test F1 of every rotation side by side (codes x rotations; NaN where the rotation's test
    part has no record of the code, so an absent class never reads as a failure)."""
    columns = {}
    for rotation in rotations(table):
        counts = class_counts(decide_rotation(table, rotation, family, params))
        columns[rotation] = counts["f1"].where(counts["support"] > 0)
    return pd.DataFrame(columns, index=pd.Index(DRUG_TYPES, name="code"))


def label_distribution(table: pd.DataFrame) -> pd.DataFrame:
    """Share of each market's records that carry each code (codes x markets).

    The records are those of the scores table: for a held-out market, every labelled record of it (its
    rotation's test part); for the other markets, their val and test splits. Each record counts once (by
    id) whatever the rotations and parts it appears in; a multi-label record counts for each of its codes,
    so a column can sum above 1. The row ``records`` gives the counts.
    """
    records = table.drop_duplicates("id")
    columns = {}
    for market in sorted(records["market_key"].astype(str).unique()):
        mine = records[records["market_key"] == market]
        y = binarize([list(x) for x in mine["labels"]])
        columns[market] = [*np.round(y.mean(axis=0), 4), float(len(mine))]
    return pd.DataFrame(columns, index=pd.Index([*DRUG_TYPES, "records"], name="code"))


def drift_gap(table: pd.DataFrame, family: str = "", params: DrugTypeParams | None = None) -> pd.DataFrame:
    """Per class: in-market test F1, the leave-one-market-out F1 (mean over the held-out markets that
    have the code), and ``gap`` = in-market minus leave-one-market-out (positive: the model does worse on
    a market it has not seen). NaN where either side has no record of the code."""
    f1 = per_class_f1(table, family, params)
    lomo = f1.drop(columns=[IN_MARKET], errors="ignore")
    in_market = f1[IN_MARKET] if IN_MARKET in f1 else pd.Series(np.nan, index=f1.index)
    lomo_mean = lomo.mean(axis=1, skipna=True) if lomo.shape[1] else pd.Series(np.nan, index=f1.index)
    return pd.DataFrame(
        {
            "in_market_f1": in_market,
            "lomo_f1": lomo_mean.round(4),
            "lomo_markets": lomo.notna().sum(axis=1),
            "gap": (in_market - lomo_mean).round(4),
        }
    )


# --- families x rotations --------------------------------------------------------------------------------


def macro_f1_table(tables: Mapping[str, pd.DataFrame], params: DrugTypeParams | None = None) -> pd.DataFrame:
    """Macro-F1 (over classes present in the test part) of every family (rows) and rotation (columns)."""
    rows = {}
    for family, table in tables.items():
        row = {}
        for rotation in rotations(table):
            decided = decide_rotation(table, rotation, family, params)
            row[rotation] = report(decided)["summary"]["macro_f1"] if len(decided.rows) else np.nan
        rows[family] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    if frame.empty:
        return frame
    lomo = sorted(c for c in frame.columns if c != IN_MARKET)
    frame = frame[lomo + ([IN_MARKET] if IN_MARKET in frame.columns else [])]
    frame.index.name = "family"
    return frame

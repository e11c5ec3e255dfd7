"""Evaluation metrics shared by train, evaluate and the model comparison: per-class, never only averages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_fscore_support

from pipeline.taxonomy import DRUG_TYPES


def multilabel_report(
    y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...] = DRUG_TYPES, min_support: int = 30
) -> dict[str, Any]:
    """Per-class precision/recall/F1/support and the averages.

    ``macro_f1`` averages over classes present in ``y_true``; ``macro_f1_supported`` over classes with at
    least ``min_support`` true records (a class with 3 test records moves a macro average by chance alone,
    so both are reported).
    """
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    per_class = {
        c: {
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
            "f1": round(float(f[i]), 4),
            "support": int(s[i]),
        }
        for i, c in enumerate(classes)
    }
    present = s > 0
    supported = s >= min_support
    micro = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    summary = {
        "macro_f1": round(float(f[present].mean()), 4) if present.any() else 0.0,
        "macro_f1_supported": round(float(f[supported].mean()), 4) if supported.any() else 0.0,
        "micro_f1": round(float(micro[2]), 4),
        "micro_precision": round(float(micro[0]), 4),
        "micro_recall": round(float(micro[1]), 4),
        "exact_match": round(float((y_true == y_pred).all(axis=1).mean()), 4) if len(y_true) else 0.0,
        "records": int(len(y_true)),
        "classes_present": int(present.sum()),
        "classes_supported": int(supported.sum()),
        "min_support": min_support,
    }
    return {"summary": summary, "per_class": per_class}


def set_prf(pred: Sequence[set[Any]], gold: Sequence[set[Any]]) -> dict[str, float]:
    """Micro precision/recall/F1 of predicted vs gold item sets, record by record (an empty side counts as
    perfect precision or recall), with the counts."""
    tp = sum(len(p & g) for p, g in zip(pred, gold, strict=True))
    n_pred, n_gold = sum(len(p) for p in pred), sum(len(g) for g in gold)
    precision = tp / n_pred if n_pred else 1.0
    recall = tp / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "gold": n_gold,
        "predicted": n_pred,
    }

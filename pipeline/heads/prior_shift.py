"""Adapting a classifier's scores to the class mix of a market it has not seen (label shift).

A model's probabilities carry the class mix of its training data. A new market sells a different mix: TorreZ
lists almost no non-drug goods, AlphaBay half of its listings are non-drug, Agora had barely any heroin.
With the training mix built in, the model over-calls the codes that were common in training and under-calls
the ones the new market is full of.

The correction needs no labels. Saerens, Latinne and Decaestecker (2002, "Adjusting the outputs of a
classifier to new a priori probabilities: a simple procedure") estimate the new market's class priors by EM
on the model's own scores of that market's records, and re-weight each probability by new/old prior odds.
Each drug code is a one-vs-rest binary model here, so each code gets its own binary EM.

The probabilities are not perfectly calibrated on a market the model has not seen, so a full correction
over-shoots (measured on market pairs: see docs/evaluation.md). The shift in log-odds is multiplied by
``damping`` in [0, 1]: 0 leaves the scores as they are, 1 is the full EM correction. A market needs at
least ``min_records`` records; a smaller group's prior estimate is too noisy and it keeps its scores.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

_EPS = 1e-6
# a prior is never taken as 0 or 1: log-odds must stay finite, and a code absent from training (prior 0)
# gets no shift from its constant predictor anyway
_PRIOR_FLOOR = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(p / (1 - p)))


def estimate_priors(
    probabilities: np.ndarray, source_prior: np.ndarray, max_iter: int = 200, tol: float = 1e-7
) -> np.ndarray:
    """Per-code prior of the population ``probabilities`` (n x k one-vs-rest probabilities) was drawn from,
    by EM, given the prior the model was trained under (``source_prior``, length k)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _EPS, 1 - _EPS)
    source = np.clip(np.asarray(source_prior, dtype=np.float64), _PRIOR_FLOOR, 1 - _PRIOR_FLOOR)
    if p.ndim != 2 or p.shape[1] != source.shape[0]:
        raise ValueError(f"probabilities {p.shape} do not match a prior of {source.shape[0]} codes")
    target = source.copy()
    if len(p) == 0:
        return target
    for _ in range(max_iter):
        up, down = target / source, (1 - target) / (1 - source)
        adjusted = up * p / (up * p + down * (1 - p))
        new = np.clip(adjusted.mean(axis=0), _PRIOR_FLOOR / 10, 1 - _PRIOR_FLOOR / 10)
        converged = bool(np.abs(new - target).max() < tol)
        target = new
        if converged:
            break
    return target


def logit_shift(target_prior: np.ndarray, source_prior: np.ndarray, damping: float) -> np.ndarray:
    """The per-code log-odds shift that moves scores from ``source_prior`` to ``target_prior``, damped."""
    source = np.clip(np.asarray(source_prior, dtype=np.float64), _PRIOR_FLOOR, 1 - _PRIOR_FLOOR)
    target = np.clip(np.asarray(target_prior, dtype=np.float64), _PRIOR_FLOOR / 10, 1 - _PRIOR_FLOOR / 10)
    return np.asarray(damping * (_logit(target) - _logit(source)))


def apply_shift(probabilities: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``probabilities`` with ``shifts`` (a length-k vector, or one row per record) added to their log-odds.
    A zero shift leaves a probability exactly as it was."""
    p = np.asarray(probabilities, dtype=np.float64)
    shifts = np.broadcast_to(np.asarray(shifts, dtype=np.float64), p.shape)
    out = p.copy()
    moved = shifts != 0
    if moved.any():
        out[moved] = 1.0 / (1.0 + np.exp(-(_logit(p[moved]) + shifts[moved])))
    return out


def group_priors(
    probabilities: np.ndarray, groups: Sequence[Hashable], source_prior: np.ndarray, min_records: int
) -> dict[Hashable, np.ndarray]:
    """Per group (market) of at least ``min_records`` rows, its class mix estimated from its own rows
    (:func:`estimate_priors`); smaller groups get none."""
    labels = np.asarray(list(groups), dtype=object)
    if len(labels) != len(probabilities):
        raise ValueError(f"{len(labels)} group keys for {len(probabilities)} rows")
    out: dict[Hashable, np.ndarray] = {}
    for key in dict.fromkeys(labels.tolist()):
        rows = labels == key
        if rows.sum() >= max(min_records, 1):
            out[key] = estimate_priors(probabilities[rows], source_prior)
    return out


def row_shifts(groups: Sequence[Hashable], shifts: Mapping[Any, np.ndarray], n_codes: int) -> np.ndarray:
    """An (n, k) matrix: each row its group's shift, zeros for a group without one."""
    out = np.zeros((len(groups), n_codes))
    for row, key in enumerate(groups):
        shift = shifts.get(key)
        if shift is not None:
            out[row] = shift
    return out

"""Adapting scores to a market's class mix (pipeline/heads/prior_shift.py): EM recovers known priors on
calibrated scores, the shift is the Bayes correction, damping and group sizes behave as documented."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.heads.prior_shift import (
    apply_shift,
    estimate_priors,
    group_priors,
    logit_shift,
    row_shifts,
)


def _calibrated_scores(
    source_prior: float, target_prior: float, n: int, separation: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a model that is exactly calibrated for ``source_prior`` on records drawn with
    ``target_prior``: class-conditional N(+-separation/2, 1), posterior by Bayes under the source prior.
    Returns (scores, labels)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < target_prior
    x = rng.normal(np.where(y, separation / 2, -separation / 2), 1.0)
    log_likelihood_ratio = separation * x  # log N(x; s/2, 1) - log N(x; -s/2, 1)
    logit = log_likelihood_ratio + np.log(source_prior / (1 - source_prior))
    return 1 / (1 + np.exp(-logit)), y


@pytest.mark.parametrize(
    ("source", "target"),
    [(0.4, 0.05), (0.05, 0.4), (0.2, 0.2), (0.5, 0.9), (0.01, 0.1)],
)
def test_em_recovers_the_prior_of_the_scored_population(source: float, target: float) -> None:
    scores, y = _calibrated_scores(source, target, 20_000, separation=2.0, seed=1)
    estimate = estimate_priors(scores[:, None], np.array([source]))[0]
    assert estimate == pytest.approx(y.mean(), abs=0.015)
    # the naive estimate (mean score) is biased towards the training prior whenever the two differ
    if abs(source - target) > 0.1:
        assert abs(estimate - y.mean()) < abs(scores.mean() - y.mean())


def test_full_shift_is_the_bayes_posterior_under_the_new_prior() -> None:
    scores, _ = _calibrated_scores(0.3, 0.1, 500, separation=1.5, seed=2)
    shifted = apply_shift(scores[:, None], logit_shift(np.array([0.1]), np.array([0.3]), 1.0))[:, 0]
    # Bayes: posterior odds scale by (new prior odds / old prior odds)
    odds = scores / (1 - scores) * (0.1 / 0.9) / (0.3 / 0.7)
    np.testing.assert_allclose(shifted, odds / (1 + odds), rtol=1e-6)


def test_correction_improves_the_log_loss_on_the_shifted_population() -> None:
    scores, y = _calibrated_scores(0.4, 0.05, 20_000, separation=2.0, seed=3)
    prior = np.array([0.4])
    adapted = apply_shift(scores[:, None], logit_shift(estimate_priors(scores[:, None], prior), prior, 1.0))

    def log_loss(p: np.ndarray) -> float:
        p = np.clip(p, 1e-9, 1 - 1e-9)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    assert log_loss(adapted[:, 0]) < 0.8 * log_loss(scores)


@pytest.mark.parametrize("damping", [0.0, 0.25, 0.75, 1.0])
def test_damping_scales_the_log_odds_shift(damping: float) -> None:
    source, target = np.array([0.3, 0.02, 0.5]), np.array([0.05, 0.2, 0.5])
    full = logit_shift(target, source, 1.0)
    np.testing.assert_allclose(logit_shift(target, source, damping), damping * full)
    assert full[0] < 0 < full[1] and full[2] == pytest.approx(0.0)


def test_zero_shift_leaves_scores_bit_for_bit() -> None:
    scores = np.random.default_rng(4).random((50, 3))
    out = apply_shift(scores, np.zeros(3))
    assert np.array_equal(out, scores) and out is not scores
    per_row = np.zeros((50, 3))
    per_row[::2, 1] = 0.5
    moved = apply_shift(scores, per_row)
    assert np.array_equal(moved[1::2], scores[1::2]) and (moved[::2, 1] > scores[::2, 1]).all()


def test_groups_below_min_records_get_no_mix_and_damping_zero_no_shift() -> None:
    big, _ = _calibrated_scores(0.3, 0.05, 400, 2.0, seed=5)
    small, _ = _calibrated_scores(0.3, 0.9, 40, 2.0, seed=6)
    scores = np.concatenate([big, small])[:, None]
    groups = ["big"] * 400 + ["small"] * 40
    prior = np.array([0.3])
    assert set(group_priors(scores, groups, prior, min_records=100)) == {"big"}
    big_mix = group_priors(scores, groups, prior, min_records=100)["big"]
    assert logit_shift(big_mix, prior, 0.5)[0] < 0  # the big market has fewer positives
    assert not logit_shift(big_mix, prior, 0.0).any()
    with pytest.raises(ValueError, match="group keys"):
        group_priors(scores, groups[:-1], prior, 1)


def test_row_shifts_give_each_row_its_group_shift() -> None:
    matrix = row_shifts(["a", "b", "a", "c"], {"a": np.array([1.0, -1.0]), "b": np.array([0.0, 2.0])}, 2)
    np.testing.assert_array_equal(matrix, [[1, -1], [0, 2], [1, -1], [0, 0]])


def test_estimate_rejects_mismatched_shapes_and_handles_no_rows() -> None:
    with pytest.raises(ValueError, match="do not match"):
        estimate_priors(np.zeros((3, 2)), np.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(estimate_priors(np.zeros((0, 2)), np.array([0.2, 0.6])), [0.2, 0.6])

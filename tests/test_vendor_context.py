"""The vendor-context step (pipeline/heads/vendor_context.py): profiles from the listings' own decisions,
leave-one-out, shrinkage, the fill of unclaimed listings, streaming = in memory, markets kept apart."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.heads.drug_type import DrugTypeParams, decide, tune_thresholds, validation_thresholds
from pipeline.heads.vendor_context import (
    VendorContextRule,
    VendorProfiles,
    decide_with_vendors,
    tune_in_context,
    vendor_keys,
)
from pipeline.taxonomy import DRUG_TYPES

K = len(DRUG_TYPES)
THRESHOLDS = np.full(K, 0.5)
RULE = VendorContextRule(shift=0.5, pseudo_listings=5, min_listings=3, fill_share=0.5, fallback_ratio=0.5)


def _row(**scores: float) -> np.ndarray:
    row = np.full(K, 0.01)
    for code, value in scores.items():
        row[DRUG_TYPES.index(code)] = value
    return row


def _shop(n_claimed: int, code: str = "cannabis") -> list[np.ndarray]:
    return [_row(**{code: 0.9}) for _ in range(n_claimed)]


def test_an_unclaimed_listing_takes_its_shops_code():
    # four clear cannabis listings and one whose title names nothing the model knows
    scores = np.vstack([*_shop(4), _row(cannabis=0.04)])
    keys = vendor_keys(["m"] * 5, ["shop"] * 5)
    assert decide(scores, THRESHOLDS, 0.5)[-1] == ["non_drug"]  # on its own
    profiles = VendorProfiles(THRESHOLDS, RULE)
    profiles.add(keys, scores)
    codes, info = profiles.decide(keys, scores)
    assert codes == [["cannabis"]] * 5
    assert info[-1] == {"listings": 4, "shifted": True, "filled": True}
    assert info[0] == {"listings": 3, "shifted": True, "filled": False}  # itself left out: 3 others
    off = replace(RULE, shift=0.0, fill_share=0.0)
    assert decide_with_vendors(scores, THRESHOLDS, keys, off)[-1] == ["non_drug"]


@pytest.mark.parametrize(("claimed", "expected"), [(3, ["non_drug"]), (4, ["mdma"])])
def test_a_vendor_needs_min_listings_other_claimed_listings(claimed, expected):
    scores = np.vstack([*_shop(claimed, "mdma"), _row()])
    keys = vendor_keys(["m"] * len(scores), ["v"] * len(scores))
    rule = replace(RULE, min_listings=4)
    assert decide_with_vendors(scores, THRESHOLDS, keys, rule)[-1] == expected


def test_strong_evidence_for_another_code_is_kept_in_a_one_drug_shop():
    scores = np.vstack([*_shop(10, "cannabis"), _row(cocaine=0.95)])
    keys = vendor_keys(["m"] * 11, ["v"] * 11)
    assert decide_with_vendors(scores, THRESHOLDS, keys, RULE)[-1] == ["cocaine"]


def test_the_shift_tips_a_borderline_listing_towards_the_shops_code():
    borderline = _row(mdma=0.42)  # below its threshold
    scores = np.vstack([*_shop(30, "mdma"), borderline])
    keys = vendor_keys(["m"] * 31, ["v"] * 31)
    market = np.vstack([scores, *[_row(cannabis=0.9) for _ in range(60)]])
    market_keys = keys + vendor_keys(["m"] * 60, [f"other{i % 6}" for i in range(60)])
    shift_only = replace(RULE, fill_share=0.0, fallback_ratio=0.0)  # neither the fill nor the fallback
    profiles = VendorProfiles(THRESHOLDS, shift_only)
    profiles.add(market_keys, market)
    codes, info = profiles.decide(market_keys, market)
    assert codes[30] == ["mdma"] and info[30] == {"listings": 30, "shifted": True, "filled": False}
    assert codes[31:] == [["cannabis"]] * 60  # the other shops' listings stay what they were
    no_shift = replace(shift_only, shift=0.0)
    assert decide_with_vendors(market, THRESHOLDS, market_keys, no_shift)[30] == ["non_drug"]


def test_ads_listings_without_vendor_and_other_markets_are_left_alone():
    scores = np.vstack([*_shop(5), _row(), _row(), _row()])
    markets = ["m"] * 5 + [None, "m", "n"]  # an ad (no market group); no vendor; another market's "shop"
    vendors = ["shop"] * 5 + ["shop", "", "shop"]
    keys = vendor_keys(markets, vendors)
    assert keys[5] is None and keys[6] is None and keys[7] == ("n", "shop")
    profiles = VendorProfiles(THRESHOLDS, RULE)
    profiles.add(keys, scores)
    codes, info = profiles.decide(keys, scores)
    assert codes[5:] == [["non_drug"]] * 3
    assert info[5:] == [None, None, None]


def test_profiles_added_in_chunks_equal_profiles_added_at_once():
    rng = np.random.default_rng(0)
    n = 400
    scores = rng.beta(0.3, 2.0, size=(n, K))
    keys = vendor_keys(rng.choice(["a", "b"], n).tolist(), [f"v{i}" for i in rng.integers(0, 25, n)])
    whole = VendorProfiles(THRESHOLDS, RULE)
    whole.add(keys, scores)
    chunked = VendorProfiles(THRESHOLDS, RULE)
    for start in range(0, n, 37):
        chunked.add(keys[start : start + 37], scores[start : start + 37])
    assert whole.vendors.keys() == chunked.vendors.keys()
    for key in whole.vendors:
        assert np.array_equal(whole.vendors[key], chunked.vendors[key])
    in_parts = [whole.decide(keys[s : s + 37], scores[s : s + 37])[0] for s in range(0, n, 37)]
    assert [c for part in in_parts for c in part] == whole.decide(keys, scores)[0]
    assert whole.decide(keys, scores)[0] != decide(scores, THRESHOLDS, RULE.fallback_ratio)  # it did act


def test_rule_of_params_and_off_by_default():
    assert not VendorContextRule().active
    assert not VendorContextRule.of(object()).active
    params = pd.Series({"vendor_shift": 0.5, "vendor_fill_share": 0.0, "fallback_ratio": 0.5})
    rule = VendorContextRule.of(params)
    assert rule.active and rule.shift == 0.5 and rule.fallback_ratio == 0.5 and rule.min_listings == 3


def _retune_case() -> tuple[np.ndarray, np.ndarray, list]:
    """Validation records of one market: a shop whose clear MDMA listings make its plain pill listings
    (non-drug mixes, MDMA score 0.5) look more like MDMA once shifted, and a cannabis shop."""
    mdma, cannabis, non_drug = (DRUG_TYPES.index(c) for c in ("mdma", "cannabis", "non_drug"))
    scores = np.vstack(
        [*_shop(10, "mdma"), *[_row(mdma=0.5, non_drug=0.9) for _ in range(4)], *_shop(10, "cannabis")]
    )
    y = np.zeros_like(scores, dtype=int)
    y[:10, mdma] = 1
    y[10:14, non_drug] = 1
    y[14:, cannabis] = 1
    keys = vendor_keys(["m"] * 24, ["pills"] * 14 + ["weed"] * 10)
    return scores, y, keys


def _shifted_f1(scores, y, keys, thresholds, rule, code):
    profiles = VendorProfiles(thresholds, rule)
    profiles.add(keys, scores)
    predicted = profiles.shifted_scores(keys, scores)[:, code] >= thresholds[code]
    tp = int((predicted & (y[:, code] == 1)).sum())
    return 2 * tp / (predicted.sum() + y[:, code].sum())


def test_thresholds_retuned_on_shifted_validation_scores_fit_the_shifted_decisions():
    scores, y, keys = _retune_case()
    tuning = DrugTypeParams(threshold_grid_step=0.05, default_threshold=0.5)
    rule = replace(RULE, shift=1.0, fill_share=0.0)
    plain = tune_thresholds(scores, y, tuning)
    mdma = DRUG_TYPES.index("mdma")
    assert plain[mdma] == pytest.approx(0.55)  # just above the pills' 0.5: perfect on the raw scores
    # off (flag or shift) or without vendors: the plain tuning
    np.testing.assert_array_equal(tune_in_context(scores, y, keys, rule, tuning), plain)
    np.testing.assert_array_equal(
        tune_in_context(scores, y, None, replace(rule, retune_thresholds=True), tuning), plain
    )
    on = replace(rule, retune_thresholds=True)
    retuned = tune_in_context(scores, y, keys, on, tuning)
    # the shop's MDMA rate lifts its pill listings above 0.55: the plain threshold now lets them through
    assert _shifted_f1(scores, y, keys, plain, rule, mdma) < 1.0
    assert retuned[mdma] > plain[mdma]
    assert _shifted_f1(scores, y, keys, retuned, rule, mdma) == 1.0
    # a code the shift leaves apart keeps its threshold
    cannabis = DRUG_TYPES.index("cannabis")
    assert retuned[cannabis] == plain[cannabis]


def test_validation_thresholds_read_the_vendor_settings_from_a_heads_params():
    scores, y, keys = _retune_case()
    records = pd.DataFrame({"market_key": ["m"] * 24, "vendor": ["pills"] * 14 + ["weed"] * 10})
    labels = [[DRUG_TYPES[k] for k in np.flatnonzero(row)] for row in y]
    params = DrugTypeParams(vendor_shift=1.0, vendor_fill_share=0.0, fallback_ratio=0.5)
    off = validation_thresholds(scores, records, labels, params)
    on = validation_thresholds(scores, records, labels, replace(params, vendor_retune_thresholds=True))
    np.testing.assert_array_equal(off, tune_thresholds(scores, y, params))
    np.testing.assert_array_equal(
        on,
        tune_in_context(
            scores, y, keys, VendorContextRule.of(replace(params, vendor_retune_thresholds=True)), params
        ),
    )
    assert not np.array_equal(on, off)
    # no vendor column (a messenger table): nothing to shift
    no_vendor = validation_thresholds(
        scores, records[["market_key"]], labels, replace(params, vendor_retune_thresholds=True)
    )
    np.testing.assert_array_equal(no_vendor, off)

"""Thresholds tuned on out-of-market scores (``cross_market_thresholds``): each training market scored by a
head fitted on the others, in the head's fit, the evaluation's scores tables and the market pairs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline import families
from pipeline.heads.drug_type import DrugTypeHead, DrugTypeParams, cross_market_thresholds
from pipeline.market_pairs import _third_market_thresholds, pair_scores, sweep
from pipeline.taxonomy import DRUG_TYPES

CANNABIS = DRUG_TYPES.index("cannabis")
PARAMS = DrugTypeParams(
    C=20.0, min_df=1, char_max_features=5_000, cross_market_thresholds=True, cross_market_min_records=10
)

# every market names cannabis its own way (besides "weed"); only its own records teach a model its word
SLANG = {"north": "zorblax", "south": "quimbly", "west": "fentwick"}
# the other items share the amount, so only the word tells them apart
OTHER = [("cocaine 5g", ["cocaine"]), ("mdma 5g", ["mdma"]), ("phone 5g", ["non_drug"])]


def _frame(copies: int = 4) -> pd.DataFrame:
    rows = []
    for market, word in SLANG.items():
        items = [(f"{word} 5g", ["cannabis"]), ("weed 5g", ["cannabis"]), *OTHER]
        for copy in range(copies):
            for i, (text, labels) in enumerate(items):
                rows.append(
                    {
                        "id": f"{market}-{copy}-{i}",
                        "text": text,
                        "text_folded": text,
                        "labels": labels,
                        "market_key": market,
                        "vendor": f"{market}-v{i % 2}",
                        "split": ("val", "test", "train", "train")[copy % 4],
                    }
                )
    return pd.DataFrame(rows)


def _fit(params: DrugTypeParams, frame: pd.DataFrame) -> DrugTypeHead:
    return DrugTypeHead(params).fit(
        frame[frame["split"] == "train"], val_records=frame[frame["split"] == "val"]
    )


def test_each_market_is_scored_by_a_head_that_never_saw_it() -> None:
    frame = _frame()
    head = _fit(PARAMS, frame)
    assert head.cross_market_ is not None
    scores, scored = head.cross_market_
    # every train and val record of each market, none of the test split
    pool = frame[frame["split"] != "test"]
    assert sorted(scored["id"]) == sorted(pool["id"])
    own_word = scored["text"].str.split().str[0].isin(list(SLANG.values()))
    # a market's own slang is unknown to the head fitted on the other markets: low there, high in-market
    out_of_market = scores[own_word.to_numpy(), CANNABIS]
    in_market = head.predict_scores(scored[own_word])[:, CANNABIS]
    assert out_of_market.max() < in_market.min()
    # the thresholds are tuned on those scores
    val = frame[frame["split"] == "val"]
    plain = _fit(replace(PARAMS, cross_market_thresholds=False), frame)
    assert plain.cross_market_ is None
    expected = cross_market_thresholds(plain.thresholds_, scores, scored, PARAMS)
    np.testing.assert_array_equal(head.thresholds_, expected)
    assert not np.array_equal(head.thresholds_, plain.thresholds_)
    assert len(val)


def test_one_market_or_no_market_key_keeps_the_validation_thresholds() -> None:
    frame = _frame()
    north = frame[frame["market_key"] == "north"]
    head = _fit(PARAMS, north)
    assert head.cross_market_ is None
    np.testing.assert_array_equal(
        head.thresholds_, _fit(replace(PARAMS, cross_market_thresholds=False), north).thresholds_
    )
    no_key = _fit(PARAMS, frame.drop(columns=["market_key"]))
    assert no_key.cross_market_ is None
    # markets below cross_market_min_records are left out of the pool (here: all but none qualify)
    big = _fit(replace(PARAMS, cross_market_min_records=1_000), frame)
    assert big.cross_market_ is None


def test_a_code_without_positives_out_of_market_keeps_its_validation_threshold() -> None:
    fallback = np.full(len(DRUG_TYPES), 0.5)
    scores = np.full((4, len(DRUG_TYPES)), 0.05)
    scores[:2, CANNABIS] = 0.3
    scored = pd.DataFrame({"labels": [["cannabis"], ["cannabis"], ["non_drug"], ["non_drug"]]})
    params = DrugTypeParams(cross_market_min_positives=1)
    tuned = cross_market_thresholds(fallback, scores, scored, params)
    assert tuned[CANNABIS] == pytest.approx(0.1)  # the first grid step above the negatives' 0.05
    cocaine = DRUG_TYPES.index("cocaine")
    assert tuned[cocaine] == 0.5
    assert (
        cross_market_thresholds(fallback, scores, scored, replace(params, cross_market_min_positives=3))[
            CANNABIS
        ]
        == 0.5
    )


def test_rotations_write_and_use_their_cross_market_rows() -> None:
    frame = _frame()
    table = families.lomo_scores(frame, sorted(SLANG), lambda: DrugTypeHead(PARAMS))
    for market in SLANG:
        rows = table[(table["rotation"] == market) & (table["part"] == families.CROSS_MARKET)]
        # the rotation's two training markets, each scored by a head of the other
        assert set(rows["market_key"]) == set(SLANG) - {market}
    thresholds = families.rotation_thresholds(table, "north", PARAMS)
    head = DrugTypeHead(PARAMS).fit(
        *families.rotation_frames(frame, "north")[:1], val_records=families.rotation_frames(frame, "north")[1]
    )
    np.testing.assert_allclose(thresholds, head.thresholds_)
    # the flag off (another family's tuning): the val part only, as before
    off = families.rotation_thresholds(table, "north", replace(PARAMS, cross_market_thresholds=False))
    np.testing.assert_allclose(
        off, families.rotation_thresholds(table[table["part"] != families.CROSS_MARKET], "north", PARAMS)
    )
    assert not np.array_equal(off, thresholds)


def test_market_pairs_tune_on_the_third_market_never_the_scored_one() -> None:
    frame = _frame()
    fitted = pair_scores(frame, sorted(SLANG), replace(PARAMS, cross_market_thresholds=False))
    table = sweep(fitted, "cross_market_thresholds", [0.0, 1.0])
    assert len(table) == 2 * 6
    assert table["macro_f1"].between(0, 1).all()
    # the pair (fit, scored) is tuned on the third market: its scores and labels, never the scored one's
    scored = {
        m: np.random.default_rng(0).random((len(r), len(DRUG_TYPES))) for m, r in fitted["records"].items()
    }
    fallback = np.full(len(DRUG_TYPES), 0.5)
    first = _third_market_thresholds(fallback, scored, fitted["records"], "south", PARAMS)
    relabelled = dict(fitted["records"])
    relabelled["south"] = relabelled["south"].assign(labels=[["heroin"]] * len(relabelled["south"]))
    scored_changed = {**scored, "south": np.zeros_like(scored["south"])}
    np.testing.assert_array_equal(
        first, _third_market_thresholds(fallback, scored_changed, relabelled, "south", PARAMS)
    )
    assert not np.array_equal(first, _third_market_thresholds(fallback, scored, relabelled, "north", PARAMS))

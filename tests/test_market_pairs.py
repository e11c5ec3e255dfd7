"""Choosing decision settings on out-of-market pairs (pipeline/market_pairs.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from pipeline.heads.drug_type import DrugTypeParams
from pipeline.heads.prior_shift import estimate_priors
from pipeline.market_pairs import pair_scores, pick_per_rotation, sweep, sweep_refit
from pipeline.taxonomy import DRUG_TYPES

# each market words the same goods its own way; "brown sugar" is heroin slang that also names an MDMA
ROWS = {
    "north": [
        ("1g mdma crystal", ["mdma"]),
        ("mdma pills 120mg x10", ["mdma"]),
        ("5g heroin #4", ["heroin"]),
        ("brown sugar heroin 1g", ["heroin"]),
        ("ketamine 5g shards", ["dissociative"]),
        ("fake passport template", ["non_drug"]),
    ],
    "south": [
        ("3g mdma champagne", ["mdma"]),
        ("heroin afghan 2g", ["heroin"]),
        ("brown sugar 3g", ["heroin"]),
        ("ketamine needles 10g", ["dissociative"]),
        ("netflix account", ["non_drug"]),
        ("phone case", ["non_drug"]),
    ],
    "west": [
        ('1g "brown sugar" mdma', ["mdma"]),
        ("mdma 84% 5g", ["mdma"]),
        ("heroin no.4 1g", ["heroin"]),
        ("ketamine 1g", ["dissociative"]),
        ("vpn lifetime", ["non_drug"]),
        ("ebook pdf", ["non_drug"]),
    ],
}


def _frame() -> pd.DataFrame:
    rows = []
    for market, items in ROWS.items():
        for copy in range(3):  # train twice, val once
            for i, (text, labels) in enumerate(items):
                rows.append(
                    {
                        "id": f"{market}-{copy}-{i}",
                        "text": text,
                        "text_folded": text,
                        "labels": labels,
                        "market_key": market,
                        "split": "val" if copy == 2 else "train",
                    }
                )
    return pd.DataFrame(rows)


def test_sweep_measures_every_ordered_pair_for_every_value() -> None:
    markets = sorted(ROWS)
    fitted = pair_scores(_frame(), markets, DrugTypeParams(C=50.0, min_df=1, char_max_features=20_000))
    table = sweep(fitted, "unnamed_keep_score", [0.0, 0.999])
    assert len(table) == 2 * len(markets) * (len(markets) - 1)
    assert set(zip(table["fit"], table["scored"], strict=True)) == {
        (a, b) for a in markets for b in markets if a != b
    }
    assert table["macro_f1"].between(0, 1).all()
    # the rule only removes second codes next to a named drug: on these markets it never hurts, and it
    # fixes "west" (the "brown sugar" MDMA market) whichever market the head was fitted on
    wide = table.pivot_table(index=["fit", "scored"], columns="value", values="micro_f1")
    assert (wide[0.999] >= wide[0.0]).all()
    west = wide.xs("west", level="scored")
    assert (west[0.999] > west[0.0]).all()


def test_sweep_rejects_unknown_setting() -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        sweep({"heads": {}, "records": {}, "raw": {}}, "C", [1.0])


def test_pick_uses_only_the_other_markets_pairs() -> None:
    table = pd.DataFrame(
        [
            # pairs without "c": value 1 wins; pairs touching "c" favour value 2 strongly
            {"value": 1.0, "fit": "a", "scored": "b", "macro_f1": 0.9, "micro_f1": 0.9},
            {"value": 1.0, "fit": "b", "scored": "a", "macro_f1": 0.9, "micro_f1": 0.9},
            {"value": 2.0, "fit": "a", "scored": "b", "macro_f1": 0.8, "micro_f1": 0.8},
            {"value": 2.0, "fit": "b", "scored": "a", "macro_f1": 0.8, "micro_f1": 0.8},
            {"value": 1.0, "fit": "a", "scored": "c", "macro_f1": 0.1, "micro_f1": 0.1},
            {"value": 2.0, "fit": "a", "scored": "c", "macro_f1": 1.0, "micro_f1": 1.0},
        ]
    )
    picks = pick_per_rotation(table, ["a", "b", "c"])
    assert picks["c"] == 1.0  # c held out: only a<->b count
    assert picks["b"] == 2.0  # b held out: only a->c counts
    assert "a" not in picks  # no pair without a


def test_prior_adaptation_is_swept_on_the_scored_markets_own_mix() -> None:
    """0 is the plain model; a value > 0 shifts each scored market's scores towards the mix EM estimates
    from that market's records, so the table changes with the value (and the heads keep their prior)."""
    markets = sorted(ROWS)
    frame = _frame()
    # one market sells mostly heroin: a mix far from the others'
    heroin = frame[(frame["market_key"] == "south") & frame["labels"].map(lambda x: x == ["heroin"])]
    frame = pd.concat(
        [frame] + [heroin.assign(id=heroin["id"] + f"-x{i}") for i in range(6)], ignore_index=True
    )
    fitted = pair_scores(frame, markets, DrugTypeParams(C=50.0, min_df=1, char_max_features=20_000))
    assert all(h.train_prior_ is not None for h in fitted["heads"].values())
    table = sweep(fitted, "prior_adaptation", [0.0, 1.0])
    plain = sweep(fitted, "unnamed_keep_score", [0.0])
    zero = table[table["value"] == 0.0].reset_index(drop=True)
    assert zero[["macro_f1", "micro_f1"]].equals(plain[["macro_f1", "micro_f1"]])
    heroin_code = DRUG_TYPES.index("heroin")
    for fit_market in ("north", "west"):
        head = fitted["heads"][fit_market]
        raw, _ = fitted["raw"][fit_market, "south"]
        assert estimate_priors(raw, head.train_prior_)[heroin_code] > 2 * head.train_prior_[heroin_code]
    # scored with its own mix, the heroin-heavy market is tagged better by the head fitted on "north"
    wide = table.pivot_table(index=["fit", "scored"], columns="value", values="macro_f1")
    assert wide.loc[("north", "south"), 1.0] > wide.loc[("north", "south"), 0.0]


def test_sweeping_the_retuning_flag_retunes_as_fit_would() -> None:
    # two shops per market: the vendor settings have profiles to work with
    frame = _frame()
    frame["vendor"] = [f"{m}-{i % 2}" for m, i in zip(frame["market_key"], range(len(frame)), strict=True)]
    markets = sorted(ROWS)
    base = DrugTypeParams(
        C=50.0,
        min_df=1,
        char_max_features=20_000,
        vendor_shift=3.0,  # strong enough to move the tiny validation sets' first-best thresholds
        vendor_pseudo_listings=1,
        vendor_min_listings=2,
    )
    swept = sweep(pair_scores(frame, markets, base), "vendor_retune_thresholds", [0.0, 1.0])
    fitted_on = pair_scores(frame, markets, replace(base, vendor_retune_thresholds=True))
    # the flag swept on heads fitted without it = heads fitted with it (their fit re-tuned)
    same = sweep(fitted_on, "vendor_min_listings", [2])
    on = swept[swept["value"] == 1.0].reset_index(drop=True)
    pd.testing.assert_series_equal(on["macro_f1"], same["macro_f1"])
    off_heads = pair_scores(frame, markets, base)["heads"]
    assert any(
        not np.array_equal(off_heads[m].thresholds_, fitted_on["heads"][m].thresholds_) for m in markets
    )


def test_a_fit_time_setting_refits_the_pair_heads_per_value() -> None:
    markets = sorted(ROWS)
    base = DrugTypeParams(C=50.0, min_df=1, char_max_features=20_000)
    table = sweep_refit(_frame(), markets, base, "C", [0.001, 50.0])
    assert len(table) == 2 * len(markets) * (len(markets) - 1)
    # each value's rows are those of heads fitted with it, and the value changes them
    for value in (0.001, 50.0):
        direct = sweep(pair_scores(_frame(), markets, replace(base, C=value)), "vendor_min_listings", [3])
        got = table[table["value"] == value].reset_index(drop=True)
        pd.testing.assert_series_equal(got["macro_f1"], direct["macro_f1"])
    means = table.groupby("value")["macro_f1"].mean()
    assert means[50.0] != means[0.001]
    with pytest.raises(ValueError, match="unknown"):
        sweep_refit(_frame(), markets, base, "no_such_setting", [1.0])

"""evaluate: the leave-one-market-out figures, with and without the labels prepare set aside."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from pipeline.evaluate import lomo_rotations
from pipeline.heads.drug_type import DrugTypeParams
from pipeline.train import TrainParams
from tests.test_drug_type import TRAIN, _frame


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Every TRAIN example in three markets (train, val and test splits alike)."""
    parts = []
    for market in ("alpha", "beta", "gamma"):
        for split in ("train", "val"):
            part = _frame(TRAIN)
            part["id"] = [f"{market}-{split}-{i}" for i in range(len(part))]
            part["market_key"], part["split"] = market, split
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _set_aside(category: list[str], texts: list[str], market: str) -> pd.DataFrame:
    out = _frame(texts)
    out["id"] = [f"{market}-aside-{i}" for i in range(len(out))]
    out["market_key"], out["split"] = market, "train"
    out["category_labels"] = [category] * len(out)
    return out


def test_lomo_with_set_aside_scores_the_same_model_on_the_category_labels(frame: pd.DataFrame) -> None:
    params = replace(
        TrainParams(), drug_type=DrugTypeParams(C=50.0, min_df=1, char_max_features=50_000, max_iter=500)
    )
    # misfiled: oxycodone and xanax under "cannabis"; what the model says (not cannabis) is charged as wrong
    aside = _set_aside(["cannabis"], ["Oxycodone 80mg x 20 pills", "Xanax bars 2mg x100 alprazolam"], "beta")
    markets = ["alpha", "beta", "gamma"]
    plain, _ = lomo_rotations(frame, markets, params, min_support=1)
    rotations, table = lomo_rotations(frame, markets, params, min_support=1, set_aside=aside)
    assert set(table["id"]) == set(frame["id"])  # the set-aside records never enter the scores table
    for market, report in rotations.items():
        assert report["summary"] == plain[market]["summary"]  # the figures themselves are unchanged
        extra = 2 if market == "beta" else 0
        assert report["with_set_aside"]["set_aside_records"] == extra
        assert report["with_set_aside"]["records"] == report["summary"]["records"] + extra
    beta = rotations["beta"]
    assert beta["summary"]["micro_f1"] > 0.9
    assert beta["with_set_aside"]["micro_f1"] < beta["summary"]["micro_f1"]
    assert rotations["alpha"]["with_set_aside"]["micro_f1"] == rotations["alpha"]["summary"]["micro_f1"]

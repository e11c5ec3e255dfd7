"""The model-family comparison: one metric path for every family, ensembles, champion selection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import compare, families
from pipeline.compare import CompareParams, choose_champion, ensemble_members, ensemble_table
from pipeline.config import Paths
from pipeline.heads.drug_type import DrugTypeParams
from pipeline.taxonomy import DRUG_TYPES

CODES = ("cannabis", "cocaine", "mdma")
TUNING = DrugTypeParams()


def _scores(true: str, hit: bool, confidence: float = 0.9) -> list[float]:
    """A score row: ``true`` scored ``confidence`` when ``hit``, else another code scored high."""
    row = np.full(len(DRUG_TYPES), 0.01, dtype=np.float32)
    if hit:
        row[DRUG_TYPES.index(true)] = confidence
    else:
        wrong = CODES[(CODES.index(true) + 1) % len(CODES)]
        row[DRUG_TYPES.index(wrong)] = confidence
    return row.tolist()


def _val_scores(true: str) -> list[float]:
    """A validation row: the true code 0.9, the other codes of :data:`CODES` 0.3 (thresholds land >0.3)."""
    row = np.full(len(DRUG_TYPES), 0.01, dtype=np.float32)
    row[[DRUG_TYPES.index(c) for c in CODES]] = 0.3
    row[DRUG_TYPES.index(true)] = 0.9
    return row.tolist()


def scores_table(hits: dict[str, list[bool]], n_val: int = 30) -> pd.DataFrame:
    """Two rotations (market a, b) plus in-market; val parts always right, test hits as given per market."""
    rows = []
    for rotation in ("a", "b", families.IN_MARKET):
        for i in range(n_val):
            code = CODES[i % 3]
            rows.append((f"v{i}", "x", rotation, "val", [code], _val_scores(code)))
        for i, hit in enumerate(hits.get(rotation, [True] * 30)):
            code = CODES[i % 3]
            market = rotation if rotation != families.IN_MARKET else "a"
            rows.append((f"{rotation}{i}", market, rotation, "test", [code], _scores(code, hit)))
    return pd.DataFrame(rows, columns=list(families.SCORE_COLUMNS))


def test_family_report_counts_errors_per_rotation() -> None:
    # rotation a: every record right; rotation b: the first 6 of 30 wrong (each a miss and a false positive)
    table = scores_table({"a": [True] * 30, "b": [False] * 6 + [True] * 24})
    report = families.family_report(table, TUNING, 0.5, min_support=1)
    assert report["lomo"]["a"]["summary"]["macro_f1"] == 1.0
    b = report["lomo"]["b"]
    assert b["summary"]["records"] == 30
    assert b["summary"]["micro_f1"] == pytest.approx(24 / 30, abs=1e-4)
    assert report["lomo_mean"]["macro_f1"] == pytest.approx((1.0 + b["summary"]["macro_f1"]) / 2, abs=1e-4)
    assert report["in_market_test"]["summary"]["macro_f1"] == 1.0


def test_thresholds_come_from_val_not_test() -> None:
    # validation: the right code 0.9, the other two 0.5, so tuned thresholds sit above 0.5; test: the right
    # code 0.45, the rest 0.01. Thresholds tuned on test would find every test record; from val none.
    table = scores_table({})
    val = (table["part"] == "val") & (table["rotation"] == "a")
    test = (table["part"] == "test") & (table["rotation"] == "a")

    def val_row(code: str) -> list[float]:
        row = np.full(len(DRUG_TYPES), 0.01)
        row[[DRUG_TYPES.index(c) for c in CODES]] = 0.5
        row[DRUG_TYPES.index(code)] = 0.9
        return row.tolist()

    table.loc[val, "scores"] = pd.Series(
        [val_row(x[0]) for x in table.loc[val, "labels"]], index=table.index[val]
    )
    table.loc[test, "scores"] = pd.Series(
        [_scores(x[0], True, confidence=0.45) for x in table.loc[test, "labels"]], index=table.index[test]
    )
    y_true, y_pred, _, _ = families.rotation_decisions(table, "a", TUNING, fallback_ratio=0.0)
    assert (y_pred[:, DRUG_TYPES.index("non_drug")] == 1).all()
    assert not (y_true == y_pred).all(axis=1).any()


def test_ensemble_table_averages_aligned_rows() -> None:
    one, two = scores_table({}), scores_table({"a": [False] * 30})
    two = two.sample(frac=1.0, random_state=3)  # row order must not matter
    mean = ensemble_table({"one": one, "two": two})
    assert len(mean) == len(one)
    key = (mean["rotation"] == "a") & (mean["id"] == "a0")
    row = np.asarray(mean.loc[key, "scores"].iloc[0])
    assert row[DRUG_TYPES.index("cannabis")] == pytest.approx((0.9 + 0.01) / 2)
    assert row[DRUG_TYPES.index("cocaine")] == pytest.approx((0.01 + 0.9) / 2)


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (["sklearn", "spacy"], [("sklearn", "spacy")]),
        (
            ["sklearn", "transformer", "transformer_int8"],
            [("sklearn", "transformer"), ("sklearn", "transformer_int8")],
        ),
        (
            ["sklearn", "spacy", "transformer"],
            [
                ("sklearn", "spacy"),
                ("sklearn", "transformer"),
                ("spacy", "transformer"),
                ("sklearn", "spacy", "transformer"),
            ],
        ),
    ],
)
def test_ensemble_members(found: list[str], expected: list[tuple[str, ...]]) -> None:
    assert ensemble_members({f: {} for f in found}) == expected


def _candidate(metric: float, rate: float, members: list[str]) -> dict:
    return {
        "members": members,
        "texts_per_second": rate,
        "metric": metric,
        "report": {"lomo_mean": {"macro_f1": metric}},
    }


@pytest.mark.parametrize(
    ("floor", "expected"),
    [
        (0, "transformer"),  # best macro-F1 wins when speed is no constraint
        (1000, "ensemble:sklearn+spacy"),  # transformer too slow; the ensemble beats each member
        (5000, "sklearn"),  # only sklearn is fast enough
        (1e9, "transformer"),  # nothing reaches the floor (a slow or noisy machine): the best, flagged
    ],
)
def test_choose_champion_respects_the_throughput_floor(floor: float, expected: str) -> None:
    candidates = {
        "sklearn": _candidate(0.80, 8000, ["sklearn"]),
        "spacy": _candidate(0.78, 3000, ["spacy"]),
        "transformer": _candidate(0.86, 300, ["transformer"]),
        "ensemble:sklearn+spacy": _candidate(0.83, 2182, ["sklearn", "spacy"]),
    }
    assert choose_champion(candidates, floor) == expected


def test_floor_met() -> None:
    from pipeline.compare import floor_met

    candidates = {"sklearn": _candidate(0.80, 8000, ["sklearn"]), "spacy": _candidate(0.7, 900, ["spacy"])}
    assert floor_met(candidates, "sklearn", 1000) and not floor_met(candidates, "spacy", 1000)


def test_throughput_is_measured_on_limit_records_even_from_a_small_split() -> None:
    """A few hundred records would time per-call overhead: they are repeated up to ``limit``."""

    class Counting:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def predict(self, records: pd.DataFrame) -> dict:
            self.sizes.append(len(records))
            return {}

    head = Counting()
    rate = families.texts_per_second(head, pd.DataFrame({"text": ["a", "b", "c"]}), limit=50, repeats=2)
    assert head.sizes == [8, 50, 50] and rate > 0  # warm-up, then two timed calls of 50
    head.sizes.clear()
    families.texts_per_second(head, pd.DataFrame({"text": [str(i) for i in range(80)]}), limit=50)
    assert head.sizes == [8, 50, 50]
    assert families.texts_per_second(head, pd.DataFrame({"text": []}), limit=50) == 0.0


def test_held_out_market_figures_are_compared_like_for_like() -> None:
    candidates = {
        "sklearn": _candidate(0.80, 8000, ["sklearn"]),
        "spacy": {
            "members": ["spacy"],
            "texts_per_second": 8000,
            "report": {"in_market_test": {"summary": {"macro_f1": 0.95}}},
        },
    }
    assert choose_champion(candidates, 0) == "sklearn"  # 0.95 in-market is no better than 0.80 held-out


def test_a_single_family_wins_a_tie_with_an_ensemble() -> None:
    candidates = {
        "ensemble:sklearn+spacy": _candidate(0.80, 2000, ["sklearn", "spacy"]),
        "sklearn": _candidate(0.80, 8000, ["sklearn"]),
    }
    assert choose_champion(candidates, 0) == "sklearn"


def test_compare_stage_picks_the_better_model_on_a_constructed_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'sklearn' errs on market a, 'spacy' on market b: each alone is worse than their average, which is
    right wherever one of them is confidently right and the other only mildly wrong."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    reports = tmp_path / "reports" / "sample"
    sk = scores_table({"a": [False] * 10 + [True] * 20})
    sp = scores_table({"b": [False] * 10 + [True] * 20})
    # the wrong guesses are mild (0.4) and the right ones confident (0.9): averaging fixes every error
    for table, market in ((sk, "a"), (sp, "b")):
        wrong = table["id"].str.fullmatch(market + r"[0-9]")
        table.loc[wrong, "scores"] = pd.Series(
            [_scores(lab[0], False, 0.4) for lab in table.loc[wrong, "labels"]], index=table.index[wrong]
        )
    families.write_family_outputs(reports, "sklearn", sk, {"texts_per_second": 5000.0})
    families.write_family_outputs(reports, "spacy", sp, {"texts_per_second": 2000.0})
    summary = compare.run(CompareParams(), TUNING, Paths(tmp_path), "sample")
    assert set(summary) == {"sklearn", "spacy", "ensemble:sklearn+spacy"}
    assert summary["ensemble:sklearn+spacy"]["metric"] == 1.0
    assert summary["sklearn"]["metric"] < 1.0 and summary["spacy"]["metric"] < 1.0
    assert summary["ensemble:sklearn+spacy"]["texts_per_second"] == pytest.approx(1428.6, abs=0.1)
    written = json.loads((reports / "families.json").read_text())
    assert choose_champion(written, 1000) == "ensemble:sklearn+spacy"
    assert choose_champion(written, 1500) == "sklearn"  # the ensemble is too slow for this floor
    table = (reports / "families.md").read_text()
    assert "| ensemble:sklearn+spacy | 1.000 | 1.000 | 1.000 |" in table
    assert "| 60 | 1,429 |" in table  # 30 held-out records in each of two rotations; texts/s

    import mlflow

    runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.comparison = 'drug_type'")
    assert sorted(runs["tags.family"]) == sorted(summary)
    assert set(runs["metrics.lomo_macro_f1_a"].round(4)) <= {1.0, summary["sklearn"]["lomo_macro_f1"]["a"]}


def test_unknown_family_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown family 'bert'"):
        compare.available_families(tmp_path, ("bert",))


def test_rule_heads_table_from_the_spacy_facts(tmp_path: Path) -> None:
    reports = tmp_path / "reports" / "sample"
    assert compare.rule_head_comparison(reports) == {}
    gold = {
        "hints": {"spacy": {"micro_f1": 0.6, "items": 10}, "rules": {"micro_f1": 0.9, "items": 10}},
        "quantity": {"items": 12, "spacy_exact": 0.95, "rules_exact": 0.9},
    }
    families.write_family_outputs(
        reports,
        "spacy",
        families.empty_scores(),
        {"texts_per_second": 1.0, "hints_spans": {"gold_test": gold}},
    )
    rows = compare.rule_head_comparison(reports)
    assert rows["laundering"]["champion"] == "rules" and rows["quantity"]["champion"] == "spacy"
    assert (
        "| quantity | exact match (4 fields) | 12 | 0.900 | 0.950 | spacy |"
        in compare.rule_heads_markdown(rows)
    )


def test_the_held_out_rotation_is_decided_with_each_vendors_context() -> None:
    """With vendor context in the tuning and a vendor column in the table, a test record nothing claims
    takes its vendor's code, as `narcotag score` decides it; without the column (an older table) or with the
    settings off, it stays non_drug. Ensembles keep the vendors."""
    from dataclasses import replace

    table = scores_table({})
    test = (table["part"] == "test") & (table["rotation"] == "a")
    first = table.index[test][0]  # a0: cannabis, claimed at 0.9 like the rest
    table.at[first, "scores"] = np.full(len(DRUG_TYPES), 0.01, dtype=np.float32).tolist()  # claims nothing
    table[families.VENDOR_COLUMN] = np.where(table["labels"].map(tuple) == ("cannabis",), "weedshop", "other")
    context = replace(TUNING, vendor_fill_share=0.5)

    def decision(tuning: DrugTypeParams, frame: pd.DataFrame) -> list[str]:
        _, y_pred, _, rows = families.rotation_decisions(frame, "a", tuning, fallback_ratio=0.5)
        return [DRUG_TYPES[k] for k in np.flatnonzero(y_pred[list(rows.index).index(first)])]

    assert decision(context, table) == ["cannabis"]
    assert decision(TUNING, table) == ["non_drug"]
    assert decision(context, table.drop(columns=[families.VENDOR_COLUMN])) == ["non_drug"]
    report = families.family_report(table, context, 0.5, min_support=1)
    assert report["lomo"]["a"]["summary"]["macro_f1"] == 1.0
    mean = ensemble_table({"one": table, "two": table})
    assert families.VENDOR_COLUMN in mean
    assert decision(context, mean) == ["cannabis"]

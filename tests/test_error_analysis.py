"""pipeline/error_analysis.py on a constructed scores table with known answers, and
notebooks/error_analysis.ipynb run top to bottom (nbclient, the venv's Python) on scores of the sample."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipeline import error_analysis as ea
from pipeline import families
from pipeline.families import IN_MARKET
from pipeline.params import load_params
from pipeline.taxonomy import DRUG_TYPES
from tests.conftest import venv_kernel

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "error_analysis.ipynb"


def _row(
    rid: str, market: str, rotation: str, part: str, labels: list[str], **scores: float
) -> dict[str, Any]:
    vector = [0.0] * len(DRUG_TYPES)
    for code, value in scores.items():
        vector[DRUG_TYPES.index(code)] = value
    return {
        "id": rid,
        "market_key": market,
        "rotation": rotation,
        "part": part,
        "labels": labels,
        "scores": vector,
    }


def _table() -> pd.DataFrame:
    """in_market: no val part (default thresholds 0.5); m1: val part tunes cannabis and non_drug to 0.05."""
    im = IN_MARKET
    rows = [
        _row("a1", "m1", im, "test", ["cannabis"], cannabis=0.9),  # TP
        _row("a2", "m2", im, "test", ["cannabis"], cannabis=0.2, cocaine=0.6),  # FN cannabis, FP cocaine
        _row("a3", "m1", im, "test", ["cannabis"], cannabis=0.1, non_drug=0.8),  # FN cannabis, FP non_drug
        _row("a4", "m2", im, "test", ["cocaine"], cocaine=0.7),  # TP
        _row("a5", "m1", im, "test", ["cannabis", "cocaine"], cannabis=0.8, cocaine=0.3),  # FN cocaine
        _row("a6", "m2", im, "test", ["non_drug"], non_drug=0.9, cocaine=0.55),  # FP cocaine, FN non_drug
        _row("a1", "m1", "m1", "val", ["cannabis"], cannabis=0.3),
        _row("v2", "m2", "m1", "val", ["non_drug"], cannabis=0.02, non_drug=0.9),
        _row("b1", "m1", "m1", "test", ["cannabis"], cannabis=0.9),
        _row("c1", "m2", "m2", "test", ["cannabis"], cannabis=0.1, non_drug=0.9),
    ]
    return pd.DataFrame(rows)


def test_thresholds_are_tuned_on_the_rotations_val_part() -> None:
    tuned = ea.decide_rotation(_table(), "m1")
    assert tuned.thresholds[DRUG_TYPES.index("cannabis")] == pytest.approx(0.05)
    assert tuned.thresholds[DRUG_TYPES.index("cocaine")] == 0.5  # absent from val: the default
    untuned = ea.decide_rotation(_table(), IN_MARKET)
    assert (untuned.thresholds == 0.5).all()
    assert untuned.rows["id"].tolist() == ["a1", "a2", "a3", "a4", "a5", "a6"]  # only the test part
    assert untuned.predicted == [
        ["cannabis"],
        ["cocaine"],
        ["non_drug"],
        ["cocaine"],
        ["cannabis"],
        ["cocaine"],
    ]


def test_rotations_put_in_market_last() -> None:
    assert ea.rotations(_table()) == ["m1", "m2", IN_MARKET]


def test_confusion_table_counts_single_label_records_by_argmax() -> None:
    table = ea.confusion_table(ea.decide_rotation(_table(), IN_MARKET))
    assert list(table.index) == list(table.columns) == ["cannabis", "cocaine", "non_drug"]
    assert table.loc["cannabis", "cannabis"] == 1
    assert table.loc["cannabis", "cocaine"] == 1
    assert table.loc["cannabis", "non_drug"] == 1
    assert table.loc["non_drug", "non_drug"] == 1  # arg-max, not the thresholded decision (cocaine)
    assert table.to_numpy().sum() == 5  # a5 is multi-label: left out
    assert ea.confusion_table(ea.decide_rotation(_table(), IN_MARKET), all_codes=True).shape == (17, 17)


@pytest.mark.parametrize(
    ("code", "tp", "fp", "fn"),
    [("cannabis", 2, 0, 2), ("cocaine", 1, 2, 1), ("non_drug", 0, 1, 1), ("heroin", 0, 0, 0)],
)
def test_class_counts(code: str, tp: int, fp: int, fn: int) -> None:
    counts = ea.class_counts(ea.decide_rotation(_table(), IN_MARKET))
    assert (counts.loc[code, "tp"], counts.loc[code, "fp"], counts.loc[code, "fn"]) == (tp, fp, fn)
    assert counts.loc[code, "support"] == tp + fn


@pytest.mark.parametrize(
    ("code", "error", "ids"),
    [
        ("cannabis", "FN", ["a3", "a2"]),  # lowest cannabis score first
        ("cocaine", "FP", ["a2", "a6"]),  # highest cocaine score first
        ("cocaine", "FN", ["a5"]),
        ("non_drug", "FP", ["a3"]),
        ("cannabis", "FP", []),
    ],
)
def test_worst_errors_order(code: str, error: str, ids: list[str]) -> None:
    errors = ea.worst_errors(ea.decide_rotation(_table(), IN_MARKET), k=5)
    mine = errors[(errors["code"] == code) & (errors["error"] == error)]
    assert mine["id"].tolist() == ids
    assert mine["rank"].tolist() == list(range(1, len(ids) + 1))


def test_worst_errors_top_k_and_titles() -> None:
    decided = ea.decide_rotation(_table(), IN_MARKET)
    errors = ea.worst_errors(decided, k=1, titles={"a3": "Haze 5g"})
    worst = errors[(errors["code"] == "cannabis") & (errors["error"] == "FN")].iloc[0]
    assert (worst["id"], worst["market_key"], worst["score"], worst["title"]) == ("a3", "m1", 0.1, "Haze 5g")
    assert worst["labels"] == ["cannabis"] and worst["predicted"] == ["non_drug"]
    assert errors.groupby(["code", "error"]).size().max() == 1
    assert list(errors.columns) == list(ea.ERROR_COLUMNS)


def test_per_class_f1_side_by_side() -> None:
    f1 = ea.per_class_f1(_table())
    assert list(f1.columns) == ["m1", "m2", IN_MARKET]
    assert f1.loc["cannabis"].tolist() == pytest.approx([1.0, 0.0, 0.6667])
    assert math.isnan(f1.loc["cocaine", "m1"])  # no cocaine in m1's test part: no figure, not zero
    assert f1.loc["cocaine", IN_MARKET] == pytest.approx(0.4)


def test_drift_gap_is_in_market_minus_lomo_mean() -> None:
    gap = ea.drift_gap(_table())
    assert gap.loc["cannabis", "lomo_f1"] == pytest.approx(0.5)
    assert gap.loc["cannabis", "gap"] == pytest.approx(0.6667 - 0.5, abs=1e-4)
    assert gap.loc["cannabis", "lomo_markets"] == 2
    assert math.isnan(gap.loc["cocaine", "gap"])  # no held-out market has cocaine


def test_label_distribution_counts_each_record_once() -> None:
    dist = ea.label_distribution(_table())
    assert dist.loc["records"].to_dict() == {"m1": 4.0, "m2": 5.0}  # a1 appears twice, counted once
    assert dist.loc["cannabis", "m1"] == 1.0
    assert dist.loc["cocaine", "m1"] == 0.25
    assert dist.loc["cannabis", "m2"] == pytest.approx(0.4)


def test_macro_f1_table() -> None:
    macro = ea.macro_f1_table({"sklearn": _table(), "other": _table()})
    assert list(macro.index) == ["sklearn", "other"]
    assert list(macro.columns) == ["m1", "m2", IN_MARKET]
    # in_market: cannabis 0.6667, cocaine 0.4, non_drug 0.0 (present classes only)
    assert macro.loc["sklearn"].tolist() == pytest.approx([1.0, 0.0, 0.3556], abs=1e-4)
    assert ea.macro_f1_table({}).empty


def test_load_family_scores(tmp_path: Path) -> None:
    assert ea.load_family_scores(tmp_path) == {}
    for family in ("ensemble", "zz_custom", "sklearn"):
        families.write_family_outputs(tmp_path, family, _table(), {"texts_per_second": 1.0})
    tables = ea.load_family_scores(tmp_path)
    assert list(tables) == ["sklearn", "ensemble", "zz_custom"]  # FAMILIES order, then the rest
    assert tables["sklearn"]["labels"].iloc[4] == ["cannabis", "cocaine"]
    assert ea.macro_f1_table(tables).loc["ensemble"].tolist() == pytest.approx([1.0, 0.0, 0.3556], abs=1e-4)


def test_load_titles_truncates_and_falls_back_to_the_text(tmp_path: Path) -> None:
    path = tmp_path / "drug_type.parquet"
    assert ea.load_titles(path) == {}
    pd.DataFrame(
        {
            "id": ["x", "y", "z"],
            "title": ["Short", None, "L" * 200],
            "text": ["Short\nbody", "\n  First line  \nsecond", "long"],
        }
    ).to_parquet(path)
    titles = ea.load_titles(path)
    assert titles["x"] == "Short" and titles["y"] == "First line"
    assert len(titles["z"]) == ea.TITLE_WIDTH and titles["z"].endswith("…")


# --- the notebook ----------------------------------------------------------------------------------------


def test_notebook_is_committed_without_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.fixture(scope="module")
def sample_reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small sample, cleaned and prepared, and an sklearn scores table of it: (reports, processed)."""
    from pipeline import clean, prepare, sample
    from pipeline.config import Paths
    from pipeline.heads.drug_type import DrugTypeHead, DrugTypeParams
    from pipeline.params import load_params
    from pipeline.train import labelled_frame

    root = tmp_path_factory.mktemp("error_analysis")
    params = load_params(REPO / "params.yaml")
    paths = Paths(root)
    sample.run(replace(params.sample, listings_per_market=60, messages_per_language=10), paths)
    clean.run(replace(params.clean, workers=1), paths, "sample")
    report = prepare.run(replace(params.prepare, lomo_min_records=20), paths)
    frame = labelled_frame(paths)
    small = DrugTypeParams(char_max_features=5000, char_ngram_max=4, max_iter=100)
    lomo = families.lomo_scores(frame, report["lomo_markets"], lambda: DrugTypeHead(small))
    head = DrugTypeHead(small).fit(
        frame[frame["split"] == "train"], val_records=frame[frame["split"] == "val"]
    )
    scores = pd.concat([lomo, families.in_market_scores(head, frame)], ignore_index=True)
    reports = root / "reports" / "sample"
    families.write_family_outputs(reports, "sklearn", scores, {"texts_per_second": 1.0})
    return reports, paths.processed / "drug_type.parquet"


def _run_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[Any]:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    kernel = venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for key in ("NARCOTAG_FAMILY", "NARCOTAG_ROTATION"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name=kernel, resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return outputs


def _summary(outputs: list[Any]) -> dict[str, Any]:
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    return dict(json.loads(text.split("SUMMARY ", 1)[1].splitlines()[0]))


@pytest.mark.filterwarnings("ignore:Label not .* is present in all training examples")
def test_error_analysis_notebook_runs_on_the_sample(
    sample_reports: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports, processed = sample_reports
    outputs = _run_notebook(
        tmp_path, monkeypatch, {"NARCOTAG_REPORTS": str(reports), "NARCOTAG_PROCESSED": str(processed)}
    )
    summary = _summary(outputs)
    tables = ea.load_family_scores(reports)
    tuning = load_params(REPO / "params.yaml").train.drug_type  # the notebook decides as compare does
    expected = ea.macro_f1_table(tables, tuning)
    assert expected.loc["sklearn"].tolist() != ea.macro_f1_table(tables).loc["sklearn"].tolist()
    assert summary["families"] == ["sklearn"] and summary["family"] == "sklearn"
    assert summary["macro_f1"]["sklearn"].keys() == set(expected.columns)
    for rotation, value in expected.loc["sklearn"].items():
        assert summary["macro_f1"]["sklearn"][rotation] == pytest.approx(float(value))
    assert IN_MARKET in summary["confusion_records"] and len(summary["confusion_records"]) >= 4
    in_market = ea.decide_rotation(tables["sklearn"], IN_MARKET, params=tuning)
    single = int((in_market.y_true.sum(axis=1) == 1).sum())
    assert summary["confusion_records"][IN_MARKET] == single
    assert summary["worst_errors"] > 0
    assert summary["titled_errors"] == summary["worst_errors"]  # titles joined from the prepared frame
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the confusion heatmaps
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "<table" in html and "gap" in html and "lomo_f1" in html


def test_error_analysis_notebook_without_scores_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = _run_notebook(
        tmp_path,
        monkeypatch,
        {"NARCOTAG_REPORTS": str(tmp_path / "empty"), "NARCOTAG_PROCESSED": str(tmp_path / "none.parquet")},
    )
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "run `dvc repro` first" in text
    summary = _summary(outputs)
    assert summary["families"] == [] and summary["macro_f1"] == {} and summary["worst_errors"] == 0
    assert not any("image/png" in o.get("data", {}) for o in outputs)


def test_decide_rotation_handles_an_empty_test_part() -> None:
    table = _table()
    decided = ea.decide_rotation(table[table["part"] == "val"], "m1")
    assert decided.y_true.shape == (0, len(DRUG_TYPES)) and decided.predicted == []
    assert ea.confusion_table(decided).empty
    assert np.isnan(ea.macro_f1_table({"x": table[table["part"] == "val"]}).loc["x", "m1"])

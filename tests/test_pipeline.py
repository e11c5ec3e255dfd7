"""Stage tests: sample -> clean -> prepare -> train -> evaluate -> export on tiny data, MLflow at tmp_path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import clean, compare, evaluate, export, families, prepare, sample, train
from pipeline.config import Paths
from pipeline.params import load_params
from pipeline.tagger import Tagger, to_json_line
from pipeline.taxonomy import DRUG_TYPES
from tests.conftest import REPO, SHARED

HEADS = ("drug_type", "quantity", "origin", "laundering", "contacts")


@pytest.fixture(scope="module")
def pipeline_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run every stage once on a small sample; MLflow writes into the same temporary folder."""
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copytree(REPO / "data" / "gold", root / "data" / "gold")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLFLOW_REGISTRY_URI", uri)
    params = load_params(REPO / "params.yaml")
    paths = Paths(root)
    sample.run(replace(params.sample, listings_per_market=120, messages_per_language=20), paths)
    clean.run(params.clean, paths, "sample")
    prepare.run(replace(params.prepare, lomo_min_records=40), paths)
    fast = replace(params.train, drug_type=replace(params.train.drug_type, char_max_features=50_000))
    for head in HEADS:
        train.run(head, fast, paths)
    evaluate.run(params.evaluate, fast, paths, "sample")
    export.run(params.export, paths, "sample")
    yield root
    mp.undo()


def test_prepare_outputs_are_leak_free(pipeline_root: Path) -> None:
    report = json.loads((pipeline_root / "data/processed/prepare_report.json").read_text())
    assert report["leakage"] == {"vendors_across_splits": 0, "dup_groups_across_splits": 0}
    frame = pd.read_parquet(pipeline_root / "data/processed/drug_type.parquet")
    assert frame["dup_group"].is_unique  # deduplicated before splitting
    train_vendors = set(frame[frame["split"] == "train"]["vendor"].dropna().str.lower())
    test_vendors = set(frame[frame["split"] == "test"]["vendor"].dropna().str.lower())
    assert not train_vendors & test_vendors
    assert len(report["lomo_markets"]) >= 3


def test_every_head_saved_and_reloads(pipeline_root: Path) -> None:
    for head in HEADS:
        assert (pipeline_root / "models" / head).is_dir()
    tagger = Tagger.load(pipeline_root / "models")
    assert tagger.model["version"].startswith("local-")


def test_evaluate_writes_per_class_metrics(pipeline_root: Path) -> None:
    reports = pipeline_root / "reports" / "sample"
    drug = json.loads((reports / "metrics" / "drug_type.json").read_text())
    assert set(drug["in_market_test"]["per_class"]) == set(DRUG_TYPES)
    assert len(drug["lomo"]) >= 3
    for rotation in drug["lomo"].values():
        assert rotation["summary"]["macro_f1"] > 0.5  # the sample markets share a vocabulary
    summary = json.loads((reports / "metrics" / "summary.json").read_text())
    assert summary["quantity_exact"] >= 0.95
    assert summary["address_precision"] == 1.0
    text = (reports / "metrics.md").read_text()
    assert "leave-one-market-out" in text and "| cannabis |" in text
    assert (reports / "plots" / "confusion_drug_type.csv").exists()
    assert (reports / "plots" / "pr_drug_type.csv").exists()


def test_registered_model_and_champion_alias(pipeline_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{pipeline_root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("narcotag-tagger", "champion")
    assert str(champion.version) == "1"
    runs = client.search_runs([client.get_experiment_by_name("narcotag").experiment_id])
    stages = {r.data.tags.get("stage") for r in runs}
    assert stages >= {"train", "evaluate", "export"}
    assert all(r.data.tags.get("git_commit") for r in runs)


def test_champion_moves_only_when_better(pipeline_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{pipeline_root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    params = load_params(REPO / "params.yaml").export
    paths = Paths(pipeline_root)
    summary_file = pipeline_root / "reports" / "sample" / "metrics" / "summary.json"
    original = json.loads(summary_file.read_text())
    try:
        worse = {**original, params.metric: original[params.metric] - 0.1}
        summary_file.write_text(json.dumps(worse))
        result = export.run(params, paths, "sample")
        assert result["promoted"] is False
        better = {**original, params.metric: min(1.0, original[params.metric] + 0.01)}
        summary_file.write_text(json.dumps(better))
        result = export.run(params, paths, "sample")
        assert result["promoted"] is True
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        assert (
            str(client.get_model_version_by_alias("narcotag-tagger", "champion").version) == result["version"]
        )
    finally:
        summary_file.write_text(json.dumps(original))


def test_pyfunc_model_tags_like_the_tagger(pipeline_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    uri = f"sqlite:///{pipeline_root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/narcotag-tagger@champion")
    frame = export.input_example()
    frame.loc[len(frame)] = {"id": "empty-1", "title": None, "text": None}
    out = model.predict(frame)
    assert list(out["id"]) == ["example-1", "example-2", "empty-1"]
    assert list(out["status"]) == ["ok", "ok", "quarantined"]
    assert out.iloc[2]["drug_types"] is None and out.iloc[2]["quantity"] is None  # null, not NaN
    assert out.iloc[0]["reason"] is None
    assert "cannabis" in out.iloc[0]["drug_types"]
    assert out.iloc[0]["ships_from"] == ["NL"]


def test_tagged_sample_meets_contract(pipeline_root: Path, tmp_path: Path) -> None:
    records = pd.read_parquet(pipeline_root / "data/interim/records.parquet")
    tagged = Tagger.load(pipeline_root / "models").tag(records)
    assert [r["id"] for r in tagged] == list(records["id"])  # ids passed through unchanged, same order
    out = tmp_path / "labelled.jsonl"
    out.write_text("".join(to_json_line(r) + "\n" for r in tagged))
    checker = SHARED / "tools" / "check_labelled.py"
    if not checker.exists():
        pytest.skip(f"{checker} not found: contract check skipped")
    result = subprocess.run([sys.executable, str(checker), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]


def test_tagger_agrees_with_sample_truth(pipeline_root: Path) -> None:
    """End to end on the sample: the tagged records against the generator's true labels (listings)."""
    from pipeline.evaluate import quantity_equal
    from pipeline.heads.drug_type import binarize
    from pipeline.metrics import multilabel_report

    records = pd.read_parquet(pipeline_root / "data/interim/records.parquet")
    truth = {
        json.loads(line)["id"]: json.loads(line)
        for line in (pipeline_root / "data/raw/sample/truth.jsonl").read_text().splitlines()
    }
    listings = records[records["kind"] == "listing"]
    tagged = Tagger.load(pipeline_root / "models").tag(listings)
    gold = [truth[r["id"]] for r in tagged]
    report = multilabel_report(
        binarize([g["drug_types"] for g in gold]), binarize([r["drug_types"] for r in tagged])
    )
    quantity = sum(
        quantity_equal(r["quantity"], g["quantity"]) for r, g in zip(tagged, gold, strict=True)
    ) / len(gold)
    origin = sum(
        set(r["ships_from"]) == set(g["ships_from"]) for r, g in zip(tagged, gold, strict=True)
    ) / len(gold)
    hints = sum(
        set(r["laundering_hints"]) == set(g["laundering_hints"]) for r, g in zip(tagged, gold, strict=True)
    ) / len(gold)
    print(
        {
            "drug_micro_f1": report["summary"]["micro_f1"],
            "quantity": quantity,
            "origin": origin,
            "hints": hints,
        }
    )
    assert report["summary"]["micro_f1"] >= 0.85
    assert quantity >= 0.85
    assert origin >= 0.85
    assert hints >= 0.85


@pytest.mark.parametrize(
    ("new", "new_data", "current", "current_data", "expected"),
    [
        (0.8, "sample", None, None, True),  # no champion yet
        (0.8, "shared", 0.97, "sample", True),  # real-market figures outrank the easy sample
        (0.99, "sample", 0.8, "shared", False),
        (0.81, "shared", 0.80, "shared", True),
        (0.80, "shared", 0.80, "shared", False),  # equal is not better
        (None, "shared", 0.8, "shared", False),
    ],
)
def test_should_promote(new, new_data, current, current_data, expected) -> None:  # type: ignore[no-untyped-def]
    assert export.should_promote(new, new_data, current, current_data) is expected


def test_sklearn_family_scores_reproduce_the_evaluate_figures(pipeline_root: Path) -> None:
    """The comparison recomputes every family's figures from its scores table; for sklearn those must be
    exactly what evaluate reported (one metric path, no drift between the two)."""
    reports = pipeline_root / "reports" / "sample"
    table = families.read_scores(families.scores_path(reports, "sklearn"))
    assert set(table["part"]) == {"val", "test"}
    assert families.IN_MARKET in set(table["rotation"])
    drug = json.loads((reports / "metrics" / "drug_type.json").read_text())
    params = load_params(REPO / "params.yaml")
    dt = params.train.drug_type
    again = families.family_report(table, dt, dt.fallback_ratio, params.evaluate.min_support)
    assert again["lomo_mean"] == drug["lomo_mean"]
    assert again["in_market_test"]["summary"] == drug["in_market_test"]["summary"]
    info = json.loads(families.info_path(reports, "sklearn").read_text())
    assert info["texts_per_second"] > 0


def test_compare_then_export_ships_the_champion_family(
    pipeline_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "copy"
    for part in ("models", "reports", "data/processed"):
        shutil.copytree(pipeline_root / part, root / part)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    params = load_params(REPO / "params.yaml")
    paths = Paths(root)
    summary = compare.run(params.compare, params.train.drug_type, paths, "sample")
    assert set(summary) == {"sklearn"}  # the only family trained in this fixture
    table = (root / "reports" / "sample" / "families.md").read_text()
    assert table.startswith("# drug_type model families") and "| sklearn |" in table
    result = export.run(params.export, paths, "sample")
    assert result["drug_type_family"] == "sklearn"
    assert result["value"] == summary["sklearn"]["metric"]
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/narcotag-tagger/{result['version']}")
    out = model.predict(export.input_example())
    assert "cannabis" in out.iloc[0]["drug_types"]


def test_export_assembles_an_ensemble_champion(
    pipeline_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the comparison ranks an ensemble first (constructed here by raising its figure), export
    assembles it from the members' trained folders, tunes its thresholds on the in-market validation scores
    (never test) and ships it; the Tagger loads it like any head."""
    from pipeline.heads.drug_type_spacy import SpacyDrugTypeHead, SpacyParams
    from pipeline.train import labelled_frame

    root = tmp_path / "copy"
    for part in ("models", "reports", "data/processed"):
        shutil.copytree(pipeline_root / part, root / part)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    params = load_params(REPO / "params.yaml")
    paths = Paths(root)
    frame = labelled_frame(paths)
    spacy_head = SpacyDrugTypeHead(SpacyParams(max_steps=60, eval_frequency=30, patience=60)).fit(
        frame[frame["split"] == "train"], val_records=frame[frame["split"] == "val"]
    )
    spacy_head.save(root / "models" / "drug_type_spacy")
    reports = root / "reports" / "sample"
    families.write_family_outputs(
        reports, "spacy", families.in_market_scores(spacy_head, frame), {"texts_per_second": 5000.0}
    )
    compare.run(replace(params.compare, track=False), params.train.drug_type, paths, "sample")
    table = json.loads((reports / "families.json").read_text())
    assert set(table) == {"sklearn", "spacy", "ensemble:sklearn+spacy"}
    # the constructed case: the ensemble ranks first on the held-out-market figure
    table["ensemble:sklearn+spacy"]["report"]["lomo_mean"] = {"macro_f1": 1.0}
    (reports / "families.json").write_text(json.dumps(table))

    chosen = export.drug_type_champion(
        replace(params.export, min_texts_per_second=0), paths, "sample", tmp_path / "s"
    )
    assert chosen["name"] == "ensemble:sklearn+spacy" and chosen["members"] == ["sklearn", "spacy"]
    head = families.load_drug_type_head(chosen["dir"])
    assert families.head_family(chosen["dir"]) == "ensemble"
    test = frame[frame["split"] == "test"].head(40)
    sklearn_head = families.load_drug_type_head(root / "models" / "drug_type")
    expected = (sklearn_head.predict_scores(test) + spacy_head.predict_scores(test)) / 2
    np.testing.assert_allclose(head.predict_scores(test), expected, rtol=1e-5, atol=1e-6)
    members = {f: families.read_scores(families.scores_path(reports, f)) for f in ("sklearn", "spacy")}
    val_thresholds = families.rotation_thresholds(
        compare.ensemble_table(members), families.IN_MARKET, params.train.drug_type
    )
    np.testing.assert_allclose(head.thresholds_, val_thresholds)
    # and what ships: the bundle's drug_type folder is the ensemble; the Tagger tags with it
    bundle = tmp_path / "bundle"
    shutil.copytree(root / "models", bundle)
    shutil.rmtree(bundle / "drug_type")
    shutil.copytree(chosen["dir"], bundle / "drug_type")
    tagged = Tagger.load(bundle).tag(test)
    assert [r["drug_types"] for r in tagged] == head.predict(test)["drug_types"]

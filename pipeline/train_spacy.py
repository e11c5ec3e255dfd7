"""DVC stage ``train_spacy``: the spaCy model family.

- drug type: :class:`~pipeline.heads.drug_type_spacy.SpacyDrugTypeHead` (``spacy train`` on the repo
  config ``pipeline/resources/spacy/textcat_multilabel.cfg``) fitted on the train split, thresholds tuned on
  val, saved to ``models/drug_type_spacy``; its leave-one-market-out and in-market scores go to
  ``reports/<data>/families/spacy_scores.parquet`` (the ``compare`` stage measures every family from these
  files with one metric code path) and its facts (texts/s, fit time, params) to ``spacy.json``;
- laundering hints and QUANTITY / ORIGIN spans (:mod:`pipeline.spans_spacy`): weak labels of the rule heads
  plus the gold dev half, measured against the rule heads on the gold test half; saved to
  ``models/hints_spacy`` and ``models/spans_spacy``.
The run is recorded in MLflow with the project's own tracking (tags stage=train_spacy, family=spacy).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from pipeline import families
from pipeline.config import Paths
from pipeline.heads.drug_type_spacy import SpacyDrugTypeHead, SpacyParams
from pipeline.metrics import multilabel_report
from pipeline.spans_spacy import SpansParams, corpus_sample, train_span_models
from pipeline.taxonomy import DRUG_TYPES
from pipeline.train import labelled_frame

FAMILY = "spacy"


@dataclass(frozen=True)
class TrainSpacyParams:
    """Params section ``train_spacy``."""

    drug_type: SpacyParams = field(default_factory=SpacyParams)
    spans: SpansParams = field(default_factory=SpansParams)
    lomo: bool = True
    track: bool = True
    max_train_records: int | None = None  # cap on training records per fit (a seeded sample); None = all
    throughput_records: int = 2000  # records texts_per_second is measured on


class _CappedHead:
    """A head whose ``fit`` trains on at most ``cap`` records (a seeded sample), so each rotation of the
    comparison fits in the stage's time budget; everything else is the wrapped head's."""

    def __init__(self, head: SpacyDrugTypeHead, cap: int | None, seed: int) -> None:
        self.head, self.cap, self.seed = head, cap, seed
        self.train_records = 0

    def fit(self, records: pd.DataFrame, val_records: pd.DataFrame | None = None) -> _CappedHead:
        records = cap_records(records, self.cap, self.seed)
        self.train_records = len(records)
        self.head.fit(records, val_records=val_records)
        return self

    def predict_scores(self, records: pd.DataFrame) -> np.ndarray:
        return self.head.predict_scores(records)


def cap_records(records: pd.DataFrame, cap: int | None, seed: int) -> pd.DataFrame:
    """At most ``cap`` records (a seeded sample, original order kept); all of them when ``cap`` is None."""
    if cap is None or len(records) <= cap:
        return records
    return records.sample(n=cap, random_state=seed).sort_index()


def quick_macro_f1(scores: pd.DataFrame, fallback_ratio: float, grid: Any) -> dict[str, Any]:
    """Per rotation: thresholds tuned on its val part (``grid``: the family's params, with the threshold grid
    and the decision settings), macro-F1 of the decisions on its test part (a quick look; the official table
    is the ``compare`` stage's)."""
    out: dict[str, Any] = {}
    for rotation in dict.fromkeys(scores["rotation"]):
        if not ((scores["rotation"] == rotation) & (scores["part"] == "test")).any():
            continue
        y_test, y_pred, _, _ = families.rotation_decisions(scores, rotation, grid, fallback_ratio)
        summary = multilabel_report(y_test, y_pred)["summary"]
        out[str(rotation)] = {
            k: summary[k] for k in ("macro_f1", "macro_f1_supported", "micro_f1", "records")
        }
    return out


def run(params: TrainSpacyParams, paths: Paths, dataset: str) -> dict[str, Any]:
    """Train the spaCy family, write its models, scores and facts; returns the facts (also logged)."""
    p = params.drug_type
    frame = labelled_frame(paths)
    train = cap_records(frame[frame["split"] == "train"], params.max_train_records, p.seed)
    val = frame[frame["split"] == "val"]
    if train.empty:
        raise ValueError("no labelled training records: run `prepare` on data with market categories")
    started = time.perf_counter()
    head = SpacyDrugTypeHead(p).fit(train, val_records=val if len(val) else None)
    fit_seconds = round(time.perf_counter() - started, 2)
    head.save(paths.models / "drug_type_spacy")

    info: dict[str, Any] = {
        "fit_seconds": fit_seconds,
        "train_records": len(train),
        "val_records": len(val),
        "max_train_records": params.max_train_records,
        "params": asdict(params),
        "thresholds": {k: float(v) for k, v in zip(DRUG_TYPES, head.thresholds_, strict=True)},
    }
    parts = [families.in_market_scores(head, frame)]
    if params.lomo:
        report = json.loads((paths.processed / "prepare_report.json").read_text())
        markets = [str(m) for m in report.get("lomo_markets") or []]
        rotations: dict[str, Any] = {}

        def make_head() -> _CappedHead:
            return _CappedHead(SpacyDrugTypeHead(p), params.max_train_records, p.seed)

        def on_rotation(market: str, fitted: _CappedHead) -> None:
            rotations[market] = {
                "train_records": fitted.train_records,
                "fit_seconds": round(time.perf_counter() - rotation_started[0], 2),
            }
            rotation_started[0] = time.perf_counter()

        rotation_started = [time.perf_counter()]
        parts.insert(0, families.lomo_scores(frame, markets, make_head, on_rotation))
        info["rotations"] = rotations  # fit_seconds there include scoring the rotation's val and test
    scores = (
        pd.concat([x for x in parts if len(x)], ignore_index=True) if any(len(x) for x in parts) else None
    )
    scores = scores if scores is not None else families.empty_scores()
    test = frame[frame["split"] == "test"]
    info["texts_per_second"] = families.texts_per_second(
        head, test if len(test) else val if len(val) else train, limit=params.throughput_records
    )
    info["quick_macro_f1"] = quick_macro_f1(scores, p.fallback_ratio, p)

    corpus = corpus_sample(
        pd.read_parquet(paths.processed / "drug_type.parquet"), params.spans.corpus_records, p.seed
    )
    hints_model, span_model, span_info = train_span_models(params.spans, corpus, paths.gold)
    hints_model.save(paths.models / "hints_spacy")
    span_model.save(paths.models / "spans_spacy")
    info["hints_spans"] = span_info

    families.write_family_outputs(paths.reports / dataset, FAMILY, scores, info)
    if params.track:
        _track(params, info, paths, dataset)
    return info


def _track(params: TrainSpacyParams, info: dict[str, Any], paths: Paths, dataset: str) -> None:
    import mlflow

    from pipeline import tracking

    tracking.configure(paths)
    with mlflow.start_run(run_name="train_spacy"):
        mlflow.set_tags(
            {"stage": "train_spacy", "family": FAMILY, "data": dataset, **tracking.run_context(paths)}
        )
        mlflow.log_params(tracking.flatten("", asdict(params)) | _text_params(asdict(params)))
        metrics = {k: v for k, v in info.items() if k not in ("params", "thresholds")}
        mlflow.log_metrics(tracking.flatten("", metrics))
        mlflow.log_dict(info, "spacy.json")


def _text_params(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The non-numeric params (architecture, None caps) as text: flatten() keeps numbers only."""
    out: dict[str, str] = {}
    for k, v in values.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            out.update(_text_params(v, key))
        elif not isinstance(v, int | float):
            out[key] = str(v)
    return out


app = typer.Typer(add_completion=False, help="DVC stage `train_spacy`: the spaCy model family.")


@app.command()
def main(params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read.")) -> None:
    """Train the spaCy family with the params in PARAMS_FILE."""
    from pipeline.params import load_params

    loaded = load_params(params_file)
    # train_spacy is the Params field wired in pipeline/params.py
    info = run(loaded.train_spacy, Paths(), loaded.data.source)
    typer.echo(
        json.dumps(
            {k: info[k] for k in ("fit_seconds", "texts_per_second", "quick_macro_f1") if k in info},
            default=float,
        )
    )


if __name__ == "__main__":
    app()

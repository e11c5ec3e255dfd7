"""DVC stage ``train`` (foreach head): fit one head and save it, with its preprocessing, to models/<head>/.

- ``drug_type`` learns from ``data/processed/drug_type.parquet``: fitted on the train split of every
  market, thresholds tuned on the validation split (or, with ``cross_market_thresholds``, on each market's
  train and val records scored by a head of the other markets); the test split is never read here.
- Rule heads (quantity, origin, laundering, contacts) learn nothing; training saves their tables so a
  model folder is self-contained.
Every run is recorded in MLflow (params, validation metrics, git commit, dvc.lock data hashes).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from pipeline.config import Paths
from pipeline.heads.drug_type import DrugTypeHead, DrugTypeParams, binarize
from pipeline.heads.registry import HEADS, OPTIONAL_HEADS, head_class
from pipeline.metrics import multilabel_report
from pipeline.taxonomy import DRUG_TYPES


@dataclass(frozen=True)
class TrainParams:
    """Params section ``train``: hyper-parameters per learned head."""

    drug_type: DrugTypeParams = field(default_factory=DrugTypeParams)
    ad_detector_seeds: tuple[int, ...] = (101, 102, 103)  # generator seeds of its training traffic
    ad_detector_messages_per_language: int = 150
    track: bool = True


def labelled_frame(paths: Paths) -> pd.DataFrame:
    """The prepared drug-type table, restricted to records with a label."""
    return labelled_rows(pd.read_parquet(paths.processed / "drug_type.parquet"))


def labelled_rows(prepared: pd.DataFrame) -> pd.DataFrame:
    """The rows of a prepared drug-type table that have a label (``labels`` as lists)."""
    frame = prepared[prepared["labels"].notna()].copy()
    frame["labels"] = [list(x) for x in frame["labels"]]
    return frame


def train_drug_type(params: DrugTypeParams, frame: pd.DataFrame) -> tuple[DrugTypeHead, dict[str, Any]]:
    """Fit on the train split, tune thresholds on val; return the head and its validation metrics."""
    train = frame[frame["split"] == "train"]
    val = frame[frame["split"] == "val"]
    if train.empty:
        raise ValueError("no labelled training records: run `prepare` on data with market categories")
    started = time.perf_counter()
    head = DrugTypeHead(params).fit(train, val_records=val if len(val) else None)
    metrics: dict[str, Any] = {"train_records": len(train), "val_records": len(val)}
    metrics["fit_seconds"] = round(time.perf_counter() - started, 2)
    if len(val):
        predicted = head.predict(val)["drug_types"]
        metrics["val"] = multilabel_report(binarize(list(val["labels"])), binarize(predicted))["summary"]
    metrics["thresholds"] = {k: float(v) for k, v in zip(DRUG_TYPES, head.thresholds_, strict=True)}
    return head, metrics


def train_ad_detector(seeds: tuple[int, ...], messages_per_language: int) -> tuple[Any, dict[str, Any]]:
    """The messenger ad detector, fitted on Telegram/messenger traffic the sample generator writes at
    ``seeds`` (never on the gold set of data/gold/messages.jsonl, which measures it)."""
    from pipeline.heads.ad_detector import AdDetectorHead
    from pipeline.messages import generated_messages

    frame = generated_messages(seeds, messages_per_language=messages_per_language)
    ads = frame[frame["kind"] == "ad"]
    started = time.perf_counter()
    head = AdDetectorHead().fit(ads, list(ads["is_offer"]))
    metrics: dict[str, Any] = {"train_records": len(ads), "offers": int(ads["is_offer"].sum())}
    metrics["fit_seconds"] = round(time.perf_counter() - started, 2)
    return head, metrics


def run(head_name: str, params: TrainParams, paths: Paths) -> dict[str, Any]:
    """Train head ``head_name`` and save it under models/<head_name>/; returns its training metrics."""
    out_dir = paths.models / head_name
    if head_name == "drug_type":
        head, metrics = train_drug_type(params.drug_type, labelled_frame(paths))
        logged_params: dict[str, Any] = asdict(params.drug_type)
    elif head_name == "ad_detector":
        head, metrics = train_ad_detector(params.ad_detector_seeds, params.ad_detector_messages_per_language)
        logged_params = {"seeds": list(params.ad_detector_seeds)}
    else:
        head = head_class(head_name)().fit(pd.DataFrame({"text": []}))
        metrics, logged_params = {"rules": True}, {}
    head.save(out_dir)
    (out_dir / "train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if params.track:
        _track(head_name, logged_params, metrics, out_dir, paths)
    return metrics


def _track(
    head_name: str, logged_params: dict[str, Any], metrics: dict[str, Any], out_dir: Path, paths: Paths
) -> None:
    import mlflow

    from pipeline import tracking

    tracking.configure(paths)
    with mlflow.start_run(run_name=f"train-{head_name}"):
        mlflow.set_tags(
            {"stage": "train", "head": head_name, "family": "sklearn", **tracking.run_context(paths)}
        )
        if logged_params:
            mlflow.log_params({k: v for k, v in logged_params.items()})
        mlflow.log_metrics(tracking.flatten("", {k: v for k, v in metrics.items() if k != "thresholds"}))
        mlflow.log_dict(metrics, "train_metrics.json")


app = typer.Typer(add_completion=False, help="DVC stage `train`: fit one head into models/<head>/.")


@app.command()
def main(
    head: str = typer.Argument(
        ..., help=f"Which head to train: one of {', '.join([*HEADS, *OPTIONAL_HEADS])}."
    ),
    params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read."),
) -> None:
    """Train HEAD with the params in PARAMS_FILE."""
    from pipeline.params import load_params

    metrics = run(head, load_params(params_file).train, Paths())
    typer.echo(json.dumps({k: v for k, v in metrics.items() if k != "thresholds"}, default=float))


if __name__ == "__main__":
    app()

"""DVC stage ``train_transformer``: the transformer drug_type family (fp32 torch and ONNX int8).

- Fits :class:`~pipeline.heads.drug_type_transformer.TransformerDrugTypeHead` on the train split of every
  market (thresholds on val) into ``models/drug_type_transformer``, and exports it to ONNX with dynamic
  int8 quantisation into ``models/drug_type_transformer_int8`` (a complete head of family
  ``transformer_int8``).
- Leave-one-market-out through :func:`pipeline.families.lomo_scores` (the one definition of a rotation):
  each rotation's model is also exported to int8 and scored, so both families get a scores table from the
  same fine-tuned weights; the difference between the tables is the quantisation alone.
- Writes ``reports/<data>/families/transformer{,_int8}_scores.parquet`` + ``.json`` (texts/s, fit seconds,
  per-rotation macro-F1, sizes) and one MLflow run per family.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from pipeline import families
from pipeline.config import Paths
from pipeline.heads.drug_type_transformer import (
    ONNX_FILE,
    TransformerDrugTypeHead,
    TransformerParams,
    export_onnx_int8,
)
from pipeline.metrics import multilabel_report
from pipeline.train import labelled_frame

MODEL_DIR = "drug_type_transformer"
INT8_DIR = "drug_type_transformer_int8"


@dataclass(frozen=True)
class TrainTransformerParams:
    """Params section ``train_transformer``."""

    drug_type: TransformerParams = field(default_factory=TransformerParams)
    lomo: bool = True  # also fit one model per held-out market (leave-one-market-out scores)
    int8: bool = True  # export every model to ONNX int8 and score it as family transformer_int8
    track: bool = True  # log runs to MLflow
    # scored records per held-out market and of the in-market test split (seeded sample; None = all):
    # scoring tens of thousands of texts twice per rotation dominates a CPU-only run
    max_test_records: int | None = None
    max_val_records: int | None = None  # the same for the val split (thresholds are tuned on what is left)
    throughput_records: int = 2000  # records timed for texts/s (families.texts_per_second)


def _cap(records: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    if limit is None or len(records) <= limit:
        return records
    return records.sample(n=limit, random_state=seed).sort_index()


def _capped_for(frame: pd.DataFrame, market: str, limit: int | None, seed: int) -> pd.DataFrame:
    """``frame`` with only a sample of ``market``'s records (its rotation's test part); others intact."""
    if limit is None:
        return frame
    held_out = frame["market_key"] == market
    return pd.concat([frame[~held_out], _cap(frame[held_out], limit, seed)]).sort_index()


def rotation_macro_f1(
    scores: pd.DataFrame, fallback_ratio: float, params: TransformerParams
) -> dict[str, Any]:
    """Per rotation: thresholds tuned on its val part, decisions on its test part, macro-F1 (the compare
    stage's rule, computed here for the stage's own report)."""
    out: dict[str, Any] = {}
    for rotation in sorted(set(scores["rotation"])):
        y_test, y_pred, _, test = families.rotation_decisions(scores, rotation, params, fallback_ratio)
        if not len(test):
            continue
        report = multilabel_report(y_test, y_pred)["summary"]
        out[str(rotation)] = {
            "macro_f1": report["macro_f1"],
            "macro_f1_supported": report["macro_f1_supported"],
            "micro_f1": report["micro_f1"],
            "test_records": len(test),
        }
    lomo = [v["macro_f1"] for k, v in out.items() if k != families.IN_MARKET]
    if lomo:
        out["lomo_mean_macro_f1"] = round(float(np.mean(lomo)), 4)
    return out


def run(params: TrainTransformerParams, paths: Paths, dataset: str) -> dict[str, Any]:
    """Fit, export, score and report the transformer families; returns the two info dicts."""
    p = params.drug_type
    full = labelled_frame(paths)
    is_val = full["split"] == "val"
    # the val cap bounds tuning and early-stopping cost; a held-out market is still scored in full below
    frame = pd.concat([full[~is_val], _cap(full[is_val], params.max_val_records, p.seed)]).sort_index()
    train, val = frame[frame["split"] == "train"], frame[frame["split"] == "val"]
    if train.empty:
        raise ValueError("no labelled training records: run `prepare` on data with market categories")
    model_dir, int8_dir = paths.models / MODEL_DIR, paths.models / INT8_DIR
    started = time.perf_counter()
    head = TransformerDrugTypeHead(p).fit(train, val_records=val if len(val) else None)
    fit_seconds = round(time.perf_counter() - started, 2)
    for folder in (model_dir, int8_dir):
        shutil.rmtree(folder, ignore_errors=True)  # a stale file from another run never mixes in
    head.save(model_dir)
    export: dict[str, Any] = {}
    int8_head = None
    if params.int8:
        export = export_onnx_int8(model_dir, int8_dir)
        int8_head = TransformerDrugTypeHead.load(int8_dir)

    fp32_parts, int8_parts = [], []
    rotations: dict[str, Any] = {}
    if params.lomo:
        report = json.loads((paths.processed / "prepare_report.json").read_text())
        markets = [m for m in report.get("lomo_markets", []) if m in set(frame["market_key"])]
        with tempfile.TemporaryDirectory(prefix="narcotag-lomo-") as tmp:
            for market in markets:
                complete = pd.concat(
                    [frame[frame["market_key"] != market], full[full["market_key"] == market]]
                )
                rotation_frame = _capped_for(complete.sort_index(), market, params.max_test_records, p.seed)

                def on_rotation(
                    held_out: str, fitted: Any, rotation_frame: pd.DataFrame = rotation_frame
                ) -> None:
                    rotations[held_out] = {k: v for k, v in fitted.fit_info_.items() if k != "eval_loss"}
                    if not params.int8:
                        return
                    fitted.save(Path(tmp) / held_out)
                    export_onnx_int8(Path(tmp) / held_out, Path(tmp) / f"{held_out}_int8")
                    quantised = TransformerDrugTypeHead.load(Path(tmp) / f"{held_out}_int8")
                    _, rot_val, rot_test = families.rotation_frames(rotation_frame, held_out)
                    for part, records in (("val", rot_val), ("test", rot_test)):
                        if len(records):
                            scores = quantised.predict_scores(records)
                            int8_parts.append(families.score_rows(records, scores, held_out, part))
                    shutil.rmtree(Path(tmp) / held_out)
                    shutil.rmtree(Path(tmp) / f"{held_out}_int8")

                fp32_parts.append(
                    families.lomo_scores(
                        rotation_frame, [market], lambda: TransformerDrugTypeHead(p), on_rotation=on_rotation
                    )
                )
    in_market_frame = pd.concat(
        [
            frame[frame["split"] != "test"],
            _cap(frame[frame["split"] == "test"], params.max_test_records, p.seed),
        ]
    )
    fp32_parts.append(families.in_market_scores(head, in_market_frame))
    if int8_head is not None:
        int8_parts.append(families.in_market_scores(int8_head, in_market_frame))

    timed = _cap(frame[frame["split"] == "test"], params.throughput_records, p.seed)
    if timed.empty:
        timed = val if len(val) else train
    common = {
        "fit_seconds": fit_seconds,
        "fit": {k: v for k, v in head.fit_info_.items() if k != "eval_loss"},
        "rotations_fit": rotations,
        "records": {"train": len(train), "val": len(val), "test": int((frame["split"] == "test").sum())},
        "params": asdict(params),
        "dataset": dataset,
    }
    fp32_scores = pd.concat(fp32_parts, ignore_index=True)
    infos = {
        "transformer": {
            "texts_per_second": families.texts_per_second(head, timed, limit=params.throughput_records),
            "backend": "torch",
            "model_bytes": sum(f.stat().st_size for f in model_dir.glob("*.safetensors")),
            "macro_f1": rotation_macro_f1(fp32_scores, p.fallback_ratio, p),
            **common,
        }
    }
    outputs = {"transformer": fp32_scores}
    if int8_head is not None:
        int8_scores = pd.concat(int8_parts, ignore_index=True)
        infos["transformer_int8"] = {
            "texts_per_second": families.texts_per_second(int8_head, timed, limit=params.throughput_records),
            "backend": "onnx_int8",
            "model_bytes": (int8_dir / ONNX_FILE).stat().st_size,
            "export": export,
            "macro_f1": rotation_macro_f1(int8_scores, p.fallback_ratio, p),
            **common,
        }
        outputs["transformer_int8"] = int8_scores
    for family, scores in outputs.items():
        families.write_family_outputs(paths.reports / dataset, family, scores, infos[family])
        if params.track:
            _track(family, params, infos[family], paths, dataset)
    return infos


def _track(
    family: str, params: TrainTransformerParams, info: dict[str, Any], paths: Paths, dataset: str
) -> None:
    import mlflow

    from pipeline import tracking

    tracking.configure(paths)
    with mlflow.start_run(run_name=f"train_transformer-{family}"):
        mlflow.set_tags(
            {
                "stage": "train_transformer",
                "head": "drug_type",
                "family": family,
                "dataset": dataset,
                **tracking.run_context(paths),
            }
        )
        mlflow.log_params(_flat_params("", asdict(params)))
        mlflow.log_metrics(tracking.flatten("", {k: v for k, v in info.items() if k != "params"}))
        mlflow.log_dict(info, f"{family}.json")


def _flat_params(prefix: str, value: Any) -> dict[str, str]:
    """Nested params -> ``{"drug_type.max_length": "64"}`` (MLflow params are strings; None kept)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(_flat_params(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: str(value)}


app = typer.Typer(
    add_completion=False, help="DVC stage `train_transformer`: the transformer drug_type family."
)


@app.command()
def main(params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read.")) -> None:
    """Fine-tune, export to ONNX int8, score the rotations and write both families' outputs."""
    from pipeline.params import load_params

    params = load_params(params_file)
    infos = run(params.train_transformer, Paths(), params.data.source)
    typer.echo(
        json.dumps(
            {
                f: {"texts_per_second": i["texts_per_second"], "macro_f1": i["macro_f1"]}
                for f, i in infos.items()
            }
        )
    )


if __name__ == "__main__":
    app()

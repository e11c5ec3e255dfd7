"""DVC stage ``evaluate``: honest figures for every head, per class, written for DVC and MLflow alike.

drug_type
  - leave-one-market-out: for each market with enough labels, a head with the same params is fitted on
    the other markets (train split; thresholds on their validation split, or on the training markets
    scored by each other: ``cross_market_thresholds``) and scored on every labelled
    record of the held-out market;
  - in-market: the trained model on the vendor-grouped test split, per market and overall;
  - plots: confusion matrix (single-label test records) and precision-recall points per class.
rule heads, on the project's hand-checked gold sets (data/gold/)
  - quantity exact match (all four fields, 2% tolerance), origin from text, laundering hints micro-F1,
    crypto-address precision/recall, contacts precision/recall; and field-origin normalisation accuracy.

Writes ``reports/metrics/<head>.json``, ``reports/metrics.md`` and ``reports/plots/*.csv``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer
from sklearn.metrics import precision_recall_curve

from pipeline import families
from pipeline.config import Paths
from pipeline.heads.drug_type import DrugTypeHead, binarize
from pipeline.heads.registry import head_class
from pipeline.labels.conflicts import SET_ASIDE_SOURCES
from pipeline.metrics import multilabel_report, set_prf
from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, QUANTITY_FIELDS, QUANTITY_TOLERANCE
from pipeline.train import TrainParams, labelled_rows


@dataclass(frozen=True)
class EvaluateParams:
    """Params section ``evaluate``."""

    lomo: bool = True
    min_support: int = 30
    pr_points: int = 40
    track: bool = True


# --- drug_type -------------------------------------------------------------------------------------------


def lomo_rotations(
    frame: pd.DataFrame,
    markets: list[str],
    train_params: TrainParams,
    min_support: int,
    set_aside: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Leave-one-market-out: train on the other markets, test on all labelled records of one. Returns the
    per-rotation reports and the scores table (the sklearn family's, see pipeline/families.py).

    With ``set_aside`` (records whose category label ``prepare`` set aside, with ``category_labels``), each
    rotation's report also holds ``with_set_aside``: the same model and decisions scored on the test market
    plus its set-aside records under their category labels, i.e. the figure had those labels been kept."""
    dt = train_params.drug_type
    set_aside_scored: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}

    def score_set_aside(market: str, head: DrugTypeHead) -> None:
        # only the set-aside records: the test market's own scores are in the scores table already
        if set_aside is not None:
            extra = set_aside[set_aside["market_key"] == market]
            shift = None
            if getattr(head, "adapts_priors", False) and len(extra):
                # the shift the market's labelled records gave (the table's test scores were made with it)
                test = frame[frame["market_key"] == market]
                shift = head.shifts_for(head.estimate_mixes(test, [market] * len(test))).get(market)
            extra_scores = (
                head.predict_scores(extra, logit_shift=shift)
                if len(extra)
                else np.zeros((0, len(head.thresholds_)))
            )
            set_aside_scored[market] = (extra, extra_scores, head.thresholds_.copy())

    scores = families.lomo_scores(frame, markets, lambda: DrugTypeHead(dt), on_rotation=score_set_aside)
    rotations = families.family_report(scores, dt, dt.fallback_ratio, min_support).get("lomo", {})
    for market, report in rotations.items():
        report["train_markets"] = sorted(set(frame.loc[frame["market_key"] != market, "market_key"]))
        if market in set_aside_scored:
            extra, extra_scores, thresholds = set_aside_scored[market]
            test = scores[(scores["rotation"] == market) & (scores["part"] == "test")]
            both = np.vstack([families.score_matrix(test), extra_scores])
            labels = [list(x) for x in test["labels"]] + list(extra["category_labels"])
            with_vendor = families.VENDOR_COLUMN in test and families.VENDOR_COLUMN in extra
            columns = ["market_key", families.VENDOR_COLUMN] if with_vendor else ["market_key"]
            rows = pd.concat([test[columns], extra[columns]], ignore_index=True)
            predicted = families.table_decisions(rows, both, thresholds, dt, dt.fallback_ratio)
            summary = multilabel_report(binarize(labels), binarize(predicted), min_support=min_support)
            report["with_set_aside"] = {**summary["summary"], "set_aside_records": int(len(extra))}
    return rotations, scores


def set_aside_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a prepared drug-type table whose market category ``prepare`` set aside (contradicted,
    placeholder or non-drug goods), with the category's codes in ``category_labels``; empty for a table
    prepared before they were kept."""
    if "category_labels" not in frame:
        return frame.iloc[0:0]
    mask = frame["label_source"].isin(list(SET_ASIDE_SOURCES)) & frame["category_labels"].notna()
    out = frame[mask].copy()
    out["category_labels"] = [list(x) for x in out["category_labels"]]
    return out


def drug_type_metrics(
    paths: Paths, params: EvaluateParams, train_params: TrainParams, lomo_markets: list[str], reports: Path
) -> dict[str, Any]:
    """All drug_type figures (see module docstring); also writes the plot CSVs and the sklearn family's
    scores table and facts (reports/<data>/families/sklearn*) for the model comparison."""
    prepared = pd.read_parquet(paths.processed / "drug_type.parquet")  # read once: labelled + set aside
    frame = labelled_rows(prepared)
    head = DrugTypeHead.load(paths.models / "drug_type")
    test = frame[frame["split"] == "test"]
    metrics: dict[str, Any] = {}
    tables = [families.in_market_scores(head, frame)]
    if len(test):
        scores = families.market_scores(head, test)
        y_true = binarize(list(test["labels"]))
        y_pred = binarize(
            families.table_decisions(test, scores, head.thresholds_, head.params, head.params.fallback_ratio)
        )
        metrics["in_market_test"] = multilabel_report(y_true, y_pred, min_support=params.min_support)
        metrics["in_market_test_by_market"] = {
            str(m): multilabel_report(y_true[mask], y_pred[mask], min_support=params.min_support)["summary"]
            for m in sorted(test["market_key"].unique())
            for mask in [(test["market_key"] == m).to_numpy()]
        }
        _write_plots(reports / "plots", test, y_true, scores, y_pred, params.pr_points)
    if params.lomo and len(lomo_markets) >= 2:
        set_aside = set_aside_rows(prepared)
        rotations, lomo_table = lomo_rotations(
            frame, lomo_markets, train_params, params.min_support, set_aside if len(set_aside) else None
        )
        tables.append(lomo_table)
        metrics["lomo"] = rotations
        metrics["lomo_mean"] = {
            key: round(float(np.mean([r["summary"][key] for r in rotations.values()])), 4)
            for key in ("macro_f1", "macro_f1_supported", "micro_f1")
        }
        if all("with_set_aside" in r for r in rotations.values()):
            metrics["lomo_mean_with_set_aside"] = {
                key: round(float(np.mean([r["with_set_aside"][key] for r in rotations.values()])), 4)
                for key in ("macro_f1", "macro_f1_supported", "micro_f1")
            }
    info = {
        "texts_per_second": families.texts_per_second(head, test if len(test) else frame),
        "params": asdict(train_params.drug_type),
        "train_records": int((frame["split"] == "train").sum()),
    }
    families.write_family_outputs(reports, "sklearn", pd.concat(tables, ignore_index=True), info)
    return metrics


def _write_plots(
    plots: Path, test: pd.DataFrame, y_true: np.ndarray, scores: np.ndarray, y_pred: np.ndarray, points: int
) -> None:
    plots.mkdir(parents=True, exist_ok=True)
    single = y_true.sum(axis=1) == 1
    with open(plots / "confusion_drug_type.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        for row in np.flatnonzero(single):
            writer.writerow(
                [DRUG_TYPES[int(np.argmax(y_true[row]))], DRUG_TYPES[int(np.argmax(scores[row]))]]
            )
    with open(plots / "pr_drug_type.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "recall", "precision"])
        for k, code in enumerate(DRUG_TYPES):
            if y_true[:, k].sum() == 0:
                continue
            precision, recall, _ = precision_recall_curve(y_true[:, k], scores[:, k])
            step = max(1, len(precision) // points)
            for p, r in list(zip(precision, recall, strict=True))[::step]:
                writer.writerow([code, round(float(r), 4), round(float(p), 4)])


# --- rule heads on gold sets -----------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All JSON objects of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def quantity_equal(pred: dict[str, Any], gold: dict[str, Any], tol: float = QUANTITY_TOLERANCE) -> bool:
    """Contract section 2: all four fields equal, numbers within 2%, null only matches null."""
    for key in QUANTITY_FIELDS:
        a, b = pred.get(key), gold.get(key)
        if a is None or b is None:
            if a is not b:
                return False
        elif not math.isclose(float(a), float(b), rel_tol=tol, abs_tol=1e-9):
            return False
    return True


def _gold_frame(items: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": [i["id"] for i in items],
            "text": [i["text"] for i in items],
            "title": [i.get("title") for i in items],
            "lang": [i.get("lang") for i in items],
            "ships_from_raw": [i.get("ships_from_raw") for i in items],
            "ships_to_raw": [i.get("ships_to_raw") for i in items],
        }
    )
    frame["text_folded"] = frame["text"]
    return frame


def quantity_metrics(gold_dir: Path, models: Path) -> dict[str, Any]:
    """Exact match of the primary quantity object on data/gold/quantity.jsonl, per language too."""
    items = read_jsonl(gold_dir / "quantity.jsonl")
    predicted = head_class("quantity").load(models / "quantity").predict(_gold_frame(items))["quantity"]
    hits = [quantity_equal(p, i["quantity"]) for p, i in zip(predicted, items, strict=True)]
    by_lang: dict[str, list[bool]] = {}
    for hit, item in zip(hits, items, strict=True):
        by_lang.setdefault(item.get("lang") or "und", []).append(hit)
    return {
        "exact_match": round(float(np.mean(hits)), 4),
        "items": len(items),
        "exact_match_by_lang": {k: round(float(np.mean(v)), 4) for k, v in sorted(by_lang.items())},
        "errors": [i["id"] for h, i in zip(hits, items, strict=True) if not h][:50],
    }


def origin_metrics(gold_dir: Path, models: Path) -> dict[str, Any]:
    """Origin from text + field on data/gold/origin.jsonl: exact-set accuracy and per-code P/R."""
    items = read_jsonl(gold_dir / "origin.jsonl")
    out = head_class("origin").load(models / "origin").predict(_gold_frame(items))
    result: dict[str, Any] = {"items": len(items)}
    for key in ("ships_from", "ships_to"):
        pred = [set(x) for x in out[key]]
        gold = [set(i.get(key) or []) for i in items]
        result[f"{key}_exact"] = round(float(np.mean([p == g for p, g in zip(pred, gold, strict=True)])), 4)
        result[f"{key}_codes"] = set_prf(pred, gold)
    both = [
        set(a) == set(i.get("ships_from") or []) and set(b) == set(i.get("ships_to") or [])
        for a, b, i in zip(out["ships_from"], out["ships_to"], items, strict=True)
    ]
    result["exact_both"] = round(float(np.mean(both)), 4)
    return result


def laundering_metrics(gold_dir: Path, models: Path) -> dict[str, Any]:
    """Hints (per code), crypto addresses and contacts on data/gold/laundering.jsonl."""
    items = read_jsonl(gold_dir / "laundering.jsonl")
    frame = _gold_frame(items)
    out = head_class("laundering").load(models / "laundering").predict(frame)
    contacts = head_class("contacts").load(models / "contacts").predict(frame)["contacts"]
    hints_report = multilabel_report(
        _binarize_codes([i.get("laundering_hints") or [] for i in items], LAUNDERING_HINTS),
        _binarize_codes(out["laundering_hints"], LAUNDERING_HINTS),
        classes=LAUNDERING_HINTS,
        min_support=5,
    )
    pred_addr = [{a["address"] for a in x} for x in out["crypto_addresses"]]
    gold_addr = [{a["address"] for a in i.get("crypto_addresses") or []} for i in items]
    valid_agree = [
        a["valid"] == g["valid"]
        for x, i in zip(out["crypto_addresses"], items, strict=True)
        for g in i.get("crypto_addresses") or []
        for a in x
        if a["address"] == g["address"]
    ]
    pred_contacts = [{(c["platform"], _handle(c["handle"])) for c in x} for x in contacts]
    gold_contacts = [{(c["platform"], _handle(c["handle"])) for c in i.get("contacts") or []} for i in items]
    return {
        "items": len(items),
        "hints": hints_report,
        "addresses": {
            **set_prf(pred_addr, gold_addr),
            "valid_flag_accuracy": round(float(np.mean(valid_agree)), 4) if valid_agree else None,
        },
        "contacts": set_prf(pred_contacts, gold_contacts),
    }


def _handle(handle: str) -> str:
    return handle.strip().lower().lstrip("@")


def _binarize_codes(lists: list[list[str]], classes: tuple[str, ...]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(lists), len(classes)), dtype=np.int8)
    for row, codes in enumerate(lists):
        for code in codes:
            y[row, index[code]] = 1
    return y


def messages_metrics(gold_dir: Path, models: Path) -> dict[str, Any]:
    """The full Tagger (drug_type + ad detection + rule heads) on the messenger gold set, per language."""
    from pipeline.messages import evaluate_messages, markdown_table
    from pipeline.tagger import Tagger

    result = evaluate_messages(gold_dir / "messages.jsonl", Tagger.load(models))
    return {**result, "errors": result["errors"][:50], "table_md": markdown_table(result)}


def field_origin_metrics(gold_dir: Path) -> dict[str, Any]:
    """Accuracy of structured ships-from/to normalisation on data/gold/origin_fields.jsonl."""
    from pipeline.heads.origin import normalise_location_field

    items = read_jsonl(gold_dir / "origin_fields.jsonl")
    hits = [set(normalise_location_field(i["raw"], i["role"])) == set(i["codes"]) for i in items]
    return {
        "accuracy": round(float(np.mean(hits)), 4),
        "items": len(items),
        "errors": [{"raw": i["raw"], "role": i["role"]} for h, i in zip(hits, items, strict=True) if not h][
            :30
        ],
    }


# --- the stage -------------------------------------------------------------------------------------------


def reports_dir(paths: Paths, dataset: str) -> Path:
    """reports/<dataset>/: the sample's figures and the shared corpus's figures live side by side."""
    return paths.reports / dataset


def run(
    params: EvaluateParams, train_params: TrainParams, paths: Paths, dataset: str = "sample"
) -> dict[str, Any]:
    """Evaluate every head; write reports/<dataset>/metrics/*.json and metrics.md; return all metrics."""
    prepare_report = json.loads((paths.processed / "prepare_report.json").read_text())
    reports = reports_dir(paths, dataset)
    results: dict[str, Any] = {
        "drug_type": drug_type_metrics(paths, params, train_params, prepare_report["lomo_markets"], reports),
        "quantity": quantity_metrics(paths.gold, paths.models),
        "origin": {**origin_metrics(paths.gold, paths.models), "field": field_origin_metrics(paths.gold)},
        "laundering": laundering_metrics(paths.gold, paths.models),
    }
    if (paths.gold / "messages.jsonl").exists() and (paths.models / "ad_detector").is_dir():
        results["messages"] = messages_metrics(paths.gold, paths.models)
    out = reports / "metrics"
    out.mkdir(parents=True, exist_ok=True)
    for head, metrics in results.items():
        (out / f"{head}.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    summary = headline(results)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    from pipeline.report_md import write_metrics_markdown

    write_metrics_markdown(results, summary, prepare_report, reports / "metrics.md", dataset)
    if params.track:
        _track(results, summary, paths, reports, dataset)
    return {"summary": summary, **results}


def headline(results: dict[str, Any]) -> dict[str, float | None]:
    """The figures the issue names, flat (also the champion metric ``drug_type_test_macro_f1``)."""
    dt = results["drug_type"]
    return {
        "drug_type_lomo_macro_f1": dt.get("lomo_mean", {}).get("macro_f1"),
        "drug_type_lomo_macro_f1_supported": dt.get("lomo_mean", {}).get("macro_f1_supported"),
        "drug_type_lomo_micro_f1": dt.get("lomo_mean", {}).get("micro_f1"),
        "drug_type_lomo_macro_f1_with_set_aside": dt.get("lomo_mean_with_set_aside", {}).get("macro_f1"),
        "drug_type_test_macro_f1": dt.get("in_market_test", {}).get("summary", {}).get("macro_f1"),
        "drug_type_test_micro_f1": dt.get("in_market_test", {}).get("summary", {}).get("micro_f1"),
        "quantity_exact": results["quantity"]["exact_match"],
        "origin_text_exact": results["origin"]["exact_both"],
        "origin_field_accuracy": results["origin"]["field"]["accuracy"],
        "hints_micro_f1": results["laundering"]["hints"]["summary"]["micro_f1"],
        "address_precision": results["laundering"]["addresses"]["precision"],
        "address_recall": results["laundering"]["addresses"]["recall"],
        "contacts_precision": results["laundering"]["contacts"]["precision"],
        "contacts_recall": results["laundering"]["contacts"]["recall"],
        "messages_ad_accuracy": results.get("messages", {}).get("all", {}).get("ad_accuracy"),
        "messages_drug_micro_f1": results.get("messages", {}).get("all", {}).get("drug_micro_f1"),
    }


def _track(
    results: dict[str, Any], summary: dict[str, Any], paths: Paths, reports: Path, dataset: str
) -> None:
    import mlflow

    from pipeline import tracking

    tracking.configure(paths)
    with mlflow.start_run(run_name="evaluate"):
        mlflow.set_tags(
            {"stage": "evaluate", "family": "sklearn", "data": dataset, **tracking.run_context(paths)}
        )
        mlflow.log_metrics({k: v for k, v in summary.items() if v is not None})
        for head, metrics in results.items():
            mlflow.log_dict(metrics, f"metrics/{head}.json")
        for artifact in [reports / "metrics.md", *sorted((reports / "plots").glob("*.csv"))]:
            if artifact.exists():
                mlflow.log_artifact(str(artifact), "reports")


app = typer.Typer(add_completion=False, help="DVC stage `evaluate`: per-class metrics for every head.")


@app.command()
def main(params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read.")) -> None:
    """Run the evaluate stage with the params in PARAMS_FILE."""
    from pipeline.params import load_params

    params = load_params(params_file)
    result = run(params.evaluate, params.train, Paths(), params.data.source)
    typer.echo(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    app()

"""DVC stage ``compare``: every drug_type model family (and their ensembles) side by side, one code path.

Reads the scores tables the family stages wrote (``reports/<data>/families/<family>_scores.parquet``:
sklearn from ``evaluate``, spaCy from ``train_spacy``, the transformer and its ONNX int8 export from
``train_transformer``) and, for each, tunes thresholds on every rotation's validation part and measures
its test part with the same decision rule (:func:`pipeline.families.family_report`). Ensembles average
the member families' scores row by row (same rotation, part and id) and are measured the same way.

Writes ``reports/<data>/families.json`` (every candidate's figures and texts/s) and ``families.md`` (the
family x rotation table), and logs one MLflow run per candidate, tagged ``comparison=drug_type``, so the
MLflow UI compares them side by side. ``export`` picks the champion from this table
(:func:`choose_champion`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from pipeline import families
from pipeline.config import Paths
from pipeline.heads.drug_type import DrugTypeParams
from pipeline.taxonomy import DRUG_TYPES

ENSEMBLE_PREFIX = "ensemble:"


@dataclass(frozen=True)
class CompareParams:
    """Params section ``compare``."""

    families: tuple[str, ...] = ("sklearn", "spacy", "transformer", "transformer_int8")
    ensembles: bool = True  # also measure mean-score ensembles of the available families
    min_support: int = 30  # macro_f1_supported averages classes with at least this many test records
    track: bool = True


def available_families(reports: Path, wanted: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The families in ``wanted`` whose scores table and facts exist under ``reports``: name -> facts."""
    found = {}
    for family in wanted:
        if family not in families.FAMILIES:
            raise ValueError(
                f"compare.families names unknown family {family!r}; known: {sorted(families.FAMILIES)}"
            )
        info, table = families.info_path(reports, family), families.scores_path(reports, family)
        if info.exists() and table.exists():
            found[family] = json.loads(info.read_text())
    return found


def ensemble_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The mean of the members' scores for the rows every member scored (same rotation, part, id)."""
    keys = ["rotation", "part", "id"]
    names = list(tables)
    first = tables[names[0]]
    # the members scored the same records: labels and vendors come from the first
    carried = ["market_key", "labels", *([families.VENDOR_COLUMN] if families.VENDOR_COLUMN in first else [])]
    merged = first[[*keys, *carried, "scores"]].rename(columns={"scores": names[0]})
    for name in names[1:]:
        merged = merged.merge(tables[name][[*keys, "scores"]].rename(columns={"scores": name}), on=keys)
    stacked = (
        np.stack([np.vstack(merged[n].map(np.asarray).to_numpy()) for n in names]) if len(merged) else None
    )
    mean = stacked.mean(axis=0) if stacked is not None else np.zeros((0, len(DRUG_TYPES)))
    out = merged[[*keys, *carried]].copy()
    out["scores"] = [row.astype(np.float32).tolist() for row in mean]
    return out[[*families.SCORE_COLUMNS, *carried[2:]]]


def ensemble_members(found: dict[str, dict[str, Any]]) -> list[tuple[str, ...]]:
    """Pairs of distinct models (the int8 export is the transformer itself, never paired with it), and
    all distinct models together when there are more than two."""
    models = list(found)
    combos: list[tuple[str, ...]] = [
        c for c in itertools.combinations(models, 2) if set(c) != {"transformer", "transformer_int8"}
    ]
    distinct = [m for m in models if not (m == "transformer" and "transformer_int8" in models)]
    if len(distinct) > 2:
        combos.append(tuple(distinct))
    return combos


def ensemble_throughput(rates: list[float]) -> float:
    """Texts/s of running every member one after the other on the same texts."""
    return round(1.0 / sum(1.0 / r for r in rates), 1) if all(r > 0 for r in rates) else 0.0


def compare(reports: Path, params: CompareParams, tuning: DrugTypeParams) -> dict[str, dict[str, Any]]:
    """Every available family's and ensemble's figures: candidate -> {report, texts_per_second, members}."""
    found = available_families(reports, params.families)
    tables = {f: families.read_scores(families.scores_path(reports, f)) for f in found}
    candidates: dict[str, dict[str, Any]] = {}
    for family, info in found.items():
        candidates[family] = {
            "members": [family],
            "texts_per_second": float(info["texts_per_second"]),
            "report": families.family_report(
                tables[family], tuning, tuning.fallback_ratio, params.min_support
            ),
        }
    if params.ensembles:
        for members in ensemble_members(found):
            table = ensemble_table({m: tables[m] for m in members})
            candidates[ENSEMBLE_PREFIX + "+".join(members)] = {
                "members": list(members),
                "texts_per_second": ensemble_throughput(
                    [float(found[m]["texts_per_second"]) for m in members]
                ),
                "report": families.family_report(table, tuning, tuning.fallback_ratio, params.min_support),
            }
    return candidates


def candidate_metric(candidate: dict[str, Any]) -> float | None:
    """The figure champions are chosen by: mean leave-one-market-out macro-F1, else in-market macro-F1."""
    report = candidate["report"]
    if "lomo_mean" in report:
        return float(report["lomo_mean"]["macro_f1"])
    if "in_market_test" in report:
        return float(report["in_market_test"]["summary"]["macro_f1"])
    return None


def choose_champion(candidates: dict[str, dict[str, Any]], min_texts_per_second: float) -> str:
    """The candidate with the best :func:`candidate_metric` among those at least as fast as the floor.

    Figures are compared like for like: when any candidate has leave-one-market-out figures, only those
    compete (an in-market figure is not comparable with a held-out-market one). A single family wins a tie
    with an ensemble (simpler and faster). When nothing reaches the floor, the floor is not applied (the
    machine that measured is slower than the one the floor was set for, or the measurement is noise) and
    the best candidate wins; :func:`floor_met` tells export to say so.
    """
    scored = {n: c for n, c in candidates.items() if candidate_metric(c) is not None}
    if not scored:
        raise ValueError("no candidate has figures: run the family stages (dvc repro) first")
    if any("lomo_mean" in c["report"] for c in scored.values()):
        scored = {n: c for n, c in scored.items() if "lomo_mean" in c["report"]}
    fast = {n: c for n, c in scored.items() if c["texts_per_second"] >= min_texts_per_second} or scored

    def rank(name: str) -> tuple[float, int, float]:
        c = fast[name]
        return (round(candidate_metric(c) or 0.0, 4), -len(c["members"]), c["texts_per_second"])

    return max(fast, key=rank)


def floor_met(candidates: dict[str, dict[str, Any]], name: str, min_texts_per_second: float) -> bool:
    """Whether the chosen candidate ``name`` reaches the throughput floor."""
    return float(candidates[name]["texts_per_second"]) >= min_texts_per_second


def comparison_markdown(candidates: dict[str, dict[str, Any]], dataset: str) -> str:
    """The family x rotation table (macro-F1), with means, micro-F1, in-market figures and texts/s."""
    rotations = sorted({r for c in candidates.values() for r in c["report"].get("lomo", {})})
    lines = [
        f"# drug_type model families on `{dataset}` data",
        "",
        "Leave-one-market-out macro-F1 per held-out market (thresholds tuned on the training markets'",
        "validation split, or on the training markets scored by each other's models where a family writes",
        "those rows; the same decision rule for every row), the mean over rotations, the mean of",
        "classes with enough support, micro-F1, the in-market vendor-grouped test, and single-process",
        "texts/s on the machine that ran the stage. Ensembles average their members' scores on the records",
        "every member scored (see held-out records: a family that scored a sample of a market is measured",
        "on that sample only).",
        "",
        "| candidate | "
        + " | ".join(rotations)
        + " | mean macro-F1 | mean macro-F1 (supported) | mean micro-F1 "
        "| in-market macro-F1 | held-out records | texts/s |",
        "|---" * (len(rotations) + 7) + "|",
    ]
    order = sorted(candidates, key=lambda n: -(candidate_metric(candidates[n]) or 0.0))
    for name in order:
        report = candidates[name]["report"]
        lomo, mean = report.get("lomo", {}), report.get("lomo_mean", {})
        cells = [f"{lomo[r]['summary']['macro_f1']:.3f}" if r in lomo else "–" for r in rotations]
        in_market = report.get("in_market_test", {}).get("summary", {}).get("macro_f1")
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + "".join(f" | {_fmt(mean.get(k))}" for k in ("macro_f1", "macro_f1_supported", "micro_f1"))
            + f" | {_fmt(in_market)} | {sum(r['summary']['records'] for r in lomo.values()):,}"
            + f" | {candidates[name]['texts_per_second']:,.0f} |"
        )
    lines += ["", "## Per-class F1, mean over the leave-one-market-out rotations", ""]
    lines += ["| class | " + " | ".join(order) + " |", "|---" * (len(order) + 1) + "|"]
    for code in DRUG_TYPES:
        cells = []
        for name in order:
            lomo = candidates[name]["report"].get("lomo", {})
            values = [
                r["per_class"][code]["f1"] for r in lomo.values() if r["per_class"][code]["support"] > 0
            ]
            cells.append(f"{np.mean(values):.3f}" if values else "–")
        lines.append(f"| {code} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rule_head_comparison(reports: Path) -> dict[str, dict[str, Any]]:
    """Rules vs the spaCy models on the gold sets' held-out halves (from the train_spacy stage's facts):
    head -> {"metric", "rules", "spacy", "items", "champion"}; empty when spaCy has not run."""
    info = families.info_path(reports, "spacy")
    if not info.exists():
        return {}
    gold = json.loads(info.read_text()).get("hints_spans", {}).get("gold_test", {})
    rows = {}
    if "hints" in gold:
        h = gold["hints"]
        rows["laundering"] = {"metric": "hints micro-F1", "rules": h["rules"]["micro_f1"],
                              "spacy": h["spacy"]["micro_f1"], "items": h["rules"]["items"]}  # fmt: skip
    if "quantity" in gold:
        q = gold["quantity"]
        rows["quantity"] = {"metric": "exact match (4 fields)", "rules": q["rules_exact"],
                            "spacy": q["spacy_exact"], "items": q["items"]}  # fmt: skip
    if "origin_text_only" in gold:
        o = gold["origin_text_only"]
        rows["origin"] = {"metric": "ships-from F1 (text only)", "rules": o["rules"]["f1"],
                          "spacy": o["spacy"]["f1"], "items": o["items"]}  # fmt: skip
    for row in rows.values():
        row["champion"] = "spacy" if row["spacy"] > row["rules"] else "rules"
    return rows


def rule_heads_markdown(rows: dict[str, dict[str, Any]]) -> str:
    """The rules-vs-spaCy table for the heads without market labels."""
    if not rows:
        return ""
    lines = [
        "",
        "## Quantity, origin, laundering hints: rules vs spaCy on the gold sets' held-out halves",
        "",
        "spaCy models (`train_spacy`: hints textcat, QUANTITY/ORIGIN NER) trained on weak labels from the",
        "rule heads plus each gold set's dev half; both measured on the other half. The rules were written",
        "against the whole gold set, so their figures are development figures.",
        "",
        "| head | metric | items | rules | spaCy | champion |",
        "|---|---|---|---|---|---|",
    ]
    for head, r in rows.items():
        figures = f"{r['rules']:.3f} | {r['spacy']:.3f}"
        lines.append(f"| {head} | {r['metric']} | {r['items']} | {figures} | {r['champion']} |")
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def run(
    params: CompareParams, tuning: DrugTypeParams, paths: Paths, dataset: str = "sample"
) -> dict[str, Any]:
    """Compare the families found under reports/<dataset>/families/; write families.json and .md."""
    reports = paths.reports / dataset
    candidates = compare(reports, params, tuning)
    result = {
        name: {
            "members": c["members"],
            "texts_per_second": c["texts_per_second"],
            "metric": candidate_metric(c),
            "lomo_mean": c["report"].get("lomo_mean"),
            "lomo_macro_f1": {r: v["summary"]["macro_f1"] for r, v in c["report"].get("lomo", {}).items()},
            "in_market_macro_f1": c["report"].get("in_market_test", {}).get("summary", {}).get("macro_f1"),
            "report": c["report"],
        }
        for name, c in candidates.items()
    }
    (reports / "families.json").write_text(json.dumps(result, indent=2) + "\n")
    heads = rule_head_comparison(reports)
    (reports / "rule_heads.json").write_text(json.dumps(heads, indent=2) + "\n")
    (reports / "families.md").write_text(
        comparison_markdown(candidates, dataset) + rule_heads_markdown(heads)
    )
    if params.track:
        _track(result, paths, dataset)
    return {name: {k: v for k, v in c.items() if k != "report"} for name, c in result.items()}


def _track(result: dict[str, Any], paths: Paths, dataset: str) -> None:
    import mlflow

    from pipeline import tracking

    tracking.configure(paths)
    context = tracking.run_context(paths)
    with mlflow.start_run(run_name="compare-drug_type"):
        mlflow.set_tags({"stage": "compare", "data": dataset, **context})
        for name, c in result.items():
            with mlflow.start_run(run_name=f"family-{name}", nested=True):
                mlflow.set_tags(
                    {"stage": "compare", "comparison": "drug_type", "family": name, "data": dataset,
                     "members": "+".join(c["members"]), **context}
                )  # fmt: skip
                figures = {"texts_per_second": c["texts_per_second"]}
                figures.update({f"lomo_macro_f1_{r}": v for r, v in c["lomo_macro_f1"].items()})
                figures.update({f"lomo_mean_{k}": v for k, v in (c["lomo_mean"] or {}).items()})
                if c["in_market_macro_f1"] is not None:
                    figures["in_market_macro_f1"] = c["in_market_macro_f1"]
                mlflow.log_metrics(figures)
                mlflow.log_dict(c["report"], "report.json")


app = typer.Typer(add_completion=False, help="DVC stage `compare`: drug_type model families side by side.")


@app.command()
def main(params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read.")) -> None:
    """Run the compare stage with the params in PARAMS_FILE."""
    from pipeline.params import load_params

    params = load_params(params_file)
    summary = run(params.compare, params.train.drug_type, Paths(), params.data.source)
    typer.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    app()

"""Benchmark: drug_type macro-F1 against the number of training records, scikit-learn vs the fine-tuned
transformer, on the leave-one-market-out rotations. It answers whether the transformer family trails
because of its architecture or because the 2-core budget (``train_transformer.drug_type.max_train_records``)
starves it of data: both families fit the *same* seeded sample of each size (stratified by first code,
:func:`cap_records`), tune thresholds on the same validation sample, and score the same sample of the
held-out market, each the way it ships (the scikit-learn head adapts to the market's class mix).
Prints a table and writes it as JSON when asked; asserts nothing (not a timed test).

usage: .venv/bin/python benchmarks/learning_curve.py --root DIR [--sizes 1600,3200,6400]
           [--markets agora,alphabay,torrez] [--test-records 2000] [--val-records 2000]
           [--families sklearn,transformer] [--json out.json]

``--root`` is a project folder whose ``prepare`` stage has run (``data/processed/drug_type.parquet``);
params come from its ``params.yaml``. ``all`` as a size means every training record of the rotation. The
transformer trains at roughly 40 texts/s on 2 CPU cores: 2 epochs of 6,400 records take about 5 minutes,
of a whole rotation (18,000 to 29,000 records) 15 to 25 minutes, less when early stopping ends it. Run it
niced; times move with other load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import families
from pipeline.config import Paths
from pipeline.heads.drug_type import DrugTypeHead
from pipeline.heads.drug_type_transformer import TransformerDrugTypeHead, cap_records
from pipeline.params import Params, load_params
from pipeline.train import labelled_frame


def make_head(family: str, params: Params) -> Any:
    """A fresh head of ``family`` (no training cap: the benchmark samples)."""
    if family == "sklearn":
        return DrugTypeHead(params.train.drug_type)
    if family == "transformer":
        return TransformerDrugTypeHead(
            dataclasses.replace(params.train_transformer.drug_type, max_train_records=None)
        )
    raise ValueError(f"unknown family {family!r} (sklearn | transformer)")


def held_out_figures(
    family: str, params: Params, rotation_frame: pd.DataFrame, market: str
) -> tuple[dict[str, float], float]:
    """One rotation of ``rotation_frame`` (the sampled records) as the compare stage measures every family
    (:func:`families.lomo_scores`, :func:`families.family_report`): its summary figures and the fit time."""
    fit_seconds: list[float] = []

    def timed_head() -> Any:
        head = make_head(family, params)
        fit = head.fit

        def timed_fit(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            fitted = fit(*args, **kwargs)
            fit_seconds.append(time.perf_counter() - started)
            return fitted

        head.fit = timed_fit
        return head

    table = families.lomo_scores(rotation_frame, [market], timed_head)
    tuning = make_head(family, params).params  # threshold grid and fallback ratio of the family
    summary = families.family_report(table, tuning, tuning.fallback_ratio, min_support=30)["lomo"][market]
    figures = {
        k: round(float(summary["summary"][k]), 4) for k in ("macro_f1", "macro_f1_supported", "micro_f1")
    }
    return figures, fit_seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--sizes", default="1600,3200,6400")
    parser.add_argument("--markets", default="agora,alphabay,torrez")
    parser.add_argument("--families", default="sklearn,transformer")
    parser.add_argument("--test-records", type=int, default=2000)
    parser.add_argument("--val-records", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    params = load_params(args.root / "params.yaml")
    frame = labelled_frame(Paths(args.root))
    rows: list[dict[str, Any]] = []
    for market in args.markets.split(","):
        train, val, test = families.rotation_frames(frame, market)
        val = cap_records(val, args.val_records, args.seed)
        test = test.sample(n=min(args.test_records, len(test)), random_state=args.seed)
        for size_text in args.sizes.split(","):
            sample = cap_records(train, None if size_text == "all" else int(size_text), args.seed)
            rotation_frame = pd.concat([sample, val, test]).sort_index()
            for family in args.families.split(","):
                figures, fit_seconds = held_out_figures(family, params, rotation_frame, market)
                row = {
                    "held_out": market,
                    "size": size_text,
                    "train_records": len(sample),
                    "family": family,
                    **figures,
                    "fit_seconds": round(fit_seconds, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    order = [s for s in args.sizes.split(",") if s in set(table["size"])]
    for value in ("macro_f1", "micro_f1"):
        pivot = table.pivot_table(index=["family", "held_out"], columns="size", values=value)[order]
        print(f"\n{value} on the held-out market's sample (columns: training records per fit)")
        print(pivot.round(3).to_string())
        print(table.pivot_table(index="family", columns="size", values=value)[order].round(3).to_string())
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

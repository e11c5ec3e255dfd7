"""Choosing drug-type decision settings on market pairs, without the test markets' labels.

Thresholds are tuned on a validation split drawn from the training markets, but some settings only show
their worth on a market the model has not seen (how a code the text does not name is treated, the fallback
to ``non_drug``, how far scores move towards the market's own class mix). In-market validation cannot tell
them apart. This module measures them the honest way: fit on one market's train split (thresholds tuned on
that market's validation split), score every labelled record of another market, and sweep the setting on
those out-of-market scores. For a leave-one-market-out rotation only the pairs of its two training markets
are needed, so a value picked here never saw the held-out market's labels.

    python -m pipeline.market_pairs --setting unnamed_keep_score --values 0,0.5,0.9,0.99,0.999,2

A setting applied after the probabilities (:data:`SWEEPABLE`) is swept on one fit per market; any other
``train.drug_type`` setting (``C``, ``lexicon_weight``, ...) refits the heads per value
(:func:`sweep_refit`, a few minutes per value on the shared corpus). The command
reads ``data/processed/drug_type.parquet`` (the shared corpus prepared: ``data.source: shared``) and prints
each pair's macro-F1 per value and, per rotation, the value its own training-market pairs pick.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import typer

from pipeline.config import Paths
from pipeline.families import table_decisions
from pipeline.heads.drug_type import (
    DrugTypeHead,
    DrugTypeParams,
    binarize,
    cross_market_thresholds,
    model_input,
    validation_thresholds,
)
from pipeline.heads.prior_shift import estimate_priors
from pipeline.metrics import multilabel_report
from pipeline.params import load_params
from pipeline.prepare import lomo_markets
from pipeline.train import labelled_frame

# settings applied after the model's probabilities (prior shift, strong-name rules, decision): no refit
SWEEPABLE = (
    "unnamed_keep_score",
    "strong_floor",
    "strong_veto_non_drug",
    "fallback_ratio",
    "prior_adaptation",
    "rescue_over_non_drug",
    "vendor_shift",
    "vendor_pseudo_listings",
    "vendor_min_listings",
    "vendor_fill_share",
    "vendor_retune_thresholds",
    "cross_market_thresholds",
    "cross_market_min_positives",
)


def pair_scores(frame: pd.DataFrame, markets: list[str], params: DrugTypeParams) -> dict[str, Any]:
    """Fit one head per market (its train split; thresholds on its val split) and keep, per ordered pair
    ``(fit, scored)``, the model's raw probabilities on every labelled record of the scored market (the
    strong-name rules are applied per swept value in :func:`sweep`), and each head's raw validation
    probabilities (a value that changes how thresholds are tuned re-tunes them)."""
    heads: dict[str, DrugTypeHead] = {}
    raw: dict[tuple[str, str], tuple[np.ndarray, list[str]]] = {}
    validation: dict[str, tuple[np.ndarray, list[str], pd.DataFrame]] = {}
    records = {m: frame[frame["market_key"] == m] for m in markets}
    for market in markets:
        own = records[market]
        train, val = own[own["split"] == "train"], own[own["split"] == "val"]
        head = heads[market] = DrugTypeHead(params).fit(train, val_records=val if len(val) else None)
        if len(val):
            texts = model_input(val)
            validation[market] = (np.asarray(head.pipeline_.predict_proba(texts)), texts, val)  # type: ignore[union-attr]
        for scored, scored_records in records.items():
            if scored != market and len(scored_records):
                texts = model_input(scored_records)
                raw[market, scored] = (np.asarray(head.pipeline_.predict_proba(texts)), texts)  # type: ignore[union-attr]
    return {"heads": heads, "records": records, "raw": raw, "validation": validation}


def sweep(fitted: dict[str, Any], setting: str, values: list[float]) -> pd.DataFrame:
    """Macro- and micro-F1 of every ordered market pair for each value of ``setting``: one row per
    (value, fit market, scored market).

    With ``cross_market_thresholds`` on, the pair (fit, scored) takes its thresholds from the fit head's
    scores of the *third* markets' train and val records (never the scored market's), as a head fitted on
    several markets tunes them on each one scored by a head of the others (DrugTypeHead.fit)."""
    if setting not in SWEEPABLE:
        raise ValueError(f"unknown setting {setting!r}; one of {SWEEPABLE}")
    truth = {m: binarize([list(x) for x in r["labels"]]) for m, r in fitted["records"].items()}
    rows = []
    for value in values:
        for fit_market, head in fitted["heads"].items():
            probe = copy.copy(head)  # shares the fitted model, lexicons and thresholds
            probe.params = params = dataclasses.replace(head.params, **{setting: value})
            if fit_market in fitted["validation"]:
                # the thresholds as fit() tunes them with this value (e.g. re-tuned on shifted scores, or
                # not: a head fitted with the re-tuning on is swept with it off too)
                val_raw, val_texts, val = fitted["validation"][fit_market]
                val_scores = probe._finish_scores(val_raw.copy(), val_texts, None)
                probe.thresholds_ = validation_thresholds(val_scores, val, list(val["labels"]), params)
            scored_by_probe = {
                market: _market_scores(probe, *fitted["raw"][fit_market, market])
                for market in fitted["records"]
                if (fit_market, market) in fitted["raw"]
            }
            for scored_market, scores in scored_by_probe.items():
                thresholds = probe.thresholds_
                if params.cross_market_thresholds:
                    thresholds = _third_market_thresholds(
                        thresholds, scored_by_probe, fitted["records"], scored_market, params
                    )
                predicted = table_decisions(
                    fitted["records"][scored_market], scores, thresholds, params, params.fallback_ratio
                )
                summary = multilabel_report(truth[scored_market], binarize(predicted))["summary"]
                rows.append(
                    {
                        "value": value,
                        "fit": fit_market,
                        "scored": scored_market,
                        "macro_f1": summary["macro_f1"],
                        "micro_f1": summary["micro_f1"],
                    }
                )
    return pd.DataFrame(rows)


def _market_scores(head: DrugTypeHead, probabilities: np.ndarray, texts: list[str]) -> np.ndarray:
    shift = None
    # the scored market's mix, as `narcotag score` estimates it
    if head.adapts_priors and head.train_prior_ is not None:
        shift = head.shifts_for({0: estimate_priors(probabilities, head.train_prior_)})[0]
    return head._finish_scores(probabilities.copy(), texts, shift)


def _third_market_thresholds(
    fallback: np.ndarray,
    scored_by_head: dict[str, np.ndarray],
    records: dict[str, pd.DataFrame],
    scored_market: str,
    params: DrugTypeParams,
) -> np.ndarray:
    scores, rows = [], []
    for market, market_scores in scored_by_head.items():
        own = records[market]
        keep = (own["split"] != "test").to_numpy()
        if market == scored_market or keep.sum() < params.cross_market_min_records:
            continue
        scores.append(market_scores[keep])
        rows.append(own[keep])
    if not rows:
        return fallback
    return cross_market_thresholds(fallback, np.vstack(scores), pd.concat(rows, ignore_index=True), params)


def sweep_refit(
    frame: pd.DataFrame, markets: list[str], params: DrugTypeParams, setting: str, values: list[Any]
) -> pd.DataFrame:
    """:func:`sweep`'s table for a setting the model is fitted with: the pair heads refitted per value."""
    if setting not in {f.name for f in dataclasses.fields(DrugTypeParams)}:
        raise ValueError(f"unknown train.drug_type setting {setting!r}")
    tables = []
    for value in values:
        fitted = pair_scores(frame, markets, dataclasses.replace(params, **{setting: value}))
        table = sweep(fitted, "vendor_min_listings", [params.vendor_min_listings])  # as fitted: no change
        tables.append(table.assign(value=value))
    return pd.concat(tables, ignore_index=True)


def pick_per_rotation(table: pd.DataFrame, markets: list[str]) -> dict[str, float]:
    """For each held-out market, the value with the best mean macro-F1 over the pairs of the *other*
    markets (ties: the first value listed); a market whose rotation has no such pair gets no pick."""
    picks = {}
    for held_out in markets:
        own = table[(table["fit"] != held_out) & (table["scored"] != held_out)]
        if own.empty:
            continue
        means = own.groupby("value", sort=False)["macro_f1"].mean()
        picks[held_out] = float(means.index[int(np.argmax(means.to_numpy()))])
    return picks


def main(
    setting: str = typer.Option("unnamed_keep_score", help="A train.drug_type setting to sweep."),
    values: str = typer.Option("0,0.5,0.9,0.99,0.999,2", help="Comma-separated values."),
    params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read."),
    root: Path = typer.Option(Path("."), help="The project folder whose data/processed is read."),
) -> None:
    """Sweep ``setting`` on out-of-market pairs of the prepared corpus and print the table and picks."""
    params = load_params(params_file)
    frame = labelled_frame(Paths(root.resolve()))
    markets = lomo_markets(frame, params.prepare.lomo_min_records)  # the rotations evaluate runs
    if len(markets) < 3:
        raise typer.BadParameter(
            f"needs 3 markets with labelled records, found {markets} (prepare the shared data)"
        )
    numbers = [float(v) for v in values.split(",")]
    if setting in SWEEPABLE:
        table = sweep(pair_scores(frame, markets, params.train.drug_type), setting, numbers)
    else:  # a fit-time setting: ints stay ints (min_df, max_iter, n-gram sizes)
        kind = type(getattr(params.train.drug_type, setting, 0.0))
        typed = [kind(v) if kind in (int, float) else v for v in numbers]
        table = sweep_refit(frame, markets, params.train.drug_type, setting, typed)
    wide = table.pivot_table(index="value", columns=["fit", "scored"], values="macro_f1", sort=False)
    wide["mean"] = wide.mean(axis=1)
    typer.echo(wide.round(4).to_string())
    typer.echo(f"picked per held-out market: {pick_per_rotation(table, markets)}")


if __name__ == "__main__":
    typer.run(main)

"""DVC stage ``prepare``: cleaned records -> drug-type training labels and leak-free splits.

- Labels: each market's category path mapped onto the contract's codes (``labels/categories.py``); coarse
  categories stay unlabelled. Category labels that the text contradicts (it names another substance) and
  placeholder listings (custom orders, shipping, tips) are set aside with a reason
  (``labels/conflicts.py``; ``prepare.drop_label_conflicts``). Reviewed labels from analysts
  (``data/labels/reviewed.jsonl``) override both.
- Deduplicate before splitting: only one representative per ``dup_group`` is kept.
- Split groups: records that share a vendor *or* a dup_group are one group (connected components), and a
  group never straddles train/validation/test. Assignment is by a seeded hash of the group, so it is
  stable when the data grows.
- Leave-one-market-out folds are declared over every market with enough labelled records.

Outputs ``data/processed/drug_type.parquet`` and ``data/processed/prepare_report.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from pipeline.config import Paths
from pipeline.labels.categories import map_category
from pipeline.labels.conflicts import label_conflict
from pipeline.labels.reviewed import load_reviewed_labels
from pipeline.taxonomy import DRUG_TYPES


@dataclass(frozen=True)
class PrepareParams:
    """Params section ``prepare``."""

    test_fraction: float = 0.2
    val_fraction: float = 0.15
    seed: int = 7
    lomo_min_records: int = 200
    reviewed_labels: str = "data/labels/reviewed.jsonl"
    drop_label_conflicts: bool = True  # set aside category labels the text contradicts (labels/conflicts.py)


def market_key(market: str | None) -> str:
    """A short stable key for a market name: "AlphaBay (README calls it ...)" -> "alphabay"."""
    if not market:
        return "unknown"
    match = re.match(r"[\w-]+", market.strip().lower())
    return match.group(0) if match else "unknown"


def split_groups(vendors: list[str | None], dup_groups: list[str]) -> list[str]:
    """Connected components over shared vendor or shared dup_group; returns a group key per record."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for vendor, group in zip(vendors, dup_groups, strict=True):
        a = find("d:" + group)
        if vendor:
            b = find("v:" + vendor.strip().lower())
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [find("d:" + g) for g in dup_groups]


def assign_split(group: str, seed: int, test_fraction: float, val_fraction: float) -> str:
    """train / val / test for a group, by a seeded hash (deterministic, stable as data grows)."""
    digest = hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def build_labelled(
    records: pd.DataFrame, params: PrepareParams, reviewed: dict[str, list[str]]
) -> pd.DataFrame:
    """The drug-type training table: representatives with a label, their group, split and market key."""
    frame = records.copy()
    frame["market_key"] = [market_key(m) for m in frame["market"]]
    labels: list[list[str] | None] = []
    sources: list[str] = []
    notes: list[str | None] = []
    category_labels: list[list[str] | None] = []  # the market's mapped label, kept when set aside
    rows = zip(frame["id"], frame["market"], frame["category_raw"], frame["text_folded"], strict=True)
    for rid, market, category, text in rows:
        codes = map_category(market, category)
        category_labels.append(list(codes) if codes else None)
        if rid in reviewed:
            labels.append(reviewed[rid])
            sources.append("reviewed")
            notes.append(None)
            continue
        conflict = label_conflict(text, codes) if codes and params.drop_label_conflicts else None
        if conflict:
            labels.append(None)
            sources.append(conflict[0])
            notes.append(conflict[1])
            continue
        labels.append(list(codes) if codes else None)
        sources.append("category" if codes else "weak")
        notes.append(None)
    frame["labels"] = labels
    frame["label_source"] = sources
    frame["label_note"] = notes
    frame["category_labels"] = category_labels
    # deduplicate before splitting; a reviewed record stays even when it is not its group's representative
    keep = frame["is_representative"] | (frame["label_source"] == "reviewed")
    frame = frame[keep].copy()
    frame["group"] = split_groups(frame["vendor"].tolist(), frame["dup_group"].tolist())
    frame["split"] = [
        assign_split(g, params.seed, params.test_fraction, params.val_fraction) for g in frame["group"]
    ]
    columns = [
        "id", "source", "kind", "market", "market_key", "vendor", "lang", "title", "text", "text_folded",
        "ships_from_raw", "ships_to_raw", "dup_group", "group", "split", "labels", "label_source",
        "label_note", "category_labels",
    ]  # fmt: skip
    return frame[columns].reset_index(drop=True)


def lomo_markets(labelled: pd.DataFrame, min_records: int) -> list[str]:
    """Markets with at least ``min_records`` labelled records: the leave-one-market-out rotations."""
    counts = labelled[labelled["labels"].notna()]["market_key"].value_counts()
    return sorted(m for m, n in counts.items() if n >= min_records and m != "unknown")


def leakage(labelled: pd.DataFrame) -> dict[str, int]:
    """How many vendors and dup_groups appear in more than one split (must be 0)."""
    frame = labelled.assign(vendor_key=labelled["vendor"].fillna("").str.strip().str.lower())
    vendor_splits = frame[frame["vendor_key"] != ""].groupby("vendor_key")["split"].nunique()
    dup_splits = frame.groupby("dup_group")["split"].nunique()
    return {
        "vendors_across_splits": int((vendor_splits > 1).sum()),
        "dup_groups_across_splits": int((dup_splits > 1).sum()),
    }


def run(params: PrepareParams, paths: Paths) -> dict[str, Any]:
    """The stage: read records.parquet, write drug_type.parquet and prepare_report.json."""
    records = pd.read_parquet(paths.interim / "records.parquet")
    reviewed = load_reviewed_labels(paths.resolve(params.reviewed_labels))
    labelled = build_labelled(records, params, reviewed)
    paths.processed.mkdir(parents=True, exist_ok=True)
    labelled.to_parquet(paths.processed / "drug_type.parquet", index=False)
    has_label = labelled["labels"].notna()
    per_market: dict[str, dict[str, int]] = {}
    for market, group in labelled[has_label].groupby("market_key"):
        counts = Counter(code for codes in group["labels"] for code in codes)
        per_market[str(market)] = {code: counts.get(code, 0) for code in DRUG_TYPES}
    leaks = leakage(labelled)
    if any(leaks.values()):
        raise RuntimeError(f"split leakage: {leaks}")
    report = {
        "records": int(len(records)),
        "representatives": int(len(labelled)),
        "labelled": int(has_label.sum()),
        "weak_or_unlabelled": int((~has_label).sum()),
        "reviewed_overrides": int((labelled["label_source"] == "reviewed").sum()),
        "label_sources_per_market": {
            str(market): {str(k): int(v) for k, v in sources.value_counts().sort_index().items()}
            for market, sources in labelled.groupby("market_key")["label_source"]
        },
        "splits": {k: int(v) for k, v in labelled[has_label]["split"].value_counts().items()},
        "lomo_markets": lomo_markets(labelled, params.lomo_min_records),
        "labels_per_market": per_market,
        "leakage": leaks,
    }
    (paths.processed / "prepare_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


app = typer.Typer(add_completion=False, help="DVC stage `prepare`: labels and leak-free splits.")


@app.command()
def main(params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read.")) -> None:
    """Run the prepare stage with the params in PARAMS_FILE."""
    from pipeline.params import load_params

    report = run(load_params(params_file).prepare, Paths())
    typer.echo(json.dumps({k: report[k] for k in ("labelled", "splits", "lomo_markets", "leakage")}))


if __name__ == "__main__":
    app()

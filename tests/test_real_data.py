"""CI-sized real-data check: train drug_type on part of two markets, score the third, assert a floor.

Reads ../shared/data/markets (skipped with a message when absent). Small on purpose (about 20 s): the full
leave-one-market-out figures come from `narcotag train --shared` (reports/shared/metrics.md).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from pipeline.clean import SourceSpec, clean_sources
from pipeline.config import Paths
from pipeline.dedup import NearDupParams
from pipeline.heads.drug_type import DrugTypeHead, DrugTypeParams, binarize
from pipeline.metrics import multilabel_report
from pipeline.prepare import PrepareParams, build_labelled

MARKETS = {
    "agora_2014_listings.jsonl.gz": "agora_2014",
    "torrez_2021_2022_listings.jsonl.gz": "torrez_2021_2022",
    "alphabay_2017_listings.jsonl.gz": "alphabay_2017",
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = Path(__file__).resolve().parents[1]
    markets = root.parent / "shared" / "data" / "markets"
    if not markets.is_dir():
        pytest.skip(f"shared corpus not found at {markets}: real-data test skipped")
    specs = [
        SourceSpec(name=p, path=str(markets / f), adapter="tabular", preset=p) for f, p in MARKETS.items()
    ]
    result = clean_sources(specs, NearDupParams(), Paths(tmp_path_factory.mktemp("real")))
    return build_labelled(result.table.to_pandas(), PrepareParams(), reviewed={})


@pytest.fixture(scope="module")
def labelled(prepared: pd.DataFrame) -> pd.DataFrame:
    frame = prepared[prepared["labels"].notna()]
    # a CI-sized subset, the same every run
    return frame.groupby("market_key", group_keys=False).apply(
        lambda g: g.sample(min(len(g), 4000), random_state=0)
    )


@pytest.mark.shared
def test_cross_market_floor(labelled: pd.DataFrame) -> None:
    train_markets = labelled[labelled["market_key"] != "alphabay"]
    test = labelled[labelled["market_key"] == "alphabay"]
    assert set(train_markets["market_key"]) == {"agora", "torrez"}
    params = replace(DrugTypeParams(), char_max_features=80_000)
    head = DrugTypeHead(params).fit(
        train_markets[train_markets["split"] == "train"],
        val_records=train_markets[train_markets["split"] == "val"],
    )
    predicted = head.predict(test)["drug_types"]
    report = multilabel_report(binarize(list(test["labels"])), binarize(predicted))
    summary = report["summary"]
    print(summary)
    assert summary["micro_f1"] >= 0.75, summary
    assert summary["macro_f1_supported"] >= 0.65, summary
    for code in ("cannabis", "cocaine", "psychedelic", "dissociative"):
        assert report["per_class"][code]["f1"] >= 0.75, (code, report["per_class"][code])


@pytest.mark.shared
def test_audited_conflicts_are_still_set_aside(prepared: pd.DataFrame) -> None:
    """data/labels/conflict_audit.csv stays about what prepare sets aside: every audited id is still a
    category_conflict with the codes the audit saw, and the audit's verdicts back the rule (>= 90% of the
    set-aside labels wrong or incomplete)."""
    audit = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / "labels" / "conflict_audit.csv")
    assert len(audit) == 60
    rows = prepared.set_index("id").loc[audit["id"]]
    assert (rows["label_source"] == "category_conflict").all()
    assert rows["labels"].isna().all()
    columns = zip(rows["label_note"], audit["category_codes"], audit["named_codes"], strict=True)
    for note, category, named in columns:
        assert note == f"text names {named.replace(' ', ',')}; category says {category.replace(' ', ',')}"
    backed = audit["verdict"].isin(["category_wrong", "category_incomplete"]).mean()
    assert backed >= 0.9, audit["verdict"].value_counts()
    counts = prepared["label_source"].value_counts()
    assert 300 <= counts["category_conflict"] <= 1500 and 100 <= counts["placeholder"] <= 600, counts
    assert 20 <= counts["non_drug_goods"] <= 200, counts


@pytest.mark.shared
def test_records_the_2026_11_30_rules_set_aside_stay_audited(prepared: pd.DataFrame) -> None:
    """data/labels/set_aside_audit_2026-11-30.csv lists every record that the rules added on 2026-11-30 (the
    non_drug_goods check, the unanchored placeholder forms, the new strong names) set aside, each title read
    by hand: each is still set aside for the same reason, and >= 95% of the verdicts back the rule."""
    labels_dir = Path(__file__).resolve().parents[1] / "data" / "labels"
    audit = pd.read_csv(labels_dir / "set_aside_audit_2026-11-30.csv")
    assert len(audit) >= 150
    # the audit covers every source the project reads; this fixture cleans the listing files only
    audit = audit[audit["id"].str.split(":").str[0].isin(set(MARKETS.values()))]
    assert len(audit) >= 140
    rows = prepared.set_index("id").loc[audit["id"]]
    assert (rows["label_source"].to_numpy() == audit["label_source"].to_numpy()).all()
    assert rows["labels"].isna().all()
    categories = [" ".join(codes) for codes in rows["category_labels"]]
    assert categories == audit["category_codes"].tolist()
    backed = audit["verdict"].isin(["category_wrong", "no_goods"]).mean()
    assert backed >= 0.95, audit["verdict"].value_counts()

"""The clean stage: one schema, every record accounted for, on the sample and (when present) real data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import clean, sample
from pipeline.clean import (
    AccountingError,
    SourceSpec,
    SourceStats,
    check_accounting,
    clean_frame,
    clean_sources,
)
from pipeline.config import Paths
from pipeline.dedup import NearDupParams
from pipeline.params import load_params
from pipeline.schema import RECORD_SCHEMA
from tests.conftest import REPO

PRESETS = {
    "agora_2014_listings.jsonl.gz": "agora_2014",
    "alphabay_2017_listings.jsonl.gz": "alphabay_2017",
    "torrez_2021_2022_listings.jsonl.gz": "torrez_2021_2022",
}


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample_root")
    sample.run(sample.SampleParams(listings_per_market=60, messages_per_language=12), Paths(root))
    return root


@pytest.fixture(scope="module")
def cleaned(sample_root: Path) -> dict:
    params = load_params(REPO / "params.yaml")
    report = clean.run(params.clean, Paths(sample_root), "sample")
    return report


def test_stage_writes_outputs_in_schema(sample_root: Path, cleaned: dict) -> None:
    interim = sample_root / "data" / "interim"
    table = pq.read_table(interim / "records.parquet")
    assert table.schema.equals(RECORD_SCHEMA, check_metadata=False)
    assert table.num_rows == cleaned["totals"]["kept"] > 0
    assert (interim / "clean_report.json").exists()
    quarantine = [json.loads(line) for line in (interim / "quarantine.jsonl").read_text().splitlines()]
    assert len(quarantine) == cleaned["totals"]["quarantined"] > 0
    for entry in quarantine:
        assert entry["reason"] and entry["provenance"]["file"] and entry["provenance"]["adapter"]


def test_every_source_accounted_for(cleaned: dict) -> None:
    for name, s in cleaned["sources"].items():
        assert s["read"] == s["kept"] + s["quarantined"], name
    assert cleaned["accounting_ok"] is True


def test_sample_ids_match_truth_and_bad_items_are_quarantined(sample_root: Path, cleaned: dict) -> None:
    raw = sample_root / "data" / "raw" / "sample"
    truth_ids = {json.loads(line)["id"] for line in (raw / "truth.jsonl").read_text().splitlines()}
    kept = set(pd.read_parquet(sample_root / "data" / "interim" / "records.parquet")["id"])
    assert kept == truth_ids  # every good item kept under its own id, every bad one quarantined
    manifest = json.loads((raw / "manifest.json").read_text())
    assert cleaned["totals"]["quarantined"] == len(manifest["bad_items"])
    assert cleaned["sources"]["sample_telegram"]["skipped"]["service_message"] > 0


def test_records_are_normalised(sample_root: Path) -> None:
    frame = pd.read_parquet(sample_root / "data" / "interim" / "records.parquet")
    assert not frame["text"].str.contains("<p>|&amp;|Ã©", regex=True).any()  # no tags, entities, mojibake
    assert frame["text_folded"].notna().all()
    assert set(frame["lang"]) >= {"en", "de", "nl", "fr", "es", "pl", "ru"}
    assert frame.groupby("dup_group")["is_representative"].sum().eq(1).all()
    telegram = frame[frame["source"] == "sample_telegram"]
    assert telegram["id"].str.match(r"^tg:-?\d+:\d+$").all()


def test_language_identification_on_sample_messages(sample_root: Path) -> None:
    """Language id measured on the project's multilingual messages (truth has each message's language)."""
    frame = pd.read_parquet(sample_root / "data" / "interim" / "records.parquet")
    truth = {
        json.loads(line)["id"]: json.loads(line)["lang"]
        for line in (sample_root / "data/raw/sample/truth.jsonl").read_text().splitlines()
    }
    ads = frame[frame["kind"] == "ad"]
    correct = [lang == truth[rid] for rid, lang in zip(ads["id"], ads["lang"], strict=True)]
    accuracy = sum(correct) / len(correct)
    assert accuracy >= 0.9, f"language accuracy on sample messages {accuracy:.3f}"


def test_accounting_check_fails_loudly() -> None:
    stats = {"s": SourceStats(read=3, kept=1, quarantined=1)}
    with pytest.raises(AccountingError):
        check_accounting(stats)


def test_missing_and_unreadable_inputs_are_reported_not_fatal(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"id": "x1", "title": "Ketamine 5g needles"}) + "\n")
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(bytes(range(256)) * 40)
    specs = [
        SourceSpec(name="good", path=str(good), adapter="tabular", preset="generic"),
        SourceSpec(name="junk", path=str(junk), adapter="tabular", preset="generic"),
        SourceSpec(name="missing", path=str(tmp_path / "nope.csv"), adapter="tabular"),
    ]
    result = clean_sources(specs, NearDupParams(), Paths(tmp_path))
    assert result.table.num_rows == 1
    reasons = {q["source"]: q["reason"] for q in result.quarantine}
    assert reasons == {"junk": "unreadable_file", "missing": "missing_path"}


def test_clean_frame_keeps_order_and_reports_rejects() -> None:
    frame = pd.DataFrame(
        [
            {"id": "a", "title": "MDMA 84% 5g"},
            {"id": "b", "title": None, "description": None},
            {"id": "c", "text": "x" * 200_000},
            {"id": "d", "text": "Kush 3.5g"},
        ]
    )
    records, rejected = clean_frame(frame)
    assert list(records["id"]) == ["a", "d"]
    assert rejected == {1: "no_text", 2: "text_too_long"}


@pytest.mark.shared
@pytest.mark.parametrize("file_name", sorted(PRESETS))
def test_clean_real_market_listings(markets_dir: Path, tmp_path: Path, file_name: str) -> None:
    spec = SourceSpec(
        name=PRESETS[file_name],
        path=str(markets_dir / file_name),
        adapter="tabular",
        preset=PRESETS[file_name],
    )
    result = clean_sources([spec], NearDupParams(enabled=False), Paths(tmp_path))
    s = result.report["sources"][spec.name]
    assert s["read"] == s["kept"] + s["quarantined"]
    assert s["quarantined"] <= 0.001 * s["read"]
    assert result.table.num_rows == s["kept"]


def test_parallel_cleaning_gives_the_same_table(sample_root: Path) -> None:
    from pipeline.ingest import read_source

    def items() -> list:
        out: list = []
        for name in ("listings.jsonl", "agora_export.csv"):
            out += list(read_source(sample_root / "data/raw/sample" / name, name))
        return out

    serial = clean.clean_records(items(), NearDupParams(), workers=1, chunk_size=50)
    parallel = clean.clean_records(items(), NearDupParams(), workers=2, chunk_size=50)
    assert serial == parallel

"""narcotag score --engine spark: the registered model through mlflow.pyfunc.spark_udf on a small Parquet
file in local[2]; accounting, ids, and the same labels as the local engine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytest.register_assert_rewrite("score_fixtures")

from score_fixtures import MODEL_URI, generic_rows, small_params, write_parquet  # noqa: E402

from pipeline.score import read_labelled, score  # noqa: E402

pytest_plugins = ["score_fixtures"]  # fixtures: tiny_project, registry

pytest.importorskip("pyspark", reason="pyspark is not installed")


def _rows(folder: str) -> list[dict]:
    return [r for f in sorted(Path(folder).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def _rows(folder: str) -> list[dict]:
    return [r for f in sorted(Path(folder).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_spark_engine_on_a_small_parquet_file(registry, tmp_path):
    if shutil.which("java") is None:
        pytest.skip("no Java runtime: Spark cannot start")
    from pipeline.spark import score_spark

    rows = generic_rows(registry.sample, limit=40)
    rows.append({"id": "no-text-1", "kind": "listing", "title": None, "description": None})
    data = write_parquet(rows, tmp_path / "listings.parquet")
    summary = score_spark([data], tmp_path / "spark", MODEL_URI, params=small_params(), report=True)

    assert summary["read"] == len(rows) == summary["scored"] + summary["quarantined"]
    assert summary["quarantined"] >= 1 and summary["model"]["version"] == "1"
    ok, bad = _rows(summary["outputs"]["records"]), _rows(summary["outputs"]["quarantine"])
    assert {r["id"] for r in ok} | {r["id"] for r in bad} == {r["id"] for r in rows}  # ids unchanged
    assert "no-text-1" in {r["id"] for r in bad} and all(r["reason"] for r in bad)
    assert all(r["model"] == {"name": "narcotag-tagger", "version": "1"} for r in ok)
    assert (tmp_path / "spark" / "report.html").exists()

    # the same labels as the local engine on the same rows, each record tagged on its own (Spark does not
    # adapt to a market's class mix)
    assert summary["prior_adaptation"].startswith("off")
    local = tmp_path / "local.jsonl"
    jsonl = tmp_path / "listings.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    score([jsonl], local, MODEL_URI, params=small_params(prior_sample=0))
    expected = {r["id"]: r for r in read_labelled(local)}
    assert set(expected) == {r["id"] for r in ok}
    for record in ok:
        want = expected[record["id"]]
        for field in ("drug_types", "ships_from", "ships_to", "laundering_hints", "confidence"):
            assert record[field] == want[field], (record["id"], field)
        assert {k: v for k, v in record["quantity"].items() if v is not None} == {
            k: float(v) for k, v in want["quantity"].items() if v is not None
        }
        assert record["analytics"]["usd_per_gram"] == want["analytics"]["usd_per_gram"]

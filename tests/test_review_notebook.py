"""notebooks/explore_scored.ipynb runs top to bottom on a small scored batch (nbclient, the venv's Python)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from test_review_support import batch_records, write_batch

from tests.conftest import venv_kernel

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "explore_scored.ipynb"


def test_explore_scored_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    records = batch_records()
    for i, rec in enumerate(
        r for r in records if r["id"].startswith("f-") and r["drug_types"] == ["cannabis"]
    ):
        rec["analytics"] = {"price_usd": 10.0 + i, "usd_per_gram": 10.0 + i, "usd_per_unit": None}
    scored = write_batch(tmp_path / "scored" / "batch.jsonl", records)
    kernel = venv_kernel(tmp_path, monkeypatch)
    monkeypatch.setenv("NARCOTAG_SCORED", str(scored))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name=kernel, resources={"metadata": {"path": str(REPO)}}
    )
    client.execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    summary = json.loads(text.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["records"] == len(records)
    expected = Counter(code for r in records for code in r["drug_types"])
    assert summary["drug_types"] == dict(expected)
    assert {"NL", "PL", "DE", "GB", "?"} <= set(summary["origins"])
    assert summary["priced_offers"] == 1 + sum(r["drug_types"] == ["cannabis"] for r in records)
    assert summary["median_usd_per_gram"]["cocaine"] == 12.0
    assert summary["hints"] == dict(Counter(h for r in records for h in r["laundering_hints"]))
    html = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "<table" in html and "median" in html  # the tables were displayed
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the drug-type chart

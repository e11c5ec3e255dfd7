"""Fixtures for the scoring tests: a tiny model trained and registered through the pipeline's own stages.

``sample -> clean -> prepare -> train (5 heads) -> export`` run on a small built-in sample in a temporary
project root, with MLflow pointed at a sqlite store in that root (never the project's own store). Built
once per test session (the module-level cache is shared by every test file that imports the fixtures).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CHECK = REPO.parent / "shared" / "tools" / "check_labelled.py"
MODEL_URI = "models:/narcotag-tagger@champion"

_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class TinyProject:
    """A trained, registered tiny model and the sample it came from."""

    root: Path
    sample: Path
    models: Path
    tracking_uri: str


def build_tiny_project(root: Path) -> TinyProject:
    """Generate a small sample, clean it, train every head (small drug-type model) and register it."""
    from pipeline import clean, export, prepare, sample, train
    from pipeline.config import Paths
    from pipeline.heads.drug_type import DrugTypeParams
    from pipeline.heads.registry import HEADS
    from pipeline.params import load_params

    paths = Paths(root)
    sample.run(sample.SampleParams(listings_per_market=60, messages_per_language=10), paths)
    clean.run(load_params(REPO / "params.yaml").clean, paths, "sample")
    prepare.run(prepare.PrepareParams(lomo_min_records=10**9), paths)
    # prior adaptation on (as params.yaml has it) with a floor the small markets reach
    # and each vendor's context (the second pass of `narcotag score`), as params.yaml has them
    small = DrugTypeParams(
        char_max_features=5000,
        char_ngram_max=4,
        prior_adaptation=0.75,
        prior_adaptation_min_records=30,
        rescue_over_non_drug=16,
        vendor_shift=0.5,
        vendor_fill_share=0.5,
    )
    with warnings.catch_warnings():  # a tiny sample leaves some drug types without positives: expected
        warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
        for head in HEADS:
            train.run(head, train.TrainParams(drug_type=small, track=False), paths)
    metrics = paths.reports / "sample" / "metrics"
    metrics.mkdir(parents=True)
    (metrics / "summary.json").write_text(json.dumps({"drug_type_test_macro_f1": 0.5}))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uri)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        export.run(export.ExportParams(), paths, "sample")
    return TinyProject(root, paths.sample, paths.models, uri)


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory: pytest.TempPathFactory) -> TinyProject:
    """The tiny project, built once per session."""
    if "project" not in _CACHE:
        _CACHE["project"] = build_tiny_project(tmp_path_factory.mktemp("tiny_project"))
    project: TinyProject = _CACHE["project"]
    return project


@pytest.fixture
def registry(tiny_project: TinyProject, monkeypatch: pytest.MonkeyPatch) -> TinyProject:
    """MLflow pointed at the tiny project's store (like conftest's ``mlflow_uri``) for one test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tiny_project.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", tiny_project.tracking_uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return tiny_project


def generic_rows(sample: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The sample's generic-format listings (the valid JSON lines of listings.jsonl)."""
    rows = []
    for line in (sample / "listings.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows[:limit] if limit else rows


GENERIC_COLUMNS = ["id", "kind", "market", "vendor", "title", "description", "text", "category",
                   "ships_from", "ships_to", "price", "currency", "posted_at"]  # fmt: skip


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    """Rows in the generic listing format as Parquet (prices numeric, unparsable ones null)."""
    frame = pd.DataFrame(rows).reindex(columns=GENERIC_COLUMNS)
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce")
    for column in GENERIC_COLUMNS:
        if column != "price":
            frame[column] = frame[column].astype("string")
    frame.to_parquet(path)
    return path


def every_format(sample: Path, folder: Path) -> dict[str, Path]:
    """One input per supported format, made from the sample: HTML folder, CSV, JSONL, Parquet, Telegram."""
    folder.mkdir(parents=True, exist_ok=True)
    html = folder / "html"
    html.mkdir()
    for page in sorted((sample / "html" / "velvet").iterdir())[:40]:
        shutil.copy(page, html / page.name)
    telegram = folder / "telegram"
    channel = next(p for p in sorted((sample / "telegram").iterdir()) if p.name != "broken_channel")
    shutil.copytree(channel, telegram / channel.name)
    shutil.copy(sample / "agora_export.csv", folder / "agora.csv")
    shutil.copy(sample / "listings.jsonl", folder / "listings.jsonl")
    return {
        "html": html,
        "csv": folder / "agora.csv",
        "jsonl": folder / "listings.jsonl",
        "parquet": write_parquet(generic_rows(sample), folder / "listings.parquet"),
        "telegram": telegram / channel.name / "result.json",
    }


def check_labelled(path: Path) -> str | None:
    """Run ../shared/tools/check_labelled.py on ``path``; its output, or None when ../shared is absent."""
    import subprocess
    import sys

    if not SHARED_CHECK.exists():
        print(f"{SHARED_CHECK} not found: contract check of the output skipped")
        return None
    done = subprocess.run(
        [sys.executable, str(SHARED_CHECK), str(path)], capture_output=True, text=True, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def small_params(**changes: Any) -> Any:
    """Score params for tests: small chunks, one process."""
    from pipeline.score import ScoreParams

    return replace(ScoreParams(chunk_size=200, workers=1), **changes)

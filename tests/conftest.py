"""Shared test fixtures: paths to the read-only shared corpus, MLflow pointed at tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MARKETS = SHARED / "data" / "markets"


@pytest.fixture
def markets_dir() -> Path:
    """../shared/data/markets, or skip with a clear reason when the shared corpus is absent."""
    if not MARKETS.is_dir():
        pytest.skip(f"shared corpus not found at {MARKETS}: real-data tests skipped")
    return MARKETS


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh sqlite MLflow store under tmp_path (never the project's own store)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    return uri

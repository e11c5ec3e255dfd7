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


def venv_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A Jupyter kernel spec that is exactly this interpreter (the project's venv), whatever else is
    installed; returns its name for nbclient."""
    import json
    import sys

    spec = tmp_path / "jupyter" / "kernels" / "narcotag-venv"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "narcotag venv", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "narcotag-venv"

"""MLflow set-up and run context: called inside jobs, never at import.

The tracking URI comes from ``MLFLOW_TRACKING_URI``; without it, a sqlite store in the project
(``mlflow.db``, artifacts in ``mlartifacts/``). Every run records the git commit and the data hashes of
``dvc.lock`` so a number in the UI can be traced to the code and data that made it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import Paths

EXPERIMENT = "narcotag"
REGISTERED_MODEL = "narcotag-tagger"


def project_root(paths: Paths) -> Path:
    """The checkout that owns this run: for a ``dvc exp run --temp`` copy (``<repo>/.dvc/tmp/exps/...``)
    the repository itself, so experiments land in the project's MLflow store, not in a deleted copy."""
    root = paths.root.resolve()
    if ".dvc" in root.parts:
        return Path(*root.parts[: root.parts.index(".dvc")])
    return root


def tracking_uri(paths: Paths) -> str:
    """MLFLOW_TRACKING_URI, or the project's sqlite store (``mlflow.db`` in the project root)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root(paths) / 'mlflow.db'}"


def configure(paths: Paths, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the tracking store and experiment; returns the URI."""
    import mlflow

    uri = tracking_uri(paths)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        artifacts = project_root(paths) / "mlartifacts"
        if uri.startswith("sqlite:///") and "MLFLOW_TRACKING_URI" in os.environ:
            artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
        mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(experiment)
    return uri


def git_commit(root: Path) -> str:
    """The current commit (with "-dirty" when the tree has changes), or "unknown" outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dvc_lock_hashes(root: Path) -> dict[str, str]:
    """``{stage:path: md5}`` of every dependency and output in dvc.lock (empty when there is none)."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    data = yaml.safe_load(lock.read_text()) or {}
    hashes: dict[str, str] = {}
    for stage, body in (data.get("stages") or {}).items():
        for kind in ("deps", "outs"):
            for entry in body.get(kind) or []:
                if "md5" in entry and entry["path"].startswith("data"):
                    hashes[f"{stage}:{entry['path']}"] = entry["md5"]
    return hashes


def run_context(paths: Paths) -> dict[str, Any]:
    """Tags every run carries: git commit, data source hashes."""
    tags: dict[str, Any] = {"git_commit": git_commit(paths.root)}
    for key, md5 in dvc_lock_hashes(paths.root).items():
        tags[re.sub(r"[^\w\-. :/]", "_", f"dvc.{key}")[:250]] = md5  # MLflow key alphabet
    return tags


def flatten(prefix: str, value: Any) -> dict[str, float]:
    """Nested metrics -> flat ``{"a.b.c": number}`` for mlflow.log_metrics (non-numbers dropped)."""
    out: dict[str, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
    elif isinstance(value, int | float):  # bool is an int too
        out[prefix] = float(value)
    return {k.replace("/", "_").replace(" ", "_")[:250]: v for k, v in out.items()}

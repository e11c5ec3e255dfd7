"""The ``narcotag`` command line. Each command parses its options and calls a library function."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from pipeline.config import Paths

app = typer.Typer(
    name="narcotag",
    add_completion=False,
    no_args_is_help=True,
    help=(
        "narcotag tags darknet-market listings and messenger ads with drug type, quantity, shipping origin "
        "and laundering hints (plus crypto addresses and contacts).\n\n"
        "Typical flow: `narcotag sample` (built-in demo data) -> `narcotag train` (dvc repro: clean, "
        "prepare, train, evaluate, export) -> `narcotag score SCRAPES... --out labelled.jsonl`."
    ),
)
console = Console(stderr=True)
PARAMS_OPTION = typer.Option("--params", help="The params file (typed and checked; see params.yaml).")


def _params(path: Path):  # type: ignore[no-untyped-def]
    from pipeline.params import load_params

    return load_params(path)


@app.command()
def sample(
    out: Annotated[Path | None, typer.Option(help="Project root to write data/raw/sample/ under.")] = None,
    params_file: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
) -> None:
    """Write the built-in sample scrapes (HTML pages, CSV, JSONL, Telegram exports, ~5% bad input) and
    their true labels into data/raw/sample/."""
    from pipeline import sample as sample_stage

    metrics = sample_stage.run(_params(params_file).sample, Paths(out or Path.cwd()))
    console.print(
        f"[green]sample written[/green] to {(out or Path.cwd()) / 'data/raw/sample'}: {json.dumps(metrics)}"
    )


@app.command()
def clean(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Files or folders to clean (CSV, JSONL(.gz), Parquet, HTML folders, Telegram "
            "result.json). Without paths, runs the `clean` stage on the sources in params.yaml."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output table (.parquet or .jsonl) when PATHS are given.")
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help="tabular | html | telegram (default: detected).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="Column preset for tabular files (default: guessed).")
    ] = None,
    params_file: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
) -> None:
    """Clean scrapes into one validated table; bad records go to a quarantine file with their reason."""
    from pipeline import clean as clean_stage

    params = _params(params_file)
    if not paths:
        report = clean_stage.run(params.clean, Paths(), params.data.source)
        _print_clean_report(report)
        return
    if out is None:
        raise typer.BadParameter("--out FILE is required when PATHS are given", param_hint="--out")
    specs = [
        clean_stage.SourceSpec(name=p.stem or p.name, path=str(p.resolve()), adapter=adapter, preset=preset)  # type: ignore[arg-type]
        for p in paths
    ]
    result = clean_stage.clean_sources(specs, params.clean.near_dup, Paths())
    written = clean_stage.write_table(result, out)
    _print_clean_report(result.report)
    console.print(
        f"records -> [bold]{out}[/bold]; quarantine -> [bold]{written['quarantine']}[/bold]; "
        f"report -> [bold]{written['report']}[/bold]"
    )


def _print_clean_report(report: dict) -> None:  # type: ignore[type-arg]
    table = Table(title="clean: every input record accounted for")
    for column in ("source", "read", "kept", "quarantined", "skipped", "top reasons"):
        table.add_column(column)
    for name, s in report["sources"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in list(s["quarantine_reasons"].items())[:3])
        table.add_row(
            name,
            str(s["read"]),
            str(s["kept"]),
            str(s["quarantined"]),
            ", ".join(f"{k} {v}" for k, v in s["skipped"].items()),
            reasons,
        )
    console.print(table)
    t = report["totals"]
    console.print(
        f"{t['read']} read = {t['kept']} kept + {t['quarantined']} quarantined; "
        f"{t['dup_groups']} duplicate groups; {report['records_per_second']:,} records/s"
    )


def _dvc() -> str:
    exe = Path(sys.executable).with_name("dvc")
    return str(exe) if exe.exists() else (shutil.which("dvc") or "dvc")


def dvc_command(overrides: list[str], name: str | None = None) -> list[str]:
    """`dvc repro`, or `dvc exp run --temp [-n NAME] -S k=v ...` when params are overridden."""
    if not overrides:
        return [_dvc(), "repro"]
    cmd = [_dvc(), "exp", "run", "--temp"] + (["--name", name] if name else [])
    for override in overrides:
        cmd += ["-S", override]
    return cmd


@app.command()
def train(
    set_param: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-S", help="Override a param, e.g. -S train.drug_type.C=4 (runs `dvc exp run`)."
        ),
    ] = None,
    shared: Annotated[
        bool, typer.Option(help="Train on ../shared/data/markets (data.source=shared).")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Experiment name (with --set).")] = None,
) -> None:
    """Run the pipeline with DVC: `dvc repro`, or `dvc exp run --temp -S ...` when params are overridden
    (the workspace's params.yaml stays as it is)."""
    overrides = list(set_param or []) + (["data.source=shared"] if shared else [])
    cmd = dvc_command(overrides, name)
    console.print("[bold]$ " + " ".join(cmd) + "[/bold]")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    raise typer.Exit(subprocess.run(cmd, env=env).returncode)


@app.command()
def evaluate(params_file: Annotated[Path, PARAMS_OPTION] = Path("params.yaml")) -> None:
    """Evaluate the trained heads (leave-one-market-out, in-market test, gold sets); writes reports/."""
    from pipeline import evaluate as evaluate_stage

    params = _params(params_file)
    result = evaluate_stage.run(params.evaluate, params.train, Paths(), params.data.source)
    _print_summary(result["summary"])
    console.print(f"full tables: [bold]reports/{params.data.source}/metrics.md[/bold]")


def _print_summary(summary: dict) -> None:  # type: ignore[type-arg]
    table = Table(title="narcotag evaluation")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, "-" if value is None else f"{value:.3f}")
    console.print(table)


@app.command()
def score(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Scrapes to score: files or folders in any supported format (CSV, JSONL(.gz), Parquet, "
            "HTML folders, Telegram result.json; a folder mixing them is split; a sample folder is read "
            "as its manifest says). With --engine spark: Parquet paths or URIs (hdfs://, s3a://)."
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            help="Output DIR (chunk files + manifest + quarantine), or FILE.parquet|.jsonl|.csv "
            "(assembled at the end; its chunks are kept in FILE.score/)."
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            help="models:/NAME@ALIAS or models:/NAME/VERSION (MLflow registry), or a folder of heads."
        ),
    ] = "models:/narcotag-tagger@champion",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="parquet | jsonl | csv (default: the FILE's suffix; parquet for a DIR)."
        ),
    ] = None,
    report: Annotated[
        bool, typer.Option("--report", help="Write a static HTML report of the batch.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="local (streaming, resumable) | spark (mlflow spark_udf on Parquet input).")
    ] = "local",
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (default: params score.workers; 0 = all cores).")
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option(help="Input items per chunk (default: params score.chunk_size).")
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Discard an earlier, different batch in --out instead of refusing."),
    ] = False,
    prior_sample: Annotated[
        int | None,
        typer.Option(
            help="Listings sampled from the batch to estimate each market's class mix, which its scores "
            "are adapted to (default: params score.prior_sample; 0 = score every record on its own)."
        ),
    ] = None,
    spark_master: Annotated[
        str, typer.Option(help="Spark master for --engine spark (local[2] here; a cluster URL there).")
    ] = "local[2]",
    adapter: Annotated[
        str | None, typer.Option(help="tabular | html | telegram (default: detected).")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="Column preset for tabular files (default: guessed).")
    ] = None,
    params_file: Annotated[Path, PARAMS_OPTION] = Path("params.yaml"),
) -> None:
    """Clean and tag scrapes with the trained model: labelled records (contract section 6), a quarantine
    file, and with --report an HTML report. Re-run the same command after a crash to continue."""
    from dataclasses import replace

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # our own progress bar only
    params = _params(params_file).score
    if chunk_size is not None:
        params = replace(params, chunk_size=chunk_size)
    if prior_sample is not None:
        params = replace(params, prior_sample=prior_sample)
    if engine == "spark":
        from pipeline.spark import score_spark

        result = score_spark(inputs, out, model, params=params, master=spark_master, report=report)
    elif engine == "local":
        from pipeline.score import score as score_batch

        result = score_batch(
            [Path(i) for i in inputs], Path(out), model, fmt=fmt, params=params, adapter=adapter,
            preset=preset, report=report, workers=workers, fresh=fresh, log=console.print,
        )  # fmt: skip
    else:
        raise typer.BadParameter("use local or spark", param_hint="--engine")
    console.print(
        f"[green]{result['read']} read = {result['scored']} scored + {result['quarantined']} "
        f"quarantined[/green] (accounting ok) with {result['model']['name']} "
        f"version {result['model']['version']}"
    )
    context = result.get("vendor_context") or {}
    if context:
        console.print(
            f"  vendor context ({context['vendors']} vendors): {context['listings_with_context']} listings "
            f"had it, {context['changed']} of them changed drug types ({context['filled']} filled in)"
        )
    for what, where in result["outputs"].items():
        console.print(f"  {what}: [bold]{where}[/bold]")


@app.command()
def summary() -> None:
    """Show where the last run's outputs are and the headline figures."""
    paths = Paths()
    export = paths.models / "export.json"
    dataset = json.loads(export.read_text()).get("data", "sample") if export.exists() else "sample"
    summary_file = paths.reports / dataset / "metrics" / "summary.json"
    if summary_file.exists():
        _print_summary(json.loads(summary_file.read_text()))
    if export.exists():
        info = json.loads(export.read_text())
        console.print(
            f"registered model: narcotag-tagger version {info.get('version')} "
            f"(champion moved: {info.get('promoted')}); "
            f"drug_type family: {info.get('drug_type_family', 'sklearn')}"
        )
    families_file = paths.reports / dataset / "families.json"
    if families_file.exists():
        console.print("drug_type families (mean leave-one-market-out macro-F1, single-process texts/s):")
        for name, c in sorted(
            json.loads(families_file.read_text()).items(), key=lambda kv: -(kv[1]["metric"] or 0)
        ):
            metric = "–" if c["metric"] is None else f"{c['metric']:.3f}"
            console.print(f"  {name:45s} {metric:>6s} {c['texts_per_second']:>10,.0f}/s")
    console.print("records: data/interim/records.parquet   quarantine: data/interim/quarantine.jsonl")
    console.print(
        f"metrics: reports/{dataset}/metrics.md, reports/{dataset}/families.md   "
        "MLflow UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db"
    )


# --- review: analysts check and correct labelled output (pipeline/review) ------------------------------


class _ReviewGroup(TyperGroup):
    """`narcotag review SCORED ...` serves the app; `narcotag review export|agreement|...` are subcommands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: typer's own click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


review_app = typer.Typer(
    cls=_ReviewGroup,
    no_args_is_help=True,
    help=(
        "Review a scored batch in a local web app (`narcotag review SCORED`), then export the decisions "
        "to data/labels/reviewed.jsonl for `prepare`, measure agreement, or go through Label Studio / a "
        "Hugging Face dataset. See docs/review.md."
    ),
)
app.add_typer(review_app, name="review")
REVIEW_DB_OPTION = typer.Option("--db", help="The review database (SQLite, WAL mode; decisions append-only).")


def _default_reviewer() -> str:
    import getpass
    import re

    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "analyst"
    return name if re.fullmatch(r"[\w.@ -]{1,64}", name) else "analyst"


@review_app.command("serve")
def review_serve(
    scored: Annotated[
        Path,
        typer.Argument(help="Scored batch: labelled records as .jsonl(.gz)/.parquet, or a score output DIR."),
    ],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback requires --token.")
    ] = "127.0.0.1",
    db: Annotated[Path, REVIEW_DB_OPTION] = Path("data/labels/review.db"),
    reviewer: Annotated[
        str | None, typer.Option(help="Default reviewer name (each browser can set its own).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="NARCOTAG_REVIEW_TOKEN",
            help="Token every request must carry (required off loopback); or env NARCOTAG_REVIEW_TOKEN.",
        ),
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option(help="Cleaned records to take text/date/price from when the batch lacks them."),
    ] = None,
    blind_sample: Annotated[
        float | None,
        typer.Option(help="Fraction of records a second reviewer reviews blind (e.g. 0.1); for agreement."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the blind sample.")] = 0,
) -> None:
    """Serve the review app over SCORED: queue lowest confidence first, highlighted evidence, keyboard
    review (j/k, a, 1-9, u). Decisions go to --db; `narcotag review export` writes reviewed.jsonl."""
    from pipeline.review.app import create_app, is_loopback, serve
    from pipeline.review.batch import BatchError
    from pipeline.review.storage import ReviewError, open_review

    if not is_loopback(host) and not token:
        raise typer.BadParameter(
            f"binding to {host} needs --token (every request must carry it)", param_hint="--token"
        )
    try:
        store, batch, counts = open_review(scored, db, records, blind_sample, seed)
    except (BatchError, ReviewError) as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e
    for note in batch.notes:
        console.print(f"[yellow]{note}[/yellow]")
    flask_app = create_app(
        store, batch.name, reviewer=reviewer or _default_reviewer(), host=host, token=token
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(
        f"[green]{counts['records']} records[/green] from {scored} in {db} "
        f"({counts['blind']} in the blind sample); search: {'FTS5' if store.fts else 'substring'}"
    )
    console.print(
        f"review at [bold]http://{shown}:{port}/[/bold]"
        + (" (open it once with ?token=... or send Authorization: Bearer)" if token else "")
        + "  - Ctrl+C to stop"
    )
    serve(flask_app, host, port)


@review_app.command("export")
def review_export(
    db: Annotated[Path, REVIEW_DB_OPTION] = Path("data/labels/review.db"),
    out: Annotated[Path, typer.Option(help="Reviewed labels (JSONL) that `prepare` merges.")] = Path(
        "data/labels/reviewed.jsonl"
    ),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT instead of merging into it.")
    ] = False,
) -> None:
    """Write the latest decision per record as JSONL (id, drug_types, quantity, ships_from, ships_to,
    laundering_hints, reviewer, reviewed_at, model_version, ...), merged into OUT by default."""
    from pipeline.review.export import export_reviewed
    from pipeline.review.storage import ReviewStore

    counts = export_reviewed(ReviewStore(db), out, merge=not overwrite)
    console.print(
        f"[green]{counts['exported']} reviewed record(s)[/green] ({counts['corrections']} corrected) + "
        f"{counts['kept']} kept from the file -> [bold]{out}[/bold] ({counts['written']} lines); "
        "`narcotag train` (dvc repro) retrains with them"
    )


@review_app.command("agreement")
def review_agreement(
    db: Annotated[Path, REVIEW_DB_OPTION] = Path("data/labels/review.db"),
    out: Annotated[Path, typer.Option(help="Report (.md; a .json goes beside it).")] = Path(
        "reports/review/agreement.md"
    ),
) -> None:
    """Cohen's kappa per head (drug types and hints per code, origin) over the blind double reviews."""
    from pipeline.review.agreement import write_agreement
    from pipeline.review.storage import ReviewStore

    report = write_agreement(ReviewStore(db), out)
    table = Table(title=f"review agreement: {report['pairs']} double-reviewed record(s)")
    for column in ("head", "code", "kappa", "agreement"):
        table.add_column(column, justify="right" if column in ("kappa", "agreement") else "left")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    heads = report["heads"]
    for head in ("drug_types", "laundering_hints"):
        table.add_row(
            head, "(whole set)", cell(heads[head]["set"]["kappa"]), cell(heads[head]["set"]["agreement"])
        )
        for code, v in heads[head]["per_code"].items():
            if v["positives"] != [0, 0]:
                table.add_row(head, code, cell(v["kappa"]), cell(v["agreement"]))
    for head in ("ships_from", "ships_to"):
        table.add_row(head, "(codes)", cell(heads[head]["kappa"]), cell(heads[head]["agreement"]))
    console.print(table)
    console.print(f"report -> [bold]{out.with_suffix('.md')}[/bold] and {out.with_suffix('.json')}")


@review_app.command("labelstudio-export")
def review_labelstudio_export(
    out: Annotated[Path, typer.Option(help="Label Studio tasks (JSON); the label config goes beside it.")],
    db: Annotated[Path, REVIEW_DB_OPTION] = Path("data/labels/review.db"),
    batch: Annotated[
        str | None, typer.Option(help="Only this batch (default: every record in --db).")
    ] = None,
    annotations: Annotated[
        bool, typer.Option("--annotations", help="Send the decisions in force along as annotations.")
    ] = False,
) -> None:
    """Export records as Label Studio tasks with the model's predictions (and evidence spans)."""
    from pipeline.review.labelstudio import export_tasks
    from pipeline.review.storage import ReviewStore

    counts = export_tasks(ReviewStore(db), out, batch=batch, annotations=annotations)
    console.print(
        f"[green]{counts['tasks']} task(s)[/green] -> [bold]{out}[/bold]; labelling config -> "
        f"{out.with_name(out.stem + '.label_config.xml')}"
    )


@review_app.command("labelstudio-import")
def review_labelstudio_import(
    tasks: Annotated[Path, typer.Argument(help="A Label Studio JSON export of the tasks.")],
    db: Annotated[Path, REVIEW_DB_OPTION] = Path("data/labels/review.db"),
) -> None:
    """Append Label Studio annotations to the review log as decisions (source label-studio)."""
    from pipeline.review.labelstudio import import_tasks
    from pipeline.review.storage import ReviewStore

    result = import_tasks(ReviewStore(db), tasks)
    console.print(f"[green]{result['imported']} annotation(s) imported[/green], {result['skipped']} skipped")
    for reason in result["reasons"]:
        console.print(f"  skipped: {reason}")


@review_app.command("hf-export")
def review_hf_export(
    out: Annotated[Path, typer.Option(help="Folder to save the `datasets` dataset to (load_from_disk).")],
    db: Annotated[Path, REVIEW_DB_OPTION] = Path("data/labels/review.db"),
) -> None:
    """Save the reviewed records (text + reviewed labels) as a Hugging Face `datasets` dataset."""
    from pipeline.review.export import export_hf_dataset
    from pipeline.review.storage import ReviewStore

    counts = export_hf_dataset(ReviewStore(db), out)
    console.print(f"[green]{counts['rows']} reviewed record(s)[/green] -> [bold]{out}[/bold]")


if __name__ == "__main__":
    app()

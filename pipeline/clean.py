"""DVC stage ``clean``: scrapes in any supported format -> one validated table of records.

Reads every configured source through its ingest adapter, normalises the text, identifies the language,
folds obfuscations, groups duplicates and validates each record. A record that fails goes to the
quarantine with its reason and provenance. For every source ``read = kept + quarantined`` holds, or the
stage fails loudly.

Outputs: ``data/interim/records.parquet``, ``data/interim/quarantine.jsonl``,
``data/interim/clean_report.json``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from pipeline.config import ParamsError, Paths
from pipeline.dedup import NearDupParams, group_duplicates
from pipeline.ingest import read_source
from pipeline.ingest.records import Provenance, RawRecord, Rejected, stable_id
from pipeline.progress import progress_bar
from pipeline.schema import RECORD_SCHEMA, validate_record
from pipeline.text import clean_text, compose_text, detect_languages, fold_obfuscation


class AccountingError(RuntimeError):
    """Some input record was neither kept nor quarantined: a bug, never to be ignored."""


@dataclass(frozen=True)
class SourceSpec:
    """One input: a file or folder, read by an adapter (guessed when omitted) with an optional preset."""

    name: str
    path: str
    adapter: Literal["tabular", "html", "telegram"] | None = None
    preset: str | None = None
    mapping: dict[str, str] | None = None


@dataclass(frozen=True)
class CleanParams:
    """Params section ``clean``: the sources of each dataset and the near-duplicate settings."""

    sources: dict[str, tuple[SourceSpec, ...]] = field(default_factory=dict)
    near_dup: NearDupParams = field(default_factory=NearDupParams)
    workers: int = 2  # processes that clean chunks in parallel (1 = in this process)


@dataclass
class SourceStats:
    """Per-source accounting for the clean report."""

    read: int = 0
    kept: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, int] = field(default_factory=dict)
    files: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "kept": self.kept,
            "quarantined": self.quarantined,
            "quarantine_reasons": dict(sorted(self.reasons.items())),
            "skipped": self.skipped,
            "files": self.files,
        }


@dataclass
class CleanResult:
    """What :func:`clean_sources` produced: the records table, the quarantine and the report."""

    table: pa.Table
    quarantine: list[dict[str, Any]]
    report: dict[str, Any]


def _quarantine_entry(item: Rejected, record_id: str | None = None) -> dict[str, Any]:
    return {
        "id": record_id,
        "source": item.source,
        "reason": item.reason,
        "detail": item.detail,
        "provenance": item.provenance.to_dict(),
        "raw_excerpt": item.raw_excerpt,
    }


def _record_row(record: RawRecord) -> dict[str, Any]:
    title = clean_text(record.title)
    body = clean_text(record.body)
    record_id = record.id or stable_id(record.source, record.native_key or record.provenance.locator)
    return {
        "id": record_id,
        "source": record.source,
        "kind": record.kind,
        "market": record.market,
        "vendor": record.vendor,
        "title": title or None,
        "body": body or None,
        "price": record.price,
        "currency": record.currency.upper() if record.currency else None,
        "ships_from_raw": clean_text(record.ships_from_raw) or None,
        "ships_to_raw": clean_text(record.ships_to_raw) or None,
        "category_raw": record.category_raw,
        "posted_at": record.posted_at,
        "text": compose_text(title, body),
        "extra": json.dumps(record.extra, ensure_ascii=False, default=str) if record.extra else None,
        "prov_file": record.provenance.file,
        "prov_locator": record.provenance.locator,
        "prov_adapter": record.provenance.adapter,
    }


def _clean_chunk(records: list[RawRecord]) -> list[tuple[dict[str, Any], str | None]]:
    """Build, validate and annotate (language, folded text) the rows of a chunk of raw records.

    Pure and picklable, so chunks can run in worker processes; returns ``(row, reason)`` per record in
    input order, where ``reason`` is None for a valid row.
    """
    results: list[tuple[dict[str, Any], str | None]] = []
    for record in records:
        try:
            row = _record_row(record)
            results.append((row, validate_record(row)))
        except Exception as e:  # noqa: BLE001 - one odd record must not stop the batch; it is quarantined
            results.append(({"id": record.id}, f"clean_error:{type(e).__name__}"))
    valid = [row for row, reason in results if reason is None]
    for row, lang in zip(valid, detect_languages([r["text"] for r in valid]), strict=True):
        row["lang"] = lang
        row["text_folded"] = fold_obfuscation(row["text"])
    return results


def chunked(items: Iterable[RawRecord | Rejected], size: int) -> Iterator[list[RawRecord | Rejected]]:
    """Consecutive lists of ``size`` items (the last may be shorter), without reading ahead."""
    chunk: list[RawRecord | Rejected] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def clean_records(
    items: Iterable[RawRecord | Rejected],
    near_dup: NearDupParams,
    stats: dict[str, SourceStats] | None = None,
    workers: int = 1,
    chunk_size: int = 20_000,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Clean and validate raw records; return ``(rows, quarantine)``. Updates ``stats`` per source.

    Rows come back with ``lang``, ``text_folded``, ``dup_group`` and ``is_representative`` filled. With
    ``workers > 1`` chunks are cleaned in a process pool; results are merged in input order, so the output
    is the same as with one worker.
    """
    stats = stats if stats is not None else {}
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    seen_ids: set[str] = set()

    def merge(chunk: list[RawRecord | Rejected], cleaned: list[tuple[dict[str, Any], str | None]]) -> None:
        results = iter(cleaned)
        for item in chunk:
            source_stats = stats.setdefault(item.source, SourceStats())
            source_stats.read += 1
            if isinstance(item, Rejected):
                quarantine.append(_quarantine_entry(item))
                source_stats.quarantined += 1
                source_stats.reasons[item.reason] += 1
                continue
            row, reason = next(results)
            if reason is None and row["id"] in seen_ids:
                reason = "duplicate_id"
            if reason is not None:
                excerpt = item.title or item.body or ""
                rejected = Rejected(item.source, reason, item.provenance, detail=reason, raw_excerpt=excerpt)
                quarantine.append(_quarantine_entry(rejected, row.get("id")))
                source_stats.quarantined += 1
                source_stats.reasons[reason] += 1
                continue
            seen_ids.add(row["id"])
            rows.append(row)
            source_stats.kept += 1

    def records_of(chunk: list[RawRecord | Rejected]) -> list[RawRecord]:
        return [item for item in chunk if isinstance(item, RawRecord)]

    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # forkserver: workers never inherit this process's threads (lingua's pool, MLflow, a test runner),
        # whose locks a plain fork can copy in a held state
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending: list[tuple[list[RawRecord | Rejected], Any]] = []
            for chunk in chunked(items, chunk_size):
                pending.append((chunk, pool.submit(_clean_chunk, records_of(chunk))))
                while len(pending) > workers * 2:  # bounded memory: merge the oldest before reading on
                    done_chunk, future = pending.pop(0)
                    merge(done_chunk, future.result())
            for done_chunk, future in pending:
                merge(done_chunk, future.result())
    else:
        for chunk in chunked(items, chunk_size):
            merge(chunk, _clean_chunk(records_of(chunk)))

    groups, representative = group_duplicates([r["id"] for r in rows], [r["text"] for r in rows], near_dup)
    for row, group, is_rep in zip(rows, groups, representative, strict=True):
        row["dup_group"] = group
        row["is_representative"] = is_rep
    return rows, quarantine


def clean_frame(frame: pd.DataFrame, source: str = "api") -> tuple[pd.DataFrame, dict[int, str]]:
    """Clean a DataFrame in the generic listing format the way the clean stage cleans files.

    Returns the cleaned records (schema :data:`RECORD_SCHEMA`, input order, rejected rows left out) and
    ``{row position: reason}`` for the rows that were rejected. Used by the pyfunc model and the API.
    """
    from pipeline.ingest.tabular import RowMapper, get_preset

    mapper = RowMapper(get_preset("generic"), source)
    items = []
    for position, row in enumerate(frame.to_dict(orient="records")):
        row = {k: v for k, v in row.items() if v is not None and v == v}  # NaN from pandas is "absent"
        items.append(mapper.map(row, "<dataframe>", f"row {position}", f"row:{position}"))
    rows, quarantine = clean_records(items, NearDupParams(enabled=False))
    rejected = {int(q["provenance"]["locator"].split()[-1]): q["reason"] for q in quarantine}
    table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    return table.to_pandas(), rejected


def check_accounting(stats: dict[str, SourceStats]) -> None:
    """Raise :class:`AccountingError` unless read = kept + quarantined for every source."""
    broken = {n: s.to_dict() for n, s in stats.items() if s.read != s.kept + s.quarantined}
    if broken:
        raise AccountingError(f"records lost or double-counted: {broken}")


def _read_all(specs: Iterable[SourceSpec], paths: Paths, stats: dict[str, SourceStats]) -> Iterator[Any]:
    for spec in specs:
        path = paths.resolve(spec.path)
        stats.setdefault(spec.name, SourceStats())
        if not path.exists():
            # a missing input is reported like an unreadable file: the stage goes on with the rest
            yield Rejected(
                spec.name, "missing_path", Provenance(str(path), "file", spec.adapter or "?"), str(path)
            )
            continue
        reader = read_source(path, spec.name, adapter=spec.adapter, preset=spec.preset, mapping=spec.mapping)
        yield from progress_bar(reader, description=f"clean {spec.name}")
        stats[spec.name].skipped = dict(reader.skipped)
        stats[spec.name].files = len(reader.files)


def clean_sources(
    specs: Iterable[SourceSpec], near_dup: NearDupParams, paths: Paths, workers: int = 1
) -> CleanResult:
    """Read, clean, deduplicate and validate all ``specs``; the table follows :data:`RECORD_SCHEMA`."""
    started = time.perf_counter()
    stats: dict[str, SourceStats] = {}
    rows, quarantine = clean_records(_read_all(specs, paths, stats), near_dup, stats, workers=workers)
    check_accounting(stats)
    table = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
    seconds = time.perf_counter() - started
    read = sum(s.read for s in stats.values())
    report = {
        "sources": {name: s.to_dict() for name, s in stats.items()},
        "totals": {
            "read": read,
            "kept": len(rows),
            "quarantined": len(quarantine),
            "dup_groups": len({r["dup_group"] for r in rows}),
            "representatives": sum(r["is_representative"] for r in rows),
        },
        "quarantine_reasons": dict(Counter(q["reason"] for q in quarantine).most_common()),
        "languages": dict(Counter(r["lang"] for r in rows).most_common()),
        "accounting_ok": True,
        "seconds": round(seconds, 3),
        "records_per_second": round(read / seconds, 1) if seconds else None,
    }
    return CleanResult(table, quarantine, report)


def write_outputs(result: CleanResult, out_dir: Path) -> None:
    """Write records.parquet, quarantine.jsonl and clean_report.json into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(result.table, out_dir / "records.parquet", compression="zstd")
    with open(out_dir / "quarantine.jsonl", "w", encoding="utf-8") as f:
        for entry in result.quarantine:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    (out_dir / "clean_report.json").write_text(json.dumps(result.report, indent=2, ensure_ascii=False) + "\n")


def write_table(result: CleanResult, out: Path) -> dict[str, Path]:
    """Write the records to ``out`` (.parquet, or .jsonl) with the quarantine and report beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        with open(out, "w", encoding="utf-8") as f:
            for row in result.table.to_pylist():
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        pq.write_table(result.table, out, compression="zstd")
    stem = out.with_suffix("")
    quarantine, report = Path(f"{stem}.quarantine.jsonl"), Path(f"{stem}.clean_report.json")
    with open(quarantine, "w", encoding="utf-8") as f:
        for entry in result.quarantine:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    report.write_text(json.dumps(result.report, indent=2, ensure_ascii=False) + "\n")
    return {"records": out, "quarantine": quarantine, "report": report}


def run(params: CleanParams, paths: Paths, dataset: str = "sample") -> dict[str, Any]:
    """The stage: clean the sources of ``dataset`` into ``data/interim``; returns the report."""
    if dataset not in params.sources:
        raise ParamsError(f"clean.sources has no dataset {dataset!r}; known: {sorted(params.sources)}")
    if dataset == "shared" and not (paths.shared / "data" / "markets").is_dir():
        raise FileNotFoundError(
            f"{paths.shared / 'data' / 'markets'} is missing: the shared corpus is not here. "
            "Set `data.source: sample` in params.yaml to run on the built-in sample."
        )
    result = clean_sources(params.sources[dataset], params.near_dup, paths, workers=params.workers)
    write_outputs(result, paths.interim)
    return result.report


app = typer.Typer(add_completion=False, help="DVC stage `clean`: scrapes -> data/interim/records.parquet.")


@app.command()
def main(params_file: Path = typer.Option(Path("params.yaml"), help="The params file to read.")) -> None:
    """Run the clean stage with the params in PARAMS_FILE."""
    from pipeline.params import load_params

    params = load_params(params_file)
    report = run(params.clean, Paths(), params.data.source)
    typer.echo(json.dumps(report["totals"]))


if __name__ == "__main__":
    app()

"""Batch scoring: scrapes in any supported format -> labelled records (contract section 6), at scale.

``narcotag score INPUT... --model models:/narcotag-tagger@champion | PATH --out DIR|FILE``

- **Same path as training.** Inputs are read by the ingest adapters (:func:`pipeline.ingest.read_source`)
  and cleaned by :func:`pipeline.clean.clean_records`; the one :class:`~pipeline.tagger.Tagger` labels
  them. Near-duplicate grouping is a training concern and is off here.
- **Streaming, bounded memory.** The readers are iterated; every ``chunk_size`` input items form a chunk
  that is cleaned, tagged and written on its own (by a pool of worker processes, each holding the Tagger
  once). At most ``workers + 1`` chunks are in flight, whatever the input size.
- **Resumable and idempotent.** Each chunk is written atomically as ``parts/part-NNNNN.<format>`` (+ its
  quarantine and statistics), then recorded in ``manifest.json``. Chunk boundaries depend on the input
  only, so after a crash (even ``kill -9``) the same command re-reads the input, skips the chunks the
  manifest lists and scores the rest: no record twice, none missing. A finished batch re-run is a no-op.
- **Accounting.** At the end ``read = scored + quarantined`` is checked per source and overall.
- **Each market's class mix.** Before the chunks, a first pass reads the input, samples up to
  ``prior_sample`` of its listings and estimates, per market, the mix of drug types it sells (EM on the
  drug_type model's own scores, :mod:`pipeline.heads.prior_shift`); every record of that market is then
  scored with the shift. The shifts are kept in the manifest (a resumed batch uses the same ones) and the
  estimated mixes in ``summary.json``. A record's labels thus depend on its market's records in the batch,
  never on its position or chunk; ``prior_sample: 0`` or ``train.drug_type.prior_adaptation: 0`` turns
  this off.
- **Each vendor's other listings.** With ``train.drug_type.vendor_shift`` or ``vendor_fill_share`` on, the
  chunks are tagged into ``pre-parts/`` (Parquet) and a second pass decides their drug types with the
  context of each vendor's other listings in the batch (:mod:`pipeline.heads.vendor_context`): it reads the
  vendor and score columns of every pre-part to build the profiles, then re-decides each chunk, writes its
  part and statistics and drops the pre-parts. A listing's record says what the context did
  (``vendor_context``: the vendor's other claimed listings, whether the scores were shifted, whether the code
  was filled in from the vendor's); ``drug_type_scores`` stay the listing's own. Resumable like the chunks.
- **Derived analytics.** Price in USD, per gram and per unit, from the dated rate table in params
  (``score.usd_rates``, ``score.rates_date``).

Output layout (``DIR``; a ``FILE`` output keeps the same layout in ``FILE.score/`` and assembles the parts
into ``FILE`` at the end, with ``<stem>.quarantine.jsonl`` and ``<stem>.report.html`` beside it)::

    DIR/manifest.json          batch fingerprint + finished chunks (the resume state)
    DIR/parts/part-00000.parquet   labelled records, chunk by chunk, in input order
    DIR/quarantine.jsonl       every input record that was not scored: reason + provenance
    DIR/summary.json           accounting, model, timing
    DIR/report.html            with --report (pipeline/report.py)
"""

from __future__ import annotations

import csv
import functools
import gc
import gzip
import hashlib
import heapq
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.clean import AccountingError, SourceSpec, SourceStats, chunked, clean_records
from pipeline.config import Paths
from pipeline.dedup import NearDupParams
from pipeline.heads.vendor_context import VendorContextRule, VendorProfiles, vendor_keys
from pipeline.ingest import detect_adapter, read_source
from pipeline.ingest.records import Provenance, RawRecord, Rejected, list_files, stable_id
from pipeline.ingest.tabular import SUFFIXES as TABULAR_SUFFIXES
from pipeline.progress import make_progress
from pipeline.schema import RECORD_SCHEMA
from pipeline.tagger import (
    MODEL_NAME,
    Tagger,
    decision_confidences,
    models_fingerprint,
    prior_group_key,
    to_json_line,
)
from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, QUANTITY_FIELDS
from pipeline.text import share_language_models

#: Bump when the output layout or record schema changes: a batch from another layout is never resumed.
LAYOUT_VERSION = 1
DEFAULT_MODEL = "models:/narcotag-tagger@champion"
FORMATS: tuple[str, ...] = ("parquet", "jsonl", "csv")
Format = Literal["parquet", "jsonl", "csv"]

# Approximate mid-2025 reference rates (USD per unit of currency). Replace them with the rates of the
# scrape's date: a 2014 price in BTC converted at a 2025 rate is off by two orders of magnitude.
_DEFAULT_USD_RATES: dict[str, float] = {
    "USD": 1.0,
    "EUR": 1.17,
    "GBP": 1.37,
    "CHF": 1.25,
    "CAD": 0.73,
    "AUD": 0.65,
    "SEK": 0.105,
    "NOK": 0.099,
    "DKK": 0.157,
    "PLN": 0.275,
    "CZK": 0.047,
    "RUB": 0.0127,
    "UAH": 0.024,
    "BTC": 107000.0,
    "XMR": 320.0,
    "LTC": 86.0,
    "ETH": 2500.0,
    "USDT": 1.0,
}


@dataclass(frozen=True)
class ScoreParams:
    """Params section ``score``: chunking, parallelism, currency rates and the report."""

    chunk_size: int = 10_000  # input items per chunk: the unit of work, of output files and of resume
    workers: int = 0  # worker processes; 0 = one per CPU core (1 = score in this process)
    rates_date: str = "2025-06-30"  # the date the rate table is valid for (written into every record)
    usd_rates: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_USD_RATES))
    report_lowest: int = 40  # lowest-confidence items listed in the report
    # listings sampled (uniformly, from the whole batch) to estimate each market's class mix; 0 = no prior
    # adaptation (see the module docstring)
    prior_sample: int = 20_000

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("score.chunk_size must be >= 1")
        if self.prior_sample < 0:
            raise ValueError("score.prior_sample must be >= 0")
        if self.workers < 0:
            raise ValueError("score.workers must be >= 0")
        bad = [k for k, v in self.usd_rates.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(f"score.usd_rates: rates must be positive numbers; check {bad}")


# --- the model ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the folder of trained heads and the name/version written into every record.

    ``location`` is the logged MLflow model's artifact URI (None for a plain folder of heads).
    """

    uri: str
    models_dir: Path
    name: str
    version: str
    location: str | None = None


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, None, alias); ``models:/name/3`` -> (name, "3", None);
    ``models:/m-<id>`` (a logged model, no registry) -> (id, None, None)."""
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return name, None, alias
    name, _, version = rest.rpartition("/")
    if not name:
        return rest, None, None
    return name, version, None


def resolve_model(model: str | Path, paths: Paths | None = None) -> ModelRef:
    """Resolve ``--model``: a ``models:/`` URI through the MLflow registry, or a folder of trained heads.

    The registry is the one of ``MLFLOW_TRACKING_URI`` (``MLFLOW_REGISTRY_URI``), by default the project's
    ``sqlite:///<cwd>/mlflow.db``. The logged model's ``models`` artifact folder is loaded (read in place
    from a local store, downloaded from a remote one) and the registry version becomes the records' model
    version. MLflow's global tracking settings are left as they are.
    """
    text = str(model)
    if not text.startswith("models:/"):
        folder = Path(text)
        if not folder.is_dir():
            raise FileNotFoundError(f"--model {text}: no such folder of trained heads (or use models:/...)")
        return ModelRef(text, folder.resolve(), MODEL_NAME, models_fingerprint(folder))

    import mlflow
    import yaml
    from mlflow import MlflowClient

    from pipeline import tracking

    tracking_uri = tracking.tracking_uri(paths or Paths())
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    name, version, alias = parse_models_uri(text)
    model_id = name
    if alias is not None or version is not None:
        try:
            found = (
                client.get_model_version_by_alias(name, alias)
                if alias is not None
                else client.get_model_version(name, str(version))
            )
        except Exception as e:  # noqa: BLE001 - MLflow raises its generic exception for "not found"
            raise FileNotFoundError(
                f"{text} is not in the registry at {registry_uri} ({type(e).__name__}: {e}). "
                "Run `narcotag train` (dvc repro registers the model), or pass --model models/ (a folder)."
            ) from e
        version = str(found.version)
        model_id = getattr(found, "model_id", None) or str(found.source).removeprefix("models:/")
    try:
        location = client.get_logged_model(model_id).artifact_location
    except Exception:  # noqa: BLE001 - an older registry entry points at a run's artifacts instead
        location = client.get_model_version_download_uri(name, str(version))
    mlmodel = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location}/MLmodel", tracking_uri=tracking_uri, registry_uri=registry_uri
        )
    )
    meta = yaml.safe_load(mlmodel.read_text())
    artifacts = meta.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    relative = artifacts.get("models", {}).get("path", "artifacts/models")
    local = mlmodel.parent / relative
    if not local.is_dir():  # a remote store: download the heads (a local store is read in place)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{location}/{relative}", tracking_uri=tracking_uri, registry_uri=registry_uri
            )
        )
    return ModelRef(text, local.resolve(), name, version or model_id, location)


# --- inputs ------------------------------------------------------------------------------------------

_HTML_SUFFIXES = (".html", ".htm", ".xhtml")


def _file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_HTML_SUFFIXES):
        return "html"
    if name == "result.json":
        return "telegram"
    if name.endswith(TABULAR_SUFFIXES):
        return "tabular"
    return "other"


def _sample_manifest_sources(folder: Path) -> list[SourceSpec] | None:
    """The sources of a narcotag sample folder, from its manifest (same adapters and presets as training)."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("generator") != "pipeline.sample" or not data.get("sources"):
        return None
    declared = [Path(s["path"]) for s in data["sources"]]
    prefix = Path(os.path.commonpath([str(p) for p in declared]))
    if any(p == prefix for p in declared):  # a single source: its parent is the sample folder
        prefix = prefix.parent
    specs = [
        SourceSpec(
            name=s["name"],
            path=str((folder / Path(s["path"]).relative_to(prefix)).resolve()),
            adapter=s.get("adapter"),
            preset=s.get("preset"),
        )
        for s in data["sources"]
    ]
    return specs if all(Path(s.path).exists() for s in specs) else None


def expand_inputs(
    inputs: Iterable[Path], adapter: str | None = None, preset: str | None = None
) -> list[SourceSpec]:
    """One :class:`SourceSpec` per input, splitting mixed folders.

    A file is one source. A folder of one kind (HTML pages, Telegram exports, tabular files) is one
    source. A narcotag sample folder (``manifest.json`` from ``narcotag sample``) gives the sources its
    manifest lists, with their adapters and presets. Any other folder mixing kinds is split into its
    entries. ``adapter``/``preset`` given on the command line apply to every input as is.
    """
    specs: list[SourceSpec] = []

    def add(path: Path) -> None:
        if adapter is not None or not path.is_dir():
            specs.append(SourceSpec(_source_name(path), str(path.resolve()), adapter, preset))  # type: ignore[arg-type]
            return
        from_manifest = _sample_manifest_sources(path)
        if from_manifest is not None:
            specs.extend(from_manifest)
            return
        files = [p for p in path.rglob("*") if p.is_file() and not _hidden(p, path)]
        kinds = {_file_kind(p) for p in files} - {"other"}
        if len(kinds) <= 1 or kinds == {"telegram"}:
            specs.append(SourceSpec(_source_name(path), str(path.resolve()), None, preset))
            return
        for child in sorted(path.iterdir()):
            if not child.name.startswith(".") and (child.is_dir() or _file_kind(child) != "other"):
                add(child)

    for p in inputs:
        add(Path(p))
    names = Counter(s.name for s in specs)
    if any(n > 1 for n in names.values()):  # two inputs named alike: keep source names (and ids) apart
        seen: Counter[str] = Counter()
        unique = []
        for s in specs:
            seen[s.name] += 1
            name = s.name if names[s.name] == 1 else f"{s.name}_{seen[s.name]}"
            unique.append(SourceSpec(name, s.path, s.adapter, s.preset, s.mapping))
        specs = unique
    return specs


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _source_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(TABULAR_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return path.stem or name


def _count_lines(path: Path) -> int:
    opener: Callable[..., Any] = gzip.open if path.name.lower().endswith(".gz") else open
    n, last = 0, b"\n"
    with opener(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def estimate_records(specs: Iterable[SourceSpec]) -> int | None:
    """About how many records the inputs hold (for the progress bar's ETA); None when unknown."""
    total = 0
    for spec in specs:
        path = Path(spec.path)
        if not path.exists():
            total += 1
            continue
        kind = spec.adapter or detect_adapter(path)
        if kind == "html":
            total += len(list_files(path, _HTML_SUFFIXES)) if path.is_dir() else 1
            continue
        if kind != "tabular":
            return None  # a Telegram export: counting means parsing it
        for file in list_files(path, TABULAR_SUFFIXES) if path.is_dir() else [path]:
            name = file.name.lower()
            try:
                if name.endswith((".parquet", ".pq")):
                    total += pq.ParquetFile(file).metadata.num_rows
                elif name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
                    total += _count_lines(file)
                elif name.endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
                    total += max(_count_lines(file) - 1, 0)
                else:
                    return None
            except (OSError, EOFError, pa.ArrowException, ValueError):
                total += 1
    return total


def inputs_fingerprint(specs: Iterable[SourceSpec]) -> str:
    """A digest of the inputs: every file's path, size and modification time, with adapter and preset."""
    digest = hashlib.blake2b(digest_size=12)
    for spec in specs:
        digest.update(json.dumps([spec.name, spec.path, spec.adapter, spec.preset]).encode())
        path = Path(spec.path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                st = f.stat()
                digest.update(f"{f}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{f}\x1fmissing\n".encode())
    return digest.hexdigest()


def read_items(specs: list[SourceSpec], counts: dict[str, SourceStats]) -> Iterator[RawRecord | Rejected]:
    """Every input item of every source, in order; ``counts`` gets read/skipped/files per source."""
    for spec in specs:
        stats = counts.setdefault(spec.name, SourceStats())
        path = Path(spec.path)
        if not path.exists():  # reported like the clean stage does: one quarantined item
            stats.read += 1
            yield Rejected(
                spec.name, "missing_path", Provenance(str(path), "file", spec.adapter or "?"), str(path)
            )
            continue
        reader = read_source(path, spec.name, adapter=spec.adapter, preset=spec.preset, mapping=spec.mapping)
        for item in reader:
            stats.read += 1
            yield item
        stats.skipped = dict(reader.skipped)
        stats.files = len(reader.files)


def record_id(item: RawRecord) -> str:
    """The id the clean stage gives a raw record (the input's own, or a stable one)."""
    return item.id or stable_id(item.source, item.native_key or item.provenance.locator)


class SeenIds:
    """Ids of earlier chunks, as sorted 64-bit hashes (8 bytes per record), to catch duplicates across
    chunks; duplicates inside a chunk are the clean stage's business."""

    def __init__(self) -> None:
        self.hashes = np.empty(0, dtype=np.uint64)

    @staticmethod
    def hash(ids: list[str]) -> np.ndarray:
        return np.array(
            [int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in ids],
            dtype=np.uint64,
        )

    def seen(self, hashes: np.ndarray) -> np.ndarray:
        if not len(self.hashes) or not len(hashes):
            return np.zeros(len(hashes), dtype=bool)
        at = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        return self.hashes[at] == hashes

    def add(self, hashes: np.ndarray) -> None:
        # two sorted runs: the stable sort (timsort) merges them in linear time
        self.hashes = np.sort(np.concatenate([self.hashes, np.sort(hashes)]), kind="stable")


# --- derived analytics -------------------------------------------------------------------------------


def price_analytics(
    price: float | None, currency: str | None, quantity: dict[str, Any], params: ScoreParams
) -> dict[str, Any]:
    """Price in USD, per gram (``quantity.total_grams``) and per unit (``quantity.units``), where the
    price, its currency's rate and the quantity allow; the rate table's date goes with them."""
    usd = per_gram = per_unit = None
    rate = params.usd_rates.get((currency or "").upper())
    if price is not None and rate is not None and math.isfinite(price) and price >= 0:
        usd = round(float(price) * rate, 4)
        grams, units = quantity.get("total_grams"), quantity.get("units")
        if usd > 0 and grams:
            per_gram = round(usd / float(grams), 4)
        if usd > 0 and units:
            per_unit = round(usd / float(units), 4)
    return {
        "price_usd": usd,
        "usd_per_gram": per_gram,
        "usd_per_unit": per_unit,
        "rates_date": params.rates_date,
    }


# --- output records and their schema -------------------------------------------------------------------


def _struct(fields: Iterable[tuple[str, pa.DataType]]) -> pa.StructType:
    return pa.struct([pa.field(n, t) for n, t in fields])


_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
_SPAN = [("text", _S), ("start", _I), ("end", _I)]
_NESTED: dict[str, pa.StructType] = {
    "quantities": _struct(
        [
            *_SPAN,
            ("kind", _S),
            ("value", _F),
            ("unit", _S),
            ("role", _S),
            ("primary", _B),
            ("multiplier", _F),
            ("per_ml", _F),
        ]
    ),  # fmt: skip
    "crypto_addresses": _struct(
        [("currency", _S), ("address", _S), ("valid", _B), ("start", _I), ("end", _I)]
    ),
    "contacts": _struct([("platform", _S), ("handle", _S), ("start", _I), ("end", _I)]),
    "evidence.drug_type": _struct([*_SPAN, ("code", _S)]),
    "evidence.origin": _struct([*_SPAN, ("code", _S), ("role", _S)]),
    "evidence.laundering": _struct([*_SPAN, ("code", _S)]),
    # messenger ads only (pipeline/heads/ad_detector.py): cue hits, +1 offer / -1 not an offer
    "evidence.ad_detector": _struct([*_SPAN, ("cue", _S), ("polarity", _I)]),
}

#: The labelled-record schema of the Parquet output (contract section 6 plus the added fields).
LABELLED_SCHEMA = pa.schema(
    [
        pa.field("id", _S, nullable=False),
        ("source", _S),
        ("kind", _S),
        ("market", _S),
        ("vendor", _S),
        ("lang", _S),
        ("posted_at", _S),
        ("drug_types", pa.list_(_S)),
        ("drug_type_scores", _struct((c, _F) for c in DRUG_TYPES)),
        ("quantity", _struct((q, _F) for q in QUANTITY_FIELDS)),
        ("quantities", pa.list_(_NESTED["quantities"])),
        ("ships_from", pa.list_(_S)),
        ("ships_to", pa.list_(_S)),
        ("laundering_hints", pa.list_(_S)),
        ("laundering_scores", _struct((h, _F) for h in LAUNDERING_HINTS)),
        ("crypto_addresses", pa.list_(_NESTED["crypto_addresses"])),
        ("contacts", pa.list_(_NESTED["contacts"])),
        (
            "evidence",
            _struct(
                (k, pa.list_(_NESTED[f"evidence.{k}"]))
                for k in ("drug_type", "origin", "laundering", "ad_detector")
            ),
        ),
        ("confidence", _F),
        # listings whose vendor's other listings gave context (pipeline/heads/vendor_context.py); else null
        ("vendor_context", _struct([("listings", _I), ("shifted", _B), ("filled", _B)])),
        # messenger ads only: the ad detector's decision (null for listings)
        ("is_offer", _B),
        ("offer_score", _F),
        ("model", _struct([("name", _S), ("version", _S)])),
        ("provenance", _struct([("file", _S), ("locator", _S), ("adapter", _S)])),
        ("title", _S),
        ("text", _S),
        ("price", _F),
        ("currency", _S),
        (
            "analytics",
            _struct(
                [
                    ("price_usd", _F),
                    ("usd_per_gram", _F),
                    ("usd_per_unit", _F),
                    ("rates_date", _S),
                ]
            ),  # fmt: skip
        ),
    ]
)
_TOP_FIELDS = frozenset(LABELLED_SCHEMA.names)
#: CSV columns: the record without its free text (title, text). A spreadsheet row is no place for a page
#: of listing text, and readers that take any cell starting with "[" or "{" for JSON would misread it.
CSV_COLUMNS: tuple[str, ...] = tuple(n for n in LABELLED_SCHEMA.names if n not in ("title", "text"))
_NESTED_FIELDS = {k: frozenset(t.names) for k, t in _NESTED.items()}


class SchemaDrift(RuntimeError):
    """A head emitted a field the Parquet schema does not know: writing it would silently drop it."""


def check_fields(records: list[dict[str, Any]]) -> None:
    """Raise :class:`SchemaDrift` when a record carries a field :data:`LABELLED_SCHEMA` lacks."""
    for record in records:
        extra = record.keys() - _TOP_FIELDS
        if extra:
            raise SchemaDrift(f"labelled records gained fields {sorted(extra)}: add them to LABELLED_SCHEMA")
        for key in ("quantities", "crypto_addresses", "contacts"):
            for item in record[key]:
                if not item.keys() <= _NESTED_FIELDS[key]:
                    raise SchemaDrift(f"{key} entries gained {sorted(item.keys() - _NESTED_FIELDS[key])}")
        for key, items in record["evidence"].items():
            for item in items:
                known = _NESTED_FIELDS.get(f"evidence.{key}", frozenset())
                if not item.keys() <= known:
                    raise SchemaDrift(f"evidence.{key} entries gained {sorted(item.keys() - known)}")


def labelled_records(
    tagger: Tagger, frame: Any, params: ScoreParams, prior_shifts: dict[str, list[float]] | None = None
) -> list[dict[str, Any]]:
    """Tag cleaned records (with their markets' ``prior_shifts``) and add what scoring adds: the text the
    spans index into, title, date, price and the price analytics."""
    records = tagger.tag(frame, prior_shifts=prior_shifts)
    columns = zip(
        frame["title"].tolist(),
        frame["text"].tolist(),
        frame["posted_at"].tolist(),
        frame["price"].tolist(),
        frame["currency"].tolist(),
        strict=True,
    )
    for record, (title, text, posted_at, price, currency) in zip(records, columns, strict=True):
        price = None if price is None or price != price else float(price)  # NaN from pandas is "absent"
        record["posted_at"] = posted_at
        record["title"] = title
        record["text"] = text
        record["price"] = price
        record["currency"] = currency
        record["analytics"] = price_analytics(price, currency, record["quantity"], params)
    return records


def _csv_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=_plain)
    return "" if value is None else value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_records(records: list[dict[str, Any]], path: Path, fmt: str) -> None:
    """Write labelled records to ``path`` in ``fmt`` (CSV: nested fields as JSON text, no free text)."""
    if fmt == "parquet":
        check_fields(records)
        pq.write_table(pa.Table.from_pylist(records, schema=LABELLED_SCHEMA), path, compression="zstd")
    elif fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(to_json_line(r) + "\n" for r in records)
    elif fmt == "csv":
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            writer.writerows([_csv_value(r.get(k)) for k in CSV_COLUMNS] for r in records)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    def write(p: Path) -> None:
        p.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    _atomic_write(path, write)


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    def write(p: Path) -> None:
        with open(p, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False, default=_plain) + "\n" for r in rows)

    _atomic_write(path, write)


# --- per-chunk statistics for the report ---------------------------------------------------------------


def chunk_stats(
    records: list[dict[str, Any]], quarantine: list[dict[str, Any]], lowest: int
) -> dict[str, Any]:
    """What the batch report needs from one chunk (merged by :mod:`pipeline.report`)."""
    drug_origin: Counter[str] = Counter()
    hints: Counter[str] = Counter()
    currencies: Counter[str] = Counter()
    platforms: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    per_gram: dict[str, list[float]] = {}
    per_unit: dict[str, list[float]] = {}
    with_hint = 0
    for r in records:
        origins = r["ships_from"] or ["unknown"]
        for code in r["drug_types"]:
            for origin in origins:
                drug_origin[f"{code}|{origin}"] += 1
        hints.update(r["laundering_hints"])
        with_hint += bool(r["laundering_hints"])
        currencies.update(a["currency"] for a in r["crypto_addresses"])
        platforms.update(c["platform"] for c in r["contacts"])
        kinds[r["kind"] or "?"] += 1
        langs[r["lang"] or "und"] += 1
        sources[r["source"] or "?"] += 1
        if len(r["drug_types"]) == 1:  # a bundle's price is not one drug's price
            a = r["analytics"]
            if a["usd_per_gram"] is not None:
                per_gram.setdefault(r["drug_types"][0], []).append(a["usd_per_gram"])
            if a["usd_per_unit"] is not None:
                per_unit.setdefault(r["drug_types"][0], []).append(a["usd_per_unit"])
    least = heapq.nsmallest(lowest, records, key=lambda r: (r["confidence"], r["id"]))
    return {
        "records": len(records),
        "quarantined": len(quarantine),
        "quarantine_reasons": dict(Counter(q["reason"] for q in quarantine)),
        "drug_origin": dict(drug_origin),
        "hints": dict(hints),
        "with_hint": with_hint,
        "crypto_currencies": dict(currencies),
        "contact_platforms": dict(platforms),
        "kinds": dict(kinds),
        "langs": dict(langs),
        "sources": dict(sources),
        "usd_per_gram": per_gram,
        "usd_per_unit": per_unit,
        "lowest_confidence": [_review_item(r) for r in least],
    }


def _review_item(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "source": r["source"],
        "market": r["market"],
        "drug_types": r["drug_types"],
        "confidence": r["confidence"],
        "ships_from": r["ships_from"],
        "laundering_hints": r["laundering_hints"],
        "text": (r.get("text") or "")[:400],
        "provenance": r["provenance"],
    }


# --- output layout and manifest ------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchLayout:
    """Where a batch's files go. ``out_file`` is set for a FILE output (assembled at the end)."""

    root: Path
    fmt: str
    out_file: Path | None = None

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    @property
    def quarantine_parts(self) -> Path:
        return self.root / "quarantine-parts"

    @property
    def stats(self) -> Path:
        return self.root / "stats"

    @property
    def pre_parts(self) -> Path:
        """Chunks tagged but not yet decided with their vendors' context (Parquet; gone once decided)."""
        return self.root / "pre-parts"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def quarantine(self) -> Path:
        if self.out_file is not None:
            return self.out_file.with_name(_stem(self.out_file) + ".quarantine.jsonl")
        return self.root / "quarantine.jsonl"

    @property
    def report(self) -> Path:
        if self.out_file is not None:
            return self.out_file.with_name(_stem(self.out_file) + ".report.html")
        return self.root / "report.html"

    def part(self, index: int) -> Path:
        return self.parts / f"part-{index:05d}.{self.fmt}"

    def quarantine_part(self, index: int) -> Path:
        return self.quarantine_parts / f"part-{index:05d}.jsonl"

    def stats_part(self, index: int) -> Path:
        return self.stats / f"part-{index:05d}.json"

    def pre_part(self, index: int) -> Path:
        return self.pre_parts / f"part-{index:05d}.parquet"

    def scored(self, index: int) -> bool:
        """Whether chunk ``index`` has been tagged (its part, or its pre-part awaiting vendor context)."""
        return self.part(index).exists() or self.pre_part(index).exists()

    def make(self) -> None:
        for folder in (self.parts, self.quarantine_parts, self.stats):
            folder.mkdir(parents=True, exist_ok=True)


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def batch_layout(out: Path, fmt: str | None = None) -> BatchLayout:
    """``out`` ending in .parquet/.jsonl/.csv is a FILE (its format; parts in ``FILE.score/``), anything
    else a DIR (``fmt``, default parquet)."""
    suffix = out.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        if fmt is not None and fmt != suffix:
            raise ValueError(f"--format {fmt} does not match the output file {out}")
        return BatchLayout(out.with_name(out.name + ".score"), suffix, out)
    fmt = fmt or "parquet"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")
    return BatchLayout(out, fmt)


class BatchMismatch(RuntimeError):
    """The output folder holds a batch made from other inputs, another model or other settings."""


def open_manifest(layout: BatchLayout, batch: dict[str, Any], fresh: bool) -> dict[str, Any]:
    """The manifest to continue (same batch), or a new one; ``fresh`` discards earlier work."""
    key = hashlib.blake2b(json.dumps(batch, sort_keys=True).encode(), digest_size=12).hexdigest()
    if layout.manifest.exists() and not fresh:
        manifest: dict[str, Any] = json.loads(layout.manifest.read_text(encoding="utf-8"))
        if manifest.get("batch_key") == key:
            return manifest
        if manifest.get("chunks"):
            differs = sorted(k for k in batch if manifest.get("batch", {}).get(k) != batch[k])
            raise BatchMismatch(
                f"{layout.root} holds a batch scored with other {', '.join(differs)}; "
                "use another --out, or --fresh to discard it"
            )
    if layout.root.exists() and (fresh or layout.manifest.exists()):
        for folder in (layout.parts, layout.quarantine_parts, layout.stats):
            shutil.rmtree(folder, ignore_errors=True)
    layout.make()
    manifest = {
        "layout_version": LAYOUT_VERSION,
        "batch_key": key,
        "batch": batch,
        "chunks": {},
        "complete": False,
    }
    _write_json(layout.manifest, manifest)
    return manifest


# --- the work on one chunk (in a worker process, or in this one) -----------------------------------------


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of input items; ``duplicates`` marks items whose id an earlier chunk already had."""

    index: int
    items: list[RawRecord | Rejected]
    duplicates: list[bool]
    layout: BatchLayout
    params: ScoreParams
    prior_shifts: dict[str, list[float]] | None = None
    # the batch decides drug types with each vendor's context: the chunk goes to a pre-part, undecided
    vendor_context: bool = False


_TAGGER: Tagger | None = None
_TAGGER_KEY: tuple[str, str, str] | None = None


def _use_tagger(model: ModelRef) -> Tagger:
    """The Tagger of this process, loaded once (a forked worker inherits its parent's)."""
    global _TAGGER, _TAGGER_KEY
    key = (str(model.models_dir), model.name, model.version)
    if _TAGGER is None or key != _TAGGER_KEY:
        _TAGGER = Tagger.load(model.models_dir, model_name=model.name, model_version=model.version)
        _TAGGER_KEY = key
    return _TAGGER


def _init_worker(model: ModelRef, parent: int) -> None:
    _die_with_parent(parent)
    _use_tagger(model)


def _die_with_parent(parent: int) -> None:
    """Linux: this worker gets SIGKILL when the scoring process dies (even by ``kill -9``) instead of
    lingering with the model in memory. Elsewhere the pool's own shutdown has to do."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _duplicate_entry(item: RawRecord) -> dict[str, Any]:
    """A quarantine entry for a record whose id an earlier chunk had (the shape clean.py writes)."""
    rid = record_id(item)
    return {
        "id": rid,
        "source": item.source,
        "reason": "duplicate_id",
        "detail": "duplicate_id (an earlier chunk has this id)",
        "provenance": item.provenance.to_dict(),
        "raw_excerpt": (item.title or item.body or "")[:300],
    }


def score_chunk(task: ChunkTask, tagger: Tagger | None = None) -> dict[str, Any]:
    """Clean, tag and write one chunk (records, quarantine, statistics); return its accounting."""
    started = time.perf_counter()
    tagger = tagger or _TAGGER
    if tagger is None:
        raise RuntimeError("score_chunk needs a Tagger (worker not initialised)")
    stats: dict[str, SourceStats] = {}
    dup_entries = []
    items = []
    for item, is_dup in zip(task.items, task.duplicates, strict=True):
        if is_dup and isinstance(item, RawRecord):
            dup_entries.append(_duplicate_entry(item))
            s = stats.setdefault(item.source, SourceStats())
            s.read += 1
            s.quarantined += 1
            s.reasons["duplicate_id"] += 1
        else:
            items.append(item)
    rows, quarantine = clean_records(items, NearDupParams(enabled=False), stats)
    quarantine.extend(dup_entries)
    frame = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA).to_pandas()
    records = labelled_records(tagger, frame, task.params, task.prior_shifts) if rows else []
    layout = task.layout
    _write_jsonl(layout.quarantine_part(task.index), quarantine)
    if task.vendor_context:  # decided, written and counted by apply_vendor_context once every chunk is in
        layout.pre_parts.mkdir(parents=True, exist_ok=True)
        _atomic_write(layout.pre_part(task.index), lambda p: write_records(records, p, "parquet"))
    else:
        _atomic_write(layout.part(task.index), lambda p: write_records(records, p, layout.fmt))
        _write_json(
            layout.stats_part(task.index), chunk_stats(records, quarantine, task.params.report_lowest)
        )
    return {
        "index": task.index,
        "read": len(task.items),
        "scored": len(records),
        "quarantined": len(quarantine),
        "sources": {name: s.to_dict() for name, s in stats.items()},
        "seconds": round(time.perf_counter() - started, 3),
    }


def _noop() -> int:
    return os.getpid()


# --- each market's class mix -------------------------------------------------------------------------


def estimate_prior_shifts(
    specs: list[SourceSpec], tagger: Tagger, sample_size: int, seed: int = 0
) -> dict[str, Any]:
    """The first pass: a uniform sample of up to ``sample_size`` of the batch's listings (reservoir
    sampling, seeded: the same input gives the same sample; messenger ads are left out, see
    :func:`~pipeline.tagger.prior_group_key`), cleaned and scored by the drug_type model; per market with
    enough sampled records (``prior_adaptation_min_records``), the log-odds shift towards the class mix EM
    estimates from them. One sample for the whole batch keeps the memory bounded however many markets the
    input holds; a market gets a share of it as large as its share of the listings.

    Returns ``{"shifts": {market: [17 floats]}, "markets": {market: {"read", "used", "estimated_mix"}}}``;
    empty when the champion head does not adapt (another family, a head saved without its training prior,
    adaptation off) or ``sample_size`` is 0."""
    head = tagger.heads["drug_type"]
    if sample_size <= 0 or not getattr(head, "adapts_priors", False):
        return {"shifts": {}, "markets": {}}
    import random

    from pipeline.tagger import prior_group_key, prior_group_keys

    rng = random.Random(seed)
    reservoir: list[RawRecord | Rejected] = []
    seen: Counter[str] = Counter()
    listings = 0
    for item in read_items(specs, {}):
        if not isinstance(item, RawRecord):
            continue
        key = prior_group_key(item.kind, item.market, item.source)
        if key is None:  # messenger ads are tagged as they are (see prior_group_key)
            continue
        seen[key] += 1
        listings += 1
        if len(reservoir) < sample_size:
            reservoir.append(item)
        else:
            slot = rng.randrange(listings)
            if slot < sample_size:
                reservoir[slot] = item
    rows, _ = clean_records(reservoir, NearDupParams(enabled=False), {})
    if not rows:
        return {"shifts": {}, "markets": {}}
    frame = pa.Table.from_pylist(rows, schema=RECORD_SCHEMA).to_pandas()
    groups = prior_group_keys(frame)
    mixes = head.estimate_mixes(frame, groups)
    shifts = head.shifts_for(mixes)
    used = Counter(groups)
    markets = {
        str(key): {
            "read": int(seen[key]),  # the market's records in the input
            "used": int(used[key]),  # the sampled ones cleaning kept: what the estimate is from
            # for the analyst: the share of each code EM estimates (codes under 0.5% left out)
            "estimated_mix": {
                c: round(float(v), 4) for c, v in zip(DRUG_TYPES, mix, strict=True) if v >= 0.005
            },
        }
        for key, mix in mixes.items()
    }
    return {
        "shifts": {str(k): [round(float(x), 6) for x in v] for k, v in shifts.items()},
        "markets": markets,
    }


def _first_pass_here(specs: list[SourceSpec], model: ModelRef, sample_size: int) -> dict[str, Any]:
    return estimate_prior_shifts(specs, _use_tagger(model), sample_size)


def _first_pass(specs: list[SourceSpec], model: ModelRef, sample_size: int) -> dict[str, Any]:
    """:func:`estimate_prior_shifts` in a forked child where the platform forks (it inherits the loaded
    Tagger): the sample's records and features then never enlarge this process, whose pages every worker
    forked later shares. Elsewhere, in this process."""
    adapts = getattr(_use_tagger(model).heads["drug_type"], "adapts_priors", False)
    if sample_size <= 0 or not adapts or "fork" not in multiprocessing.get_all_start_methods():
        return _first_pass_here(specs, model, sample_size)
    share_language_models()  # loaded once here, where the chunks' cleaning needs them too
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as child:
        return child.submit(_first_pass_here, specs, model, sample_size).result()


# --- each vendor's context (the second pass) -------------------------------------------------------------

_PROFILE_COLUMNS = ["kind", "market", "source", "vendor", "drug_type_scores"]


def _profile_inputs(table: pa.Table) -> tuple[list[Any], np.ndarray]:
    """The vendor keys (market as the class mix groups it, vendor) and the score matrix of a pre-part."""
    columns = {name: table.column(name).to_pylist() for name in ("kind", "market", "source", "vendor")}
    markets = [
        prior_group_key(k, m, s)
        for k, m, s in zip(columns["kind"], columns["market"], columns["source"], strict=True)
    ]
    keys = vendor_keys(markets, columns["vendor"])
    scores = table.column("drug_type_scores").flatten()
    matrix = np.column_stack([np.asarray(c.to_numpy(zero_copy_only=False), dtype=np.float64) for c in scores])
    return keys, matrix.reshape(len(keys), len(DRUG_TYPES))


def apply_vendor_context(
    layout: BatchLayout, manifest: dict[str, Any], n_chunks: int, head: Any, lowest: int, workers: int = 1
) -> dict[str, Any]:
    """Decide every pre-part's drug types with each vendor's context, write its part and statistics.

    Two passes over the pre-parts (:mod:`pipeline.heads.vendor_context`): the first reads only the vendor and
    score columns and builds every (market, vendor) profile of the whole batch; the second re-decides each
    chunk's listings (``workers`` forked processes that inherit the profiles, where the platform forks),
    writes the part in the batch's format and its statistics, and marks the chunk done in the manifest. The
    profiles come from the listings' own scores, so a resumed batch builds the same ones; the pre-parts are
    removed at the end. Returns the counts for the summary."""
    global _VENDOR_PROFILES
    rule = VendorContextRule.of(head.params)
    profiles = VendorProfiles(np.asarray(head.thresholds_, dtype=np.float64), rule)
    for index in range(n_chunks):
        profiles.add(*_profile_inputs(pq.read_table(layout.pre_part(index), columns=_PROFILE_COLUMNS)))
    finished = manifest.setdefault("vendor_context_chunks", {})
    pending = [i for i in range(n_chunks) if not (str(i) in finished and layout.part(i).exists())]
    task = functools.partial(_decide_pre_part, layout=layout, lowest=lowest)
    _VENDOR_PROFILES = profiles
    try:
        if workers > 1 and len(pending) > 1 and "fork" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("fork")  # the workers inherit the profiles, unpickled
            with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context) as pool:
                for index, counts in zip(pending, pool.map(task, pending), strict=True):
                    finished[str(index)] = counts
                    _write_json(layout.manifest, manifest)
        else:
            for index in pending:
                finished[str(index)] = task(index)
                _write_json(layout.manifest, manifest)
    finally:
        _VENDOR_PROFILES = None
    shutil.rmtree(layout.pre_parts, ignore_errors=True)
    totals: Counter[str] = Counter()
    for index in range(n_chunks):
        totals.update(finished[str(index)])
    return {
        "vendors": len(profiles.vendors),
        "listings_with_context": int(totals["with_context"]),
        "changed": int(totals["changed"]),
        "filled": int(totals["filled"]),
    }


_VENDOR_PROFILES: VendorProfiles | None = None  # the batch's profiles while its pre-parts are decided


def _decide_pre_part(index: int, layout: BatchLayout, lowest: int) -> dict[str, int]:
    """Decide one pre-part with the batch's vendor profiles; write its part and statistics; return counts."""
    profiles = _VENDOR_PROFILES
    if profiles is None:
        raise RuntimeError("_decide_pre_part runs inside apply_vendor_context")
    table = pq.read_table(layout.pre_part(index), schema=LABELLED_SCHEMA)
    keys, scores = _profile_inputs(table)
    codes, info = profiles.decide(keys, scores)
    drug_types = table.column("drug_types").to_pylist()
    confidence = table.column("confidence").to_pylist()
    # a listing without context keeps its codes (decided on full-precision scores; these are rounded)
    changed = [i for i, extra in enumerate(info) if extra is not None and drug_types[i] != codes[i]]
    if changed:
        changed_scores = [dict(zip(DRUG_TYPES, scores[i].tolist(), strict=True)) for i in changed]
        new_confidence = decision_confidences(
            changed_scores, [codes[i] for i in changed], profiles.thresholds
        )
        for i, value in zip(changed, new_confidence, strict=True):
            drug_types[i] = codes[i]
            confidence[i] = value
    for name, values in (("drug_types", drug_types), ("confidence", confidence), ("vendor_context", info)):
        position = LABELLED_SCHEMA.get_field_index(name)
        column = pa.array(values, type=LABELLED_SCHEMA.field(name).type)
        table = table.set_column(position, LABELLED_SCHEMA.field(name), column)
    quarantine = list(_read_jsonl(layout.quarantine_part(index)))
    _atomic_write(layout.part(index), functools.partial(_write_table, table, fmt=layout.fmt))
    _write_json(layout.stats_part(index), chunk_stats(_stats_rows(table, lowest), quarantine, lowest))
    return {
        "with_context": sum(extra is not None for extra in info),
        "changed": len(changed),
        "filled": sum(bool(extra and extra["filled"]) for extra in info),
    }


#: the columns :func:`chunk_stats` reads from every record; :func:`_review_item` reads these too
_STATS_COLUMNS = ["id", "source", "kind", "lang", "drug_types", "ships_from", "laundering_hints",
                  "crypto_addresses", "contacts", "analytics", "confidence"]  # fmt: skip
_REVIEW_COLUMNS = ["market", "text", "provenance"]


def _stats_rows(table: pa.Table, lowest: int) -> list[dict[str, Any]]:
    """The records of a decided pre-part as :func:`chunk_stats` needs them, without converting the heavy
    nested columns: only the ``lowest`` least confident rows (the report's review list) get text,
    market and provenance."""
    rows = table.select(_STATS_COLUMNS).to_pylist()
    least = heapq.nsmallest(lowest, range(len(rows)), key=lambda i: (rows[i]["confidence"], rows[i]["id"]))
    picked = table.take(pa.array(least, type=pa.int64())).select(_REVIEW_COLUMNS).to_pylist()
    for i, extra in zip(least, picked, strict=True):
        rows[i].update(extra)
    return rows


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    """A decided pre-part in the batch's format (Parquet as it is; JSONL/CSV through the records)."""
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
    else:
        write_records([_as_tagged(r) for r in table.to_pylist()], path, fmt)


def _as_tagged(record: dict[str, Any]) -> dict[str, Any]:
    """A record read back from a pre-part without the ad-only fields Parquet filled with nulls for a
    listing: the same keys the Tagger gave it."""
    if record.get("is_offer") is None:
        record.pop("is_offer", None)
        record.pop("offer_score", None)
    if record["evidence"].get("ad_detector") is None:
        record["evidence"].pop("ad_detector", None)
    return record


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-empty line."""
    with open(path, encoding="utf-8") as f:
        yield from (json.loads(line) for line in f if line.strip())


# --- the batch --------------------------------------------------------------------------------------


def _chunk_digest(items: list[RawRecord | Rejected]) -> str:
    digest = hashlib.blake2b(digest_size=10)
    for item in items:
        digest.update(f"{item.source}\x1f{item.provenance.file}\x1f{item.provenance.locator}\n".encode())
    return digest.hexdigest()


def _worker_count(params: ScoreParams, workers: int | None, estimated: int | None) -> int:
    n = workers if workers is not None else params.workers
    if n == 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if estimated is not None:  # no pool for a batch of one or two chunks: starting it costs more
            n = min(n, max(1, estimated // params.chunk_size))
    return max(1, n)


def score(
    inputs: list[Path],
    out: Path,
    model: str | Path = DEFAULT_MODEL,
    fmt: str | None = None,
    params: ScoreParams | None = None,
    adapter: str | None = None,
    preset: str | None = None,
    report: bool = False,
    workers: int | None = None,
    fresh: bool = False,
    paths: Paths | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score ``inputs`` into ``out`` (a DIR or a FILE; see the module docstring); return the summary.

    Resumes a batch the manifest in ``out`` describes when inputs, model and settings are the same.
    Raises :class:`~pipeline.clean.AccountingError` unless ``read = scored + quarantined``.
    """
    started = time.perf_counter()
    params = params or ScoreParams()
    paths = paths or Paths()
    say = log or (lambda _msg: None)
    layout = batch_layout(Path(out), fmt)
    specs = expand_inputs(inputs, adapter, preset)
    if not specs:
        raise FileNotFoundError("no inputs to score")
    ref = resolve_model(model, paths)
    batch = {
        "layout_version": LAYOUT_VERSION,
        "inputs": [asdict(s) for s in specs],
        "inputs_fingerprint": inputs_fingerprint(specs),
        "model": {"uri": ref.uri, "name": ref.name, "version": ref.version},
        "format": layout.fmt,
        "chunk_size": params.chunk_size,
        "rates": {"date": params.rates_date, "usd": params.usd_rates},
        "prior_sample": params.prior_sample,
    }
    manifest = open_manifest(layout, batch, fresh)
    done: dict[str, Any] = manifest["chunks"]
    if done:
        say(f"resuming {layout.root}: {len(done)} chunks already scored")
    estimated = estimate_records(specs)
    finished_before = bool(manifest.get("complete"))  # a re-run of a finished batch only re-checks
    n_workers = 1 if finished_before else _worker_count(params, workers, estimated)
    tagger = None if finished_before else _use_tagger(ref)  # loaded before any fork: workers share it
    if "priors" not in manifest:  # the first pass; a resumed batch keeps the shifts it started with
        say("estimating each market's class mix (first pass over the input)")
        first_pass = time.perf_counter()
        manifest["priors"] = _first_pass(specs, ref, params.prior_sample)
        manifest["priors_seconds"] = round(time.perf_counter() - first_pass, 2)
        _write_json(layout.manifest, manifest)
    prior_shifts = manifest["priors"]["shifts"] or None
    vendor_rule = (
        VendorContextRule() if tagger is None else VendorContextRule.of(tagger.heads["drug_type"].params)
    )
    # the Tagger's ~0.5M long-lived objects leave the garbage collector's view: fewer full collections
    # here, and no copy-on-write of the pages a forked worker shares with this process
    gc.freeze()
    pool: ProcessPoolExecutor | None = None
    if n_workers > 1:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        if context.get_start_method() == "fork":
            share_language_models()  # before the fork: one copy of lingua's models for all workers
        pool = ProcessPoolExecutor(
            n_workers, mp_context=context, initializer=_init_worker, initargs=(ref, os.getpid())
        )
        wait([pool.submit(_noop) for _ in range(n_workers)])  # start them all before any thread does
    counts: dict[str, SourceStats] = {}
    seen = SeenIds()
    pending: dict[Future[dict[str, Any]], int] = {}
    digests: dict[int, str] = {}
    n_chunks = 0

    def finish(result: dict[str, Any]) -> None:
        result["digest"] = digests.pop(result["index"])
        done[str(result["index"])] = result
        _write_json(layout.manifest, manifest)

    try:
        with make_progress() as progress:
            task_id = progress.add_task(f"score ({n_workers} worker{'s' * (n_workers > 1)})", total=estimated)
            for index, items in enumerate(chunked(read_items(specs, counts), params.chunk_size)):
                n_chunks = index + 1
                raw = [(i, record_id(it)) for i, it in enumerate(items) if isinstance(it, RawRecord)]
                hashes = SeenIds.hash([rid for _, rid in raw])
                duplicates = [False] * len(items)
                for (position, _), is_dup in zip(raw, seen.seen(hashes), strict=True):
                    duplicates[position] = bool(is_dup)
                seen.add(hashes)
                digest = _chunk_digest(items)
                previous = done.get(str(index))
                if previous is not None and layout.scored(index):
                    if previous["digest"] != digest:
                        raise BatchMismatch(
                            f"chunk {index} of the input changed since it was scored; use --fresh"
                        )
                    progress.advance(task_id, len(items))
                    continue
                digests[index] = digest
                task = ChunkTask(index, items, duplicates, layout, params, prior_shifts, vendor_rule.active)
                if pool is None:
                    finish(score_chunk(task, tagger or _use_tagger(ref)))
                    progress.advance(task_id, len(items))
                    continue
                pending[pool.submit(score_chunk, task)] = index
                while len(pending) > n_workers:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        pending.pop(future)
                        result = future.result()
                        finish(result)
                        progress.advance(task_id, result["read"])
            for future in list(pending):
                result = future.result()
                pending.pop(future)
                finish(result)
                progress.advance(task_id, result["read"])
            progress.update(task_id, total=sum(s.read for s in counts.values()))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()

    if layout.pre_parts.exists():  # this run's chunks, or an interrupted run's, await their vendors' context
        say("deciding drug types with each vendor's other listings (second pass over the output)")
        second = time.perf_counter()
        assert tagger is not None or finished_before
        head = (tagger or _use_tagger(ref)).heads["drug_type"]
        manifest["vendor_context"] = apply_vendor_context(
            layout, manifest, n_chunks, head, params.report_lowest, n_workers
        )
        manifest["vendor_context"]["seconds"] = round(time.perf_counter() - second, 2)
        _write_json(layout.manifest, manifest)
    summary = _finish_batch(layout, manifest, counts, n_chunks, ref, started)
    if report:
        from pipeline.report import write_report

        write_report(layout.root, layout.report, params.report_lowest)
        summary["outputs"]["report"] = str(layout.report)
        _write_json(layout.summary, summary)
    return summary


def _finish_batch(
    layout: BatchLayout,
    manifest: dict[str, Any],
    counts: dict[str, SourceStats],
    n_chunks: int,
    ref: ModelRef,
    started: float,
) -> dict[str, Any]:
    """Check the accounting, assemble quarantine (and FILE) output, write summary.json."""
    chunks = [manifest["chunks"][str(i)] for i in range(n_chunks)]
    per_source: dict[str, dict[str, Any]] = {}
    for name, stats in counts.items():
        per_source[name] = {"read": stats.read, "scored": 0, "quarantined": 0, "reasons": Counter(),
                            "skipped": stats.skipped, "files": stats.files}  # fmt: skip
    for chunk in chunks:
        for name, s in chunk["sources"].items():
            entry = per_source.setdefault(
                name, {"read": 0, "scored": 0, "quarantined": 0, "reasons": Counter()}
            )
            entry["scored"] += s["kept"]
            entry["quarantined"] += s["quarantined"]
            entry["reasons"].update(s["quarantine_reasons"])
    broken = {n: s for n, s in per_source.items() if s["read"] != s["scored"] + s["quarantined"]}
    read = sum(c["read"] for c in chunks)
    scored = sum(c["scored"] for c in chunks)
    quarantined = sum(c["quarantined"] for c in chunks)
    if broken or read != scored + quarantined or read != sum(s.read for s in counts.values()):
        raise AccountingError(f"records lost or double-counted: {broken or (read, scored, quarantined)}")

    _atomic_write(
        layout.quarantine, lambda p: _concat_text([layout.quarantine_part(i) for i in range(n_chunks)], p)
    )
    outputs: dict[str, Any] = {"parts": str(layout.parts), "quarantine": str(layout.quarantine)}
    if layout.out_file is not None:
        layout.out_file.parent.mkdir(parents=True, exist_ok=True)
        parts = [layout.part(i) for i in range(n_chunks)]
        _atomic_write(layout.out_file, lambda p: assemble(parts, p, layout.fmt))
        outputs["records"] = str(layout.out_file)
    seconds = time.perf_counter() - started
    for entry in per_source.values():
        entry["reasons"] = dict(sorted(entry["reasons"].items()))
    summary = {
        "read": read,
        "scored": scored,
        "quarantined": quarantined,
        "accounting_ok": True,
        "chunks": n_chunks,
        "sources": per_source,
        "model": {"uri": ref.uri, "name": ref.name, "version": ref.version},
        "format": layout.fmt,
        "rates_date": manifest["batch"]["rates"]["date"],
        "prior_adaptation": manifest.get("priors", {}).get("markets", {}),
        "first_pass_seconds": manifest.get("priors_seconds", 0.0),
        "vendor_context": manifest.get("vendor_context", {}),
        "outputs": outputs,
        "seconds": round(seconds, 2),
        "chunk_seconds": round(sum(c["seconds"] for c in chunks), 2),
    }
    manifest["complete"] = True
    _write_json(layout.manifest, manifest)
    _write_json(layout.summary, summary)
    return summary


def _concat_text(parts: list[Path], out: Path) -> None:
    with open(out, "wb") as f:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, f)


def assemble(parts: list[Path], out: Path, fmt: str) -> None:
    """Concatenate chunk files into one output file, one chunk in memory at a time."""
    if fmt == "jsonl":
        _concat_text(parts, out)
    elif fmt == "csv":
        with open(out, "wb") as f:
            for n, part in enumerate(parts):
                with open(part, "rb") as src:
                    header = src.readline()
                    if n == 0:
                        f.write(header)
                    shutil.copyfileobj(src, f)
    elif fmt == "parquet":
        with pq.ParquetWriter(out, LABELLED_SCHEMA, compression="zstd") as writer:
            for part in parts:
                writer.write_table(pq.read_table(part, schema=LABELLED_SCHEMA))
    else:
        raise ValueError(f"unknown format {fmt!r}")


def read_labelled(path: Path) -> Iterator[dict[str, Any]]:
    """Labelled records back from a scoring output: a FILE, or a DIR's parts, in order."""
    path = Path(path)
    files = sorted((path / "parts").glob("part-*.*")) if path.is_dir() else [path]
    for file in files:
        if file.suffix == ".parquet":
            for batch in pq.ParquetFile(file).iter_batches(batch_size=4096):
                yield from batch.to_pylist()
        elif file.suffix == ".jsonl":
            yield from _read_jsonl(file)
        elif file.suffix == ".csv":
            with open(file, encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f):
                    yield {k: _from_csv(v) for k, v in row.items()}


def _from_csv(value: str) -> Any:
    if value[:1] and value[:1] in "[{":
        return json.loads(value)
    return value if value != "" else None

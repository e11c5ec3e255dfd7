"""Tabular adapter: market exports in CSV/TSV, JSON Lines (optionally gzipped), JSON arrays and Parquet.

A **column mapping** (target field -> source column) turns each row into a :class:`RawRecord`. Mappings come
from the presets in ``pipeline/resources/presets.yaml``; a user mapping overrides or extends one.

Mapping sources: a column name (``"title"``; dotted ``"seller.name"`` reaches into nested objects), a list
of names (the first non-empty wins), ``{"value": X}`` (a constant) or ``{"join": [names], "sep": "\\n\\n"}``
(the distinct non-empty values joined). Targets: the :class:`RawRecord` fields ``id``, ``native_key``,
``kind``, ``market``, ``vendor``, ``title``, ``body``, ``price``, ``currency``, ``ships_from_raw``,
``ships_to_raw``, ``category_raw``, ``posted_at`` (aliases: ``description`` and ``text`` -> body,
``ships_from``, ``ships_to``, ``category``, ``date``) and ``extra.<name>``. A target mapped to None is
removed.

Files stream: JSON Lines line by line, CSV through the csv module, Parquet by record batches; only a JSON
array (a whole-file format) is loaded at once.

Preset guessing (``preset=None``), per file, from its name and first record:
1. the file name starts with a preset's ``guess.file_prefix`` (the shared market files);
2. the first record's ``source`` equals a preset's ``guess.source`` and it has all ``guess.requires``
   columns; or a preset without ``guess.source`` has all its ``guess.requires`` columns (kaggle_agora,
   messenger_generic), in file order;
3. otherwise ``generic`` (whose rows then need one of title/description/text, or are rejected ``no_text``).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import gzip
import io
import json
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import IO, Any

import yaml

from pipeline.ingest.records import (
    Item,
    Provenance,
    RawRecord,
    Rejected,
    SourceReader,
    list_files,
    normalise_currency,
    parse_price,
    sniff_encoding,
    stable_id,
)
from pipeline.taxonomy import KINDS

try:  # orjson is several times faster than json on the JSON Lines hot path
    import orjson

    _loads: Callable[[bytes | str], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is in the project's environment
    _loads = json.loads

ADAPTER = "tabular"

#: File name endings this adapter reads (lower case); ``.gz`` works for the text formats.
SUFFIXES: tuple[str, ...] = (
    ".csv",
    ".tsv",
    ".jsonl",
    ".ndjson",
    ".json",
    ".parquet",
    ".pq",
    ".csv.gz",
    ".tsv.gz",
    ".jsonl.gz",
    ".ndjson.gz",
    ".json.gz",
)

FIELDS: tuple[str, ...] = (
    "id",
    "native_key",
    "kind",
    "market",
    "vendor",
    "title",
    "body",
    "price",
    "currency",
    "ships_from_raw",
    "ships_to_raw",
    "category_raw",
    "posted_at",
)
_ALIASES = {
    "description": "body",
    "text": "body",
    "ships_from": "ships_from_raw",
    "ships_to": "ships_to_raw",
    "category": "category_raw",
    "date": "posted_at",
}
#: how list values become text, per field (a category path is a path)
_JOIN_SEP = {"title": " ", "body": "\n", "category_raw": "/"}
_KIND_ALIASES = {"listing": "listing", "product": "listing", "item": "listing", "ad": "ad", "advert": "ad"}
_KIND_ALIASES |= {"message": "ad", "post": "ad"}
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 64 * 1024
_PARQUET_BATCH = 8192
_CSV_DELIMITERS = ",;\t|"


class _FieldError(ValueError):
    """A mapped value of a type the field cannot hold (a dict as a title)."""


# --- presets -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """One column mapping with its defaults (see ``pipeline/resources/presets.yaml``)."""

    name: str
    kind: str
    columns: Mapping[str, Any]
    keep_unmapped: bool = False
    guess: Mapping[str, Any] | None = None
    doc: str = ""


@cache
def _raw_presets() -> dict[str, dict[str, Any]]:
    text = resources.files("pipeline").joinpath("resources", "presets.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    presets: dict[str, dict[str, Any]] = data["presets"]
    return presets


def _resolve(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    raw = _raw_presets()
    if name not in raw:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(raw)}")
    if name in seen:
        raise ValueError(f"preset inheritance loop: {' -> '.join((*seen, name))}")
    spec = dict(raw[name])
    base = spec.pop("base", None)
    if base is None:
        spec["columns"] = normalise_mapping(spec.get("columns") or {})
        return spec
    merged = _resolve(base, (*seen, name))
    columns = {**merged["columns"], **normalise_mapping(spec.get("columns") or {})}
    # a base's guess is not inherited: it would make the child match the parent's files
    out = {**merged, **spec, "columns": columns}
    if "guess" not in spec:
        out.pop("guess", None)
    return out


@cache
def get_preset(name: str) -> Preset:
    """The named preset from ``presets.yaml`` (``base:`` inheritance resolved)."""
    spec = _resolve(name)
    columns = {k: v for k, v in spec["columns"].items() if v is not None}
    return Preset(
        name=name,
        kind=spec.get("kind", "listing"),
        columns=columns,
        keep_unmapped=bool(spec.get("keep_unmapped", False)),
        guess=spec.get("guess"),
        doc=spec.get("doc", ""),
    )


def preset_names() -> tuple[str, ...]:
    """Names of the presets in ``presets.yaml``, in file order."""
    return tuple(_raw_presets())


def normalise_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping with target aliases resolved ("description" -> "body") and targets checked."""
    out: dict[str, Any] = {}
    for target, spec in mapping.items():
        name = _ALIASES.get(target, target)
        if name not in FIELDS and not (name.startswith("extra.") and len(name) > 6):
            raise ValueError(f"unknown mapping target {target!r}; use one of {FIELDS} or 'extra.<name>'")
        out[name] = spec
    return out


def guess_preset(file_name: str, columns: Iterable[str], first: Mapping[str, Any] | None = None) -> str:
    """The preset for a file, from its name, its columns and its first record (see the module docstring)."""
    cols = set(columns)
    lower = file_name.lower()
    names = preset_names()
    for name in names:
        prefix = (get_preset(name).guess or {}).get("file_prefix")
        if prefix and lower.startswith(prefix.lower()):
            return name
    source = first.get("source") if first else None
    for name in names:
        guess = get_preset(name).guess or {}
        requires = set(guess.get("requires") or ())
        if not requires or not requires <= cols:
            continue
        if "source" not in guess or (source is not None and guess["source"] == source):
            return name
    return "generic"


# --- mapping compiled to getters ---------------------------------------------------------------------------

_Getter = Callable[[Mapping[str, Any]], Any]


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | dict) and not value)


def _dotted(path: str) -> _Getter:
    parts = path.split(".")

    def get(row: Mapping[str, Any]) -> Any:
        value = row.get(path)  # a column whose name has dots wins over nesting
        if value is not None or path in row:
            return value
        cur: Any = row
        for part in parts:
            if not isinstance(cur, Mapping):
                return None
            cur = cur.get(part)
        return cur

    return get


def _compile(spec: Any) -> _Getter:
    if isinstance(spec, str):
        if "." in spec:
            return _dotted(spec)
        return lambda row: row.get(spec)
    if isinstance(spec, list):
        getters = [_compile(s) for s in spec]

        def first(row: Mapping[str, Any]) -> Any:
            for get in getters:
                value = get(row)
                if not _empty(value):
                    return value
            return None

        return first
    if isinstance(spec, Mapping) and "value" in spec:
        constant = spec["value"]
        return lambda row: constant
    if isinstance(spec, Mapping) and "join" in spec:
        parts = [_compile(s) for s in spec["join"]]
        sep = str(spec.get("sep", "\n\n"))

        def join(row: Mapping[str, Any]) -> Any:
            texts: list[str] = []
            for get in parts:
                value = get(row)
                if not _empty(value):
                    text = _text(value, "\n")
                    if text is not None and text.strip() and text not in texts:
                        texts.append(text)
            return sep.join(texts) if texts else None

        return join
    raise ValueError(f"bad mapping source {spec!r}: a column name, a list, {{value: ..}} or {{join: [..]}}")


def _source_columns(spec: Any) -> set[str]:
    """Top-level columns a mapping source reads (for ``keep_unmapped``)."""
    if isinstance(spec, str):
        return {spec, spec.split(".")[0]}
    if isinstance(spec, list):
        return set().union(*(_source_columns(s) for s in spec)) if spec else set()
    if isinstance(spec, Mapping) and "join" in spec:
        return _source_columns(list(spec["join"]))
    return set()


def _all_str(values: list[Any] | tuple[Any, ...]) -> bool:
    """True when every item is a str; ``str.join`` checks that in C, faster than ``all(...)``."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True


def _text(value: Any, sep: str) -> str | None:
    """Text of a scalar or a list of scalars, as given (no stripping); None when empty."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        raise _FieldError("got a boolean")
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) else (str(int(value)) if value.is_integer() else str(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        if _all_str(value):
            joined = sep.join(v.strip() for v in value if v)
            return joined if joined.strip() else None
        parts = [_text(v, sep) for v in value]
        joined = sep.join(p.strip() for p in parts if p is not None)
        return joined if joined.strip() else None
    raise _FieldError(f"got {type(value).__name__}")


def _key(value: Any) -> str | None:
    """An id or native key: a string as given, or a number as text."""
    if isinstance(value, bool | list | tuple | dict):
        raise _FieldError(f"got {type(value).__name__}")
    return _text(value, "")


def _date(value: Any) -> str | None:
    text = _text(value, " ")
    if text is not None and len(text) == 8 and text.isdigit():
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"  # 20170510 -> 2017-05-10
    return text


def _jsonable(value: Any) -> Any:
    """A value for ``extra`` (which the clean stage writes as JSON)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes | bytearray):
        return None
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _excerpt(row: Any) -> str:
    try:
        return json.dumps(row, ensure_ascii=False, default=str)[:300]
    except (TypeError, ValueError):  # pragma: no cover - default=str makes this unlikely
        return repr(row)[:300]


_PLAIN = 0  # text kept as given
_KEY = 1  # id / native_key
_DATE = 2  # posted_at
_RAW = 3  # price: parsed after the loop


def _extra_value(value: Any) -> Any:
    """``_jsonable`` with a fast path for the usual scalars and lists of strings."""
    t = type(value)
    if t is str or t is int or t is bool:
        return value
    if t is float:
        return value if math.isfinite(value) else None
    if t is list and _all_str(value):
        return value
    return _jsonable(value)


class RowMapper:
    """A compiled mapping: turns one row (a dict) into a RawRecord or a Rejected.

    This is the JSON Lines hot path (>100k rows/s): plain column names are read with ``dict.get`` directly
    and plain strings skip the type dispatch of :func:`_text`.
    """

    def __init__(self, preset: Preset, source: str, adapter: str = ADAPTER) -> None:
        self.preset = preset
        self.source = source
        self.adapter = adapter
        # plain text targets read from one column (most of them): (target, column, list separator)
        self.plain: list[tuple[str, str, str]] = []
        # the rest: (target, getter, conversion, list separator)
        self.fields: list[tuple[str, _Getter, int, str]] = []
        self.extras: list[tuple[str, str | None, _Getter]] = []
        mapped: set[str] = set()
        for target, spec in preset.columns.items():
            mapped |= _source_columns(spec)
            column = spec if isinstance(spec, str) and "." not in spec else None
            if target.startswith("extra."):
                self.extras.append((target[6:], column, _compile(spec)))
                continue
            conv = {"id": _KEY, "native_key": _KEY, "posted_at": _DATE, "price": _RAW}.get(target, _PLAIN)
            sep = _JOIN_SEP.get(target, ", ")
            if conv == _PLAIN and column is not None:
                self.plain.append((target, column, sep))
            else:
                self.fields.append((target, _compile(spec), conv, sep))
        self.mapped = frozenset(mapped)

    def map(self, row: Any, file: str, locator: str, default_key: str) -> RawRecord | Rejected:
        """The record for ``row``; ``default_key`` ("<file>:<line>") is its native key when none is mapped."""
        prov = Provenance(file, locator, self.adapter)
        if type(row) is not dict:
            detail = f"expected an object, got {type(row).__name__}"
            return Rejected(self.source, "invalid_record", prov, detail, _excerpt(row))
        values: dict[str, Any] = {}
        name = ""
        get = row.get
        try:
            for name, column, sep in self.plain:
                value = get(column)
                if value.__class__ is str:
                    if value and not value.isspace():
                        values[name] = value
                elif value is not None:
                    values[name] = _text(value, sep)
            for name, getter, conv, sep in self.fields:
                value = getter(row)
                if value is None or value == "":
                    continue
                if conv == _PLAIN:
                    values[name] = _text(value, sep)
                elif conv == _RAW:
                    values[name] = value
                elif conv == _KEY:
                    values[name] = _key(value)
                else:
                    values[name] = _date(value)
        except _FieldError as exc:
            return Rejected(self.source, "invalid_record", prov, f"{name}: {exc}", _excerpt(row))
        title = values.get("title")
        body = values.get("body")
        if title is None and body is None:
            return Rejected(self.source, "no_text", prov, "no title, description or text", _excerpt(row))

        kind = self.preset.kind
        raw_kind = values.get("kind")
        if raw_kind is not None:
            kind = _KIND_ALIASES.get(raw_kind.strip().lower(), raw_kind.strip().lower())
            if kind not in KINDS:
                return Rejected(
                    self.source, "invalid_record", prov, f"kind: unknown {raw_kind!r}", _excerpt(row)
                )

        extra: dict[str, Any] = {}
        for key, extra_column, getter in self.extras:
            found = get(extra_column) if extra_column is not None else getter(row)
            if found is not None:
                found = _extra_value(found)
                if found is not None:
                    extra[key] = found
        if self.preset.keep_unmapped:
            mapped = self.mapped
            for key, value in row.items():
                if key not in mapped and not _empty(value):
                    extra[str(key)] = _extra_value(value)

        price = currency = None
        raw_price = values.get("price")
        if raw_price is not None:
            price, currency = parse_price(raw_price)
            if price is None:
                extra["price_raw"] = _jsonable(raw_price)
        raw_currency = values.get("currency")
        if raw_currency is not None:
            code = normalise_currency(raw_currency)
            if code is None:
                extra["currency_raw"] = raw_currency
            currency = code or currency

        record_id = values.get("id")
        native_key = values.get("native_key")
        if record_id is None:
            native_key = native_key or default_key
            record_id = stable_id(self.source, native_key)
        return RawRecord(
            self.source,
            kind,
            prov,
            record_id,
            native_key,
            values.get("market"),
            values.get("vendor"),
            title,
            body,
            price,
            currency,
            values.get("ships_from_raw"),
            values.get("ships_to_raw"),
            values.get("category_raw"),
            values.get("posted_at"),
            extra,
        )


# --- the reader --------------------------------------------------------------------------------------------


def _format_of(path: Path, head: bytes) -> str:
    """ "jsonl", "json", "csv", "tsv" or "parquet" from the name, or from the first bytes for odd names."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, fmt in (
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "json"),
        (".tsv", "tsv"),
        (".csv", "csv"),
    ):
        if name.endswith(suffix):
            return fmt
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    stripped = head.lstrip()
    if stripped.startswith(b"{"):
        return "jsonl"
    if stripped.startswith(b"["):
        return "json"
    return "csv"


class TabularReader(SourceReader):
    """Reads a tabular file, or every tabular file under a folder (sorted), with a preset or a guess.

    ``preset=None`` guesses per file (module docstring); ``mapping`` overrides or extends the preset.
    ``presets_used`` maps each file read to the preset that read it.
    """

    adapter = ADAPTER

    def __init__(
        self,
        path: Path | str,
        source: str,
        preset: str | None = None,
        mapping: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(path, source)
        if preset is not None:
            get_preset(preset)  # fail early on an unknown name (a caller error, not bad input)
        self.preset = preset
        self.mapping = normalise_mapping(mapping or {})
        for spec in self.mapping.values():
            if spec is not None:
                _compile(spec)  # a bad mapping is a caller error too
        self.presets_used: dict[str, str] = {}
        self._paths = list_files(self.path, SUFFIXES) if self.path.is_dir() else [self.path]
        self.files = [str(p) for p in self._paths]

    def _mapper(self, path: Path, columns: Iterable[str], first: Mapping[str, Any] | None) -> RowMapper:
        name = self.preset or guess_preset(path.name, columns, first)
        self.presets_used[str(path)] = name
        preset = get_preset(name)
        if self.mapping:
            merged = {**preset.columns, **self.mapping}
            columns_ = {k: v for k, v in merged.items() if v is not None}
            preset = Preset(name, preset.kind, columns_, preset.keep_unmapped, preset.guess, preset.doc)
        return RowMapper(preset, self.source)

    def _key_prefix(self, path: Path) -> str:
        # "<file name>:<n>" native keys; the path relative to a folder source keeps them unique
        if self.path.is_dir():
            return path.relative_to(self.path).as_posix()
        return path.name

    def _iter(self) -> Iterator[Item]:
        for path in self._paths:
            yield from self._read_file(path)

    def _read_file(self, path: Path) -> Iterator[Item]:
        file = str(path)
        try:
            with path.open("rb") as fh:
                head = fh.read(_SNIFF_BYTES)
            gzipped = head.startswith(_GZIP_MAGIC)
            if gzipped:
                with gzip.open(path, "rb") as gz:
                    sample = gz.read(_SNIFF_BYTES)
            else:
                sample = head
        except (OSError, EOFError, zlib.error) as exc:
            yield self.reject("unreadable_file", file, "file", f"{type(exc).__name__}: {exc}")
            return
        fmt = _format_of(path, sample)
        if fmt == "parquet":
            yield from self._read_parquet(path)
            return
        encoding = sniff_encoding(sample)
        if encoding is None:
            yield self.reject(
                "unreadable_file", file, "file", "binary content, not text", _excerpt_bytes(sample)
            )
            return
        if fmt == "json":
            yield from self._read_json_array(path, gzipped, encoding)
        elif fmt == "jsonl":
            yield from self._read_jsonl(path, gzipped, encoding)
        else:
            yield from self._read_csv(path, gzipped, encoding, "\t" if fmt == "tsv" else None)

    def _open(self, path: Path, gzipped: bool) -> IO[bytes]:
        if gzipped:
            return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is a binary IO
        return path.open("rb")

    def _read_jsonl(self, path: Path, gzipped: bool, encoding: str) -> Iterator[Item]:
        file = str(path)
        prefix = self._key_prefix(path)
        mapper: RowMapper | None = None
        with self._open(path, gzipped) as raw:
            lines: Iterator[bytes | str]
            if encoding in _BYTE_ENCODINGS:
                lines = iter(raw)  # bytes straight into orjson: the fast path
            else:
                lines = iter(io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline=""))
            n = 0
            while True:
                try:
                    line = next(lines)
                except StopIteration:
                    break
                except (OSError, EOFError, zlib.error) as exc:
                    yield self._broken(file, n, exc)
                    break
                n += 1
                if n == 1 and isinstance(line, bytes) and line.startswith(codecs.BOM_UTF8):
                    line = line[3:]
                if line.isspace() or not line:
                    continue  # a blank line is not a record
                try:
                    row = _loads(line)
                except ValueError:
                    row = _loads_lenient(line)
                    if row is _INVALID:
                        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
                        prov = Provenance(file, f"line {n}", ADAPTER)
                        yield Rejected(self.source, "invalid_json", prov, "line is not valid JSON", text)
                        continue
                if mapper is None and isinstance(row, dict):
                    mapper = self._mapper(path, row.keys(), row)
                if mapper is None:  # no object seen yet: nothing to guess from, but the row is bad anyway
                    mapper = self._mapper(path, (), None)
                yield mapper.map(row, file, f"line {n}", f"{prefix}:{n}")

    def _read_json_array(self, path: Path, gzipped: bool, encoding: str) -> Iterator[Item]:
        file = str(path)
        try:
            with self._open(path, gzipped) as raw:
                data = raw.read()
        except (OSError, EOFError, zlib.error) as exc:
            yield self.reject("unreadable_file", file, "file", f"{type(exc).__name__}: {exc}")
            return
        text: bytes | str = data if encoding in _BYTE_ENCODINGS else data.decode(encoding, "replace")
        try:
            rows = _loads(text)
        except ValueError:
            rows = _loads_lenient(text)
        if rows is _INVALID or not isinstance(rows, list):
            what = "not valid JSON" if rows is _INVALID else f"a JSON {type(rows).__name__}, not an array"
            yield self.reject("unreadable_file", file, "file", what, _excerpt_bytes(data))
            return
        prefix = self._key_prefix(path)
        first = next((r for r in rows if isinstance(r, dict)), None)
        mapper = self._mapper(path, first.keys() if first else (), first)
        for n, row in enumerate(rows, 1):
            yield mapper.map(row, file, f"row {n}", f"{prefix}:{n}")

    def _read_csv(self, path: Path, gzipped: bool, encoding: str, delimiter: str | None) -> Iterator[Item]:
        file = str(path)
        prefix = self._key_prefix(path)
        with self._open(path, gzipped) as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
            try:
                first_line = text.readline()
            except (OSError, EOFError, zlib.error) as exc:
                yield self.reject("unreadable_file", file, "file", f"{type(exc).__name__}: {exc}")
                return
            if delimiter is None:
                # the header's most frequent candidate separator (Kaggle-style exports use ";" too)
                delimiter = max(_CSV_DELIMITERS, key=first_line.count) if first_line.strip() else ","
            try:
                header = next(csv.reader([first_line], delimiter=delimiter), [])
            except csv.Error as exc:
                yield self.reject("unreadable_file", file, "file", f"bad CSV header: {exc}")
                return
            columns = [h.strip() for h in header]
            if not any(columns):
                return  # an empty file: no records
            reader = csv.reader(text, delimiter=delimiter)
            mapper: RowMapper | None = None
            n = 0
            width = len(columns)
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    n += 1
                    prov = Provenance(file, f"row {n}", ADAPTER)
                    yield Rejected(self.source, "malformed_row", prov, f"csv: {exc}")
                    continue
                except (OSError, EOFError, zlib.error) as exc:
                    yield self._broken(file, n, exc, "row")
                    break
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line
                n += 1
                if len(cells) > width and any(c.strip() for c in cells[width:]):
                    prov = Provenance(file, f"row {n}", ADAPTER)
                    detail = f"{len(cells)} cells for {width} columns"
                    yield Rejected(self.source, "malformed_row", prov, detail, delimiter.join(cells))
                    continue
                row = {c: v for c, v in zip(columns, cells, strict=False) if v != ""}
                if mapper is None:
                    mapper = self._mapper(path, columns, row)
                yield mapper.map(row, file, f"row {n}", f"{prefix}:{n}")

    def _read_parquet(self, path: Path) -> Iterator[Item]:
        import pyarrow as pa  # imported here: the JSON Lines and CSV paths do not need it
        import pyarrow.parquet as pq

        file = str(path)
        try:
            pf = pq.ParquetFile(path)
            columns = pf.schema_arrow.names
        except (OSError, pa.ArrowException, ValueError) as exc:
            yield self.reject("unreadable_file", file, "file", f"{type(exc).__name__}: {exc}")
            return
        prefix = self._key_prefix(path)
        mapper: RowMapper | None = None
        n = 0
        batches = pf.iter_batches(batch_size=_PARQUET_BATCH)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except (OSError, pa.ArrowException, ValueError) as exc:
                yield self._broken(file, n, exc, "row")
                break
            for row in batch.to_pylist():
                n += 1
                if mapper is None:
                    mapper = self._mapper(path, columns, row)
                yield mapper.map(row, file, f"row {n}", f"{prefix}:{n}")
        pf.close()

    def _broken(self, file: str, n: int, exc: BaseException, unit: str = "line") -> Rejected:
        """A stream that breaks off: unreadable when nothing was read, else truncated after item n."""
        detail = f"{type(exc).__name__}: {exc}"
        if n == 0:
            return self.reject("unreadable_file", file, "file", detail)
        return self.reject(
            "truncated_file", file, f"{unit} {n + 1}", f"stream ends after {unit} {n}: {detail}"
        )


_INVALID = object()
#: encodings whose JSON goes to orjson as bytes (orjson wants UTF-8; other lines are repaired one by one)
_BYTE_ENCODINGS = frozenset(("utf-8", "cp1252"))


def _loads_lenient(data: bytes | str) -> Any:
    """json (not orjson), which takes what orjson refuses (NaN, lone surrogates), on repaired text.

    Bytes that are not UTF-8 are decoded as cp1252: a line from a latin-1 exporter keeps its characters
    (the clean stage's ftfy can still fix mojibake, but not U+FFFD).
    """
    text = data
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _INVALID


def _excerpt_bytes(sample: bytes) -> str:
    return sample[:120].decode("latin-1").encode("unicode_escape").decode("ascii")[:300]

"""Ingest: read scraped sources into raw records with provenance.

Three adapters, each a :class:`SourceReader` that yields, for every input record, one :class:`RawRecord`
or one :class:`Rejected` (never dropping input silently):

- ``tabular`` (:mod:`pipeline.ingest.tabular`): CSV/TSV, JSON Lines (.gz), JSON arrays, Parquet, with
  column-mapping presets (``pipeline/resources/presets.yaml``);
- ``html`` (:mod:`pipeline.ingest.html`): folders of saved listing pages;
- ``telegram`` (:mod:`pipeline.ingest.telegram`): Telegram Desktop ``result.json`` exports.

Typical use::

    reader = read_source(Path("data/raw/tg"), source="sample_telegram")
    for item in reader:
        ...
    reader.skipped  # {"service_message": 3}: input that is no record at all
    reader.files    # the files read
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.ingest.html import HtmlReader
from pipeline.ingest.records import (
    REJECT_REASONS,
    Item,
    Provenance,
    RawRecord,
    Rejected,
    SourceReader,
    stable_id,
)
from pipeline.ingest.tabular import TabularReader, get_preset, preset_names
from pipeline.ingest.telegram import TelegramReader

__all__ = [
    "ADAPTERS",
    "REJECT_REASONS",
    "HtmlReader",
    "Item",
    "Provenance",
    "RawRecord",
    "Rejected",
    "SourceReader",
    "TabularReader",
    "TelegramReader",
    "detect_adapter",
    "get_preset",
    "preset_names",
    "read_source",
    "stable_id",
]

ADAPTERS: tuple[str, ...] = ("tabular", "html", "telegram")

_HTML_SUFFIXES = (".html", ".htm", ".xhtml")


def _json_is_object(path: Path) -> bool:
    """True when a .json file's first non-blank character opens an object (a Telegram export)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def detect_adapter(path: Path) -> str:
    """The adapter for a file or folder.

    A folder: ``telegram`` when it holds a ``result.json``, else ``html`` when it holds .html/.htm pages,
    else ``tabular``. A file: ``.html``/``.htm`` -> html; ``result.json``, or a ``.json`` whose top level is
    an object (``messages`` / ``chats``) -> telegram; everything else (CSV, JSONL, gz, Parquet, JSON arrays,
    missing files) -> tabular, which reports a file it cannot read as ``unreadable_file``.
    """
    path = Path(path)
    if path.is_dir():
        names = [p.name.lower() for p in path.rglob("*") if p.is_file()]
        if "result.json" in names:
            return "telegram"
        if any(n.endswith(_HTML_SUFFIXES) for n in names):
            return "html"
        return "tabular"
    name = path.name.lower()
    if name.endswith(_HTML_SUFFIXES):
        return "html"
    if name == "result.json" or (name.endswith(".json") and _json_is_object(path)):
        return "telegram"
    return "tabular"


def read_source(
    path: Path,
    source: str,
    adapter: str | None = None,
    preset: str | None = None,
    mapping: Mapping[str, Any] | None = None,
) -> SourceReader:
    """A reader over ``path`` (a file or a folder) for the source named ``source``.

    ``adapter`` None detects it (:func:`detect_adapter`). ``preset`` and ``mapping`` apply to the tabular
    adapter only: a preset name from ``presets.yaml`` (None: guessed per file) and a column mapping
    (target field -> source column) that overrides or extends it. Iterate the reader for the records;
    afterwards ``.skipped`` and ``.files`` tell what was passed over and read.
    """
    path = Path(path)
    adapter = adapter or detect_adapter(path)
    if adapter not in ADAPTERS:
        raise ValueError(f"unknown adapter {adapter!r}; use one of {ADAPTERS}")
    if adapter != "tabular" and (preset is not None or mapping):
        raise ValueError(f"preset and mapping apply to the tabular adapter, not {adapter!r}")
    if adapter == "html":
        return HtmlReader(path, source)
    if adapter == "telegram":
        return TelegramReader(path, source)
    return TabularReader(path, source, preset=preset, mapping=mapping)

"""Batch scoring: scrapes in any supported format -> labelled records (contract section 6) as JSONL.

The same adapters and cleaning as training (``clean.clean_sources``), then the one Tagger. Every input
record ends up either in the output or in the quarantine file beside it (``<out>.quarantine.jsonl``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.clean import SourceSpec, clean_sources
from pipeline.config import Paths
from pipeline.dedup import NearDupParams
from pipeline.progress import progress_bar
from pipeline.tagger import Tagger, to_json_line

CHUNK = 20_000


def quarantine_path(out: Path) -> Path:
    """Where the quarantine of an output file goes: beside it."""
    return out.with_name(out.name.removesuffix(".jsonl") + ".quarantine.jsonl")


def score_paths(
    inputs: list[Path],
    out: Path,
    models_dir: Path,
    near_dup: NearDupParams | None = None,
    adapter: str | None = None,
    preset: str | None = None,
) -> dict[str, Any]:
    """Clean and tag ``inputs``; write JSONL to ``out``; return the accounting."""
    tagger = Tagger.load(models_dir)
    specs = [
        SourceSpec(name=p.stem or p.name, path=str(p.resolve()), adapter=adapter, preset=preset)
        for p in inputs
    ]  # type: ignore[arg-type]
    result = clean_sources(specs, near_dup or NearDupParams(enabled=False), Paths())
    frame = result.table.to_pandas()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for start in progress_bar(range(0, len(frame), CHUNK), "score", total=-(-len(frame) // CHUNK)):
            for record in tagger.tag(frame.iloc[start : start + CHUNK]):
                f.write(to_json_line(record) + "\n")
    qpath = quarantine_path(out)
    with open(qpath, "w", encoding="utf-8") as f:
        for entry in result.quarantine:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    totals = result.report["totals"]
    return {
        "read": totals["read"],
        "scored": len(frame),
        "quarantined": totals["quarantined"],
        "quarantine_file": str(qpath),
        "accounting_ok": totals["read"] == len(frame) + totals["quarantined"],
        "model": tagger.model,
    }

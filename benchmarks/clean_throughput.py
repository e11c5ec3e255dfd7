"""Benchmark: records/s of the clean stage on the whole shared corpus, without and with near-duplicate
search, and peak memory. Prints figures; asserts nothing (not a timed test).

usage: .venv/bin/python benchmarks/clean_throughput.py [--repeat-near-dup 1,2]
Each configuration runs in a fresh subprocess so peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKETS = REPO.parent / "shared" / "data" / "markets"
FILES = {
    "agora_2014_listings.jsonl.gz": "agora_2014",
    "agora_2014_snapshots.jsonl.gz": "agora_2014_snapshots",
    "agora_2014_vendorpages.jsonl.gz": "agora_2014_vendorpages",
    "alphabay_2017_listings.jsonl.gz": "alphabay_2017",
    "torrez_2021_2022_listings.jsonl.gz": "torrez_2021_2022",
    "torrez_2021_2022_snapshots.jsonl.gz": "torrez_2021_2022_snapshots",
    "onion_pages_2017.jsonl.gz": "onion_pages",
    "spam_ads.jsonl.gz": "spam_ads",
}


def one_run(near_dup: bool) -> dict[str, float]:
    from pipeline.clean import SourceSpec, clean_sources
    from pipeline.config import Paths
    from pipeline.dedup import NearDupParams

    specs = [
        SourceSpec(name=name.split(".")[0], path=str(MARKETS / name), adapter="tabular", preset=preset)
        for name, preset in FILES.items()
    ]
    started = time.perf_counter()
    result = clean_sources(specs, NearDupParams(enabled=near_dup), Paths(REPO), workers=2)
    seconds = time.perf_counter() - started
    read = result.report["totals"]["read"]
    return {
        "near_dup": near_dup,
        "records": read,
        "kept": result.report["totals"]["kept"],
        "dup_groups": result.report["totals"]["dup_groups"],
        "seconds": round(seconds, 2),
        "records_per_s": round(read / seconds),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def dedup_scaling() -> list[dict[str, float]]:
    """Near-dup search alone on growing prefixes of the corpus texts: time should grow linearly."""
    import pandas as pd

    from pipeline.dedup import NearDupParams, group_duplicates

    texts: list[str] = []
    for name in FILES:
        frame = pd.read_json(MARKETS / name, lines=True)
        column = "title" if "title" in frame else "text"
        texts += [str(t) for t in frame[column].fillna("")]
    rows = []
    for n in (len(texts) // 4, len(texts) // 2, len(texts)):
        ids = [str(i) for i in range(n)]
        started = time.perf_counter()
        group_duplicates(ids, texts[:n], NearDupParams())
        seconds = time.perf_counter() - started
        rows.append({"texts": n, "seconds": round(seconds, 2), "texts_per_s": round(n / seconds)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=["plain", "neardup", "scaling"])
    args = parser.parse_args()
    if args.child:
        result = {
            "plain": lambda: one_run(False),
            "neardup": lambda: one_run(True),
            "scaling": dedup_scaling,
        }[args.child]()
        print(json.dumps(result))
        return
    if not MARKETS.is_dir():
        sys.exit(f"shared corpus not found at {MARKETS}: nothing to benchmark")
    for child in ("plain", "neardup", "scaling"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", child], capture_output=True, text=True, check=True
        )
        print(child, out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()

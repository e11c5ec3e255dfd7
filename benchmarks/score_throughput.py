"""Benchmark: listings/s and peak memory of ``narcotag score``, side by side with (a) a per-record
``pyfunc.predict`` loop and (b) the bare drug-type model (vectorizers + linear) on the same texts.
Prints figures; asserts nothing (not a timed test).

usage: .venv/bin/python benchmarks/score_throughput.py [--sizes 100000,1000000] [--workers 2]
           [--model models] [--pyfunc models:/narcotag-tagger@champion] [--loop 2000] [--format parquet]

Input: the shared market titles (``../shared/data/markets/*_listings.jsonl.gz``; the built-in sample when
the shared corpus is absent), replicated with fresh ids into a generic-format JSONL of each size. Each
``narcotag score`` run is a fresh subprocess; its process tree is sampled for memory: peak RSS of the
largest process, and peak PSS summed over the tree (shared pages counted once). A per-stage CPU profile
of one chunk says where the time goes.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MARKETS = REPO.parent / "shared" / "data" / "markets"
LISTINGS = (
    "agora_2014_listings.jsonl.gz",
    "alphabay_2017_listings.jsonl.gz",
    "torrez_2021_2022_listings.jsonl.gz",
)


def base_rows() -> tuple[list[dict[str, Any]], str]:
    """Generic-format rows from the shared listings (or the sample), and where they came from."""
    rows = []
    if MARKETS.is_dir():
        for name in LISTINGS:
            with gzip.open(MARKETS / name, "rt", encoding="utf-8") as f:
                for line in f:
                    r = json.loads(line)
                    rows.append(
                        {"kind": "listing", "market": r.get("market", "")[:40], "vendor": r.get("vendor"),
                         "title": r.get("title"), "description": r.get("description"),
                         "category": r.get("category"), "ships_from": r.get("ships_from"),
                         "ships_to": r.get("ships_to"), "price": r.get("price"),
                         "currency": r.get("price_currency")}
                    )  # fmt: skip
        return rows, f"{len(rows):,} shared market titles ({', '.join(LISTINGS)})"
    print(f"{MARKETS} not found: replicating the built-in sample listings instead")
    sample = REPO / "data" / "raw" / "sample" / "listings.jsonl"
    for line in sample.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict):
            rows.append({k: v for k, v in r.items() if k != "id"})
    return rows, f"{len(rows):,} sample listings"


def write_input(rows: list[dict[str, Any]], n: int, path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, row in zip(range(n), itertools.cycle(rows), strict=False):
            f.write(json.dumps({"id": f"bench-{i}", **row}, ensure_ascii=False) + "\n")
    return path


def _rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes from /proc/PID/smaps_rollup (cheap; full smaps would stall the process)."""
    values = {"Rss:": 0, "Pss:": 0}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(" ")
                if key in values:
                    values[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return values["Rss:"], values["Pss:"]


class TreeMemory:
    """Samples a process tree once a second: peak RSS of its largest process, peak PSS of the tree."""

    def __init__(self, pid: int, every: float = 1.0) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.every = every
        self.max_rss = 0
        self.max_pss_total = 0
        self.max_rss_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                pids = [self.root.pid, *(c.pid for c in self.root.children(recursive=True))]
            except psutil.NoSuchProcess:
                return
            sizes = [_rollup(pid) for pid in pids]
            self.max_rss = max([self.max_rss, *(rss for rss, _ in sizes)])
            self.max_pss_total = max(self.max_pss_total, sum(pss for _, pss in sizes))
            self.max_rss_total = max(self.max_rss_total, sum(rss for rss, _ in sizes))
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_score(
    data: Path, out: Path, model: str, workers: int, fmt: str, prior_sample: int | None = None
) -> dict[str, Any]:
    command = [sys.executable, "-m", "pipeline.cli", "score", str(data), "--out", str(out), "--model", model,
               "--format", fmt, "--workers", str(workers), "--params", str(REPO / "params.yaml")]  # fmt: skip
    if prior_sample is not None:
        command += ["--prior-sample", str(prior_sample)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    memory = TreeMemory(process.pid)
    _, err = process.communicate()
    memory.stop()
    wall = time.perf_counter() - started
    if process.returncode:
        raise RuntimeError(err[-3000:])
    summary = json.loads((out / "summary.json").read_text())
    return {
        "records": summary["read"],
        "wall_s": round(wall, 1),
        "score_s": summary["seconds"],  # inside score(): without interpreter start and model load
        "first_pass_s": summary.get("first_pass_seconds"),  # each market's class mix (inside score_s)
        # each vendor's other listings: the second pass over the pre-parts (inside score_s; absent when off)
        "vendor_pass_s": (summary.get("vendor_context") or {}).get("seconds"),
        "vendor_changed": (summary.get("vendor_context") or {}).get("changed"),
        "listings_per_s": round(summary["read"] / wall),
        "listings_per_s_in_score": round(summary["read"] / summary["seconds"]),
        "peak_rss_largest_mib": round(memory.max_rss / 2**20),
        "peak_pss_tree_mib": round(memory.max_pss_total / 2**20),
        "peak_rss_tree_mib": round(memory.max_rss_total / 2**20),
    }


def pyfunc_loop(rows: list[dict[str, Any]], model: str, models_dir: Path, n: int) -> dict[str, Any]:
    """(a) one ``pyfunc.predict`` call per record (the naive online loop)."""
    import mlflow
    import pandas as pd

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from pipeline.config import Paths
    from pipeline.score import resolve_model

    try:
        uri = str(resolve_model(model, Paths(REPO)).location) if model.startswith("models:/") else model
        loaded = mlflow.pyfunc.load_model(uri)
        source = model
    except Exception as e:  # noqa: BLE001 - no registry here: log the models folder as a pyfunc
        print(f"({model} not loadable: {type(e).__name__}; using a pyfunc built from {models_dir})")
        tmp = Path(tempfile.mkdtemp(prefix="narcotag-pyfunc-"))
        mlflow.pyfunc.save_model(
            path=str(tmp / "model"), python_model=str(REPO / "pipeline" / "serving.py"),
            artifacts={"models": str(models_dir)}, code_paths=[str(REPO / "pipeline")],
        )  # fmt: skip
        loaded, source = mlflow.pyfunc.load_model(str(tmp / "model")), f"{models_dir} (pyfunc)"
    frames = [
        pd.DataFrame([{"id": f"loop-{i}", **r}])
        for i, r in enumerate(itertools.islice(itertools.cycle(rows), n))
    ]
    loaded.predict(frames[0])
    started = time.perf_counter()
    for frame in frames:
        loaded.predict(frame)
    seconds = time.perf_counter() - started
    return {"model": source, "records": n, "seconds": round(seconds, 1), "listings_per_s": round(n / seconds)}


def bare_model(rows: list[dict[str, Any]], models_dir: Path, n: int) -> dict[str, Any]:
    """(b) the drug-type model alone on the same (cleaned, folded, lower-cased) texts, one process."""
    import numpy as np
    import scipy.sparse as sp

    from pipeline.heads.drug_type import DrugTypeHead
    from pipeline.text import clean_text, compose_text, fold_obfuscation

    head = DrugTypeHead.load(models_dir / "drug_type")
    texts = []
    for r in itertools.islice(itertools.cycle(rows), n):
        text = compose_text(clean_text(r.get("title")), clean_text(r.get("description")))
        texts.append(fold_obfuscation(text).lower())
    pipeline = head.pipeline_
    started = time.perf_counter()
    pipeline.predict_proba(texts)
    full = time.perf_counter() - started
    union = pipeline.named_steps["features"]
    word, char = (dict(union.transformer_list)[k] for k in ("word", "char"))
    classifier = pipeline.named_steps["classifier"]
    # the lexicon and offer columns as zeros: the vectorizers and the linear model alone
    width = next(e.coef_.shape[1] for e in classifier.estimators_ if hasattr(e, "coef_"))
    started = time.perf_counter()
    xw, xc = word.transform(texts), char.transform(texts)
    rest = sp.csr_matrix((len(texts), width - xw.shape[1] - xc.shape[1]), dtype=np.float32)
    classifier.predict_proba(sp.hstack([xw, xc, rest]).tocsr())
    tfidf = time.perf_counter() - started
    # the same probabilities the way the head computes them when scoring: character n-grams by CharWbCounter,
    # one lexicon scan (then the strong-name rule, a few percent)
    started = time.perf_counter()
    head._finish_scores(head._probabilities(texts, head._lexicon_hits(texts)), texts, None)
    fast = time.perf_counter() - started
    counter = head._counter()
    started = time.perf_counter()
    xc = counter.transform(texts) if counter is not None else char.transform(texts)
    classifier.predict_proba(sp.hstack([word.transform(texts), xc, rest]).tocsr())
    tfidf_fast = time.perf_counter() - started
    return {
        "records": n,
        "model_s": round(full, 1),
        "model_listings_per_s": round(n / full),
        "tfidf_linear_s": round(tfidf, 1),
        "tfidf_linear_listings_per_s": round(n / tfidf),
        "model_fast_listings_per_s": round(n / fast),
        "tfidf_linear_fast_listings_per_s": round(n / tfidf_fast),
    }


def profile_chunk(rows: list[dict[str, Any]], models_dir: Path, n: int) -> list[tuple[str, float]]:
    """CPU seconds of every step of one chunk of ``n`` records, in one process (after warm-up)."""
    import pyarrow as pa

    from pipeline.clean import clean_records
    from pipeline.dedup import NearDupParams
    from pipeline.heads.registry import HEADS
    from pipeline.ingest import read_source
    from pipeline.schema import RECORD_SCHEMA
    from pipeline.score import ScoreParams, chunk_stats, labelled_records, write_records
    from pipeline.tagger import Tagger, _unique_rows

    with tempfile.TemporaryDirectory() as tmp:
        data = write_input(rows, n, Path(tmp) / "chunk.jsonl")
        tagger = Tagger.load(models_dir)
        gc.freeze()  # as narcotag score does: the collector no longer walks the model's objects
        steps: list[tuple[str, float]] = []

        def timed(label: str, fn: Any) -> Any:
            cpu = time.process_time()
            result = fn()
            steps.append((label, time.process_time() - cpu))
            return result

        items = timed("read (ingest adapter)", lambda: list(read_source(data, "bench", preset="generic")))
        clean_records(items[:2000], NearDupParams(enabled=False))  # language models loaded once, not timed
        rows_, quarantine = timed("clean_records", lambda: clean_records(items, NearDupParams(enabled=False)))
        frame = timed(
            "records -> DataFrame", lambda: pa.Table.from_pylist(rows_, schema=RECORD_SCHEMA).to_pandas()
        )
        unique, _ = _unique_rows(frame.reset_index(drop=True))  # what Tagger.tag hands the heads
        # steady state, as in a worker after its first chunk: per-process caches (origin fields, compiled
        # patterns) filled by one untimed pass
        labelled_records(tagger, frame, ScoreParams())
        for name in HEADS:
            timed(f"head {name}", lambda name=name: tagger.heads[name].predict(unique))
        heads_cpu = sum(seconds for label, seconds in steps if label.startswith("head "))
        records = timed("assemble records", lambda: labelled_records(tagger, frame, ScoreParams()))
        # labelled_records runs the heads again: its own share is the rest (the output records, prices)
        steps[-1] = ("assemble records", max(0.0, steps[-1][1] - heads_cpu))
        timed("write parquet part", lambda: write_records(records, Path(tmp) / "part.parquet", "parquet"))
        timed("chunk statistics", lambda: chunk_stats(records, quarantine, 40))
        return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default="models", help="model for narcotag score (a folder or models:/)")
    parser.add_argument("--pyfunc", default="models:/narcotag-tagger@champion", help="model for the loop")
    parser.add_argument("--loop", type=int, default=2000, help="records for the per-record loop")
    parser.add_argument("--bare", type=int, default=100_000, help="records for the bare model")
    parser.add_argument("--format", default="parquet")
    parser.add_argument(
        "--prior-sample", type=int, default=None, help="listings sampled by the first pass (0 = none)"
    )
    parser.add_argument("--skip", default="", help="comma list of parts to skip: score,loop,bare,profile")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    models_dir = REPO / "models" if args.model.startswith("models:/") else Path(args.model).resolve()
    rows, origin = base_rows()
    print(f"input: {origin}, replicated with fresh ids; {os.cpu_count()} CPUs; workers={args.workers}")
    print(f"load average at start: {os.getloadavg()}")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="narcotag-bench-") as tmp:
        if "score" not in skip:
            for n in (int(s) for s in args.sizes.split(",")):
                data = write_input(rows, n, Path(tmp) / f"input-{n}.jsonl")
                out = Path(tmp) / f"out-{n}"
                result = run_score(data, out, args.model, args.workers, args.format, args.prior_sample)
                results[f"score_{n}"] = result
                print(f"narcotag score {n:>9,}: {json.dumps(result)}", flush=True)
                data.unlink()
    if "loop" not in skip:
        results["loop"] = pyfunc_loop(rows, args.pyfunc, models_dir, args.loop)
        print(f"(a) per-record pyfunc.predict loop: {json.dumps(results['loop'])}", flush=True)
    if "bare" not in skip:
        results["bare"] = bare_model(rows, models_dir, args.bare)
        print(f"(b) bare drug-type model, one process: {json.dumps(results['bare'])}", flush=True)
    if "profile" not in skip:
        steps = profile_chunk(rows, models_dir, 10_000)
        total = sum(s for _, s in steps)
        print("\nwhere the time goes (CPU seconds for one 10,000-record chunk, one process):")
        for label, seconds in steps:
            print(f"  {label:28s} {seconds:7.2f} s  {100 * seconds / total:5.1f} %")
        print(f"  {'total':28s} {total:7.2f} s  -> {10_000 / total:,.0f} listings/s per core")
    scored = [v for k, v in results.items() if k.startswith("score_")]
    if scored:
        best = max(scored, key=lambda r: r["records"])
        print("\nside by side (largest run):")
        rate = best["listings_per_s"]
        print(f"  narcotag score, {args.workers} workers : {rate:>8,} listings/s (wall, incl. start-up)")
        if "loop" in results:
            loop = results["loop"]["listings_per_s"]
            print(f"  (a) pyfunc loop         : {loop:>8,} listings/s -> score is {rate / loop:.1f}x")
        if "bare" in results:
            for label, key in (("scikit-learn predict_proba", "model_listings_per_s"),
                               ("the head's fast path", "model_fast_listings_per_s")):  # fmt: skip
                bare = results["bare"][key]
                verdict = f"{bare / rate:.2f}x slower" if bare > rate else f"{rate / bare:.2f}x faster"
                print(f"  (b) bare drug-type model, {label}: {bare:>8,} listings/s -> score is {verdict}")
        sizes = ", ".join(
            f"{r['records']:,}: {r['peak_rss_largest_mib']} MiB RSS / {r['peak_pss_tree_mib']} MiB PSS"
            for r in scored
        )
        print(f"  peak memory (largest process RSS / whole tree PSS) by input size: {sizes}")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()

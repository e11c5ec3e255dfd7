"""Benchmark: texts/s of the transformer drug_type head, torch fp32 vs ONNX int8 (onnxruntime), at batch
size 1 and larger batches; the model file sizes; and, given a reports folder holding both families' score
tables, macro-F1 fp32 vs int8 per leave-one-market-out rotation (thresholds tuned on each rotation's val
part, decisions on its test part: the compare stage's rule).
Prints figures; asserts nothing (not a timed test).

usage: .venv/bin/python benchmarks/transformer_throughput.py [--root .] [--texts 2000] [--batches 1,32,64]
           [--fp32 models/drug_type_transformer] [--int8 models/drug_type_transformer_int8]
           [--reports reports/shared]

Texts: the prepared table ``data/processed/drug_type.parquet`` under ``--root`` (a seeded sample of
``--texts`` records; batch size 1 times at most 300 of them). Single process, the head's 2 threads. Run it
niced on a shared machine; figures move with other load.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd

from pipeline import families
from pipeline.heads.drug_type_transformer import ONNX_FILE, TransformerDrugTypeHead


def texts_per_second(head: TransformerDrugTypeHead, records: pd.DataFrame, batch_size: int) -> float:
    """predict_scores throughput at one batch size (best of two runs after a warm-up)."""
    head.params = dataclasses.replace(head.params, eval_batch_size=batch_size)
    head.predict_scores(records.head(8))
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        head.predict_scores(records)
        best = min(best, time.perf_counter() - started)
    return len(records) / best


def main() -> None:
    """Parse arguments, time both backends, print sizes and (optionally) the F1 comparison."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batches", default="1,32,64")
    parser.add_argument("--fp32", type=Path, default=Path("models/drug_type_transformer"))
    parser.add_argument("--int8", type=Path, default=Path("models/drug_type_transformer_int8"))
    parser.add_argument("--reports", type=Path, default=None, help="reports/<data> (holds families/)")
    args = parser.parse_args()

    fp32_dir, int8_dir = args.root / args.fp32, args.root / args.int8
    frame = pd.read_parquet(args.root / "data" / "processed" / "drug_type.parquet")
    records = frame.sample(n=min(args.texts, len(frame)), random_state=0)
    heads = {
        "torch fp32": TransformerDrugTypeHead.load(fp32_dir),
        "onnx int8": TransformerDrugTypeHead.load(int8_dir),
    }
    print(f"{len(records)} texts from {args.root / 'data/processed/drug_type.parquet'}")
    for batch in (int(b) for b in args.batches.split(",")):
        subset = records.head(300) if batch == 1 else records
        line = ", ".join(f"{name} {texts_per_second(h, subset, batch):8.1f}" for name, h in heads.items())
        print(f"batch {batch:>3} ({len(subset)} texts): texts/s {line}")
    fp32_bytes = sum(f.stat().st_size for f in fp32_dir.glob("*.safetensors"))
    int8_bytes = (int8_dir / ONNX_FILE).stat().st_size
    print(f"model size: fp32 safetensors {fp32_bytes / 1e6:.1f} MB, int8 onnx {int8_bytes / 1e6:.1f} MB")

    if args.reports is not None:
        from pipeline.train_transformer import rotation_macro_f1

        params = heads["torch fp32"].params
        table = {}
        for family in ("transformer", "transformer_int8"):
            scores = families.read_scores(families.scores_path(args.root / args.reports, family))
            table[family] = rotation_macro_f1(scores, params.fallback_ratio, params)
        print("macro-F1 (thresholds on val, decide on test):")
        for rotation in sorted(k for k in table["transformer"] if k != "lomo_mean_macro_f1"):
            a = table["transformer"][rotation]["macro_f1"]
            b = table["transformer_int8"].get(rotation, {}).get("macro_f1", float("nan"))
            print(f"  {rotation:<10} fp32 {a:.4f}  int8 {b:.4f}  change {100 * (b - a):+.2f} points")
        if "lomo_mean_macro_f1" in table["transformer"]:
            a, b = table["transformer"]["lomo_mean_macro_f1"], table["transformer_int8"]["lomo_mean_macro_f1"]
            print(f"  LOMO mean  fp32 {a:.4f}  int8 {b:.4f}  change {100 * (b - a):+.2f} points")


if __name__ == "__main__":
    main()

"""Agreement between the two blind reviews of the sampled records: Cohen's kappa per head.

Pairs are the records with a decision in force in round 1 and in round 2 (two different reviewers, the
second blind to the first). Per head:

- ``drug_types`` and ``laundering_hints``: kappa per code (present / absent), and for the whole label set;
- ``ships_from`` and ``ships_to``: kappa over the list of codes as one category;
- ``quantity``: share of pairs whose field agrees within the contract's 2% tolerance (no kappa: numbers).

A code nobody used in the pairs has no kappa (``null``: no variation), only its observed agreement.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.review.storage import ReviewStore
from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, QUANTITY_FIELDS, QUANTITY_TOLERANCE


def review_pairs(store: ReviewStore) -> list[tuple[str, dict[str, Any], dict[str, Any], str, str]]:
    """(record id, round-1 labels, round-2 labels, reviewer 1, reviewer 2) for every double review."""
    rounds: dict[str, dict[int, dict[str, Any]]] = {}
    for d in store.current_decisions():
        rounds.setdefault(d["rid"], {})[d["round"]] = d
    return [
        (rid, r[1]["after"], r[2]["after"], r[1]["reviewer"], r[2]["reviewer"])
        for rid, r in sorted(rounds.items())
        if 1 in r and 2 in r and r[1]["reviewer"] != r[2]["reviewer"]
    ]


def kappa(a: list[Any], b: list[Any]) -> dict[str, Any]:
    """Cohen's kappa of two raters' labels and their observed agreement; kappa is None without variation."""
    from sklearn.metrics import cohen_kappa_score

    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n if n else None
    value: float | None = None
    if n and len(set(a) | set(b)) > 1:
        k = float(cohen_kappa_score(a, b))
        value = None if math.isnan(k) else round(k, 4)
    return {"kappa": value, "agreement": None if observed is None else round(observed, 4), "n": n}


def _same_number(x: float | None, y: float | None) -> bool:
    if x is None or y is None:
        return x is None and y is None
    return math.isclose(x, y, rel_tol=QUANTITY_TOLERANCE, abs_tol=1e-9)


def agreement(store: ReviewStore) -> dict[str, Any]:
    """Kappa per head over the blind double reviews (see the module docstring)."""
    pairs = review_pairs(store)
    first = [p[1] for p in pairs]
    second = [p[2] for p in pairs]
    heads: dict[str, Any] = {}
    for head, codes in (("drug_types", DRUG_TYPES), ("laundering_hints", LAUNDERING_HINTS)):
        per_code = {}
        for code in codes:
            a = [int(code in x[head]) for x in first]
            b = [int(code in y[head]) for y in second]
            per_code[code] = {**kappa(a, b), "positives": [sum(a), sum(b)]}
        whole = kappa(["|".join(x[head]) for x in first], ["|".join(y[head]) for y in second])
        heads[head] = {"set": whole, "per_code": per_code}
    for head in ("ships_from", "ships_to"):
        heads[head] = kappa(
            ["|".join(x[head]) or "-" for x in first], ["|".join(y[head]) or "-" for y in second]
        )
    heads["quantity"] = {
        q: {
            "agreement": round(
                sum(
                    _same_number(x["quantity"].get(q), y["quantity"].get(q))
                    for x, y in zip(first, second, strict=True)
                )
                / len(pairs),
                4,
            )
            if pairs
            else None,
            "n": len(pairs),
        }
        for q in QUANTITY_FIELDS
    }
    reviewers = Counter(f"{p[3]} / {p[4]}" for p in pairs)
    return {"pairs": len(pairs), "reviewer_pairs": dict(reviewers), "heads": heads}


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def agreement_markdown(report: dict[str, Any]) -> str:
    """The agreement report as a small Markdown page."""
    lines = [
        "# Review agreement (blind double review)",
        "",
        f"Double-reviewed records: **{report['pairs']}**"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in report['reviewer_pairs'].items())})"
            if report["pairs"]
            else ""
        ),
        "",
        "Cohen's kappa per head; `-` where nobody used the code in these records (no variation).",
        "",
        "| head | code | kappa | agreement | positives (1st / 2nd) |",
        "|---|---|---:|---:|---:|",
    ]
    heads = report["heads"]
    for head in ("drug_types", "laundering_hints"):
        whole = heads[head]["set"]
        lines.append(f"| {head} | (whole set) | {_cell(whole['kappa'])} | {_cell(whole['agreement'])} | |")
        for code, v in heads[head]["per_code"].items():
            if v["positives"] == [0, 0]:
                continue
            pos = f"{v['positives'][0]} / {v['positives'][1]}"
            lines.append(f"| {head} | {code} | {_cell(v['kappa'])} | {_cell(v['agreement'])} | {pos} |")
    for head in ("ships_from", "ships_to"):
        v = heads[head]
        lines.append(f"| {head} | (codes) | {_cell(v['kappa'])} | {_cell(v['agreement'])} | |")
    for q, v in heads["quantity"].items():
        lines.append(f"| quantity | {q} | | {_cell(v['agreement'])} | |")
    return "\n".join(lines) + "\n"


def write_agreement(store: ReviewStore, out: Path) -> dict[str, Any]:
    """Compute the agreement and write ``out`` (.md) and the same name with .json beside it."""
    report = agreement(store)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(agreement_markdown(report), encoding="utf-8")
    return report

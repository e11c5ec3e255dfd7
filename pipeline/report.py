"""A static HTML report of one scored batch: one file, no server, plots inline.

Built from what ``narcotag score`` leaves in the batch folder (``manifest.json``, ``summary.json`` and the
per-chunk statistics in ``stats/``), so it never re-reads the labelled records and costs the same for a
thousand records or ten million. Sections: accounting, drug type x shipping origin, laundering hints
(with crypto currencies and contact platforms), price per gram and per unit in USD by drug type, and the
lowest-confidence items for review.

Every piece of scraped text (listing text, ids, market and vendor names, file names) is HTML-escaped:
listings are written by strangers and may carry markup or script.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS

TOP_ORIGINS = 12


@dataclass
class BatchStats:
    """The statistics of every chunk of a batch, merged."""

    records: int = 0
    quarantined: int = 0
    with_hint: int = 0
    quarantine_reasons: Counter[str] = field(default_factory=Counter)
    drug_origin: Counter[tuple[str, str]] = field(default_factory=Counter)
    hints: Counter[str] = field(default_factory=Counter)
    crypto_currencies: Counter[str] = field(default_factory=Counter)
    contact_platforms: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    langs: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    usd_per_gram: dict[str, list[float]] = field(default_factory=dict)
    usd_per_unit: dict[str, list[float]] = field(default_factory=dict)
    lowest_confidence: list[dict[str, Any]] = field(default_factory=list)


def load_batch(root: Path, lowest: int = 40) -> tuple[BatchStats, dict[str, Any], dict[str, Any]]:
    """Merge the chunk statistics of the batch in ``root``; returns (stats, manifest, summary)."""
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    summary_file = root / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.exists() else {}
    stats = BatchStats()
    for index in sorted(int(i) for i in manifest["chunks"]):
        chunk = json.loads((root / "stats" / f"part-{index:05d}.json").read_text(encoding="utf-8"))
        stats.records += chunk["records"]
        stats.quarantined += chunk["quarantined"]
        stats.with_hint += chunk["with_hint"]
        stats.quarantine_reasons.update(chunk["quarantine_reasons"])
        stats.drug_origin.update(
            {tuple(k.split("|", 1)): v for k, v in chunk["drug_origin"].items()}  # type: ignore[misc]
        )
        for name in ("hints", "crypto_currencies", "contact_platforms", "kinds", "langs", "sources"):
            getattr(stats, name).update(chunk[name])
        for name in ("usd_per_gram", "usd_per_unit"):
            merged = getattr(stats, name)
            for code, values in chunk[name].items():
                merged.setdefault(code, []).extend(values)
        stats.lowest_confidence.extend(chunk["lowest_confidence"])
        stats.lowest_confidence.sort(key=lambda r: (r["confidence"], r["id"]))
        del stats.lowest_confidence[lowest:]
    return stats, manifest, summary


# --- plots -------------------------------------------------------------------------------------------


def _png(fig: Any) -> str:
    """A figure as an inline ``<img>`` (base64 PNG)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global backend state, no display needed

    return Figure(figsize=(width, height))


def _heatmap(rows: list[str], cols: list[str], matrix: np.ndarray) -> str:
    fig = _figure(1.2 + 0.55 * len(cols), 1.0 + 0.35 * len(rows))
    ax = fig.subplots()
    ax.imshow(np.log1p(matrix), cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    high = matrix.max() if matrix.size else 0
    for i in range(len(rows)):
        for j in range(len(cols)):
            if matrix[i, j]:
                color = "white" if matrix[i, j] > high / 3 else "black"
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=6, color=color)
    ax.set_title("records by drug type and shipping origin (log colour scale)", fontsize=9)
    return _png(fig)


def _bars(labels: list[str], values: list[int], title: str) -> str:
    fig = _figure(6, 0.6 + 0.3 * max(len(labels), 1))
    ax = fig.subplots()
    ax.barh(range(len(labels)), values, color="#4a7ab5")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    return _png(fig)


def _boxes(groups: dict[str, list[float]], title: str, unit: str) -> str:
    names = list(groups)
    fig = _figure(1.5 + 0.6 * len(names), 4)
    ax = fig.subplots()
    ax.boxplot([groups[n] for n in names], showfliers=False)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(unit, fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig)


# --- HTML --------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) or (
        isinstance(value, str) and value.replace(",", "").replace(".", "").isdigit()
    )
    return f'<td class="num">{_e(value)}</td>' if numeric else f"<td>{_e(value)}</td>"


def _table(header: list[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _price_rows(groups: dict[str, list[float]]) -> list[list[Any]]:
    rows = []
    for code in groups:
        v = np.asarray(groups[code], dtype=float)
        q25, q50, q75 = np.percentile(v, [25, 50, 75])
        rows.append([code, len(v), f"{q25:,.2f}", f"{q50:,.2f}", f"{q75:,.2f}"])
    return rows


def render_report(stats: BatchStats, manifest: dict[str, Any], summary: dict[str, Any], title: str) -> str:
    """The report as one HTML document (plots inline, all scraped text escaped)."""
    batch = manifest.get("batch", {})
    model = batch.get("model", {})
    sections: list[str] = []

    read = summary.get("read", stats.records + stats.quarantined)
    ok = summary.get("accounting_ok")
    source_rows = [
        [
            name,
            s["read"],
            s["scored"],
            s["quarantined"],
            ", ".join(f"{k} {v}" for k, v in s["reasons"].items()),
        ]
        for name, s in summary.get("sources", {}).items()
    ]
    sections.append(
        '<section id="accounting"><h2>Accounting</h2>'
        f"<p><b>{read:,}</b> read = <b>{stats.records:,}</b> scored + <b>{stats.quarantined:,}</b> "
        f"quarantined &mdash; {'checked, every record accounted for' if ok else 'not checked'}.</p>"
        + _table(["source", "read", "scored", "quarantined", "quarantine reasons"], source_rows)
        + _table(
            ["kind / language", "records"],
            [[f"kind {k}", v] for k, v in stats.kinds.most_common()]
            + [[f"lang {k}", v] for k, v in stats.langs.most_common()],
        )
        + "</section>"
    )

    drug_totals: Counter[str] = Counter()
    origin_totals: Counter[str] = Counter()
    for (drug, origin), n in stats.drug_origin.items():
        drug_totals[drug] += n
        origin_totals[origin] += n
    drugs = [d for d in DRUG_TYPES if drug_totals[d]]
    top = [o for o, _ in origin_totals.most_common() if o != "unknown"][:TOP_ORIGINS]
    cols = top + (["other"] if len(origin_totals) - ("unknown" in origin_totals) > len(top) else [])
    cols += ["unknown"] if "unknown" in origin_totals else []
    matrix = np.zeros((len(drugs), len(cols)))
    for (drug, origin), n in stats.drug_origin.items():
        column = origin if origin in cols else "other"
        matrix[drugs.index(drug), cols.index(column)] += n
    heat = _heatmap(drugs, cols, matrix) if drugs and cols else ""
    context = summary.get("vendor_context") or {}
    context_note = (
        f'<p id="vendor-context">Drug types were read with each vendor\'s other listings in the batch: '
        f"{context.get('listings_with_context', 0):,} listings had that context, "
        f"{context.get('changed', 0):,} of them got other drug types from it "
        f"({context.get('filled', 0):,} filled in from the vendor's code where the text named no drug the "
        "model recognised). Each record's <code>vendor_context</code> says which.</p>"
        if context
        else ""
    )
    sections.append(
        '<section id="drug-origin"><h2>Drug type &times; shipping origin</h2>'
        "<p>Records per drug type and ships-from country (a bundle counts once per drug type, a record "
        "shipping from several countries once per country; <i>unknown</i>: no origin found).</p>"
        + context_note
        + heat
        + _table(
            ["drug type", *cols, "total"],
            [[d, *map(int, matrix[i]), drug_totals[d]] for i, d in enumerate(drugs)],
        )
        + "</section>"
    )

    hint_rows = [(h, stats.hints[h]) for h in LAUNDERING_HINTS if stats.hints[h]]
    sections.append(
        '<section id="laundering"><h2>Laundering hints</h2>'
        f"<p>{stats.with_hint:,} of {stats.records:,} records show at least one hint.</p>"
        + (
            _bars([h for h, _ in hint_rows], [n for _, n in hint_rows], "records per hint")
            if hint_rows
            else ""
        )
        + _table(["hint", "records"], hint_rows)
        + _table(["crypto address currency", "addresses"], stats.crypto_currencies.most_common())
        + _table(["contact platform", "contacts"], stats.contact_platforms.most_common())
        + "</section>"
    )

    rates_date = batch.get("rates", {}).get("date") or summary.get("rates_date")
    ppg = {c: stats.usd_per_gram[c] for c in DRUG_TYPES if stats.usd_per_gram.get(c)}
    ppu = {c: stats.usd_per_unit[c] for c in DRUG_TYPES if stats.usd_per_unit.get(c)}
    sections.append(
        '<section id="prices"><h2>Price per gram and per unit (USD)</h2>'
        f"<p>Records with one drug type, a price, a known currency and a quantity; currency rates of "
        f"{_e(rates_date)} (params <code>score.usd_rates</code>).</p>"
        + (_boxes(ppg, "USD per gram by drug type", "USD / g") if ppg else "<p>No price per gram.</p>")
        + _table(["drug type", "records", "p25 USD/g", "median USD/g", "p75 USD/g"], _price_rows(ppg))
        + (_boxes(ppu, "USD per unit by drug type", "USD / unit") if ppu else "")
        + _table(
            ["drug type", "records", "p25 USD/unit", "median USD/unit", "p75 USD/unit"], _price_rows(ppu)
        )
        + "</section>"
    )

    review_rows = "".join(
        "<tr>"
        f'<td class="num">{r["confidence"]:.3f}</td>'
        f"<td>{_e(r['id'])}</td>"
        f"<td>{_e(r['source'])}<br><small>{_e(r['market'])}</small></td>"
        f"<td>{_e(', '.join(r['drug_types']))}</td>"
        f"<td>{_e(', '.join(r['ships_from']))}</td>"
        f'<td class="text">{_e(r["text"])}</td>'
        f"<td><small>{_e((r.get('provenance') or {}).get('file'))} "
        f"{_e((r.get('provenance') or {}).get('locator'))}</small></td>"
        "</tr>"
        for r in stats.lowest_confidence
    )
    sections.append(
        '<section id="lowest-confidence"><h2>Lowest-confidence items</h2>'
        "<p>The records whose drug-type decision is closest to a threshold: review these first.</p>"
        "<table><thead><tr><th>confidence</th><th>id</th><th>source</th><th>drug types</th>"
        "<th>ships from</th><th>text</th><th>provenance</th></tr></thead>"
        f"<tbody>{review_rows}</tbody></table>"
        "</section>"
    )

    quarantine_rows = [[k, v] for k, v in stats.quarantine_reasons.most_common()]
    sections.append(
        '<section id="quarantine"><h2>Quarantine</h2>'
        f"<p>{stats.quarantined:,} input records were not scored; each is in the quarantine file with its "
        f"reason and provenance: <code>{_e(summary.get('outputs', {}).get('quarantine'))}</code></p>"
        + _table(["reason", "records"], quarantine_rows)
        + "</section>"
    )

    inputs = ", ".join(str(i.get("path")) for i in batch.get("inputs", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>{_e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 80em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; vertical-align: top; text-align: left; }}
td.num {{ text-align: right; }}
td.text {{ max-width: 40em; white-space: pre-wrap; font-size: 0.9em; }}
section {{ margin-bottom: 2em; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{_e(title)}</h1>
<p>Model <b>{_e(model.get("name"))}</b> version <b>{_e(model.get("version"))}</b> ({_e(model.get("uri"))});
inputs: {_e(inputs)}; generated {_e(time.strftime("%Y-%m-%d %H:%M:%S"))}.</p>
<nav><a href="#accounting">accounting</a> &middot;
<a href="#drug-origin">drug type &times; origin</a> &middot; <a href="#laundering">laundering hints</a>
&middot; <a href="#prices">prices</a> &middot;
<a href="#lowest-confidence">lowest confidence</a> &middot; <a href="#quarantine">quarantine</a></nav>
{"".join(sections)}
</body></html>
"""


def write_report(root: Path, out: Path, lowest: int = 40) -> Path:
    """Write the HTML report of the batch in ``root`` to ``out``; returns ``out``."""
    stats, manifest, summary = load_batch(Path(root), lowest)
    title = f"narcotag batch report: {Path(summary.get('outputs', {}).get('records') or root).name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_report(stats, manifest, summary, title), encoding="utf-8")
    tmp.replace(out)
    return out

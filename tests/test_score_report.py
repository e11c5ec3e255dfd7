"""The batch report renders: every section, inline plots, and scraped text escaped (no live markup)."""

from __future__ import annotations

import html
import json
from html.parser import HTMLParser

import pytest

pytest.register_assert_rewrite("score_fixtures")

from score_fixtures import generic_rows, small_params  # noqa: E402

from pipeline.report import write_report  # noqa: E402
from pipeline.score import score  # noqa: E402

pytest_plugins = ["score_fixtures"]  # fixtures: tiny_project

SECTIONS = {"accounting", "drug-origin", "laundering", "prices", "lowest-confidence", "quarantine"}
PAYLOAD = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_renders_and_escapes_listing_text(tiny_project, tmp_path):
    rows = generic_rows(tiny_project.sample, limit=25)
    for row in rows[:3]:
        # markup written as text by a vendor (entities survive cleaning as literal "<script>") and a market
        # name that is raw markup: both must reach the analyst as text, never as live HTML
        row["title"] = f"{row.get('title') or ''} {html.escape(PAYLOAD)}"
        row["market"] = PAYLOAD
    data = tmp_path / "listings.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    summary = score([data], tmp_path / "batch", tiny_project.models, params=small_params(), report=True)
    report = tmp_path / "batch" / "report.html"
    assert summary["outputs"]["report"] == str(report)

    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    tags = [t for t, _ in page.tags]
    assert {a.get("id") for t, a in page.tags if t == "section"} >= SECTIONS
    assert "script" not in tags, "listing text became a live <script> element"
    assert all(a.get("src", "").startswith("data:image/png;base64,") for t, a in page.tags if t == "img")
    assert sum(t == "img" for t in tags) >= 3  # drug x origin, hints, price per gram
    text = "".join(page.text)
    assert text.count(PAYLOAD) >= 6  # shown as text in the lowest-confidence table: listing text, market
    assert f"{summary['read']:,} read" in text and "invalid_json" in text
    context = summary["vendor_context"]  # the tiny project decides with each vendor's listings
    assert f"{context['listings_with_context']:,} listings had that context" in text
    assert any(a.get("id") == "vendor-context" for t, a in page.tags if t == "p")


def test_report_is_rebuilt_from_the_batch_folder(tiny_project, tmp_path):
    score(
        [tiny_project.sample / "listings.jsonl"], tmp_path / "b", tiny_project.models, params=small_params()
    )
    out = write_report(tmp_path / "b", tmp_path / "again.html", lowest=5)
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    rows_in_review = [a for t, a in page.tags if t == "td" and a.get("class") == "text"]
    assert len(rows_in_review) == 5

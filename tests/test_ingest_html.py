"""Ingest: the HTML adapter on the two market layouts, the generic fallback and bad pages (made-up pages)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.ingest import RawRecord, Rejected, detect_adapter, read_source, stable_id
from pipeline.ingest.html import HtmlReader, block_text, parse_page

NIGHTSHADE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta name="generator" content="nightshade-market">
<title>Nightshade - Made-up Haze 5g</title></head>
<body>
<div class="listing" data-listing-id="NS-00123">
  <ul class="breadcrumbs"><li>Drugs</li><li>Cannabis</li><li>Weed</li></ul>
  <h1 class="listing-title">Made-up   Haze &amp; Friends 5g</h1>
  <p>Sold by <a class="vendor-name" href="/v/1">testvendor</a></p>
  <span class="price" data-currency="USD">120.00</span>
  <table class="shipping">
    <tr><th>Ships from</th><td>Netherlands</td></tr>
    <tr><th>Ships to</th><td>Worldwide</td></tr>
  </table>
  <div class="description">
    <p>First made-up paragraph,
       wrapped in the source.<br>Second line.</p>
    <p>Second paragraph &ndash; with an entity.</p>
    <ul><li>point one</li><li>point two</li></ul>
  </div>
  <time class="posted" datetime="2025-03-01T10:00:00Z">1 March 2025</time>
</div>
</body></html>
"""

VELVET = """<html><head><title>Velvet Bazaar</title></head>
<body class="velvet-bazaar theme-dark">
<nav class="crumbs">Home &raquo; Drugs &raquo; Stimulants &raquo; Cocaine</nav>
<article class="product" id="VB-4567">
  <h2 class="product-name">Made-up product 1g</h2>
  <dl class="details">
    <dt>Vendor</dt><dd>velvetvendor</dd>
    <dt>Price</dt><dd>0.0123 BTC</dd>
    <dt>Origin country</dt><dd>Germany</dd>
    <dt>Ships to</dt><dd>Europe</dd>
    <dt>Listed</dt><dd>2025-02-11</dd>
  </dl>
  <section class="product-description"><p>Made-up text one.</p><p>Made-up text two.</p></section>
</article>
</body></html>
"""

GENERIC = """<html><head><title>Some Shop | Made-up thing</title>
<meta name="description" content="A short made-up meta description.">
<link rel="canonical" href="http://example.onion/item/9"></head>
<body>
<header><nav>Home Products Login Register</nav></header>
<ol class="breadcrumb"><li>Home</li><li>Pills</li><li>Benzos</li></ol>
<h1>Made-up generic title 10 pills</h1>
<div class="info">
  <p>Seller: genericvendor</p>
  <p>Ships from: Poland</p>
  <p>Destination: EU</p>
  <p>Price: \u20ac45,50</p>
</div>
<div class="desc"><p>A long made-up description paragraph, long enough to be the largest block.</p>
<p>And a second made-up paragraph.</p></div>
<footer>Made-up footer text that is long, long, long, long, long, but chrome, not content.</footer>
</body></html>
"""

GENERIC_TABLE = """<html><head><title>Made-up table page</title>
<meta name="description" content="Meta text is the body when the page has no text block."></head>
<body><table class="attrs"><tr><td>Origin</td><td>Spain</td></tr><tr><td>Ships to</td><td>Worldwide</td></tr>
<tr><td>Sold by</td><td>tabvendor</td></tr></table>
<div class="crumbs">Start &gt; Drugs &gt; Opioids</div></body></html>
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read_one(path: Path, source: str = "html_test") -> RawRecord | Rejected:
    items = list(read_source(path, source))
    assert len(items) == 1
    return items[0]


def test_nightshade_layout(tmp_path: Path) -> None:
    record = read_one(write(tmp_path, "ns.html", NIGHTSHADE))
    assert isinstance(record, RawRecord)
    assert record.native_key == "NS-00123" and record.id == stable_id("html_test", "NS-00123")
    assert record.market == "Nightshade" and record.kind == "listing"
    assert record.title == "Made-up Haze & Friends 5g"
    assert record.category_raw == "Drugs/Cannabis/Weed"
    assert record.vendor == "testvendor"
    assert (record.price, record.currency) == (120.0, "USD")
    assert (record.ships_from_raw, record.ships_to_raw) == ("Netherlands", "Worldwide")
    assert record.posted_at == "2025-03-01T10:00:00Z"
    assert record.body == (
        "First made-up paragraph, wrapped in the source.\nSecond line.\n\n"
        "Second paragraph \u2013 with an entity.\n\npoint one\npoint two"
    )
    assert record.extra["layout"] == "nightshade" and record.extra["listing_id"] == "NS-00123"
    assert record.extra["category_path"] == ["Drugs", "Cannabis", "Weed"]
    assert record.provenance.locator == "page" and record.provenance.adapter == "html"


def test_velvet_layout(tmp_path: Path) -> None:
    record = read_one(write(tmp_path, "vb.htm", VELVET))
    assert isinstance(record, RawRecord)
    assert record.native_key == "VB-4567" and record.market == "Velvet Bazaar"
    assert record.title == "Made-up product 1g"
    assert record.category_raw == "Drugs/Stimulants/Cocaine"  # "Home" dropped
    assert record.vendor == "velvetvendor"
    assert (record.price, record.currency) == (0.0123, "BTC")
    assert (record.ships_from_raw, record.ships_to_raw) == ("Germany", "Europe")
    assert record.posted_at == "2025-02-11"
    assert record.body == "Made-up text one.\n\nMade-up text two."
    assert record.extra["details"]["Origin country"] == "Germany"


def test_generic_fallback(tmp_path: Path) -> None:
    record = read_one(write(tmp_path, "shop/item.html", GENERIC))
    assert isinstance(record, RawRecord)
    assert record.extra["layout"] == "generic"
    assert record.native_key == "item.html"  # a single file: its name
    assert record.title == "Made-up generic title 10 pills"
    assert record.body == (
        "A long made-up description paragraph, long enough to be the largest block.\n\n"
        "And a second made-up paragraph."
    )
    assert record.vendor == "genericvendor"
    assert (record.ships_from_raw, record.ships_to_raw) == ("Poland", "EU")
    assert (record.price, record.currency) == (45.5, "EUR")
    assert record.category_raw == "Pills/Benzos"
    assert record.extra["url"] == "http://example.onion/item/9"


def test_generic_table_labels_title_tag_and_meta_description(tmp_path: Path) -> None:
    record = read_one(write(tmp_path, "t.html", GENERIC_TABLE))
    assert isinstance(record, RawRecord)
    assert record.title == "Made-up table page"  # no h1: <title>
    assert record.body == "Meta text is the body when the page has no text block."
    assert (record.ships_from_raw, record.ships_to_raw, record.vendor) == ("Spain", "Worldwide", "tabvendor")
    assert record.category_raw == "Drugs/Opioids"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.html", "", "no_text"),
        (
            "scripts.html",
            "<html><head><title> </title><script>var a = 1;</script></head><body> </body></html>",
            "no_text",
        ),
        ("junk.html", os.urandom(2048), "unreadable_file"),
    ],
)
def test_bad_pages(tmp_path: Path, name: str, content: Any, reason: str) -> None:
    item = read_one(write(tmp_path, name, content))
    assert isinstance(item, Rejected) and item.reason == reason


def test_missing_page_is_unreadable(tmp_path: Path) -> None:
    item = read_one(tmp_path / "gone.html")
    assert isinstance(item, Rejected) and item.reason == "unreadable_file"


def test_declared_charset_is_honoured(tmp_path: Path) -> None:
    page = (
        '<html><head><meta charset="windows-1251"><title>x</title></head>'
        "<body><h1>Тест товар</h1></body></html>"
    )
    record = read_one(write(tmp_path, "ru.html", page.encode("cp1251")))
    assert isinstance(record, RawRecord) and record.title == "Тест товар"


def test_folder_is_read_recursively_and_sorted(tmp_path: Path) -> None:
    root = tmp_path / "pages"
    write(root, "b/velvet.html", VELVET)
    write(root, "a.html", NIGHTSHADE)
    write(root, "b/c/generic.htm", GENERIC)
    write(root, "b/c/empty.html", "<html></html>")
    write(root, "notes.txt", "not a page")
    assert detect_adapter(root) == "html"
    reader = read_source(root, "pages")
    assert isinstance(reader, HtmlReader)
    items = list(reader)
    assert len(items) == 4  # one item per page
    assert [Path(i.provenance.file).relative_to(root).as_posix() for i in items] == [
        "a.html",
        "b/c/empty.html",
        "b/c/generic.htm",
        "b/velvet.html",
    ]
    records = [i for i in items if isinstance(i, RawRecord)]
    assert [r.native_key for r in records] == ["NS-00123", "b/c/generic.htm", "VB-4567"]
    assert reader.layouts_used == {"nightshade": 1, "generic": 1, "velvet": 1}
    again = [i.id for i in read_source(root, "pages") if isinstance(i, RawRecord)]
    assert again == [r.id for r in records]


def test_deeply_nested_junk_does_not_crash() -> None:
    page = parse_page(
        "<div>" * 5_000 + "deep made-up text" + "</div>" * 10
    )  # deeper than the recursion limit
    assert page.body == "deep made-up text"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<div>a<br>b</div>", "a\nb"),
        ("<div><p>a</p><p>b</p></div>", "a\n\nb"),
        ("<div><ul><li>a</li><li>b</li></ul></div>", "a\nb"),
        ("<div>x  <b>bold</b>\n  y</div>", "x bold y"),
        ("<div><table><tr><td>k</td><td>v</td></tr></table></div>", "k v"),
        ("<div>a<script>hidden()</script><style>p{}</style>b</div>", "ab"),
    ],
)
def test_block_text(html: str, expected: str) -> None:
    from selectolax.lexbor import LexborHTMLParser

    node = LexborHTMLParser(html).css_first("div")
    assert node is not None
    assert block_text(node) == expected

"""Ingest: the tabular adapter, its presets, and the public API (detect_adapter, read_source).

Every fixture is written here into tmp_path from made-up text. The invariant checked throughout: each input
record comes out as exactly one RawRecord or one Rejected (records + rejected == input records).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.ingest import (
    ADAPTERS,
    REJECT_REASONS,
    RawRecord,
    Rejected,
    detect_adapter,
    get_preset,
    preset_names,
    read_source,
    stable_id,
)
from pipeline.ingest.records import normalise_currency, parse_price
from pipeline.ingest.tabular import TabularReader, guess_preset

SHARED_MARKETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "markets"


def split(items: list[Any]) -> tuple[list[RawRecord], list[Rejected]]:
    records = [i for i in items if isinstance(i, RawRecord)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert len(records) + len(rejected) == len(items)
    for item in items:
        assert item.provenance.adapter in ADAPTERS
        assert item.provenance.file and item.provenance.locator
    for rej in rejected:
        assert rej.reason in REJECT_REASONS
    return records, rejected


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(lines))
    else:
        path.write_bytes(lines)
    return path


def write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding=encoding) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_table(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows in the format the file name asks for."""
    name = path.name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        write_jsonl(path, rows)
    elif name.endswith(".json"):
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif name.endswith(".tsv"):
        write_csv(path, rows, delimiter="\t")
    else:
        write_csv(path, rows)
    return path


# --- generic format in every file format -------------------------------------------------------------------

_GENERIC_COLUMNS = ("id", "title", "description", "ships_from", "price", "currency")
GENERIC_ROWS: list[dict[str, Any]] = [
    dict(zip(_GENERIC_COLUMNS, values, strict=True))
    for values in (
        ("given-1", "Test powder 5g", "Made-up text.", "", "12.50", "eur"),
        ("", "Second made-up item", "", "Testland", "", ""),
        ("", "", "", "", "", ""),  # no text -> rejected
        ("", "", "Ad body only, made up.", "", "", ""),
    )
]


@pytest.mark.parametrize("name", ["g.csv", "g.tsv", "g.jsonl", "g.jsonl.gz", "g.parquet", "g.json"])
def test_generic_format_in_every_file_format(tmp_path: Path, name: str) -> None:
    path = write_table(tmp_path / name, GENERIC_ROWS)
    reader = read_source(path, "unit")
    records, rejected = split(list(reader))
    assert reader.presets_used == {str(path): "generic"}  # type: ignore[attr-defined]
    assert len(records) + len(rejected) == len(GENERIC_ROWS)
    assert [r.reason for r in rejected] == ["no_text"]
    first, second, third = records
    assert first.id == "given-1" and first.native_key is None  # the input's id passes through unchanged
    assert (first.price, first.currency, first.body) == (12.5, "EUR", "Made-up text.")
    assert second.native_key == f"{name}:2"
    assert second.id == stable_id("unit", f"{name}:2")
    assert second.ships_from_raw == "Testland" and second.price is None
    assert third.title is None and third.body == "Ad body only, made up."
    assert {r.kind for r in records} == {"listing"}
    assert reader.counts == {"records": 3, "rejected": 1}  # type: ignore[attr-defined]
    # same input twice -> same ids
    again, _ = split(list(read_source(path, "unit")))
    assert [r.id for r in again] == [r.id for r in records]


def test_stable_ids_depend_on_source_and_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"title": "made-up one"}, {"title": "made-up two"}])
    ids_a = [r.id for r in read_source(path, "src_a") if isinstance(r, RawRecord)]
    ids_b = [r.id for r in read_source(path, "src_b") if isinstance(r, RawRecord)]
    assert len(set(ids_a)) == 2 and not set(ids_a) & set(ids_b)
    assert all(i is not None and i.startswith("src_a:") for i in ids_a)


# --- presets -----------------------------------------------------------------------------------------------

AGORA_ROW = {
    "source": "mozzarellaV8/agora-marketplace",
    "source_file": "made/up.csv",
    "market": "Agora",
    "listing_id": "zzTest01",
    "date": "2014-02-03",
    "vendor": "madeupvendor",
    "title": "Made-up listing 1g",
    "description": None,
    "category_path": ["Drugs", "Testing", "Thing"],
    "category": "Drugs/Testing/Thing",
    "ships_from": "Testland",
    "ships_to": None,
    "price": 0.5,
    "price_currency": "BTC",
    "price_usd": None,
    "feedback_text": "Feedbacks: none",
}
AGORA_BINNED = {
    **AGORA_ROW,
    "listing_id": "zzTest02",
    "price": "[1.00e-07,1.49e+00)",
    "price_currency": "BTC_binned",
}
VENDORPAGE_ROW = {
    "source": "mozzarellaV8/agora-marketplace",
    "source_file": "made/vendor.csv",
    "market": "Agora",
    "date": "2014-01-01",
    "vendor": "madeupvendor",
    "title": "Made-up pills x 10",
    "description": "Made-up pills x 10 long made-up text cut ...",
    "description_truncated": True,
    "category_path": ["Drugs", "Testing"],
    "category": "Drugs/Testing",
    "ships_from": "undeclared",
    "ships_to": "Worldwide",
    "price": 0.25,
    "price_currency": "BTC",
}
ALPHABAY_ROW = {
    "source": "davidldenton/dnm",
    "source_file": "made/Test_-_20170510.csv",
    "market": "AlphaBay (long note)",
    "scrape_date": "20170510",
    "vendor": "abvendor",
    "title": "Made-up item ...",
    "description": None,
    "category_path": ["Drugs", "Test", "Test"],
    "category": "Drugs/Test/Test",
    "file_category": "Test",
    "price": 15.5,
    "price_currency": "USD",
    "price_btc": 0.01,
    "qty_sold": 7,
    "sold_since": "Apr 1, 2017",
    "vendor_level": 2,
    "trust_level": 3,
    "ships_from": None,
    "ships_to": None,
}
TORREZ_ROW = {
    "source": "RodgervanderHeijden/IlluminatingtheDarkWeb",
    "source_file": "made/product.csv",
    "market": "TorreZ",
    "snapshot": "2021-05-17",
    "vendor": "tzvendor",
    "title": "Made-up tabs x 10",
    "description": None,
    "category_path": ["Drugs and Chemicals", "Test"],
    "category": "Drugs and Chemicals/Test",
    "highest_category": "Test",
    "ships_from": "Testland",
    "ships_to": "Worldwide",
    "price": 30.0,
    "price_currency": "USD",
    "url": "http://example.onion/items/made-up",
}
ONION_ROW = {
    "source": "huji-nlp/cyber",
    "source_file": "made/x.onion.txt",
    "domain": "drugs",
    "label": "illegal",
    "onion": "exampleexample.onion",
    "text": "   [1]Home\n\nMade-up shop page text\n",
}
SPAM_ROW = {
    "source": "made-up spam",
    "url": "https://example.org/issues/1",
    "repository": "example/repo",
    "date": "2025-01-02",
    "language": "en",
    "title": "Made-up ad title",
    "text": "Made-up ad text @<HANDLE>",
    "text_may_be_truncated": False,
    "contacts_masked": True,
}
MESSENGER_ROW = {
    "channel": "Test channel",
    "date": "2025-01-01T10:00:00",
    "sender": "tester",
    "text": "made-up ad",
}

PRESET_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (preset, file name the guess must recognise, row, expected record fields)
    (
        "agora_2014",
        "agora_2014_listings.jsonl.gz",
        AGORA_ROW,
        {
            "native_key": "zzTest01",
            "market": "Agora",
            "vendor": "madeupvendor",
            "title": "Made-up listing 1g",
            "category_raw": "Drugs/Testing/Thing",
            "ships_from_raw": "Testland",
            "price": 0.5,
            "currency": "BTC",
            "posted_at": "2014-02-03",
            "extra.listing_id": "zzTest01",
            "extra.category_path": ["Drugs", "Testing", "Thing"],
        },
    ),
    (
        "agora_2014",
        "agora_2014_listings.jsonl",
        AGORA_BINNED,
        {
            "price": None,
            "currency": None,
            "extra.price_raw": "[1.00e-07,1.49e+00)",
            "extra.currency_raw": "BTC_binned",
        },
    ),
    ("agora_2014_snapshots", "agora_2014_snapshots.jsonl.gz", AGORA_ROW, {"native_key": "{file}:1"}),
    (
        "agora_2014_vendorpages",
        "agora_2014_vendorpages.jsonl.gz",
        VENDORPAGE_ROW,
        {
            "native_key": "{file}:1",
            "body": "Made-up pills x 10 long made-up text cut ...",
            "ships_to_raw": "Worldwide",
            "extra.description_truncated": True,
        },
    ),
    (
        "alphabay_2017",
        "alphabay_2017_listings.jsonl.gz",
        ALPHABAY_ROW,
        {
            "market": "AlphaBay",
            "posted_at": "2017-05-10",
            "price": 15.5,
            "currency": "USD",
            "category_raw": "Drugs/Test/Test",
            "extra.qty_sold": 7,
            "native_key": "{file}:1",
        },
    ),
    (
        "torrez_2021_2022",
        "torrez_2021_2022_listings.jsonl.gz",
        TORREZ_ROW,
        {
            "native_key": "http://example.onion/items/made-up",
            "extra.url": "http://example.onion/items/made-up",
        },
    ),
    (
        "torrez_2021_2022",
        "torrez_2021_2022_listings.jsonl",
        {**TORREZ_ROW, "url": None},
        {"native_key": "{file}:1", "posted_at": "2021-05-17"},
    ),
    (
        "torrez_2021_2022_snapshots",
        "torrez_2021_2022_snapshots.jsonl.gz",
        TORREZ_ROW,
        {"native_key": "{file}:1"},
    ),
    (
        "onion_pages",
        "onion_pages_2017.jsonl.gz",
        ONION_ROW,
        {
            "kind": "listing",
            "title": None,
            "body": ONION_ROW["text"],
            "native_key": "exampleexample.onion",
            "extra.label": "illegal",
            "extra.domain": "drugs",
        },
    ),
    (
        "spam_ads",
        "spam_ads.jsonl.gz",
        SPAM_ROW,
        {
            "kind": "ad",
            "native_key": "https://example.org/issues/1",
            "posted_at": "2025-01-02",
            "extra.language": "en",
        },
    ),
    (
        "messenger_generic",
        "chat_dump.jsonl",
        MESSENGER_ROW,
        {
            "kind": "ad",
            "market": "Test channel",
            "vendor": "tester",
            "body": "made-up ad",
            "native_key": "{file}:1",
        },
    ),
    (
        "generic",
        "whatever.jsonl",
        {"kind": "ad", "title": "made-up", "text": "made-up text", "url": "http://x.example"},
        {"kind": "ad", "body": "made-up text", "extra.url": "http://x.example"},
    ),
]


def _field(record: RawRecord, name: str) -> Any:
    if name.startswith("extra."):
        return record.extra.get(name[6:])
    return getattr(record, name)


@pytest.mark.parametrize("guess", [False, True], ids=["named", "guessed"])
@pytest.mark.parametrize(
    ("preset", "file_name", "row", "expected"), PRESET_CASES, ids=[c[1] for c in PRESET_CASES]
)
def test_presets(
    tmp_path: Path, preset: str, file_name: str, row: dict[str, Any], expected: dict[str, Any], guess: bool
) -> None:
    path = write_jsonl(tmp_path / file_name, [row])
    reader = TabularReader(path, "unit", preset=None if guess else preset)
    records, rejected = split(list(reader))
    assert not rejected and len(records) == 1
    assert reader.presets_used[str(path)] == preset
    record = records[0]
    assert record.kind == expected.get("kind", get_preset(preset).kind)
    for name, value in expected.items():
        if isinstance(value, str):
            value = value.replace("{file}", file_name)
        assert _field(record, name) == value, name
    if record.native_key is not None:
        assert record.id == stable_id("unit", record.native_key)


def test_preset_guess_by_source_and_columns() -> None:
    # renamed shared files are still recognised by their `source` value and columns
    assert guess_preset("renamed.jsonl", AGORA_ROW, AGORA_ROW) == "agora_2014"
    assert guess_preset("renamed.jsonl", VENDORPAGE_ROW, VENDORPAGE_ROW) == "agora_2014_vendorpages"
    assert guess_preset("renamed.jsonl", ALPHABAY_ROW, ALPHABAY_ROW) == "alphabay_2017"
    assert guess_preset("renamed.jsonl", TORREZ_ROW, TORREZ_ROW) == "torrez_2021_2022"
    assert guess_preset("renamed.jsonl", ONION_ROW, ONION_ROW) == "onion_pages"
    assert guess_preset("renamed.jsonl", SPAM_ROW, SPAM_ROW) == "spam_ads"
    assert (
        guess_preset("x.csv", ["Vendor", "Category", "Item", "Item Description", "Price"]) == "kaggle_agora"
    )
    assert guess_preset("x.csv", ["channel", "date", "sender", "text"]) == "messenger_generic"
    assert guess_preset("x.csv", ["title", "price"]) == "generic"
    assert guess_preset("x.csv", ["something", "else"]) == "generic"


def test_preset_names_are_all_loadable() -> None:
    names = preset_names()
    for expected in (
        "agora_2014",
        "alphabay_2017",
        "torrez_2021_2022",
        "agora_2014_vendorpages",
        "onion_pages",
        "spam_ads",
        "kaggle_agora",
        "generic",
        "messenger_generic",
    ):
        assert expected in names
    for name in names:
        assert get_preset(name).kind in ("listing", "ad")


def test_kaggle_agora_csv(tmp_path: Path) -> None:
    # the Kaggle header has a space after each comma; its export is often cp1252
    text = (
        "Vendor, Category, Item, Item Description, Price, Origin, Destination, Rating, Remarks\n"
        'kv1,Drugs/Test/Thing,Made-up item 1g,"Made-up, quoted description",0.1 BTC,'
        "Testland,Worldwide,4.9/5,\n"
        "kv2,Drugs/Test,Caf\u00e9 item,made-up,0.05027 BTC, Testland ,,~5/5,note\n"
        "kv3,Drugs/Test,,,0.2 BTC,,,,\n"
    )
    path = tmp_path / "Agora.csv"
    path.write_bytes(text.encode("cp1252"))
    reader = read_source(path, "kaggle")
    records, rejected = split(list(reader))
    assert reader.presets_used == {str(path): "kaggle_agora"}  # type: ignore[attr-defined]
    assert [r.reason for r in rejected] == ["no_text"] and rejected[0].provenance.locator == "row 3"
    first, second = records
    assert (first.vendor, first.title, first.category_raw) == ("kv1", "Made-up item 1g", "Drugs/Test/Thing")
    assert first.body == "Made-up, quoted description"
    assert (first.price, first.currency) == (0.1, "BTC")
    assert (first.ships_from_raw, first.ships_to_raw, first.market) == ("Testland", "Worldwide", "Agora")
    assert first.extra == {"rating": "4.9/5"}
    assert second.title == "Caf\u00e9 item"  # cp1252 repaired
    assert second.ships_from_raw == " Testland "  # raw text kept as given
    assert second.extra["remarks"] == "note"
    assert second.native_key == "Agora.csv:2" and second.provenance.locator == "row 2"


def test_messenger_generic_with_ids(tmp_path: Path) -> None:
    rows = [
        {
            "id": "m-1",
            "channel": "chan",
            "date": "2025-01-01",
            "sender": "s1",
            "text": "made-up ad one",
            "views": "12",
        },
        {
            "id": "",
            "channel": "chan",
            "date": "2025-01-02",
            "sender": "s2",
            "text": "made-up ad two",
            "views": "",
        },
        {"id": "", "channel": "chan", "date": "2025-01-03", "sender": "s2", "text": "  ", "views": ""},
    ]
    path = write_csv(tmp_path / "chat.csv", rows)
    records, rejected = split(list(read_source(path, "msg", preset="messenger_generic")))
    assert [r.reason for r in rejected] == ["no_text"]
    assert records[0].id == "m-1" and records[0].extra == {"views": "12"}
    assert records[1].id == stable_id("msg", "chat.csv:2")
    assert all(r.kind == "ad" and r.market == "chan" for r in records)


def test_user_mapping_overrides_and_extends_a_preset(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [
        {"name": "Made-up name", "info": {"seller": {"nick": "nested-vendor"}}, "cost": "$19.99", "ref": 42},
        {"name": None, "info": {"seller": None}, "cost": None, "ref": 43},
    ]
    path = write_table(tmp_path / "custom.parquet", rows)
    mapping = {
        "title": "name",
        "vendor": "info.seller.nick",
        "price": "cost",
        "native_key": "ref",
        "extra.ref": "ref",
        "description": {"value": None},  # aliases work; a constant None reads nothing
        "kind": {"value": "ad"},
    }
    reader = read_source(path, "custom", preset="generic", mapping=mapping)
    records, rejected = split(list(reader))
    assert [r.reason for r in rejected] == ["no_text"]
    (record,) = records
    assert (record.title, record.vendor, record.kind) == ("Made-up name", "nested-vendor", "ad")
    assert (record.price, record.currency) == (19.99, "USD")
    assert record.native_key == "42" and record.id == stable_id("custom", "42")
    assert record.extra["ref"] == 42


def test_bad_preset_or_mapping_is_a_caller_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [{"title": "t"}])
    with pytest.raises(KeyError):
        read_source(path, "x", preset="no_such_preset")
    with pytest.raises(ValueError):
        read_source(path, "x", mapping={"not_a_field": "title"})
    with pytest.raises(ValueError):
        read_source(path, "x", mapping={"title": 3})
    with pytest.raises(ValueError):
        read_source(path, "x", adapter="html", preset="generic")
    with pytest.raises(ValueError):
        read_source(path, "x", adapter="pdf")


# --- malformed input ---------------------------------------------------------------------------------------


def test_malformed_jsonl_lines(tmp_path: Path) -> None:
    lines = [
        b'{"id": "ok-1", "title": "made-up fine"}',
        b'{"id": "bad-1", "title": "cut here',  # truncated line
        b"",  # blank line: not a record
        b"[1, 2, 3]",  # JSON, but not an object
        b'{"title": {"nested": "object"}}',  # wrong type for a text field
        b'{"title": "made-up", "kind": "weapon"}',  # unknown kind
        b'{"title": "", "description": "   "}',  # no text
        b'{"title": "latin-1 \xe9t\xe9 here", "price": NaN}',  # repaired: cp1252 line, NaN price
        b'{"title": 12345, "price": "ask me", "ships_to": ["A", "B"], "category": ["x", "y"]}',  # coerced
        b'{"title": true}',  # a boolean is no text
        b"\x00\x01garbage",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    reader = read_source(path, "m")
    items = list(reader)
    records, rejected = split(items)
    assert len(items) == len(lines) - 1  # every non-blank line
    reasons = {r.provenance.locator: r.reason for r in rejected}
    assert reasons == {
        "line 2": "invalid_json",
        "line 4": "invalid_record",
        "line 5": "invalid_record",
        "line 6": "invalid_record",
        "line 7": "no_text",
        "line 10": "invalid_record",
        "line 11": "invalid_json",
    }
    assert rejected[0].raw_excerpt.startswith('{"id": "bad-1"')
    by_line = {r.provenance.locator: r for r in records}
    assert by_line["line 1"].id == "ok-1"
    assert by_line["line 8"].title == "latin-1 \u00e9t\u00e9 here" and by_line["line 8"].price is None
    coerced = by_line["line 9"]
    assert coerced.title == "12345" and coerced.price is None and coerced.extra["price_raw"] == "ask me"
    assert coerced.ships_to_raw == "A, B" and coerced.category_raw == "x/y"


def test_malformed_csv_rows(tmp_path: Path) -> None:
    text = (
        "\ufefftitle;description;price\n"  # BOM and ";" separators
        "made-up one;text;5\n"
        "made-up two;text;6;extra;cells\n"  # more cells than columns
        "\n"
        'made-up "three";"multi\nline";7\n'
        "only title\n"  # fewer cells: fine
    )
    path = tmp_path / "semi.csv"
    path.write_text(text, encoding="utf-8")
    records, rejected = split(list(read_source(path, "c")))
    assert [(r.reason, r.provenance.locator) for r in rejected] == [("malformed_row", "row 2")]
    assert [r.title for r in records] == ["made-up one", 'made-up "three"', "only title"]
    assert records[1].body == "multi\nline" and records[0].price == 5.0


@pytest.mark.parametrize(
    "name", ["junk.csv", "junk.jsonl", "junk.jsonl.gz", "junk.parquet", "junk.json", "junk.dat"]
)
def test_binary_junk_is_one_unreadable_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(os.urandom(4096) + b"\x00")
    items = list(read_source(path, "j"))
    assert len(items) == 1
    assert isinstance(items[0], Rejected) and items[0].reason == "unreadable_file"
    assert items[0].provenance.locator == "file"


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    items = list(read_source(tmp_path / "nope.jsonl", "j"))
    assert [(i.reason, i.provenance.file) for i in items if isinstance(i, Rejected)] == [
        ("unreadable_file", str(tmp_path / "nope.jsonl"))
    ]


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    rows = [{"title": f"made-up item number {i} " + "x" * (i % 50)} for i in range(3000)]
    whole = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    items = list(read_source(path, "g"))
    records, rejected = split(items)
    assert 0 < len(records) < len(rows)
    assert [r.reason for r in rejected] == ["truncated_file"]
    assert rejected[0].provenance.locator == f"line {len(records) + 1}"
    # cut inside the gzip header: nothing readable at all
    path.write_bytes(whole[:5])
    items = list(read_source(path, "g"))
    assert [i.reason for i in items if isinstance(i, Rejected)] == ["unreadable_file"] and len(items) == 1


def test_truncated_json_array_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "arr.json"
    path.write_text('[{"title": "made-up"}, {"title": "cu', encoding="utf-8")
    items = list(read_source(path, "a", adapter="tabular"))
    assert [i.reason for i in items if isinstance(i, Rejected)] == ["unreadable_file"] and len(items) == 1


def test_utf16_csv_and_empty_files(tmp_path: Path) -> None:
    path = tmp_path / "u16.csv"
    path.write_bytes("title,price\nmade-up \u00fc,3\n".encode("utf-16"))
    (record,) = list(read_source(path, "u"))
    assert isinstance(record, RawRecord) and record.title == "made-up \u00fc"
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert list(read_source(empty, "u")) == []  # no input records, nothing to report


def test_parquet_types(tmp_path: Path) -> None:
    import datetime as dt

    table = pa.table(
        {
            "id": pa.array([7, 8], pa.int64()),
            "title": ["made-up a", "made-up b"],
            "posted_at": pa.array([dt.datetime(2025, 1, 2, 3, 4, 5), None], pa.timestamp("s")),
            "price": pa.array([1.5, float("nan")]),
            "tags": [["a", "b"], []],
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path, row_group_size=1)
    records, rejected = split(list(read_source(path, "p")))
    assert not rejected
    assert [r.id for r in records] == ["7", "8"]
    assert records[0].posted_at == "2025-01-02T03:04:05" and records[0].price == 1.5
    assert records[1].price is None and records[0].extra["tags"] == ["a", "b"]
    assert records[0].provenance.locator == "row 1" and records[1].provenance.locator == "row 2"


def test_folder_source_reads_every_file_sorted(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "b.jsonl", [{"title": "made-up b1"}, {"title": "made-up b2"}])
    write_csv(folder / "a.csv", [{"title": "made-up a1"}])
    write_jsonl(folder / "sub" / "b.jsonl", [{"title": "made-up sub"}])
    (folder / "notes.txt").write_text("not a data file")
    (folder / ".hidden.jsonl").write_text('{"title": "hidden"}\n')
    reader = read_source(folder, "f")
    records, rejected = split(list(reader))
    assert reader.files == [str(folder / "a.csv"), str(folder / "b.jsonl"), str(folder / "sub" / "b.jsonl")]
    assert [r.native_key for r in records] == ["a.csv:1", "b.jsonl:1", "b.jsonl:2", "sub/b.jsonl:1"]
    assert len({r.id for r in records}) == 4 and not rejected


# --- helpers and API ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, (12.0, None)),
        (0.0123, (0.0123, None)),
        ("0.1 BTC", (0.1, "BTC")),
        ("$120", (120.0, "USD")),
        ("120.00 usd", (120.0, "USD")),
        ("1,234.50 EUR", (1234.5, "EUR")),
        ("1.234,50 €", (1234.5, "EUR")),
        ("12,5", (12.5, None)),
        ("1,200", (1200.0, None)),
        ("฿0.5", (0.5, "BTC")),
        ("[1.00e-07,1.49e+00)", (None, None)),
        ("12 pills", (None, None)),
        ("ask", (None, None)),
        (float("inf"), (None, None)),
        (True, (None, None)),
        (None, (None, None)),
    ],
)
def test_parse_price(value: Any, expected: tuple[float | None, str | None]) -> None:
    assert parse_price(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [("usd", "USD"), ("€", "EUR"), ("BTC_binned", None), ("USDT", None)]
)
def test_normalise_currency(value: str, expected: str | None) -> None:
    assert normalise_currency(value) == expected


def test_detect_adapter(tmp_path: Path) -> None:
    (tmp_path / "pages" / "deep").mkdir(parents=True)
    (tmp_path / "pages" / "deep" / "p.html").write_text("<html></html>")
    (tmp_path / "tg").mkdir()
    (tmp_path / "tg" / "result.json").write_text('{"messages": []}')
    (tmp_path / "tab").mkdir()
    (tmp_path / "tab" / "x.csv").write_text("title\nx\n")
    (tmp_path / "export.json").write_text(' {"name": "c", "messages": []}')
    (tmp_path / "rows.json").write_text('[{"title": "x"}]')
    assert detect_adapter(tmp_path / "pages") == "html"
    assert detect_adapter(tmp_path / "tg") == "telegram"
    assert detect_adapter(tmp_path / "tab") == "tabular"
    assert detect_adapter(tmp_path / "tg" / "result.json") == "telegram"
    assert detect_adapter(tmp_path / "export.json") == "telegram"
    assert detect_adapter(tmp_path / "rows.json") == "tabular"
    assert detect_adapter(tmp_path / "pages" / "deep" / "p.html") == "html"
    for name in ("a.csv", "a.jsonl", "a.jsonl.gz", "a.parquet", "missing.jsonl"):
        assert detect_adapter(tmp_path / name) == "tabular"


def test_every_reader_yields_one_item_per_input(tmp_path: Path) -> None:
    """The invariant over a mixed folder: read = records + rejected, per file."""
    write_jsonl(tmp_path / "a.jsonl", [{"title": "made-up"}, {"title": ""}, 5])
    write_csv(tmp_path / "b.csv", [{"title": "made-up", "price": "x"}, {"title": "", "price": "1"}])
    (tmp_path / "c.jsonl").write_bytes(b'{"title": "ok"}\n{broken\n')
    items = list(read_source(tmp_path, "inv"))
    per_file = Counter(Path(i.provenance.file).name for i in items)
    assert per_file == {"a.jsonl": 3, "b.csv": 2, "c.jsonl": 2}


# --- the shared market files -------------------------------------------------------------------------------

SHARED_PRESETS = {
    "agora_2014_listings.jsonl.gz": "agora_2014",
    "alphabay_2017_listings.jsonl.gz": "alphabay_2017",
    "torrez_2021_2022_listings.jsonl.gz": "torrez_2021_2022",
}


@pytest.mark.shared
def test_shared_market_listings() -> None:
    if not SHARED_MARKETS.is_dir():
        pytest.skip(f"shared market data not found at {SHARED_MARKETS}")
    files = sorted(SHARED_MARKETS.glob("*_listings.jsonl.gz"))
    if not files:
        pytest.skip(f"no *_listings.jsonl.gz in {SHARED_MARKETS}")
    for path in files:
        with gzip.open(path, "rb") as fh:
            line_count = sum(1 for line in fh if line.strip())
        reader = read_source(path, path.name.split(".")[0], preset=SHARED_PRESETS.get(path.name))
        records, rejected = split(list(reader))
        assert len(records) + len(rejected) == line_count, path.name
        # the only real reason a market row is rejected: it carries no text
        assert {r.reason for r in rejected} <= {"no_text"}, path.name
        assert len(rejected) <= line_count // 1000, path.name
        assert len({r.id for r in records}) == len(records), f"{path.name}: ids not unique"
        assert all(r.kind == "listing" and r.market for r in records)

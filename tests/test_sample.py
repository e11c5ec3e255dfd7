"""The built-in sample data generator (pipeline.sample).

The raw files are read back here with a small reader of their own (regular expressions, csv, json), so that
the truth file is checked against what the files actually hold, not against the generator's own bookkeeping:
every readable item has exactly one truth line, every unreadable one is listed as a bad item, and every
label follows the label contract.
"""

from __future__ import annotations

import csv
import html
import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import ftfy
import pytest
from typer.testing import CliRunner

from pipeline import sample
from pipeline.config import Paths
from pipeline.heads import crypto
from pipeline.ingest.records import stable_id
from pipeline.taxonomy import (
    CONTACT_PLATFORMS,
    DRUG_TYPES,
    KINDS,
    LAUNDERING_HINTS,
    NON_DRUG,
    QUANTITY_FIELDS,
)

SMALL = sample.SampleParams(seed=5, listings_per_market=60, messages_per_language=14)
CHECKER = Path(__file__).resolve().parents[1].parent / "shared" / "tools" / "check_labelled.py"
ISO2 = re.compile(r"^[A-Z]{2}$")
#: Categories that deliberately cover several drug codes.
COARSE = {"Drugs/Other", "Drugs/Prescription", "Drugs/Bundles", "Pharma > Prescription", "Other > Misc"}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("sample_default")
    metrics = sample.run(sample.SampleParams(), Paths(root=root))
    return root / "data" / "raw" / "sample", metrics


@pytest.fixture(scope="module")
def loaded(default_run: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    folder, metrics = default_run
    truth = [json.loads(line) for line in (folder / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return {
        "folder": folder,
        "metrics": metrics,
        "truth": truth,
        "manifest": manifest,
        "raw": read_raw(folder),
    }


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# ------------------------------------------------------------------------------------------------ own reader


def _strip(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", markup)).strip()


def _first(pattern: str, text: str) -> str:
    m = re.search(pattern, text, re.S)
    return m.group(1) if m else ""


def read_raw(folder: Path) -> dict[str, Any]:
    """Every item in the sample files: ``items`` (id -> source, text, category, price, title) of the readable
    ones, and ``unreadable`` (source, locator) pairs of the rest."""
    items: dict[str, dict[str, Any]] = {}
    unreadable: list[tuple[str, str]] = []

    def add(item_id: str, source: str, title: str, body: str, category: str = "", price: Any = None) -> None:
        assert item_id not in items, f"duplicate id {item_id}"
        items[item_id] = {
            "source": source,
            "title": title,
            "text": f"{title}\n{body}".strip(),
            "category": category,
            "price": price,
        }

    for page in sorted((folder / "html" / "nightshade").glob("*.html")):
        text = page.read_text(encoding="utf-8")
        title = _strip(_first(r'<h1 class="listing-title">(.*?)</h1>', text))
        body = _strip(_first(r'<div class="description">(.*?)</div>', text))
        if not (title or body):
            unreadable.append(("sample_nightshade", page.name))
            continue
        crumbs = re.findall(r"<li>(.*?)</li>", _first(r'<ul class="breadcrumbs">(.*?)</ul>', text))
        native = _first(r'data-listing-id="([^"]+)"', text)
        add(
            stable_id("sample_nightshade", native),
            "sample_nightshade",
            title,
            body,
            "/".join(html.unescape(c) for c in crumbs),
        )
    for page in sorted((folder / "html" / "velvet").glob("*.html")):
        text = page.read_text(encoding="utf-8")
        title = _strip(_first(r'<h2 class="product-name">(.*?)</h2>', text))
        body = _strip(_first(r'<section class="product-description">(.*?)</section>', text))
        if not (title or body):
            unreadable.append(("sample_velvet", page.name))
            continue
        crumbs = [c.strip() for c in _strip(_first(r'<nav class="crumbs">(.*?)</nav>', text)).split("»")]
        native = _first(r'<article class="product" id="([^"]+)"', text)
        add(stable_id("sample_velvet", native), "sample_velvet", title, body, "/".join(crumbs[1:]))
    with open(folder / "agora_export.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "Vendor",
        "Category",
        "Item",
        "Item Description",
        "Price",
        "Origin",
        "Destination",
        "Rating",
        "Remarks",
    ]
    for n, row in enumerate(rows[1:], start=1):
        if len(row) != 9:
            unreadable.append(("sample_agora_csv", f"row {n}"))
            continue
        add(
            stable_id("sample_agora_csv", f"agora_export.csv:{n}"), "sample_agora_csv", row[2], row[3], row[1]
        )
    for source, rel in (("sample_listings", "listings.jsonl"), ("sample_extra", "extra/more_listings.jsonl")):
        for n, line in enumerate((folder / rel).read_text(encoding="utf-8").splitlines(), start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                unreadable.append((source, f"line {n}"))
                continue
            title = row.get("title") or ""
            body = row.get("description") or row.get("text") or ""
            if not (title.strip() or body.strip()):
                unreadable.append((source, f"line {n}"))
                continue
            add(row["id"], source, title, body, row.get("category", ""), row.get("price"))
    junk = folder / "extra" / "junk.jsonl"
    if junk.exists():
        with pytest.raises(UnicodeDecodeError):
            junk.read_text(encoding="utf-8")
        unreadable.append(("sample_extra", "junk.jsonl"))
    for export_file in sorted((folder / "telegram").glob("*/result.json")):
        try:
            export = json.loads(export_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            unreadable.append(("sample_telegram", export_file.parent.name))
            continue
        for msg in export["messages"]:
            if msg["type"] != "message":
                continue  # service messages are not items
            text = msg["text"]
            flat = (
                text
                if isinstance(text, str)
                else "".join(p if isinstance(p, str) else p["text"] for p in text)
            )
            if not flat.strip():
                unreadable.append(("sample_telegram", f"message {msg['id']}"))
                continue
            add(f"tg:{export['id']}:{msg['id']}", "sample_telegram", "", flat)
    with open(folder / "messenger.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["channel", "date", "sender", "text"]
    for n, row in enumerate(rows[1:], start=1):
        if len(row) != 4 or not row[3].strip():
            unreadable.append(("sample_messenger", f"row {n}"))
            continue
        add(stable_id("sample_messenger", f"messenger.csv:{n}"), "sample_messenger", "", row[3])
    return {"items": items, "unreadable": unreadable}


# ------------------------------------------------------------------------------------------------ contract


def _checksum_ok(currency: str, address: str) -> bool:
    if currency == "ETH":
        return crypto.validate_eth(address)
    if currency == "XMR":
        return crypto.validate_xmr(address) is not None
    if address.lower().startswith(("bc1", "ltc1")):
        return crypto.segwit_decode(address) is not None
    return crypto.validate_b58check(address) == currency


def contract_problems(t: dict[str, Any]) -> list[str]:
    """What in one truth line breaks the label contract (../shared/spec/labels.md)."""
    problems = []
    for key in (
        "id",
        "source",
        "kind",
        "market",
        "vendor",
        "lang",
        "is_offer",
        "drug_types",
        "quantity",
        "ships_from",
        "ships_to",
        "laundering_hints",
        "crypto_addresses",
        "contacts",
    ):
        if key not in t:
            problems.append(f"missing {key}")
    if problems:
        return problems
    dt = t["drug_types"]
    if not dt or set(dt) - set(DRUG_TYPES) or len(set(dt)) != len(dt) or (NON_DRUG in dt and len(dt) > 1):
        problems.append(f"drug_types {dt}")
    q = t["quantity"]
    if list(q) != list(QUANTITY_FIELDS):
        problems.append(f"quantity fields {list(q)}")
    for k, v in q.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            problems.append(f"quantity.{k} = {v!r}")
    if q.get("total_grams") is not None and q.get("units") is not None:
        problems.append("quantity has both total_grams and units")
    if not all(isinstance(c, str) and ISO2.match(c) and c != "WW" for c in t["ships_from"]):
        problems.append(f"ships_from {t['ships_from']}")
    if not all(isinstance(c, str) and ISO2.match(c) for c in t["ships_to"]):
        problems.append(f"ships_to {t['ships_to']}")
    if set(t["laundering_hints"]) - set(LAUNDERING_HINTS):
        problems.append(f"laundering_hints {t['laundering_hints']}")
    if ("crypto_address" in t["laundering_hints"]) != bool(t["crypto_addresses"]):
        problems.append("crypto_address hint without address, or the reverse")
    for a in t["crypto_addresses"]:
        if (
            set(a) != {"currency", "address", "valid"}
            or _checksum_ok(a["currency"], a["address"]) != a["valid"]
        ):
            problems.append(f"crypto address {a}")
    for c in t["contacts"]:
        if c.get("platform") not in CONTACT_PLATFORMS or not c.get("handle"):
            problems.append(f"contact {c}")
        elif c["platform"] == "telegram" and not c["handle"].startswith("@"):
            problems.append(f"telegram handle {c}")
    if t["kind"] not in KINDS or t["lang"] not in sample.AD_LANGS or not isinstance(t["is_offer"], bool):
        problems.append(f"kind/lang/is_offer {t['kind']} {t['lang']} {t['is_offer']}")
    if not t["is_offer"] and (dt != [NON_DRUG] or any(v is not None for v in q.values()) or t["ships_from"]):
        problems.append("a non-offer with offer labels")
    return problems


# ------------------------------------------------------------------------------------------------ tests


def test_writes_every_format(loaded: dict[str, Any]) -> None:
    folder, metrics = loaded["folder"], loaded["metrics"]
    params = sample.SampleParams()
    assert len(list((folder / "html" / "nightshade").glob("*.html"))) == params.listings_per_market
    assert len(list((folder / "html" / "velvet").glob("*.html"))) == params.listings_per_market
    expected = [
        "agora_export.csv",
        "listings.jsonl",
        "messenger.csv",
        "extra/more_listings.jsonl",
        "extra/junk.jsonl",
        "truth.jsonl",
        "manifest.json",
        "telegram/broken_channel/result.json",
    ]
    for rel in expected:
        assert (folder / rel).is_file(), rel
    page = next((folder / "html" / "nightshade").glob("*.html")).read_text(encoding="utf-8")
    assert '<meta name="generator" content="nightshade-market">' in page
    page = next((folder / "html" / "velvet").glob("*.html")).read_text(encoding="utf-8")
    assert '<body class="velvet-bazaar">' in page or page == ""
    assert metrics["good_items"] == len(loaded["truth"])
    assert loaded["manifest"]["counts"] == metrics
    assert {s["name"] for s in loaded["manifest"]["sources"]} == {
        "sample_nightshade",
        "sample_velvet",
        "sample_agora_csv",
        "sample_listings",
        "sample_telegram",
        "sample_messenger",
        "sample_extra",
    }
    for s in loaded["manifest"]["sources"]:
        assert (folder.parents[2] / s["path"]).exists(), s
        assert s["adapter"] in ("html", "tabular", "telegram")


def test_same_seed_gives_identical_bytes(tmp_path: Path, default_run: tuple[Path, dict[str, Any]]) -> None:
    sample.run(sample.SampleParams(), Paths(root=tmp_path / "again"))
    first = files_of(default_run[0])
    second = files_of(tmp_path / "again" / "data" / "raw" / "sample")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    sample.run(SMALL, Paths(root=tmp_path / "a"))
    sample.run(
        sample.SampleParams(seed=6, listings_per_market=60, messages_per_language=14),
        Paths(root=tmp_path / "b"),
    )
    a = files_of(tmp_path / "a" / "data" / "raw" / "sample")
    b = files_of(tmp_path / "b" / "data" / "raw" / "sample")
    assert a["truth.jsonl"] != b["truth.jsonl"]
    common = a.keys() & b.keys()
    assert sum(a[k] != b[k] for k in common) > 0.8 * len(common)


def test_every_readable_item_has_exactly_one_truth_line(loaded: dict[str, Any]) -> None:
    items = loaded["raw"]["items"]
    truth_ids = [t["id"] for t in loaded["truth"]]
    assert len(truth_ids) == len(set(truth_ids))
    bad = loaded["manifest"]["bad_items"]
    dropped_by_clean = {b["id"] for b in bad if b["stage"] == "clean"}
    assert dropped_by_clean <= items.keys()
    assert set(truth_ids) == items.keys() - dropped_by_clean
    for t in loaded["truth"]:
        assert items[t["id"]]["source"] == t["source"]
    # what this reader cannot read is exactly what the manifest lists as dropped at ingest
    assert len(loaded["raw"]["unreadable"]) == sum(b["stage"] == "ingest" for b in bad)
    assert Counter(s for s, _ in loaded["raw"]["unreadable"]) == Counter(
        b["source"] for b in bad if b["stage"] == "ingest"
    )


def test_clean_stage_bad_items_break_the_record_schema(loaded: dict[str, Any]) -> None:
    items = loaded["raw"]["items"]
    reasons = {b["id"]: b["reason"] for b in loaded["manifest"]["bad_items"] if b["stage"] == "clean"}
    assert set(reasons.values()) == {"invalid_price", "text_too_long"}
    for item_id, reason in reasons.items():
        item = items[item_id]
        if reason == "invalid_price":
            assert isinstance(item["price"], float) and item["price"] < 0
        else:
            assert len(item["text"]) > 100_000


def test_labels_follow_the_contract(loaded: dict[str, Any]) -> None:
    problems = {t["id"]: p for t in loaded["truth"] if (p := contract_problems(t))}
    assert problems == {}


def test_contacts_and_addresses_appear_in_the_text(loaded: dict[str, Any]) -> None:
    items = loaded["raw"]["items"]
    n_contacts = n_addresses = 0
    for t in loaded["truth"]:
        text = items[t["id"]]["text"]
        for a in t["crypto_addresses"]:
            assert a["address"] in text, t["id"]
            n_addresses += 1
        for c in t["contacts"]:
            handle = c["handle"].removeprefix("@") if c["platform"] == "telegram" else c["handle"]
            assert handle.lower() in text.lower(), (t["id"], c)
            n_contacts += 1
    assert n_contacts > 200 and n_addresses > 30
    valid = Counter(a["valid"] for t in loaded["truth"] for a in t["crypto_addresses"])
    assert valid[True] > valid[False] > 0


@pytest.mark.skipif(not CHECKER.is_file(), reason="../shared/tools/check_labelled.py not present")
def test_shared_label_checker_accepts_truth(default_run: tuple[Path, dict[str, Any]]) -> None:
    result = subprocess.run(
        [sys.executable, str(CHECKER), str(default_run[0] / "truth.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]


def test_bad_fraction_and_kinds(loaded: dict[str, Any]) -> None:
    bad = loaded["manifest"]["bad_items"]
    good = len(loaded["truth"])
    fraction = len(bad) / (len(bad) + good)
    assert 0.03 <= fraction <= 0.08
    assert loaded["metrics"]["bad_fraction"] == pytest.approx(fraction, abs=1e-4)
    assert {b["reason"] for b in bad} == {
        "no_text",
        "invalid_json",
        "malformed_row",
        "unreadable_file",
        "invalid_price",
        "text_too_long",
    }
    assert {b["stage"] for b in bad} == {"ingest", "clean"}
    assert len({b["source"] for b in bad}) == 7  # spread over every format
    assert sum(b["reason"] == "unreadable_file" for b in bad) == 2  # the cut Telegram export, the junk file
    huge = [
        line for line in (loaded["folder"] / "listings.jsonl").read_bytes().splitlines() if len(line) > 10e6
    ]
    assert len(huge) == 1


def test_messy_items_stay_good_and_mojibake_is_repairable(loaded: dict[str, Any]) -> None:
    truth_ids = {t["id"] for t in loaded["truth"]}
    messy = loaded["manifest"]["messy_items"]
    assert {m["kind"] for m in messy} == {"mojibake", "negative_price_text", "text_price"}
    assert {m["id"] for m in messy} <= truth_ids
    items = loaded["raw"]["items"]
    broken = [items[m["id"]]["text"] for m in messy if m["kind"] == "mojibake"]
    assert broken and all(re.search(r"Ã|Â|â|ð|Ð|Å", text) for text in broken)
    for text in ("Grüße aus Köln – Versand 5 €", "Vacuüm verpakt, één keer reship", "Stay safe 🔥 – £20"):
        broken = sample.mojibake(text)
        assert broken is not None and broken != text and ftfy.fix_text(broken) == text
    assert sample.mojibake("plain ascii") is None
    assert sample.mojibake("Клад в Москве") is None  # bytes cp1252 cannot hold: left as it is


def test_every_drug_code_and_language_is_present(loaded: dict[str, Any]) -> None:
    truth = loaded["truth"]
    assert {c for t in truth for c in t["drug_types"]} == set(DRUG_TYPES)
    for source in ("sample_nightshade", "sample_velvet", "sample_agora_csv", "sample_listings"):
        assert {c for t in truth if t["source"] == source for c in t["drug_types"]} == set(DRUG_TYPES), source
    assert {t["lang"] for t in truth if t["source"] == "sample_telegram"} == set(sample.AD_LANGS)
    listing_langs = Counter(t["lang"] for t in truth if t["kind"] == "listing")
    assert set(listing_langs) == {"en", "de", "nl"} and listing_langs["en"] > 0.6 * sum(
        listing_langs.values()
    )
    non_drug = sum(t["drug_types"] == [NON_DRUG] for t in truth if t["kind"] == "listing")
    assert 0.08 < non_drug / sum(listing_langs.values()) < 0.25
    bundles = sum(len(t["drug_types"]) > 1 for t in truth if t["kind"] == "listing")
    assert bundles > 10


def test_telegram_exports_load_and_mix_offers_with_other_messages(loaded: dict[str, Any]) -> None:
    folder = loaded["folder"]
    by_id = {t["id"]: t for t in loaded["truth"]}
    exports = sorted((folder / "telegram").glob("*/result.json"))
    assert len(exports) >= 8
    shapes: Counter[str] = Counter()
    for path in exports:
        if path.parent.name == "broken_channel":
            with pytest.raises(json.JSONDecodeError):
                json.loads(path.read_text(encoding="utf-8"))
            continue
        export = json.loads(path.read_text(encoding="utf-8"))
        assert export["type"] == "public_channel" and isinstance(export["id"], int) and export["name"]
        offers = Counter()
        for msg in export["messages"]:
            assert {"id", "type", "date", "date_unixtime", "text", "text_entities"} <= msg.keys()
            shapes[msg["type"]] += 1
            shapes[type(msg["text"]).__name__] += 1
            shapes.update(p["type"] for p in msg["text"] if isinstance(p, dict)) if isinstance(
                msg["text"], list
            ) else None
            truth = by_id.get(f"tg:{export['id']}:{msg['id']}")
            if truth is not None:
                offers[truth["is_offer"]] += 1
        assert offers[True] and offers[False], path
    assert shapes["service"] and shapes["str"] and shapes["list"]
    assert {"bold", "mention", "link", "hashtag", "text_link"} <= shapes.keys()


def test_categories_are_consistent_with_labels(loaded: dict[str, Any]) -> None:
    items = loaded["raw"]["items"]
    labels_by_category: dict[tuple[str, str], set[tuple[str, ...]]] = defaultdict(set)
    for t in loaded["truth"]:
        if t["kind"] == "listing":
            labels_by_category[(t["source"], items[t["id"]]["category"])].add(tuple(t["drug_types"]))
    mixed = {cat for (_src, cat), labels in labels_by_category.items() if len(labels) > 1}
    assert mixed and mixed <= COARSE
    assert len(labels_by_category) > 150


def test_quantities_read_from_conventional_amounts(loaded: dict[str, Any]) -> None:
    # first match wins: grams written beside a conventional unit win over the unit
    expected = [
        (r"\((?:28 grams|28g)\)", "total_grams", 28.0),
        (r"\(112g\)", "total_grams", 112.0),
        (r"\(448g\)", "total_grams", 448.0),
        (r"\(3\.5g\)", "total_grams", 3.5),
        (r"\b(?:an eighth|1/8 oz)\b", "total_grams", 3.54),
        (r"(?<![\d/])(?:1 oz|an ounce)\b", "total_grams", 28.35),
        (r"\bQP\b|\bquarter pound\b|(?<![\d/])4 oz\b", "total_grams", 113.4),
        (r"(?<![\d/])1 (?:lb|pound)\b", "total_grams", 453.59),
        (r"\b1 sheet \(100 hits\)", "units", 100),
        (r"\b16 fl oz\b", "volume_ml", 473.12),
    ]
    by_id = {t["id"]: t for t in loaded["truth"]}
    seen: Counter[str] = Counter()
    for item_id, item in loaded["raw"]["items"].items():
        truth = by_id.get(item_id)
        if truth is None or len(truth["drug_types"]) > 1 or not item["title"]:
            continue
        for pattern, key, value in expected:
            if re.search(pattern, item["title"], re.I):
                assert truth["quantity"][key] == pytest.approx(value, rel=0.02), item["title"]
                seen[pattern] += 1
                break
    assert sum(seen.values()) >= 20 and len(seen) >= 6


def test_cli_reads_the_sample_section(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "sample:\n  seed: 3\n  listings_per_market: 25\n  messages_per_language: 10\n", encoding="utf-8"
    )
    result = CliRunner().invoke(sample.app, ["--params-file", str(params), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    manifest = json.loads(
        (tmp_path / "out" / "data" / "raw" / "sample" / "manifest.json").read_text(encoding="utf-8")
    )
    assert manifest["params"] == {
        "seed": 3,
        "listings_per_market": 25,
        "messages_per_language": 10,
        "bad_fraction": 0.05,
    }
    assert json.loads(result.output)["nightshade_pages"] == 25

    params.write_text("sample:\n  seeds: 3\n", encoding="utf-8")
    result = CliRunner().invoke(sample.app, ["--params-file", str(params), "--out", str(tmp_path / "out2")])
    assert result.exit_code != 0
    assert "seeds" in str(result.exception)


def test_allocate_splits_exactly() -> None:
    parts = sample.allocate(101, sample.BAD_WEIGHTS)
    assert sum(parts.values()) == 101
    assert parts["ns_no_text"] >= parts["ob_negative_price"]
    assert sample.bad_budget(sample.SampleParams(bad_fraction=0.0), 100, 20) == dict.fromkeys(
        (*sample.BAD_ONE_OFF, *sample.BAD_WEIGHTS), 0
    )


def test_template_country_codes_are_strings() -> None:
    # YAML 1.1 reads a bare NO (Norway) as false: every code in the templates must stay a string
    tpl = sample.load_templates()
    codes = [*tpl["countries"], *tpl["extra_country_names"], *tpl["phones"], *tpl["neighbours"]]
    codes += [c for cs in tpl["neighbours"].values() for c in cs]
    codes += [c for ch in tpl["channels"] for dest in ch["dest"] for c in dest["to"]] + [
        ch["country"] for ch in tpl["channels"]
    ]
    assert all(isinstance(c, str) and (ISO2.match(c) or c in ("WW", "EU")) for c in codes)

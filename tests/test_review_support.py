"""Shared builders for the review tests: a small scored batch (contract records written by hand, with
evidence spans found in their own text), hostile XSS records, and a live server in a thread.

The other ``test_review*`` modules import from here; the tests below check the builders themselves.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS

MODEL = {"name": "narcotag-tagger", "version": "test-1"}

#: Payloads that try to run script; each would set window.__pwned or document.title if it ever ran.
XSS = {
    "script": '<script>window.__pwned="script";document.title="pwned-script"</script>',
    "img": "<img src=x onerror=\"window.__pwned='img';document.title='pwned-img'\">",
    "javascript": "<a href=\"javascript:window.__pwned='js';document.title='pwned-js'\">open me</a>",
    "textarea": "</textarea></title></mark><script>window.__pwned='textarea'</script><textarea>",
    "attr": '"><svg onload="window.__pwned=\'svg\'"><input value="',
    "template": "{{ 7*7 }} {% raw %}${7*7}",
}


def span(text: str, sub: str, nth: int = 0, **extra: Any) -> dict[str, Any]:
    """A span item for the ``nth`` occurrence of ``sub`` in ``text`` (character offsets)."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(sub, at + 1)
    return {"text": sub, "start": at, "end": at + len(sub), **extra}


def record(
    rid: str,
    text: str,
    *,
    drug: list[str],
    confidence: float,
    title: str | None = None,
    market: str = "Nightshade",
    kind: str = "listing",
    lang: str = "en",
    posted_at: str = "2024-09-02T12:00:00Z",
    quantity: dict[str, float | None] | None = None,
    qty_spans: list[dict[str, Any]] | None = None,
    drug_spans: list[dict[str, Any]] | None = None,
    origin_spans: list[dict[str, Any]] | None = None,
    hint_spans: list[dict[str, Any]] | None = None,
    ships_from: list[str] | None = None,
    ships_to: list[str] | None = None,
    hints: list[str] | None = None,
    addresses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    vendor: str = "vendor1",
    price: float | None = None,
) -> dict[str, Any]:
    """One labelled record (contract section 6 plus what ``narcotag score`` adds: title, text, analytics)."""
    scores = {c: (0.9 if c in drug else 0.02) for c in DRUG_TYPES}
    q = {"total_grams": None, "units": None, "dose_mg": None, "volume_ml": None, **(quantity or {})}
    out: dict[str, Any] = {
        "id": rid,
        "source": f"test_{market.lower().replace(' ', '_')}",
        "kind": kind,
        "market": market,
        "vendor": vendor,
        "lang": lang,
        "drug_types": drug,
        "drug_type_scores": scores,
        "quantity": q,
        "quantities": qty_spans or [],
        "ships_from": ships_from or [],
        "ships_to": ships_to or [],
        "laundering_hints": hints or [],
        "laundering_scores": {h: (0.95 if h in (hints or []) else 0.0) for h in LAUNDERING_HINTS},
        "crypto_addresses": addresses or [],
        "contacts": contacts or [],
        "evidence": {
            "drug_type": drug_spans or [],
            "origin": origin_spans or [],
            "laundering": hint_spans or [],
        },
        "confidence": confidence,
        "model": MODEL,
        "provenance": {"file": f"/data/raw/{rid}.html", "locator": "page", "adapter": "html"},
        "title": title if title is not None else text.split("\n")[0],
        "text": text,
        "posted_at": posted_at,
    }
    if price is not None:
        grams = q["total_grams"]
        out["analytics"] = {
            "price": price, "currency": "USD", "price_usd": price,
            "usd_per_gram": round(price / grams, 4) if grams else None, "usd_per_unit": None,
            "rates_date": "2025-01-01",
        }  # fmt: skip
    return out


BTC = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"


def offsets(text: str, sub: str) -> dict[str, int]:
    """``start``/``end`` of ``sub`` in ``text`` (addresses and contacts carry no ``text`` field)."""
    at = text.index(sub)
    return {"start": at, "end": at + len(sub)}


def cocaine_record() -> dict[str, Any]:
    """The record the highlight tests look at: an emoji first (offsets are code points), every kind."""
    text = (
        "🔥 Cocaine 90% 5g 🔥\nPure flake, ships from the Netherlands to EU.\n"
        f"Pay BTC only: {BTC}\nTelegram @coke_nl"
    )
    return record(
        "r-cocaine-nl", text, drug=["cocaine"], confidence=0.20, lang="en", price=60.0,
        quantity={"total_grams": 5}, ships_from=["NL"], ships_to=["EU"], hints=["bitcoin", "crypto_address"],
        qty_spans=[span(text, "5g", kind="mass", value=5, unit="g", role="offer", primary=True)],
        drug_spans=[span(text, "Cocaine", code="cocaine"), span(text, "flake", code="cocaine")],
        origin_spans=[span(text, "Netherlands", code="NL", role="from"),
                      span(text, "EU", code="EU", role="to")],
        hint_spans=[span(text, "BTC", code="bitcoin")],
        addresses=[{"currency": "BTC", "address": BTC, "valid": True, **offsets(text, BTC)}],
        contacts=[{"platform": "telegram", "handle": "@coke_nl", **offsets(text, "@coke_nl")}],
    )  # fmt: skip


def xanax_record() -> dict[str, Any]:
    text = "Xanax 2mg 100 bars\nWysyłka z Polski, płatność Western Union lub BTC"
    return record(
        "r-xanax-pl", text, drug=["benzodiazepine"], confidence=0.35, market="Polski Sklep 24/7", kind="ad",
        lang="pl", posted_at="2025-01-15T10:00:00Z", quantity={"units": 100, "dose_mg": 2},
        ships_from=["PL"], hints=["money_transfer", "bitcoin"],
        qty_spans=[span(text, "2mg", kind="dose", value=2, unit="mg", role="dose"),
                   span(text, "100 bars", kind="count", value=100, unit="bar", role="offer", primary=True)],
        drug_spans=[span(text, "Xanax", code="benzodiazepine")],
        origin_spans=[span(text, "Polski", code="PL", role="from")],
        hint_spans=[span(text, "Western Union", code="money_transfer"), span(text, "BTC", code="bitcoin")],
    )  # fmt: skip


def xss_records() -> list[dict[str, Any]]:
    """Hostile records: payloads in title, text, market, vendor, id, spans, contacts and provenance."""
    out = []
    for i, (name, payload) in enumerate(XSS.items()):
        text = f"{payload}\nMDMA 10 pills {payload} shipping from Germany"
        rec = record(
            f"x-{name}", text, drug=["mdma"], confidence=0.05 + i / 100, title=f"{payload} MDMA",
            market=f"Evil <b>{name}</b> market", vendor=payload, lang="de", posted_at="2024-11-01T00:00:00Z",
            ships_from=["DE"], quantity={"units": 10},
            drug_spans=[span(text, "MDMA", code="mdma"),
                        span(text, payload, code="<img src=x onerror=alert(1)>")],
            qty_spans=[span(text, "10 pills", kind="count", value=10, unit="pill", role="offer",
                            primary=True)],
            origin_spans=[span(text, "Germany", code="DE", role="from")],
            contacts=[{"platform": "other", "handle": "javascript:alert(1)", "start": 0,
                       "end": len(payload)}],
        )  # fmt: skip
        rec["provenance"]["file"] = payload
        out.append(rec)
    # an id that is itself an attack, and spans with broken offsets
    text = "Ketamine 5g <img src=x onerror=window.__pwned='id'>"
    rec = record(
        "x-id\"><img src=x onerror=window.__pwned='id'>", text, drug=["dissociative"], confidence=0.11,
        drug_spans=[{"text": "Ketamine", "start": 1000, "end": 1008, "code": "dissociative"},
                    {"text": "nowhere", "start": -3, "end": 2, "code": "dissociative"}],
    )  # fmt: skip
    out.append(rec)
    return out


MARKETS = ["Nightshade", "Velvet Bazaar", "Agora", "WhatsApp · Party London"]
LANGS = ["en", "de", "nl", "fr"]
FILLER_DRUGS = [["cannabis"], ["mdma"], ["amphetamine"], ["cannabis", "cocaine"], ["non_drug"], ["heroin"]]
ORIGINS = [["GB"], ["DE"], ["NL"], [], ["US"], ["FR"]]


def filler_records(n: int = 24) -> list[dict[str, Any]]:
    """Plain records over several markets, languages, dates and confidences (for filters and order)."""
    out = []
    for i in range(n):
        drug = FILLER_DRUGS[i % len(FILLER_DRUGS)]
        text = f"Listing {i}: {' and '.join(drug)} 1g, ships from {','.join(ORIGINS[i % 6]) or 'nowhere'}"
        out.append(
            record(
                f"f-{i:02d}",
                text,
                drug=drug,
                confidence=round(0.5 + i * 0.02, 4),
                market=MARKETS[i % 4],
                lang=LANGS[i % 4],
                posted_at=f"2024-{(i % 12) + 1:02d}-10T08:00:00Z",
                ships_from=ORIGINS[i % 6],
                hints=["escrow_bypass"] if i % 5 == 0 else [],
                kind="ad" if i % 4 == 3 else "listing",
                quantity={"total_grams": 1},
                qty_spans=[span(text, "1g", kind="mass", value=1, unit="g", role="offer", primary=True)],
            )  # fmt: skip
        )
    return out


def batch_records() -> list[dict[str, Any]]:
    """The whole test batch (2 + 7 hostile + 24 filler records)."""
    return [cocaine_record(), xanax_record(), *xss_records(), *filler_records()]


def write_batch(path: Path, records: list[dict[str, Any]] | None = None) -> Path:
    """Write records as a scored JSONL batch (what ``narcotag score --out X.jsonl`` writes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for rec in records if records is not None else batch_records():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve a Flask app on a free 127.0.0.1 port in a thread; yields the base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- the builders themselves ---------------------------------------------------------------------------


def test_spans_point_at_their_text() -> None:
    for rec in [cocaine_record(), xanax_record(), *filler_records()]:
        text = rec["text"]
        items = [*rec["quantities"], *(x for v in rec["evidence"].values() for x in v)]
        for item in items:
            assert text[item["start"] : item["end"]] == item["text"], (rec["id"], item)
        for item in rec["crypto_addresses"]:
            assert text[item["start"] : item["end"]] == item["address"]


def test_batch_ids_are_unique_and_payloads_present() -> None:
    records = batch_records()
    assert len({r["id"] for r in records}) == len(records)
    texts = "\n".join(r["text"] for r in records)
    for payload in XSS.values():
        assert payload in texts

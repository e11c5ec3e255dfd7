"""Review storage and inputs: scored batches in every shape, highlight markup, concurrent reviewers."""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_review_support import batch_records, cocaine_record, live_server, write_batch

from pipeline.review.app import create_app
from pipeline.review.batch import BatchError, load_batch
from pipeline.review.highlight import Span, highlight, spans_for
from pipeline.review.storage import Filters, ReviewStore, in_blind_sample, open_review

# --- reading scored batches ----------------------------------------------------------------------------


def test_reads_jsonl_gz_parquet_and_score_output_folder(tmp_path: Path) -> None:
    records = batch_records()
    jsonl = write_batch(tmp_path / "b.jsonl", records)
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl.read_bytes()))
    parquet = tmp_path / "b.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    folder = tmp_path / "scored_dir"
    (folder / "parts").mkdir(parents=True)
    write_batch(folder / "parts" / "part-00000.jsonl", records[:10])
    pq.write_table(pa.Table.from_pylist(records[10:]), folder / "parts" / "part-00001.parquet")
    (folder / "quarantine.jsonl").write_text('{"reason": "empty_text"}\n')
    (folder / "manifest.json").write_text("{}")
    for path in (jsonl, gz, parquet, folder):
        batch = load_batch(path)
        assert [r["id"] for r in batch.records] == [r["id"] for r in records], path
        first = batch.records[0]
        assert first["text"] == records[0]["text"]
        assert first["evidence"]["drug_type"][0]["text"] == "Cocaine"
        assert first["drug_type_scores"]["cocaine"] == pytest.approx(0.9)


def test_text_joined_from_cleaned_records_or_a_clear_error(tmp_path: Path) -> None:
    records = batch_records()[:3]
    bare = [{k: v for k, v in r.items() if k not in ("text", "title", "posted_at")} for r in records]
    scored = write_batch(tmp_path / "bare.jsonl", bare)
    with pytest.raises(BatchError, match="--records"):
        load_batch(scored)
    cleaned = tmp_path / "records.parquet"
    pd.DataFrame(
        [
            {"id": r["id"], "title": r["title"], "text": r["text"], "posted_at": r["posted_at"]}
            for r in records
        ]
    ).to_parquet(cleaned)
    batch = load_batch(scored, cleaned)
    assert [r["text"] for r in batch.records] == [r["text"] for r in records]
    assert batch.records[0]["posted_at"] == records[0]["posted_at"]


def test_minimal_contract_records_are_enough(tmp_path: Path) -> None:
    """Only the section-6 fields plus text: scores, evidence and confidence may be absent."""
    minimal = {"id": 7, "source": "s", "kind": "ad", "drug_types": ["mdma"], "text": "mdma 10 pills"}
    batch = load_batch(write_batch(tmp_path / "m.jsonl", [minimal, minimal]))
    assert batch.duplicates == 1 and len(batch.records) == 1
    record = batch.records[0]
    assert record["id"] == "7" and record["quantity"] == {
        "total_grams": None,
        "units": None,
        "dose_mg": None,
        "volume_ml": None,
    }
    assert 0.0 <= record["confidence"] <= 1.0


def test_reload_keeps_decisions_and_blind_marks(tmp_path: Path) -> None:
    scored = write_batch(tmp_path / "b.jsonl")
    store, batch, counts = open_review(scored, tmp_path / "r.db", blind_sample=0.5, seed=3)
    blind = {r["id"] for r in batch.records if in_blind_sample(r["id"], 0.5, 3)}
    assert counts["blind"] == len(blind) > 0
    store.decide("r-cocaine-nl", "alice", {"drug_types": ["cocaine"]})
    store, _, counts = open_review(scored, tmp_path / "r.db")  # no --blind-sample: marks stay
    assert counts["blind"] == len(blind)
    assert store.state("r-cocaine-nl", "alice").reviewed
    assert store.meta("blind_sample") == "0.5"


# --- highlights ----------------------------------------------------------------------------------------


def test_highlight_overlaps_without_nesting_and_escapes() -> None:
    text = "a <b>5g</b> & more"
    spans = [Span(2, 11, "drug", 'drug "x"'), Span(5, 7, "qty", "quantity: 5 g")]
    html = str(highlight(text, spans))
    assert html == (
        'a <mark class="hl hl-drug" data-start="2" data-end="5" data-kinds="drug" '
        'title="drug &#34;x&#34;">&lt;b&gt;</mark>'
        '<mark class="hl hl-drug hl-qty" data-start="5" data-end="7" data-kinds="drug qty" '
        'title="drug &#34;x&#34; · quantity: 5 g">5g</mark>'
        '<mark class="hl hl-drug" data-start="7" data-end="11" data-kinds="drug" '
        'title="drug &#34;x&#34;">&lt;/b&gt;</mark> &amp; more'
    )


def test_spans_are_checked_against_the_text() -> None:
    rec = cocaine_record()
    spans, counts = spans_for(rec)
    assert counts == {"ok": 8, "moved": 0, "dropped": 0}
    text = rec["text"]
    assert {(text[s.start : s.end], s.kind) for s in spans} >= {
        ("Cocaine", "drug"),
        ("5g", "qty"),
        ("Netherlands", "origin"),
        ("BTC", "hint"),
        ("@coke_nl", "contact"),
    }
    # offsets counted in UTF-16 (as JavaScript would, one more per emoji) are re-anchored on the text
    shifted = json.loads(json.dumps(rec))
    for item in shifted["evidence"]["drug_type"]:
        item["start"] += 1
        item["end"] += 1
    shifted["quantities"][0]["start"] = 10_000
    shifted["evidence"]["origin"][0].update(start=-1, end=3, text="Atlantis")
    spans, counts = spans_for(shifted)
    assert counts == {"ok": 4, "moved": 3, "dropped": 1}
    assert ("Cocaine", "drug") in {(text[s.start : s.end], s.kind) for s in spans}


# --- concurrency ---------------------------------------------------------------------------------------


def test_two_reviewers_at_once_lose_no_decision(tmp_path: Path) -> None:
    """Two browsers (HTTP sessions on a threaded server) decide the same records at the same time."""
    import requests

    scored = write_batch(tmp_path / "b.jsonl")
    store, batch, _ = open_review(scored, tmp_path / "r.db")
    app = create_app(store, batch.name, reviewer="nobody")
    ids = [r["id"] for r in batch.records if r["id"].startswith("f-")]
    sent: dict[str, list[int]] = {}
    errors: list[Any] = []
    start = threading.Barrier(2)

    def reviewer(name: str, base: str, drug: str) -> None:
        http = requests.Session()
        token = http.get(f"{base}/api/session").json()["csrf"]
        http.post(f"{base}/api/reviewer", json={"reviewer": name}, headers={"X-CSRF-Token": token})
        start.wait()
        for rounds in range(2):
            for rid in ids:
                r = http.post(
                    f"{base}/api/records/{rid}/decision",
                    json={"labels": {"drug_types": [drug], "ships_from": ["GB"] if rounds else []}},
                    headers={"X-CSRF-Token": token},
                )
                if r.status_code != 201:
                    errors.append((name, rid, r.status_code, r.text))
                else:
                    sent.setdefault(name, []).append(r.json()["seq"])

    with live_server(app) as base:
        threads = [
            threading.Thread(target=reviewer, args=("alice", base, "cannabis")),
            threading.Thread(target=reviewer, args=("bob", base, "cocaine")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert not errors
    log = store.decisions()
    assert len(log) == 2 * 2 * len(ids) == len(sent["alice"]) + len(sent["bob"])
    assert {d["seq"] for d in log} == set(sent["alice"]) | set(sent["bob"])
    by = {name: [d for d in log if d["reviewer"] == name] for name in ("alice", "bob")}
    assert all(d["after"]["drug_types"] == ["cannabis"] for d in by["alice"])
    assert all(d["after"]["drug_types"] == ["cocaine"] for d in by["bob"])
    # the label in force is the later decision, whoever made it
    for rid in ids:
        last = max((d for d in log if d["rid"] == rid), key=lambda d: d["seq"])
        assert store.state(rid, "carol").labels == last["after"]


def test_queue_status_for_each_reviewer(tmp_path: Path) -> None:
    store, batch, _ = open_review(write_batch(tmp_path / "b.jsonl"), tmp_path / "r.db")
    store.decide("f-00", "alice", {"drug_types": ["cannabis"]})
    pending = {i.rid for i in store.queue(batch.name, "bob", Filters())}
    done = {i.rid for i in store.queue(batch.name, "bob", Filters(status="done"))}
    assert "f-00" in done and "f-00" not in pending
    assert len(pending) + len(done) == len(batch.records)
    assert ReviewStore(tmp_path / "r.db").progress(batch.name, "alice")["mine"] == 1


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_real_tagger_output_reviews_cleanly(tmp_path: Path) -> None:
    """A batch the project's own Tagger labelled (models/ over data/interim records): every evidence span
    lands on its text, pages render, a decision round-trips. Skipped before the pipeline has run."""
    from test_review_app import assert_inert

    from pipeline.tagger import Tagger, to_json_line

    models, records_file = REPO / "models", REPO / "data" / "interim" / "records.parquet"
    if not (models / "drug_type").is_dir() or not records_file.exists():
        pytest.skip("no trained models/ or data/interim/records.parquet yet: run `narcotag train` first")
    cleaned = pd.read_parquet(records_file)
    sample = pd.concat([cleaned[cleaned["kind"] == k].head(25) for k in ("listing", "ad")])
    labelled = Tagger.load(models).tag(sample)
    scored = tmp_path / "scored.jsonl"
    with open(scored, "w", encoding="utf-8") as f:  # as `narcotag score` writes them: with title and text
        for rec, title, text in zip(labelled, sample["title"], sample["text"], strict=True):
            f.write(to_json_line({**rec, "title": title, "text": text}) + "\n")
    store, batch, counts = open_review(scored, tmp_path / "r.db", records=records_file)
    assert counts["records"] == len(sample)
    totals = {"ok": 0, "moved": 0, "dropped": 0}
    for record in batch.records:
        _, how = spans_for(record)
        totals = {k: totals[k] + how[k] for k in totals}
    assert totals["ok"] > len(sample) and totals["moved"] == totals["dropped"] == 0, totals
    client = create_app(store, batch.name, reviewer="alice").test_client()
    for record in batch.records[:10]:
        html = client.get("/record/" + record["id"]).get_data(as_text=True)
        assert_inert(html, record["id"])
        assert 'class="hl ' in html or not any(record["evidence"].values())
    first = batch.records[0]
    store.decide(first["id"], "alice", {"drug_types": first["drug_types"]})
    assert store.decisions()[-1]["model_version"] == first["model"]["version"]

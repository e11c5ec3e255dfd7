"""The review app through Flask's test client: queue, filters, search, decisions, CSRF, tokens, escaping."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from test_review_support import XSS, batch_records, write_batch

from pipeline.review.app import CSP, create_app
from pipeline.review.storage import Filters, ReviewStore, open_review


@pytest.fixture
def review(tmp_path: Path) -> dict[str, Any]:
    scored = write_batch(tmp_path / "scored" / "batch.jsonl")
    store, batch, _ = open_review(scored, tmp_path / "review.db")
    app = create_app(store, batch.name, reviewer="alice")
    return {"store": store, "batch": batch.name, "app": app, "client": app.test_client()}


def csrf(client: Any) -> str:
    return str(client.get("/api/session").get_json()["csrf"])


def queue_ids(client: Any, **params: Any) -> list[str]:
    response = client.get("/api/queue", query_string={"status": "all", **params})
    assert response.status_code == 200
    return [item["id"] for item in response.get_json()["items"]]


def decide(client: Any, rid: str, labels: dict[str, Any], token: str | None = None) -> Any:
    return client.post(
        f"/api/records/{rid}/decision",
        json={"labels": labels},
        headers={"X-CSRF-Token": token if token is not None else csrf(client)},
    )


COCAINE_LABELS = {
    "drug_types": ["cocaine"],
    "quantity": {"total_grams": 5},
    "ships_from": ["NL"],
    "ships_to": ["EU"],
    "laundering_hints": ["bitcoin", "crypto_address"],
}


# --- queue, filters, search ----------------------------------------------------------------------------


def test_queue_is_lowest_confidence_first(review: dict[str, Any]) -> None:
    items = review["client"].get("/api/queue?status=all").get_json()["items"]
    confidences = [i["confidence"] for i in items]
    assert confidences == sorted(confidences)
    assert len(items) == len(batch_records())
    assert items[0]["id"] == "x-script"  # 0.05, the least confident record


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"market": "Polski Sklep 24/7"}, {"r-xanax-pl"}),
        ({"drug": "benzodiazepine"}, {"r-xanax-pl"}),
        ({"origin": "NL", "drug": "cocaine"}, {"r-cocaine-nl"}),
        ({"hint": "money_transfer"}, {"r-xanax-pl"}),
        ({"lang": "pl"}, {"r-xanax-pl"}),
        ({"kind": "ad", "lang": "pl"}, {"r-xanax-pl"}),
        ({"date_from": "2025-01-01", "date_to": "2025-01-31"}, {"r-xanax-pl"}),
        ({"conf_min": "0.19", "conf_max": "0.21"}, {"r-cocaine-nl"}),
    ],
)
def test_filters(review: dict[str, Any], params: dict[str, str], expected: set[str]) -> None:
    assert set(queue_ids(review["client"], **params)) == expected


def test_filters_combine_and_ignore_garbage(review: dict[str, Any]) -> None:
    client = review["client"]
    everything = queue_ids(client)
    assert queue_ids(client, conf_min="abc", date_from="yesterday", status="bogus") == everything
    origins = queue_ids(client, origin="GB")
    assert origins and all(rid.startswith("f-") for rid in origins)
    assert set(queue_ids(client, origin="GB", market="Nightshade")) < set(origins)


def test_full_text_search(review: dict[str, Any]) -> None:
    client = review["client"]
    assert review["store"].fts, "this SQLite has FTS5"
    assert queue_ids(client, q="western union") == ["r-xanax-pl"]
    assert queue_ids(client, q="Nether") == ["r-cocaine-nl"]  # prefix match
    assert queue_ids(client, q="telegram coke_nl") == ["r-cocaine-nl"]
    assert queue_ids(client, q='"); DROP TABLE records; --') == []  # a query, not SQL or FTS syntax
    assert len(queue_ids(client)) == len(batch_records())


def test_search_without_fts_falls_back_to_substrings(review: dict[str, Any]) -> None:
    store: ReviewStore = review["store"]
    store.fts = False
    assert [i.rid for i in store.queue(review["batch"], "alice", Filters(q="Western", status="all"))] == [
        "r-xanax-pl"
    ]
    assert store.queue(review["batch"], "alice", Filters(q="100%_", status="all")) == []


def test_facets_and_queue_page_render(review: dict[str, Any]) -> None:
    facets = review["store"].facets(review["batch"])
    assert "Polski Sklep 24/7" in facets["market"] and "benzodiazepine" in facets["drug"]
    page = review["client"].get("/queue?status=all&drug=cocaine")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "r-cocaine-nl" in html and "r-xanax-pl" not in html
    assert "<kbd>j</kbd>" in html  # shortcuts shown on screen


# --- decisions -----------------------------------------------------------------------------------------


def test_accept_correct_undo_and_progress(review: dict[str, Any]) -> None:
    client, store = review["client"], review["store"]
    token = csrf(client)
    accepted = decide(client, "r-cocaine-nl", COCAINE_LABELS, token)
    assert accepted.status_code == 201 and accepted.get_json()["action"] == "accept"
    corrected = decide(client, "r-xanax-pl", {"drug_types": ["benzodiazepine", "cannabis"]}, token)
    body = corrected.get_json()
    assert body["action"] == "correct"
    assert body["before"]["drug_types"] == ["benzodiazepine"] and body["after"]["drug_types"] == [
        "cannabis",
        "benzodiazepine",
    ]
    progress = client.get("/api/progress").get_json()
    assert progress["reviewed"] == 2 and progress["mine"] == 2
    assert "r-cocaine-nl" not in queue_ids(client, status="pending")

    undone = client.post("/api/undo", headers={"X-CSRF-Token": token}).get_json()
    assert undone["rid"] == "r-xanax-pl" and undone["labels"] is None  # back to the model's labels
    state = client.get("/api/records/r-xanax-pl").get_json()
    assert state["reviewed"] is False and state["labels"]["drug_types"] == ["benzodiazepine"]
    undone = client.post("/api/undo", headers={"X-CSRF-Token": token}).get_json()
    assert undone["rid"] == "r-cocaine-nl"
    assert client.post("/api/undo", headers={"X-CSRF-Token": token}).status_code == 409
    # every step is still in the log: 2 decisions + 2 undos
    assert [d["action"] for d in store.decisions()] == ["accept", "correct", "undo", "undo"]
    assert client.get("/api/progress").get_json()["reviewed"] == 0


def test_decision_log_is_append_only(review: dict[str, Any]) -> None:
    import sqlite3

    decide(review["client"], "r-cocaine-nl", COCAINE_LABELS)
    with review["store"].connect() as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE decisions SET reviewer = 'mallory'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM decisions")
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_undo_only_takes_back_my_own_decisions(review: dict[str, Any]) -> None:
    app = review["app"]
    alice, bob = app.test_client(), app.test_client()
    bob.post("/api/reviewer", json={"reviewer": "bob"}, headers={"X-CSRF-Token": csrf(bob)})
    decide(alice, "f-00", {"drug_types": ["mdma"]})
    decide(bob, "f-01", {"drug_types": ["heroin"]})
    assert alice.post("/api/undo", headers={"X-CSRF-Token": csrf(alice)}).get_json()["rid"] == "f-00"
    assert bob.get("/api/records/f-01").get_json()["labels"]["drug_types"] == ["heroin"]


def test_bad_labels_are_refused(review: dict[str, Any]) -> None:
    client = review["client"]
    for labels, field in [
        ({"drug_types": ["crack_cocaine"]}, "drug_types"),
        ({"ships_from": ["XX"]}, "ships_from"),
        ({"ships_from": ["WW"]}, "ships_from"),  # WW only for ships_to
        ({"quantity": {"total_grams": -1}}, "quantity.total_grams"),
        ({"quantity": {"grams": 1}}, "quantity"),
        ({"laundering_hints": ["bank_robbery"]}, "laundering_hints"),
    ]:
        response = decide(client, "r-cocaine-nl", labels)
        assert response.status_code == 400 and field in response.get_json()["error"]
    assert review["store"].decisions() == []
    assert decide(client, "no-such-record", {"drug_types": ["mdma"]}).status_code == 404


def test_form_flow_accept_moves_to_next_pending_and_undo(review: dict[str, Any]) -> None:
    client, store = review["client"], review["store"]
    page = client.get("/record/r-cocaine-nl?status=all").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {
        "csrf_token": token.group(1), "drug_types": ["cocaine"], "total_grams": "5", "units": "",
        "dose_mg": "", "volume_ml": "", "ships_from": "NL", "ships_to": "EU",
        "laundering_hints": ["bitcoin", "crypto_address"],
    }  # fmt: skip
    response = client.post("/record/r-cocaine-nl/decide?status=all", data=form)
    assert response.status_code == 302
    # next pending after r-cocaine-nl in confidence order (0.20 -> r-xanax-pl at 0.35)
    assert response.headers["Location"].startswith("/record/r-xanax-pl")
    assert store.decisions()[-1]["action"] == "accept"
    form["ships_from"] = "nl, de"
    client.post("/record/r-cocaine-nl/decide", data=form)
    assert store.decisions()[-1]["after"]["ships_from"] == ["NL", "DE"]
    assert store.decisions()[-1]["action"] == "correct"
    response = client.post("/undo", data={"csrf_token": token.group(1)})
    assert response.status_code == 302 and "/record/r-cocaine-nl" in response.headers["Location"]
    assert store.state("r-cocaine-nl", "alice").labels["ships_from"] == ["NL"]


def test_record_page_shows_evidence_scores_and_provenance(review: dict[str, Any]) -> None:
    html = review["client"].get("/record/r-cocaine-nl").get_data(as_text=True)
    text = batch_records()[0]["text"]
    for kind, sub in [("drug", "Cocaine"), ("qty", "5g"), ("origin", "Netherlands"), ("hint", "BTC")]:
        start = text.index(sub)
        assert re.search(
            rf'<mark class="hl[^"]*hl-{kind}[^"]*" data-start="{start}" '
            rf'data-end="{start + len(sub)}"[^>]*>{sub}</mark>',
            html,
        ), kind
    assert 'class="hl hl-addr"' in html and 'class="hl hl-contact"' in html
    assert "/data/raw/r-cocaine-nl.html" in html and "test-1" in html  # provenance and model version
    assert '<meter min="0" max="1" value="0.9">' in html  # scores shown


def test_record_page_says_when_the_vendors_listings_decided_the_drug_type(tmp_path: Path) -> None:
    records = batch_records()
    records[0] = {**records[0], "vendor_context": {"listings": 7, "shifted": True, "filled": True}}
    records[1] = {**records[1], "vendor_context": {"listings": 4, "shifted": True, "filled": False}}
    store, batch, _ = open_review(write_batch(tmp_path / "batch.jsonl", records), tmp_path / "review.db")
    client = create_app(store, batch.name, reviewer="alice").test_client()
    filled = client.get(f"/record/{records[0]['id']}").get_data(as_text=True)
    assert "Filled in from this vendor's 7 other listings" in filled
    weighed = client.get(f"/record/{records[1]['id']}").get_data(as_text=True)
    assert "Weighed with this vendor's 4 other listings" in weighed
    plain = client.get(f"/record/{records[2]['id']}").get_data(as_text=True)
    assert 'id="vendor-context"' not in plain


# --- security ------------------------------------------------------------------------------------------


def test_csrf_required_on_every_change(review: dict[str, Any]) -> None:
    client = review["client"]
    csrf(client)  # the session has a token; requests below do not carry it (or carry a wrong one)
    assert decide(client, "r-cocaine-nl", COCAINE_LABELS, token="").status_code == 403
    assert decide(client, "r-cocaine-nl", COCAINE_LABELS, token="forged").status_code == 403
    assert client.post("/api/undo").status_code == 403
    assert client.post("/record/r-cocaine-nl/decide", data={"drug_types": "mdma"}).status_code == 403
    assert client.post("/reviewer", data={"reviewer": "mallory"}).status_code == 403
    assert client.post("/undo").status_code == 403
    # a fresh browser without any session has no token to match
    assert review["app"].test_client().post("/api/undo", headers={"X-CSRF-Token": "x"}).status_code == 403
    # a right token from another origin is still refused
    token = csrf(client)
    response = client.post(
        "/api/records/r-cocaine-nl/decision",
        json={"labels": COCAINE_LABELS},
        headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert review["store"].decisions() == []


def test_security_headers_everywhere(review: dict[str, Any]) -> None:
    client = review["client"]
    for path in ["/queue", "/record/r-cocaine-nl", "/static/review.js", "/record/missing", "/api/queue"]:
        response = client.get(path)
        assert response.headers["Content-Security-Policy"] == CSP, path
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    cookie = review["app"].test_client().get("/queue").headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


#: every element our templates emit; an injected tag would show up as something else
OUR_TAGS = {
    "html", "head", "meta", "title", "link", "script", "body", "header", "a", "span", "progress", "strong",
    "form", "input", "label", "button", "ul", "li", "main", "nav", "div", "section", "h1", "h2", "p", "mark",
    "details", "summary", "dl", "dt", "dd", "code", "fieldset", "legend", "kbd", "meter", "aside", "br", "ol",
    "select", "option", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip


def assert_inert(html: str, where: str) -> None:
    """No element, event handler, script or javascript: URL other than the templates' own."""
    parser = _Tags()
    parser.feed(html)
    tags = {t for t, _ in parser.tags}
    assert tags <= OUR_TAGS, (where, tags - OUR_TAGS)
    for tag, attrs in parser.tags:
        names = {name for name, _ in attrs}
        assert not {n for n in names if n.startswith("on")}, (where, tag, attrs)
        for name, value in attrs:
            if name in ("href", "src", "action", "data-href"):
                assert not (value or "").strip().lower().startswith("javascript:"), (where, tag, attrs)
        if tag == "script":
            assert dict(attrs).get("src") == "/static/review.js", (where, attrs)


def test_hostile_text_is_escaped(review: dict[str, Any]) -> None:
    client = review["client"]
    hostile = [r for r in batch_records() if r["id"].startswith("x-")]
    assert len(hostile) == len(XSS) + 1
    for rec in hostile:
        response = client.get("/record/" + quote(rec["id"], safe=""))
        assert response.status_code == 200, rec["id"]
        html = response.get_data(as_text=True)
        assert_inert(html, rec["id"])
        assert html.count("<script") == 1
    for html in (
        client.get("/queue?status=all").get_data(as_text=True),
        client.get("/api/queue").get_data(as_text=True),
    ):
        if html.lstrip().startswith("{"):
            continue  # JSON is served as application/json, never rendered
        assert_inert(html, "queue")
        assert "&lt;script&gt;" in html and "Evil &lt;b&gt;" in html
    # the payload text is there, as text, where the analyst can read it
    page = client.get("/record/x-script").get_data(as_text=True)
    assert "&lt;script&gt;window.__pwned=&#34;script&#34;" in page
    assert client.get("/api/queue").content_type == "application/json"


def test_loopback_only_without_token(review: dict[str, Any]) -> None:
    store, batch = review["store"], review["batch"]
    with pytest.raises(ValueError, match="needs --token"):
        create_app(store, batch, host="0.0.0.0")
    client = review["client"]
    assert client.get("/queue", headers={"Host": "evil.example:8000"}).status_code == 403  # DNS rebinding
    assert client.get("/queue", headers={"Host": "127.0.0.1:8000"}).status_code == 200


def test_token_enforced_for_non_local_host(review: dict[str, Any]) -> None:
    app = create_app(review["store"], review["batch"], host="0.0.0.0", token="s3cret-token")
    anonymous = app.test_client()
    for path in ["/queue", "/static/review.js", "/api/queue", "/record/r-cocaine-nl"]:
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.get("/queue?token=wrong").status_code == 401
    assert anonymous.get("/queue", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert anonymous.get("/queue", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert anonymous.get("/api/queue", headers={"X-Review-Token": "s3cret-token"}).status_code == 200
    browser = app.test_client()
    first = browser.get("/queue?token=s3cret-token&status=all")
    assert first.status_code == 302 and "token" not in first.headers["Location"]
    assert browser.get("/queue").status_code == 200  # the session cookie carries it from now on
    # and a change still needs CSRF on top of the token
    assert browser.post("/api/undo").status_code == 403


# --- blind second review -------------------------------------------------------------------------------


def test_blind_second_review_hides_the_first_decision(tmp_path: Path) -> None:
    scored = write_batch(tmp_path / "batch.jsonl")
    store, batch, counts = open_review(scored, tmp_path / "review.db", blind_sample=1.0)
    assert counts["blind"] == counts["records"]
    app = create_app(store, batch.name, reviewer="alice")
    alice, bob = app.test_client(), app.test_client()
    bob.post("/api/reviewer", json={"reviewer": "bob"}, headers={"X-CSRF-Token": csrf(bob)})
    decide(alice, "r-cocaine-nl", {**COCAINE_LABELS, "drug_types": ["cannabis"]})
    seen = bob.get("/api/records/r-cocaine-nl").get_json()
    assert seen["blind"] is True and seen["round"] == 2
    assert seen["labels"]["drug_types"] == ["cocaine"]  # the model's, not alice's cannabis
    assert seen["decided_by"] is None
    page = bob.get("/record/r-cocaine-nl").get_data(as_text=True)
    assert "Blind second review" in page and "alice" not in page
    bob_queue = {i["id"]: i for i in bob.get("/api/queue").get_json()["items"]}
    assert bob_queue["r-cocaine-nl"]["round"] == 2 and not bob_queue["r-cocaine-nl"]["done"]
    assert decide(bob, "r-cocaine-nl", COCAINE_LABELS).get_json()["round"] == 2
    # alice still sees her own round-1 decision; the export keeps round 1
    assert alice.get("/api/records/r-cocaine-nl").get_json()["labels"]["drug_types"] == ["cannabis"]
    rows = {r["id"]: r for r in alice.get("/api/reviewed").get_json()}
    assert rows["r-cocaine-nl"]["drug_types"] == ["cannabis"] and rows["r-cocaine-nl"]["round"] == 1


def test_saving_over_a_decision_made_meanwhile_is_flagged(review: dict[str, Any]) -> None:
    app = review["app"]
    alice, bob = app.test_client(), app.test_client()
    bob.post("/api/reviewer", json={"reviewer": "bob"}, headers={"X-CSRF-Token": csrf(bob)})
    shown = alice.get("/api/records/f-02").get_json()  # alice opens the record: nothing decided yet
    assert shown["base_seq"] is None
    assert decide(bob, "f-02", {"drug_types": ["cocaine"]}).get_json()["concurrent"] is False
    late = alice.post(
        "/api/records/f-02/decision",
        json={"labels": {"drug_types": ["heroin"]}, "base_seq": shown["base_seq"]},
        headers={"X-CSRF-Token": csrf(alice)},
    ).get_json()
    assert late["concurrent"] is True and late["before"]["drug_types"] == ["cocaine"]
    fresh = alice.get("/api/records/f-02").get_json()
    again = alice.post(
        "/api/records/f-02/decision",
        json={"labels": {"drug_types": ["heroin"]}, "base_seq": fresh["base_seq"]},
        headers={"X-CSRF-Token": csrf(alice)},
    ).get_json()
    assert again["concurrent"] is False and again["action"] == "accept"
    assert [d["reviewer"] for d in review["store"].decisions()] == ["bob", "alice", "alice"]  # all kept
    # the form path says so on screen
    page = alice.get("/record/f-03").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    decide(bob, "f-03", {"drug_types": ["mdma"]})
    alice.post(
        "/record/f-03/decide", data={"csrf_token": token.group(1), "base_seq": "", "drug_types": "ghb"}
    )
    assert "another reviewer decided this record" in alice.get("/queue").get_data(as_text=True)

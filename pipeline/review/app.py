"""The review web app (Flask, server-rendered Jinja templates, one small static script).

Security, because scraped text is hostile:

- every template is autoescaped; highlight markup is built from spans with each piece escaped
  (:mod:`pipeline.review.highlight`); data reaches the script only through ``data-`` attributes;
- a strict Content-Security-Policy (``default-src 'self'; script-src 'self'``, no ``'unsafe-inline'``) and
  the usual companions (nosniff, no framing, no referrer);
- every state-changing request needs the session's CSRF token (form field ``csrf_token`` or header
  ``X-CSRF-Token``), and a cross-site ``Origin`` is refused;
- bound to 127.0.0.1 by default, where requests must name a loopback host (no DNS rebinding); any other
  host needs a token, and every request must carry it (``Authorization: Bearer``, ``X-Review-Token``, or
  once as ``?token=`` which sets a session cookie).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from pipeline.review.highlight import KINDS, highlight, spans_for
from pipeline.review.labels import LabelError
from pipeline.review.storage import STATUSES, Filters, QueueItem, ReviewError, ReviewStore
from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, QUANTITY_FIELDS

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
QUEUE_PAGE = 200


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address to bind) is this machine only."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def key_label(index: int) -> str:
    """The keyboard key that toggles label ``index`` (0-based): 1-9, then shift+1-9."""
    return str(index + 1) if index < 9 else f"⇧{index - 8}"


def number_text(value: Any) -> str:
    """A quantity for an input field: 50.0 -> "50", None -> ""."""
    if value is None:
        return ""
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def parse_filters(args: Any) -> Filters:
    """Queue filters from a query string; malformed values are ignored rather than trusted."""

    def text(name: str, limit: int = 100) -> str:
        value = str(args.get(name, "") or "").strip()
        return value[:limit]

    def number(name: str) -> float | None:
        try:
            value = float(args.get(name, ""))
        except (TypeError, ValueError):
            return None
        return value if 0 <= value <= 1 else None

    def date(name: str) -> str:
        value = text(name, 10)
        return value if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else ""

    status = text("status", 10)
    return Filters(
        market=text("market"), drug=text("drug"), origin=text("origin"), hint=text("hint"), lang=text("lang"),
        kind=text("kind"), date_from=date("date_from"), date_to=date("date_to"), conf_min=number("conf_min"),
        conf_max=number("conf_max"), q=text("q", 200), status=status if status in STATUSES else "pending",
    )  # fmt: skip


def labels_from_form(form: Any) -> dict[str, Any]:
    """Decision labels from the record page's form."""
    return {
        "drug_types": form.getlist("drug_types"),
        "quantity": {q: form.get(q, "") for q in QUANTITY_FIELDS},
        "ships_from": form.get("ships_from", ""),
        "ships_to": form.get("ships_to", ""),
        "laundering_hints": form.getlist("laundering_hints"),
    }


def _item_json(item: QueueItem) -> dict[str, Any]:
    return {
        "id": item.rid, "confidence": item.confidence, "title": item.title, "market": item.market,
        "lang": item.lang, "posted_date": item.posted_date, "drug_types": item.drug_types,
        "ships_from": item.ships_from, "laundering_hints": item.hints, "round": item.round, "done": item.done,
    }  # fmt: skip


def create_app(
    store: ReviewStore,
    batch: str,
    *,
    reviewer: str = "analyst",
    host: str = "127.0.0.1",
    token: str | None = None,
    secret_key: str | None = None,
) -> Flask:
    """The review app over ``batch`` (already loaded into ``store``).

    ``token`` is required when ``host`` is not a loopback address; when set, every request must carry it."""
    if not is_loopback(host) and not token:
        raise ValueError(f"binding to {host} (not loopback) needs --token: every request must carry it")
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_hex(32),
        SESSION_COOKIE_NAME="narcotag_review",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=1_000_000,
        JSON_SORT_KEYS=False,
    )
    app.jinja_env.autoescape = True  # every template, whatever its name
    app.jinja_env.filters["num"] = number_text
    app.jinja_env.globals.update(
        KINDS=KINDS, DRUG_TYPES=DRUG_TYPES, LAUNDERING_HINTS=LAUNDERING_HINTS,
        QUANTITY_FIELDS=QUANTITY_FIELDS, key_label=key_label,
    )  # fmt: skip
    app.extensions["narcotag_review"] = {"store": store, "batch": batch}
    token_bytes = token.encode() if token else None

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        return str(session["csrf"])

    def current_reviewer() -> str:
        return str(session.get("reviewer") or reviewer)

    app.jinja_env.globals["csrf_token"] = csrf_token

    # --- request guards ---------------------------------------------------------------------------------

    @app.before_request
    def guard() -> BaseResponse | None:
        if token_bytes is not None:
            offered = (
                request.headers.get("X-Review-Token")
                or (request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or None)
                or request.args.get("token")
            )
            if offered is not None and hmac.compare_digest(offered.encode(), token_bytes):
                session["token_ok"] = True
                if "token" in request.args and request.method == "GET":  # do not leave it in the address bar
                    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "token"}
                    return redirect(url_for(request.endpoint or "queue", **(request.view_args or {}), **args))
            elif not session.get("token_ok"):
                return Response("review token required\n", 401, {"Content-Type": "text/plain"})
        else:
            hostname = (urlsplit(f"//{request.host}").hostname or "").lower()
            if hostname not in LOOPBACK_NAMES:
                return Response("unexpected Host header\n", 403, {"Content-Type": "text/plain"})
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("Origin")
            if origin and origin != "null" and urlsplit(origin).netloc != request.host:
                return Response("cross-origin request refused\n", 403, {"Content-Type": "text/plain"})
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
            expected = session.get("csrf")
            if not expected or not hmac.compare_digest(str(sent).encode(), str(expected).encode()):
                if request.path.startswith("/api/"):
                    return jsonify({"error": "CSRF token missing or wrong"}), 403  # type: ignore[return-value]
                return Response("CSRF token missing or wrong\n", 403, {"Content-Type": "text/plain"})
        return None

    @app.after_request
    def headers(response: BaseResponse) -> BaseResponse:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response

    # --- helpers ----------------------------------------------------------------------------------------

    def navigation(rid: str, filters: Filters) -> dict[str, Any]:
        everything = store.order(batch, current_reviewer(), replace(filters, status="all"))
        ids = [r for r, _ in everything]
        wanted = [
            filters.status == "all" or (filters.status == "pending") != done or r == rid
            for r, done in everything
        ]
        at = ids.index(rid) if rid in ids else -1
        prev = next((ids[i] for i in range(at - 1, -1, -1) if wanted[i]), None) if at >= 0 else None
        nxt = next((ids[i] for i in range(at + 1, len(ids)) if wanted[i]), None) if at >= 0 else None
        pending = sum(not done for _, done in everything)
        return {
            "prev": prev, "next": nxt, "position": at + 1, "count": len(ids), "pending": pending,
            "in_queue": at >= 0,
        }  # fmt: skip

    def next_pending(after: str, filters: Filters) -> str | None:
        everything = store.order(batch, current_reviewer(), replace(filters, status="all"))
        ids = [r for r, _ in everything]
        at = ids.index(after) if after in ids else -1
        order = everything[at + 1 :] + everything[: at + 1]
        return next((r for r, done in order if not done and r != after), None)

    # --- pages ------------------------------------------------------------------------------------------

    @app.get("/")
    def index() -> BaseResponse:
        return redirect(url_for("queue"))

    @app.get("/queue")
    def queue() -> str:
        filters = parse_filters(request.args)
        try:
            page = max(0, int(request.args.get("page", 0)))
        except ValueError:
            page = 0
        shown, total = store.queue_page(batch, current_reviewer(), filters, page * QUEUE_PAGE, QUEUE_PAGE)
        return render_template(
            "queue.html", items=shown, total=total, page=page, pages=max(1, (total - 1) // QUEUE_PAGE + 1),
            filters=filters, query=filters.active(), facets=store.facets(batch), statuses=STATUSES,
            progress=store.progress(batch, current_reviewer()), reviewer=current_reviewer(), batch=batch,
            search_mode="full-text (FTS5)" if store.fts else "substring",
        )  # fmt: skip

    @app.get("/record/<path:rid>")
    def record(rid: str) -> str:
        filters = parse_filters(request.args)
        try:
            state = store.state(rid, current_reviewer())
        except ReviewError:
            abort(404)
        spans, alignment = spans_for(state.record)
        marked = highlight(state.record.get("text") or "", spans)
        return render_template(
            "record.html", state=state, rec=state.record, marked=marked,
            alignment=alignment, span_counts={k: sum(s.kind == k for s in spans) for k in KINDS},
            nav=navigation(rid, filters), filters=filters, query=filters.active(),
            progress=store.progress(batch, current_reviewer()), reviewer=current_reviewer(), batch=batch,
        )  # fmt: skip

    @app.post("/record/<path:rid>/decide")
    def decide(rid: str) -> BaseResponse:
        filters = parse_filters(request.args)
        base = request.form.get("base_seq") or None
        try:
            result = store.decide(
                rid, current_reviewer(), labels_from_form(request.form),
                base_seq=int(base) if base and base.isdigit() else None, note=request.form.get("note"),
                seen="base_seq" in request.form,
            )  # fmt: skip
        except LabelError as e:
            flash(f"not saved: {e}", "error")
            return redirect(url_for("record", rid=rid, **filters.active()))
        except ReviewError:
            abort(404)
        verb = "accepted" if result["action"] == "accept" else "corrected"
        flash(f"{verb} {rid}", "ok")
        if result["concurrent"]:
            flash(
                "another reviewer decided this record while you had it open; both decisions are logged",
                "warn",
            )
        following = next_pending(rid, filters)
        if following is None:
            flash("nothing left to review in this queue", "ok")
            return redirect(url_for("queue", **filters.active()))
        return redirect(url_for("record", rid=following, **filters.active()))

    @app.post("/undo")
    def undo() -> BaseResponse:
        filters = parse_filters(request.args)
        try:
            result = store.undo(current_reviewer(), batch)
        except ReviewError as e:
            flash(str(e), "warn")
            return redirect(request.referrer or url_for("queue", **filters.active()))
        flash(f"undid your decision on {result['rid']}", "ok")
        return redirect(url_for("record", rid=result["rid"], **filters.active()))

    @app.post("/reviewer")
    def set_reviewer() -> BaseResponse:
        name = (request.form.get("reviewer") or "").strip()
        if not name or len(name) > 64 or not re.fullmatch(r"[\w.@ -]+", name):
            flash("a reviewer name is 1-64 letters, digits, spaces or . _ @ -", "error")
        else:
            session["reviewer"] = name
            flash(f"reviewing as {name}", "ok")
        return redirect(url_for("queue", **parse_filters(request.args).active()))

    # --- JSON API (same guards) -------------------------------------------------------------------------

    @app.get("/api/session")
    def api_session() -> Response:
        return jsonify({"csrf": csrf_token(), "reviewer": current_reviewer(), "batch": batch})

    @app.get("/api/queue")
    def api_queue() -> Response:
        items = store.queue(batch, current_reviewer(), parse_filters(request.args))
        return jsonify({"count": len(items), "items": [_item_json(i) for i in items]})

    @app.get("/api/progress")
    def api_progress() -> Response:
        return jsonify(store.progress(batch, current_reviewer()))

    @app.get("/api/records/<path:rid>")
    def api_record(rid: str) -> Response:
        try:
            state = store.state(rid, current_reviewer())
        except ReviewError:
            abort(404)
        return jsonify(
            {
                "record": state.record, "predicted": state.predicted, "labels": state.labels,
                "round": state.round, "blind": state.blind, "reviewed": state.reviewed,
                "base_seq": state.base_seq, "decided_by": state.decided_by, "decided_at": state.decided_at,
            }
        )  # fmt: skip

    @app.post("/api/records/<path:rid>/decision")
    def api_decide(rid: str) -> tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("labels"), dict):
            return jsonify({"error": "send JSON {labels: {...}, base_seq?, note?}"}), 400
        base = body.get("base_seq")
        try:
            result = store.decide(
                rid, current_reviewer(), body["labels"], base_seq=base if isinstance(base, int) else None,
                note=str(body["note"]) if body.get("note") else None, seen="base_seq" in body,
            )  # fmt: skip
        except LabelError as e:
            return jsonify({"error": str(e)}), 400
        except ReviewError as e:
            return jsonify({"error": str(e)}), 404
        return jsonify(result), 201

    @app.post("/api/undo")
    def api_undo() -> tuple[Response, int]:
        try:
            return jsonify(store.undo(current_reviewer(), batch)), 200
        except ReviewError as e:
            return jsonify({"error": str(e)}), 409

    @app.post("/api/reviewer")
    def api_reviewer() -> tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        name = str(body.get("reviewer") or "").strip()
        if not name or len(name) > 64 or not re.fullmatch(r"[\w.@ -]+", name):
            return jsonify({"error": "a reviewer name is 1-64 letters, digits, spaces or . _ @ -"}), 400
        session["reviewer"] = name
        return jsonify({"reviewer": name}), 200

    @app.get("/api/reviewed")
    def api_reviewed() -> Response:
        from pipeline.review.export import reviewed_rows

        return jsonify(reviewed_rows(store))

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[str, int]:
        return render_template("error.html", message="No such record in this review.", batch=batch), 404

    return app


def serve(app: Flask, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` with Werkzeug's threaded server until interrupted (a local tool, not a public site)."""
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()

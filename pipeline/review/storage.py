"""The review database: records of the batches under review and an append-only log of every decision.

SQLite in WAL mode, so readers never block the one writer and two browsers reviewing at once lose nothing:
each decision is one ``INSERT`` in its own ``BEGIN IMMEDIATE`` transaction (writers queue on SQLite's lock,
with a busy timeout), and triggers refuse any ``UPDATE`` or ``DELETE`` of a decision.

Decisions
    ``accept`` / ``correct`` (the reviewer kept or changed what was shown), ``import`` (from Label Studio)
    and ``undo`` (names the decision it takes back in ``undoes``). Every row stores the reviewer, the time,
    the labels before and after, the model version of the record and the decision the reviewer was looking
    at (``base_seq``), so a concurrent overwrite can be found later. The labels that count for a record and
    round are those of its latest decision not taken back by an undo.

Rounds
    Round 1 is the review. With a blind sample (``--blind-sample``), a sampled record that one reviewer has
    decided is offered to a *different* reviewer as round 2 without showing the first decision; the two
    rounds give the agreement figures (:mod:`pipeline.review.agreement`). Export uses round 1 (round 2 where
    round 1 was taken back).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.review.batch import Batch
from pipeline.review.labels import clean_labels, predicted_labels

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    rid TEXT NOT NULL UNIQUE,
    batch TEXT NOT NULL,
    pos INTEGER NOT NULL,
    confidence REAL NOT NULL,
    market TEXT,
    kind TEXT,
    lang TEXT,
    posted_date TEXT,
    drug_types TEXT NOT NULL,
    ships_from TEXT NOT NULL,
    hints TEXT NOT NULL,
    title TEXT,
    snippet TEXT,
    model_version TEXT,
    blind INTEGER NOT NULL DEFAULT 0,
    digest TEXT NOT NULL
);
-- covers the queue order and each record's status: moving through 100k records reads only this index
CREATE INDEX IF NOT EXISTS records_queue ON records (batch, confidence, pos, id, rid, blind);
-- the wide part (text, whole labelled record) apart, so that queue scans read narrow rows
CREATE TABLE IF NOT EXISTS bodies (
    id INTEGER PRIMARY KEY REFERENCES records (id),
    title TEXT,
    text TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    rid TEXT NOT NULL,
    round INTEGER NOT NULL CHECK (round IN (1, 2)),
    reviewer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('accept', 'correct', 'import', 'undo')),
    before TEXT,
    after TEXT,
    undoes INTEGER REFERENCES decisions (seq),
    base_seq INTEGER,
    model_version TEXT,
    source TEXT NOT NULL DEFAULT 'app',
    note TEXT
);
CREATE INDEX IF NOT EXISTS decisions_record ON decisions (rid, round, seq);
CREATE INDEX IF NOT EXISTS decisions_reviewer ON decisions (reviewer, seq);
CREATE INDEX IF NOT EXISTS decisions_undoes ON decisions (undoes);
CREATE TRIGGER IF NOT EXISTS decisions_append_only_u BEFORE UPDATE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE TRIGGER IF NOT EXISTS decisions_append_only_d BEFORE DELETE ON decisions
BEGIN SELECT RAISE(ABORT, 'decisions are append-only'); END;
CREATE VIEW IF NOT EXISTS active AS
    SELECT d.* FROM decisions d
    WHERE d.action != 'undo'
      AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.seq AND u.action = 'undo');
CREATE VIEW IF NOT EXISTS current AS
    SELECT rid, round, reviewer, created_at, action, after, model_version, source, max(seq) AS seq
    FROM active GROUP BY rid, round;
"""

_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(
    title, text, content='bodies', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS bodies_fts_i AFTER INSERT ON bodies BEGIN
    INSERT INTO records_fts (rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TRIGGER IF NOT EXISTS bodies_fts_d AFTER DELETE ON bodies BEGIN
    INSERT INTO records_fts (records_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
END;
CREATE TRIGGER IF NOT EXISTS bodies_fts_u AFTER UPDATE ON bodies BEGIN
    INSERT INTO records_fts (records_fts, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);
    INSERT INTO records_fts (rowid, title, text) VALUES (new.id, new.title, new.text);
END;
"""

#: Queue statuses a reviewer can filter on.
STATUSES = ("pending", "done", "all")


class ReviewError(ValueError):
    """A request the review store refuses (unknown record, nothing to undo, ...)."""


def now() -> str:
    """UTC time of a decision, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def in_blind_sample(rid: str, fraction: float, seed: int = 0) -> bool:
    """Whether a record is in the blind second-review sample: a seeded hash, stable across loads."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{rid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


@dataclass(frozen=True)
class Filters:
    """What narrows the queue. Empty strings and None mean "no filter"."""

    market: str = ""
    drug: str = ""
    origin: str = ""
    hint: str = ""
    lang: str = ""
    kind: str = ""
    date_from: str = ""
    date_to: str = ""
    conf_min: float | None = None
    conf_max: float | None = None
    q: str = ""
    status: str = "pending"

    def active(self) -> dict[str, Any]:
        """The filters that are set, as query-string values."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value in ("", None) or (name == "status" and value == "pending"):
                continue
            out[name] = str(value)
        return out


@dataclass
class QueueItem:
    """One record in a reviewer's queue."""

    rid: str
    confidence: float
    title: str | None
    snippet: str
    market: str | None
    lang: str | None
    posted_date: str | None
    drug_types: list[str]
    ships_from: list[str]
    hints: list[str]
    round: int
    done: bool
    blind: bool


@dataclass
class RecordState:
    """What a reviewer sees of a record: its labelled record, and the labels to start from."""

    record: dict[str, Any]
    predicted: dict[str, Any]
    labels: dict[str, Any]
    round: int
    reviewed: bool
    blind: bool
    base_seq: int | None
    decided_by: str | None = None
    decided_at: str | None = None
    action: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _date(value: Any) -> str | None:
    if not value:
        return None
    text = str(value)
    return text[:10] if re.match(r"\d{4}-\d{2}-\d{2}", text) else None


class ReviewStore:
    """The review database at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{self.path}: SQLite refused WAL mode ({mode})")
            db.executescript(_SCHEMA)
            try:
                db.executescript(_FTS)
                self.fts = True
            except sqlite3.OperationalError:  # SQLite built without FTS5: search falls back to LIKE
                self.fts = False
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
            )

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection (one per request or thread), autocommit unless a transaction is opened."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA mmap_size = 268435456")  # reads straight from the OS cache: a fresh
            db.execute("PRAGMA cache_size = -32000")  # connection per request starts warm
            yield db
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes SQLite's write lock at once (no upgrade deadlocks)."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --- meta ---------------------------------------------------------------------------------------------

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.connect() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # --- records ------------------------------------------------------------------------------------------

    def load(self, batch: Batch, blind_sample: float | None = None, seed: int = 0) -> dict[str, int]:
        """Store (or refresh) a batch's records. ``blind_sample`` (a fraction) marks the blind second-review
        sample afresh; ``None`` keeps the marks records already have. Decisions are never touched."""
        if blind_sample is not None and not 0 <= blind_sample <= 1:
            raise ReviewError("--blind-sample must be a fraction between 0 and 1")
        with self.connect() as db:
            known = dict(db.execute("SELECT rid, digest FROM records").fetchall())
        rows, bodies = [], []
        facets: dict[str, set[str]] = {k: set() for k in ("market", "lang", "kind", "drug", "origin", "hint")}
        for pos, record in enumerate(batch.records):
            market = record.get("market") or record.get("source")
            text = record.get("text") or ""
            payload = json.dumps(record, ensure_ascii=False, default=str)
            digest = hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()
            rows.append(
                (
                    record["id"], batch.name, pos, float(record["confidence"]), market, record.get("kind"),
                    record.get("lang"), _date(record.get("posted_at")), json.dumps(record["drug_types"]),
                    json.dumps(record["ships_from"]), json.dumps(record["laundering_hints"]),
                    record.get("title"), text[:160], record["model"].get("version"),
                    int(in_blind_sample(record["id"], blind_sample or 0.0, seed)), digest,
                )
            )  # fmt: skip
            if known.get(record["id"]) != digest:  # new or changed: (re)index its text
                bodies.append((record["id"], record.get("title"), text, payload))
            for key, values in (
                ("market", [market]), ("lang", [record.get("lang")]), ("kind", [record.get("kind")]),
                ("drug", record["drug_types"]), ("origin", record["ships_from"]),
                ("hint", record["laundering_hints"]),
            ):  # fmt: skip
                facets[key].update(str(v) for v in values if v not in (None, ""))
        keep_blind = blind_sample is None
        with self.transaction() as db:
            db.executemany(
                """INSERT INTO records (rid, batch, pos, confidence, market, kind, lang, posted_date,
                       drug_types, ships_from, hints, title, snippet, model_version, blind, digest)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (rid) DO UPDATE SET batch = excluded.batch, pos = excluded.pos,
                       confidence = excluded.confidence, market = excluded.market, kind = excluded.kind,
                       lang = excluded.lang, posted_date = excluded.posted_date,
                       drug_types = excluded.drug_types, ships_from = excluded.ships_from,
                       hints = excluded.hints, title = excluded.title, snippet = excluded.snippet,
                       model_version = excluded.model_version, digest = excluded.digest,
                       blind = CASE WHEN ? THEN records.blind ELSE excluded.blind END""",
                [(*row, keep_blind) for row in rows],
            )
            db.executemany(
                """INSERT INTO bodies (id, title, text, payload)
                   VALUES ((SELECT id FROM records WHERE rid = ?), ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET title = excluded.title, text = excluded.text,
                       payload = excluded.payload""",
                bodies,
            )
            meta = [
                ("batch", batch.name),
                (f"facets:{batch.name}", json.dumps({k: sorted(v) for k, v in facets.items()})),
            ]
            if blind_sample is not None:
                meta.append(("blind_sample", str(blind_sample)))
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
            blind = db.execute("SELECT count(*) FROM records WHERE batch = ? AND blind", (batch.name,))
            n_blind = int(blind.fetchone()[0])
        return {"records": len(rows), "blind": n_blind, "indexed": len(bodies)}

    def record(self, rid: str) -> dict[str, Any]:
        """The labelled record ``rid`` as loaded (normalised)."""
        with self.connect() as db:
            row = db.execute(
                "SELECT b.payload FROM records r JOIN bodies b ON b.id = r.id WHERE r.rid = ?", (rid,)
            ).fetchone()
        if row is None:
            raise ReviewError(f"no record {rid!r} in this review")
        payload: dict[str, Any] = json.loads(row[0])
        return payload

    def facets(self, batch: str) -> dict[str, list[str]]:
        """The values the queue filters offer for ``batch`` (markets, languages, codes present), as
        worked out when the batch was loaded."""
        stored = self.meta(f"facets:{batch}")
        if stored is None:
            return {k: [] for k in ("market", "lang", "kind", "drug", "origin", "hint")}
        facets: dict[str, list[str]] = json.loads(stored)
        return facets

    # --- the queue ----------------------------------------------------------------------------------------

    def _search_clause(self, q: str) -> tuple[str, list[Any]]:
        tokens = re.findall(r"\w+", q)
        if not tokens:
            return "", []
        if self.fts:
            match = " ".join('"' + t.replace('"', '""') + '"*' for t in tokens)
            return "r.id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)", [match]
        clauses, args = [], []
        for t in tokens:
            like = "%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            clauses.append(
                "r.id IN (SELECT b.id FROM bodies b "
                "WHERE b.title LIKE ? ESCAPE '\\' OR b.text LIKE ? ESCAPE '\\')"
            )
            args += [like, like]
        return " AND ".join(clauses), args

    def _current_reviewers(self, db: sqlite3.Connection) -> dict[tuple[str, int], str]:
        """(record id, round) -> reviewer of the decision in force (few rows: one per decided record)."""
        return {(r[0], r[1]): r[2] for r in db.execute("SELECT rid, round, reviewer FROM current")}

    def queue_rows(self, batch: str, reviewer: str, filters: Filters) -> list[tuple[int, str, int, bool]]:
        """The queue in order as (row id, record id, round, done): only what the index holds, so that
        moving through a large batch stays fast; :meth:`queue_page` adds the details of one page."""
        where: list[str] = ["r.batch = ?"]
        args: list[Any] = [batch]
        for column, value in (("market", filters.market), ("lang", filters.lang), ("kind", filters.kind)):
            if value:
                where.append(f"r.{column} = ?")
                args.append(value)
        for column, value in (
            ("drug_types", filters.drug),
            ("ships_from", filters.origin),
            ("hints", filters.hint),
        ):
            if value:
                where.append(f"EXISTS (SELECT 1 FROM json_each(r.{column}) WHERE value = ?)")
                args.append(value)
        if filters.date_from:
            where.append("r.posted_date >= ?")
            args.append(filters.date_from)
        if filters.date_to:
            where.append("r.posted_date <= ?")
            args.append(filters.date_to)
        if filters.conf_min is not None:
            where.append("r.confidence >= ?")
            args.append(filters.conf_min)
        if filters.conf_max is not None:
            where.append("r.confidence <= ?")
            args.append(filters.conf_max)
        if filters.q:
            clause, extra = self._search_clause(filters.q)
            if clause:
                where.append(clause)
                args += extra
        sql = f"""SELECT r.id, r.rid, r.blind FROM records r WHERE {" AND ".join(where)}
                  ORDER BY r.confidence, r.pos"""  # noqa: S608 (only fixed column names are interpolated)
        with self.connect() as db:
            rows = db.execute(sql, args).fetchall()
            current = self._current_reviewers(db)
        out = []
        for row_id, rid, blind in rows:
            rnd = (
                _round_for(reviewer, bool(blind), current.get((rid, 1)), current.get((rid, 2)))
                if current
                else 1
            )
            done = (rid, rnd) in current
            if filters.status == "pending" and done or filters.status == "done" and not done:
                continue
            out.append((row_id, rid, rnd, done))
        return out

    def queue(self, batch: str, reviewer: str, filters: Filters) -> list[QueueItem]:
        """The records of ``batch`` that match ``filters``, least confident first, with their status for
        ``reviewer`` (which round they would review, done or not)."""
        return self.queue_page(batch, reviewer, filters)[0]

    def queue_page(
        self, batch: str, reviewer: str, filters: Filters, offset: int = 0, limit: int | None = None
    ) -> tuple[list[QueueItem], int]:
        """One page of :meth:`queue` and the length of the whole queue."""
        rows = self.queue_rows(batch, reviewer, filters)
        page = rows[offset : None if limit is None else offset + limit]
        details: dict[int, sqlite3.Row] = {}
        with self.connect() as db:
            for start in range(0, len(page), 500):  # SQLite's limit on bound parameters
                ids = [row_id for row_id, *_ in page[start : start + 500]]
                marks = ",".join("?" * len(ids))
                sql = (
                    "SELECT id, confidence, title, snippet, market, lang, posted_date, drug_types, "
                    f"ships_from, hints FROM records WHERE id IN ({marks})"  # noqa: S608 (placeholders only)
                )
                details.update((row["id"], row) for row in db.execute(sql, ids))
        items = []
        for row_id, rid, rnd, done in page:
            row = details[row_id]
            items.append(
                QueueItem(
                    rid=rid,
                    confidence=row["confidence"],
                    title=row["title"],
                    snippet=row["snippet"] or "",
                    market=row["market"],
                    lang=row["lang"],
                    posted_date=row["posted_date"],
                    drug_types=json.loads(row["drug_types"]),
                    ships_from=json.loads(row["ships_from"]),
                    hints=json.loads(row["hints"]),
                    round=rnd,
                    done=done,
                    blind=rnd == 2,
                )
            )
        return items, len(rows)

    def order(self, batch: str, reviewer: str, filters: Filters) -> list[tuple[str, bool]]:
        """(record id, done) in queue order, for moving through the queue without building items."""
        return [(rid, done) for _, rid, _, done in self.queue_rows(batch, reviewer, filters)]

    def progress(self, batch: str, reviewer: str) -> dict[str, int]:
        """Counts for the progress bar: records, reviewed (round 1), blind second reviews due and done,
        and this reviewer's decisions."""
        with self.connect() as db:
            total = db.execute("SELECT count(*) FROM records WHERE batch = ?", (batch,)).fetchone()[0]
            row = db.execute(
                """SELECT sum(c.round = 1) AS reviewed,
                          sum(c.round = 1 AND r.blind) AS blind_due,
                          sum(c.round = 2 AND r.blind) AS blind_done
                   FROM current c JOIN records r ON r.rid = c.rid WHERE r.batch = ?""",
                (batch,),
            ).fetchone()
            mine = db.execute(
                "SELECT count(*) FROM active a JOIN records r ON r.rid = a.rid WHERE a.reviewer = ? "
                "AND r.batch = ?",
                (reviewer, batch),
            ).fetchone()[0]
        return {
            "total": int(total or 0),
            "reviewed": int(row["reviewed"] or 0),
            "blind_due": int(row["blind_due"] or 0),
            "blind_done": int(row["blind_done"] or 0),
            "mine": int(mine or 0),
        }

    # --- one record, decisions ----------------------------------------------------------------------------

    def _current(self, db: sqlite3.Connection, rid: str, rnd: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM current WHERE rid = ? AND round = ?", (rid, rnd)
        ).fetchone()
        return row

    def _state(self, db: sqlite3.Connection, rid: str, reviewer: str) -> RecordState:
        row = db.execute(
            "SELECT b.payload, r.blind FROM records r JOIN bodies b ON b.id = r.id WHERE r.rid = ?", (rid,)
        ).fetchone()
        if row is None:
            raise ReviewError(f"no record {rid!r} in this review")
        record = json.loads(row["payload"])
        predicted = predicted_labels(record)
        c1, c2 = self._current(db, rid, 1), self._current(db, rid, 2)
        rnd = _round_for(
            reviewer, bool(row["blind"]), c1["reviewer"] if c1 else None, c2["reviewer"] if c2 else None
        )
        current = c1 if rnd == 1 else c2
        history = [] if rnd == 2 else self._history(db, rid)
        state = RecordState(
            record=record, predicted=predicted,
            labels=json.loads(current["after"]) if current else predicted, round=rnd,
            reviewed=current is not None, blind=rnd == 2, base_seq=current["seq"] if current else None,
            history=history,
        )  # fmt: skip
        if current is not None:
            state.decided_by, state.decided_at, state.action = (
                current["reviewer"], current["created_at"], current["action"],
            )  # fmt: skip
        return state

    def _history(self, db: sqlite3.Connection, rid: str) -> list[dict[str, Any]]:
        rows = db.execute(
            "SELECT seq, round, reviewer, created_at, action, undoes, source FROM decisions "
            "WHERE rid = ? AND round = 1 ORDER BY seq DESC LIMIT 20",
            (rid,),
        ).fetchall()
        return [dict(r) for r in rows]

    def state(self, rid: str, reviewer: str) -> RecordState:
        """The record as ``reviewer`` is to review it: in a blind round 2 the first decision is hidden."""
        with self.connect() as db:
            return self._state(db, rid, reviewer)

    def decide(
        self,
        rid: str,
        reviewer: str,
        labels: dict[str, Any],
        base_seq: int | None = None,
        note: str | None = None,
        source: str = "app",
        seen: bool = False,
    ) -> dict[str, Any]:
        """Append ``reviewer``'s decision on ``rid``: ``accept`` when the labels equal what was shown,
        else ``correct``. ``seen`` says that ``base_seq`` is the decision the reviewer had on screen (None:
        none yet); the result's ``concurrent`` is then true when another decision came in meanwhile.
        Returns the stored decision. Raises :class:`ReviewError` or
        :class:`~pipeline.review.labels.LabelError` on bad input."""
        reviewer = _reviewer(reviewer)
        after = clean_labels(labels)
        with self.transaction() as db:
            state = self._state(db, rid, reviewer)
            action = "import" if source != "app" else ("accept" if after == state.labels else "correct")
            cur = db.execute(
                """INSERT INTO decisions (rid, round, reviewer, created_at, action, before, after, base_seq,
                       model_version, source, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    rid, state.round, reviewer, now(), action, json.dumps(state.labels), json.dumps(after),
                    base_seq, state.record["model"].get("version"), source, (note or None),
                ),
            )  # fmt: skip
            seq = int(cur.lastrowid or 0)
            overrode = seen and base_seq != state.base_seq
        return {
            "seq": seq, "rid": rid, "round": state.round, "reviewer": reviewer, "action": action,
            "before": state.labels, "after": after, "concurrent": overrode,
        }  # fmt: skip

    def undo(self, reviewer: str, batch: str | None = None) -> dict[str, Any]:
        """Take back ``reviewer``'s latest decision still in force (optionally within ``batch``); appends an
        ``undo`` row. Raises :class:`ReviewError` when there is nothing to undo."""
        reviewer = _reviewer(reviewer)
        with self.transaction() as db:
            sql = "SELECT a.* FROM active a JOIN records r ON r.rid = a.rid WHERE a.reviewer = ?"
            args: list[Any] = [reviewer]
            if batch is not None:
                sql += " AND r.batch = ?"
                args.append(batch)
            target = db.execute(sql + " ORDER BY a.seq DESC LIMIT 1", args).fetchone()
            if target is None:
                raise ReviewError(f"{reviewer} has no decision to undo")
            rid, rnd = target["rid"], target["round"]
            before = self._current(db, rid, rnd)
            db.execute(
                """INSERT INTO decisions (rid, round, reviewer, created_at, action, before, after, undoes,
                       model_version, source) VALUES (?, ?, ?, ?, 'undo', ?, NULL, ?, ?, 'app')""",
                (rid, rnd, reviewer, now(), before["after"] if before else None, target["seq"],
                 target["model_version"]),
            )  # fmt: skip
            # what is in force now, recorded for the log (NULL: back to the model's labels)
            after = self._current(db, rid, rnd)
        return {
            "rid": rid, "round": rnd, "undid": int(target["seq"]),
            "labels": json.loads(after["after"]) if after else None,
        }  # fmt: skip

    def decisions(self) -> list[dict[str, Any]]:
        """The whole decision log, oldest first."""
        with self.connect() as db:
            rows = db.execute("SELECT * FROM decisions ORDER BY seq").fetchall()
        out = []
        for row in rows:
            item = dict(row)
            for key in ("before", "after"):
                item[key] = json.loads(item[key]) if item[key] else None
            out.append(item)
        return out

    def current_decisions(self, rnd: int | None = None) -> list[dict[str, Any]]:
        """The decision in force per record and round (``rnd`` to pick one round), with the record's text."""
        sql = """SELECT c.*, b.title, b.text, r.market, r.kind, r.lang, b.payload
                 FROM current c JOIN records r ON r.rid = c.rid JOIN bodies b ON b.id = r.id"""
        args: tuple[Any, ...] = ()
        if rnd is not None:
            sql += " WHERE c.round = ?"
            args = (rnd,)
        with self.connect() as db:
            rows = db.execute(sql + " ORDER BY c.rid, c.round", args).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["after"] = json.loads(item["after"])
            item["payload"] = json.loads(item["payload"])
            out.append(item)
        return out

    def records(self, batch: str | None = None) -> list[dict[str, Any]]:
        """Loaded records (normalised labelled records), in batch order."""
        sql = "SELECT b.payload FROM records r JOIN bodies b ON b.id = r.id"
        args: tuple[Any, ...] = ()
        if batch is not None:
            sql, args = sql + " WHERE r.batch = ?", (batch,)
        with self.connect() as db:
            return [json.loads(r[0]) for r in db.execute(sql + " ORDER BY r.batch, r.pos", args)]


def _reviewer(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 64 or not re.fullmatch(r"[\w.@ -]+", name):
        raise ReviewError("a reviewer name is 1-64 letters, digits, spaces or . _ @ -")
    return name


def _round_for(reviewer: str, blind: bool, r1: str | None, r2: str | None) -> int:
    """Round 2 (blind) when the record is in the blind sample, someone else made the round-1 decision and
    the second review is not someone else's already; round 1 otherwise (also for adjudication)."""
    if blind and r1 is not None and r1 != reviewer and (r2 is None or r2 == reviewer):
        return 2
    return 1


def open_review(
    scored: Path, db: Path, records: Path | None = None, blind_sample: float | None = None, seed: int = 0
) -> tuple[ReviewStore, Batch, dict[str, int]]:
    """Read a scored batch and load it into the review database at ``db``: what ``narcotag review SCORED``
    does before serving. Returns the store, the batch and load counts."""
    from pipeline.review.batch import load_batch

    batch = load_batch(scored, records)
    store = ReviewStore(db)
    counts = store.load(batch, blind_sample=blind_sample, seed=seed)
    return store, batch, counts

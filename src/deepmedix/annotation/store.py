"""The review store: one SQLite file (WAL) holding the review set, the annotators and every rating.

Ratings are stored un-blinded (by model index); the left/right layout each annotator saw is stored beside the
assignment so the page can be rebuilt exactly and the blinding audited.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deepmedix.errors import DataError, OptionError
from deepmedix.io import private_database

DB_NAME = "review.sqlite"
STEP_DIMENSIONS = ("relevance", "correctness")
PROCESS_DIMENSIONS = ("completeness",)
PREFERENCE_DIMENSIONS = ("grounded_preference", "overall_preference")
DIMENSIONS = STEP_DIMENSIONS + PROCESS_DIMENSIONS + PREFERENCE_DIMENSIONS
DIMENSION_TITLES = {
    "relevance": "Relevance",
    "correctness": "Correctness",
    "completeness": "Completeness",
    "grounded_preference": "Grounded Preference",
    "overall_preference": "Overall Preference",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, source TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    sample_id TEXT PRIMARY KEY, position INTEGER NOT NULL, image TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL, prompt TEXT NOT NULL, reference TEXT NOT NULL,
    task TEXT, benchmark TEXT);
CREATE TABLE IF NOT EXISTS outputs (
    sample_id TEXT NOT NULL REFERENCES samples(sample_id), model INTEGER NOT NULL REFERENCES models(idx),
    completion TEXT NOT NULL, answer TEXT NOT NULL, steps TEXT NOT NULL,
    PRIMARY KEY (sample_id, model));
CREATE TABLE IF NOT EXISTS annotators (
    name TEXT PRIMARY KEY, grp TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, finished_at TEXT);
CREATE TABLE IF NOT EXISTS assignments (
    annotator TEXT NOT NULL REFERENCES annotators(name), sample_id TEXT NOT NULL REFERENCES samples(sample_id),
    position INTEGER NOT NULL, left_model INTEGER NOT NULL,
    PRIMARY KEY (annotator, sample_id));
CREATE TABLE IF NOT EXISTS ratings (
    annotator TEXT NOT NULL REFERENCES annotators(name), sample_id TEXT NOT NULL REFERENCES samples(sample_id),
    dimension TEXT NOT NULL, model INTEGER NOT NULL, step INTEGER NOT NULL, value INTEGER NOT NULL,
    updated_at TEXT NOT NULL, origin TEXT NOT NULL DEFAULT 'web',
    PRIMARY KEY (annotator, sample_id, dimension, model, step));
"""
# In `ratings`: step dimensions carry (model, step); completeness carries (model, step=-1); preferences carry
# (model=-1, step=-1) and value = the preferred model's index. Yes/no values are 1/0.


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def hash_token(token: str) -> str:
    # Tokens are 192-bit random strings, so a plain SHA-256 is enough (no dictionary to guard against).
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(24)


def db_path(review_dir: str | Path) -> Path:
    return Path(review_dir) / DB_NAME


def create_private_db(review_dir: str | Path) -> Path:
    """Create the (empty) database file readable by its owner only, before SQLite opens it: SQLite then creates
    the -wal and -shm files with the database's own permissions, so no byte of it is ever readable by others."""
    path = db_path(review_dir)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path


def connect(review_dir: str | Path) -> sqlite3.Connection:
    """Open an existing review set's database (``create_private_db`` makes a new one)."""
    path = db_path(review_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no review set here (create one with `deepmedix review create`)")
    private_database(path)  # an older version created it 0644
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as e:  # e.g. "file is not a database"
        conn.close()
        raise DataError(f"{path}: not a review database ({e})") from None
    conn.execute("PRAGMA synchronous=FULL")  # a rating acknowledged to the browser survives a power cut
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass
class Annotator:
    name: str
    group: str
    finished_at: str | None


class ReviewStore:
    """Queries over one review set. Open one per request/thread (SQLite connections are cheap)."""

    def __init__(self, review_dir: str | Path, conn: sqlite3.Connection | None = None):
        self.dir = Path(review_dir)
        self.conn = conn or connect(self.dir)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- set-level facts ---------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {r["key"]: json.loads(r["value"]) for r in self.conn.execute("SELECT key, value FROM meta")}

    def models(self) -> list[str]:
        return [r["name"] for r in self.conn.execute("SELECT name FROM models ORDER BY idx")]

    def annotators(self) -> list[Annotator]:
        rows = self.conn.execute("SELECT name, grp, finished_at FROM annotators ORDER BY grp, name")
        return [Annotator(r["name"], r["grp"], r["finished_at"]) for r in rows]

    def groups(self) -> list[str]:
        return sorted({a.group for a in self.annotators()})

    def sample_ids(self) -> list[str]:
        return [r["sample_id"] for r in self.conn.execute("SELECT sample_id FROM samples ORDER BY position")]

    def sample(self, sample_id: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM samples WHERE sample_id=?", (sample_id,)).fetchone()
        return dict(row) if row else None

    def outputs(self, sample_id: str) -> dict[int, dict[str, Any]]:
        rows = self.conn.execute("SELECT * FROM outputs WHERE sample_id=? ORDER BY model", (sample_id,))
        return {
            r["model"]: {"completion": r["completion"], "answer": r["answer"], "steps": json.loads(r["steps"])}
            for r in rows
        }

    def n_steps(self) -> dict[tuple[str, int], int]:
        rows = self.conn.execute("SELECT sample_id, model, steps FROM outputs")
        return {(r["sample_id"], r["model"]): len(json.loads(r["steps"])) for r in rows}

    # --- who is asking -----------------------------------------------------------------------------------------
    def identify(self, token: str | None) -> tuple[str, str | None]:
        """("admin", None), ("annotator", name) or ("none", None) for a presented token."""
        if not token:
            return "none", None
        digest = hash_token(token)
        admin = self.conn.execute("SELECT value FROM meta WHERE key='admin_token_hash'").fetchone()
        if admin and secrets.compare_digest(json.loads(admin["value"]), digest):
            return "admin", None
        row = self.conn.execute("SELECT name FROM annotators WHERE token_hash=?", (digest,)).fetchone()
        return ("annotator", row["name"]) if row else ("none", None)

    def annotator(self, name: str) -> Annotator | None:
        r = self.conn.execute("SELECT name, grp, finished_at FROM annotators WHERE name=?", (name,)).fetchone()
        return Annotator(r["name"], r["grp"], r["finished_at"]) if r else None

    def rotate_token(self, name: str | None) -> str:
        """A fresh token for an annotator (or the admin when name is None); the old one stops working."""
        token = new_token()
        with transaction(self.conn):
            if name is None:
                self.conn.execute(
                    "UPDATE meta SET value=? WHERE key='admin_token_hash'", (json.dumps(hash_token(token)),)
                )
            else:
                cur = self.conn.execute("UPDATE annotators SET token_hash=? WHERE name=?", (hash_token(token), name))
                if cur.rowcount == 0:
                    raise OptionError(f"{self.dir}: no annotator named {name!r}")
        return token

    # --- assignments -------------------------------------------------------------------------------------------
    def assignments(self, annotator: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT sample_id, position, left_model FROM assignments WHERE annotator=? ORDER BY position", (annotator,)
        )
        return [dict(r) for r in rows]

    def assignment(self, annotator: str, sample_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT sample_id, position, left_model FROM assignments WHERE annotator=? AND sample_id=?",
            (annotator, sample_id),
        ).fetchone()
        return dict(row) if row else None

    # --- ratings -----------------------------------------------------------------------------------------------
    def ratings(self, annotator: str | None = None, sample_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT r.*, a.grp AS grp FROM ratings r JOIN annotators a ON a.name = r.annotator WHERE 1=1"
        args: list[Any] = []
        if annotator is not None:
            sql += " AND r.annotator=?"
            args.append(annotator)
        if sample_id is not None:
            sql += " AND r.sample_id=?"
            args.append(sample_id)
        sql += " ORDER BY r.annotator, r.sample_id, r.dimension, r.model, r.step"
        return [dict(r) for r in self.conn.execute(sql, args)]

    def put_rating(
        self,
        annotator: str,
        sample_id: str,
        dimension: str,
        model: int,
        step: int,
        value: int | None,
        origin: str = "web",
    ) -> None:
        """Upsert one rating (value None clears it). Refused once the annotator has finished."""
        with transaction(self.conn):
            self._put(annotator, sample_id, dimension, model, step, value, origin)

    def _put(
        self, annotator: str, sample_id: str, dimension: str, model: int, step: int, value: int | None, origin: str
    ) -> None:
        key = (annotator, sample_id, dimension, model, step)
        if value is None:
            self.conn.execute(
                "DELETE FROM ratings WHERE annotator=? AND sample_id=? AND dimension=? AND model=? AND step=?", key
            )
            return
        self.conn.execute(
            "INSERT INTO ratings (annotator, sample_id, dimension, model, step, value, updated_at, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (annotator, sample_id, dimension, model, step) "
            "DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at, origin=excluded.origin",
            (*key, value, now(), origin),
        )

    def put_many(self, rows: list[tuple[str, str, str, int, int, int | None]], origin: str) -> int:
        with transaction(self.conn):
            for row in rows:
                self._put(*row, origin=origin)
        return len(rows)

    def required_keys(
        self, sample_id: str, n_steps: dict[tuple[str, int], int] | None = None
    ) -> set[tuple[str, int, int]]:
        """Every (dimension, model, step) a complete review of this sample holds."""
        counts = n_steps if n_steps is not None else self.n_steps()
        keys: set[tuple[str, int, int]] = set()
        for (sid, model), n in counts.items():
            if sid != sample_id:
                continue
            keys |= {(d, model, step) for step in range(n) for d in STEP_DIMENSIONS}
            keys.add(("completeness", model, -1))
        keys |= {(d, -1, -1) for d in PREFERENCE_DIMENSIONS}
        return keys

    def progress(self, annotator: str, n_steps: dict[tuple[str, int], int] | None = None) -> dict[str, bool]:
        """sample_id → complete, for the annotator's assigned samples, in their order."""
        counts = n_steps if n_steps is not None else self.n_steps()
        have: dict[str, set[tuple[str, int, int]]] = {}
        rows = self.conn.execute(
            "SELECT sample_id, dimension, model, step FROM ratings WHERE annotator=?", (annotator,)
        )
        for r in rows:
            have.setdefault(r["sample_id"], set()).add((r["dimension"], r["model"], r["step"]))
        required: dict[str, set[tuple[str, int, int]]] = {}
        for (sid, model), n in counts.items():
            keys = required.setdefault(sid, {(d, -1, -1) for d in PREFERENCE_DIMENSIONS})
            keys |= {(d, model, step) for step in range(n) for d in STEP_DIMENSIONS}
            keys.add(("completeness", model, -1))
        return {
            a["sample_id"]: required.get(a["sample_id"], set()) <= have.get(a["sample_id"], set())
            for a in self.assignments(annotator)
        }

    def finish(self, annotator: str) -> str:
        stamp = now()
        with transaction(self.conn):
            self.conn.execute("UPDATE annotators SET finished_at=? WHERE name=?", (stamp, annotator))
        return stamp

    def reopen(self, annotator: str) -> None:
        with transaction(self.conn):
            self.conn.execute("UPDATE annotators SET finished_at=NULL WHERE name=?", (annotator,))

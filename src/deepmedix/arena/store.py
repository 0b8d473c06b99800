"""The arena's judgment store (SQLite, WAL): the cache that keeps a rerun from paying twice and the audit trail.

One row per question asked of a judge, keyed by judge, prompt version, sample, pair, order and a hash of the texts
shown (a changed prediction is asked again). The raw replies are kept. Failed calls are not stored, so a rerun asks
them again; unparseable replies are stored (they were paid for) and reused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from deepmedix.arena.judges import JudgeOutcome
from deepmedix.arena.outcomes import ShownOrder, Unresolved, Verdict, Winner
from deepmedix.errors import DataError
from deepmedix.io import private_database

# What a judgment row may hold: a failed call ("error") is never stored, so a rerun asks again.
STORED_VERDICTS: dict[str, Verdict | Unresolved] = {v.value: v for v in (*Verdict, Unresolved.UNPARSEABLE)}

SCHEMA = """
CREATE TABLE IF NOT EXISTS judgments (
    judge TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    model_a TEXT NOT NULL,          -- the pair, in canonical (sorted) order
    model_b TEXT NOT NULL,
    shown_order TEXT NOT NULL,      -- 'ab': model_a shown as Report A; 'ba': model_b shown as Report A
    content_hash TEXT NOT NULL,     -- sha256 of the reference, both reports and the image path
    verdict TEXT NOT NULL,          -- position verdict: A | B | tie | unparseable
    winner TEXT,                    -- the winning model's name, 'tie', or NULL when unparseable
    reason TEXT,
    raw_replies TEXT NOT NULL,      -- JSON list: the reply, and the retry's reply when there was one
    calls INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (judge, prompt_version, sample_id, model_a, model_b, shown_order, content_hash)
);
CREATE TABLE IF NOT EXISTS draws (
    run_key TEXT NOT NULL,          -- hash of the run's settings: models, judge, sampling, seed, batch size
    step INTEGER NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    prob REAL NOT NULL,             -- probability with which the pair was drawn at this step
    winner TEXT,                    -- combined outcome: 'a' | 'b' | 'tie' | 'unparseable' | 'error'
    created REAL NOT NULL,
    PRIMARY KEY (run_key, step)
);
"""


@dataclass(frozen=True)
class JudgmentKey:
    judge: str
    prompt_version: str
    sample_id: str
    model_a: str
    model_b: str
    shown_order: ShownOrder
    content_hash: str

    def as_tuple(self) -> tuple[str, ...]:
        return (
            self.judge,
            self.prompt_version,
            self.sample_id,
            self.model_a,
            self.model_b,
            self.shown_order,
            self.content_hash,
        )


class JudgmentStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_database(self.path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise DataError(f"{self.path}: not a usable arena judgment database ({e})") from None

    def get(self, key: JudgmentKey) -> JudgeOutcome | None:
        with self._lock:
            row = self._db.execute(
                "SELECT verdict, reason, raw_replies FROM judgments WHERE judge=? AND prompt_version=? AND sample_id=?"
                " AND model_a=? AND model_b=? AND shown_order=? AND content_hash=?",
                key.as_tuple(),
            ).fetchone()
        if row is None:
            return None
        verdict = STORED_VERDICTS.get(row[0])
        if verdict is None:
            raise DataError(f"{self.path}: stored verdict {row[0]!r} is none of {', '.join(STORED_VERDICTS)}")
        # A cached answer costs nothing now: calls and tokens count this run's spending only.
        return JudgeOutcome(verdict=verdict, reason=row[1] or "", replies=json.loads(row[2]))

    def put(self, key: JudgmentKey, outcome: JudgeOutcome, winner: str | None) -> None:
        """Store a judgment; ``winner`` is the winning model's name, "tie", or None when unparseable."""
        if outcome.verdict not in STORED_VERDICTS:
            raise ValueError(f"refusing to store verdict '{outcome.verdict}'")
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO judgments VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    *key.as_tuple(),
                    outcome.verdict,
                    winner,
                    outcome.reason,
                    json.dumps(outcome.replies, ensure_ascii=False),
                    outcome.calls,
                    outcome.prompt_tokens,
                    outcome.completion_tokens,
                    time.time(),
                ),
            )
            self._db.commit()

    def record_draw(
        self,
        run_key: str,
        step: int,
        model_a: str,
        model_b: str,
        sample_id: str,
        prob: float,
        winner: Winner | Unresolved,
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO draws VALUES (?,?,?,?,?,?,?,?)",
                (run_key, step, model_a, model_b, sample_id, prob, winner, time.time()),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> JudgmentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

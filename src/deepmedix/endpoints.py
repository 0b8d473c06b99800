"""One client for every OpenAI-compatible chat endpoint: the cold-start teacher, the arena judge, the inference
backend. The ``openai`` package does the HTTP, its retries with exponential backoff (429, 5xx, connection
errors) and timeouts; this module adds what it lacks: bounded concurrency, a request-rate limit, counters, a
progress bar, images as data URLs, and a content-keyed cache so a paid-for reply is never bought twice.

Nothing is sent anywhere unless the user gives a ``base_url``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from deepmedix.data.images import open_image
from deepmedix.io import private_database


def image_data_url(image: str | Path | Image.Image, max_side: int | None = None, fmt: str = "PNG") -> str:
    """An image as a ``data:`` URL (how OpenAI-compatible servers take images), optionally downscaled."""
    img = image if isinstance(image, Image.Image) else open_image(image).image
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    mime = "image/png" if fmt.upper() == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


@dataclass
class EndpointConfig:
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 4
    requests_per_minute: float | None = None
    max_retries: int = 5
    timeout_s: float = 120.0
    temperature: float = 0.0
    max_tokens: int = 1024


@dataclass
class ChatReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    finish_reason: str | None = None


class _RateLimiter:
    """Spaces request starts evenly: at most ``per_minute`` starts in any minute."""

    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class ChatEndpoint:
    """A chat-completions endpoint. ``client`` may be any object shaped like ``openai.OpenAI`` (tests)."""

    def __init__(self, config: EndpointConfig, client: Any = None):
        self.config = config
        if client is None:
            import openai

            client = openai.OpenAI(
                base_url=config.base_url,
                api_key=os.environ.get(config.api_key_env) or "EMPTY",  # local servers need no key
                max_retries=config.max_retries,
                timeout=config.timeout_s,
            )
        self.client = client
        self._limiter = _RateLimiter(config.requests_per_minute)
        self._lock = threading.Lock()
        self.calls = 0
        self.failures = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def chat(self, messages: list[dict[str, Any]], **params: Any) -> ChatReply:
        self._limiter.wait()
        kwargs = {"temperature": self.config.temperature, "max_tokens": self.config.max_tokens, **params}
        try:
            resp = self.client.chat.completions.create(model=self.config.model, messages=messages, **kwargs)
        except Exception:
            with self._lock:
                self.calls += 1
                self.failures += 1
            raise
        usage = getattr(resp, "usage", None)
        reply = ChatReply(
            text=(resp.choices[0].message.content or "") if resp.choices else "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            model=str(getattr(resp, "model", "") or self.config.model),
            finish_reason=getattr(resp.choices[0], "finish_reason", None) if resp.choices else None,
        )
        with self._lock:
            self.calls += 1
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens
        return reply

    def chat_many(
        self, requests: Sequence[list[dict[str, Any]]], desc: str | None = None, **params: Any
    ) -> Iterator[tuple[int, ChatReply | Exception]]:
        """Send many conversations with at most ``max_concurrency`` in flight; yields (index, reply or error)
        as they finish, so callers can store each result at once (a kill loses only what is in flight)."""
        from tqdm.auto import tqdm

        bar = tqdm(total=len(requests), desc=desc or self.config.model, unit="call", disable=desc is None)
        with ThreadPoolExecutor(max_workers=max(1, self.config.max_concurrency)) as pool:
            futures = {pool.submit(self.chat, msgs, **params): i for i, msgs in enumerate(requests)}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        result: ChatReply | Exception = fut.result()
                    except Exception as e:  # reported to the caller, who decides (record, retry, fail)
                        result = e
                    bar.update(1)
                    yield i, result
            finally:
                for fut in futures:
                    fut.cancel()
                bar.close()

    def usage(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "failures": self.failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def content_key(*parts: Any) -> str:
    """A stable sha256 of JSON-serialisable parts: the cache key of a request by its content."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A content-keyed store of replies on disk (SQLite, WAL): a rerun pays nothing, a killed run resumes.

    Safe for several threads of one process; each ``put`` is committed at once.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        private_database(self.path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
        )
        self._db.commit()

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                (key, json.dumps(value, ensure_ascii=False), time.time()),
            )
            self._db.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The stored values of those keys that are stored."""
        found: dict[str, Any] = {}
        keys = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(keys), 500):  # SQLite bounds the number of parameters of one statement
                chunk = keys[i : i + 500]
                rows = self._db.execute(
                    f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
                found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        """Store many values in one transaction."""
        now = time.time()
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                [(k, json.dumps(v, ensure_ascii=False), now) for k, v in items.items()],
            )
            self._db.commit()

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

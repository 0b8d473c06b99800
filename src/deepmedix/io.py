"""Safe file output shared by every command: atomic writes and append-only JSONL that survives a kill."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from deepmedix.errors import DataError


def cache_root() -> Path:
    """Where deepmedix keeps what it builds or derives once (tiny models, label caches): ``$DEEPMEDIX_CACHE`` or
    ``~/.cache/deepmedix``."""
    root = os.environ.get("DEEPMEDIX_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "deepmedix"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's contents, read in chunks (checkpoints are hundreds of MB)."""
    with Path(path).open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8", permissions: int = 0o666
) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it into place only when the block succeeds.

    A crash or an exception leaves the previous file (or nothing) — never half a file. The file is created with
    ``permissions`` less the umask, as a plain ``open()`` would be (``0o600`` for secrets: private from the first
    byte, never readable by others even while it is written).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str, permissions: int = 0o666) -> None:
    with atomic_open(path, "w", permissions=permissions) as fh:
        fh.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    n = 0
    with atomic_open(path, "w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
            n += 1
    return n


def append_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Append complete lines and fsync, so a kill loses at most the rows not yet passed in."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows]
    if not lines:
        return 0
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(lines))
        fh.flush()
        os.fsync(fh.fileno())
    return len(lines)


def read_jsonl(path: str | Path, tolerate_torn_tail: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file; a malformed line raises ValueError naming file and line.

    ``tolerate_torn_tail`` drops a last line cut short by a kill (for resumable outputs).
    """
    path = Path(path)
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        lines = fh.readlines()
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if tolerate_torn_tail and i == len(lines) and not line.endswith("\n"):
                break
            raise DataError(f"{path}, line {i}: not valid JSON ({e.msg})") from None
    return rows


def json_object(text: str, where: str) -> dict[str, Any]:
    """One JSONL line as a JSON object; a ValueError says ``<where>: not valid JSON`` or what it got instead."""
    try:
        obj = json.loads(text.strip())  # a trailing newline would move the error to "line 2, column 1"
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def iter_jsonl_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line raises ValueError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                yield number, json_object(line, f"{path}, line {number}")

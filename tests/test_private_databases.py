"""Caches and stores hold report text, judgments and ratings: their SQLite files (and SQLite's -wal and -shm
beside them) are readable by their owner only, from the first byte, whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from deepmedix.arena.store import JudgmentStore
from deepmedix.endpoints import ResponseCache
from deepmedix.io import private_database


@pytest.fixture
def open_umask():
    previous = os.umask(0o022)  # the usual default: new files 0644
    try:
        yield
    finally:
        os.umask(previous)


def _modes(path: Path) -> dict[str, int]:
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return {f.name: stat.S_IMODE(f.stat().st_mode) for f in files if f.exists()}


def test_a_response_cache_and_its_wal_are_private(tmp_path: Path, open_umask: None):
    cache = ResponseCache(tmp_path / "labels.sqlite")
    cache.put("k", {"report": "right lower lobe opacity"})
    modes = _modes(tmp_path / "labels.sqlite")
    assert "labels.sqlite-wal" in modes  # WAL mode: the text sits in the -wal file first
    assert set(modes.values()) == {0o600}, modes


def test_the_arena_judgment_store_is_private(tmp_path: Path, open_umask: None):
    JudgmentStore(tmp_path / "judgments.sqlite")
    assert set(_modes(tmp_path / "judgments.sqlite").values()) == {0o600}


def test_an_existing_database_made_readable_by_an_older_version_is_closed(tmp_path: Path, open_umask: None):
    path = tmp_path / "teacher.cache.sqlite"
    for name in (path, path.with_name(path.name + "-wal")):
        name.write_bytes(b"")
        name.chmod(0o644)
    private_database(path)
    assert set(_modes(path).values()) == {0o600}
    private_database(path)  # idempotent on a private file
    assert set(_modes(path).values()) == {0o600}

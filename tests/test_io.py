"""Safe file output: atomic writes with plain (or private) permissions, append-safe JSONL, one JSONL reader."""

from __future__ import annotations

import os
import stat

import pytest

from deepmedix.io import atomic_open, atomic_write_text


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_atomic_write_leaves_no_partial_file_and_plain_permissions(tmp_path) -> None:
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half of a second vers")
        raise RuntimeError("killed")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # the temporary file is gone
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_private_files_are_private_from_the_first_byte(tmp_path) -> None:
    target = tmp_path / "tokens.txt"
    with atomic_open(target, permissions=0o600) as fh:
        fh.write("secret")
        fh.flush()
        (partial,) = [p for p in tmp_path.iterdir() if p.name != "tokens.txt"]  # while the secret is written
        assert stat.S_IMODE(partial.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "secret"

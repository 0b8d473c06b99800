"""Safe file output: atomic writes with plain (or private) permissions, append-safe JSONL, one JSONL reader."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from deepmedix.errors import InputFileError
from deepmedix.io import (
    atomic_open,
    atomic_write_text,
    check_output,
    iter_jsonl_objects,
    read_json,
    read_jsonl,
    read_yaml,
    staged_folder,
)


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


# --- the one strict JSON reader -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"a": NaN}', r"x\.jsonl, line 1, field 'a': NaN is not a JSON number"),
        (b'{"a": [1, -Infinity]}', r"line 1, field 'a\[1\]': -Infinity is not a JSON number"),
        (b'{"a": {"b": 1e999}}', r"field 'a\.b': the number 1e999 is out of range"),
        (b'{"a": ' + b"9" * 400 + b"}", r"field 'a': the number 999999999999… \(400 digits\) is out of range"),
        (b'{"a": "x \\udc00"}', r"field 'a': a lone surrogate \\udc00 is not Unicode text"),
        (b'{"\\ud800": 1}', r"field '\\ud800': a lone surrogate"),
        (b'{"a": "\xe9t\xe9"}', r"line 1: not valid UTF-8 \(byte 0xe9 at column 8\)"),
        (b'{"a": "\xed\xa0\x80"}', r"line 1: not valid UTF-8"),  # a surrogate encoded as UTF-8 bytes
        (b'{"a": 1', r"line 1: not valid JSON"),
        (b"[1]", r"line 1: expected a JSON object, got an array"),
    ],
)
def test_the_reader_refuses_what_is_not_json_naming_line_and_field(tmp_path, line: bytes, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(line + b"\n")
    with pytest.raises(InputFileError, match=message):
        list(iter_jsonl_objects(path))


def test_the_reader_accepts_a_bom_crlf_blank_lines_and_surrogate_pairs(tmp_path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": "\\ud83d\\ude00"}\r\n\r\n{"b": 1.5e308}\r\n')
    assert list(iter_jsonl_objects(path)) == [(1, {"a": "\U0001f600"}), (3, {"b": 1.5e308})]


def test_a_torn_last_line_is_left_out_only_when_asked_and_said(tmp_path, caplog) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": ')
    with pytest.raises(InputFileError, match="line 2: not valid JSON"):
        read_jsonl(path)
    assert read_jsonl(path, tolerate_torn_tail=True) == [{"a": 1}]
    assert "x.jsonl, line 2: cut short" in caplog.text
    path.write_bytes(b'{"a": 1}\n{"b": \n')  # a complete line that is broken is not a kill's torn tail
    with pytest.raises(InputFileError, match="line 2"):
        read_jsonl(path, tolerate_torn_tail=True)


def test_a_whole_json_file_names_the_line_of_what_it_refuses(tmp_path) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(b'{\n  "s": "NaN Infinity",\n  "g": {"x": [1,\n    NaN]}\n}\n')
    with pytest.raises(InputFileError, match=r"m\.json, line 4, field 'g\.x\[1\]': NaN is not a JSON number"):
        read_json(path)


def test_yaml_errors_are_one_line_with_the_line(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("a: 1\nb: [2\n")
    with pytest.raises(InputFileError, match=r"r\.yaml, line 3: not valid YAML \([^\n]+\)$"):
        read_yaml(path)


# --- outputs ------------------------------------------------------------------------------------------------------


def test_atomic_open_names_the_output_and_leaves_no_folder_it_made(tmp_path) -> None:
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(IsADirectoryError) as e, atomic_open(tmp_path / "folder.jsonl"):
        pass
    assert e.value.filename == str(tmp_path / "folder.jsonl")
    (tmp_path / "f.txt").write_text("a file")
    with pytest.raises(NotADirectoryError) as e, atomic_open(tmp_path / "f.txt" / "out.jsonl"):
        pass
    assert e.value.filename == str(tmp_path / "f.txt")
    with pytest.raises(RuntimeError), atomic_open(tmp_path / "new" / "deeper" / "out.jsonl") as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "folder.jsonl"]  # new/deeper/ removed


def test_a_staged_folder_is_all_or_nothing_and_keeps_other_files(tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_folder(out) as staging:
        (staging / "metrics.json").write_text("{}")
        raise RuntimeError("the report failed")
    assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    (out / "metrics.json").write_text("old")
    with staged_folder(out) as staging:
        (staging / "metrics.json").write_text("new")
        (staging / "figures").mkdir()
        (staging / "figures" / "a.png").write_bytes(b"png")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "figures",
        "figures/a.png",
        "metrics.json",
        "mine.txt",
    ]
    assert (out / "metrics.json").read_text() == "new" and (out / "mine.txt").read_text() == "kept"


def test_check_output_tries_the_folder_for_real(tmp_path) -> None:
    (tmp_path / "f.txt").write_text("a file")
    with pytest.raises(NotADirectoryError):
        check_output(tmp_path / "f.txt" / "out.jsonl")
    with pytest.raises(NotADirectoryError):
        check_output(tmp_path / "f.txt", folder=True)
    with pytest.raises(IsADirectoryError):
        check_output(tmp_path)
    check_output(tmp_path / "new" / "deeper" / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]  # the probe left nothing
    with pytest.raises(OSError) as e:  # where no one may create anything, root included
        check_output(Path("/proc/deepmedix/out.jsonl"))
    assert e.value.filename == "/proc/deepmedix/out.jsonl"

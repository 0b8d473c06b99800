"""``deepmedix reward score``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmedix.cli import main

LINES = [
    {
        "id": "a",
        "completion": "<think> lung [10, 20, 100, 200] </think> The answer is: \\boxed{Yes.}",
        "reference": "yes",
        "answer_type": "closed",
        "image_size": [504, 504],
    },
    {"completion": "<think> [0,0,600,10] </think> \\boxed{a | b}", "reference": "b | c", "answer_type": "multi"},
    {
        "completion": [{"role": "assistant", "content": "<think>[1, 2, 3, 4]</think>\\boxed{x}"}],
        "reference": "x",
        "answer_type": "closed",
        "reference_boxes": [[1, 2, 3, 4]],
    },
]


def _write(path: Path, rows: list, extra: list[str] | None = None) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in rows) + "".join(extra or [])
    path.write_text(text, encoding="utf-8")
    return path


def test_scores_to_stdout_in_order_with_means_on_stderr(tmp_path: Path, capsys) -> None:
    src = _write(tmp_path / "in.jsonl", LINES)
    assert main(["reward", "score", str(src)]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[0]["id"] == "a"
    for r in rows:
        assert all(isinstance(r[k], float) for k in ("answer", "format", "coordinate", "total"))
    # by hand: 1.5/1/0.05; F1({a,b},{b,c}) = 0.5 → 0.75, format 1, box beyond 512 → −0.2; 1.5/1/0.05
    got = [v for r in rows for v in (r["answer"], r["format"], r["coordinate"])]
    assert got == pytest.approx([1.5, 1.0, 0.05, 0.75, 1.0, -0.2, 1.5, 1.0, 0.05])
    assert rows[1]["total"] == pytest.approx(0.9 * 0.75 + 0.1 - 0.2)
    assert "3 scored, 0 skipped" in err
    assert f"answer={(1.5 + 0.75 + 1.5) / 3:.4f}" in err


def test_modes_and_out_file(tmp_path: Path, capsys) -> None:
    src = _write(tmp_path / "in.jsonl", LINES)
    out = tmp_path / "out" / "scores.jsonl"
    out.parent.mkdir()
    assert main(["reward", "score", str(src), "--mode", "grounded", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[2]["coordinate"] == pytest.approx(0.15)  # cites its reference box exactly
    assert main(["reward", "score", str(src), "--mode", "release", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["answer"] == 0.0  # released exact match keeps the period: "yes." != "yes"


def test_malformed_line_fails_naming_the_line(tmp_path: Path, capsys) -> None:
    src = _write(tmp_path / "in.jsonl", LINES[:1], ["\n", "{not json\n", json.dumps(LINES[1]) + "\n"])
    assert main(["reward", "score", str(src)]) == 1
    err = capsys.readouterr().err
    assert f"{src}, line 3: not valid JSON" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"completion": "x"}, "field 'reference': missing"),
        ({"reference": "x", "answer_type": "closed"}, "field 'completion': missing"),
        ({"completion": "x", "reference": "x"}, "field 'answer_type': answer_type is required"),
        ({"completion": "x", "reference": "x", "answer_type": "yesno"}, "field 'answer_type'"),
        ({"completion": "x", "reference": "x", "answer_type": "open", "image_size": [0, 3]}, "field 'image_size'"),
        (
            {"completion": "x", "reference": 3, "answer_type": "open"},
            "field 'reference': must be a string, got a number",
        ),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, capsys, record, message: str) -> None:
    src = _write(tmp_path / "in.jsonl", [record])
    assert main(["reward", "score", str(src)]) == 1
    err = capsys.readouterr().err
    assert f"{src}, line 1" in err
    assert message in err
    assert "Traceback" not in err


def test_skip_leaves_bad_lines_out_and_reports_them(tmp_path: Path, capsys) -> None:
    src = _write(
        tmp_path / "in.jsonl",
        LINES[:1],
        ["{oops\n", json.dumps({"completion": "x"}) + "\n", json.dumps(LINES[1]) + "\n"],
    )
    assert main(["reward", "score", str(src), "--on-error", "skip"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["line"] for line in out.splitlines()] == [1, 4]
    assert "skipped:" in err and "line 2" in err and "line 3" in err
    assert "2 scored, 2 skipped" in err


def test_missing_file(tmp_path: Path, capsys) -> None:
    assert main(["reward", "score", str(tmp_path / "nope.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err

"""``deepmedix label IN.jsonl --out OUT.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmedix.cli import main
from deepmedix.labeler import OBSERVATIONS


def _write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_label_command_writes_one_line_per_report(tmp_path: Path) -> None:
    src = _write_jsonl(
        tmp_path / "reports.jsonl",
        [
            {"id": "r1", "text": "Large right pleural effusion. No pneumothorax."},
            {"id": 7, "text": "Possible left lower lobe pneumonia.", "extra": "kept out"},
        ],
    )
    (tmp_path / "reports.jsonl").write_text((tmp_path / "reports.jsonl").read_text() + "\n")  # a blank line is skipped
    out = tmp_path / "out" / "labels.jsonl"
    assert main(["label", str(src), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["r1", 7]
    for line in lines:
        assert set(line) == {"id", "labels"}
        assert list(line["labels"]) == list(OBSERVATIONS)
    assert lines[0]["labels"]["Pleural Effusion"] == 1
    assert lines[0]["labels"]["Pneumothorax"] == 0
    assert lines[0]["labels"]["Lung Lesion"] is None
    assert lines[1]["labels"]["Pneumonia"] == -1


def test_custom_text_field(tmp_path: Path) -> None:
    src = _write_jsonl(tmp_path / "r.jsonl", [{"study": "s1", "report": "Cardiomegaly."}])
    out = tmp_path / "o.jsonl"
    assert main(["label", str(src), "--out", str(out), "--text-field", "report", "--id-field", "study"]) == 0
    assert json.loads(out.read_text())["labels"]["Cardiomegaly"] == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "text": "No effusion."}\n{"id": "b", "text": \n', "line 2: not valid JSON"),
        ('{"id": "a", "text": "ok"}\n{"id": "b"}\n', "line 2, field 'text': missing (id 'b')"),
        ('{"text": "ok"}\n', "line 1, field 'id': missing"),
        ('{"id": "a", "text": 3}\n', "field 'text': must be a string, got a number"),
        ('["a", "b"]\n', "line 1: expected a JSON object"),
    ],
)
def test_bad_input_is_one_clear_error_and_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(content)
    out = tmp_path / "labels.jsonl"
    assert main(["label", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err and str(src) in err
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_input_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")]) == 1
    assert "nope.jsonl" in capsys.readouterr().err


def test_large_files_show_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_jsonl(tmp_path / "many.jsonl", [{"id": i, "text": "No effusion."} for i in range(2500)])
    out = tmp_path / "o.jsonl"
    assert main(["label", str(src), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "labeling" in err and "2500/2500" in err
    assert len(out.read_text().splitlines()) == 2500

"""deepmedix stats (counts, lengths, figure) and the published JSON Schema / format document."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from deepmedix.cli import main
from deepmedix.data.schema import ImageRef, Provenance, Sample, json_schema, sample_to_json
from deepmedix.data.stats import compute_stats

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _sample(i: int, source: str, task: str, split: str, answer: str, qtype: str | None = None) -> Sample:
    return Sample(
        id=f"{source}/{i}",
        source=source,
        split=split,
        task=task,
        images=[ImageRef(path=f"img{i % 3}.png")],
        prompt="q",
        answer=answer,
        answer_type="open" if task.startswith("report") else "closed",
        question_type=qtype,
        patient_id=f"p{i % 4}",
        provenance=Provenance(dataset=source),
    )


@pytest.fixture
def samples_file(tmp_path: Path) -> Path:
    samples = [
        _sample(0, "a", "report_findings", "train", "one two three four"),
        _sample(1, "a", "report_findings", "test", "one two"),
        _sample(2, "a", "vqa", "train", "yes", "presence"),
        _sample(3, "b", "vqa", "val", "left | right lung", "location"),
        _sample(4, "b", "vqa", "val", "no", "presence"),
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(sample_to_json(s) + "\n" for s in samples))
    return path


def test_stats_counts(samples_file: Path) -> None:
    stats = compute_stats(samples_file)
    assert stats.total == 5 and stats.images == 3 and stats.patients == 5  # patients are per source
    assert stats.by_task == {"report_findings": 2, "vqa": 3}
    assert stats.by_split == {"train": 2, "test": 1, "val": 2}
    assert stats.by_source_task_split[("b", "vqa", "val")] == 2
    assert stats.by_question_type[("a", "presence")] == 1 and stats.by_question_type[("b", "presence")] == 1
    assert sorted(stats.answer_lengths["vqa"]) == [1, 1, 3]  # "left | right lung" has three words
    assert stats.to_dict()["answer_words"]["report_findings"]["mean"] == 3.0


def test_stats_cli_table_figure_json(samples_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figure, numbers = tmp_path / "fig.png", tmp_path / "stats.json"
    assert main(["stats", str(samples_file), "--figure", str(figure), "--json", str(numbers)]) == 0
    out = capsys.readouterr().out
    assert "5 samples" in out and "presence" in out and "answer length" in out
    with Image.open(figure) as img:
        assert img.width > 800 and img.height > 300
    assert json.loads(numbers.read_text())["by_source"] == {"a": 3, "b": 2}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    assert main(["stats", str(bad)]) == 1
    assert "bad.jsonl, line 1, field" in capsys.readouterr().err


def test_json_schema_document_is_up_to_date() -> None:
    published = json.loads((DOCS / "schema" / "sample.schema.json").read_text())
    assert published == json_schema(), "regenerate with: python scripts/make_schema.py"


def test_format_document_example_validates_and_names_every_field() -> None:
    text = (DOCS / "sample-format.md").read_text()
    example = re.search(r"```json\n(\{.*?\})\n```", text, re.DOTALL)
    assert example is not None
    Sample.model_validate(json.loads(example.group(1)))
    for name in Sample.model_fields:
        assert f"`{name}`" in text, f"docs/sample-format.md does not describe {name}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"images": [{"path": "img0.png", "width": "512"}]},
            r"field 'images\[0\]\.width': Input should be a valid integer, got '512'$",
        ),
        (
            {"images": [{"path": "img0.png", "width": 512.5}]},
            r"field 'images\[0\]\.width': Input should be a valid integer",
        ),
        (
            {"images": [{"path": "img0.png", "height": 0}]},
            r"field 'images\[0\]\.height': Input should be greater than 0, got 0$",
        ),
        ({"answer": 3}, r"field 'answer': Input should be a valid string, got 3$"),
        (
            {"task": "caption", "split": "dev"},
            r"field 'split': Input should be 'train', 'val' or 'test', got 'dev' \(and 1 more problem\)$",
        ),
        ({"colour": "grey"}, r"field 'colour': Extra inputs are not permitted$"),
    ],
)
def test_samples_are_read_strictly_one_line_per_error(samples_file: Path, change: dict, message: str) -> None:
    """JSON types are the sample's types (no "512" for a size, no 512.5 for an integer); the first problem of a line
    is named by file, line and field path, and the rest counted, on one line."""
    from deepmedix.data.schema import load_samples
    from deepmedix.errors import SampleFileError

    lines = samples_file.read_text().splitlines()
    lines[1] = json.dumps({**json.loads(lines[1]), **change})
    samples_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(SampleFileError, match=re.escape(str(samples_file)) + ", line 2, " + message):
        load_samples(samples_file)

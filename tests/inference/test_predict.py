from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmedix.inference.predict import predict_file
from deepmedix.io import read_jsonl
from tests.inference.conftest import ScriptedBackend, write_samples


def test_prediction_lines_carry_what_evaluation_needs(samples_file: Path, tmp_path: Path) -> None:
    out = predict_file(ScriptedBackend(), samples_file, tmp_path / "pred.jsonl", batch_size=2, progress=False)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["s0", "s1", "s2", "s3", "s4"]
    by_id = {r["id"]: r for r in rows}
    r0 = by_id["s0"]
    assert r0["benchmark"] == "synthetic/vqa" and r0["split"] == "test" and r0["task"] == "vqa"
    assert r0["model"] == "scripted" and r0["prompt"] == "Question 0?" and r0["question_type"] == "presence"
    assert r0["prediction"] == "pleural effusion" and r0["reference"] == "yes" and r0["answer_type"] == "closed"
    assert r0["format_valid"] is True and r0["image_size"] == [512, 512] and r0["model_input_size"] == [504, 504]
    assert Path(r0["image"]).is_file()
    assert r0["steps"][0]["boxes_model"] == [[50.0, 300.0, 200.0, 450.0]]
    assert r0["steps"][0]["boxes"][0] == pytest.approx([50.8, 304.8, 203.2, 457.1], abs=0.06)
    assert by_id["s1"]["benchmark"] == "synthetic/findings" and by_id["s3"]["benchmark"] == "synthetic/impression"
    assert by_id["s2"]["reference_boxes"] == [[10.0, 20.0, 110.0, 220.0]]
    assert by_id["s2"]["reference_box_labels"] == ["opacity"]
    assert "reference_boxes" not in r0


def test_resume_skips_done_ids_and_repairs_a_torn_last_line(samples_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.jsonl"
    predict_file(ScriptedBackend(), samples_file, out, batch_size=2, limit=3, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    assert len(lines) == 3
    # A kill during the write of the 3rd line leaves half of it.
    out.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    backend = ScriptedBackend()
    predict_file(backend, samples_file, out, batch_size=2, progress=False)
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == ["s0", "s1", "s2", "s3", "s4"]
    assert [r.prompt for r in backend.requests] == [
        "Locate the opacity.",
        "Write the IMPRESSION section.",
        "Question 4?",
    ]
    assert out.read_text().endswith("\n")
    # Nothing left to do: no call at all.
    again = ScriptedBackend()
    predict_file(again, samples_file, out, progress=False)
    assert again.calls == 0 and len(read_jsonl(out)) == 5


def test_kill_mid_run_loses_at_most_the_batch_in_flight(samples_file: Path, tmp_path: Path) -> None:
    class Dies(ScriptedBackend):
        def generate(self, requests):  # type: ignore[override]
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().generate(requests)

    out = tmp_path / "pred.jsonl"
    with pytest.raises(KeyboardInterrupt):
        predict_file(Dies(), samples_file, out, batch_size=2, progress=False)
    assert [r["id"] for r in read_jsonl(out)] == ["s0", "s1", "s2", "s3"]
    predict_file(ScriptedBackend(), samples_file, out, batch_size=2, progress=False)
    assert [r["id"] for r in read_jsonl(out)] == ["s0", "s1", "s2", "s3", "s4"]


def test_refuses_to_mix_models_or_repeat_ids(samples_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.jsonl"
    predict_file(ScriptedBackend(model_name="a"), samples_file, out, limit=1, progress=False)
    with pytest.raises(ValueError, match=r"line 1, field 'model': is 'a'"):
        predict_file(ScriptedBackend(model_name="b"), samples_file, out, progress=False)
    dup = tmp_path / "dup.jsonl"
    text = samples_file.read_text().splitlines()
    dup.write_text("\n".join([text[0], text[1], text[0]]) + "\n")
    (tmp_path / "img").symlink_to(samples_file.parent / "img")
    with pytest.raises(ValueError, match=r"line 3, field 'id': 's0' repeats line 1"):
        predict_file(ScriptedBackend(), dup, tmp_path / "p2.jsonl", progress=False)


def test_unreadable_image_names_sample_and_field(tmp_path: Path) -> None:
    data = write_samples(tmp_path / "d", n=2)
    (tmp_path / "d" / "img" / "s1.png").write_bytes(b"not a png")
    out = tmp_path / "pred.jsonl"
    backend = ScriptedBackend()
    with pytest.raises(ValueError, match=r"line 2, field 'images\[0\]\.path': .*s1\.png"):
        predict_file(backend, data, out, batch_size=1, progress=False)
    assert backend.calls == 0 and not out.exists()  # every image is checked before the first answer


def test_cli_predict_with_the_tiny_model(samples_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from deepmedix.cli import main

    out = tmp_path / "tiny.jsonl"
    rc = main(
        [
            "predict",
            "--model",
            "tiny",
            "--data",
            str(samples_file),
            "--out",
            str(out),
            "--batch-size",
            "3",
            "--limit",
            "4",
            "--max-new-tokens",
            "8",
        ]
    )
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s0", "s1", "s2", "s3"]
    assert all(r["model"] == "tiny" and r["completion"] and r["model_input_size"] == [112, 112] for r in rows)


def test_grounding_answer_boxes_are_written_in_original_pixels(samples_file: Path, tmp_path: Path) -> None:
    backend = ScriptedBackend(by_prompt={"Locate the opacity.": "<think>x</think>\\boxed{[0, 0, 252, 252]}"})
    rows = {r["id"]: r for r in read_jsonl(predict_file(backend, samples_file, tmp_path / "p.jsonl", progress=False))}
    assert rows["s2"]["answer_boxes"] == [[0.0, 0.0, 256.0, 256.0]]  # 512-px image seen at 504
    assert rows["s2"]["answer_boxes_model"] == [[0.0, 0.0, 252.0, 252.0]]
    assert "answer_boxes" not in rows["s0"]

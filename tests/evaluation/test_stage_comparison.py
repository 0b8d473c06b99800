"""The held-out comparison of training stages: per-sample scores, bootstrap intervals, paired differences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepmedix.evaluation.predictions import answer_without_boxes
from deepmedix.evaluation.stage_comparison import (
    compare_stages,
    metric_with_interval,
    paired_difference,
    score_file,
)
from deepmedix.protocol import parse_completion

REFERENCE = [[20.0, 20.0, 40.0, 40.0]]


def _line(i: int, completion: str, answer: str, reference: str = "yes", task: str = "vqa", boxes=REFERENCE) -> dict:
    """A prediction line as `deepmedix predict` writes it (original frame = model frame, 112×112)."""
    parsed = parse_completion(completion)
    steps = [
        {"text": step.text, "boxes": [list(b) for b in step.boxes], "boxes_model": [list(b) for b in step.boxes]}
        for step in parsed.steps
    ]
    return {
        "id": f"s{i}",
        "task": task,
        "benchmark": f"phantom/{task}",
        "source": "phantom",
        "prediction": answer,
        "completion": completion,
        "format_valid": parsed.format_valid,
        "steps": steps,
        "reference": reference,
        "answer_type": "closed",
        "image_size": [112, 112],
        "model_input_size": [112, 112],
        "reference_boxes": boxes,
    }


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_answer_without_boxes_keeps_the_words():
    assert answer_without_boxes("right upper zone [30, 12, 48, 30]") == "right upper zone"
    assert answer_without_boxes("a | b [1, 2, 3, 4] [5, 6, 7, 8]") == "a | b"
    assert answer_without_boxes("[1, 2, 3] stays") == "[1, 2, 3] stays"  # not a box
    assert answer_without_boxes("no boxes") == "no boxes"


def test_scores_read_protocol_boxes_and_localized_answers(tmp_path: Path):
    lines = [
        _line(0, "<think>Step 1: [20, 20, 40, 40] bright.</think> \\boxed{yes}", "yes"),  # right, exact box
        _line(1, "<think>Step 1: [30, 20, 50, 40] bright.</think> \\boxed{no}", "no"),  # wrong, IoU 1/3
        _line(2, "<think>Step 1: [20, 20, 400, 40] bright.</think> \\boxed{yes}", "yes"),  # box outside the image
        _line(3, "yes", "yes"),  # plain answer: not the protocol, no box
        # a stage-1 localized answer: its words are matched, its box is read from the completion
        _line(4, "right upper zone [20, 20, 40, 40]", "right upper zone [20, 20, 40, 40]", "right upper zone"),
    ]
    scores = score_file(_write(tmp_path / "p.jsonl", lines))
    assert [s.answer for s in scores] == [1.0, 0.0, 1.0, 1.0, 1.0]
    assert [s.protocol_valid for s in scores] == [True, True, True, False, False]
    assert [s.valid_boxes for s in scores] == [True, True, False, False, False]
    assert [s.reference_boxes_found for s in scores] == [1, 0, 0, 0, 1]
    assert [s.best_iou_sum for s in scores] == pytest.approx([1.0, 1 / 3, 20 * 20 / (380 * 20), 0.0, 1.0])


def test_intervals_cover_the_value_and_shrink_with_more_samples(tmp_path: Path):
    from deepmedix.evaluation.stage_comparison import SampleScores

    rng = np.random.default_rng(0)

    def scores(n: int) -> list[SampleScores]:
        return [
            SampleScores(f"s{i}", "vqa", float(rng.random() < 0.7), True, True, 1, int(rng.random() < 0.5), 0.5)
            for i in range(n)
        ]

    small, large = (
        metric_with_interval(scores(40), "answer_accuracy"),
        metric_with_interval(scores(400), "answer_accuracy"),
    )
    for m in (small, large):
        assert m["low"] <= m["value"] <= m["high"]
    assert (large["high"] - large["low"]) < 0.6 * (small["high"] - small["low"])  # ~1/sqrt(10)
    assert 0.6 < large["value"] < 0.8


def test_paired_difference_sees_a_consistent_gain_that_unpaired_noise_would_hide():
    from deepmedix.evaluation.stage_comparison import SampleScores

    rng = np.random.default_rng(1)
    n = 200
    difficulty = rng.random(n)
    before = [SampleScores(f"s{i}", "vqa", float(difficulty[i] > 0.5), True, True, 0, 0, 0.0) for i in range(n)]
    # the later model answers everything the earlier one did, plus the samples just below the threshold
    after = [SampleScores(f"s{i}", "vqa", float(difficulty[i] > 0.4), True, True, 0, 0, 0.0) for i in range(n)]
    gain = paired_difference(before, after, "answer_accuracy")
    assert gain["value"] == pytest.approx(np.mean(difficulty > 0.4) - np.mean(difficulty > 0.5))
    assert gain["low"] > 0  # paired: every sample moves the same way, so the interval excludes zero
    with pytest.raises(ValueError, match="same samples"):
        paired_difference(before, after[::-1], "answer_accuracy")
    # no reference boxes anywhere: box metrics are absent, not zero
    assert paired_difference(before, after, "box_recall")["value"] is None


def test_compare_stages_aligns_models_on_shared_held_out_samples(tmp_path: Path):
    good = "<think>Step 1: [20, 20, 40, 40] bright.</think> \\boxed{yes}"
    bad = "<think>Step 1: [60, 60, 80, 80] bright.</think> \\boxed{no}"
    first = _write(tmp_path / "a.jsonl", [_line(i, bad, "no") for i in range(30)])
    # the second file is in another order and has one extra sample the first lacks
    second_lines = [_line(i, good if i % 3 else bad, "yes" if i % 3 else "no") for i in range(31)][::-1]
    second = _write(tmp_path / "b.jsonl", second_lines)
    result = compare_stages({"stage2": first, "stage3": second}, keep=lambda row: row["id"] != "s5")
    assert result["n"] == 29  # shared ids, s5 left out by keep, s30 only in one file
    assert result["models"]["stage2"]["answer_accuracy"]["value"] == 0.0
    diff = result["differences"]["stage2 → stage3"]
    expected = sum(1 for i in range(30) if i != 5 and i % 3) / 29
    assert diff["answer_accuracy"]["value"] == pytest.approx(expected)
    assert diff["mean_iou"]["value"] == pytest.approx(expected)
    assert diff["answer_accuracy"]["low"] > 0
    assert result["models"]["stage3"]["mean_iou_grounding"]["value"] is None  # no grounding questions here


def test_intervals_stay_defined_when_some_resamples_lack_the_samples_a_metric_needs():
    from deepmedix.evaluation.stage_comparison import SampleScores

    # one grounding question among many: plenty of resamples contain none of it
    scores = [SampleScores(f"s{i}", "vqa", 1.0, True, True, 1, 1, 0.8) for i in range(30)]
    scores.append(SampleScores("g", "grounding", 1.0, True, True, 1, 1, 0.6))
    m = metric_with_interval(scores, "mean_iou_grounding")
    assert m["value"] == pytest.approx(0.6) and m["low"] == pytest.approx(0.6) and m["high"] == pytest.approx(0.6)

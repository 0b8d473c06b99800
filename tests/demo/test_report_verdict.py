"""The report says in words what each stage-to-stage interval shows, so a reader need not scan the brackets."""

from __future__ import annotations

from deepmedix.demo.report import _verdict

METRICS = {"answer_accuracy": "answer accuracy", "box_recall": "box recall@0.5", "mean_iou": "mean best IoU"}


def _diff(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "low": low, "high": high}


def test_only_intervals_clear_of_zero_count_as_a_change() -> None:
    values = {
        "answer_accuracy": _diff(-0.028, -0.053, -0.006),
        "box_recall": _diff(0.026, -0.020, 0.071),  # up, but the interval reaches zero: within noise
        "mean_iou": _diff(0.036, 0.019, 0.053),
    }
    assert _verdict(values, METRICS) == "higher: mean best IoU; lower: answer accuracy; the rest within noise"
    flat = {m: _diff(0.0, 0.0, 0.0) for m in METRICS}  # a share that cannot move (e.g. always valid)
    assert _verdict(flat, METRICS) == "every change within noise"
    missing = {**flat, "box_recall": {"value": None, "low": None, "high": None}}  # no boxes to score
    assert _verdict(missing, METRICS) == "every change within noise"
    better = {m: _diff(0.2, 0.1, 0.3) for m in METRICS}  # nothing left over to call noise
    assert _verdict(better, METRICS) == "higher: answer accuracy, box recall@0.5, mean best IoU"

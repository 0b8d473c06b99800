"""What each training stage did, measured on held-out samples: the models of one run answer the same samples, each
metric gets a 95 % bootstrap interval, and consecutive models get paired differences.

Per sample (from a prediction file, see :func:`deepmedix.evaluation.predictions.load_predictions`):

- answer: the VQA score of the answer's words (exact match for closed and open answers, set F1 for multi);
- protocol valid: the completion follows ``<think>…</think> … \\boxed{}`` and its reasoning cites at least one box;
- valid boxes: it cites at least one box and every box lies inside the model-input image (the GRPO monitor's rule);
- per reference box: found (some cited box reaches IoU ≥ 0.5) and its best IoU with any cited box.

Box recall@0.5 and mean best IoU pool the reference boxes of all samples (a sample without reference boxes adds
nothing); "mean IoU, grounding" pools those of grounding questions only. Every metric is a ratio of per-sample sums,
so intervals come from resampling samples (percentile bootstrap, the same resampling as XrayBench's intervals in
:mod:`deepmedix.evaluation.resampling`), and a difference between two models resamples the same samples for both
(paired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepmedix.data.frame import box_inside
from deepmedix.errors import DataError
from deepmedix.evaluation.grounding import sample_box_scores
from deepmedix.evaluation.predictions import load_predictions
from deepmedix.evaluation.resampling import bootstrap_weights, percentile_interval
from deepmedix.evaluation.vqa import score_answer

# metric key → label, in the order a table shows them
METRICS: dict[str, str] = {
    "answer_accuracy": "answer accuracy",
    "protocol_valid": "protocol-valid, citing boxes",
    "valid_box_share": "valid boxes",
    "box_recall": "box recall@0.5",
    "mean_iou": "mean best IoU",
    "mean_iou_grounding": "mean best IoU, grounding",
}
CONFIDENCE = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class SampleScores:
    """One model's scores on one sample."""

    id: str
    task: str
    answer: float
    protocol_valid: bool
    valid_boxes: bool
    n_reference_boxes: int
    reference_boxes_found: int
    best_iou_sum: float


def score_row(row: dict[str, Any], iou_threshold: float = 0.5) -> SampleScores:
    """Scores of one prediction line as :func:`load_predictions` reads it (``answer`` without boxes, ``pred_boxes``
    in original pixels)."""
    steps = row.get("steps") or []
    cited_model = [b for s in steps if isinstance(s, dict) for b in (s.get("boxes_model") or [])]
    size = row.get("model_input_size")
    inside = bool(size) and all(box_inside(b, size[0], size[1]) for b in cited_model)
    reference = row.get("reference_boxes") or []
    boxes = sample_box_scores(row["pred_boxes"], reference, iou_threshold, row.get("image_size")) if reference else {}
    return SampleScores(
        id=str(row["id"]),
        task=str(row["task"]),
        answer=score_answer(row["answer"], row["reference"], row.get("answer_type")),
        protocol_valid=bool(row.get("format_valid")) and bool(cited_model),
        valid_boxes=bool(cited_model) and inside,
        n_reference_boxes=len(reference),
        reference_boxes_found=int(boxes.get("ref_found", 0)),
        best_iou_sum=float(sum(boxes.get("best_ious", []))),
    )


def score_file(path: str | Path, iou_threshold: float = 0.5) -> list[SampleScores]:
    return [score_row(row, iou_threshold) for row in load_predictions(path)]


def metric_terms(scores: Sequence[SampleScores], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(numerator, denominator) per sample: the metric is ``numerator.sum() / denominator.sum()``."""
    ones = np.ones(len(scores))
    grounding = np.array([s.task == "grounding" for s in scores], dtype=float)
    n_ref = np.array([s.n_reference_boxes for s in scores], dtype=float)
    iou_sum = np.array([s.best_iou_sum for s in scores])
    terms = {
        "answer_accuracy": (np.array([s.answer for s in scores]), ones),
        "protocol_valid": (np.array([s.protocol_valid for s in scores], dtype=float), ones),
        "valid_box_share": (np.array([s.valid_boxes for s in scores], dtype=float), ones),
        "box_recall": (np.array([s.reference_boxes_found for s in scores], dtype=float), n_ref),
        "mean_iou": (iou_sum, n_ref),
        "mean_iou_grounding": (iou_sum * grounding, n_ref * grounding),
    }
    return terms[metric]


def _ratio(numerator: np.ndarray, denominator: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator.sum(axis=axis) / denominator.sum(axis=axis)


def _difference(num_after: np.ndarray, num_before: np.ndarray, denominator: np.ndarray, axis: int = -1) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (num_after.sum(axis=axis) - num_before.sum(axis=axis)) / denominator.sum(axis=axis)


def _interval(data: tuple[np.ndarray, ...], statistic, seed: int) -> tuple[float, float]:
    """The percentile interval of ``statistic`` over bootstrap resamples of the samples (the same draws for every
    array in ``data``, so a difference stays paired). Resamples where the statistic is undefined (one without any
    grounding question has no grounding IoU) are left out."""
    draws = bootstrap_weights(np.zeros(len(data[0]), dtype=np.int64), RESAMPLES, np.random.default_rng(seed))
    replicates = np.concatenate([statistic(*(weights * terms for terms in data)) for weights in draws])
    interval = percentile_interval(replicates, CONFIDENCE)
    if interval is None:  # unreachable while the caller checks the denominator: every resample is undefined
        raise ValueError("no bootstrap resample defines the statistic")
    return interval


def metric_with_interval(scores: Sequence[SampleScores], metric: str, seed: int = 0) -> dict[str, float | None]:
    numerator, denominator = metric_terms(scores, metric)
    if denominator.sum() == 0:
        return {"value": None, "low": None, "high": None}
    low, high = _interval((numerator, denominator), _ratio, seed)
    return {"value": float(_ratio(numerator, denominator)), "low": low, "high": high}


def paired_difference(
    before: Sequence[SampleScores], after: Sequence[SampleScores], metric: str, seed: int = 0
) -> dict[str, float | None]:
    """``after − before`` on the same samples, with a paired bootstrap interval."""
    if [s.id for s in before] != [s.id for s in after]:
        raise ValueError("a paired difference needs both models' scores on the same samples, in the same order")
    num_before, denominator = metric_terms(before, metric)
    num_after, _ = metric_terms(after, metric)
    if denominator.sum() == 0:
        return {"value": None, "low": None, "high": None}
    low, high = _interval((num_after, num_before, denominator), _difference, seed)
    return {"value": float(_difference(num_after, num_before, denominator)), "low": low, "high": high}


def format_metric(value: dict[str, float | None], signed: bool = False) -> str:
    """``0.803 [0.753, 0.848]`` (``+0.106 [+0.054, +0.160]`` signed) for a metric or difference; ``—`` when undefined."""
    if value["value"] is None:
        return "—"
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(value['value'])} [{f.format(value['low'])}, {f.format(value['high'])}]"


def compare_stages(predictions: dict[str, str | Path], keep: Any = None, seed: int = 0) -> dict[str, Any]:
    """Every model's metrics on the samples all prediction files share, and each consecutive pair's difference.

    ``predictions`` maps model names, in stage order, to prediction files; ``keep(row)`` (optional) selects the
    held-out samples to compare (e.g. the phantom ones).
    """
    per_model: dict[str, dict[str, SampleScores]] = {}
    for name, path in predictions.items():
        rows = [r for r in load_predictions(path) if keep is None or keep(r)]
        per_model[name] = {str(r["id"]): score_row(r) for r in rows}
    shared = sorted(set.intersection(*(set(m) for m in per_model.values()))) if per_model else []
    if not shared:
        raise DataError("the prediction files share no held-out sample")
    aligned = {name: [scores[i] for i in shared] for name, scores in per_model.items()}
    first = next(iter(aligned.values()))
    names = list(aligned)
    return {
        "n": len(shared),
        "n_with_reference_boxes": sum(1 for s in first if s.n_reference_boxes),
        "n_reference_boxes": sum(s.n_reference_boxes for s in first),
        "n_by_task": {t: sum(1 for s in first if s.task == t) for t in sorted({s.task for s in first})},
        "confidence": CONFIDENCE,
        "interval": f"percentile bootstrap over samples, {RESAMPLES} resamples; differences paired",
        "metrics": METRICS,
        "models": {name: {m: metric_with_interval(aligned[name], m, seed) for m in METRICS} for name in names},
        "differences": {
            f"{a} → {b}": {m: paired_difference(aligned[a], aligned[b], m, seed) for m in METRICS}
            for a, b in zip(names, names[1:], strict=False)
        },
    }


__all__ = [
    "METRICS",
    "SampleScores",
    "compare_stages",
    "format_metric",
    "metric_terms",
    "metric_with_interval",
    "paired_difference",
    "score_file",
    "score_row",
]

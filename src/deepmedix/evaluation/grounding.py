"""Grounding of the reasoning: the boxes a model cites against the reference boxes (beyond the paper).

Two families, both in ORIGINAL image pixels:

* box matching at an IoU threshold (default 0.5): a predicted box is a true positive when its IoU with some reference
  box reaches the threshold (box precision = hits / predicted boxes); a reference box is found when some predicted
  box reaches it (box recall = found / reference boxes); mean best IoU = per reference box, the best IoU any
  predicted box of that sample reaches, averaged. Totals are pooled over samples (micro).
* RadFact's pixel metrics (microsoft/RadFact ``box_metrics.py``): the union of each side's boxes is rasterised on a
  224×224 grid of normalised coordinates; IoU, precision (overlap / predicted area) and recall (overlap / reference
  area) of the two masks, averaged over samples; ``pixel_precision_pass_rate`` is the share of samples whose pixel
  precision exceeds the threshold — RadFact's test for a spatially entailed phrase.

Samples with reference boxes but no predicted boxes count: 0 recall, no precision contribution, IoU 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import numpy as np

from deepmedix.data.frame import iou
from deepmedix.evaluation.metrics import GroundingMetrics

Box = Sequence[float]
MASK_SIZE = 224


class GroundingItem(TypedDict):
    """One sample's boxes, in original pixels; ``image_size`` [W, H] (None: the boxes' extent)."""

    pred_boxes: Sequence[Box]
    reference_boxes: Sequence[Box]
    image_size: NotRequired[Sequence[float] | None]


class SampleBoxScores(TypedDict):
    """One sample: box counts and matches at the threshold, best IoU per reference box, RadFact's pixel metrics."""

    n_pred: int
    n_ref: int
    pred_hits: int
    ref_found: int
    best_ious: list[float]
    pixel_iou: float
    pixel_precision: float | None
    pixel_recall: float | None


def _mask(boxes: Sequence[Box], width: float, height: float, size: int = MASK_SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    for b in boxes:
        x0, y0, x1, y1 = (
            np.clip(np.array([b[0] / width, b[1] / height, b[2] / width, b[3] / height]), 0, 1) * size
        ).astype(int)
        mask[y0:y1, x0:x1] = True
    return mask


def sample_box_scores(
    pred: Sequence[Box], ref: Sequence[Box], threshold: float = 0.5, image_size: Sequence[float] | None = None
) -> SampleBoxScores:
    """Counts and per-sample values for one sample."""
    matrix = np.array([[iou(p, r) for r in ref] for p in pred]) if pred and ref else np.zeros((len(pred), len(ref)))
    if image_size is None:
        all_boxes = list(pred) + list(ref)
        image_size = (max(b[2] for b in all_boxes), max(b[3] for b in all_boxes)) if all_boxes else (1.0, 1.0)
    w, h = image_size
    pm, rm = _mask(pred, w, h), _mask(ref, w, h)
    inter, union = float((pm & rm).sum()), float((pm | rm).sum())
    return {
        "n_pred": len(pred),
        "n_ref": len(ref),
        "pred_hits": int((matrix >= threshold).any(axis=1).sum()) if len(pred) and len(ref) else 0,
        "ref_found": int((matrix >= threshold).any(axis=0).sum()) if len(pred) and len(ref) else 0,
        "best_ious": matrix.max(axis=0).tolist() if len(pred) and len(ref) else [0.0] * len(ref),
        "pixel_iou": inter / union if union else 0.0,
        "pixel_precision": inter / pm.sum() if pm.sum() else None,
        "pixel_recall": inter / rm.sum() if rm.sum() else None,
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def grounding_metrics(rows: Sequence[GroundingItem], threshold: float = 0.5) -> GroundingMetrics:
    """Box and pixel metrics pooled over the samples with reference boxes (the others are left out)."""
    scored = [
        sample_box_scores(r["pred_boxes"], r["reference_boxes"], threshold, r.get("image_size"))
        for r in rows
        if r.get("reference_boxes")
    ]
    return grounding_metrics_from_scores(scored, threshold)


def grounding_metrics_from_scores(scored: Sequence[SampleBoxScores], threshold: float = 0.5) -> GroundingMetrics:
    """The pooled metrics of per-sample box scores (see :func:`grounding_metrics`)."""
    if not scored:
        return {"n_grounded": 0}
    n_pred = sum(s["n_pred"] for s in scored)
    n_ref = sum(s["n_ref"] for s in scored)
    pixel_precisions = [s["pixel_precision"] for s in scored if s["pixel_precision"] is not None]
    return {
        "n_grounded": len(scored),
        "iou_threshold": threshold,
        "box_precision": sum(s["pred_hits"] for s in scored) / n_pred if n_pred else None,
        "box_recall": sum(s["ref_found"] for s in scored) / n_ref if n_ref else None,
        "mean_best_iou": _mean([v for s in scored for v in s["best_ious"]]),
        "boxes_per_sample": n_pred / len(scored),
        "samples_without_boxes": sum(1 for s in scored if s["n_pred"] == 0),
        "pixel_iou": _mean([s["pixel_iou"] for s in scored]),
        "pixel_precision": _mean(pixel_precisions),
        "pixel_recall": _mean([s["pixel_recall"] for s in scored if s["pixel_recall"] is not None]),
        "pixel_precision_pass_rate": sum(1 for p in pixel_precisions if p > threshold) / len(scored),
    }

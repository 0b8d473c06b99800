"""The cold-start filter: which teacher completions become training data, and why the rest are dropped."""

from __future__ import annotations

from dataclasses import dataclass

from deepmedix.data.frame import box_inside
from deepmedix.protocol import parse_completion
from deepmedix.rewards.core import answer_items, normalize_closed

# Reasons a completion is dropped, in the order they are checked.
DROP_REASONS = ("teacher_error", "format", "no_box", "box_outside", "answer_mismatch", "verifier_rejected")


@dataclass
class FilterResult:
    kept: bool
    reason: str | None = None
    detail: str = ""


def _norm(text: str) -> str:
    # the reward's closed-answer normalisation, after collapsing runs of whitespace a teacher may re-wrap
    return normalize_closed(" ".join(text.split()))


def _items(text: str) -> set[str]:
    return {_norm(item) for item in answer_items(" ".join(text.split()))}


def answers_agree(predicted: str, truth: str, answer_type: str, open_threshold: float = 0.9) -> bool:
    """Closed: normalised exact match; multi: the same set of items; open: ROUGE-L F ≥ ``open_threshold``
    (a teacher asked to end in the ground truth may re-wrap or re-punctuate a report)."""
    if answer_type == "closed":
        return _norm(predicted) == _norm(truth)
    if answer_type == "multi":
        return _items(predicted) == _items(truth)
    if _norm(predicted) == _norm(truth):
        return True
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return scorer.score(truth, predicted)["rougeL"].fmeasure >= open_threshold


def check_completion(
    completion: str,
    truth: str,
    answer_type: str,
    frame_size: tuple[float, float],
    require_box: bool = True,
) -> FilterResult:
    """Format valid, at least one box (unless ``require_box`` is off), every box inside the model-input frame,
    and a final answer that agrees with the ground truth."""
    parsed = parse_completion(completion)
    if not parsed.format_valid:
        return FilterResult(False, "format", "not <think>…</think> … \\boxed{…}")
    boxes = parsed.boxes
    if require_box and not boxes:
        return FilterResult(False, "no_box", "the reasoning cites no region")
    width, height = frame_size
    outside = [b for b in boxes if not box_inside(b, width, height)]
    if outside:
        return FilterResult(False, "box_outside", f"{list(outside[0])} is outside {int(width)}x{int(height)}")
    if not answers_agree(parsed.answer, truth, answer_type):
        return FilterResult(False, "answer_mismatch", f"boxed {parsed.answer[:60]!r}")
    return FilterResult(True)

"""The DeepMedix-R1 reward r = (1 − λ)·r_ans + λ·r_form + r_coo, in three modes.

- ``paper`` (default): the paper's reward, read carefully (answer type given, word-level BLEU, true ROUGE-L, every
  reasoning block's boxes checked against the model-input image size).
- ``release``: what the authors' released reward function computes, quirks included (see :mod:`.release`).
- ``grounded``: ``paper`` with a coordinate term that rewards overlap with reference boxes when a sample has them.

See docs/rewards.md for every formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import SupportsFloat, assert_never

from deepmedix.data.frame import box_inside, iou
from deepmedix.errors import DataError
from deepmedix.protocol import ParsedBox, parse_completion
from deepmedix.rewards import metrics
from deepmedix.rewards.release import release_score
from deepmedix.rewards.score import (
    ANSWER_SCALE,
    BOX_INVALID_PENALTY,
    BOX_VALID_BONUS,
    COORDINATE_CAP,
    DEFAULT_LAMBDA,
    AnswerType,
    Completion,
    RewardDetails,
    RewardInput,
    RewardMode,
    RewardScore,
    parse_answer_type,
    parse_reward_mode,
)

DEFAULT_IMAGE_SIZE = (512, 512)  # the paper's frame when a sample does not say

# grounded mode
GROUNDED_DUPLICATE_IOU = 0.9  # a box this close to an earlier one repeats it
GROUNDED_LARGE_FRACTION = 0.5  # a box over half the image localises nothing
GROUNDED_WASTE_PENALTY = -0.05  # each duplicate or oversized box


# --- answer ------------------------------------------------------------------------------------------------------


def normalize_closed(text: str) -> str:
    """Closed answers compare after stripping whitespace, lower-casing and dropping one trailing period."""
    text = text.strip().lower()
    return text[:-1] if text.endswith(".") else text


def closed_match(prediction: str, reference: str) -> float:
    return 1.0 if normalize_closed(prediction) == normalize_closed(reference) else 0.0


def answer_items(text: str) -> set[str]:
    """The set a multi-object answer names: ``|``-separated items, stripped, lower-cased, empties dropped."""
    return {item for item in map(str.strip, text.lower().split("|")) if item}


def multi_f1(prediction: str, reference: str) -> float:
    predicted, expected = answer_items(prediction), answer_items(reference)
    overlap = len(predicted & expected)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


def open_text_scores(prediction: str, reference: str) -> tuple[float, float, float]:
    """(BLEU-1, BLEU-4, ROUGE-L): nltk sentence_bleu (method2) on lower-cased whitespace tokens; rouge-score rougeL F
    with stemming, target = reference. BLEU is 0 for an empty prediction."""
    return metrics.open_scores(prediction, reference)


def answer_score(prediction: str, reference: str, answer_type: AnswerType) -> tuple[float, RewardDetails]:
    """r_ans = 1.5 × (exact match | set F1 | mean of BLEU-1, BLEU-4, ROUGE-L) by the answer type (see
    :func:`~deepmedix.rewards.score.parse_answer_type` for one given as text)."""
    if answer_type == AnswerType.CLOSED:
        return ANSWER_SCALE * closed_match(prediction, reference), {}
    if answer_type == AnswerType.MULTI:
        return ANSWER_SCALE * multi_f1(prediction, reference), {}
    if answer_type == AnswerType.OPEN:
        bleu1, bleu4, rouge_l = open_text_scores(prediction, reference)
        return ANSWER_SCALE * ((bleu1 + bleu4 + rouge_l) / 3), {"bleu1": bleu1, "bleu4": bleu4, "rouge_l": rouge_l}
    assert_never(answer_type)


# --- coordinate ---------------------------------------------------------------------------------------------------


def validity_coordinate(boxes: Sequence[Sequence[float]], image_size: Sequence[float]) -> tuple[float, int]:
    """Paper r_coo: +0.05 per box inside the image, −0.2 per box not, summed, capped at 0.15 (no floor)."""
    width, height = image_size
    valid = 0
    for x0, y0, x1, y1 in boxes:  # frame.box_inside, inlined for the hot loop (NaN and ±inf fail every test)
        if 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height:
            valid += 1
    value = BOX_VALID_BONUS * valid + BOX_INVALID_PENALTY * (len(boxes) - valid)
    return min(value, COORDINATE_CAP), valid


def _matched_iou_sum(boxes: list[Sequence[float]], references: list[Sequence[float]]) -> float:
    """Largest total IoU of a one-to-one matching between predicted and reference boxes."""
    if not boxes or not references:
        return 0.0
    if len(boxes) == 1 or len(references) == 1:
        return max(iou(b, r) for b in boxes for r in references)
    # Imported here: scipy.optimize takes about 0.7 s to import (numpy alone 0.14 s), five times the whole reward
    # module, and only a grounded score with several kept and several reference boxes needs it.
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    overlaps = np.array([[iou(b, r) for r in references] for b in boxes])
    rows, cols = linear_sum_assignment(overlaps, maximize=True)
    return float(overlaps[rows, cols].sum())


def grounded_coordinate(
    boxes: Sequence[Sequence[float]], image_size: Sequence[float], reference_boxes: Sequence[Sequence[float]]
) -> tuple[float, RewardDetails]:
    """Grounded r_coo = min(0.15, 0.15·overlap − 0.2·n_outside − 0.05·(n_duplicate + n_oversized)).

    overlap = (sum of IoUs of the best one-to-one matching of kept boxes to reference boxes) / max(n_ref, n_kept):
    1 only when every reference box is cited exactly and nothing else is; extra boxes dilute it. A box is
    *outside* when it breaks the paper's validity rule, *oversized* when it covers more than half the image,
    a *duplicate* when its IoU with an earlier kept box is at least 0.9; only the other boxes are kept.
    """
    width, height = image_size
    image_area = float(width) * float(height)
    kept: list[Sequence[float]] = []
    outside = duplicate = oversized = 0
    for b in boxes:
        if not box_inside(b, width, height):
            outside += 1
        elif (b[2] - b[0]) * (b[3] - b[1]) > GROUNDED_LARGE_FRACTION * image_area:
            oversized += 1
        elif any(iou(b, k) >= GROUNDED_DUPLICATE_IOU for k in kept):
            duplicate += 1
        else:
            kept.append(b)
    references = [list(r) for r in reference_boxes]
    overlap = _matched_iou_sum(kept, references) / max(len(references), len(kept))
    value = COORDINATE_CAP * overlap + BOX_INVALID_PENALTY * outside + GROUNDED_WASTE_PENALTY * (duplicate + oversized)
    details: RewardDetails = {
        "overlap": overlap,
        "n_boxes": len(boxes),
        "n_outside": outside,
        "n_duplicate": duplicate,
        "n_oversized": oversized,
    }
    return min(value, COORDINATE_CAP), details


# --- inputs -------------------------------------------------------------------------------------------------------


def _number(value: object) -> float:
    """A JSON number as a float; a string, a boolean or anything else is a TypeError (never read as a number)."""
    if isinstance(value, bool | str | bytes) or not isinstance(value, int | float | SupportsFloat):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


def check_image_size(image_size: Sequence[float] | None) -> tuple[float, float]:
    """``[W, H]`` (model-input pixels) → a tuple; None → 512×512."""
    if image_size is None:
        return DEFAULT_IMAGE_SIZE
    try:
        if isinstance(image_size, str | bytes | dict):
            raise TypeError
        width, height = image_size
        width, height = _number(width), _number(height)
    except (TypeError, ValueError):
        raise DataError(f"image_size must be [width, height]; got {image_size!r}") from None
    if not (0 < width < math.inf and 0 < height < math.inf):
        raise DataError(f"image_size must be two positive numbers; got {image_size!r}")
    return width, height


def check_reference_boxes(reference_boxes: Sequence[Sequence[float]] | None) -> list[ParsedBox]:
    """``[[x0, y0, x1, y1], …]`` → a list of tuples; None → []. The one check of every mode."""
    if reference_boxes is None:
        return []
    if isinstance(reference_boxes, str | bytes | dict) or not hasattr(reference_boxes, "__iter__"):
        raise DataError(f"reference_boxes must be a list of [x0, y0, x1, y1]; got {reference_boxes!r}")
    out: list[ParsedBox] = []
    for i, b in enumerate(reference_boxes):
        try:
            if isinstance(b, str | bytes | dict):
                raise TypeError
            values = tuple(_number(v) for v in b)
        except (TypeError, ValueError):
            values = ()
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            raise DataError(f"reference_boxes[{i}] must be four finite numbers [x0, y0, x1, y1]; got {b!r}")
        out.append(values)  # type: ignore[arg-type]  # four, checked above
    return out


def completion_text(completion: Completion | None) -> str:
    """A completion as text: a string, or TRL's conversational form (a list of messages, content str or parts)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, list):
        texts = []
        for message in completion:
            content = message.get("content", "") if isinstance(message, dict) else message
            if isinstance(content, list):
                texts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            elif content is not None:
                texts.append(str(content))
        return "".join(texts)
    if completion is None:
        return ""
    return str(completion)


# --- the reward ---------------------------------------------------------------------------------------------------


def score_completion(
    completion: Completion,
    reference: str,
    answer_type: AnswerType | str | None = None,
    image_size: Sequence[float] | None = None,
    reference_boxes: Sequence[Sequence[float]] | None = None,
    mode: RewardMode | str = RewardMode.PAPER,
    lam: float = DEFAULT_LAMBDA,
) -> RewardScore:
    """Score one completion.

    ``reference``: the ground-truth answer. ``answer_type``: closed | multi | open — required in ``paper`` and
    ``grounded`` modes (the released code guessed it from the label; ``release`` mode does exactly that and ignores
    this). ``image_size``: the model-input [W, H] the boxes are checked against (512×512 when None).
    ``reference_boxes``: model-frame boxes for ``grounded`` mode. ``lam``: the format weight λ.
    """
    text = completion_text(completion)
    if not isinstance(reference, str):
        raise DataError(f"reference must be a string; got {type(reference).__name__}")
    mode = parse_reward_mode(mode)
    # One check of the boxes and the size for every mode, used or not: a malformed input is refused in all of them.
    size = check_image_size(image_size)
    refs = check_reference_boxes(reference_boxes)
    if mode == RewardMode.RELEASE:
        return release_score(text, reference, lam)
    kind = parse_answer_type(answer_type, mode)
    parsed = parse_completion(text)
    boxes = parsed.boxes
    answer, details = answer_score(parsed.answer, reference, kind)
    fmt = 1.0 if parsed.format_valid else 0.0
    if mode == RewardMode.GROUNDED and refs:
        coordinate, box_details = grounded_coordinate(boxes, size, refs)
        details.update(box_details)
        details["coordinate_rule"] = "grounded"
    else:
        coordinate, n_valid = validity_coordinate(boxes, size)
        details["n_boxes"] = len(boxes)
        details["n_valid"] = n_valid
        details["coordinate_rule"] = "paper"
    total = (1 - lam) * answer + lam * fmt + coordinate
    return RewardScore(answer, fmt, coordinate, total, mode, kind, details)


def score_many(
    items: Sequence[RewardInput], mode: RewardMode | str = RewardMode.PAPER, lam: float = DEFAULT_LAMBDA
) -> list[RewardScore]:
    """Score samples with keys completion, reference, answer_type?, image_size?, reference_boxes?."""
    mode = parse_reward_mode(mode)
    return [
        score_completion(
            it["completion"],
            it["reference"],
            it.get("answer_type"),
            it.get("image_size"),
            it.get("reference_boxes"),
            mode=mode,
            lam=lam,
        )
        for it in items
    ]

"""The reward as trainers call it: TRL's GRPOTrainer reward functions and an EasyR1 ``compute_score``.

TRL passes every dataset column to a reward function as a keyword argument, one value per completion. The columns
read here (one row per training sample):

- ``answer``: the reference answer (str);
- ``answer_type``: ``closed`` | ``multi`` | ``open`` (required in paper and grounded modes; release mode guesses);
- ``image_size``: the model-input ``[W, H]`` the boxes are checked against (512×512 when absent or None);
- ``reference_boxes``: ``[[x0, y0, x1, y1], …]`` in the model frame, for grounded mode (absent/None/[] → paper rule).

Usage::

    funcs = make_trl_reward_funcs("paper", lam=0.1)          # answer, format, coordinate
    GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(..., reward_weights=trl_reward_weights(0.1)))
    # or one function returning the total, logging the components as metrics:
    GRPOTrainer(..., reward_funcs=[make_trl_total_reward("paper")])
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NotRequired, Protocol, TypedDict

from deepmedix.errors import DataError
from deepmedix.rewards.core import completion_text, score_completion
from deepmedix.rewards.score import DEFAULT_LAMBDA, RewardMode, RewardScore, parse_reward_mode

COLUMN_ANSWER = "answer"
COLUMN_ANSWER_TYPE = "answer_type"
COLUMN_IMAGE_SIZE = "image_size"
COLUMN_REFERENCE_BOXES = "reference_boxes"
COMPONENTS = ("answer", "format", "coordinate")


def _frozen(value: Any) -> Any:
    """A hashable copy of a column value (lists → tuples) for the score cache."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


class TrlRewardFunc(Protocol):
    """A reward function as TRL's GRPOTrainer calls it: one value per completion; the dataset columns come as
    keyword arguments."""

    __name__: str

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]: ...


class TrlComponentReward(TrlRewardFunc, Protocol):
    """One component of the reward (answer, format or coordinate), carrying its weight in the total."""

    weight: float


@lru_cache(maxsize=16384)
def _cached_score(
    text: str,
    reference: str,
    answer_type: str | None,
    image_size: Any,
    reference_boxes: Any,
    mode: RewardMode,
    lam: float,
) -> RewardScore:
    # The component functions are called one after another on the same batch: score each completion once.
    return score_completion(text, reference, answer_type, image_size, reference_boxes, mode=mode, lam=lam)


def _column(kwargs: dict[str, Any], name: str, n: int, required: bool = False) -> list[Any]:
    values = kwargs.get(name)
    if values is None:
        if required:
            raise DataError(f"the reward needs a dataset column {name!r} (one value per sample)")
        return [None] * n
    if len(values) != n:
        raise DataError(f"column {name!r} has {len(values)} values for {n} completions")
    return list(values)


def score_batch(
    completions: Sequence[Any], mode: RewardMode, lam: float = DEFAULT_LAMBDA, **columns: Any
) -> list[RewardScore]:
    """Score a TRL batch: completions (strings or message lists) and the sample columns named above."""
    n = len(completions)
    answers = _column(columns, COLUMN_ANSWER, n, required=True)
    types = _column(columns, COLUMN_ANSWER_TYPE, n)
    sizes = _column(columns, COLUMN_IMAGE_SIZE, n)
    boxes = _column(columns, COLUMN_REFERENCE_BOXES, n)
    out = []
    for i, completion in enumerate(completions):
        try:
            out.append(
                _cached_score(
                    completion_text(completion),
                    answers[i],
                    types[i],
                    _frozen(sizes[i]),
                    _frozen(boxes[i]),
                    mode,
                    float(lam),
                )
            )
        except ValueError as e:
            raise DataError(f"reward, completion {i}: {e}") from None
    return out


def trl_reward_weights(lam: float = DEFAULT_LAMBDA) -> list[float]:
    """GRPOConfig.reward_weights for :func:`make_trl_reward_funcs`: (1 − λ, λ, 1) so the weighted sum is r."""
    return [1 - lam, lam, 1.0]


def make_trl_reward_funcs(
    mode: RewardMode | str = RewardMode.PAPER, lam: float = DEFAULT_LAMBDA
) -> list[TrlComponentReward]:
    """Three TRL reward functions named ``answer``, ``format`` and ``coordinate`` (TRL logs each under its name).

    Each returns its raw component; with ``GRPOConfig(reward_weights=trl_reward_weights(lam))`` the weighted sum
    TRL forms is the reward's total. Each function also carries its weight as ``.weight``.
    """
    reward_mode = parse_reward_mode(mode)
    funcs: list[TrlComponentReward] = []
    for component, weight in zip(COMPONENTS, trl_reward_weights(lam), strict=True):

        def reward(
            prompts: list[Any], completions: list[Any], _component: str = component, **kwargs: Any
        ) -> list[float]:
            return [getattr(s, _component) for s in score_batch(completions, reward_mode, lam, **kwargs)]

        reward.__name__ = component
        reward.__qualname__ = component
        reward.weight = weight  # type: ignore[attr-defined]
        funcs.append(reward)  # type: ignore[arg-type]  # a function with .weight set
    return funcs


def make_trl_total_reward(
    mode: RewardMode | str = RewardMode.PAPER, lam: float = DEFAULT_LAMBDA, name: str = "deepmedix_reward"
) -> TrlRewardFunc:
    """One TRL reward function returning the total; it logs the components' means through TRL's ``log_metric``
    (``reward_answer``, ``reward_format``, ``reward_coordinate``) when the trainer provides it."""
    reward_mode = parse_reward_mode(mode)

    def reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        log_metric = kwargs.pop("log_metric", None)
        scores = score_batch(completions, reward_mode, lam, **kwargs)
        if callable(log_metric) and scores:
            for component in COMPONENTS:
                log_metric(f"reward_{component}", sum(getattr(s, component) for s in scores) / len(scores))
        return [s.total for s in scores]

    reward.__name__ = name
    reward.__qualname__ = name
    return reward


# --- EasyR1 ---------------------------------------------------------------------------------------------------------


class EasyR1RewardInput(TypedDict, total=False):
    """What EasyR1 hands a reward function per response (the keys this reward reads)."""

    response: str
    response_length: int
    ground_truth: str  # the answer, or the JSON of easyr1_ground_truth
    answer_type: str | None  # these three, when given beside ground_truth, win over the packed ones
    image_size: Sequence[float] | None
    reference_boxes: Sequence[Sequence[float]] | None


class PackedGroundTruth(TypedDict):
    """A sample's reward columns, packed into EasyR1's ``ground_truth`` string as JSON."""

    answer: str
    answer_type: NotRequired[str | None]
    image_size: NotRequired[Sequence[float] | None]
    reference_boxes: NotRequired[Sequence[Sequence[float]] | None]


class EasyR1Score(TypedDict):
    overall: float
    format: float
    accuracy: float
    coordinate: float


def easyr1_ground_truth(
    answer: str,
    answer_type: str | None = None,
    image_size: Sequence[float] | None = None,
    reference_boxes: Sequence[Sequence[float]] | None = None,
) -> str:
    """EasyR1 hands a reward function only ``response`` and ``ground_truth`` (a string column): this packs the
    sample's answer type, image size and reference boxes into that string as JSON for :func:`compute_score`."""
    payload: PackedGroundTruth = {"answer": answer}
    if answer_type is not None:
        payload["answer_type"] = answer_type
    if image_size is not None:
        payload["image_size"] = list(image_size)
    if reference_boxes is not None:
        payload["reference_boxes"] = [list(b) for b in reference_boxes]
    return json.dumps(payload, ensure_ascii=False)


def _unpack_ground_truth(reward_input: EasyR1RewardInput, index: int) -> PackedGroundTruth:
    """The sample's reward columns: ``ground_truth`` plain or packed by :func:`easyr1_ground_truth`, then the keys
    given beside it."""
    ground_truth = reward_input.get("ground_truth")
    if not isinstance(ground_truth, str):
        raise DataError(f"reward input {index}: ground_truth must be a string")
    fields: PackedGroundTruth = {"answer": ground_truth}
    if ground_truth.lstrip().startswith("{"):
        try:
            packed = json.loads(ground_truth)
        except json.JSONDecodeError:
            packed = None
        if isinstance(packed, dict) and isinstance(packed.get("answer"), str):
            fields = packed
    for key in ("answer_type", "image_size", "reference_boxes"):  # keys beside ground_truth win
        if reward_input.get(key) is not None:
            fields[key] = reward_input[key]
    return fields


def compute_score(
    reward_inputs: list[EasyR1RewardInput] | EasyR1RewardInput,
    mode: RewardMode | str = RewardMode.PAPER,
    format_weight: float = DEFAULT_LAMBDA,
) -> list[EasyR1Score] | EasyR1Score:
    """EasyR1 reward function (``worker.reward.reward_function=.../grpo.py:compute_score``; ``mode`` and
    ``format_weight`` through ``reward_function_kwargs``). Reads each input's ``response`` and ``ground_truth``
    (plain, or packed by :func:`easyr1_ground_truth`); returns EasyR1's ``overall``/``format``/``accuracy`` plus
    ``coordinate``. Works for ``reward_type=batch`` (a list) and ``sequential`` (one dict)."""
    reward_mode = parse_reward_mode(mode)
    if isinstance(reward_inputs, dict):
        return compute_score([reward_inputs], reward_mode, format_weight)[0]  # type: ignore[index]
    out: list[EasyR1Score] = []
    for i, reward_input in enumerate(reward_inputs):
        fields = _unpack_ground_truth(reward_input, i)
        try:
            s = score_completion(
                reward_input.get("response", ""),
                fields["answer"],
                fields.get("answer_type"),
                fields.get("image_size"),
                fields.get("reference_boxes"),
                mode=reward_mode,
                lam=format_weight,
            )
        except ValueError as e:
            raise DataError(f"reward input {i}: {e}") from None
        out.append({"overall": s.total, "format": s.format, "accuracy": s.answer, "coordinate": s.coordinate})
    return out

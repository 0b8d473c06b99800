"""What every module of the reward shares: its modes and answer types (each parsed in one place), its constants, the
shape of its input and its result.

The room's lowest module: ``core``, ``release``, ``grpo`` and ``cli`` import it, and it imports none of them.
"""

# No ``from __future__ import annotations``: TypedDict tells NotRequired keys only from evaluated annotations.
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NotRequired, TypedDict

from deepmedix.data.enums import AnswerType
from deepmedix.errors import OptionError
from deepmedix.protocol import ChatMessage

# r = (1 − λ)·r_ans + λ·r_form + r_coo
DEFAULT_LAMBDA = 0.1  # λ, the format weight
ANSWER_SCALE = 1.5
BOX_VALID_BONUS = 0.05
BOX_INVALID_PENALTY = -0.2
COORDINATE_CAP = 0.15


class RewardMode(StrEnum):
    PAPER = "paper"  # the paper's reward, read carefully
    RELEASE = "release"  # the authors' released code, quirks included
    GROUNDED = "grounded"  # paper, with a box term that rewards overlap with the sample's reference boxes


def parse_reward_mode(value: str, name: str = "mode") -> RewardMode:
    """``"paper"`` | ``"release"`` | ``"grounded"`` (or a :class:`RewardMode`) → the mode; ``name`` is what the
    caller calls the setting, for the message."""
    try:
        return RewardMode(value)
    except ValueError:
        raise OptionError(f"{name} must be one of {', '.join(RewardMode)}; got {value!r}") from None


def parse_answer_type(value: str | None, mode: RewardMode) -> AnswerType:
    """``"closed"`` | ``"multi"`` | ``"open"`` (or an :class:`AnswerType`) → the type. ``paper`` and ``grounded``
    modes need it given: it is never guessed (``release`` mode guesses it from the label, as the released code did)."""
    if value is None:
        raise OptionError(
            f"answer_type is required in {mode} mode (closed|multi|open); it is never guessed "
            "(mode 'release' guesses it the way the released code did)"
        )
    try:
        return AnswerType(value)
    except ValueError:
        raise OptionError(f"answer_type must be one of {', '.join(AnswerType)}; got {value!r}") from None


Completion = str | ChatMessage | Sequence[ChatMessage]


class RewardInput(TypedDict):
    """One sample to score (a line of ``deepmedix reward score``'s input; an item of ``score_many``)."""

    completion: Completion
    reference: str
    answer_type: NotRequired[str | None]
    image_size: NotRequired[Sequence[float] | None]  # model-input [W, H]
    reference_boxes: NotRequired[Sequence[Sequence[float]] | None]  # model frame, for grounded mode


class RewardDetails(TypedDict, total=False):
    """The numbers behind a score, for logging; which ones appear depends on the mode and the answer type."""

    bleu1: float  # open answers (paper and grounded modes)
    bleu4: float
    rouge_l: float
    overlap: float  # grounded rule
    n_boxes: int
    n_valid: int  # paper rule
    n_outside: int  # grounded rule
    n_duplicate: int
    n_oversized: int
    coordinate_rule: str  # which box rule scored: paper, grounded or release


class RewardRecord(RewardDetails):
    """:meth:`RewardScore.to_dict`: the components, the total, what was scored, then the details."""

    answer: float
    format: float
    coordinate: float
    total: float
    mode: str
    answer_type: str


@dataclass(slots=True)
class RewardScore:
    """The reward's components and total; ``details`` holds the numbers behind them (for logging)."""

    answer: float
    format: float
    coordinate: float
    total: float
    mode: RewardMode
    answer_type: AnswerType
    details: RewardDetails = field(default_factory=lambda: RewardDetails())

    def to_dict(self) -> RewardRecord:
        return {
            "answer": self.answer,
            "format": self.format,
            "coordinate": self.coordinate,
            "total": self.total,
            "mode": str(self.mode),
            "answer_type": str(self.answer_type),
            **self.details,
        }


__all__ = [
    "ANSWER_SCALE",
    "BOX_INVALID_PENALTY",
    "BOX_VALID_BONUS",
    "COORDINATE_CAP",
    "DEFAULT_LAMBDA",
    "AnswerType",
    "Completion",
    "RewardDetails",
    "RewardInput",
    "RewardMode",
    "RewardRecord",
    "RewardScore",
    "parse_answer_type",
    "parse_reward_mode",
]

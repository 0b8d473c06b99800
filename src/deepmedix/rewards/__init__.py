"""The DeepMedix-R1 reward: paper-exact, release-exact and grounded modes, with TRL and EasyR1 adapters.

See docs/rewards.md for every formula. Inside the room imports go one way: ``score`` (modes, answer types, constants,
the result) ← ``metrics`` and ``release`` ← ``core`` ← ``grpo`` and ``cli``.
"""

from deepmedix.rewards.core import (
    answer_score,
    completion_text,
    grounded_coordinate,
    score_completion,
    score_many,
    validity_coordinate,
)
from deepmedix.rewards.grpo import make_trl_reward_funcs, make_trl_total_reward, trl_reward_weights
from deepmedix.rewards.score import AnswerType, RewardMode, RewardScore, parse_answer_type, parse_reward_mode

__all__ = [
    "AnswerType",
    "RewardMode",
    "RewardScore",
    "answer_score",
    "completion_text",
    "grounded_coordinate",
    "make_trl_reward_funcs",
    "make_trl_total_reward",
    "parse_answer_type",
    "parse_reward_mode",
    "score_completion",
    "score_many",
    "trl_reward_weights",
    "validity_coordinate",
]

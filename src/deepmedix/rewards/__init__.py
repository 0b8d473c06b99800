"""The DeepMedix-R1 reward: paper-exact, release-exact and grounded modes, with TRL and EasyR1 adapters.

See docs/rewards.md for every formula.
"""

from deepmedix.rewards.core import (
    ANSWER_TYPES,
    MODES,
    RewardScore,
    answer_score,
    completion_text,
    grounded_coordinate,
    score_completion,
    score_many,
    validity_coordinate,
)
from deepmedix.rewards.grpo import make_trl_reward_funcs, make_trl_total_reward, trl_reward_weights

__all__ = [
    "ANSWER_TYPES",
    "MODES",
    "RewardScore",
    "answer_score",
    "completion_text",
    "grounded_coordinate",
    "make_trl_reward_funcs",
    "make_trl_total_reward",
    "score_completion",
    "score_many",
    "trl_reward_weights",
    "validity_coordinate",
]

"""The reward's contracts: a mode and an answer type are parsed in one place, and the result is plain JSON."""

from __future__ import annotations

import json

import pytest

from deepmedix.data.enums import AnswerType
from deepmedix.errors import OptionError
from deepmedix.rewards import RewardMode, parse_answer_type, parse_reward_mode, score_completion
from deepmedix.rewards.grpo import compute_score, make_trl_total_reward

RIGHT = "<think> Step 1: right base [10, 20, 100, 200] </think> The answer is: \\boxed{Yes}"


def test_a_mode_is_text_or_a_reward_mode() -> None:
    assert parse_reward_mode("release") is RewardMode.RELEASE
    assert parse_reward_mode(RewardMode.GROUNDED) is RewardMode.GROUNDED
    assert score_completion(RIGHT, "yes", "closed", mode="paper") == score_completion(
        RIGHT, "yes", AnswerType.CLOSED, mode=RewardMode.PAPER
    )


@pytest.mark.parametrize("mode", ["strict", "Paper", "", None, ["paper"]])
def test_an_unknown_mode_names_the_allowed_ones(mode) -> None:
    with pytest.raises(OptionError, match=r"^mode must be one of paper, release, grounded; got "):
        parse_reward_mode(mode)
    with pytest.raises(OptionError, match="reward_mode must be one of"):
        parse_reward_mode(mode, "reward_mode")


@pytest.mark.parametrize(
    "edge",
    [
        lambda mode: score_completion(RIGHT, "yes", "closed", mode=mode),
        lambda mode: make_trl_total_reward(mode),
        lambda mode: compute_score([{"response": RIGHT, "ground_truth": "yes"}], mode=mode),
        lambda mode: compute_score([], mode=mode),  # checked even with nothing to score
    ],
)
def test_every_edge_refuses_an_unknown_mode(edge) -> None:
    with pytest.raises(OptionError, match="mode must be one of paper, release, grounded"):
        edge("strict")


def test_answer_types_are_the_schema_s() -> None:
    assert parse_answer_type("multi", RewardMode.PAPER) is AnswerType.MULTI
    with pytest.raises(OptionError, match="answer_type is required in grounded mode"):
        parse_answer_type(None, RewardMode.GROUNDED)
    with pytest.raises(OptionError, match="answer_type must be one of closed, multi, open; got 'yesno'"):
        parse_answer_type("yesno", RewardMode.PAPER)


def test_a_score_is_plain_json() -> None:
    for mode in RewardMode:
        record = score_completion(RIGHT, "yes", "closed", [504, 504], mode=mode).to_dict()
        assert type(record["mode"]) is str and type(record["answer_type"]) is str
        assert json.loads(json.dumps(record)) == record
        assert record["mode"] == mode

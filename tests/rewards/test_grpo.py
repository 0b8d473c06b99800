"""The reward as TRL's GRPOTrainer and EasyR1 call it."""

from __future__ import annotations

import json

import pytest

from deepmedix.rewards.grpo import (
    compute_score,
    easyr1_ground_truth,
    make_trl_reward_funcs,
    make_trl_total_reward,
    trl_reward_weights,
)
from tests.rewards.released_reward import compute_xray_score

RIGHT = "<think> Step 1: right base [10, 20, 100, 200] </think> The answer is: \\boxed{Yes}"
WRONG_FORMAT = "\\boxed{no}"
OUTSIDE = "<think> [0, 0, 999, 10] </think> \\boxed{a | b}"


def _trl_call(func, completions, **columns):
    """Call a reward function the way TRL 1.16's GRPOTrainer._calculate_rewards does."""
    metrics: dict[str, list[float]] = {}
    extra: dict[str, list] = {}
    prompts = [[{"role": "user", "content": "q"}] for _ in completions]
    out = func(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * len(completions),
        trainer_state=object(),
        log_extra=lambda col, values: extra.setdefault(col, []).extend(values),
        log_metric=lambda name, value: metrics.setdefault(name, []).append(value),
        **columns,
    )
    return out, metrics


COLUMNS = {
    "answer": ["yes", "yes", "b | c"],
    "answer_type": ["closed", "closed", "multi"],
    "image_size": [[504, 504], [504, 504], None],
}


def test_component_functions_weighted_sum_is_the_total() -> None:
    funcs = make_trl_reward_funcs("paper", lam=0.1)
    assert [f.__name__ for f in funcs] == ["answer", "format", "coordinate"]
    weights = trl_reward_weights(0.1)
    assert weights == pytest.approx([0.9, 0.1, 1.0])
    assert [f.weight for f in funcs] == weights
    completions = [RIGHT, WRONG_FORMAT, OUTSIDE]
    per_func = [_trl_call(f, completions, **COLUMNS)[0] for f in funcs]
    # by hand: RIGHT: 1.5 / 1 / 0.05; WRONG_FORMAT: 0 / 0 / 0; OUTSIDE: F1({a,b},{b,c}) = 0.5 → 0.75 / 1 / −0.2
    assert per_func[0] == pytest.approx([1.5, 0.0, 0.75])
    assert per_func[1] == pytest.approx([1.0, 0.0, 1.0])
    assert per_func[2] == pytest.approx([0.05, 0.0, -0.2])
    weighted = [sum(w * r[i] for w, r in zip(weights, per_func, strict=True)) for i in range(3)]
    total, metrics = _trl_call(make_trl_total_reward("paper", lam=0.1), completions, **COLUMNS)
    assert total == pytest.approx(weighted)
    assert total == pytest.approx([0.9 * 1.5 + 0.1 + 0.05, 0.0, 0.9 * 0.75 + 0.1 - 0.2])
    assert metrics["reward_answer"] == pytest.approx([(1.5 + 0.75) / 3])
    assert metrics["reward_coordinate"] == pytest.approx([(0.05 - 0.2) / 3])


def test_conversational_completions_score_like_strings() -> None:
    funcs = make_trl_reward_funcs("paper")
    as_messages = [[{"role": "assistant", "content": c}] for c in (RIGHT, WRONG_FORMAT, OUTSIDE)]
    for f in funcs:
        assert _trl_call(f, as_messages, **COLUMNS)[0] == _trl_call(f, [RIGHT, WRONG_FORMAT, OUTSIDE], **COLUMNS)[0]


def test_missing_columns() -> None:
    total = make_trl_total_reward("paper")
    with pytest.raises(ValueError, match="column 'answer'"):
        _trl_call(total, [RIGHT])
    with pytest.raises(ValueError, match="completion 0: answer_type is required"):
        _trl_call(total, [RIGHT], answer=["yes"])
    # release mode guesses the type from the label, as the released code did
    assert _trl_call(make_trl_total_reward("release"), [RIGHT], answer=["yes"])[0] == pytest.approx(
        [0.9 * 1.5 + 0.1 + 0.05]
    )
    with pytest.raises(ValueError, match="mode must be one of"):
        make_trl_reward_funcs("strict")


def test_grounded_reads_reference_boxes_column() -> None:
    total = make_trl_total_reward("grounded", lam=0.1)
    out, _ = _trl_call(
        total,
        [RIGHT, RIGHT],
        answer=["yes", "yes"],
        answer_type=["closed", "closed"],
        image_size=[[504, 504], [504, 504]],
        reference_boxes=[[[10, 20, 100, 200]], None],
    )
    assert out == pytest.approx([0.9 * 1.5 + 0.1 + 0.15, 0.9 * 1.5 + 0.1 + 0.05])


# --- EasyR1 ---------------------------------------------------------------------------------------------------------


def test_easyr1_release_mode_equals_the_released_function() -> None:
    inputs = [
        {"response": RIGHT, "response_length": 20, "ground_truth": "yes"},
        {"response": OUTSIDE, "response_length": 12, "ground_truth": "b | c"},
        {
            "response": "<think>the heart</think> \\boxed{heart size normal}",
            "response_length": 9,
            "ground_truth": "the heart size is normal",
        },
    ]
    ours = compute_score(inputs, mode="release")
    expected = compute_xray_score([i["response"] for i in inputs], [i["ground_truth"] for i in inputs])
    for o, e in zip(ours, expected, strict=True):
        assert {k: o[k] for k in e} == e


def test_easyr1_packed_ground_truth_carries_type_size_and_boxes() -> None:
    packed = easyr1_ground_truth("yes", "closed", [504, 504], [[10, 20, 100, 200]])
    assert json.loads(packed)["reference_boxes"] == [[10, 20, 100, 200]]
    out = compute_score([{"response": RIGHT, "response_length": 20, "ground_truth": packed}], mode="grounded")
    assert out[0]["coordinate"] == pytest.approx(0.15)
    assert out[0]["accuracy"] == 1.5 and out[0]["format"] == 1.0
    assert out[0]["overall"] == pytest.approx(0.9 * 1.5 + 0.1 + 0.15)
    # sequential reward type: one dict in, one dict out
    single = compute_score({"response": RIGHT, "ground_truth": packed}, mode="paper")
    assert single["coordinate"] == pytest.approx(0.05)


def test_easyr1_plain_ground_truth_needs_a_type_in_paper_mode() -> None:
    with pytest.raises(ValueError, match="reward input 0: answer_type is required"):
        compute_score([{"response": RIGHT, "ground_truth": "yes"}])
    out = compute_score([{"response": RIGHT, "ground_truth": "yes", "answer_type": "closed"}], format_weight=0.5)
    assert out[0]["overall"] == pytest.approx(0.5 * 1.5 + 0.5 * 1.0 + 0.05)

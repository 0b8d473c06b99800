"""Properties of the reward on arbitrary input: bounds of every component, and the fast metrics equal the libraries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer
from rouge_score.rouge_scorer import _lcs_table

from deepmedix.data.frame import box_inside
from deepmedix.rewards import metrics, score_completion
from deepmedix.rewards.core import validity_coordinate

_PIECES = st.sampled_from(
    [
        "<think>",
        "</think>",
        "< think >",
        "\\boxed{",
        "}",
        "{",
        "|",
        " ",
        "\n",
        "the",
        "heart",
        "normal",
        "yes",
        "no",
        "effusions",
        "[1, 2, 3, 4]",
        "[0, 0, 504, 504]",
        "[10, 10, 5, 5]",
        "[-3, 0, 9, 9]",
        "[0, 0, 9999, 9]",
        "[1.5, 2.5, 100, 200]",
        "[",
        "]",
        ",",
        "7",
        ".",
    ]
)
TEXT = st.one_of(st.text(max_size=120), st.lists(_PIECES, max_size=40).map("".join))
LABEL = st.one_of(
    st.text(max_size=40),
    st.lists(_PIECES, max_size=8).map("".join),
    st.sampled_from(["yes", "a | b | c", "the heart is normal", ""]),
)
SIZE = st.one_of(st.none(), st.tuples(st.integers(1, 2000), st.integers(1, 2000)))
BOX = st.tuples(*[st.floats(-100, 1200, allow_nan=False)] * 4)


@settings(max_examples=150, deadline=None)
@given(
    TEXT,
    LABEL,
    st.sampled_from(["closed", "multi", "open"]),
    SIZE,
    st.lists(BOX, max_size=3),
    st.sampled_from(["paper", "release", "grounded"]),
)
def test_components_stay_in_bounds(text, label, answer_type, size, refs, mode) -> None:
    s = score_completion(text, label, answer_type, size, refs, mode=mode)
    assert 0.0 <= s.answer <= 1.5 + 1e-12
    assert s.format in (0.0, 1.0)
    assert s.coordinate <= 0.15 + 1e-12
    assert s.total == pytest.approx(0.9 * s.answer + 0.1 * s.format + s.coordinate)
    if mode != "grounded" or not refs:
        assert s.coordinate >= -0.2 * max(1, text.count("["))  # each box loses at most 0.2


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=40),
    st.lists(st.sampled_from(["a", "b", "c", "d", "f"]), max_size=40),
)
def test_bit_parallel_lcs_equals_dynamic_programming(a, b) -> None:
    expected = _lcs_table(a, b)[-1][-1] if a and b else 0
    assert metrics.lcs_length(a, b) == expected
    assert metrics.lcs_length(a, b, metrics.lcs_masks(a)) == expected  # masks computed once per reference


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["the", "heart", "is", "normal", "no", "effusion"]), max_size=25),
    st.lists(st.sampled_from(["the", "heart", "is", "normal", "no", "edema"]), min_size=1, max_size=25),
)
def test_fast_bleu_equals_nltk(reference, hypothesis) -> None:
    smooth = SmoothingFunction().method2
    metrics.clear_caches()
    expected = (
        sentence_bleu([reference], hypothesis, weights=(1, 0, 0, 0), smoothing_function=smooth),
        sentence_bleu([reference], hypothesis, weights=(0.25,) * 4, smoothing_function=smooth),
    )
    assert metrics.bleu_1_4(reference, hypothesis) == expected


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_fast_rouge_equals_rouge_score(target, prediction) -> None:
    scores = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True).score(target, prediction)
    t, p = metrics.rouge_tokens(target), metrics.rouge_tokens(prediction)
    assert metrics.rouge_l_f(t, p) == scores["rougeL"].fmeasure
    assert metrics.rouge_1_f(t, p) == scores["rouge1"].fmeasure


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(*[st.one_of(st.floats(-10, 600), st.sampled_from([0.0, 504.0, float("inf")]))] * 4), max_size=6),
    SIZE,
)
def test_validity_rule_is_the_frame_rule(boxes, size) -> None:
    width, height = size or (512, 512)
    valid = sum(box_inside(b, width, height) for b in boxes)
    value, n_valid = validity_coordinate(boxes, (width, height))
    assert n_valid == valid
    assert value == pytest.approx(min(0.15, 0.05 * valid - 0.2 * (len(boxes) - valid)))

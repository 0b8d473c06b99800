"""The reward's speed tricks change no value: memoised and fresh results agree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer
from rouge_score.tokenizers import DefaultTokenizer

from deepmedix.rewards import metrics, score_completion

_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=14)
_REPORT_PIECES = st.sampled_from(
    [
        "the",
        "heart",
        "is",
        "normal",
        "no",
        "effusions",
        "effusion.",
        "x-ray",
        "left-sided",
        "(stable)",
        "Lungs",
        "clear;",
        "2",
        "cm",
        "opacities,",
        "\n",
        "  ",
        "\t",
        "pneumothorax.",
        "XXXX",
        "well-expanded",
        "café",
        "ünïcode",
    ]
)
_REPORT = st.lists(_REPORT_PIECES, max_size=30).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_REPORT, st.text(max_size=80)))
def test_memoised_rouge_tokens_equal_rouge_score_cold_and_warm(text) -> None:
    expected = DefaultTokenizer(use_stemmer=True).tokenize(text)
    metrics.clear_caches()
    cold = metrics.rouge_tokens(text)
    warm = metrics.rouge_tokens(text)  # every word now memoised
    assert cold == warm == expected


@settings(max_examples=150, deadline=None)
@given(_REPORT, _REPORT)
def test_open_scores_are_the_same_with_and_without_caches(prediction, reference) -> None:
    metrics.clear_caches()
    cold = metrics.open_scores(prediction, reference)
    warm = metrics.open_scores(prediction, reference)  # reference analysed, words memoised
    metrics.clear_caches()
    again = metrics.open_scores(prediction, reference)
    assert cold == warm == again
    ref, hyp = reference.lower().split(), prediction.lower().split()
    smooth = SmoothingFunction().method2
    bleu = (
        (
            sentence_bleu([ref], hyp, weights=(1, 0, 0, 0), smoothing_function=smooth),
            sentence_bleu([ref], hyp, weights=(0.25,) * 4, smoothing_function=smooth),
        )
        if hyp
        else (0.0, 0.0)
    )
    rouge_l = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(reference, prediction)["rougeL"].fmeasure
    assert cold == (*bleu, rouge_l)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["the", "heart", "is", "normal", "no", "effusion", "a", "b"]), max_size=30),
    st.lists(st.sampled_from(["the", "heart", "is", "normal", "no", "edema", "a", "c"]), min_size=1, max_size=30),
)
def test_bleu_with_a_cached_reference_equals_a_fresh_one(reference, hypothesis) -> None:
    metrics.clear_caches()
    fresh = metrics.bleu_1_4(reference, hypothesis)
    metrics.bleu_1_4(reference, list(reversed(hypothesis)))  # fills the reference's n-gram sets and counts
    assert metrics.bleu_1_4(reference, hypothesis) == fresh


def test_a_grpo_group_scores_as_if_each_completion_were_alone() -> None:
    reference = "The heart is normal in size. No pleural effusion or pneumothorax. Lungs are clear."
    answers = [
        "Heart size normal. No effusion.",
        "The lungs are clear and the heart is normal in size.",
        reference,
        "",
        "Small left pleural effusion, no pneumothorax.",
    ]
    completions = [f"<think> heart [10, 20, 200, 300] </think> \\boxed{{{a}}}" for a in answers]
    grouped = [score_completion(c, reference, "open", [504, 504]).to_dict() for c in completions]
    alone = []
    for c in completions:
        metrics.clear_caches()
        alone.append(score_completion(c, reference, "open", [504, 504]).to_dict())
    assert grouped == alone
    assert grouped[2]["answer"] == pytest.approx(1.5)

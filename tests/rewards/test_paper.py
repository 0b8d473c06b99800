"""``paper`` mode: every term of r = 0.9·r_ans + 0.1·r_form + r_coo, computed by hand."""

from __future__ import annotations

import json
import math
import random

import pytest
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
from rouge_score import rouge_scorer

from deepmedix.rewards import score_completion
from deepmedix.rewards.core import closed_match, multi_f1, open_text_scores


def _completion(answer: str, boxes: str = "") -> str:
    return f"<think> Step 1: region {boxes} inspected. </think> The answer is: \\boxed{{{answer}}}"


# --- answer -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("yes", "yes", 1.0),
        ("Yes.", "yes", 1.0),
        ("  YES  ", "Yes.", 1.0),
        ("yes..", "yes", 0.0),  # only one trailing period goes
        ("yes", "no", 0.0),
        ("left lung", "Left  lung", 0.0),  # inner whitespace is kept
        ("", "", 1.0),
    ],
)
def test_closed_exact_match(prediction: str, reference: str, expected: float) -> None:
    assert closed_match(prediction, reference) == expected


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("a | b | c", "c|b|a", 1.0),
        ("A | b", "a | b | c | d", 2 * (1 * 0.5) / 1.5),  # P = 1, R = 2/4
        ("a | a | b", "a | b", 1.0),  # sets: duplicates count once
        ("a | | b |", "a | b", 1.0),  # empty items dropped
        ("x | y", "a | b", 0.0),
        ("", "a | b", 0.0),
        ("", "", 0.0),  # nothing overlaps
    ],
)
def test_multi_set_f1(prediction: str, reference: str, expected: float) -> None:
    assert multi_f1(prediction, reference) == pytest.approx(expected)


def test_open_text_by_hand() -> None:
    # reference "the heart is normal" (4 tokens), prediction "heart normal" (2 tokens)
    brevity = math.exp(1 - 4 / 2)
    bleu1 = brevity * 1.0  # both unigrams occur in the reference
    # method2: orders 2..4 have 0 matches → (0 + 1) / (max(1, #ngrams) + 1) = 1/2 each
    bleu4 = brevity * math.exp(0.25 * (math.log(1.0) + 3 * math.log(0.5)))
    rouge_l = 2 * 1.0 * 0.5 / 1.5  # LCS 2: precision 2/2, recall 2/4
    got = open_text_scores("heart normal", "the heart is normal")
    assert got == pytest.approx((bleu1, bleu4, rouge_l), rel=1e-12)
    s = score_completion(_completion("Heart normal"), "The heart is normal", "open")
    assert s.answer == pytest.approx(1.5 * (bleu1 + bleu4 + rouge_l) / 3, rel=1e-12)


def test_open_text_uses_words_lower_case_and_stemming() -> None:
    assert open_text_scores("The Lungs ARE clear", "the lungs are clear") == (1.0, 1.0, 1.0)
    # stemming: "effusions" ~ "effusion" for ROUGE-L, not for BLEU
    bleu1, _, rouge_l = open_text_scores("small effusions", "small effusion")
    assert rouge_l == 1.0
    assert bleu1 == pytest.approx(0.5)


def test_open_text_empty_prediction_scores_zero() -> None:
    assert open_text_scores("", "the heart is normal") == (0.0, 0.0, 0.0)
    assert score_completion("<think></think>\\boxed{}", "the heart is normal", "open").answer == 0.0


def test_answer_type_is_given_never_guessed() -> None:
    # a one-word label scored as open text still gets BLEU/ROUGE, not exact match
    open_score = score_completion(_completion("effusion left"), "effusion", "open").answer
    assert 0 < open_score < 1.5
    assert score_completion(_completion("effusion left"), "effusion", "closed").answer == 0.0
    with pytest.raises(ValueError, match="answer_type is required"):
        score_completion(_completion("yes"), "yes")
    with pytest.raises(ValueError, match="answer_type must be one of"):
        score_completion(_completion("yes"), "yes", "boolean")


def test_metrics_match_the_reference_libraries_on_real_reports(shared_data) -> None:
    lines = (shared_data / "curated" / "text" / "iu_xray_reports.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [t for rec in map(json.loads, lines[:300]) for t in (rec["findings"], rec["impression"]) if t]
    rng = random.Random(7)
    smooth = SmoothingFunction().method2
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for _ in range(150):
        reference = rng.choice(texts)
        prediction = rng.choice([rng.choice(texts), reference, reference[: len(reference) // 2], "the the the"])
        ref_tokens, hyp_tokens = reference.lower().split(), prediction.lower().split()
        expected = (
            sentence_bleu([ref_tokens], hyp_tokens, weights=(1, 0, 0, 0), smoothing_function=smooth),
            sentence_bleu([ref_tokens], hyp_tokens, weights=(0.25,) * 4, smoothing_function=smooth),
            scorer.score(reference, prediction)["rougeL"].fmeasure,
        )
        assert open_text_scores(prediction, reference) == expected  # bit for bit


# --- format and coordinate ------------------------------------------------------------------------------------------


def test_total_weights_and_components() -> None:
    s = score_completion(_completion("Yes.", "[10, 20, 100, 200]"), "yes", "closed", image_size=[504, 504])
    assert (s.answer, s.format, s.coordinate) == (1.5, 1.0, 0.05)
    assert s.total == pytest.approx(0.9 * 1.5 + 0.1 * 1.0 + 0.05)
    s = score_completion("\\boxed{yes}", "yes", "closed", lam=0.3)
    assert (s.answer, s.format, s.coordinate) == (1.5, 0.0, 0.0)
    assert s.total == pytest.approx(0.7 * 1.5)


@pytest.mark.parametrize(
    ("boxes", "size", "expected"),
    [
        ("[0, 0, 504, 504]", (504, 504), 0.05),  # touching the edges is inside
        ("[1, 2, 3, 4] [5, 6, 7, 8]", None, 0.10),
        ("[1, 2, 3, 4] [5, 6, 7, 8] [9, 9, 10, 10] [11, 11, 12, 12]", None, 0.15),  # capped
        ("[0, 0, 505, 10]", (504, 504), -0.2),  # past the right edge
        ("[0, 0, 600, 10]", None, -0.2),  # unknown size: 512 x 512
        ("[0, 0, 510, 10]", None, 0.05),
        ("[-1, 0, 10, 10]", None, -0.2),  # negative
        ("[10, 0, 10, 10]", None, -0.2),  # empty: x_min == x_max
        ("[20, 30, 10, 40]", None, -0.2),  # reversed
        ("[10, 10, 200, 150]", (168, 336), -0.2),  # inside 512 but not inside this image
        ("[1, 2, 3, 4] [1, 2, 3, 4] [1, 2, 3, 4] [0, 0, 999, 9]", None, -0.05),  # 0.15 − 0.2, no floor
        ("[0, 0, 999, 9] [0, 0, 999, 9] [0, 0, 999, 9]", None, -0.6),
        ("", None, 0.0),
    ],
)
def test_coordinate_term(boxes: str, size: tuple[int, int] | None, expected: float) -> None:
    s = score_completion(_completion("x", boxes), "x", "closed", image_size=size)
    assert s.coordinate == pytest.approx(expected)


def test_boxes_in_every_reasoning_block_count_and_none_outside() -> None:
    text = "<think>[1, 1, 5, 5]</think> <think>[2, 2, 6, 6] [0, 0, 900, 9]</think> [3, 3, 7, 7] \\boxed{x}"
    s = score_completion(text, "x", "closed")
    assert s.coordinate == pytest.approx(0.05 + 0.05 - 0.2)
    assert s.details["n_boxes"] == 3 and s.details["n_valid"] == 2


def test_conversational_completion_equals_plain_text() -> None:
    text = _completion("no", "[1, 2, 3, 4]")
    plain = score_completion(text, "no", "closed")
    assert score_completion([{"role": "assistant", "content": text}], "no", "closed") == plain
    parts = [
        {"role": "assistant", "content": [{"type": "text", "text": text[:10]}, {"type": "text", "text": text[10:]}]}
    ]
    assert score_completion(parts, "no", "closed") == plain


@pytest.mark.parametrize("size", [[0, 10], [10], "big", [float("nan"), 5], [-3, 4]])
def test_bad_image_size_is_a_clear_error(size) -> None:
    with pytest.raises(ValueError, match="image_size"):
        score_completion("x", "x", "closed", image_size=size)

"""``release`` mode: the authors' released reward, quirk by quirk, and value for value against a verbatim copy."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

from deepmedix.rewards import score_completion
from deepmedix.rewards.release import guess_answer_type, mathruler_boxed
from tests.rewards.released_reward import compute_xray_score, extract_boxed_content


def _release(text: str, label: str):
    return score_completion(text, label, mode="release")


def _paper(text: str, label: str, answer_type: str):
    return score_completion(text, label, answer_type, mode="paper")


def test_answer_type_is_guessed_from_the_label() -> None:
    assert guess_answer_type("yes") == "closed"
    assert guess_answer_type("Left lung") == "closed"
    assert guess_answer_type("pleural effusion | edema") == "multi"
    assert guess_answer_type("a|b") == "multi"
    assert guess_answer_type("there is a small left effusion") == "open"
    assert guess_answer_type(" | ".join(["w"] * 11)) == "open"  # a '|' but 21 words
    assert guess_answer_type(" | ".join(["w"] * 10)) == "multi"  # 19 words


def test_whitespace_around_angle_brackets_and_slashes_is_removed_first() -> None:
    text = "< think > lung [1, 2, 3, 4] </ think > The answer is \\boxed{a / b}"
    s = _release(text, "a/b")
    assert (s.answer, s.format, s.coordinate) == (1.5, 1.0, 0.05)
    assert _paper(text, "a/b", "closed").answer == 0.0  # paper keeps the answer as written


def test_closed_is_lower_cased_exact_match_only() -> None:
    text = "<think>x</think>\\boxed{Yes.}"
    assert _release(text, "yes").answer == 0.0
    assert _release(text, "YES.").answer == 1.5
    assert _release("<think>x</think>\\boxed{yes}", " yes").answer == 0.0  # the label is not stripped
    assert _paper(text, "yes", "closed").answer == 1.5


def test_missing_boxed_answer_reads_as_the_string_none() -> None:
    assert mathruler_boxed("no box here") == "None"
    assert mathruler_boxed("\\boxed{a} \\boxed{b") == "None"  # the last \boxed{ never closes
    assert _release("I cannot tell.", "none").answer == 1.5
    assert _paper("I cannot tell.", "none", "closed").answer == 0.0


def test_multi_divides_by_list_lengths_duplicates_included() -> None:
    text = "<think>x</think>\\boxed{a | a}"
    # released: predicted list [a, a], label [a, b]; 1 shared item → P = 1/2, R = 1/2
    assert _release(text, "a | b").answer == pytest.approx(1.5 * 0.5)
    # paper: sets {a} and {a, b} → P = 1, R = 1/2
    assert _paper(text, "a | b", "multi").answer == pytest.approx(1.5 * (2 * 0.5 / 1.5))


def test_open_bleu_is_over_characters_by_hand() -> None:
    # label "a b c" (3 words → open), answer "abc": 3 characters against 5 ("a b c")
    brevity = math.exp(1 - 5 / 3)
    bleu1 = brevity * 1.0  # a, b, c all occur
    # bigrams ab, bc: none in {"a ", " b", "b ", " c"} → (0+1)/(2+1); trigram: (0+1)/(1+1); 4-gram: none → 1/2
    bleu4 = brevity * math.exp(0.25 * (math.log(1.0) + math.log(1 / 3) + 2 * math.log(1 / 2)))
    rouge = 0.0  # tokens [abc] vs [a, b, c]
    s = _release("<think>x</think>\\boxed{abc}", "a b c")
    assert s.answer == pytest.approx(1.5 * (bleu1 + bleu4 + rouge) / 3, rel=1e-12)
    assert _paper("<think>x</think>\\boxed{abc}", "a b c", "open").answer == 0.0  # no shared word


def test_open_rouge_is_rouge_1_not_rouge_l() -> None:
    label, answer = "left right upper lower", "lower upper right left"
    smooth = SmoothingFunction().method2
    bleu1 = sentence_bleu([label], answer, weights=(1, 0, 0, 0), smoothing_function=smooth)
    bleu4 = sentence_bleu([label], answer, weights=(0.25,) * 4, smoothing_function=smooth)
    s = _release(f"<think>x</think>\\boxed{{{answer}}}", label)
    assert s.answer == pytest.approx(1.5 * (bleu1 + bleu4 + 1.0) / 3, rel=1e-12)  # ROUGE-1 = 1 (ROUGE-L 1/4)


def test_only_the_first_reasoning_block_is_checked() -> None:
    text = "<think>[1,2,3,4]</think><think>[1,2,3,4] [5,6,7,8]</think>\\boxed{x}"
    assert _release(text, "x").coordinate == pytest.approx(0.05)
    assert _paper(text, "x", "closed").coordinate == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("box", "release", "paper"),
    [
        ("[-5, 10, 3, 2]", 0.05, -0.2),  # negative, reversed: only 'above 512' is invalid
        ("[10, 10, 10, 10]", 0.05, -0.2),
        ("[0, 0, 513, 10]", -0.2, -0.2),
        ("[0, 0, 512, 512]", 0.05, 0.05),
        ("[ 1, 2, 3, 4 ]", 0.0, 0.05),  # no space allowed after '['
        ("[1 , 2, 3, 4]", 0.0, 0.05),  # nor before a comma
    ],
)
def test_box_rule(box: str, release: float, paper: float) -> None:
    text = f"<think> region {box} </think> \\boxed{{x}}"
    assert _release(text, "x").coordinate == pytest.approx(release)
    assert _paper(text, "x", "closed").coordinate == pytest.approx(paper)


def test_release_ignores_the_real_image_size() -> None:
    text = "<think> [10, 10, 400, 400] </think> \\boxed{x}"
    assert score_completion(text, "x", mode="release", image_size=[200, 200]).coordinate == pytest.approx(0.05)
    assert score_completion(text, "x", "closed", image_size=[200, 200]).coordinate == pytest.approx(-0.2)


def test_mathruler_copy_matches() -> None:
    for text in ["\\boxed{a}", "\\boxed{ a {b} }", "x \\boxed{a} \\boxed{b}", "\\boxed{", "", "\\boxed{a}}"]:
        assert mathruler_boxed(text) == extract_boxed_content(text)


def _same(text: str, label: str) -> None:
    ours = _release(text, label)
    ref = compute_xray_score([text], [label])[0]
    assert (ours.total, ours.answer, ours.format, ours.coordinate) == (
        ref["overall"],
        ref["accuracy"],
        ref["format"],
        ref["coordinate"],
    )


def test_equals_the_released_code_on_real_labels(shared_data) -> None:
    lines = (shared_data / "curated" / "text" / "iu_xray_reports.jsonl").read_text(encoding="utf-8").splitlines()
    reports = [t for rec in map(json.loads, lines[:150]) for t in (rec["findings"], rec["impression"]) if t]
    vqa = [
        json.loads(line)["answer"]
        for line in (shared_data / "curated" / "vqa_pairs.jsonl").read_text(encoding="utf-8").splitlines()[:150]
    ]
    labels = reports + vqa + ["pleural effusion | edema | atelectasis", "a | a | b", "None", ""]
    rng = random.Random(3)
    boxes = ["[10, 20, 30, 40]", "[1,2,3,600]", "[ 1, 2, 3, 4 ]", "[-5,2,3,4]", "[0.5, .5, 7., 9]"]
    for _ in range(250):
        label = rng.choice(labels)
        answer = rng.choice([label, label.upper(), rng.choice(labels), "", "a | b"])
        box = rng.choice(boxes)
        text = rng.choice(
            [
                f"< think > step {box} and {box} </ think > The answer is \\boxed{{{answer}}}",
                f"lead-in <think>{box}</think>\\boxed{{{answer}",
                answer,
                f"<think>\\boxed{{{answer}}}</think> <think>{box}</think>",
            ]
        )
        _same(text, label)


_PIECES = st.sampled_from(
    [
        "<think>",
        "</think>",
        "< think >",
        "</ think>",
        "\\boxed{",
        "}",
        "{",
        "[",
        "]",
        ",",
        " ",
        "\n",
        "1",
        "-2",
        "3.5",
        "600",
        "[1, 2, 3, 4]",
        "[1,2,3,999]",
        "yes",
        "a",
        "|",
        "/",
        ".",
        "No",
    ]
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(_PIECES, max_size=30).map("".join),
    st.one_of(st.sampled_from(["yes", "a | b", "No", "the heart is normal", "", "/ x"]), st.text(max_size=30)),
)
def test_equals_the_released_code_on_arbitrary_text(text: str, label: str) -> None:
    _same(text, label)

"""The output protocol's parser: tags, reasoning blocks, boxes, the boxed answer, format validity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmedix.protocol import (
    REASONING_SUFFIX,
    build_messages,
    build_user_text,
    extract_boxed,
    final_answer,
    find_boxes,
    format_completion,
    normalize_tags,
    parse_completion,
    split_steps,
    task_prompt,
)

# --- tags -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("open_tag", ["<think>", "< think >", "<think >", "<  think>", "<\tthink\n>"])
@pytest.mark.parametrize("close_tag", ["</think>", "</ think >", "< / think >", "<  /think>", "</think\n>"])
def test_tags_with_whitespace_inside_brackets_are_recognised(open_tag: str, close_tag: str) -> None:
    text = f"{open_tag} the heart [1, 2, 3, 4] {close_tag} The answer is: \\boxed{{no}}"
    parsed = parse_completion(text)
    assert parsed.format_valid
    assert parsed.reasoning_blocks == [" the heart [1, 2, 3, 4] "]
    assert parsed.boxes == [(1.0, 2.0, 3.0, 4.0)]
    assert parsed.answer == "no"


def test_tag_normalisation_leaves_other_text_alone() -> None:
    assert normalize_tags("a < b and c > d </ think >") == "a < b and c > d </think>"
    assert normalize_tags("<thinking> </thinks>") == "<thinking> </thinks>"


def test_tags_are_lower_case_only() -> None:
    parsed = parse_completion("<THINK> [1, 2, 3, 4] </THINK> \\boxed{x}")
    assert parsed.reasoning_blocks == []
    assert parsed.boxes == []
    assert not parsed.format_valid
    assert parsed.answer == "x"


def test_every_think_block_is_reasoning_and_boxes_outside_blocks_are_ignored() -> None:
    text = (
        "<think>first [1, 1, 2, 2]</think> between [9, 9, 10, 10] <think>second [3, 3, 4, 4]\n"
        "third [5, 5, 6, 6]</think> \\boxed{yes} [7, 7, 8, 8]"
    )
    parsed = parse_completion(text)
    assert len(parsed.reasoning_blocks) == 2
    assert parsed.boxes == [(1, 1, 2, 2), (3, 3, 4, 4), (5, 5, 6, 6)]
    assert [s.text for s in parsed.steps] == ["first [1, 1, 2, 2]", "second [3, 3, 4, 4]", "third [5, 5, 6, 6]"]
    assert [s.boxes for s in parsed.steps] == [[(1, 1, 2, 2)], [(3, 3, 4, 4)], [(5, 5, 6, 6)]]


def test_unclosed_think_gives_no_reasoning() -> None:
    parsed = parse_completion("<think> [1, 2, 3, 4] and the answer \\boxed{yes}")
    assert parsed.reasoning_blocks == []
    assert parsed.boxes == []
    assert not parsed.format_valid
    assert parsed.answer == "yes"


# --- boxes ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[10, 20, 30, 40]", [(10, 20, 30, 40)]),
        ("[10,20,30,40]", [(10, 20, 30, 40)]),
        ("[ 10 , 20 ,30 , 40 ]", [(10, 20, 30, 40)]),
        ("[-5, +6, 7.25, .5]", [(-5, 6, 7.25, 0.5)]),
        ("[1., 2, 3, 4]", [(1, 2, 3, 4)]),
        ("[1,\n 2,\n 3, 4]", [(1, 2, 3, 4)]),
        ("[[1, 2, 3, 4], [5, 6, 7, 8]]", [(1, 2, 3, 4), (5, 6, 7, 8)]),
        ("[1, 2, 3]", []),
        ("[1, 2, 3, 4, 5]", []),
        ("[1, 2, 3, 4", []),
        ("(1, 2, 3, 4)", []),
        ("[a, 2, 3, 4]", []),
        ("[1e3, 2, 3, 4]", []),
        ("[1; 2; 3; 4]", []),
        ("[1 2 3 4]", []),
        ("[1, 2, 3, 4.5.6]", []),
        ("[١, 2, 3, 4]", []),  # Arabic-Indic digit: not an ASCII number
        ("[--1, 2, 3, 4]", []),
        ("[x_min, y_min, x_max, y_max]", []),
    ],
)
def test_box_syntax(text: str, expected: list[tuple[float, ...]]) -> None:
    assert find_boxes(text) == expected
    parsed = parse_completion(f"<think> region {text} </think> \\boxed{{a}}")
    assert parsed.boxes == expected


def test_box_split_across_lines_stays_in_one_step() -> None:
    parsed = parse_completion("<think>\nStep 1: left lung [10,\n20, 30, 40] clear\nStep 2: heart normal\n</think>")
    assert parsed.boxes == [(10, 20, 30, 40)]
    assert parsed.steps[0].boxes == [(10, 20, 30, 40)]
    assert parsed.steps[1].boxes == []


def test_huge_numbers_parse_without_error() -> None:
    boxes = find_boxes("[" + "9" * 400 + ", 1, 2, 3]")
    assert boxes and boxes[0][0] == float("inf")


# --- answer ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is: \\boxed{yes}", "yes"),
        ("\\boxed{a} then \\boxed{b}", "b"),
        ("\\boxed{ \\frac{1}{2} }", "\\frac{1}{2}"),
        ("\\boxed{{nested {deep}} x}", "{nested {deep}} x"),
        ("no box at all", ""),
        ("\\boxed{}", ""),
        ("\\boxed{yes} and a cut-off \\boxed{no", "yes"),
        ("\\boxed{unbalanced {", ""),
        ("\\boxed{a}}}", "a"),
        ("\\boxed {spaced}", ""),
        ("\\boxed{line one\nline two}", "line one\nline two"),
    ],
)
def test_boxed_answer(text: str, expected: str) -> None:
    assert extract_boxed(text) == expected
    assert parse_completion(text).answer == expected


def test_final_answer_without_protocol_is_the_text_minus_reasoning() -> None:
    assert final_answer("<think> hmm </think> Cardiomegaly.") == "Cardiomegaly."
    assert final_answer("<think> hmm </think> \\boxed{x}") == "x"
    assert final_answer("\\boxed{") == ""


# --- format ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("<think>a</think>\\boxed{b}", True),
        ("  \n<think>a</think> The answer is \\boxed{b}.", True),
        ("< think >a</ think >\\boxed{b}", True),
        ("<think></think>\\boxed{}", True),
        ("Sure. <think>a</think>\\boxed{b}", False),
        ("<think>a</think> the answer is b", False),
        ("<think>a \\boxed{b}</think>", False),
        ("<think>a\\boxed{b}", False),
        ("\\boxed{b}<think>a</think>", False),
        ("<think>a</think>\\boxed{b", False),
        ("", False),
    ],
)
def test_format_rule(text: str, valid: bool) -> None:
    assert parse_completion(text).format_valid is valid


def test_repetitive_output_is_read_in_linear_time() -> None:
    # A policy stuck in a loop: a pattern of ".*" pieces would backtrack over every pair of tags here.
    parsed = parse_completion("<think>" + "</think> \\boxed{" * 20_000)
    assert not parsed.format_valid
    assert parsed.answer == ""


# --- prompts ----------------------------------------------------------------------------------------------------


def test_prompt_construction() -> None:
    assert task_prompt("report_findings").startswith("Write the FINDINGS")
    assert task_prompt("vqa", "  Is there an effusion?  ") == "Is there an effusion?"
    with pytest.raises(ValueError, match="needs a question"):
        task_prompt("vqa")
    assert build_user_text("Q?", reasoning=False) == "Q?"
    assert build_user_text("Q?").endswith(REASONING_SUFFIX)
    messages = build_messages("Q?", n_images=2)
    assert [c["type"] for c in messages[0]["content"]] == ["image", "image", "text"]
    assert messages[0]["role"] == "user"


def test_format_completion_round_trips() -> None:
    text = format_completion(["Step 1: right base [10, 20, 30, 40] opaque", "  ", "Step 2: so pneumonia"], "pneumonia")
    parsed = parse_completion(text)
    assert parsed.format_valid
    assert parsed.answer == "pneumonia"
    assert [s.text for s in parsed.steps] == ["Step 1: right base [10, 20, 30, 40] opaque", "Step 2: so pneumonia"]


def test_one_line_blocks_split_by_step_markers_then_sentences() -> None:
    assert split_steps("Step 1: a [1, 2, 3, 4]. Step 2: b.") == ["Step 1: a [1, 2, 3, 4].", "Step 2: b."]
    assert split_steps("The heart is normal. Lungs are clear.") == ["The heart is normal.", "Lungs are clear."]
    assert split_steps("   ") == []


# --- properties -----------------------------------------------------------------------------------------------------

_PIECES = st.sampled_from(
    [
        "<think>",
        "</think>",
        "< think >",
        "</ think >",
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
        ".5",
        "[1, 2, 3, 4]",
        "[10,20,30,40]",
        "yes",
        "|",
        "Step 1:",
        ".",
        "<",
        ">",
        "/",
        "\\",
    ]
)
_TEXT = st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=40).map("".join))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_parser_never_raises_and_its_steps_keep_every_box(text: str) -> None:
    parsed = parse_completion(text)
    assert parsed.boxes == [b for block in parsed.reasoning_blocks for b in find_boxes(block)]
    assert isinstance(parsed.to_dict()["steps"], list)

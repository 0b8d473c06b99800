from __future__ import annotations

import pytest

from deepmedix.data.frame import QWEN3_VL_FRAME
from deepmedix.inference.api import GroundedAnswerer, ground_completion, resolve_prompt
from deepmedix.protocol import REASONING_SUFFIX, TASK_PROMPTS
from tests.inference.conftest import FIXED_COMPLETION, ScriptedBackend, grey_image


def test_boxes_come_back_in_original_pixels() -> None:
    # A 1024×1024 radiograph is seen by Qwen2.5-VL (512×512 pixel cap) at 504×504: model coordinates double-ish.
    text = "<think>Step 1: [252, 0, 504, 126] dense.</think> The answer is: \\boxed{yes}"
    answer, valid, steps = ground_completion(text, ScriptedBackend().frame, 1024, 1024)
    assert answer == "yes" and valid
    assert steps[0].boxes_model == [[252.0, 0.0, 504.0, 126.0]]
    assert steps[0].boxes == [[512.0, 0.0, 1024.0, 256.0]]


def test_relative_frame_models_map_the_0_1000_grid_to_the_image() -> None:
    text = "<think>[500, 250, 1000, 750]</think>\\boxed{a}"
    _, _, steps = ground_completion(text, QWEN3_VL_FRAME, 2000, 800)
    assert steps[0].boxes == [[1000.0, 200.0, 2000.0, 600.0]]


def test_malformed_completion_still_answers_and_reports_invalid_format() -> None:
    answer, valid, steps = ground_completion("just some text [1, 2, 3, 4]", ScriptedBackend().frame, 100, 100)
    assert answer == "just some text [1, 2, 3, 4]" and not valid and steps == []


def test_resolve_prompt_tasks_and_errors() -> None:
    assert resolve_prompt("findings") == ("report_findings", TASK_PROMPTS["report_findings"])
    assert resolve_prompt(None, " Is there an effusion? ") == ("vqa", "Is there an effusion?")
    with pytest.raises(ValueError, match="empty"):
        resolve_prompt(None, "   ")
    with pytest.raises(ValueError, match="question or a task"):
        resolve_prompt(None, None)
    with pytest.raises(ValueError, match="unknown task"):
        resolve_prompt("xray", "q")
    with pytest.raises(ValueError, match="needs a question"):
        resolve_prompt("vqa", None)


def test_answerer_sends_the_protocol_prompt_and_grounds_the_reply() -> None:
    backend = ScriptedBackend()
    result = GroundedAnswerer(backend).answer(grey_image(512, 512), question="Is there an effusion?")
    req = backend.requests[0]
    assert req.prompt == "Is there an effusion?" and req.reasoning
    text = req.messages()[0]["content"][-1]["text"]
    assert text.startswith("Is there an effusion?") and text.endswith(REASONING_SUFFIX)
    assert result.answer == "pleural effusion" and result.format_valid
    assert result.image_size == [512, 512] and result.model_input_size == [504, 504]
    assert [len(s.boxes) for s in result.steps] == [1, 2, 0]
    # 512/504 scaling of [50, 300, 200, 450]
    assert result.steps[0].boxes[0] == pytest.approx([50.8, 304.8, 203.2, 457.1], abs=0.06)
    body = result.to_dict()
    assert body["steps"][1]["boxes_model"] == [[180.0, 200.0, 330.0, 400.0], [300.0, 40.0, 450.0, 160.0]]


def test_no_reasoning_drops_the_suffix() -> None:
    backend = ScriptedBackend(completion="effusion")
    result = GroundedAnswerer(backend).answer(grey_image(64, 64), task="impression", reasoning=False)
    assert backend.requests[0].messages()[0]["content"][-1]["text"] == TASK_PROMPTS["report_impression"]
    assert result.answer == "effusion" and not result.format_valid and result.task == "report_impression"


def test_completion_fixture_is_well_formed() -> None:
    _, valid, steps = ground_completion(FIXED_COMPLETION, ScriptedBackend().frame, 504, 504)
    assert valid and len(steps) == 3


def test_boxes_in_the_answer_itself_are_grounded_too() -> None:
    backend = ScriptedBackend(completion="<think>Step 1: look.</think> The answer is: \\boxed{[126, 252, 252, 504]}")
    result = GroundedAnswerer(backend).answer(
        grey_image(1024, 1024), question="Where is the opacity?", task="grounding"
    )
    assert result.answer == "[126, 252, 252, 504]"
    assert result.answer_boxes_model == [[126.0, 252.0, 252.0, 504.0]]
    assert result.answer_boxes == [[256.0, 512.0, 512.0, 1024.0]]

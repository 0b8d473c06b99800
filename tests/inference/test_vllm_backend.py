"""The vLLM backend's use of vLLM's offline API, checked against a stand-in ``vllm`` module (vLLM needs a GPU)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from deepmedix.cli import main
from deepmedix.data.bundled import ASSETS
from deepmedix.errors import MissingDependencyError
from deepmedix.inference.api import GroundedAnswerer, load_backend
from deepmedix.inference.backends import GenerationRequest
from deepmedix.protocol import build_messages
from tests.inference.conftest import FIXED_COMPLETION, grey_image


class _FakeLLM:
    instances: list[_FakeLLM] = []

    def __init__(self, model: str, **kwargs: Any):
        self.model, self.kwargs, self.calls = model, kwargs, []
        _FakeLLM.instances.append(self)

    def generate(self, prompts: list[dict], sampling: Any, use_tqdm: bool = True) -> list[Any]:
        self.calls.append((prompts, sampling))
        # vLLM's reasons: "length" where the request's budget ran out (here: budgets under 100), else "stop".
        return [
            types.SimpleNamespace(
                outputs=[
                    types.SimpleNamespace(
                        text=" " + FIXED_COMPLETION + "\n",
                        finish_reason="length" if params.kwargs["max_tokens"] < 100 else "stop",
                    )
                ]
            )
            for params in sampling
        ]


class _FakeSamplingParams:
    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> type[_FakeLLM]:
    module = types.ModuleType("vllm")
    module.LLM = _FakeLLM  # type: ignore[attr-defined]
    module.SamplingParams = _FakeSamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    _FakeLLM.instances.clear()
    return _FakeLLM


def test_engine_prompts_and_images(fake_vllm: type[_FakeLLM]) -> None:
    backend = load_backend("tiny", "vllm", max_new_tokens=77)
    llm = fake_vllm.instances[0]
    assert llm.kwargs["limit_mm_per_prompt"] == {"image": 2}
    assert llm.kwargs["mm_processor_kwargs"] == {
        "min_pixels": backend.frame.min_pixels,
        "max_pixels": backend.frame.max_pixels,
    }
    one, two = grey_image(300, 200), [grey_image(100, 100), grey_image(120, 100)]
    texts = backend.generate([GenerationRequest([one], "Effusion?"), GenerationRequest(two, "Compare.", False)])
    assert texts == [FIXED_COMPLETION, FIXED_COMPLETION]
    prompts, sampling = llm.calls[0]
    assert [s.kwargs for s in sampling] == [{"max_tokens": 77, "temperature": 0.0}] * 2
    expected = backend._processor.apply_chat_template(
        build_messages("Effusion?"), tokenize=False, add_generation_prompt=True
    )
    assert prompts[0]["prompt"] == expected
    assert prompts[0]["multi_modal_data"]["image"].size == (300, 200)
    assert prompts[1]["prompt"].count("<|image_pad|>") == 2
    assert [im.size for im in prompts[1]["multi_modal_data"]["image"]] == [(100, 100), (120, 100)]


def test_sampling_options_and_pixel_bounds_reach_vllm(fake_vllm: type[_FakeLLM]) -> None:
    backend = load_backend("tiny", "vllm", temperature=0.7, top_p=0.9, seed=3, input_max_pixels=200 * 200)
    llm = fake_vllm.instances[0]
    assert backend.frame.max_pixels == 200 * 200
    assert llm.kwargs["mm_processor_kwargs"]["max_pixels"] == 200 * 200
    backend.generate([GenerationRequest([grey_image(64, 64)], "q?")])
    assert llm.calls[0][1][0].kwargs == {"max_tokens": 1024, "temperature": 0.7, "top_p": 0.9, "seed": 3}


def test_each_request_gets_its_task_budget_and_vllm_says_which_ran_out(fake_vllm: type[_FakeLLM]) -> None:
    backend = load_backend("tiny", "vllm")
    answers = GroundedAnswerer(backend).answer_many(
        [grey_image(64, 64)] * 3,
        ["q?", "Write the FINDINGS section.", "q?"],
        ["vqa", "report_findings", "grounding"],
    )
    sampling = fake_vllm.instances[0].calls[0][1]
    assert [s.kwargs["max_tokens"] for s in sampling] == [512, 1024, 512]
    assert [(a.max_new_tokens, a.finish_reason, a.truncated) for a in answers] == [
        (512, "stop", False),
        (1024, "stop", False),
        (512, "stop", False),
    ]
    cut = backend.generate_detailed([GenerationRequest([grey_image(64, 64)], "q?", max_new_tokens=4)])[0]
    assert (cut.finish_reason, cut.truncated, cut.max_new_tokens) == ("length", True, 4)


def test_missing_vllm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(MissingDependencyError, match="needs the vllm package"):
        load_backend("tiny", "vllm")
    rc = main(
        [
            "infer",
            str(ASSETS / "images" / "nih_cxr14_00000001_000.jpg"),
            "--question",
            "Is there an effusion?",
            "--model",
            "tiny",
            "--backend",
            "vllm",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "needs the vllm package" in err and "Traceback" not in err

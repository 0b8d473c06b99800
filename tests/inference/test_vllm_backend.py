"""The vLLM backend's use of vLLM's offline API, checked against a stand-in ``vllm`` module (vLLM needs a GPU)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from deepmedix.cli import main
from deepmedix.data.bundled import ASSETS
from deepmedix.errors import MissingDependencyError
from deepmedix.inference.api import load_backend
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
        out = types.SimpleNamespace(text=" " + FIXED_COMPLETION + "\n")
        return [types.SimpleNamespace(outputs=[out]) for _ in prompts]


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
    assert sampling.kwargs == {"max_tokens": 77, "temperature": 0.0}
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
    assert llm.calls[0][1].kwargs == {"max_tokens": 512, "temperature": 0.7, "top_p": 0.9, "seed": 3}


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

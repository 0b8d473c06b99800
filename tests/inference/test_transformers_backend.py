"""The transformers backend on the tiny random Qwen2.5-VL: prompt construction, frame, batching."""

from __future__ import annotations

import pytest

from deepmedix.inference.api import GroundedAnswerer, load_backend
from deepmedix.inference.backends import GenerationRequest, TransformersBackend
from deepmedix.protocol import build_messages
from tests.inference.conftest import grey_image


@pytest.fixture(scope="module")
def tiny_backend() -> TransformersBackend:
    backend = load_backend("tiny", max_new_tokens=12)
    assert isinstance(backend, TransformersBackend)
    return backend


def test_prompt_is_the_training_prompt(tiny_backend: TransformersBackend) -> None:
    req = GenerationRequest([grey_image(64, 64)], "Is there an effusion?")
    expected = tiny_backend.processor.apply_chat_template(
        build_messages("Is there an effusion?", reasoning=True, n_images=1), tokenize=False, add_generation_prompt=True
    )
    assert tiny_backend.prompt_text(req) == expected
    assert expected.count("<|image_pad|>") == 1 and expected.rstrip().endswith("<|im_start|>assistant")


def test_frame_matches_what_the_processor_feeds_the_model(tiny_backend: TransformersBackend) -> None:
    img = grey_image(512, 305)
    inputs = tiny_backend.processor(
        text=["<|vision_start|><|image_pad|><|vision_end|>x"], images=[[img.convert("RGB")]], return_tensors="pt"
    )
    _, gh, gw = inputs["image_grid_thw"][0].tolist()
    patch = tiny_backend.processor.image_processor.patch_size
    assert tiny_backend.frame.input_size(512, 305) == (gw * patch, gh * patch)


def test_batched_left_padded_generation_equals_one_by_one(tiny_backend: TransformersBackend) -> None:
    # Different image sizes and prompt lengths force padding; greedy output must not depend on it.
    reqs = [
        GenerationRequest([grey_image(512, 305, seed=1)], "Is there an effusion?"),
        GenerationRequest([grey_image(200, 400, seed=2)], "Describe the heart size and the lung fields in detail."),
        GenerationRequest([grey_image(300, 300, seed=3)], "Any pneumothorax?", reasoning=False),
    ]
    batched = tiny_backend.generate(reqs)
    single = [tiny_backend.generate([r])[0] for r in reqs]
    assert batched == single
    assert all(isinstance(t, str) and t for t in batched)


def test_sampling_with_a_seed_is_reproducible_and_differs_from_greedy(tiny_backend: TransformersBackend) -> None:
    req = [GenerationRequest([grey_image(128, 128)], "Is there an effusion?")]
    greedy = tiny_backend.generate(req)
    tiny_backend.generation.temperature, tiny_backend.generation.seed = 1.5, 7
    try:
        a, b = tiny_backend.generate(req), tiny_backend.generate(req)
    finally:
        tiny_backend.generation.temperature, tiny_backend.generation.seed = 0.0, None
    assert a == b and a != greedy


def test_grounded_answer_through_the_real_model(tiny_backend: TransformersBackend) -> None:
    result = GroundedAnswerer(tiny_backend).answer(grey_image(512, 512), question="Is there an effusion?")
    assert result.model == "tiny" and result.image_size == [512, 512]
    assert result.model_input_size == list(tiny_backend.frame.input_size(512, 512))
    assert result.completion and isinstance(result.format_valid, bool)

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from deepmedix.inference.api import GroundedAnswerer, load_backend
from deepmedix.inference.backends import BackendError, GenerationRequest, OpenAIBackend
from deepmedix.protocol import build_user_text
from tests.fake_openai import FakeHTTPError, fake_openai_server
from tests.inference.conftest import FIXED_COMPLETION, grey_image


def _image_of(part: dict) -> Image.Image:
    url = part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_sends_protocol_messages_with_images_in_the_model_frame(tmp_path: Path) -> None:
    seen: list[dict] = []
    with fake_openai_server(lambda body: seen.append(body) or FIXED_COMPLETION) as url:
        backend = load_backend("Qwen/Qwen2.5-VL-7B-Instruct", "openai", base_url=url, max_new_tokens=99)
        result = GroundedAnswerer(backend).answer(grey_image(1024, 1024), question="Is there an effusion?")
    body = seen[0]
    assert body["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and body["max_tokens"] == 99 and body["temperature"] == 0.0
    content = body["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url", "text"]
    assert content[1]["text"] == build_user_text("Is there an effusion?")
    # Sent at the model-input size, so the server's processor keeps it and the boxes are in the frame we expect.
    assert _image_of(content[0]).size == (504, 504)
    # The reply's model-frame boxes come back in the 1024-px original.
    assert result.answer == "pleural effusion"
    assert result.steps[0].boxes[0] == pytest.approx(
        [50 * 1024 / 504, 300 * 1024 / 504, 200 * 1024 / 504, 450 * 1024 / 504], abs=0.06
    )


def test_two_views_become_two_images_and_nothing_is_sent_without_base_url() -> None:
    seen: list[dict] = []
    with fake_openai_server(lambda body: seen.append(body) or "ok") as url:
        backend = load_backend("qwen2.5-vl", "openai", base_url=url)
        backend.generate([GenerationRequest([grey_image(300, 300), grey_image(200, 300)], "Compare the views.")])
    assert [p["type"] for p in seen[0]["messages"][0]["content"]] == ["image_url", "image_url", "text"]
    with pytest.raises(ValueError, match="base-url"):
        load_backend("m", "openai")


def test_replies_are_cached_and_a_failed_request_keeps_the_others(tmp_path: Path) -> None:
    seen: list[dict] = []

    def responder(body: dict) -> str:
        seen.append(body)
        text = body["messages"][0]["content"][-1]["text"]
        if text.startswith("fail"):
            raise FakeHTTPError(400, "bad request")
        return "answer to " + text.split("\n")[0]

    reqs = [GenerationRequest([grey_image(64, 64, seed=i)], p) for i, p in enumerate(["a?", "fail?", "c?"])]
    with fake_openai_server(responder) as url:
        backend = load_backend("m", "openai", base_url=url, cache_path=tmp_path / "cache.sqlite")
        assert isinstance(backend, OpenAIBackend)
        backend.endpoint.client = backend.endpoint.client.with_options(max_retries=0)
        with pytest.raises(BackendError) as err:
            backend.generate(reqs)
        assert err.value.results == ["answer to a?", None, "answer to c?"]
        sent = len(seen)
        # A rerun pays only for what failed (cache hits for the rest).
        assert backend.generate([reqs[0], reqs[2]]) == ["answer to a?", "answer to c?"]
        assert len(seen) == sent
        backend.close()

"""The OpenAI chat-completions protocol of ``deepmedix serve``, spoken by the official ``openai`` client to a real
uvicorn server serving the tiny model; and the project's own arena judge and cold-start teacher through it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from deepmedix.arena.judges import JudgeTask, LLMJudge
from deepmedix.endpoints import ChatEndpoint, EndpointConfig, image_data_url
from deepmedix.inference.api import GroundedAnswerer, load_backend
from deepmedix.inference.backends import TransformersBackend
from deepmedix.inference.server import create_app
from deepmedix.protocol import REASONING_SUFFIX
from deepmedix.training.coldstart.synthesize import synthesize
from deepmedix.training.coldstart.teachers import EndpointTeacher
from tests.inference.conftest import LONG_REQUEST, grey_image, png_bytes, serving, write_samples

MAX_NEW_TOKENS = 4000  # far more than the tiny model writes in the time limits below
KEY_ENV = "DEEPMEDIX_TEST_SERVER_KEY"


@pytest.fixture(scope="module")
def tiny() -> TransformersBackend:
    backend = load_backend("tiny", max_new_tokens=MAX_NEW_TOKENS)
    assert isinstance(backend, TransformersBackend)
    return backend


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    grey_image(300, 240).save(folder / "cxr.png")
    return folder


@pytest.fixture(scope="module")
def base_url(tiny: TransformersBackend, image_dir: Path) -> Iterator[str]:
    app = create_app(GroundedAnswerer(tiny), time_limit_s=60, allowed_image_dir=[image_dir])
    with serving(app) as url:
        yield url


def _client(url: str, key: str = "unused", **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, **options)


def _ask(text: str, image_url: str | None = None) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if image_url:
        content.insert(0, {"type": "image_url", "image_url": {"url": image_url}})
    return [{"role": "user", "content": content}]


def _prompt_tokens(tiny: TransformersBackend, conversation: list[dict[str, Any]], n_images: int) -> int:
    text = tiny.processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    images = [grey_image(300, 240)] * n_images or None
    return int(tiny.processor(text=[text], images=images, return_tensors="pt")["input_ids"].shape[1])


def test_models_and_a_chat_completion_with_a_data_url_image(base_url: str, tiny: TransformersBackend) -> None:
    client = _client(base_url)
    assert [m.id for m in client.models.list()] == ["tiny"]
    messages = [
        {"role": "system", "content": "Answer briefly."},
        *_ask("Is there an effusion?", image_data_url(grey_image(300, 240))),
    ]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8)
    assert reply.object == "chat.completion" and reply.model == "tiny" and reply.id.startswith("chatcmpl-")
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage is not None and 1 <= reply.usage.completion_tokens <= 8
    assert choice.finish_reason == "stop" or reply.usage.completion_tokens == 8
    # The model saw the client's text as it was sent, the system text at the start of the user turn, and no
    # reasoning suffix (the prompt's token count is that of exactly this conversation).
    seen = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": "Answer briefly.\n\nIs there an effusion?"}],
        }
    ]
    assert reply.usage.prompt_tokens == _prompt_tokens(tiny, seen, 1)
    # Greedy by default: the same request gives the same text.
    again = client.chat.completions.create(model="tiny", messages=messages, max_tokens=8)
    assert again.choices[0].message.content == choice.message.content


def test_the_reasoning_suffix_only_when_asked_and_a_file_url_image(
    base_url: str, tiny: TransformersBackend, image_dir: Path
) -> None:
    client = _client(base_url)
    messages = _ask("Is there an effusion?", (image_dir / "cxr.png").as_uri())
    reply = client.chat.completions.create(
        model="tiny", messages=messages, max_completion_tokens=3, extra_body={"deepmedix": {"reasoning": True}}
    )
    seen = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": f"Is there an effusion?\n\n{REASONING_SUFFIX}"}],
        }
    ]
    assert reply.usage is not None and reply.usage.prompt_tokens == _prompt_tokens(tiny, seen, 1)
    assert reply.usage.completion_tokens <= 3


def test_limits_are_refused_quickly_with_a_clear_message(base_url: str) -> None:
    client = _client(base_url)
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="tiny", messages=_ask("Is there an effusion? " * 50_000))
    assert err.value.status_code == 413 and "--max-prompt-chars" in err.value.message
    assert time.monotonic() - t0 < 2
    with pytest.raises(openai.UnprocessableEntityError, match="--max-new-tokens"):
        client.chat.completions.create(model="tiny", messages=_ask("Effusion?"), max_tokens=MAX_NEW_TOKENS + 1)
    with pytest.raises(openai.BadRequestError, match="streaming is not supported"):
        client.chat.completions.create(model="tiny", messages=_ask("Effusion?"), stream=True)
    t0 = time.monotonic()
    r = httpx.post(
        f"{base_url}/api/answer",
        files={"image": ("a.png", png_bytes(grey_image(64, 64)), "image/png")},
        data={"question": "x" * 1_000_000},
    )
    assert r.status_code == 413 and "--max-question-chars" in r.json()["detail"]
    assert time.monotonic() - t0 < 2


def test_a_generation_past_the_time_limit_is_stopped_and_the_model_freed(tiny: TransformersBackend) -> None:
    app = create_app(GroundedAnswerer(tiny), time_limit_s=1.5)
    with serving(app) as url:
        client = _client(url)
        t0 = time.monotonic()
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="tiny", **LONG_REQUEST)
        elapsed = time.monotonic() - t0
        assert err.value.status_code == 504 and "--time-limit" in err.value.message
        assert elapsed < 1.5 + 3  # the limit, one token and a loaded machine's slack
        # Stopped at a token, not abandoned: the model is free for the next request at once.
        assert app.state.gate.status()["busy"] is False
        reply = client.chat.completions.create(model="tiny", messages=_ask("Effusion?"), max_tokens=2)
        assert reply.usage is not None and reply.usage.completion_tokens <= 2


def test_the_key_guards_v1(tiny: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "s3cret-key")
    app = create_app(GroundedAnswerer(tiny), server_api_key_env=KEY_ENV)
    with serving(app) as url:
        for key in ("wrong-key", "s3cret-ke", "s3cret-key-and-more"):
            with pytest.raises(openai.AuthenticationError, match="API key"):
                _client(url, key).models.list()
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": _ask("q")})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["type"] == "authentication_error"
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": "Basic s3cret-key"})
        assert r.status_code == 401
        client = _client(url, "s3cret-key")
        assert [m.id for m in client.models.list()] == ["tiny"]
        reply = client.chat.completions.create(model="tiny", messages=_ask("Effusion?"), max_tokens=2)
        assert reply.choices[0].finish_reason in ("stop", "length")
        assert httpx.get(f"{url}/health").status_code == 200  # the viewer's side is not behind the key


def test_file_urls_outside_the_allowed_folders_are_refused(
    base_url: str, image_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    grey_image(64, 64).save(outside / "secret.png")
    link = image_dir / "link.png"
    if not link.exists():
        link.symlink_to(outside / "secret.png")
    client = _client(base_url)
    cases = {
        (outside / "secret.png").as_uri(): 403,
        f"file://{image_dir}/../{outside.name}/secret.png": 403,
        f"file://{image_dir}/%2e%2e/{outside.name}/secret.png": 403,
        link.as_uri(): 403,  # a link inside the folder to a file outside it
        "file:///etc/passwd": 403,
        (image_dir / "missing.png").as_uri(): 400,
        image_dir.as_uri(): 400,
        "file://otherhost/etc/passwd": 400,
        "http://127.0.0.1:1/cxr.png": 400,  # nothing is fetched from the network
    }
    for url, status in cases.items():
        with pytest.raises(openai.APIStatusError) as err:
            client.chat.completions.create(model="tiny", messages=_ask("q", url), max_tokens=2)
        assert err.value.status_code == status, url
        assert "secret" not in err.value.message and "passwd" not in err.value.message


def test_the_arena_judge_and_the_coldstart_teacher_through_the_deepmedix_server(
    base_url: str, tiny: TransformersBackend, tmp_path: Path
) -> None:
    def endpoint(max_tokens: int) -> ChatEndpoint:
        config = EndpointConfig(base_url=f"{base_url}/v1", model="tiny", max_tokens=max_tokens, max_retries=0)
        return ChatEndpoint(config)

    image = tmp_path / "cxr.png"
    grey_image(256, 256).save(image)
    judge = LLMJudge(endpoint(12), vision=True)
    task = JudgeTask("s0", "No effusion.", "Small left effusion.", "Clear lungs.", image=str(image))
    [(index, outcome)] = list(judge.judge_many([task]))
    # The tiny model writes gibberish: the verdict is parsed or, after the judge's retry (a four-turn chat with the
    # assistant's first reply), recorded as unparseable, never an endpoint error.
    assert index == 0 and outcome.verdict in ("A", "B", "tie", "unparseable"), outcome.reason
    assert outcome.calls == len(outcome.replies) == (2 if outcome.verdict == "unparseable" else 1)
    assert outcome.prompt_tokens > 16 * outcome.calls  # the image's tokens were counted in each call
    assert 0 < outcome.completion_tokens <= 12 * outcome.calls

    samples = write_samples(tmp_path / "data", n=2)
    teacher_endpoint = endpoint(16)
    summary = synthesize(samples, tmp_path / "coldstart.jsonl", EndpointTeacher(teacher_endpoint), frame=tiny.frame)
    assert summary.total == 2 and summary.requested == 2 and teacher_endpoint.usage()["failures"] == 0
    dropped = [json.loads(line) for line in (tmp_path / "coldstart.dropped.jsonl").read_text().splitlines()]
    # Every reply reached the filter, which judged it (kept, or dropped for a reason of its own with the text).
    assert summary.kept + len(dropped) == 2
    assert all(d["reason"] != "teacher_error" and isinstance(d["completion"], str) for d in dropped)

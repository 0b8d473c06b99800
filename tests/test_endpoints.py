"""The OpenAI-compatible client: retries, concurrency, rate limit, images as data URLs, the response cache."""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image

from deepmedix.endpoints import ChatEndpoint, EndpointConfig, ResponseCache, content_key, image_data_url
from tests.fake_openai import FakeHTTPError, fake_openai_server


def test_chat_round_trip_counts_calls_and_tokens() -> None:
    seen: list[dict] = []

    def responder(body: dict) -> str:
        seen.append(body)
        return "reply to " + body["messages"][-1]["content"]

    with fake_openai_server(responder) as url:
        ep = ChatEndpoint(EndpointConfig(base_url=url, model="judge-x", max_retries=0))
        reply = ep.chat([{"role": "user", "content": "hello"}])
    assert reply.text == "reply to hello"
    assert seen[0]["model"] == "judge-x"
    assert seen[0]["temperature"] == 0.0
    assert ep.calls == 1 and ep.prompt_tokens == 10 and ep.completion_tokens == 3


def test_retries_on_server_error_then_succeeds() -> None:
    attempts = {"n": 0}

    def responder(body: dict) -> str:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise FakeHTTPError(503, "busy")
        return "ok"

    with fake_openai_server(responder) as url:
        ep = ChatEndpoint(EndpointConfig(base_url=url, model="m", max_retries=4, timeout_s=10))
        assert ep.chat([{"role": "user", "content": "x"}]).text == "ok"
    assert attempts["n"] == 3


def test_chat_many_bounds_concurrency_and_reports_errors() -> None:
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def responder(body: dict) -> str:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        if body["messages"][0]["content"] == "bad":
            raise FakeHTTPError(400, "bad request")
        return body["messages"][0]["content"].upper()

    requests = [[{"role": "user", "content": c}] for c in ["a", "b", "bad", "c", "d", "e"]]
    with fake_openai_server(responder) as url:
        ep = ChatEndpoint(EndpointConfig(base_url=url, model="m", max_concurrency=2, max_retries=0))
        results = dict(ep.chat_many(requests))
    assert state["peak"] <= 2
    assert isinstance(results[2], Exception)
    assert [results[i].text for i in (0, 1, 3, 4, 5)] == ["A", "B", "C", "D", "E"]
    assert ep.failures == 1 and ep.calls == 6


def test_rate_limit_spaces_requests() -> None:
    with fake_openai_server(lambda body: "x") as url:
        ep = ChatEndpoint(EndpointConfig(base_url=url, model="m", requests_per_minute=600, max_retries=0))
        start = time.monotonic()
        for _ in range(4):
            ep.chat([{"role": "user", "content": "x"}])
    # 600/min = one start every 0.1 s: four starts need at least 0.3 s.
    assert time.monotonic() - start >= 0.29


def test_image_data_url_round_trip(tmp_path) -> None:
    import base64
    import io

    img = Image.new("L", (300, 100), color=7)
    url = image_data_url(img, max_side=150)
    assert url.startswith("data:image/png;base64,")
    back = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert back.size == (150, 50)


def test_response_cache_persists_across_instances(tmp_path) -> None:
    key = content_key("teacher", {"a": 1}, [1, 2])
    assert key == content_key("teacher", {"a": 1}, [1, 2])
    assert key != content_key("teacher", {"a": 2}, [1, 2])
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put(key, {"text": "paid for"})
    cache.close()
    again = ResponseCache(tmp_path / "c.sqlite")
    assert again.get(key) == {"text": "paid for"}
    assert key in again and len(again) == 1
    assert again.get("missing") is None


def test_response_cache_many_at_once_beyond_one_statement(tmp_path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    items = {f"k{i}": [i, i % 4] for i in range(1203)}  # more keys than one SQLite statement takes
    cache.put_many(items)
    asked = [*items, "absent", "k7"]
    assert cache.get_many(asked) == items
    assert len(cache) == 1203
    cache.put_many({"k7": "new"})
    assert cache.get_many(["k7", "k8"]) == {"k7": "new", "k8": [8, 0]}


@pytest.mark.parametrize("status", [401])
def test_client_error_is_not_retried(status: int) -> None:
    attempts = {"n": 0}

    def responder(body: dict) -> str:
        attempts["n"] += 1
        raise FakeHTTPError(status, "no key")

    with fake_openai_server(responder) as url:
        ep = ChatEndpoint(EndpointConfig(base_url=url, model="m", max_retries=3))
        with pytest.raises(Exception):  # noqa: B017 - openai raises its own AuthenticationError
            ep.chat([{"role": "user", "content": "x"}])
    assert attempts["n"] == 1

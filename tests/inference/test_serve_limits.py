"""The model server under load and attack: the queue's bounded wait, the time limit, shutdown on SIGTERM, and a
table of hostile requests (auth, sizes, NaN, paths), each refused with a clear 4xx before it reaches the model."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from deepmedix.inference.api import GroundedAnswerer
from deepmedix.inference.gate import GRACE_S
from deepmedix.inference.server import create_app
from tests.fake_openai import free_port
from tests.inference.conftest import (
    LONG_REQUEST,
    ScriptedBackend,
    SlowBackend,
    grey_image,
    png_bytes,
    png_header_only,
    serving,
)

SLACK_S = 2.0  # a loaded two-core machine answering a request
CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "Is there an effusion?"}]}


def _chat(url: str, **fields: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={**CHAT, **fields}, timeout=60)


class _InBackground:
    """A request sent from a thread; ``.response`` and ``.elapsed`` once ``join()`` returns."""

    def __init__(self, send: Any):
        self.response: httpx.Response | None = None
        self.elapsed = 0.0
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Any) -> None:
        t0 = time.monotonic()
        self.response = send()
        self.elapsed = time.monotonic() - t0

    def join(self) -> httpx.Response:
        self._thread.join(timeout=120)
        assert self.response is not None
        return self.response


def _wait_until(condition: Any, timeout: float = 20) -> None:
    give_up_at = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up_at, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def slow_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, SlowBackend, Any]]:
    backend_args, limits = request.param
    backend = SlowBackend(**backend_args)
    app = create_app(GroundedAnswerer(backend), **limits)
    with serving(app) as url:
        yield url, backend, app.state.gate


@pytest.mark.parametrize("slow_server", [({"seconds": 3}, {"queue_wait_s": 0.5})], indirect=True)
def test_a_request_behind_a_slow_one_gets_503_within_the_queue_wait(slow_server: tuple[str, SlowBackend, Any]) -> None:
    url, backend, gate = slow_server
    first = _InBackground(lambda: _chat(url))
    _wait_until(lambda: gate.status()["busy"])
    t0 = time.monotonic()
    second = _chat(url)
    assert second.status_code == 503 and "--queue-wait" in second.json()["error"]["message"]
    assert second.headers["retry-after"] == "1"
    assert 0.5 <= time.monotonic() - t0 < 0.5 + SLACK_S
    assert first.join().status_code == 200 and len(backend.started) == 1


@pytest.mark.parametrize("slow_server", [({"seconds": 0.5}, {"queue_wait_s": 20})], indirect=True)
def test_requests_behind_one_that_ends_in_time_are_answered_in_turn(slow_server: tuple[str, SlowBackend, Any]) -> None:
    url, backend, gate = slow_server
    first = _InBackground(lambda: _chat(url))
    _wait_until(lambda: gate.status()["busy"])
    second = _InBackground(
        lambda: httpx.post(
            f"{url}/api/answer",
            files={"image": ("a.png", png_bytes(grey_image(64, 64)), "image/png")},
            data={"question": "Effusion?"},
            timeout=60,
        )
    )
    assert first.join().status_code == 200 and second.join().status_code == 200
    assert second.response is not None and second.response.json()["answer"] == "pleural effusion"
    # One at a time: the second began only when the first had ended.
    assert len(backend.started) == 2 and backend.started[1] >= backend.finished[0][0]


@pytest.mark.parametrize("slow_server", [({"seconds": 3}, {"queue_wait_s": 20, "max_queued": 1})], indirect=True)
def test_a_full_queue_refuses_at_once(slow_server: tuple[str, SlowBackend, Any]) -> None:
    url, backend, gate = slow_server
    first = _InBackground(lambda: _chat(url))
    _wait_until(lambda: gate.status()["busy"])
    second = _InBackground(lambda: _chat(url))
    _wait_until(lambda: gate.status()["queued"] == 1)
    t0 = time.monotonic()
    third = _chat(url)
    assert third.status_code == 503 and "--max-queued" in third.json()["error"]["message"]
    assert time.monotonic() - t0 < SLACK_S
    assert first.join().status_code == 200 and second.join().status_code == 200


@pytest.mark.parametrize(
    "slow_server", [({"seconds": [4, 0], "stoppable": False}, {"time_limit_s": 1, "queue_wait_s": 20})], indirect=True
)
def test_an_engine_that_cannot_stop_is_answered_at_the_limit_and_keeps_the_model(
    slow_server: tuple[str, SlowBackend, Any],
) -> None:
    url, backend, gate = slow_server
    first = _InBackground(lambda: _chat(url))
    _wait_until(lambda: gate.status()["busy"])
    second = _InBackground(lambda: _chat(url))
    r = first.join()
    assert r.status_code == 504 and "--time-limit" in r.json()["error"]["message"]
    assert first.elapsed < 1 + GRACE_S + SLACK_S
    assert second.join().status_code == 200
    # The second did not run beside the first, which the engine finished in its own time.
    assert backend.started[1] >= backend.finished[0][0] and backend.finished[0][1] is None


@pytest.mark.parametrize("slow_server", [({"seconds": 60}, {"queue_wait_s": 60})], indirect=True)
def test_shutdown_stops_the_generation_and_refuses_the_waiting(slow_server: tuple[str, SlowBackend, Any]) -> None:
    url, backend, gate = slow_server
    first = _InBackground(lambda: _chat(url))
    _wait_until(lambda: gate.status()["busy"])
    second = _InBackground(lambda: _chat(url))
    _wait_until(lambda: gate.status()["queued"] == 1)
    t0 = time.monotonic()
    gate.shutdown()
    for r in (first.join(), second.join(), _chat(url)):
        assert r.status_code == 503 and "shutting down" in r.json()["error"]["message"]
    assert time.monotonic() - t0 < SLACK_S
    assert [reason for _, reason in backend.finished] == ["shutdown"] and len(backend.started) == 1


@pytest.mark.slow
def test_sigterm_stops_deepmedix_serve_within_seconds_during_a_generation(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from deepmedix.cli import main; raise SystemExit(main())", "serve", "--model", "tiny"]
        + ["--port", str(port), "--max-new-tokens", "4000", "--time-limit", "300", "--shutdown-timeout", "5"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until(lambda: _health(url) is not None, timeout=180)
        body = {"model": "tiny", "messages": LONG_REQUEST["messages"], **LONG_REQUEST["extra_body"]}
        long = _InBackground(lambda: httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300))
        _wait_until(lambda: (_health(url) or {}).get("queue", {}).get("busy"))
        queued = _InBackground(lambda: httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300))
        _wait_until(lambda: (_health(url) or {}).get("queue", {}).get("queued") == 1)
        time.sleep(0.5)  # well into generating
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        exit_s = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    assert exit_s < 5, (tmp_path / "serve.log").read_text()[-2000:]
    assert proc.returncode in (0, -signal.SIGTERM)
    for r in (long.join(), queued.join()):
        assert r.status_code == 503 and "shutting down" in r.json()["error"]["message"]


def _health(url: str) -> dict[str, Any] | None:
    try:
        return httpx.get(f"{url}/health", timeout=2).json()
    except httpx.HTTPError:
        return None


# --- the attack table ------------------------------------------------------------------------------------------

KEY = "k3y-for-tests"
MAX_UPLOAD_MB = 0.05  # 52 KB images; bodies up to that plus 64 KB of form
V1 = "/v1/chat/completions"


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _with_image(url: str, n: int = 1) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": url}} for _ in range(n)]
    return {**CHAT, "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "Effusion?"}]}]}


def _raw(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": {"content-type": "application/json"}}


class _Chunks:
    """A body sent in chunks, with no length announced (each request gets a fresh iterator)."""

    def __init__(self, total: int):
        self.total = total

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.total // 10_000):
            yield b" " * 10_000


NOISY = png_bytes(grey_image(200, 200, seed=1))  # ~31 KB: under the image limit
BIG = png_bytes(grey_image(300, 300, seed=2))  # ~70 KB: over it, in a body under the body limit
ANSWER = "/api/answer"
IMAGE_FILE = {"image": ("a.png", png_bytes(grey_image(64, 64)), "image/png")}

# (id, path, request arguments, status, words the message must hold)
ATTACKS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("no-key", V1, {"json": CHAT, "no_auth": True}, 401, "API key"),
    ("wrong-key", V1, {"json": CHAT, "headers": {"Authorization": "Bearer wrong"}}, 401, "API key"),
    ("key-prefix", V1, {"json": CHAT, "headers": {"Authorization": f"Bearer {KEY[:-1]}"}}, 401, "API key"),
    ("basic-scheme", V1, {"json": CHAT, "headers": {"Authorization": f"Basic {KEY}"}}, 401, "API key"),
    ("non-ascii-key", V1, {"json": CHAT, "headers": {"Authorization": f"Bearer {KEY}é".encode()}}, 401, "API key"),
    ("models-no-key", "/v1/models", {"method": "GET", "no_auth": True}, 401, "API key"),
    ("body-too-large", V1, _raw(" " * 200_000), 413, "--max-upload-mb"),
    (
        "body-chunked-too-large",
        V1,
        {"content": _Chunks(300_000), "headers": {"content-type": "application/json"}},
        413,
        "--max-upload-mb",
    ),
    ("image-too-large", V1, {"json": _with_image(_data_url(BIG))}, 413, "--max-upload-mb"),
    ("pixel-bomb", V1, {"json": _with_image(_data_url(png_header_only(30_000, 30_000)))}, 413, "too large"),
    ("too-many-images", V1, {"json": _with_image(_data_url(NOISY[:100]), n=3)}, 413, "--max-images"),
    ("bad-base64", V1, {"json": _with_image("data:image/png;base64,@@@@")}, 400, "base64"),
    ("not-base64", V1, {"json": _with_image("data:image/png,rawbytes")}, 400, "base64"),
    ("text-mime", V1, {"json": _with_image(_data_url(b"hello", "text/plain"))}, 400, "not an image"),
    ("not-an-image", V1, {"json": _with_image(_data_url(b"hello"))}, 400, "messages"),
    ("http-url", V1, {"json": _with_image("https://example.org/cxr.png")}, 400, "nothing from the network"),
    ("file-traversal", V1, {"json": _with_image("file:///ALLOWED/../../etc/passwd")}, 403, "outside the folders"),
    ("file-encoded-traversal", V1, {"json": _with_image("file:///ALLOWED/%2e%2e/%2e%2e/etc/passwd")}, 403, "outside"),
    ("file-nul", V1, {"json": _with_image("file:///ALLOWED/a%00.png")}, 400, "file path"),
    ("file-relative", V1, {"json": _with_image("file:cxr.png")}, 403, "outside"),
    (
        "prompt-too-long",
        V1,
        {"json": {**CHAT, "messages": [{"role": "user", "content": "x" * 16_001}]}},
        413,
        "--max-prompt-chars",
    ),
    (
        "too-many-parts",
        V1,
        {"json": {**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}] * 257}]}},
        413,
        "content parts",
    ),
    ("too-many-messages", V1, {"json": {**CHAT, "messages": [{"role": "user", "content": "q"}] * 65}}, 422, "messages"),
    ("no-messages", V1, {"json": {**CHAT, "messages": []}}, 422, "messages"),
    ("max-tokens-over", V1, {"json": {**CHAT, "max_tokens": 257}}, 422, "--max-new-tokens"),
    ("max-completion-tokens-over", V1, {"json": {**CHAT, "max_completion_tokens": 10**30}}, 422, "--max-new-tokens"),
    ("max-tokens-zero", V1, {"json": {**CHAT, "max_tokens": 0}}, 422, "max_tokens"),
    ("max-tokens-nan", V1, _raw(json.dumps(CHAT)[:-1] + ', "max_tokens": NaN}'), 422, "max_tokens"),
    ("temperature-nan", V1, _raw(json.dumps(CHAT)[:-1] + ', "temperature": NaN}'), 422, "finite"),
    ("temperature-inf", V1, _raw(json.dumps(CHAT)[:-1] + ', "temperature": Infinity}'), 422, "finite"),
    ("temperature-neg-inf", V1, _raw(json.dumps(CHAT)[:-1] + ', "temperature": -Infinity}'), 422, "finite"),
    ("top-p-nan", V1, _raw(json.dumps(CHAT)[:-1] + ', "top_p": NaN}'), 422, "finite"),
    ("temperature-negative", V1, {"json": {**CHAT, "temperature": -1}}, 422, "temperature"),
    ("seed-too-large", V1, {"json": {**CHAT, "seed": 2**70}}, 422, "seed"),
    ("n-2", V1, {"json": {**CHAT, "n": 2}}, 400, "n must be 1"),
    ("stream", V1, {"json": {**CHAT, "stream": True}}, 400, "streaming is not supported"),
    ("tools", V1, {"json": {**CHAT, "tools": [{"type": "function"}]}}, 400, "tools"),
    ("stop", V1, {"json": {**CHAT, "stop": ["\n"]}}, 400, "stop"),
    ("tool-role", V1, {"json": {**CHAT, "messages": [{"role": "tool", "content": "x"}]}}, 400, "role"),
    (
        "last-is-assistant",
        V1,
        {"json": {**CHAT, "messages": [*CHAT["messages"], {"role": "assistant", "content": "a"}]}},
        400,
        "last message",
    ),
    (
        "image-in-system",
        V1,
        {
            "json": {
                **CHAT,
                "messages": [
                    {"role": "system", "content": [{"type": "image_url", "image_url": {"url": _data_url(NOISY)}}]},
                    *CHAT["messages"],
                ],
            }
        },
        400,
        "user messages only",
    ),
    (
        "audio-part",
        V1,
        {"json": {**CHAT, "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}},
        400,
        "input_audio",
    ),
    ("wrong-model", V1, {"json": {**CHAT, "model": "gpt-4.1"}}, 404, "not served here"),
    ("malformed-json", V1, _raw('{"model": '), 422, "JSON"),
    ("array-body", V1, {"json": [1, 2]}, 422, "field"),
    ("unknown-v1-path", "/v1/completions", {"json": CHAT}, 404, "Not Found"),
    (
        "question-too-long",
        ANSWER,
        {"files": IMAGE_FILE, "data": {"question": "x" * 4_001}},
        413,
        "--max-question-chars",
    ),
    (
        "new-tokens-over",
        ANSWER,
        {"files": IMAGE_FILE, "data": {"question": "q?", "max_new_tokens": "257"}},
        422,
        "--max-new-tokens",
    ),
    (
        "new-tokens-nan",
        ANSWER,
        {"files": IMAGE_FILE, "data": {"question": "q?", "max_new_tokens": "NaN"}},
        422,
        "max_new_tokens",
    ),
]


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[TestClient, ScriptedBackend, Path]]:
    os.environ["DEEPMEDIX_TEST_ATTACK_KEY"] = KEY
    try:
        backend = ScriptedBackend()
        backend.generation.max_new_tokens = 256  # as `serve --max-new-tokens 256`: the most a request may ask for
        app = create_app(
            GroundedAnswerer(backend),
            max_upload_mb=MAX_UPLOAD_MB,
            server_api_key_env="DEEPMEDIX_TEST_ATTACK_KEY",
            allowed_image_dir=[tmp_path],
        )
        yield TestClient(app), backend, tmp_path
    finally:
        del os.environ["DEEPMEDIX_TEST_ATTACK_KEY"]


def test_the_attack_images_are_the_sizes_they_claim() -> None:
    image_limit = MAX_UPLOAD_MB * 2**20
    assert len(NOISY) < image_limit < len(BIG) and len(_data_url(BIG)) < image_limit + 64 * 1024


@pytest.mark.parametrize(
    ("path", "request_args", "status", "words"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS]
)
def test_attacks_get_a_clear_4xx_before_reaching_the_model(
    guarded: tuple[TestClient, ScriptedBackend, Path], path: str, request_args: dict[str, Any], status: int, words: str
) -> None:
    client, backend, allowed = guarded
    args = dict(request_args)
    if isinstance(args.get("json"), dict):  # file URLs name the allowed folder of this test
        args["json"] = json.loads(json.dumps(args["json"]).replace("/ALLOWED", str(allowed)))
    auth = {} if args.pop("no_auth", False) else {"Authorization": f"Bearer {KEY}"}
    args["headers"] = {**auth, **args.get("headers", {})}
    method = args.pop("method", "POST")
    r = client.request(method, path, **args)
    assert r.status_code == status, r.text
    body = r.json()
    message = body["error"]["message"] if path.startswith("/v1/") else body["detail"]
    assert words in message
    assert len(r.content) < 2_000  # the request is not echoed back
    assert backend.calls == 0
    good = client.post(V1, json=CHAT, headers={"Authorization": f"Bearer {KEY}"})
    assert good.status_code == 200 and good.json()["choices"][0]["message"]["content"].endswith(
        "\\boxed{pleural effusion}"
    )

"""A local OpenAI-compatible chat server for tests: ``with fake_openai_server(responder) as base_url: ...``.

``responder(request_json) -> str`` gives the assistant text, or ``(text, finish_reason)`` (raise ``FakeHTTPError`` to
answer with a status code);
a responder that needs to see the requests records them itself. ``FakeOpenAIServer`` also keeps ``.requests``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class FakeHTTPError(Exception):
    def __init__(self, status: int, message: str = "error"):
        super().__init__(message)
        self.status = status


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeOpenAIServer:
    def __init__(self, responder: Callable[[dict[str, Any]], str | tuple[str, str]]):
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.base_url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append(body)
            try:
                reply = self.responder(body)
            except FakeHTTPError as e:
                return JSONResponse({"error": {"message": str(e)}}, status_code=e.status)
            text, finish_reason = reply if isinstance(reply, tuple) else (reply, "stop")
            return JSONResponse(
                {
                    "id": f"chatcmpl-{len(self.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": max(1, len(text.split())), "total_tokens": 0},
                }
            )

        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.time() + 10
        while not self._server.started:
            if time.time() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


@contextmanager
def fake_openai_server(responder: Callable[[dict[str, Any]], str | tuple[str, str]]) -> Iterator[str]:
    """Yields the base URL (ending in ``/v1``) of a running server."""
    server = FakeOpenAIServer(responder)
    try:
        yield server.start()
    finally:
        server.stop()

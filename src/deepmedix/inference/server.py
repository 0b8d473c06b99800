"""The model server (FastAPI): the viewer's HTTP API and the OpenAI chat-completions protocol on one model.

    POST /api/answer          multipart: image (PNG/JPEG/DICOM) or sample=<index>, question or task → answer JSON
    GET  /health              liveness, the model's name and frame, limits, the queue
    GET  /api/samples         samples to pick from (with --samples FILE.jsonl)
    GET  /api/samples/{i}/image   that sample's image as PNG
    GET  /                    the viewer: the X-ray with each step's boxes drawn beside the reasoning
    GET  /v1/models           the served model (OpenAI protocol)
    POST /v1/chat/completions a chat completion (OpenAI protocol, not streamed; see openai_api.py)

Bad input gets a 4xx with a JSON ``{"detail": "..."}`` (``{"error": {"message": ...}}`` on /v1, as OpenAI clients
read it) that says what is wrong; the server goes on serving. Every generation goes through one
:class:`GenerationGate`: one at a time, a bounded wait in line (503 beyond it), a time limit (504), and on SIGTERM
the waiting requests are refused and the one in flight stopped, so the server exits within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import logging
import math
import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepmedix.data.schema import load_samples
from deepmedix.errors import ImageTooLargeError, OptionError
from deepmedix.inference.api import GroundedAnswerer, resolve_prompt
from deepmedix.inference.backends import BackendError, Generation
from deepmedix.inference.gate import GateRefusal, GenerationGate
from deepmedix.inference.images import CXRImage, load_image, probe_size
from deepmedix.inference.openai_api import (
    ApiError,
    ChatCompletionRequest,
    ChatLimits,
    build_generation_request,
    check_request,
    completion_body,
)
from deepmedix.inference.options import ServeOptions
from deepmedix.protocol import LARGEST_NEW_TOKENS, TASK_NEW_TOKENS, user_prompt_template

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
PREVIEW_MAX_SIDE = 1024
MULTIPART_SLACK = 64 * 1024  # form fields and part headers around an upload of the largest allowed size
_ERROR_TYPES = {401: "authentication_error", 404: "not_found_error", 503: "service_unavailable", 504: "timeout"}


def _png_bytes(img: Image.Image, max_side: int | None = None) -> bytes:
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _error_body(path: str, status: int, message: str, param: str | None = None) -> dict[str, Any]:
    if path.startswith("/v1/"):  # the shape OpenAI clients read
        kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        return {"error": {"message": message, "type": kind, "param": param, "code": status}}
    return {"detail": message}


class _BodyLimitAndKey:
    """Before the body is read: a request body over the limit gets 413 (also one sent in chunks without a length),
    and /v1/* without the server's key gets 401.

    Written here because Starlette's body limit answers a declared oversized body in plain text, and a key check as
    a FastAPI dependency would run only after the body has been read and parsed."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, limit_text: str, api_key: bytes | None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limit_text = limit_text
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v for k, v in scope["headers"]}
        if self.api_key is not None and path.startswith("/v1/") and not self._authorized(headers):
            body = _error_body(path, 401, "this server needs its API key: send 'Authorization: Bearer <key>'")
            await JSONResponse(body, 401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        length = headers.get("content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > self.max_body_bytes:
            message = f"request body of {int(length) / 2**20:.1f} MB exceeds the limit of {self.limit_text}"
            await JSONResponse(_error_body(path, 413, message), 413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # An HTTPException from the body reader is passed on by FastAPI to the exception handlers.
                    raise HTTPException(413, f"request body exceeds the limit of {self.limit_text}")
            return message

        await self.app(scope, counted, send)

    def _authorized(self, headers: dict[str, bytes]) -> bool:
        scheme, _, token = headers.get("authorization", b"").partition(b" ")
        assert self.api_key is not None
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key)


def api_key_from_env(options: ServeOptions) -> bytes | None:
    """The key /v1 clients must send, read from the environment variable the options name (None: no key)."""
    if options.server_api_key_env is None:
        return None
    key = os.environ.get(options.server_api_key_env, "")
    if not key.strip():
        raise OptionError(
            f"--server-api-key-env {options.server_api_key_env}: that environment variable is not set or is empty"
        )
    return key.strip().encode("utf-8")


def create_app(answerer: GroundedAnswerer, options: ServeOptions | None = None, **settings: Any) -> FastAPI:
    """The FastAPI application around one answerer. ``options`` (or ``settings``: :class:`ServeOptions` fields)
    give its limits; generation is serialised by a :class:`GenerationGate` (``app.state.gate``)."""
    o = replace(options, **settings) if options is not None else ServeOptions(**settings)
    samples = load_samples(o.samples) if o.samples else []
    backend = answerer.backend
    max_upload_bytes = int(o.max_upload_mb * 1024 * 1024)
    served_name = o.served_model_name or answerer.model_name
    gate = GenerationGate(o.time_limit_s, o.queue_wait_s, o.max_queued)
    started = int(time.time())
    # The most a request may ask for: --max-new-tokens, else the largest task budget.
    new_tokens_limit = backend.generation.max_new_tokens or LARGEST_NEW_TOKENS
    chat_limits = ChatLimits(
        max_new_tokens=new_tokens_limit,
        max_prompt_chars=o.max_prompt_chars,
        max_images=o.max_images,
        max_image_bytes=max_upload_bytes,
        allowed_image_dirs=list(o.allowed_image_dir),
    )
    backend.frame.input_size(512, 512)  # imports the resize rule now, not during the first request

    app = FastAPI(title="deepmedix", description="Grounded chest X-ray answers", version="1")
    app.state.answerer = answerer
    app.state.samples = samples
    app.state.gate = gate
    app.state.options = o
    app.add_middleware(
        _BodyLimitAndKey,
        max_body_bytes=max_upload_bytes + MULTIPART_SLACK,
        limit_text=f"{o.max_upload_mb:g} MB (--max-upload-mb)",
        api_key=api_key_from_env(o),
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields, parts = [], []
        for err in exc.errors():
            field = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            fields.append(field)
            parts.append(f"field '{field}': {err.get('msg', 'invalid')}")
        message = "; ".join(parts) or "invalid request"
        return JSONResponse(_error_body(request.url.path, 422, message, fields[0] if fields else None), 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            _error_body(request.url.path, exc.status_code, str(exc.detail)), exc.status_code, exc.headers
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(request.url.path, exc.status, str(exc), exc.param), exc.status)

    @app.exception_handler(GateRefusal)
    async def refused(request: Request, exc: GateRefusal) -> JSONResponse:
        headers = {"Retry-After": str(math.ceil(exc.retry_after_s))} if exc.retry_after_s else None
        return JSONResponse(_error_body(request.url.path, exc.status, str(exc)), exc.status, headers)

    @app.exception_handler(BackendError)
    async def backend_failed(request: Request, exc: BackendError) -> JSONResponse:
        # The model behind an endpoint failed: not the user's fault, not ours either.
        return JSONResponse(_error_body(request.url.path, 502, f"the model endpoint failed: {exc}"), 502)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    def health() -> dict[str, Any]:
        frame = backend.frame
        return {
            "status": "shutting down" if gate.closing else "ok",
            "model": answerer.model_name,
            "served_model_name": served_name,
            "frame": {"kind": frame.kind, "factor": frame.factor, "max_pixels": frame.max_pixels},
            "samples": len(samples),
            "prompt_template": {
                "name": user_prompt_template(True, answerer.template).name,
                "sha256": user_prompt_template(True, answerer.template).sha256,
            },
            "limits": {
                "max_upload_mb": o.max_upload_mb,
                "max_pixels": o.max_pixels,
                "max_side": o.max_side,
                "max_question_chars": o.max_question_chars,
                "max_prompt_chars": o.max_prompt_chars,
                "max_images": o.max_images,
                "max_new_tokens": new_tokens_limit,
                "task_new_tokens": {task: answerer.budget(task) for task in TASK_NEW_TOKENS},
                "time_limit_s": o.time_limit_s,
                "queue_wait_s": o.queue_wait_s,
                "max_queued": o.max_queued,
            },
            "queue": gate.status(),
        }

    def _sample(index: int) -> Any:
        if not samples:
            raise HTTPException(404, "no samples loaded; start the server with --samples FILE.jsonl")
        if not 0 <= index < len(samples):
            raise HTTPException(404, f"sample {index} does not exist (0..{len(samples) - 1})")
        return samples[index]

    @app.get("/api/samples")
    def list_samples() -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "id": s.id,
                "source": s.source,
                "task": str(s.task),
                "prompt": s.prompt,
                "reference": s.answer,
                "answer_type": str(s.answer_type),
                "reference_boxes": [b.as_list() for b in s.boxes],
            }
            for i, s in enumerate(samples)
        ]

    @app.get("/api/samples/{index}/image")
    def sample_image(index: int) -> Response:
        s = _sample(index)
        try:
            img = load_image(s.images[0].path).image
        except (ValueError, OSError) as e:
            raise HTTPException(500, f"sample {s.id!r}: {e}") from None
        return Response(_png_bytes(img, PREVIEW_MAX_SIDE), media_type="image/png")

    def _check_size(width: int, height: int, name: str) -> None:
        if width > o.max_side or height > o.max_side or width * height > o.max_pixels:
            raise HTTPException(
                413,
                f"{name}: image of {width}×{height} pixels is too large "
                f"(limit {o.max_side} pixels a side and {o.max_pixels / 1e6:g} M pixels in all)",
            )

    def _decode(data: bytes, name: str, field: str = "image") -> CXRImage:
        """An uploaded image, its size checked from the header before any pixel is decoded."""
        if not data:
            raise HTTPException(400, f"{name}: the file is empty")
        try:
            size = probe_size(data)
        except ImageTooLargeError as e:
            raise HTTPException(413, f"{name}: {e}") from None
        if size is not None:
            _check_size(*size, name)
        try:
            loaded = load_image(data, name=name, max_side=o.max_side, max_pixels=o.max_pixels)
        except (ValueError, OSError) as e:
            raise HTTPException(400, f"field '{field}': {e}") from None
        _check_size(loaded.width, loaded.height, name)
        return loaded

    def _new_tokens(asked: int | None) -> int | None:
        limit = new_tokens_limit
        if asked is not None and not 1 <= asked <= limit:
            raise HTTPException(
                422, f"field 'max_new_tokens': {asked} is not between 1 and this server's {limit} (--max-new-tokens)"
            )
        return asked

    @app.post("/api/answer")
    async def answer(
        image: UploadFile | None = File(None),
        sample: int | None = Form(None),
        question: str | None = Form(None),
        task: str | None = Form(None),
        reasoning: bool = Form(True),
        max_new_tokens: int | None = Form(None),
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        task = task or None
        if question is not None and not question.strip():
            raise HTTPException(400, "field 'question': the question is empty")
        if question is not None and len(question) > o.max_question_chars:
            raise HTTPException(
                413,
                f"field 'question': {len(question)} characters, more than this server accepts "
                f"({o.max_question_chars}, --max-question-chars)",
            )
        asked_tokens = _new_tokens(max_new_tokens)
        generation = replace(backend.generation, max_new_tokens=asked_tokens) if asked_tokens else None
        sample_record = None
        if image is not None:
            name = image.filename or "uploaded image"
            data = await image.read(max_upload_bytes + 1)
            if len(data) > max_upload_bytes:
                raise HTTPException(413, f"{name}: upload exceeds the limit of {o.max_upload_mb:g} MB")
            loaded = await run_in_threadpool(_decode, data, name)
        elif sample is not None:
            sample_record = _sample(sample)
            name = Path(sample_record.images[0].path).name
            try:
                loaded = await run_in_threadpool(load_image, sample_record.images[0].path)
            except (ValueError, OSError) as e:
                raise HTTPException(500, f"sample {sample_record.id!r}: {e}") from None
            if question is None and task is None:
                question, task = sample_record.prompt, str(sample_record.task)
        else:
            raise HTTPException(400, "field 'image': upload an image (PNG, JPEG or DICOM) or pick a sample")
        try:
            full_task, prompt = resolve_prompt(task, question)
        except ValueError as e:
            raise HTTPException(400, f"field 'question'/'task': {e}") from None
        t_decoded = time.perf_counter()
        result = await gate.run(
            lambda control: answerer.answer_many(
                [loaded.image], [prompt], [full_task], reasoning, generation=generation, control=control
            )[0]
        )
        t_done = time.perf_counter()
        body = result.to_dict()
        body["timing"] = {
            "decode_s": round(t_decoded - t0, 4),
            "generate_s": round(t_done - t_decoded, 4),
            "total_s": round(t_done - t0, 4),
        }
        body["image_name"] = name
        preview = await run_in_threadpool(_png_bytes, loaded.image, PREVIEW_MAX_SIDE)
        body["image_url"] = "data:image/png;base64," + base64.b64encode(preview).decode("ascii")
        if sample_record is not None:
            body["sample"] = {
                "id": sample_record.id,
                "reference": sample_record.answer,
                "reference_boxes": [b.as_list() for b in sample_record.boxes],
            }
        return body

    # --- OpenAI chat completions -------------------------------------------------------------------------------

    served_names = list(dict.fromkeys([served_name, answerer.model_name]))

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": served_name, "object": "model", "created": started, "owned_by": "deepmedix"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest) -> dict[str, Any]:
        check_request(req, served_names, chat_limits)
        request = await run_in_threadpool(
            build_generation_request,
            req,
            chat_limits,
            lambda data, name: _decode(data, name, "messages").image,
            replace(backend.generation, max_new_tokens=new_tokens_limit),
            answerer.template,
        )
        generated: Generation = await gate.run(lambda control: backend.generate_detailed([request], control)[0])
        return completion_body(
            served_name,
            generated.text,
            generated.finish_reason,
            generated.prompt_tokens,
            generated.completion_tokens,
        )

    return app


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, shutdown_timeout_s: float = 5.0) -> None:
    """Run ``app`` with uvicorn. On SIGTERM or SIGINT: new and waiting requests get 503, the generation in flight
    is stopped at its next token, open connections get ``shutdown_timeout_s`` to finish, and the process exits;
    a second signal of either kind exits at once."""
    import uvicorn

    gate: GenerationGate = app.state.gate

    class Server(uvicorn.Server):
        loop: asyncio.AbstractEventLoop | None = None

        async def startup(self, sockets: Any = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets)

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit and sig == signal.SIGTERM:  # uvicorn forces only on a second SIGINT
                self.force_exit = True
            super().handle_exit(sig, frame)
            if self.loop is not None:  # a signal handler must not take locks: the gate is told on the loop
                self.loop.call_soon_threadsafe(gate.shutdown)

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this address can send images to the model", host)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=None,  # keep the command's logging (uvicorn's own config would replace every handler)
        timeout_graceful_shutdown=shutdown_timeout_s,
    )
    Server(config).run()

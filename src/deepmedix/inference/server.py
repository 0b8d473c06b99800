"""The HTTP API and viewer (FastAPI).

    POST /api/answer          multipart: image (PNG/JPEG/DICOM) or sample=<index>, question or task → answer JSON
    GET  /health              liveness and the model's name and frame
    GET  /api/samples         samples to pick from (with --samples FILE.jsonl)
    GET  /api/samples/{i}/image   that sample's image as PNG
    GET  /                    the viewer: the X-ray with each step's boxes drawn beside the reasoning

Bad input (not an image, a truncated file, an oversized image or upload, an empty question) gets a 4xx with a
JSON ``{"detail": "..."}`` that says what is wrong; the server goes on serving.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from deepmedix.data.schema import load_samples
from deepmedix.errors import ImageTooLargeError
from deepmedix.inference.api import GroundedAnswerer, resolve_prompt
from deepmedix.inference.backends import BackendError
from deepmedix.inference.images import load_image, probe_size

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_PIXELS = 50_000_000  # a large digital CXR is ~3000×3500 (10.5 M): generous, but bounded
DEFAULT_MAX_SIDE = 16_384
PREVIEW_MAX_SIDE = 1024


def _png_bytes(img: Image.Image, max_side: int | None = None) -> bytes:
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def create_app(
    answerer: GroundedAnswerer,
    samples_path: str | Path | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> FastAPI:
    """The FastAPI application around one answerer (generation is serialised: one model, one request at a time)."""
    samples = load_samples(samples_path) if samples_path else []
    max_upload_bytes = int(max_upload_mb * 1024 * 1024)
    generate_lock = threading.Lock()
    answerer.backend.frame.input_size(512, 512)  # imports the resize rule now, not during the first request

    app = FastAPI(title="deepmedix", description="Grounded chest X-ray answers", version="1")
    app.state.answerer = answerer
    app.state.samples = samples

    @app.middleware("http")
    async def limit_upload(request: Request, call_next: Any) -> Any:
        # Refuse an oversized body before it is read, when the client says its length.
        length = request.headers.get("content-length")
        if request.method == "POST" and length and length.isdigit() and int(length) > max_upload_bytes + 64 * 1024:
            return JSONResponse(
                {"detail": f"upload of {int(length) / 1e6:.1f} MB exceeds the limit of {max_upload_mb:g} MB"},
                status_code=413,
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
            parts.append(f"field '{field}': {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=422)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    def health() -> dict[str, Any]:
        frame = answerer.backend.frame
        return {
            "status": "ok",
            "model": answerer.model_name,
            "frame": {"kind": frame.kind, "factor": frame.factor, "max_pixels": frame.max_pixels},
            "samples": len(samples),
            "limits": {"max_upload_mb": max_upload_mb, "max_pixels": max_pixels, "max_side": max_side},
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
        if width > max_side or height > max_side or width * height > max_pixels:
            raise HTTPException(
                413,
                f"{name}: image of {width}×{height} pixels is too large "
                f"(limit {max_side} pixels a side and {max_pixels / 1e6:g} M pixels in all)",
            )

    @app.post("/api/answer")
    def answer(
        image: UploadFile | None = File(None),
        sample: int | None = Form(None),
        question: str | None = Form(None),
        task: str | None = Form(None),
        reasoning: bool = Form(True),
    ) -> dict[str, Any]:
        t0 = time.perf_counter()
        task = task or None
        if question is not None and not question.strip():
            raise HTTPException(400, "field 'question': the question is empty")
        sample_record = None
        if image is not None:
            name = image.filename or "uploaded image"
            data = image.file.read(max_upload_bytes + 1)
            if len(data) > max_upload_bytes:
                raise HTTPException(413, f"{name}: upload exceeds the limit of {max_upload_mb:g} MB")
            if not data:
                raise HTTPException(400, f"{name}: the file is empty")
            try:
                size = probe_size(data)
            except ImageTooLargeError as e:
                raise HTTPException(413, f"{name}: {e}") from None
            if size is not None:
                _check_size(*size, name)
            try:
                loaded = load_image(data, name=name, max_side=max_side, max_pixels=max_pixels)
            except (ValueError, OSError) as e:
                raise HTTPException(400, f"field 'image': {e}") from None
        elif sample is not None:
            sample_record = _sample(sample)
            name = Path(sample_record.images[0].path).name
            try:
                loaded = load_image(sample_record.images[0].path)
            except (ValueError, OSError) as e:
                raise HTTPException(500, f"sample {sample_record.id!r}: {e}") from None
            if question is None and task is None:
                question, task = sample_record.prompt, str(sample_record.task)
        else:
            raise HTTPException(400, "field 'image': upload an image (PNG, JPEG or DICOM) or pick a sample")
        _check_size(loaded.width, loaded.height, name)
        try:
            full_task, prompt = resolve_prompt(task, question)
        except ValueError as e:
            raise HTTPException(400, f"field 'question'/'task': {e}") from None
        t_decoded = time.perf_counter()
        try:
            with generate_lock:
                result = answerer.answer_many([loaded.image], [prompt], [full_task], reasoning)[0]
        except BackendError as e:  # the model behind an endpoint failed: not the user's fault, not ours either
            raise HTTPException(502, f"the model endpoint failed: {e}") from None
        t_done = time.perf_counter()
        body = result.to_dict()
        body["timing"] = {
            "decode_s": round(t_decoded - t0, 4),
            "generate_s": round(t_done - t_decoded, 4),
            "total_s": round(t_done - t0, 4),
        }
        body["image_name"] = name
        body["image_url"] = "data:image/png;base64," + base64.b64encode(
            _png_bytes(loaded.image, PREVIEW_MAX_SIDE)
        ).decode("ascii")
        if sample_record is not None:
            body["sample"] = {
                "id": sample_record.id,
                "reference": sample_record.answer,
                "reference_boxes": [b.as_list() for b in sample_record.boxes],
            }
        return body

    return app


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who can reach this address can send images to the model", host)
    uvicorn.run(app, host=host, port=port, log_level="info")

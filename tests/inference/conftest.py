"""Shared pieces for the inference tests: test doubles of ``Backend`` (scripted, slow), test images, samples, a real
server in a thread."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deepmedix.data.frame import QWEN25_VL_FRAME, ModelFrame
from deepmedix.endpoints import image_data_url
from deepmedix.inference.backends import Backend, Generation, GenerationConfig, GenerationControl, GenerationRequest
from tests.fake_openai import free_port

# A protocol completion with known boxes in the model frame (a 512×512 image is seen at 504×504).
FIXED_COMPLETION = (
    "<think>\nStep 1: the right lower zone [50, 300, 200, 450] is dense.\n"
    "Step 2: the heart [180, 200, 330, 400] and the left apex [300, 40, 450, 160] are normal.\n"
    "Step 3: no other finding.\n</think>\nThe answer is: \\boxed{pleural effusion}"
)


class ScriptedBackend(Backend):
    """Returns a fixed completion (or one per prompt via ``by_prompt``) and records every request. Prompts in
    ``cut_short`` come back as cut off at their budget (``finish_reason`` "length")."""

    def __init__(
        self,
        completion: str = FIXED_COMPLETION,
        frame: ModelFrame = QWEN25_VL_FRAME,
        model_name: str = "scripted",
        by_prompt: dict[str, str] | None = None,
        cut_short: set[str] | None = None,
    ):
        self.completion = completion
        self.frame = frame
        self.model_name = model_name
        self.generation = GenerationConfig()
        self.by_prompt = by_prompt or {}
        self.cut_short = cut_short or set()
        self.requests: list[GenerationRequest] = []
        self.calls = 0

    def generate_detailed(
        self, requests: Sequence[GenerationRequest], control: GenerationControl | None = None
    ) -> list[Generation]:
        generated = super().generate_detailed(requests, control)
        for g, r in zip(generated, requests, strict=True):
            g.finish_reason = "length" if r.prompt in self.cut_short else g.finish_reason or "stop"
        return generated

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        self.calls += 1
        self.requests.extend(requests)
        return [self.by_prompt.get(r.prompt, self.completion) for r in requests]


class SlowBackend(ScriptedBackend):
    """Takes ``seconds`` to answer (or the next of a list, one per call), deterministically. With ``stoppable`` it
    checks the control every 10 ms, as an engine between tokens does; without, it cannot be stopped (an engine busy
    in one long step)."""

    def __init__(self, seconds: float | list[float], stoppable: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.seconds = list(seconds) if isinstance(seconds, list) else [seconds]
        self.stoppable = stoppable
        self.started: list[float] = []
        self.finished: list[tuple[float, str | None]] = []  # (time, why it stopped early or None)

    def generate_detailed(
        self, requests: Sequence[GenerationRequest], control: GenerationControl | None = None
    ) -> list[Generation]:
        self.started.append(time.monotonic())
        end = time.monotonic() + (self.seconds.pop(0) if len(self.seconds) > 1 else self.seconds[0])
        while time.monotonic() < end:
            if self.stoppable and control is not None and control.should_stop():
                self.finished.append((time.monotonic(), control.reason))
                return [Generation("", control.reason) for _ in requests]
            time.sleep(0.01)
        self.finished.append((time.monotonic(), None))
        return [Generation(t, "stop", 3, 5) for t in self.generate(requests)]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn on a free localhost port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    give_up_at = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > give_up_at or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        app.state.gate.shutdown()  # stops a generation still in flight, as SIGTERM does under `deepmedix serve`
        server.should_exit = True
        thread.join(timeout=15)


def grey_image(width: int = 512, height: int = 512, seed: int = 0) -> Image.Image:
    """A chest-X-ray-like grey image: a vertical gradient with noise (mid greys, no saturated colour)."""
    rng = np.random.default_rng(seed)
    base = np.linspace(60, 190, height)[:, None].repeat(width, axis=1)
    arr = np.clip(base + rng.normal(0, 12, (height, width)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, mode="L")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width×height in its header, with almost no pixel data (what an attacker sends)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# A request the tiny model answers with thousands of tokens (greedy: it writes no end-of-text for this one), which
# takes it tens of seconds.
LONG_REQUEST: dict[str, Any] = {
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_data_url(grey_image(512, 512))}},
                {"type": "text", "text": "Is there an effusion?"},
            ],
        }
    ],
    "extra_body": {"deepmedix": {"reasoning": True}},
}


@pytest.fixture
def scripted() -> ScriptedBackend:
    return ScriptedBackend()


def write_samples(folder: Path, n: int = 5, size: tuple[int, int] = (512, 512)) -> Path:
    """n VQA/report samples over generated PNGs, written as a samples JSONL (relative image paths)."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    tasks = ["vqa", "report_findings", "grounding", "report_impression", "vqa"]
    lines = []
    for i in range(n):
        grey_image(*size, seed=i).save(folder / "img" / f"s{i}.png")
        task = tasks[i % len(tasks)]
        rec = {
            "id": f"s{i}",
            "source": "synthetic",
            "split": "test",
            "task": task,
            "images": [{"path": f"img/s{i}.png", "width": size[0], "height": size[1]}],
            "prompt": {
                "vqa": f"Question {i}?",
                "grounding": "Locate the opacity.",
                "report_findings": "Write the FINDINGS section.",
                "report_impression": "Write the IMPRESSION section.",
            }[task],
            "answer": "yes" if task == "vqa" else "Clear lungs.",
            "answer_type": "closed" if task == "vqa" else "open",
            "provenance": {"dataset": "synthetic"},
        }
        if task == "vqa":
            rec["question_type"] = "presence"
        if task == "grounding":
            rec["boxes"] = [{"x_min": 10, "y_min": 20, "x_max": 110, "y_max": 220, "label": "opacity"}]
        lines.append(json.dumps(rec))
    path = folder / "samples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def samples_file(tmp_path: Path) -> Path:
    return write_samples(tmp_path / "data")

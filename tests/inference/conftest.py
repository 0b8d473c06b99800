"""Shared pieces for the inference tests: a scripted backend (a test double of ``Backend``), test images, samples."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmedix.data.frame import QWEN25_VL_FRAME, ModelFrame
from deepmedix.inference.backends import Backend, GenerationConfig, GenerationRequest

# A protocol completion with known boxes in the model frame (a 512×512 image is seen at 504×504).
FIXED_COMPLETION = (
    "<think>\nStep 1: the right lower zone [50, 300, 200, 450] is dense.\n"
    "Step 2: the heart [180, 200, 330, 400] and the left apex [300, 40, 450, 160] are normal.\n"
    "Step 3: no other finding.\n</think>\nThe answer is: \\boxed{pleural effusion}"
)


class ScriptedBackend(Backend):
    """Returns a fixed completion (or one per prompt via ``by_prompt``) and records every request."""

    def __init__(
        self,
        completion: str = FIXED_COMPLETION,
        frame: ModelFrame = QWEN25_VL_FRAME,
        model_name: str = "scripted",
        by_prompt: dict[str, str] | None = None,
    ):
        self.completion = completion
        self.frame = frame
        self.model_name = model_name
        self.generation = GenerationConfig()
        self.by_prompt = by_prompt or {}
        self.requests: list[GenerationRequest] = []
        self.calls = 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        self.calls += 1
        self.requests.extend(requests)
        return [self.by_prompt.get(r.prompt, self.completion) for r in requests]


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

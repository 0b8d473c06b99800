"""Teachers that write a grounded reasoning process for a sample whose answer is known, and an optional verifier.

- ``EndpointTeacher``: any OpenAI-compatible chat model (GPT-4.1 in the paper, or a model served by vLLM) is
  shown the image as the model will see it, the task prompt and the ground truth.
- ``TemplateTeacher``: offline, for the demo and tests. It sees no pixels: it writes fixed sentence templates
  around the sample's reference boxes, or around population-average anatomical zones chosen from the labels of
  the answer text. Its reasoning is well-formed, not clinically informative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image

from deepmedix.data.schema import Sample
from deepmedix.endpoints import image_data_url
from deepmedix.labeler import label_reports
from deepmedix.protocol import format_completion
from deepmedix.training.coldstart.regions import KEYWORD_REGIONS, OBSERVATION_REGIONS, region_box

TEACHER_PROMPT_VERSION = "teacher-v1"
VERIFIER_PROMPT_VERSION = "verifier-v1"

TEACHER_SYSTEM = (
    "You are an expert thoracic radiologist who writes worked examples of grounded chest X-ray interpretation."
)

TEACHER_INSTRUCTIONS = """Task given to the model: {prompt}

Ground-truth answer: {answer}

The image above is exactly what the model sees: {width} x {height} pixels. Write the step-by-step reasoning a \
radiologist would follow to reach exactly this answer from this image. Cite every region you look at as a \
bounding box [x_min, y_min, x_max, y_max] in pixels of this image (0 <= x <= {width}, 0 <= y <= {height}). \
Do not mention that you were given the answer. Reply in exactly this format and nothing else:
<think>
Step 1: ... [x_min, y_min, x_max, y_max] ...
Step 2: ...
</think>
The answer is: \\boxed{{{answer}}}"""

VERIFIER_INSTRUCTIONS = """Task: {prompt}
Reference answer: {answer}
Candidate reasoning (boxes are pixels of the {width} x {height} image above):
{completion}

Does this reasoning contain an obvious error: a box that does not cover the region it describes, a statement \
that contradicts the image, or a conclusion that does not follow? Reply with one word: VALID or INVALID."""


class Teacher(Protocol):
    name: str

    def request(self, sample: Sample, image: Image.Image, frame_size: tuple[int, int], model_boxes: list) -> Any:
        """What is sent for a sample (the cache key is built from it). ``model_boxes``: the sample's reference
        boxes in the model frame, as ``(x0, y0, x1, y1, label)``."""

    def complete(self, requests: list[Any]) -> list[str | Exception]:
        """Completions for a batch of requests."""


@dataclass
class TemplateTeacher:
    """Fixed templates around reference boxes or label-derived anatomical zones (offline; named for what it is)."""

    name: str = "template"

    def request(
        self, sample: Sample, image: Image.Image, frame_size: tuple[int, int], model_boxes: list
    ) -> dict[str, Any]:
        return {
            "prompt": sample.prompt,
            "answer": sample.answer,
            "task": str(sample.task),
            "frame_size": list(frame_size),
            "boxes": [list(b) for b in model_boxes],
        }

    def complete(self, requests: list[dict[str, Any]]) -> list[str | Exception]:
        return [self.write(r) for r in requests]

    def write(self, req: dict[str, Any]) -> str:
        # Short on purpose: one step per cited region, so a small model can learn the protocol in few steps.
        width, height = req["frame_size"]
        steps: list[str] = []
        if req["boxes"]:
            for x0, y0, x1, y1, label in req["boxes"]:
                steps.append(f"{label or 'finding'} [{round(x0)}, {round(y0)}, {round(x1)}, {round(y1)}].")
        else:
            for name in _regions_for(req):
                box = region_box(name, width, height)
                steps.append(f"{name} [{box[0]}, {box[1]}, {box[2]}, {box[3]}].")
        numbered = [f"Step {i}: {s}" for i, s in enumerate(steps, start=1)]
        return format_completion(numbered, req["answer"])


def _regions_for(req: dict[str, Any]) -> list[str]:
    """Regions to cite: from the answer's positive or uncertain observations (reports), from the question's
    keywords (VQA), else both lungs."""
    names: list[str] = []
    if req["task"].startswith("report"):
        labels = label_reports([req["answer"]])[0]
        for obs, value in labels.items():
            if value in (1, -1):
                names.extend(OBSERVATION_REGIONS.get(obs, ()))
    else:
        text = req["prompt"].lower()
        for key, region in KEYWORD_REGIONS:
            if key in text:
                names.append(region)
                break
    if not names:
        names = ["right lung", "left lung"]
    return list(dict.fromkeys(names))[:4]


class EndpointTeacher:
    """A chat model on an OpenAI-compatible endpoint; images are sent resized to the model-input frame so the
    teacher's pixel coordinates are already in the frame the student will cite."""

    def __init__(self, endpoint: Any, name: str | None = None, max_image_side: int | None = None):
        self.endpoint = endpoint
        self.name = name or f"endpoint:{endpoint.config.model}"
        self.max_image_side = max_image_side

    def request(
        self, sample: Sample, image: Image.Image, frame_size: tuple[int, int], model_boxes: list
    ) -> list[dict[str, Any]]:

        width, height = frame_size
        resized = image.convert("RGB").resize((width, height), Image.BICUBIC)
        text = TEACHER_INSTRUCTIONS.format(prompt=sample.prompt, answer=sample.answer, width=width, height=height)
        if model_boxes:  # boxes are part of the ground truth (grounding data): give them to the teacher
            listed = "; ".join(f"{b[4] or 'finding'}: [{', '.join(str(round(v)) for v in b[:4])}]" for b in model_boxes)
            text += f"\n\nReference regions in this image's pixels: {listed}."
        return [
            {"role": "system", "content": TEACHER_SYSTEM},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_data_url(resized)}},
                    {"type": "text", "text": text},
                ],
            },
        ]

    def complete(self, requests: list[list[dict[str, Any]]]) -> list[str | Exception]:
        out: list[str | Exception] = [RuntimeError("not sent")] * len(requests)
        for i, reply in self.endpoint.chat_many(requests, desc="teacher"):
            out[i] = reply if isinstance(reply, Exception) else reply.text
        return out


_VERDICT = re.compile(r"\b(VALID|INVALID)\b")


class EndpointVerifier:
    """A second model (Qwen2.5-VL-32B in the paper) that rejects obviously bad reasoning."""

    def __init__(self, endpoint: Any):
        self.endpoint = endpoint
        self.name = f"verifier:{endpoint.config.model}"

    def request(self, sample: Sample, image: Image.Image, frame_size: tuple[int, int], completion: str) -> Any:

        width, height = frame_size
        resized = image.convert("RGB").resize((width, height), Image.BICUBIC)
        text = VERIFIER_INSTRUCTIONS.format(
            prompt=sample.prompt, answer=sample.answer, width=width, height=height, completion=completion
        )
        return [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_data_url(resized)}},
                    {"type": "text", "text": text},
                ],
            }
        ]

    def judge(self, requests: list[Any]) -> list[bool | None]:
        """True valid, False invalid, None unreadable reply or error (kept out of the data, reported)."""
        out: list[bool | None] = [None] * len(requests)
        for i, reply in self.endpoint.chat_many(requests, desc="verifier"):
            if isinstance(reply, Exception):
                continue
            m = _VERDICT.search(reply.text.upper())
            out[i] = None if m is None else m.group(1) == "VALID"
        return out

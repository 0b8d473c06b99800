"""The coordinate frame, in one place (SPEC §1).

A model cites boxes in the frame of the image *as it sees it*:
- Qwen2.5-VL: absolute pixels of the processor-resized image (sides multiples of 28, pixel count within
  [min_pixels, max_pixels]); the paper capped images at 512×512, so boxes live in at most 504×504.
- Qwen2-VL and Qwen3-VL: a relative 0–1000 grid, whatever the image size.
Datasets give boxes in original pixels and viewers draw on the original, so every conversion goes through here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

BoxXYXY = tuple[float, float, float, float]

# The paper's frame: at most 512×512 pixels reach the model.
PAPER_MAX_PIXELS = 512 * 512
QWEN_MIN_PIXELS = 56 * 56


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = QWEN_MIN_PIXELS, max_pixels: int = PAPER_MAX_PIXELS
) -> tuple[int, int]:
    """Qwen2-VL's resize rule, ``(height, width) -> (resized_height, resized_width)``.

    Delegates to transformers' own implementation so the frame can never drift from the processor's.
    """
    try:  # the PIL module needs no torchvision; the torchvision one is the fallback on older transformers
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize
    except ImportError:  # pragma: no cover - depends on the installed transformers
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as hf_smart_resize

    return hf_smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


@dataclass(frozen=True)
class ModelFrame:
    """How a model family places box coordinates."""

    kind: Literal["resized_pixels", "relative_1000"] = "resized_pixels"
    factor: int = 28  # patch 14 × merge 2 for Qwen2.5-VL; 32 for Qwen3-VL
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = PAPER_MAX_PIXELS

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(W, H) of the image as the model sees it — the frame its boxes are checked against."""
        if self.kind == "relative_1000":
            return (1000, 1000)
        h, w = smart_resize(int(height), int(width), self.factor, self.min_pixels, self.max_pixels)
        return (w, h)

    def pixel_size(self, width: int, height: int) -> tuple[int, int]:
        """(W, H) in pixels that the processor feeds the vision tower (for both kinds)."""
        h, w = smart_resize(int(height), int(width), self.factor, self.min_pixels, self.max_pixels)
        return (w, h)

    def to_model(self, box: Sequence[float], width: int, height: int) -> BoxXYXY:
        """A box in original pixels → the model's frame."""
        mw, mh = self.input_size(width, height)
        # multiply before dividing: the image's own edge (x = width) lands exactly on the frame's edge
        return (box[0] * mw / width, box[1] * mh / height, box[2] * mw / width, box[3] * mh / height)

    def to_original(self, box: Sequence[float], width: int, height: int) -> BoxXYXY:
        """A box in the model's frame → original pixels (what a viewer draws)."""
        mw, mh = self.input_size(width, height)
        return (box[0] * width / mw, box[1] * height / mh, box[2] * width / mw, box[3] * height / mh)


QWEN25_VL_FRAME = ModelFrame("resized_pixels", factor=28)
QWEN3_VL_FRAME = ModelFrame("relative_1000", factor=32)
QWEN2_VL_FRAME = ModelFrame("relative_1000", factor=28)

# Model family → frame. Families are matched by substring of the config's model_type / the hub id.
FRAMES: dict[str, ModelFrame] = {
    "qwen2_5_vl": QWEN25_VL_FRAME,
    "qwen2.5-vl": QWEN25_VL_FRAME,
    "qwen3_vl": QWEN3_VL_FRAME,
    "qwen3-vl": QWEN3_VL_FRAME,
    "qwen2_vl": QWEN2_VL_FRAME,
    "qwen2-vl": QWEN2_VL_FRAME,
}


def frame_for(model_type_or_id: str, max_pixels: int | None = None, min_pixels: int | None = None) -> ModelFrame:
    """The frame of a model family (a config ``model_type`` or a hub id); Qwen2.5-VL's when unknown."""
    key = model_type_or_id.lower()
    frame = QWEN25_VL_FRAME
    for name in sorted(FRAMES, key=len, reverse=True):  # longest first: "qwen2_5_vl" before "qwen2_vl"
        if name in key:
            frame = FRAMES[name]
            break
    if max_pixels is not None or min_pixels is not None:
        frame = ModelFrame(frame.kind, frame.factor, min_pixels or frame.min_pixels, max_pixels or frame.max_pixels)
    return frame


def box_inside(box: Sequence[float], width: float, height: float) -> bool:
    """The validity rule of the reward: 0 ≤ x_min < x_max ≤ W and 0 ≤ y_min < y_max ≤ H (finite numbers)."""
    x0, y0, x1, y1 = box
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return False
    return 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two xyxy boxes (0 for degenerate ones)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0

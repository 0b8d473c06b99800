"""Drawing a grounded answer's boxes on the original X-ray (Pillow).

A radiograph is grey, so boxes use saturated, mutually distinct colours; line width and label size scale with the
image; each label ("1", "2", "2b", ...) names its step and sits on a dark background so it reads on any tissue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from deepmedix.io import atomic_write_bytes

# Saturated colours that stay distinct from each other and from grey (step i uses STEP_COLOURS[i % n]).
STEP_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 40, 40),  # red
    (0, 220, 0),  # green
    (30, 144, 255),  # blue
    (255, 215, 0),  # yellow
    (255, 0, 255),  # magenta
    (0, 230, 230),  # cyan
    (255, 140, 0),  # orange
    (170, 80, 255),  # violet
)
LABEL_BACKGROUND = (0, 0, 0, 200)


def step_colour(step_index: int) -> tuple[int, int, int]:
    return STEP_COLOURS[step_index % len(STEP_COLOURS)]


def line_width(width: int, height: int) -> int:
    """Box outline width: about 0.4 % of the short side, at least 2 px."""
    return max(2, round(min(width, height) / 250))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def box_label(step_index: int, box_index: int) -> str:
    """Step numbers count from 1; a step's second, third ... box gets a letter: "2", "2b", "2c"."""
    suffix = "" if box_index == 0 else chr(ord("a") + min(box_index, 25))
    return f"{step_index + 1}{suffix}"


def _steps_boxes(steps: Sequence[Any]) -> list[list[Sequence[float]]]:
    """Boxes per step from step dicts ({"boxes": ...}) or objects with a ``boxes`` attribute."""
    out = []
    for s in steps:
        boxes = s.get("boxes", []) if isinstance(s, Mapping) else getattr(s, "boxes", [])
        out.append([b for b in boxes if len(b) == 4])
    return out


def draw_overlay(image: Image.Image, steps: Sequence[Any], highlight: int | None = None) -> Image.Image:
    """A copy of ``image`` (RGB) with every step's boxes drawn; boxes are in the image's own (original) pixels.

    ``highlight`` draws that step's boxes thicker (the viewer's hover, reproduced for reports)."""
    base = image.convert("RGB")
    w, h = base.size
    lw = line_width(w, h)
    font_size = max(14, round(min(w, h) / 22))
    font = _font(font_size)
    canvas = base.convert("RGBA")
    labels = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    ldraw = ImageDraw.Draw(labels)
    pad = max(2, font_size // 6)
    for si, boxes in enumerate(_steps_boxes(steps)):
        colour = step_colour(si)
        width = lw * 2 if highlight == si else lw
        for bi, box in enumerate(boxes):
            x0, y0, x1, y1 = (float(v) for v in box)
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            # Clip to the image so a box partly outside is still seen where it overlaps.
            cx0, cy0 = max(0.0, min(x0, w - 1)), max(0.0, min(y0, h - 1))
            cx1, cy1 = max(0.0, min(x1, w - 1)), max(0.0, min(y1, h - 1))
            draw.rectangle((cx0, cy0, cx1, cy1), outline=colour, width=width)
            text = box_label(si, bi)
            tb = ldraw.textbbox((0, 0), text, font=font)
            tw, th = tb[2] - tb[0], tb[3] - tb[1]
            # Above the box's top-left corner, or just inside it when the box touches the top edge.
            lx = min(max(0.0, cx0), max(0.0, w - tw - 2 * pad))
            ly = cy0 - th - 2 * pad if cy0 - th - 2 * pad >= 0 else cy0 + width
            ldraw.rectangle((lx, ly, lx + tw + 2 * pad, ly + th + 2 * pad), fill=LABEL_BACKGROUND)
            ldraw.text(
                (lx + pad - tb[0], ly + pad - tb[1]),
                text,
                font=font,
                fill=colour + (255,),
                stroke_width=1,
                stroke_fill=colour + (255,),
            )  # a stroke in the same colour: bolder digits
    return Image.alpha_composite(canvas, labels).convert("RGB")


def save_overlay(image: Image.Image, steps: Sequence[Any], out: str | Path) -> Path:
    """Draw and write atomically (format from the suffix; PNG recommended)."""
    import io as _io

    out = Path(out)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(out.suffix.lower(), "PNG")
    buf = _io.BytesIO()
    draw_overlay(image, steps).save(buf, format=fmt)
    atomic_write_bytes(out, buf.getvalue())
    return out

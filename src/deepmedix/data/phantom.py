"""Phantom chest radiographs: synthetic grey images with bright round "lesions" at known boxes.

Nothing here is real patient data; the answers are known by construction, so a model trained on them can be checked
(the learning tests of the three training stages, and the demo). The body is drawn in radiological convention: the
patient's right lung is on the image's left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from deepmedix.data.schema import Box, ImageRef, Provenance, Sample, sample_to_json
from deepmedix.errors import DataError, OptionError
from deepmedix.io import atomic_write_bytes, atomic_write_text
from deepmedix.protocol import format_completion

SIDES = ("right", "left")
LEVELS = ("upper", "middle", "lower")
ZONES = tuple(f"{side} {level} zone" for side in SIDES for level in LEVELS)
SAMPLE_KINDS = ("grounding", "presence", "zones", "report")
DEFAULT_KINDS = ("grounding", "presence", "zones")
SIZES = (112, 140, 168, 196, 224)
LICENSE = "CC0-1.0"
SOURCE = "phantom"


def _lung_fields(w: int, h: int) -> dict[str, tuple[float, float, float, float]]:
    """Each lung's ellipse (cx, cy, rx, ry); the patient's right lung on the image's left."""
    ry, rx = 0.34 * h, 0.17 * w
    cy = 0.52 * h
    return {"right": (0.31 * w, cy, rx, ry), "left": (0.69 * w, cy, rx, ry)}


def lung_box(side: str, width: int, height: int) -> list[float]:
    """The box of one lung field ("right" is the image's left), in original pixels."""
    cx, cy, rx, ry = _lung_fields(width, height)[side]
    return [
        max(0.0, math.floor(cx - rx)),
        max(0.0, math.floor(cy - ry)),
        min(float(width), math.ceil(cx + rx)),
        min(float(height), math.ceil(cy + ry)),
    ]


def _zone_center(zone: str, w: int, h: int, rng: np.random.Generator) -> tuple[float, float]:
    side, level = zone.split()[:2]
    cx, cy, rx, ry = _lung_fields(w, h)[side]
    band = {"upper": -0.55, "middle": 0.0, "lower": 0.55}[level]
    return cx + rng.uniform(-0.3, 0.3) * rx, cy + (band + rng.uniform(-0.12, 0.12)) * ry


def draw_phantom(
    w: int, h: int, lesions: Sequence[tuple[float, float, float]], rng: np.random.Generator
) -> Image.Image:
    """A radiograph-like grey image: dark air, brighter body, dark lung fields, bright mediastinum and lesions."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full((h, w), 20.0, dtype=np.float32)
    body = ((xx - w / 2) / (0.46 * w)) ** 2 + ((yy - 0.55 * h) / (0.52 * h)) ** 2 <= 1
    img[body] = 150 + 30 * (yy[body] / h)  # denser towards the abdomen
    for cx, cy, rx, ry in _lung_fields(w, h).values():
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
        img = np.where(inside <= 1, 55 + 35 * inside, img)
    heart = ((xx - 0.53 * w) / (0.13 * w)) ** 2 + ((yy - 0.68 * h) / (0.14 * h)) ** 2 <= 1
    img[heart] = 175
    for cx, cy, r in lesions:
        d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r
        img = np.where(d <= 1, np.maximum(img, 235 - 25 * d), img)
    img += rng.normal(0, 6, size=img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L")


def _lesion_box(cx: float, cy: float, r: float, w: int, h: int) -> list[float]:
    return [
        max(0.0, math.floor(cx - r)),
        max(0.0, math.floor(cy - r)),
        min(float(w), math.ceil(cx + r)),
        min(float(h), math.ceil(cy + r)),
    ]


def _png_bytes(image: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def phantom_reasoning(sample: Sample, model_frame) -> str:
    """A correct grounded completion for a phantom sample, boxes in ``model_frame`` (cold-start data for tests).

    One short step per lesion ("Step 1: right upper zone [x0, y0, x1, y1] shows a round opacity."); a sample
    without boxes cites the lung its question names, as clear.
    """

    w, h = sample.image.width, sample.image.height
    if not (w and h):
        raise DataError(f"sample {sample.id!r}, field 'images': width and height are needed")

    def fmt(box: Sequence[float]) -> str:
        return "[" + ", ".join(str(round(v)) for v in model_frame.to_model(box, w, h)) + "]"

    steps = []
    for i, box in enumerate(sample.boxes, start=1):
        zone = (box.label or "lesion").replace("lesion in the ", "")
        steps.append(f"Step {i}: {zone} {fmt(box.as_list())} shows a round opacity.")
    if not steps:
        side = next((s for s in SIDES if f"{s} lung" in sample.prompt), "right")
        steps.append(f"Step 1: {side} lung {fmt(lung_box(side, w, h))} is clear.")
    return format_completion(steps, sample.answer)


def make_phantom_samples(
    out_dir: str | Path,
    n: int,
    seed: int = 0,
    split: str = "train",
    kinds: Sequence[str] = DEFAULT_KINDS,
    max_lesions: int = 2,
) -> list[Sample]:
    """Write phantom images as PNGs into ``out_dir`` and return ``n`` samples whose answers are known.

    Each image carries 1..``max_lesions`` lesions in distinct zones and yields one sample per kind, in turn:
    ``grounding`` ("Where is the lesion?" → the zone phrase, several joined "a | b"), ``presence`` ("Is there a
    lesion in the left lung?" → yes/no, closed), ``zones`` ("Which zones are affected?" → "a | b", multi),
    ``report`` (a findings sentence, open). Every sample's boxes are all the image's lesions: the regions a reader
    looks at to answer (a presence question is answered "no" by finding the lesions in the other lung).
    Deterministic by ``seed``. The samples are also written to ``out_dir/samples.jsonl`` (image paths relative to
    it); the returned ones hold absolute paths.
    """
    unknown = [k for k in kinds if k not in SAMPLE_KINDS]
    if unknown or not kinds:
        raise OptionError(f"kinds {list(kinds)!r}: each must be one of {SAMPLE_KINDS}")
    if n < 0:
        raise OptionError(f"n must be ≥ 0, got {n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    image_index = 0
    while len(samples) < n:
        side = int(rng.choice(SIZES))
        w, h = side, side
        count = int(rng.integers(1, max_lesions + 1))
        zones = sorted(rng.choice(len(ZONES), size=count, replace=False).tolist())
        zone_names = [ZONES[z] for z in zones]
        lesions = []
        for zone in zone_names:
            cx, cy = _zone_center(zone, w, h, rng)
            lesions.append((cx, cy, float(rng.uniform(0.06, 0.09) * w)))
        image = draw_phantom(w, h, lesions, rng)
        name = f"phantom-{seed}-{split}-{image_index:05d}.png"
        atomic_write_bytes(out_dir / name, _png_bytes(image))
        boxes = [
            Box.from_list(_lesion_box(cx, cy, r, w, h), label=f"lesion in the {z}")
            for (cx, cy, r), z in zip(lesions, zone_names, strict=True)
        ]
        ref = ImageRef(path=str((out_dir / name).resolve()), view="PA", width=w, height=h)
        for kind in kinds:
            if len(samples) >= n:
                break
            sid = f"{SOURCE}-{seed}-{split}-{image_index:05d}-{kind}"
            prov = Provenance(
                dataset="deepmedix phantom",
                file=name,
                record=kind,
                license=LICENSE,
                citation="synthetic image generated by deepmedix.data.phantom",
            )
            common = {
                "id": sid,
                "source": SOURCE,
                "split": split,
                "images": [ref.model_copy()],
                "provenance": prov,
                "patient_id": f"phantom-{seed}-{image_index}",
                "study_id": f"phantom-{seed}-{image_index}",
            }
            if kind == "grounding":
                sample = Sample(
                    task="grounding",
                    prompt="Where is the lesion?",
                    answer=" | ".join(zone_names),
                    answer_type="closed" if count == 1 else "multi",
                    question_type="location",
                    boxes=boxes,
                    **common,
                )
            elif kind == "presence":
                asked = SIDES[int(rng.integers(0, 2))]
                present = any(z.startswith(asked) for z in zone_names)
                sample = Sample(
                    task="vqa",
                    prompt=f"Is there a lesion in the {asked} lung?",
                    answer="yes" if present else "no",
                    answer_type="closed",
                    question_type="presence",
                    # every lesion is evidence: the answer is "no" when all the lesions cited lie in the other lung
                    boxes=boxes,
                    **common,
                )
            elif kind == "zones":
                sample = Sample(
                    task="vqa",
                    prompt="Which zones are affected?",
                    answer=" | ".join(zone_names),
                    answer_type="multi",
                    question_type="location",
                    boxes=boxes,
                    **common,
                )
            else:
                sentences = " ".join(f"There is a round opacity in the {z}." for z in zone_names)
                sample = Sample(
                    task="report_findings",
                    prompt="Write the FINDINGS section of the radiology report for this chest X-ray.",
                    answer=f"{sentences} The heart size is normal.",
                    answer_type="open",
                    boxes=boxes,
                    **common,
                )
            samples.append(sample)
        image_index += 1

    lines = []
    for s in samples:
        portable = s.model_copy(deep=True)
        for img in portable.images:
            img.path = Path(img.path).name
        lines.append(sample_to_json(portable))
    atomic_write_text(out_dir / "samples.jsonl", "".join(line + "\n" for line in lines))
    return samples


__all__ = [
    "DEFAULT_KINDS",
    "SAMPLE_KINDS",
    "ZONES",
    "draw_phantom",
    "lung_box",
    "make_phantom_samples",
    "phantom_reasoning",
]

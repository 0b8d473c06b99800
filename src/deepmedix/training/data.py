"""Samples JSONL → TRL datasets (prompt/completion with an ``images`` column), one construction for all stages.

The prompt comes from :func:`deepmedix.protocol.build_messages` — the same text inference asks — with the protocol
suffix from stage 2 on. The ``images`` column holds file paths that ``datasets`` decodes on access, so a dataset
of hundreds of thousands of radiographs costs almost no memory; images that PIL cannot read as plain 8-bit
grey/RGB (DICOM, 16-bit PNG) are converted once with :func:`deepmedix.data.images.open_image` into a PNG cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from deepmedix.data.frame import ModelFrame
from deepmedix.data.images import image_size, open_image
from deepmedix.data.schema import Sample, Task, check_sample_images, load_numbered_samples, load_samples
from deepmedix.errors import DataError
from deepmedix.io import atomic_open
from deepmedix.protocol import PromptTemplate, build_messages, final_answer, parse_completion

COMPLETION_STAGES = ("sft", "coldstart")


def load_rgb(sample: Sample, frame: ModelFrame):
    """The sample's images as RGB, resized to what the model sees (errors name the sample and the file)."""
    from PIL import Image

    images = []
    for ref in sample.images:
        try:
            cxr = open_image(ref.path)
        except ValueError as e:
            raise DataError(f"sample {sample.id!r}, field 'images': {e}") from None
        w, h = frame.pixel_size(cxr.width, cxr.height)
        image = cxr.rgb()
        if image.size != (w, h):
            image = image.resize((w, h), Image.Resampling.BICUBIC)
        images.append(image)
    return images


def image_source(path: str | Path, cache_dir: Path, sample_id: str) -> str:
    """A path PIL decodes correctly: the file itself when it is an 8-bit PNG/JPEG, else a converted PNG copy."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            if img.format in ("PNG", "JPEG") and img.mode in ("L", "RGB"):
                return str(path)
    except FileNotFoundError:
        raise DataError(f"sample {sample_id!r}, field 'images': {path}: no such image file") from None
    except UnidentifiedImageError:
        pass  # DICOM and friends: converted below
    target = cache_dir / f"{hashlib.sha1(str(path.resolve()).encode()).hexdigest()}.png"
    if not target.is_file():
        try:
            cxr = open_image(path)
        except ValueError as e:
            raise DataError(f"sample {sample_id!r}, field 'images': {e}") from None
        cache_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(target, "wb", encoding=None) as fh:
            cxr.image.save(fh, format="PNG")
    return str(target)


def _image_size(sample: Sample, index: int = 0) -> tuple[int, int]:
    ref = sample.images[index]
    if ref.width and ref.height:
        return ref.width, ref.height

    return image_size(ref.path)


def localized_answer(answer: str, model_boxes: list[list[float]]) -> str:
    """A stage-1 grounding target: the answer, then its reference boxes in the model's frame (whole pixels).

    The paper's stage 1 includes localized interpretation (MS-CXR phrase ↔ box): the model learns to answer a
    grounding question with the region, not the label alone. E.g. ``right upper zone [30, 12, 48, 30]``.
    """
    boxes = " ".join("[" + ", ".join(str(round(v)) for v in box) + "]" for box in model_boxes)
    return f"{answer} {boxes}" if boxes else answer


def sample_row(
    sample: Sample,
    stage: str,
    frame: ModelFrame,
    reasoning: bool,
    image_cache: Path,
    template: PromptTemplate | None = None,
) -> dict[str, Any]:
    """One training row. SFT stages get a ``completion``; GRPO gets the reward's columns instead.

    ``answer`` is the final answer (for a cold-start sample, the one inside its ``\\boxed{}``); ``image_size`` and
    ``reference_boxes`` are in the model's frame, which is where the model writes its boxes. A stage-1 grounding
    sample's completion holds its reference boxes too (:func:`localized_answer`).
    """
    width, height = _image_size(sample)
    protocol = parse_completion(sample.answer)
    if stage == "coldstart" and not protocol.format_valid:
        raise DataError(
            f"sample {sample.id!r}, field 'answer': a cold-start sample must hold a full protocol completion "
            "(<think>…</think> then \\boxed{…})"
        )
    answer = final_answer(sample.answer) if "\\boxed{" in sample.answer else sample.answer
    row: dict[str, Any] = {
        "id": sample.id,
        "prompt": build_messages(sample.prompt, reasoning=reasoning, n_images=len(sample.images), template=template),
        "images": [{"path": image_source(ref.path, image_cache, sample.id), "bytes": None} for ref in sample.images],
        "answer": answer,
        "answer_type": sample.answer_type.value,
        "task": sample.task.value,
        "image_size": list(frame.input_size(width, height)),
        "reference_boxes": [list(frame.to_model(b.as_list(), width, height)) for b in sample.boxes],
    }
    if stage in COMPLETION_STAGES:
        if stage == "coldstart":
            text = sample.answer
        elif sample.task == Task.GROUNDING:
            text = localized_answer(answer, row["reference_boxes"])
        else:
            text = answer
        row["completion"] = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    return row


def check_training_data(data: str | Path) -> None:
    """The training samples and their images are usable: checked before any model is loaded, so a bad line or a
    missing image fails at once, naming the file, the line and the field."""
    path = Path(data)
    numbered = load_numbered_samples(path)
    if not numbered:
        raise DataError(f"training data {path}: no samples (the file is empty)")
    check_sample_images(path, numbered)


def build_dataset(
    data: str | Path,
    stage: str,
    frame: ModelFrame,
    reasoning: bool,
    limit: int | None = None,
    repeat: int = 1,
    image_cache: str | Path | None = None,
    template: PromptTemplate | None = None,
):
    """A ``datasets.Dataset`` of training rows from a samples JSONL (images decoded lazily, on access).

    ``image_cache`` is where converted images go (default: ``.image-cache`` beside the data file).
    """
    from datasets import Dataset, Image, List
    from rich.progress import track

    path = Path(data)
    if not path.is_file():
        raise FileNotFoundError(f"training data {path}: no such file")
    samples = load_samples(path)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise DataError(f"training data {path}: no samples")
    cache = Path(image_cache) if image_cache is not None else path.parent / ".image-cache"
    rows = [
        sample_row(s, stage, frame, reasoning, cache, template)
        for s in track(samples, description=f"reading {path.name}", transient=True, disable=len(samples) < 200)
    ]
    if stage != "grpo":
        for r in rows:  # SFT needs neither the reward's columns nor ids (they would reach the collator)
            for key in ("answer", "answer_type", "task", "image_size", "reference_boxes", "id"):
                r.pop(key)
    rows = rows * max(1, int(repeat))
    return Dataset.from_list(rows).cast_column("images", List(Image()))


__all__ = ["build_dataset", "check_training_data", "image_source", "load_rgb", "localized_answer", "sample_row"]

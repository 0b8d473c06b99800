"""The one sample format every part of deepmedix reads and writes (documented in docs/sample-format.md).

A sample is one instruction: an image (or several views), a prompt, and the reference answer with its answer type.
Boxes are always stored in original-image pixels; the model-input frame is derived on demand (see ``frame.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deepmedix.data.enums import AnswerType, Split, Task
from deepmedix.errors import ImageError, SampleFileError
from deepmedix.io import decode_utf8, iter_jsonl_lines, json_kind, parse_json

SCHEMA_VERSION = "1.0"


# Question types of the two VQA sources (SPEC §3); other sources may add their own.
EXT_VQA_QUESTION_TYPES = ("presence", "abnormality", "attribute", "anatomy", "size", "plane", "gender")
CXR_VQA_QUESTION_TYPES = ("presence", "abnormality", "location", "view", "level", "type")


class Box(BaseModel):
    """An axis-aligned box in original-image pixels, with the phrase or finding it grounds."""

    model_config = ConfigDict(extra="forbid")

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    label: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if not (self.x_min < self.x_max and self.y_min < self.y_max):
            raise ValueError(f"box must have x_min < x_max and y_min < y_max, got {self.as_list()}")
        return self

    def as_list(self) -> list[float]:
        return [self.x_min, self.y_min, self.x_max, self.y_max]

    @classmethod
    def from_list(cls, xyxy: Iterable[float], label: str | None = None) -> Box:
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        return cls(x_min=x0, y_min=y0, x_max=x1, y_max=y1, label=label)


class ImageRef(BaseModel):
    """One image of a sample. ``path`` is absolute or relative to the folder of the JSONL file holding the sample."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)
    view: str | None = None  # PA, AP, LATERAL, Frontal, Lateral ... as the source names it
    width: int | None = Field(default=None, gt=0)  # original pixels
    height: int | None = Field(default=None, gt=0)
    pixel_spacing: list[float] | None = None  # mm per pixel (row, column), from DICOM when known


class Provenance(BaseModel):
    """Where a sample came from, so any record can be traced back to its source row."""

    model_config = ConfigDict(extra="allow")

    dataset: str
    file: str | None = None
    record: str | None = None  # row number, JSON index or key in that file
    license: str | None = None
    citation: str | None = None


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    id: str = Field(min_length=1)
    source: str
    split: Split
    task: Task
    images: list[ImageRef] = Field(min_length=1)
    prompt: str = Field(min_length=1)
    answer: str
    answer_type: AnswerType
    question_type: str | None = None
    boxes: list[Box] = Field(default_factory=list)
    patient_id: str | None = None
    study_id: str | None = None
    provenance: Provenance

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: str) -> str:
        if v.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"unsupported schema_version {v!r}; this deepmedix reads {SCHEMA_VERSION}")
        return v

    @property
    def image(self) -> ImageRef:
        """The first (primary) image."""
        return self.images[0]


def parse_sample(line: str | bytes, file: str | Path, lineno: int | None = None) -> Sample:
    """One sample from one JSONL line, checked strictly; a bad line raises :class:`SampleFileError` naming the
    file, the line and the field.

    Strict as JSON is typed: a number is not a string, ``"512"`` is not a size, ``5.5`` is not an integer; NaN,
    Infinity, out-of-range numbers and invalid text are refused by the project's reader first (:func:`parse_json`;
    about 30 µs a line with the validation, three times pydantic's parser alone).
    """
    text = decode_utf8(line, file, SampleFileError, line=lineno) if isinstance(line, bytes) else line
    obj = parse_json(text, file, line=lineno, error=SampleFileError)
    if not isinstance(obj, dict):
        raise SampleFileError(file, f"expected a JSON object (a sample), got {json_kind(obj)}", line=lineno)
    try:
        return Sample.model_validate_json(text, strict=True)  # the checked text: strict JSON typing, enums by value
    except ValidationError as e:
        raise SampleFileError.from_validation(file, e, line=lineno) from None


def iter_numbered_samples(path: str | Path, resolve_images: bool = True) -> Iterator[tuple[int, Sample]]:
    """(line number, sample) of each sample of a JSONL file (see :func:`iter_samples`)."""
    path = Path(path)
    base = path.resolve().parent
    for lineno, raw in iter_jsonl_lines(path):
        sample = parse_sample(raw, path, lineno)
        if resolve_images:
            for img in sample.images:
                if not Path(img.path).is_absolute():
                    img.path = str(base / img.path)
        yield lineno, sample


def iter_samples(path: str | Path, resolve_images: bool = True) -> Iterator[Sample]:
    """Yield the samples of a JSONL file; a bad line raises :class:`SampleFileError` naming file, line and field.

    With ``resolve_images`` relative image paths are made absolute against the file's folder.
    """
    for _, sample in iter_numbered_samples(path, resolve_images):
        yield sample


def load_samples(path: str | Path, resolve_images: bool = True) -> list[Sample]:
    return list(iter_samples(path, resolve_images=resolve_images))


def load_numbered_samples(path: str | Path, resolve_images: bool = True) -> list[tuple[int, Sample]]:
    return list(iter_numbered_samples(path, resolve_images=resolve_images))


def check_sample_images(path: str | Path, numbered: Iterable[tuple[int, Sample]], headers: bool = True) -> None:
    """Every image the samples name exists and (with ``headers``) is an image of acceptable size, read from its
    header only; else :class:`SampleFileError` naming the samples file, the line and the image's field. Commands
    call this before they load a model, so a bad sample fails in a second, not after the model is up."""
    from deepmedix.data.images import image_size  # numpy and PIL: only for the commands that read images

    for lineno, sample in numbered:
        for i, image in enumerate(sample.images):
            where = f"images[{i}].path"
            if not Path(image.path).is_file():
                what = "is a folder, not an image" if Path(image.path).is_dir() else "not found"
                raise SampleFileError(path, f"image {image.path} {what}", line=lineno, field=where)
            if headers:
                try:
                    image_size(image.path)
                except ImageError as e:
                    raise SampleFileError(path, str(e), line=lineno, field=where) from None
                except OSError as e:
                    raise SampleFileError(
                        path, f"image {image.path}: {e.strerror or e}", line=lineno, field=where
                    ) from None


def sample_to_json(sample: Sample) -> str:
    return json.dumps(sample.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


def json_schema() -> dict[str, Any]:
    schema = Sample.model_json_schema()
    schema["$id"] = f"https://deepmedix.org/schema/sample-{SCHEMA_VERSION}.json"
    schema["title"] = f"deepmedix sample (schema_version {SCHEMA_VERSION})"
    return schema

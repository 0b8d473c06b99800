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
from deepmedix.errors import SampleFileError

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

    path: str
    view: str | None = None  # PA, AP, LATERAL, Frontal, Lateral ... as the source names it
    width: int | None = None  # original pixels
    height: int | None = None
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


def _first_error_field(err: ValidationError) -> tuple[str | None, str]:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or None
    return loc, first.get("msg", str(err))


def iter_samples(path: str | Path, resolve_images: bool = True) -> Iterator[Sample]:
    """Yield the samples of a JSONL file; a bad line raises :class:`SampleFileError` naming file, line and field.

    With ``resolve_images`` relative image paths are made absolute against the file's folder.
    """
    path = Path(path)
    base = path.resolve().parent
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise SampleFileError(path, f"not valid JSON ({e.msg})", line=lineno) from None
            try:
                sample = Sample.model_validate(raw)
            except ValidationError as e:
                field, msg = _first_error_field(e)
                raise SampleFileError(path, msg, line=lineno, field=field) from None
            if resolve_images:
                for img in sample.images:
                    if not Path(img.path).is_absolute():
                        img.path = str(base / img.path)
            yield sample


def load_samples(path: str | Path, resolve_images: bool = True) -> list[Sample]:
    return list(iter_samples(path, resolve_images=resolve_images))


def sample_to_json(sample: Sample) -> str:
    return json.dumps(sample.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


def json_schema() -> dict[str, Any]:
    schema = Sample.model_json_schema()
    schema["$id"] = f"https://deepmedix.org/schema/sample-{SCHEMA_VERSION}.json"
    schema["title"] = f"deepmedix sample (schema_version {SCHEMA_VERSION})"
    return schema

"""Prediction lines: the fields evaluation reads, read and checked once, with the answer and boxes to score.

A line is the inference engine's prediction format (or any JSON object with these fields); see docs/evaluation.md.
A malformed line stops the run with one message naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Required, cast

from pydantic import Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic validates a TypedDict from typing only on 3.12+

from deepmedix.data.schema import AnswerType
from deepmedix.errors import DataError, PredictionFileError
from deepmedix.io import iter_jsonl_lines, jsonl_value
from deepmedix.protocol import BOX_PATTERN, final_answer, find_boxes

Box = Annotated[list[float], Field(min_length=4, max_length=4)]  # [x_min, y_min, x_max, y_max], original pixels
Size = Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)]  # [width, height]


class TaskKind(StrEnum):
    """How a line is scored: as a report (any task starting with "report"), a VQA answer, or a grounding line."""

    REPORT = "report"
    VQA = "vqa"
    GROUNDING = "grounding"


class ReasoningStep(TypedDict, total=False):
    text: str
    boxes: list[Box]  # in original pixels
    boxes_model: list[Box]  # as the model wrote them, in its input frame


class PredictionLine(TypedDict, total=False):
    """A prediction line as written: the fields evaluation reads (any others are kept and ignored). Each is checked
    against its type here, strictly as JSON types it (a number is not a string, ``null`` is not a string)."""

    id: Required[str]
    task: Required[str]  # report_findings, report_impression, report, vqa or grounding
    benchmark: str  # the group the line is scored in, else its split
    split: str
    prediction: str  # the answer, or a raw completion (its final answer is scored)
    completion: str
    reference: str  # not needed on grounding lines
    answer_type: AnswerType | None  # None: typed by the authors' rule
    question_type: str | None
    reference_boxes: list[Box] | None
    steps: list[ReasoningStep]  # the reasoning, with its boxes in original pixels
    image_size: Size  # [width, height] of the original image
    model_input_size: Size  # [width, height] the model saw: completion boxes are in this frame
    truncated: bool | None  # the completion hit the generation limit (absent or null: the line does not say)
    finish_reason: str | None  # the engine's "length" (cut off) or "stop"


class PredictionRow(PredictionLine, total=False):
    """A checked line, ready to score: its kind and group, the answer and the boxes it cites (``reference`` is ""
    on a grounding line without one)."""

    kind: Required[TaskKind]
    group: Required[str]
    answer: Required[str]
    pred_boxes: Required[list[Box]]


PREDICTION_LINE = TypeAdapter(PredictionLine)


def task_kind(task: str) -> TaskKind:
    """report_findings / report_impression / report → report; vqa; grounding."""
    t = (task or "").strip().lower()
    if t.startswith(TaskKind.REPORT):
        return TaskKind.REPORT
    if t in (TaskKind.VQA, TaskKind.GROUNDING):
        return TaskKind(t)
    raise DataError(f"unknown task {task!r} (expected report*, vqa or grounding)")


def _predicted_boxes(line: Mapping[str, Any]) -> list[list[float]]:
    """The reasoning's boxes in original pixels: steps[].boxes, else boxes parsed from the completion (rescaled
    from the model frame when both image sizes are given)."""
    steps = line.get("steps")
    if isinstance(steps, list) and steps:
        return [[float(x) for x in b] for s in steps if isinstance(s, dict) for b in (s.get("boxes") or [])]
    completion = line.get("completion")
    if not isinstance(completion, str):
        completion = line.get("prediction")  # a raw completion given as the prediction
    if not isinstance(completion, str):
        return []
    boxes = [list(b) for b in find_boxes(completion)]
    size, model_size = line.get("image_size"), line.get("model_input_size")
    if size and model_size:
        sx, sy = size[0] / model_size[0], size[1] / model_size[1]
        boxes = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes]
    return boxes


def answer_without_boxes(answer: str) -> str:
    """The words of an answer: boxes written in it (a localized answer such as ``right upper zone [30, 12, 48, 30]``)
    are grounding, read by the box metrics from the completion, not part of the answer that is matched."""
    if "[" not in answer:
        return answer
    return " ".join(BOX_PATTERN.sub(" ", answer).split())


def read_prediction_line(raw: bytes, path: Path, lineno: int) -> PredictionRow:
    """One line, checked: JSON (strict), the field types of :class:`PredictionLine`, then what scoring needs.
    A problem raises :class:`PredictionFileError` naming the file, the line and the field."""
    line = jsonl_value(raw, path, lineno, PredictionFileError)
    if not isinstance(line, dict):
        raise PredictionFileError(path, "expected a JSON object", line=lineno)
    try:
        checked = PREDICTION_LINE.validate_json(raw, strict=True)
    except ValidationError as e:
        raise PredictionFileError.from_validation(path, e, line=lineno) from None
    line.update(checked)  # the declared fields as typed (answer_type an AnswerType); other fields kept as they are
    for name in ("id", "task"):
        if not line[name].strip():
            raise PredictionFileError(path, "must not be empty", line=lineno, field=name)
    try:
        kind = task_kind(line["task"])
    except ValueError as e:
        raise PredictionFileError(path, str(e), line=lineno, field="task") from None
    group = line.get("benchmark") or line.get("split")
    if not group or not group.strip():
        raise PredictionFileError(path, "needs a 'benchmark' or a 'split' (the group it is scored in)", line=lineno)
    pred = line.get("prediction", line.get("completion"))
    if pred is None:
        raise PredictionFileError(path, "missing (and no 'completion' either)", line=lineno, field="prediction")
    ref = line.get("reference")
    if kind is not TaskKind.GROUNDING and ref is None:
        raise PredictionFileError(path, "missing", line=lineno, field="reference")
    line["kind"], line["group"] = kind, group.strip()
    line["answer"] = answer_without_boxes(final_answer(pred))
    line["reference"] = ref or ""
    line["pred_boxes"] = _predicted_boxes(line)
    return cast(PredictionRow, line)


def truncation_flag(line: Mapping[str, Any]) -> bool | None:
    """Whether a completion hit the generation limit: its ``truncated`` flag, else its ``finish_reason``
    ("length": yes, "stop": no); None when the line says neither (nothing is inferred from the text)."""
    flag = line.get("truncated")
    if isinstance(flag, bool):
        return flag
    reason = line.get("finish_reason")
    return True if reason == "length" else False if reason == "stop" else None


def load_predictions(path: str | Path) -> list[PredictionRow]:
    """Read and check prediction lines; each gets ``kind``, ``group``, ``answer`` (the final answer) and
    ``pred_boxes``. An empty file is a :class:`PredictionFileError` (nothing to score)."""
    path = Path(path)
    rows = [read_prediction_line(raw, path, lineno) for lineno, raw in iter_jsonl_lines(path)]
    if not rows:
        raise PredictionFileError(path, "no prediction lines (the file is empty)")
    return rows

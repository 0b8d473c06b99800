"""Prediction lines: the fields evaluation reads, read and checked once, with the answer and boxes to score.

A line is the inference engine's prediction format (or any JSON object with these fields); see docs/evaluation.md.
A malformed line stops the run with one message naming the file, the line and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Required, TypedDict, cast

from deepmedix.data.schema import AnswerType
from deepmedix.errors import DataError, PredictionFileError
from deepmedix.io import json_object
from deepmedix.protocol import final_answer, find_boxes

Box = list[float]  # [x_min, y_min, x_max, y_max] in original-image pixels


class TaskKind(StrEnum):
    """How a line is scored: as a report (any task starting with "report"), a VQA answer, or a grounding line."""

    REPORT = "report"
    VQA = "vqa"
    GROUNDING = "grounding"


class ReasoningStep(TypedDict, total=False):
    boxes: list[Box]


class PredictionLine(TypedDict, total=False):
    """A prediction line as written: the fields evaluation reads (any others are kept and ignored)."""

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
    image_size: list[float]  # [width, height] of the original image
    model_input_size: list[float]  # [width, height] the model saw: completion boxes are in this frame
    truncated: bool  # the completion hit the generation limit (absent: the line does not say)
    finish_reason: str | None  # the engine's "length" (cut off) or "stop"


class PredictionRow(PredictionLine, total=False):
    """A checked line, ready to score: its kind and group, the answer and the boxes it cites (``reference`` is ""
    on a grounding line without one)."""

    kind: Required[TaskKind]
    group: Required[str]
    answer: Required[str]
    pred_boxes: Required[list[Box]]


def task_kind(task: str) -> TaskKind:
    """report_findings / report_impression / report → report; vqa; grounding."""
    t = (task or "").strip().lower()
    if t.startswith(TaskKind.REPORT):
        return TaskKind.REPORT
    if t in (TaskKind.VQA, TaskKind.GROUNDING):
        return TaskKind(t)
    raise DataError(f"unknown task {task!r} (expected report*, vqa or grounding)")


def _boxes_field(value: Any, path: Path, line: int, name: str) -> list[Box]:
    if not isinstance(value, list) or not all(
        isinstance(b, list | tuple) and len(b) == 4 and all(isinstance(x, int | float) for x in b) for b in value
    ):
        raise PredictionFileError(path, "must be a list of [x_min, y_min, x_max, y_max]", line=line, field=name)
    return [[float(x) for x in b] for b in value]


def _predicted_boxes(line: Mapping[str, Any]) -> list[Box]:
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


_ANSWER_TYPES = ", ".join(t.value for t in list(AnswerType)[:-1]) + f" or {list(AnswerType)[-1].value}"


def _check_truncation(line: Mapping[str, Any], path: Path, lineno: int) -> None:
    """``truncated`` is true/false when given; ``finish_reason`` a string when given."""
    if line.get("truncated") is not None and not isinstance(line["truncated"], bool):
        raise PredictionFileError(path, "must be true or false", line=lineno, field="truncated")
    if line.get("finish_reason") is not None and not isinstance(line["finish_reason"], str):
        raise PredictionFileError(path, "must be a string", line=lineno, field="finish_reason")


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
    ``pred_boxes``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prediction file not found")
    rows: list[PredictionRow] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                line = json_object(raw, f"{path}, line {lineno}")
            except ValueError as e:
                raise PredictionFileError(path, str(e).split(": ", 1)[1], line=lineno) from None
            for name in ("id", "task"):
                if not isinstance(line.get(name), str) or not line[name].strip():
                    raise PredictionFileError(path, "missing or not a non-empty string", line=lineno, field=name)
            try:
                kind = task_kind(line["task"])
            except ValueError as e:
                raise PredictionFileError(path, str(e), line=lineno, field="task") from None
            group = line.get("benchmark") or line.get("split")
            if not isinstance(group, str) or not group.strip():
                raise PredictionFileError(
                    path, "needs a 'benchmark' or a 'split' (the group it is scored in)", line=lineno
                )
            pred = line.get("prediction")
            if pred is None and isinstance(line.get("completion"), str):
                pred = line["completion"]
            if not isinstance(pred, str):
                raise PredictionFileError(path, "missing or not a string", line=lineno, field="prediction")
            ref = line.get("reference")
            if kind is not TaskKind.GROUNDING and not isinstance(ref, str):
                raise PredictionFileError(path, "missing or not a string", line=lineno, field="reference")
            answer_type = line.get("answer_type")
            if answer_type is not None:
                if answer_type not in tuple(AnswerType):
                    raise PredictionFileError(path, f"must be {_ANSWER_TYPES}", line=lineno, field="answer_type")
                line["answer_type"] = AnswerType(answer_type)
            if "reference_boxes" in line and line["reference_boxes"] is not None:
                line["reference_boxes"] = _boxes_field(line["reference_boxes"], path, lineno, "reference_boxes")
            _check_truncation(line, path, lineno)
            line["kind"], line["group"] = kind, group.strip()
            line["answer"] = final_answer(pred)
            line["reference"] = ref if isinstance(ref, str) else ""
            line["pred_boxes"] = _predicted_boxes(line)
            rows.append(cast(PredictionRow, line))
    if not rows:
        raise PredictionFileError(path, "no prediction lines")
    return rows

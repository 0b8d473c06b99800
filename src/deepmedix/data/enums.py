"""The sample format's closed vocabularies: task, answer type, split. Plain ``StrEnum``s with no dependency, so the
reward and the command line can use them without loading the schema's pydantic models."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    REPORT_FINDINGS = "report_findings"
    REPORT_IMPRESSION = "report_impression"
    VQA = "vqa"
    GROUNDING = "grounding"


class AnswerType(StrEnum):
    CLOSED = "closed"  # one short answer, scored by exact match
    MULTI = "multi"  # a set written "a | b | c", scored by set F1
    OPEN = "open"  # free text (reports, phrases), scored by BLEU/ROUGE


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


__all__ = ["AnswerType", "Split", "Task"]

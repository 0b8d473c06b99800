"""The sample format's closed vocabularies: task, answer type, split. Plain ``StrEnum``s with no dependency, so the
reward and the command line can use them without loading the schema's pydantic models; and the authors' rule that
types an answer from its label."""

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


def guess_answer_type(label: str) -> AnswerType:
    """The authors' released rule for a label whose type no one wrote down (their ``src/reward.py``).

    ``|`` in a label of at most 20 words → multi; at most 2 words → closed; otherwise open. The reward's ``release``
    mode, VQA evaluation and the converters of sources that do not say (XrayBench) all type answers with it.
    """
    words = len(label.strip().split())
    if "|" in label and words <= 20:
        return AnswerType.MULTI
    if words <= 2:
        return AnswerType.CLOSED
    return AnswerType.OPEN


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


__all__ = ["AnswerType", "Split", "Task", "guess_answer_type"]

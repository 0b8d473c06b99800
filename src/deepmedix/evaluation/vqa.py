"""VQA scoring as the paper defines it: exact match for closed questions, set F1 for multi-object ones.

* Normalisation (both sides): strip, lower-case, drop one trailing period.
* ``closed``: 1 if the normalised answers are equal, else 0.
* ``multi``: the reference is a set written ``a | b | c``; the prediction is split on ``|`` (or, when it has no
  ``|``, on commas and semicolons, since models outside this protocol list items that way); score = F1 of the sets.
* ``open``: scored like ``closed`` (normalised exact match). Free-text answers get no partial credit here; the
  report metrics are the place for graded text similarity.
* Overall accuracy = the mean of the per-sample scores; accuracy per question type likewise.
* A line without ``answer_type`` gets one the way the authors' reward guesses it: ``|`` in a label of at most 20
  words → multi; at most 2 words → closed; otherwise open.
* Per-object recall: objects are the items of the multi answers and the closed answers (yes/no excluded: they are
  not objects); recall of an object = the share of samples whose reference holds it whose prediction holds it too.
  The top-10 most frequent reference objects are reported.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Required, TypedDict

from deepmedix.data.schema import AnswerType
from deepmedix.evaluation.metrics import VQAMetrics

# A line without answer_type is typed by the authors' released rule, the one the reward uses.
from deepmedix.rewards.release import guess_answer_type as infer_answer_type

NON_OBJECTS = frozenset({"yes", "no", "none", ""})


class VQAItem(TypedDict, total=False):
    """One answer to score."""

    prediction: Required[str]
    reference: Required[str]
    answer_type: AnswerType | None  # None: typed by the authors' rule
    question_type: str | None


def normalize_answer(text: str | None) -> str:
    text = ("" if text is None else str(text)).strip().lower()
    if text.endswith("."):
        text = text[:-1].rstrip()
    return text


def answer_items(text: str, allow_commas: bool = False) -> set[str]:
    """The set of items of a multi-object answer."""
    parts = text.split("|") if "|" in text or not allow_commas else re.split(r"[,;]", text)
    return {n for n in (normalize_answer(p) for p in parts) if n}


def set_f1(pred: set[str], ref: set[str]) -> float:
    if not pred and not ref:
        return 1.0
    hit = len(pred & ref)
    if hit == 0:
        return 0.0
    p, r = hit / len(pred), hit / len(ref)
    return 2 * p * r / (p + r)


def score_answer(prediction: str, reference: str, answer_type: AnswerType | None) -> float:
    kind = answer_type or infer_answer_type(reference)
    if kind == AnswerType.MULTI:
        return set_f1(answer_items(prediction, allow_commas=True), answer_items(reference))
    return 1.0 if normalize_answer(prediction) == normalize_answer(reference) else 0.0


class VQASampleScore(TypedDict):
    """One answer's score, its types, and each object of its reference with whether the prediction holds it."""

    score: float
    question_type: str
    answer_type: str
    objects: dict[str, bool]


def vqa_sample_scores(rows: Sequence[VQAItem]) -> list[VQASampleScore]:
    """Per answer: the score, the question and answer type, and the reference objects found."""
    out: list[VQASampleScore] = []
    for row in rows:
        pred, ref = str(row.get("prediction") or ""), str(row.get("reference") or "")
        kind = row.get("answer_type") or infer_answer_type(ref)
        objects: dict[str, bool] = {}
        if kind in (AnswerType.MULTI, AnswerType.CLOSED):
            ref_items = answer_items(ref) if kind == AnswerType.MULTI else {normalize_answer(ref)}
            pred_items = answer_items(pred, allow_commas=True) if kind == AnswerType.MULTI else {normalize_answer(pred)}
            objects = {obj: obj in pred_items for obj in ref_items - NON_OBJECTS}
        out.append(
            {
                "score": score_answer(pred, ref, kind),
                "question_type": str(row.get("question_type") or "unspecified"),
                "answer_type": str(kind),
                "objects": objects,
            }
        )
    return out


def vqa_metrics(rows: Sequence[VQAItem], top_objects: int = 10) -> VQAMetrics:
    """Accuracy (the mean per-sample score) and its breakdowns by question type, answer type and object."""
    if not rows:
        return {"n": 0, "accuracy": None}
    return vqa_metrics_from_samples(vqa_sample_scores(rows), top_objects)


def vqa_metrics_from_samples(samples: Sequence[VQASampleScore], top: int = 10) -> VQAMetrics:
    """The VQA metrics of per-sample scores (see :func:`vqa_metrics`)."""
    if not samples:
        return {"n": 0, "accuracy": None}
    scores = [s["score"] for s in samples]
    by_type: dict[str, list[float]] = defaultdict(list)
    by_answer_type: dict[str, list[float]] = defaultdict(list)
    object_total: Counter[str] = Counter()
    object_hit: Counter[str] = Counter()
    for s in samples:
        by_type[s["question_type"]].append(s["score"])
        by_answer_type[s["answer_type"]].append(s["score"])
        for obj, hit in s["objects"].items():
            object_total[obj] += 1
            object_hit[obj] += hit
    objects = [o for o, _ in object_total.most_common(top)]
    recalls = {o: object_hit[o] / object_total[o] for o in objects}
    return {
        "n": len(scores),
        "accuracy": sum(scores) / len(scores),
        "accuracy_by_question_type": {k: sum(v) / len(v) for k, v in sorted(by_type.items())},
        "n_by_question_type": {k: len(v) for k, v in sorted(by_type.items())},
        "accuracy_by_answer_type": {k: sum(v) / len(v) for k, v in sorted(by_answer_type.items())},
        "object_recall": recalls,
        "object_support": {o: object_total[o] for o in objects},
        "mean_object_recall": (sum(recalls.values()) / len(recalls)) if recalls else None,
    }

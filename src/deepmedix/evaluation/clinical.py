"""Clinical-efficacy F1 over the 14 CheXpert observations, from any labeler (CheXbert or the rule labeler).

The convention is f1chexbert's "rrg" mode, the one report-generation papers use: an observation counts as present
when it is labelled positive *or uncertain*; blank and negative are absent. F1 is scikit-learn's, micro and macro
over all 14 observations and over the 5 common ones, with 0 for an observation that is never present on either side
(scikit-learn's default, as in f1chexbert's ``classification_report``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import numpy as np

from deepmedix.labeler import OBSERVATIONS, label_reports

# CheXbert's heads (its label.py CONDITIONS) come in CheXpert's observation order; F1 is computed in this order.
CHEXBERT_OBSERVATIONS: tuple[str, ...] = OBSERVATIONS
FIVE_OBSERVATIONS: tuple[str, ...] = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
FIVE_INDEX = [CHEXBERT_OBSERVATIONS.index(o) for o in CHEXBERT_OBSERVATIONS if o in FIVE_OBSERVATIONS]


class ClinicalScores(TypedDict):
    """Micro/macro F1 over 14 and over 5 observations (None without reports), per-observation F1 and support."""

    micro_f1_14: float | None
    macro_f1_14: float | None
    micro_f1_5: float | None
    macro_f1_5: float | None
    per_observation: dict[str, float]
    support: dict[str, int]  # reference reports in which each observation is present


def binarize_chexbert_classes(classes: np.ndarray) -> np.ndarray:
    """CheXbert head outputs (0 blank, 1 positive, 2 negative, 3 uncertain) → present (1) / absent (0)."""
    classes = np.asarray(classes)
    return ((classes == 1) | (classes == 3)).astype(np.int64)


def binarize_chexpert_dicts(labels: Sequence[Mapping[str, int | None]]) -> np.ndarray:
    """CheXpert-convention label dicts (1 positive, 0 negative, -1 uncertain, None blank) → (n, 14) in CheXbert order.

    Names are matched case-insensitively, so a labeler listing the observations in CheXpert order works as well.
    """
    out = np.zeros((len(labels), len(CHEXBERT_OBSERVATIONS)), dtype=np.int64)
    for row, d in enumerate(labels):
        lowered = {str(k).strip().lower(): v for k, v in d.items()}
        for j, name in enumerate(CHEXBERT_OBSERVATIONS):
            v = lowered.get(name.lower())
            out[row, j] = 1 if v in (1, -1) else 0
    return out


def clinical_f1(reference: np.ndarray, prediction: np.ndarray) -> ClinicalScores:
    """micro/macro F1 over 14 and over 5 observations, plus per-observation F1 and reference support."""
    from sklearn.metrics import f1_score  # scikit-learn takes seconds to import: only when F1 is computed

    ref = np.asarray(reference, dtype=np.int64)
    pred = np.asarray(prediction, dtype=np.int64)
    if ref.shape != pred.shape or ref.ndim != 2 or ref.shape[1] != len(CHEXBERT_OBSERVATIONS):
        raise ValueError(f"label matrices must both be (n, 14); got {ref.shape} and {pred.shape}")
    if len(ref) == 0:
        return {
            "micro_f1_14": None,
            "macro_f1_14": None,
            "micro_f1_5": None,
            "macro_f1_5": None,
            "per_observation": {},
            "support": {},
        }
    per = f1_score(ref, pred, average=None, zero_division=0)
    return {
        "micro_f1_14": float(f1_score(ref, pred, average="micro", zero_division=0)),
        "macro_f1_14": float(f1_score(ref, pred, average="macro", zero_division=0)),
        "micro_f1_5": float(f1_score(ref[:, FIVE_INDEX], pred[:, FIVE_INDEX], average="micro", zero_division=0)),
        "macro_f1_5": float(f1_score(ref[:, FIVE_INDEX], pred[:, FIVE_INDEX], average="macro", zero_division=0)),
        "per_observation": {o: float(f) for o, f in zip(CHEXBERT_OBSERVATIONS, per, strict=True)},
        "support": {o: int(s) for o, s in zip(CHEXBERT_OBSERVATIONS, ref.sum(axis=0), strict=True)},
    }


def rules_labels(predictions: Sequence[str], references: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The rule labeler's present/absent matrices (reference, prediction), each (n, 14) in CheXbert order; each
    distinct text is labelled once."""
    texts = list(predictions) + list(references)
    distinct = list(dict.fromkeys(texts))
    row = {t: i for i, t in enumerate(distinct)}
    matrix = binarize_chexpert_dicts(label_reports(distinct))[[row[t] for t in texts]]
    n = len(predictions)
    return matrix[n:], matrix[:n]


def rules_f1(predictions: Sequence[str], references: Sequence[str]) -> ClinicalScores:
    """F1-CheXpert (rules): the same F1 from the project's rule labeler."""
    return clinical_f1(*rules_labels(predictions, references))

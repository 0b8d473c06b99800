"""The paper's Average and Weighted Average."""

from __future__ import annotations

import pytest

from deepmedix.evaluation.metrics import PAPER_REPORT_METRICS, paper_average, weighted_average

# Table 1, MIMIC-CXR Findings, DeepMedix-R1: BLEU-1..4, METEOR, ROUGE-L, F1-RadGraph, Macro-14, Micro-14, Macro-5,
# Micro-5 — printed Average 0.3230.
TABLE1_ROW = {
    "bleu_1": 0.3402,
    "bleu_2": 0.2149,
    "bleu_3": 0.1479,
    "bleu_4": 0.1059,
    "meteor": 0.2895,
    "rouge_l": 0.3292,
    "f1_radgraph": 0.2387,
    "f1_chexbert_macro_14": 0.3126,
    "f1_chexbert_micro_14": 0.5189,
    "f1_chexbert_macro_5": 0.4821,
    "f1_chexbert_micro_5": 0.5726,
}


def test_average_reproduces_the_paper_row():
    avg, over = paper_average(TABLE1_ROW | {"cider": 0.9})  # CIDEr is not one of the 11
    assert over == list(PAPER_REPORT_METRICS)
    assert round(avg, 4) == 0.3230


def test_average_over_present_metrics_only():
    row = dict(TABLE1_ROW) | {"f1_radgraph": None}
    avg, over = paper_average(row)
    assert "f1_radgraph" not in over and len(over) == 10
    assert avg == pytest.approx((sum(TABLE1_ROW.values()) - 0.2387) / 10)


def test_weighted_average_by_split_size():
    groups = {
        "a/findings": {"n_report": 3, "bleu_1": 0.5, "f1_radgraph": None},
        "b/impression": {"n_report": 1, "bleu_1": 0.1, "f1_radgraph": None},
        "c/vqa": {"n_vqa": 10, "accuracy": 0.9},
    }
    w = weighted_average(groups)
    assert w["bleu_1"] == pytest.approx((3 * 0.5 + 0.1) / 4)
    assert w["n_report"] == 4 and w["groups"] == ["a/findings", "b/impression"]
    assert w["f1_radgraph"] is None and w["average_over"] == ["bleu_1"]

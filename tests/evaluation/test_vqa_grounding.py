"""VQA scoring and grounding metrics on hand-computed cases."""

from __future__ import annotations

import pytest

from deepmedix.evaluation.grounding import grounding_metrics, sample_box_scores
from deepmedix.evaluation.vqa import infer_answer_type, normalize_answer, score_answer, vqa_metrics


def test_normalisation_and_closed_exact_match():
    assert normalize_answer("  Yes. ") == "yes"
    assert normalize_answer("Left lung..") == "left lung."  # only one trailing period goes
    assert score_answer("Yes.", "yes", "closed") == 1.0
    assert score_answer("yes, there is", "yes", "closed") == 0.0
    assert score_answer("Right lower lobe", "right lower lobe.", "open") == 1.0


def test_multi_object_set_f1():
    assert score_answer("effusion | edema", "effusion | atelectasis", "multi") == pytest.approx(0.5)
    assert score_answer("Edema, Effusion", "effusion | edema", "multi") == 1.0  # commas accepted in predictions
    assert score_answer("", "effusion | edema", "multi") == 0.0
    assert score_answer("a | b | c", "a", "multi") == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))


def test_answer_type_guessed_like_the_authors():
    assert infer_answer_type("effusion | edema") == "multi"
    assert infer_answer_type("left lung") == "closed"
    assert infer_answer_type("the heart is enlarged") == "open"


def test_accuracy_per_sample_mean_per_type_and_object_recall():
    rows = [
        {"prediction": "yes", "reference": "yes", "answer_type": "closed", "question_type": "presence"},
        {"prediction": "no", "reference": "yes", "answer_type": "closed", "question_type": "presence"},
        {
            "prediction": "effusion | edema",
            "reference": "effusion | atelectasis",
            "answer_type": "multi",
            "question_type": "abnormality",
        },
        {"prediction": "effusion", "reference": "effusion", "answer_type": "multi", "question_type": "abnormality"},
        {"prediction": "PA", "reference": "pa", "question_type": "view"},  # no answer_type: guessed closed
    ]
    m = vqa_metrics(rows)
    assert m["accuracy"] == pytest.approx((1 + 0 + 0.5 + 1 + 1) / 5)
    assert m["accuracy_by_question_type"] == pytest.approx({"abnormality": 0.75, "presence": 0.5, "view": 1.0})
    # objects: effusion ×2 (found twice), atelectasis ×1 (missed), pa ×1 (found); yes/no are not objects
    assert m["object_recall"] == pytest.approx({"effusion": 1.0, "atelectasis": 0.0, "pa": 1.0})
    assert list(m["object_recall"])[0] == "effusion"  # most frequent first
    assert m["object_support"]["effusion"] == 2
    assert vqa_metrics([]) == {"n": 0, "accuracy": None}


def test_top_objects_limited():
    rows = [
        {"prediction": "", "reference": " | ".join(f"o{i}" for i in range(j + 1)), "answer_type": "multi"}
        for j in range(15)
    ]
    m = vqa_metrics(rows, top_objects=10)
    assert len(m["object_recall"]) == 10 and "o0" in m["object_recall"] and "o14" not in m["object_recall"]


def test_box_matching_at_iou_threshold():
    ref = [[0, 0, 10, 10], [20, 20, 30, 30]]
    pred = [[0, 0, 10, 8], [50, 50, 60, 60], [0, 0, 9, 10]]  # IoU 0.8, 0, 0.9 with the first reference
    s = sample_box_scores(pred, ref, 0.5, (100, 100))
    assert s["pred_hits"] == 2 and s["ref_found"] == 1
    assert s["best_ious"] == pytest.approx([0.9, 0.0])
    m = grounding_metrics(
        [
            {"pred_boxes": pred, "reference_boxes": ref, "image_size": [100, 100]},
            {"pred_boxes": [], "reference_boxes": [[0, 0, 5, 5]], "image_size": [100, 100]},
            {"pred_boxes": [[1, 1, 2, 2]], "reference_boxes": []},
        ]
    )  # no reference: not scored
    assert m["n_grounded"] == 2
    assert m["box_precision"] == pytest.approx(2 / 3)
    assert m["box_recall"] == pytest.approx(1 / 3)
    assert m["mean_best_iou"] == pytest.approx((0.9 + 0 + 0) / 3)
    assert m["samples_without_boxes"] == 1
    stricter = grounding_metrics([{"pred_boxes": pred, "reference_boxes": ref, "image_size": [100, 100]}], 0.85)
    assert stricter["box_precision"] == pytest.approx(1 / 3)


def test_pixel_metrics_like_radfact():
    # prediction covers the left half of the reference box: pixel precision 1, recall 0.5, IoU 0.5
    s = sample_box_scores([[0, 0, 50, 100]], [[0, 0, 100, 100]], 0.5, (100, 100))
    assert s["pixel_precision"] == pytest.approx(1.0)
    assert s["pixel_recall"] == pytest.approx(0.5, abs=0.01)
    assert s["pixel_iou"] == pytest.approx(0.5, abs=0.01)

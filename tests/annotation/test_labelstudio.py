"""Label Studio interop: tasks with pre-annotated step regions and a matching config; its export read back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deepmedix.annotation.create import CreatedReview, create_review
from deepmedix.annotation.labelstudio import export_labelstudio, import_labelstudio, parse_user_map
from deepmedix.annotation.results import results_from_store
from deepmedix.annotation.store import ReviewStore
from tests.annotation.conftest import ANNOTATORS


def choice(name: str, value: str, to: str = "image") -> dict:
    return {"from_name": name, "to_name": to, "type": "choices", "value": {"choices": [value]}}


def test_export_tasks_and_config(review: CreatedReview, tmp_path: Path) -> None:
    tasks_path, config_path, _ = export_labelstudio(review.dir, tmp_path / "ls" / "tasks.json")
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 3
    config = ET.fromstring(config_path.read_text())
    names = {el.get("name") for el in config.iter() if el.get("name")}
    # Three steps at most (model B): per-step relevance/correctness Choices for both sides.
    for side in ("left", "right"):
        for i in (1, 2, 3):
            assert {f"{side}_step_{i}_relevance", f"{side}_step_{i}_correctness", f"{side}_step_{i}"} <= names
        assert f"{side}_completeness" in names
    assert {"grounded_preference", "overall_preference", "image", "regions"} <= names
    labels = {el.get("value") for el in config.iter("Label")}
    for to in (el.get("toName") for el in config.iter() if el.get("toName")):
        assert to in names  # every control points at an object tag that exists
    with ReviewStore(review.dir) as store:
        layout = store.meta()["labelstudio_left_model"]
    for task in tasks:
        data = task["data"]
        for el in config.iter():  # every $field the config reads is in every task
            v = el.get("value") or ""
            if v.startswith("$"):
                assert v[1:] in data, v
        assert data["image"].startswith("/data/local-files/?d=review/images/")
        sid = data["review_sample_id"]
        a_side = "left" if layout[sid] == 0 else "right"
        # Model A's step 1 box [60 + 10i, 80, 140 + 10i, 160] on a 400×300 image, in percent.
        i = int(sid[1:])
        region = next(r for r in task["predictions"][0]["result"] if r["id"] == f"{a_side[0]}1_1")
        assert region["type"] == "rectanglelabels" and region["original_width"] == 400
        v = region["value"]
        assert v["x"] == pytest.approx((60 + 10 * i) / 4) and v["y"] == pytest.approx(80 / 3)
        assert v["width"] == pytest.approx(20.0) and v["height"] == pytest.approx(80 / 3)
        assert v["rectanglelabels"] == [f"{a_side.title()} 1"] and v["rectanglelabels"][0] in labels
        assert data[f"{a_side}_step_3"] == ""  # model A has two steps; the third field is empty


def test_export_project_settings_let_every_rater_get_each_task(
    review: CreatedReview, predictions: tuple[Path, Path], tmp_path: Path
) -> None:
    export = export_labelstudio(review.dir, tmp_path / "ls" / "tasks.json")
    project = json.loads(export.project.read_text())
    assert export.project == tmp_path / "ls" / "tasks.project.json"
    assert project["label_config"] == export.config.read_text()
    # Four annotators each rate every sample ("all"): Label Studio's default of one annotation per task would give
    # each task to a single annotator.
    assert project["maximum_annotations"] == 4
    assert project["show_skip_button"] is False
    assert 3 <= len(project["title"]) <= 50 and "review" in project["title"]
    split = create_review(
        list(predictions),
        ["A", "B"],
        tmp_path / "split-review-with-a-rather-long-folder-name-here",
        ANNOTATORS,
        n_samples=3,
        seed=7,
        within_group="split",
    )
    project = json.loads(export_labelstudio(split.dir, tmp_path / "split.json").project.read_text())
    assert project["maximum_annotations"] == 2  # one annotator per group rates each sample
    assert len(project["title"]) == 50


def test_import_brings_ratings_back_unblinded(review: CreatedReview, tmp_path: Path) -> None:
    tasks_path = export_labelstudio(review.dir, tmp_path / "tasks.json").tasks
    tasks = json.loads(tasks_path.read_text())
    with ReviewStore(review.dir) as store:
        layout = store.meta()["labelstudio_left_model"]
    exported = []
    for n, task in enumerate(tasks):
        result = [
            choice("left_step_1_relevance", "Yes", "left_step_1"),
            choice("left_step_1_correctness", "No", "left_step_1"),
            choice("right_completeness", "Yes", "right_answer"),
            choice("overall_preference", "Right"),
            choice("left_step_3_relevance", "Yes", "left_step_3"),  # exists only where Left has 3 steps
            {"from_name": "regions", "to_name": "image", "type": "rectanglelabels", "value": {}},  # ignored
        ]
        exported.append(
            {
                "id": 100 + n,
                "data": task["data"],
                "annotations": [
                    {"id": 1, "completed_by": 7, "was_cancelled": False, "result": result},  # mapped by --users
                    {"id": 2, "completed_by": {"id": 9, "email": "carol@hospital.org"}, "result": result[:1]},
                    {"id": 3, "completed_by": 7, "was_cancelled": True, "result": result},  # skipped
                ],
            }
        )
    export = tmp_path / "ls_export.json"
    export.write_text(json.dumps(exported))
    summary = import_labelstudio(review.dir, export, parse_user_map("7:alice"))
    n_left3 = sum(1 for t in tasks if layout[t["data"]["review_sample_id"]] == 1)  # model B (3 steps) on the Left
    assert summary == {"ratings": 3 * (4 + 1) + n_left3, "annotations": 9, "skipped": 3}
    with ReviewStore(review.dir) as store:
        rows = store.ratings("alice", "s0")
        carol = store.ratings("carol")
    left = layout["s0"]
    by_key = {(r["dimension"], r["model"], r["step"]): r["value"] for r in rows}
    assert by_key[("relevance", left, 0)] == 1 and by_key[("correctness", left, 0)] == 0
    assert by_key[("completeness", 1 - left, -1)] == 1
    assert by_key[("overall_preference", -1, -1)] == 1 - left  # "Right" un-blinded to the model on the right
    assert all(r["origin"] == "labelstudio" for r in rows)
    assert len(carol) == 3  # the email's local part named the annotator
    res, _, _ = results_from_store(review.dir)
    assert res.groups == ["1", "2"]


def test_import_errors_name_task_and_field(review: CreatedReview, tmp_path: Path) -> None:
    tasks_path = export_labelstudio(review.dir, tmp_path / "tasks.json").tasks
    task = json.loads(tasks_path.read_text())[0]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {
                    "id": 5,
                    "data": task["data"],
                    "annotations": [{"completed_by": 42, "result": [choice("overall_preference", "Left")]}],
                }
            ]
        )
    )
    with pytest.raises(ValueError, match=r"task #1 \(id 5\), annotation #1: user '42'.*--users"):
        import_labelstudio(review.dir, bad)
    bad.write_text(json.dumps([{"id": 6, "data": {"image": "x"}, "annotations": []}]))
    with pytest.raises(ValueError, match="review_sample_id"):
        import_labelstudio(review.dir, bad)
    bad.write_text(
        json.dumps(
            [
                {
                    "id": 7,
                    "data": task["data"],
                    "annotations": [{"completed_by": 1, "result": [choice("overall_preference", "Maybe")]}],
                }
            ]
        )
    )
    with pytest.raises(ValueError, match="overall_preference.*'maybe' is not Left/Right"):
        import_labelstudio(review.dir, bad, {"1": "bob"})
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        import_labelstudio(review.dir, bad)
    with ReviewStore(review.dir) as store:
        assert store.ratings() == []  # nothing half-imported

"""The embedded sample: small, CC0 only, converted into samples with patient-level splits."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from deepmedix.cli import main
from deepmedix.data.bundled import ASSETS, NIH_FINDINGS, load_manifest, prepare_bundled
from deepmedix.data.enums import AnswerType, Task
from deepmedix.data.frame import box_inside
from deepmedix.data.images import open_image
from deepmedix.data.schema import load_samples


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_bundled(tmp_path_factory.mktemp("bundled") / "sample.jsonl")


def test_assets_are_small_and_cc0() -> None:
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total < 5 * 1024 * 1024
    manifest = load_manifest()
    assert {e["dataset"] for e in manifest["images"]} == {"VQA-RAD", "NIH ChestX-ray14"}
    for entry in manifest["images"]:
        assert entry["license"].startswith("CC0")
        assert max(entry["width"], entry["height"]) <= manifest["max_side"]
        assert entry["orig_width"] >= entry["width"] and entry["orig_height"] >= entry["height"]
        img = open_image(ASSETS / entry["file"])
        assert (img.width, img.height) == (entry["width"], entry["height"])
    notice = (Path(__file__).resolve().parents[2] / "NOTICE-data.md").read_text()
    assert "VQA-RAD" in notice and "ChestX-ray14" in notice and "CC0" in notice


def test_bundled_samples(bundled: Path) -> None:
    samples = load_samples(bundled)
    manifest = load_manifest()
    qa = {q["qid"]: q for e in manifest["images"] if e["dataset"] == "VQA-RAD" for q in e["vqa"]}
    vqa_rad = [s for s in samples if s.source == "vqa-rad"]
    assert len(vqa_rad) == len(qa)
    for s in vqa_rad:
        original = qa[int(s.id.split("/")[1])]
        assert s.answer_type == (AnswerType.CLOSED if original["answer_type"] == "CLOSED" else AnswerType.OPEN)
        assert s.question_type == original["question_type"].lower() and s.prompt == original["question"].strip()
    nih = [s for s in samples if s.source == "nih-cxr14"]
    reports = [s for s in nih if s.task in (Task.REPORT_FINDINGS, Task.REPORT_IMPRESSION)]
    assert len(reports) == 2 * sum(e["dataset"] != "VQA-RAD" for e in manifest["images"])
    for s in reports:
        assert (
            "template" in s.provenance.model_extra["note"] and "NOT a radiologist" in s.provenance.model_extra["note"]
        )
    labels = {e["original_id"].rsplit(".", 1)[0]: e["labels"] for e in manifest["images"] if "labels" in e}
    for s in nih:
        positive = [x for x in labels[s.study_id] if x in NIH_FINDINGS]
        if s.question_type == "presence":
            label = s.id.split("presence-")[1]
            assert s.answer == ("yes" if label in {x.lower() for x in positive} else "no")
        if s.task == Task.REPORT_IMPRESSION and not positive:
            assert s.answer == "No acute cardiopulmonary abnormality."
        if s.task == Task.REPORT_IMPRESSION and positive:
            assert positive[0].replace("_", " ").lower() in s.answer.lower()
    grounding = [s for s in samples if s.task == Task.GROUNDING]
    assert len(grounding) >= 12 and {s.split.value for s in grounding} == {"train", "val", "test"}
    for s in grounding:
        assert s.boxes and all(box_inside(b.as_list(), s.images[0].width, s.images[0].height) for b in s.boxes)
    # every image path (written relative) resolves and has the recorded size
    for s in samples[::40]:
        img = open_image(s.images[0].path)
        assert (img.width, img.height) == (s.images[0].width, s.images[0].height)
    first = json.loads(bundled.read_text().splitlines()[0])
    assert not Path(first["images"][0]["path"]).is_absolute()


def test_bundled_splits_are_patient_level_and_deterministic(bundled: Path, tmp_path: Path) -> None:
    samples = load_samples(bundled, resolve_images=False)
    splits = defaultdict(set)
    for s in samples:
        splits[(s.source, s.patient_id)].add(s.split)
    assert all(len(v) == 1 for v in splits.values())
    assert {s.split.value for s in samples if s.source == "vqa-rad"} == {"train", "val", "test"}
    again = tmp_path / "again.jsonl"
    assert main(["prepare", "bundled", "--out", str(again)]) == 0
    assert again.read_text() == bundled.read_text()

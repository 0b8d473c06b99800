from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from deepmedix.data.frame import QWEN25_VL_FRAME
from deepmedix.data.schema import Box, ImageRef, Provenance, Sample, load_samples, sample_to_json
from deepmedix.endpoints import ChatEndpoint, EndpointConfig
from deepmedix.protocol import format_completion, parse_completion
from deepmedix.training.coldstart.filter import check_completion
from deepmedix.training.coldstart.synthesize import synthesize, synthesize_offline
from deepmedix.training.coldstart.teachers import EndpointTeacher, EndpointVerifier
from tests.fake_openai import fake_openai_server


def _write_samples(tmp_path: Path) -> Path:
    img = tmp_path / "cxr.png"
    Image.new("L", (1024, 768), 90).save(img)  # model frame: 588×420 (smart_resize, max 512*512)
    common = {
        "source": "test",
        "split": "train",
        "images": [ImageRef(path=str(img), width=1024, height=768)],
        "provenance": Provenance(dataset="test"),
    }
    samples = [
        Sample(
            id="g1",
            task="grounding",
            prompt="Where is the nodule?",
            answer="right upper zone",
            answer_type="open",
            boxes=[Box(x_min=100, y_min=100, x_max=300, y_max=260, label="nodule")],
            **common,
        ),
        Sample(id="v1", task="vqa", prompt="Is the heart enlarged?", answer="yes", answer_type="closed", **common),
        Sample(
            id="v2",
            task="vqa",
            prompt="Which zones are abnormal?",
            answer="left lung | right lung",
            answer_type="multi",
            **common,
        ),
        Sample(
            id="r1",
            task="report_findings",
            prompt="Write the FINDINGS section.",
            answer="Heart size is enlarged. Small left pleural effusion.",
            answer_type="open",
            **common,
        ),
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(sample_to_json(s) + "\n" for s in samples))
    return path


def test_filter_reasons() -> None:
    good = format_completion(["Step 1: the heart [10, 10, 100, 100] is large."], "yes")
    assert check_completion(good, "Yes.", "closed", (504, 504)).kept
    assert check_completion("yes", "yes", "closed", (504, 504)).reason == "format"
    no_box = format_completion(["Step 1: looks big."], "yes")
    assert check_completion(no_box, "yes", "closed", (504, 504)).reason == "no_box"
    assert check_completion(no_box, "yes", "closed", (504, 504), require_box=False).kept
    outside = format_completion(["Step 1: [10, 10, 600, 100]"], "yes")
    assert check_completion(outside, "yes", "closed", (504, 504)).reason == "box_outside"
    assert check_completion(good, "no", "closed", (504, 504)).reason == "answer_mismatch"
    multi = format_completion(["Step 1: [1, 1, 5, 5]"], "Right lung | left lung")
    assert check_completion(multi, "left lung|right lung", "multi", (504, 504)).kept
    assert check_completion(multi, "left lung", "multi", (504, 504)).reason == "answer_mismatch"


def test_offline_template_teacher_writes_valid_grounded_reasoning(tmp_path: Path) -> None:
    data = _write_samples(tmp_path)
    out = tmp_path / "coldstart.jsonl"
    summary = synthesize_offline(data, out)
    assert summary.total == 4 and summary.kept == 4, summary.to_dict()
    kept = {s.id: s for s in load_samples(out)}
    # the grounding sample's reference box is cited in the model frame (1024×768 → 588×420)
    g = parse_completion(kept["g1"].answer)
    assert g.format_valid and g.answer == "right upper zone"
    w, h = QWEN25_VL_FRAME.input_size(1024, 768)
    expected = QWEN25_VL_FRAME.to_model([100, 100, 300, 260], 1024, 768)
    assert (w, h) == (588, 420)
    assert [round(v) for v in g.boxes[0]] == [round(v) for v in expected]
    # every completion stays inside the model frame and ends in the ground truth
    for sid, s in kept.items():
        p = parse_completion(s.answer)
        assert p.boxes and all(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h for b in p.boxes), sid
        assert s.provenance.model_dump()["coldstart"]["ground_truth"] == p.answer
    summary_file = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary_file["kept"] == 4


def test_endpoint_teacher_caches_filters_and_verifies(tmp_path: Path) -> None:
    data = _write_samples(tmp_path)
    teacher_calls: list[str] = []

    def responder(body: dict) -> str:
        text = body["messages"][-1]["content"][-1]["text"]
        if "Reply with one word" in text:  # the verifier
            return "INVALID" if "Which zones" in text else "VALID"
        teacher_calls.append(text)
        assert body["messages"][-1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert "588 x 420" in text
        if "FINDINGS" in text:
            return "The heart is enlarged."  # not in the protocol: dropped for format
        if "Where is the nodule" in text:
            assert "Reference regions" in text and "nodule: [57, 55, 172, 142]" in text
            return format_completion(["Step 1: nodule [57, 55, 172, 142]."], "left lower zone")  # wrong answer
        truth = "yes" if "heart" in text else "left lung | right lung"
        return format_completion(["Step 1: region [10, 20, 300, 400]."], truth)

    out = tmp_path / "cs.jsonl"
    with fake_openai_server(responder) as url:
        teacher = EndpointTeacher(ChatEndpoint(EndpointConfig(base_url=url, model="teacher", max_retries=0)))
        verifier = EndpointVerifier(ChatEndpoint(EndpointConfig(base_url=url, model="verifier", max_retries=0)))
        first = synthesize(data, out, teacher, verifier=verifier)
        assert len(teacher_calls) == 4
        assert first.kept == 1
        assert dict(first.dropped) == {"format": 1, "answer_mismatch": 1, "verifier_rejected": 1}
        assert [s.id for s in load_samples(out)] == ["v1"]
        dropped = [json.loads(x) for x in out.with_suffix(".dropped.jsonl").read_text().splitlines()]
        assert {d["id"]: d["reason"] for d in dropped} == {
            "r1": "format",
            "g1": "answer_mismatch",
            "v2": "verifier_rejected",
        }
        # a rerun pays for nothing: every teacher reply comes from the cache
        second = synthesize(data, out, teacher, verifier=verifier)
    assert len(teacher_calls) == 4
    assert second.cached == 4 and second.requested == 0 and second.kept == 1


def test_unreadable_image_is_counted_not_fatal(tmp_path: Path) -> None:
    data = _write_samples(tmp_path)
    (tmp_path / "cxr.png").write_bytes(b"not an image")
    summary = synthesize_offline(data, tmp_path / "o.jsonl")
    assert summary.kept == 0 and summary.dropped["image_error"] == 4
    dropped = (tmp_path / "o.dropped.jsonl").read_text()
    assert "cxr.png" in dropped

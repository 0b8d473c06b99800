"""Phantom radiographs: deterministic, lesions where the boxes say, answers consistent with the picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepmedix.data.frame import box_inside, frame_for
from deepmedix.data.phantom import ZONES, make_phantom_samples, phantom_reasoning
from deepmedix.data.schema import load_samples
from deepmedix.protocol import parse_completion


def test_same_seed_same_images_and_samples(tmp_path: Path):
    a = make_phantom_samples(tmp_path / "a", 9, seed=7)
    b = make_phantom_samples(tmp_path / "b", 9, seed=7)
    c = make_phantom_samples(tmp_path / "c", 9, seed=8)
    assert [s.model_dump(exclude={"images"}) for s in a] == [s.model_dump(exclude={"images"}) for s in b]
    png = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert png and all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in png)
    assert [s.answer for s in a] != [s.answer for s in c] or [s.boxes for s in a] != [s.boxes for s in c]


def test_lesions_are_bright_inside_their_boxes(tmp_path: Path):
    samples = make_phantom_samples(tmp_path, 30, seed=1, kinds=("grounding",))
    for s in samples:
        pixels = np.asarray(Image.open(s.image.path), dtype=np.float32)
        assert pixels.shape == (s.image.height, s.image.width)
        for box in s.boxes:
            x0, y0, x1, y1 = (int(v) for v in box.as_list())
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            core = pixels[cy - 2 : cy + 3, cx - 2 : cx + 3].mean()
            assert core > 200, (s.id, core)  # the lesion's centre is bright
        # The lungs outside the lesions are dark.
        assert np.median(pixels) < 180


def test_answers_agree_with_the_lesions(tmp_path: Path):
    samples = make_phantom_samples(tmp_path, 60, seed=2, kinds=("grounding", "presence", "zones", "report"))
    by_image: dict[str, list] = {}
    for s in samples:
        by_image.setdefault(s.image.path, []).append(s)
    for group in by_image.values():
        grounding = next(s for s in group if s.task == "grounding")
        zones = [b.label.replace("lesion in the ", "") for b in grounding.boxes]
        assert all(z in ZONES for z in zones)
        assert grounding.answer == " | ".join(zones)
        assert grounding.answer_type == ("closed" if len(zones) == 1 else "multi")
        for s in group:
            # every question of an image cites the same evidence: all of its lesions
            assert [b.as_list() for b in s.boxes] == [b.as_list() for b in grounding.boxes]
            if s.question_type == "presence":
                side = "left" if "left lung" in s.prompt else "right"
                assert s.answer == ("yes" if any(z.startswith(side) for z in zones) else "no")
                assert s.answer_type == "closed"
            if s.task == "report_findings":
                assert all(z in s.answer for z in zones) and s.answer_type == "open"
        # Radiological convention: the patient's right lung is on the image's left.
        for box, zone in zip(grounding.boxes, zones, strict=True):
            centre_x = (box.x_min + box.x_max) / 2
            assert (centre_x < grounding.image.width / 2) == zone.startswith("right")


def test_sample_file_round_trips_with_relative_paths(tmp_path: Path):
    made = make_phantom_samples(tmp_path, 5, seed=0, split="val")
    assert '"path": "phantom-0-val-00000.png"' in (tmp_path / "samples.jsonl").read_text()
    loaded = load_samples(tmp_path / "samples.jsonl")
    assert [s.id for s in loaded] == [s.id for s in made] and len(loaded) == 5
    assert all(s.split == "val" and Path(s.image.path).is_file() for s in loaded)
    assert all(s.provenance.license == "CC0-1.0" for s in loaded)


def test_phantom_reasoning_is_valid_protocol_in_the_model_frame(tmp_path: Path):
    frame = frame_for("qwen2_5_vl", max_pixels=112 * 112)
    for s in make_phantom_samples(tmp_path, 24, seed=4):
        parsed = parse_completion(phantom_reasoning(s, frame))
        assert parsed.format_valid and parsed.answer == s.answer
        w, h = frame.input_size(s.image.width, s.image.height)
        assert parsed.boxes and all(box_inside(b, w, h) for b in parsed.boxes)
        if s.boxes:  # the cited boxes are the lesions', converted to the model frame
            expected = [
                tuple(round(v) for v in frame.to_model(b.as_list(), s.image.width, s.image.height)) for b in s.boxes
            ]
            assert [tuple(round(v) for v in b) for b in parsed.boxes] == expected


def test_bad_arguments_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="kinds"):
        make_phantom_samples(tmp_path, 3, kinds=("xray",))
    with pytest.raises(ValueError, match="n must be"):
        make_phantom_samples(tmp_path, -1)

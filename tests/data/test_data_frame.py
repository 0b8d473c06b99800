"""The coordinate frame: model-input sizes agree with transformers' processor; boxes survive the round trip."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from deepmedix.data.frame import (
    PAPER_MAX_PIXELS,
    QWEN2_VL_FRAME,
    QWEN3_VL_FRAME,
    QWEN25_VL_FRAME,
    ModelFrame,
    box_inside,
    frame_for,
    iou,
)
from deepmedix.data.images import open_image

# (W, H): square, odd, portrait, landscape, tiny, and sizes of real DICOM-derived images (MIMIC-CXR-JPG, NIH, CR)
SIZES = [
    (512, 512),
    (1024, 1024),
    (333, 517),
    (517, 333),
    (57, 29),
    (2539, 3050),
    (3056, 2544),
    (1767, 2021),
    (2048, 2500),
    (4280, 3520),
    (40, 4000),
    (123, 45),
]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_model_size_is_a_multiple_of_28_within_the_pixel_budget(width: int, height: int) -> None:
    mw, mh = QWEN25_VL_FRAME.input_size(width, height)
    assert mw % 28 == 0 and mh % 28 == 0
    assert QWEN25_VL_FRAME.min_pixels <= mw * mh <= PAPER_MAX_PIXELS
    if max(width, height) / min(width, height) < 10:  # aspect kept to within one patch row/column
        assert abs(mw / mh - width / height) <= 28 / min(mw, mh) * (width / height) + 1e-9


def test_paper_frame_512_square_is_504() -> None:
    assert QWEN25_VL_FRAME.input_size(512, 512) == (504, 504)
    assert frame_for("Qwen/Qwen2.5-VL-7B-Instruct").input_size(512, 512) == (504, 504)


@pytest.mark.parametrize(
    ("width", "height"), [(512, 512), (1024, 1024), (333, 517), (517, 333), (2539, 3050), (1767, 2021), (57, 29)]
)
def test_input_size_equals_transformers_processor(width: int, height: int) -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil(min_pixels=QWEN25_VL_FRAME.min_pixels, max_pixels=PAPER_MAX_PIXELS)
    out = processor(images=[Image.new("RGB", (width, height))], return_tensors="np")
    _, grid_h, grid_w = (int(v) for v in out["image_grid_thw"][0])
    assert QWEN25_VL_FRAME.input_size(width, height) == (grid_w * 14, grid_h * 14)


def test_input_size_with_other_pixel_bounds_equals_processor() -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    frame = frame_for("qwen2_5_vl", max_pixels=12544, min_pixels=3136)
    processor = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12544)
    for width, height in [(512, 512), (300, 700), (1000, 90)]:
        out = processor(images=[Image.new("RGB", (width, height))], return_tensors="np")
        _, grid_h, grid_w = (int(v) for v in out["image_grid_thw"][0])
        assert frame.input_size(width, height) == (grid_w * 14, grid_h * 14)


@pytest.mark.parametrize("frame", [QWEN25_VL_FRAME, QWEN3_VL_FRAME, QWEN2_VL_FRAME], ids=["q25", "q3", "q2"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_round_trip_original_model_original(frame: ModelFrame, width: int, height: int) -> None:
    boxes = [
        (0.0, 0.0, float(width), float(height)),
        (width * 0.1, height * 0.2, width * 0.55, height * 0.9),
        (width / 3, height / 7, width / 2 + 0.5, height / 2 + 0.25),
    ]
    for box in boxes:
        back = frame.to_original(frame.to_model(box, width, height), width, height)
        assert back == pytest.approx(box, rel=1e-12, abs=1e-9)
        model_box = frame.to_model(box, width, height)
        mw, mh = frame.input_size(width, height)
        assert box_inside(model_box, mw, mh)  # a box inside the image stays inside the model frame


def test_full_image_box_maps_to_full_model_frame() -> None:
    assert QWEN25_VL_FRAME.to_model((0, 0, 2539, 3050), 2539, 3050) == pytest.approx(
        (0, 0, *QWEN25_VL_FRAME.input_size(2539, 3050))
    )
    assert QWEN3_VL_FRAME.to_model((0, 0, 333, 517), 333, 517) == pytest.approx((0, 0, 1000, 1000))


def test_dicom_derived_size_round_trip(shared_data: Path) -> None:
    img = open_image(shared_data / "dicom" / "Fake_MONOHR1.dcm")
    mw, mh = QWEN25_VL_FRAME.input_size(img.width, img.height)
    assert (mw, mh) == (504, 504)  # 1024² is resized to the 512² budget, then to multiples of 28
    box = (100.0, 220.0, 480.5, 700.25)
    model_box = QWEN25_VL_FRAME.to_model(box, img.width, img.height)
    assert model_box[0] == pytest.approx(100 * 504 / 1024)
    assert QWEN25_VL_FRAME.to_original(model_box, img.width, img.height) == pytest.approx(box)


def test_extreme_aspect_ratio_is_refused_like_the_processor() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        QWEN25_VL_FRAME.input_size(5, 4000)


def test_box_inside_and_iou_edges() -> None:
    assert box_inside((0, 0, 504, 504), 504, 504)
    assert not box_inside((0, 0, 505, 10), 504, 504)
    assert not box_inside((10, 10, 10, 20), 504, 504)  # empty
    assert not box_inside((math.nan, 0, 1, 1), 504, 504)
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0

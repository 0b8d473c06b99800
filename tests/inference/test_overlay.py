from __future__ import annotations

from pathlib import Path

from PIL import Image

from deepmedix.inference.overlay import STEP_COLOURS, box_label, draw_overlay, line_width, save_overlay
from tests.inference.conftest import grey_image


def _is(c: tuple[int, ...], target: tuple[int, int, int], tol: int = 10) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(c[:3], target, strict=True))


def test_each_step_gets_its_own_saturated_colour_on_the_box_edges() -> None:
    img = grey_image(400, 400)
    steps = [
        {"text": "a", "boxes": [[100, 150, 200, 300]]},
        {"text": "b", "boxes": []},
        {"text": "c", "boxes": [[250, 250, 350, 350]]},
    ]
    out = draw_overlay(img, steps)
    assert out.mode == "RGB" and out.size == img.size
    # Left edge of step 1's box at mid-height, and the bottom edge of step 3's box.
    assert _is(out.getpixel((100, 225)), STEP_COLOURS[0])
    assert _is(out.getpixel((300, 350)), STEP_COLOURS[2])
    # Inside the boxes the X-ray is untouched (still grey: r == g == b).
    r, g, b = out.getpixel((150, 260))
    assert r == g == b
    # Colours are saturated and mutually distinct, so they read on grey.
    for c in STEP_COLOURS:
        assert max(c) - min(c) >= 150
    assert len(set(STEP_COLOURS)) == len(STEP_COLOURS)


def test_labels_sit_on_a_dark_background_above_the_box() -> None:
    img = Image.new("L", (600, 600), 200)  # a bright image: a label must still be readable
    out = draw_overlay(img, [{"boxes": [[200, 300, 400, 500]]}])
    # The label block is just above the box's top-left corner; it is dark with step-1-coloured text in it.
    region = out.crop((195, 250, 260, 299))
    pixels = [region.getpixel((x, y)) for y in range(region.height) for x in range(region.width)]
    dark = sum(1 for p in pixels if max(p) < 70)
    coloured = sum(1 for p in pixels if _is(p, STEP_COLOURS[0], tol=60))
    assert dark > 150  # a solid dark block, not a few anti-aliased pixels
    assert coloured > 20  # the digit itself, in the step's colour
    # Nothing is drawn below the box's bottom edge.
    assert all(out.getpixel((x, 520)) == (200, 200, 200) for x in range(190, 420))
    # Far from any box the image is as it was.
    assert out.getpixel((50, 50)) == (200, 200, 200)


def test_line_width_scales_with_the_image_and_highlight_thickens() -> None:
    assert line_width(2500, 3000) > line_width(512, 512) >= 2
    img = grey_image(1000, 1000)
    thin = draw_overlay(img, [{"boxes": [[200, 200, 800, 800]]}])
    thick = draw_overlay(img, [{"boxes": [[200, 200, 800, 800]]}], highlight=0)

    def edge_thickness(im: Image.Image) -> int:
        return sum(1 for x in range(195, 230) if _is(im.getpixel((x, 500)), STEP_COLOURS[0]))

    assert edge_thickness(thick) > edge_thickness(thin) >= line_width(1000, 1000)


def test_box_partly_outside_is_clipped_and_reversed_corners_are_drawn() -> None:
    img = grey_image(300, 300)
    out = draw_overlay(img, [{"boxes": [[250, 100, 400, 200]]}, {"boxes": [[200, 280, 120, 220]]}])
    assert _is(out.getpixel((299, 150)), STEP_COLOURS[0])  # clipped right edge is at the border
    assert _is(out.getpixel((120, 250)), STEP_COLOURS[1])  # x_min > x_max still draws the box


def test_box_labels_number_steps_and_letter_extra_boxes() -> None:
    assert [box_label(0, 0), box_label(1, 0), box_label(1, 1), box_label(1, 2)] == ["1", "2", "2b", "2c"]


def test_save_overlay_writes_a_png(tmp_path: Path) -> None:
    out = save_overlay(grey_image(256, 256), [{"boxes": [[10, 10, 100, 100]]}], tmp_path / "o" / "x.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (256, 256)
        assert _is(im.convert("RGB").getpixel((10, 50)), STEP_COLOURS[0])

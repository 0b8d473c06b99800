"""``grounded`` mode: the coordinate term rewards overlap with reference boxes; waste and errors earn nothing or lose."""

from __future__ import annotations

import pytest

from deepmedix.rewards import score_completion
from deepmedix.rewards.core import grounded_coordinate

SIZE = (504, 504)
LESION = (100, 100, 200, 200)


def _coordinate(boxes: list[tuple[float, ...]], references: list[tuple[float, ...]], size=SIZE) -> float:
    cited = " ".join(f"[{', '.join(str(v) for v in b)}]" for b in boxes)
    text = f"<think> Step 1: {cited} </think> The answer is: \\boxed{{x}}"
    return score_completion(
        text, "x", "closed", image_size=size, reference_boxes=references, mode="grounded"
    ).coordinate


def test_citing_the_reference_box_exactly_earns_the_full_budget() -> None:
    assert _coordinate([LESION], [LESION]) == pytest.approx(0.15)


def test_partial_overlap_earns_in_proportion_to_iou() -> None:
    shifted = (150, 100, 250, 200)  # half of it on the lesion: IoU = 5000 / 15000
    assert _coordinate([shifted], [LESION]) == pytest.approx(0.15 * (5000 / 15000))
    assert _coordinate([(300, 300, 400, 400)], [LESION]) == 0.0


def test_every_reference_box_counts() -> None:
    right, left = (50, 100, 150, 300), (300, 100, 450, 300)
    assert _coordinate([right], [right, left]) == pytest.approx(0.15 / 2)
    assert _coordinate([left, right], [right, left]) == pytest.approx(0.15)  # matched one to one, any order


def test_extra_boxes_dilute_so_spraying_boxes_does_not_pay() -> None:
    spray = [LESION, (300, 300, 350, 350), (10, 10, 60, 60), (400, 10, 450, 60)]
    assert _coordinate(spray, [LESION]) == pytest.approx(0.15 / 4)
    # the paper's rule would give the same completion the full 0.15 for four valid boxes
    text = "<think> " + " ".join(f"[{b[0]}, {b[1]}, {b[2]}, {b[3]}]" for b in spray) + " </think> \\boxed{x}"
    assert score_completion(text, "x", "closed", image_size=SIZE).coordinate == pytest.approx(0.15)


def test_duplicates_earn_nothing_and_lose() -> None:
    near_copy = (101, 100, 200, 201)  # IoU with LESION ≥ 0.9
    assert _coordinate([LESION, LESION], [LESION]) == pytest.approx(0.15 - 0.05)
    assert _coordinate([LESION, near_copy], [LESION]) == pytest.approx(0.15 - 0.05)


def test_boxes_covering_most_of_the_image_earn_nothing_and_lose() -> None:
    whole = (0, 0, 504, 504)
    big_lesion = (0, 0, 400, 400)  # a reference this big still cannot be cited with a box over half the image
    assert _coordinate([whole], [LESION]) == pytest.approx(-0.05)
    assert _coordinate([whole], [big_lesion]) == pytest.approx(-0.05)


def test_boxes_outside_the_image_lose() -> None:
    assert _coordinate([(0, 0, 600, 100)], [LESION]) == pytest.approx(-0.2)
    assert _coordinate([LESION, (300, 300, 200, 400)], [LESION]) == pytest.approx(0.15 / 1 - 0.2)
    assert _coordinate([(100, 100, 200, 200)], [(100, 100, 200, 200)], size=(150, 150)) == pytest.approx(-0.2)


def test_without_reference_boxes_it_is_the_paper_reward() -> None:
    text = "<think> [1, 2, 3, 4] [5, 6, 700, 8] </think> \\boxed{no}"
    paper = score_completion(text, "no", "closed", image_size=SIZE)
    for refs in (None, []):
        grounded = score_completion(text, "no", "closed", image_size=SIZE, reference_boxes=refs, mode="grounded")
        assert (grounded.answer, grounded.format, grounded.coordinate, grounded.total) == (
            paper.answer,
            paper.format,
            paper.coordinate,
            paper.total,
        )
        assert grounded.details["coordinate_rule"] == "paper"


def test_paper_mode_ignores_reference_boxes() -> None:
    text = "<think> [300, 300, 400, 400] </think> \\boxed{no}"
    s = score_completion(text, "no", "closed", image_size=SIZE, reference_boxes=[LESION])
    assert s.coordinate == pytest.approx(0.05)


def test_details_name_what_was_wasted() -> None:
    value, details = grounded_coordinate([LESION, LESION, (0, 0, 504, 504), (0, 0, 999, 9)], SIZE, [LESION])
    assert details == {"overlap": 1.0, "n_boxes": 4, "n_outside": 1, "n_duplicate": 1, "n_oversized": 1}
    assert value == pytest.approx(0.15 - 0.2 - 0.05 - 0.05)


@pytest.mark.parametrize("refs", [[[1, 2, 3]], [["a", 2, 3, 4]], 5, [[1, 2, 3, float("inf")]]])
def test_malformed_reference_boxes_are_a_clear_error(refs) -> None:
    with pytest.raises(ValueError, match="reference_boxes"):
        score_completion("x", "x", "closed", reference_boxes=refs, mode="grounded")

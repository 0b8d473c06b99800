"""Table 2 statistics on a hand-made set of ratings, with the expected values worked out by hand."""

from __future__ import annotations

import csv
import json
import math

import pytest

from deepmedix.annotation.create import CreatedReview
from deepmedix.annotation.results import compute_results, write_results
from deepmedix.annotation.store import ReviewStore

# (annotator, sample, dimension, model, step, value); groups: alice, bob → "1"; carol, dan → "2".
HAND_MADE = [
    # Relevance. Group 1: model 0 → 1, 1, 0 (2/3); model 1 → 1, 1 (1.0).
    ("alice", "s0", "relevance", 0, 0, 1),
    ("alice", "s0", "relevance", 0, 1, 1),
    ("alice", "s1", "relevance", 0, 0, 0),
    ("alice", "s0", "relevance", 1, 0, 1),
    ("alice", "s1", "relevance", 1, 0, 1),
    # Group 2: model 0 → 1, 0, 0 (1/3); model 1 → 1, 0 (0.5).
    ("carol", "s0", "relevance", 0, 0, 1),
    ("carol", "s0", "relevance", 0, 1, 0),
    ("carol", "s1", "relevance", 0, 0, 0),
    ("carol", "s0", "relevance", 1, 0, 1),
    ("carol", "s1", "relevance", 1, 0, 0),
    # Overall preference (value = preferred model). Group 1: model 1 twice; group 2: model 1 then model 0.
    ("alice", "s0", "overall_preference", -1, -1, 1),
    ("alice", "s1", "overall_preference", -1, -1, 1),
    ("carol", "s0", "overall_preference", -1, -1, 1),
    ("carol", "s1", "overall_preference", -1, -1, 0),
    # Completeness on s0. Group 1's two annotators split on model 0 (a tie: no group label), agree on model 1.
    ("alice", "s0", "completeness", 0, -1, 1),
    ("bob", "s0", "completeness", 0, -1, 0),
    ("alice", "s0", "completeness", 1, -1, 1),
    ("bob", "s0", "completeness", 1, -1, 1),
    ("carol", "s0", "completeness", 0, -1, 1),
    ("carol", "s0", "completeness", 1, -1, 1),
]
MODELS = ["DeepMedix-R1", "Qwen2.5-VL-7B"]


@pytest.fixture
def rated(review: CreatedReview) -> CreatedReview:
    with ReviewStore(review.dir) as store:
        for row in HAND_MADE:
            store.put_rating(*row)
    return review


def test_table2_values_by_hand(rated: CreatedReview) -> None:
    from deepmedix.annotation.results import results_from_store

    res, ratings, models = results_from_store(rated.dir)
    assert models == MODELS and res.groups == ["1", "2"] and len(ratings) == len(HAND_MADE)
    a, b = MODELS
    assert res.value(a, "1", "relevance") == pytest.approx(2 / 3)
    assert res.value(a, "2", "relevance") == pytest.approx(1 / 3)
    assert res.value(a, "Average", "relevance") == pytest.approx(0.5)  # plain mean of the groups
    assert res.value(b, "1", "relevance") == pytest.approx(1.0)
    assert res.value(b, "2", "relevance") == pytest.approx(0.5)
    assert res.value(b, "Average", "relevance") == pytest.approx(0.75)
    # Preference: share of samples preferring the model; the two models' shares add up to 1.
    assert res.value(b, "1", "overall_preference") == pytest.approx(1.0)
    assert res.value(a, "1", "overall_preference") == pytest.approx(0.0)
    assert res.value(b, "2", "overall_preference") == pytest.approx(0.5)
    assert res.value(b, "Average", "overall_preference") == pytest.approx(0.75)
    assert res.value(a, "Average", "overall_preference") == pytest.approx(0.25)
    # Completeness pools the group's annotators: group 1 model 0 → (1 + 0) / 2.
    assert res.value(a, "1", "completeness") == pytest.approx(0.5)
    assert res.value(b, "1", "completeness") == pytest.approx(1.0)
    assert math.isnan(res.value(a, "1", "correctness"))  # nothing rated

    # Relevance agreement over 5 items, labels g1 = 1,1,0,1,1 and g2 = 1,0,0,1,0: 3 of 5 match.
    # κ: p_o = 0.6, p_e = 0.8·0.4 + 0.2·0.6 = 0.44 → (0.6 − 0.44) / 0.56 = 2/7.
    pa, kappa = res.agreement("relevance")
    assert pa == pytest.approx(0.6) and kappa == pytest.approx(2 / 7)
    # Overall preference: s0 agrees, s1 does not; κ: p_o = 0.5, p_e = 1·0.5 + 0·0.5 = 0.5 → 0.
    pa, kappa = res.agreement("overall_preference")
    assert pa == pytest.approx(0.5) and kappa == pytest.approx(0.0)
    # Completeness: model 0 is a tie in group 1 (left out), model 1 agrees; one label only → κ undefined.
    ag = next(x for x in res.agreements if x.dimension == "completeness")
    assert (ag.n_items, ag.n_ties, ag.percent_agreement) == (1, 1, 1.0)
    assert math.isnan(ag.cohen_kappa)


def test_kappa_matches_a_textbook_example() -> None:
    # Two raters, 50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no → p_o = 0.7, p_e = 0.5, κ = 0.4.
    pairs = [(1, 1)] * 20 + [(1, 0)] * 5 + [(0, 1)] * 10 + [(0, 0)] * 15
    ratings = []
    for i, (x, y) in enumerate(pairs):
        ratings.append(
            {
                "annotator": "a",
                "grp": "A",
                "sample_id": f"q{i}",
                "dimension": "completeness",
                "model": 0,
                "step": -1,
                "value": x,
            }
        )
        ratings.append(
            {
                "annotator": "b",
                "grp": "B",
                "sample_id": f"q{i}",
                "dimension": "completeness",
                "model": 0,
                "step": -1,
                "value": y,
            }
        )
    res = compute_results(ratings, ["m", "n"])
    pa, kappa = res.agreement("completeness")
    assert pa == pytest.approx(0.7) and kappa == pytest.approx(0.4)
    assert res.value("m", "A", "completeness") == pytest.approx(25 / 50)
    assert res.value("m", "B", "completeness") == pytest.approx(30 / 50)


def test_results_files(rated: CreatedReview, tmp_path) -> None:
    out = tmp_path / "results"
    write_results(rated.dir, out)
    with (out / "table2.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # 2 models × (2 groups + Average) + Agreement + κ
    assert [r["group"] for r in rows] == ["Group 1", "Group 2", "Average"] * 2 + ["Agreement", "Cohen's κ"]
    avg_b = next(r for r in rows if r["model"] == MODELS[1] and r["group"] == "Average")
    assert avg_b["relevance"] == "0.7500" and avg_b["overall_preference"] == "0.7500"
    assert next(r for r in rows if r["group"] == "Agreement")["relevance"] == "0.6000"
    assert next(r for r in rows if r["group"] == "Cohen's κ")["relevance"] == "0.2857"
    md = (out / "table2.md").read_text()
    assert "| Qwen2.5-VL-7B | Average | 0.7500 |" in md and "Grounded Preference" in md
    png = (out / "review_table2.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    raw = [json.loads(line) for line in (out / "ratings.jsonl").read_text().splitlines()]
    assert len(raw) == len(HAND_MADE)
    pref = next(
        r
        for r in raw
        if r["annotator"] == "carol" and r["sample_id"] == "s1" and r["dimension"] == "overall_preference"
    )
    assert pref["value"] == MODELS[0] and pref["model"] is None  # un-blinded to the model's name
    rel = next(r for r in raw if r["annotator"] == "alice" and r["dimension"] == "relevance" and r["step"] == 2)
    assert (rel["model"], rel["value"]) == (MODELS[0], "yes")  # step 1-based in the export
    assert rel["shown_left"] in MODELS
    with (out / "ratings.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(HAND_MADE)


def test_results_without_ratings_is_a_clear_error(review: CreatedReview, tmp_path) -> None:
    with pytest.raises(ValueError, match="no ratings"):
        write_results(review.dir, tmp_path / "r")

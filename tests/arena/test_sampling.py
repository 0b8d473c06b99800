from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmedix.arena.sampling import PairStats, active_weights, pair_probabilities


def stats_with(outcomes: list[float]) -> PairStats:
    s = PairStats()
    for y in outcomes:
        s.add(y)
    return s


outcome_lists = st.lists(st.sampled_from([0.0, 0.5, 1.0]), max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.lists(outcome_lists, min_size=1, max_size=12), st.sampled_from(["active", "uniform"]), st.data())
def test_probabilities_sum_to_one_and_skip_unavailable_pairs(
    pairs: list[list[float]], method: str, data: st.DataObject
) -> None:
    stats = [stats_with(o) for o in pairs]
    available = np.array(data.draw(st.lists(st.booleans(), min_size=len(stats), max_size=len(stats))))
    if not available.any():
        with pytest.raises(ValueError, match="no pair left"):
            pair_probabilities(stats, method, available)  # type: ignore[arg-type]
        return
    p = pair_probabilities(stats, method, available)  # type: ignore[arg-type]
    assert p.sum() == pytest.approx(1.0)
    assert np.all(p[~available] == 0.0) and np.all(p[available] > 0.0)


def test_active_rule_favours_under_sampled_pairs() -> None:
    # Same observed win rate (½, from alternating results), different numbers of comparisons.
    stats = [stats_with([1.0, 0.0] * 10), stats_with([1.0, 0.0] * 2), PairStats()]
    p = pair_probabilities(stats, "active")
    assert p[2] > p[1] > p[0]  # never compared > compared 4 times > compared 20 times
    assert p[0] > 0.0


def test_active_rule_is_the_standard_error_shrinkage_of_one_more_comparison() -> None:
    s = stats_with([1.0, 1.0, 0.0, 0.5])
    n = s.n + 2  # the prior: one imaginary win and one imaginary loss
    outcomes = [1.0, 1.0, 0.0, 0.5, 1.0, 0.0]
    var = float(np.var(outcomes))  # Σ̂_{a,a}: variance of the pair's outcomes, prior included
    assert s.variance() == pytest.approx(var)
    expected = math.sqrt(var / n) - math.sqrt(var / (n + 1))
    assert active_weights([s])[0] == pytest.approx(expected)


def test_active_rule_spends_less_on_lopsided_pairs_than_on_close_ones() -> None:
    lopsided = stats_with([1.0] * 12)
    close = stats_with([1.0, 0.0] * 6)
    p = pair_probabilities([lopsided, close], "active")
    assert p[1] > p[0]


def test_uniform_is_uniform_over_available_pairs() -> None:
    stats = [stats_with([1.0] * 9), PairStats(), stats_with([0.5])]
    p = pair_probabilities(stats, "uniform", np.array([True, False, True]))
    assert p.tolist() == [0.5, 0.0, 0.5]
    with pytest.raises(ValueError, match="unknown sampling"):
        pair_probabilities(stats, "greedy")  # type: ignore[arg-type]

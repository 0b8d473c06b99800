from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from deepmedix.arena.bt import (
    Battle,
    battles_from_rows,
    design,
    fit_arena,
    fit_bt,
    pair_matrices,
    scale_scores,
    shared_ranks,
)


def simulate(true: np.ndarray, n: int, rng: np.random.Generator, tie_band: float = 0.0) -> list[Battle]:
    """Battles drawn uniformly over pairs; outcomes from Bradley–Terry; a tie when |p − ½| < tie_band."""
    m = len(true)
    battles = []
    for _ in range(n):
        i, j = rng.choice(m, 2, replace=False)
        p = 1.0 / (1.0 + np.exp(-(true[i] - true[j])))
        tie = abs(p - 0.5) < tie_band and rng.random() < 0.5
        winner = "tie" if tie else "a" if rng.random() < p else "b"
        battles.append(Battle(f"m{i}", f"m{j}", winner, 1.0))
    return battles


def test_weighted_fit_matches_sklearn_unpenalised_logistic_regression() -> None:
    rng = np.random.default_rng(3)
    true = np.array([0.8, 0.3, 0.0, -0.4, -0.7])
    battles = simulate(true, 600, rng, tie_band=0.1)
    for b in battles:  # arbitrary drawing probabilities, as an active sampler would record
        b.prob = float(rng.uniform(0.05, 1.0))
    d = design(battles)
    ours = fit_bt(d.first, d.second, d.outcome, d.weight, len(d.models), l2=0.0)

    # The same problem for scikit-learn: x = e_first − e_second, a tie as one win and one loss at half weight; the
    # first model's column is dropped (its score fixed at 0) since only differences are identified.
    m = len(d.models)
    rows, labels, weights = [], [], []
    for f, s, y, w in zip(d.first, d.second, d.outcome, d.weight, strict=True):
        x = np.zeros(m)
        x[f], x[s] = 1.0, -1.0
        for label, share in ((1, y), (0, 1.0 - y)):
            if share > 0:
                rows.append(x[1:])
                labels.append(label)
                weights.append(w * share)
    # C=inf is scikit-learn 1.8's spelling of penalty=None (unpenalised).
    clf = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000)
    clf.fit(np.array(rows), np.array(labels), sample_weight=np.array(weights))
    theirs = np.concatenate([[0.0], clf.coef_[0]])
    np.testing.assert_allclose(ours - ours[0], theirs - theirs[0], atol=1e-4)


def test_inverse_probability_weight_counts_a_battle_as_its_inverse_probability() -> None:
    base = [Battle("x", "y", "a"), Battle("y", "x", "a"), Battle("x", "z", "a"), Battle("z", "y", "b")]
    halved = [*base[:3], Battle("z", "y", "b", prob=0.5)]
    doubled = [*base, Battle("z", "y", "b")]
    fit = {}
    for name, bs in (("halved", halved), ("doubled", doubled), ("base", base)):
        d = design(bs, ["x", "y", "z"])
        fit[name] = fit_bt(d.first, d.second, d.outcome, d.weight, 3, l2=0.0)
    np.testing.assert_allclose(fit["halved"], fit["doubled"], atol=1e-6)
    assert not np.allclose(fit["halved"], fit["base"], atol=1e-3)


def test_tie_is_half_a_win_each_way() -> None:
    rng = np.random.default_rng(0)
    with_ties = simulate(np.array([0.5, 0.0, -0.5]), 300, rng, tie_band=0.3)
    assert any(b.winner == "tie" for b in with_ties)
    # The same battles with every tie split into a win and a loss at half weight each.
    d_ties = design(with_ties, ["m0", "m1", "m2"])
    first, second, outcome, weight = [], [], [], []
    for f, s, y, w in zip(d_ties.first, d_ties.second, d_ties.outcome, d_ties.weight, strict=True):
        if y == 0.5:
            first += [f, f]
            second += [s, s]
            outcome += [1.0, 0.0]
            weight += [w / 2, w / 2]
        else:
            first.append(f)
            second.append(s)
            outcome.append(y)
            weight.append(w)
    ours = fit_bt(d_ties.first, d_ties.second, d_ties.outcome, d_ties.weight, 3, l2=0.0)
    split = fit_bt(np.array(first), np.array(second), np.array(outcome), np.array(weight), 3, l2=0.0)
    np.testing.assert_allclose(ours, split, atol=1e-6)

    only_ties = fit_arena(
        [Battle("p", "q", "tie"), Battle("q", "r", "tie"), Battle("r", "p", "tie")], bootstrap_rounds=0
    )
    np.testing.assert_allclose(only_ties.bt, 0.0, atol=1e-8)
    _, rate = pair_matrices(design([Battle("p", "q", "tie"), Battle("p", "q", "a")], ["p", "q"]))
    assert rate[0, 1] == pytest.approx(0.75) and rate[1, 0] == pytest.approx(0.25)


def test_bootstrap_intervals_contain_the_true_strengths() -> None:
    true = np.array([1.0, 0.4, 0.0, -0.3, -1.1])
    true = true - true.mean()
    covered, total = 0, 0
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        battles = simulate(true, 800, rng)
        fit = fit_arena(battles, bootstrap_rounds=150, seed=seed, l2=0.0)
        for name, lo, hi in zip(fit.models, fit.bt_low, fit.bt_high, strict=True):
            covered += lo <= true[int(name[1:])] <= hi
            total += 1
        assert fit.models == ["m0", "m1", "m2", "m3", "m4"]  # 800 battles order these strengths
    # 95% intervals: about 28.5 of 30 expected; far fewer would mean the intervals are too narrow.
    assert covered / total >= 0.8, f"coverage {covered}/{total}"


def test_scaling_maps_point_scores_to_unit_interval_and_intervals_with_the_same_map() -> None:
    rng = np.random.default_rng(1)
    battles = simulate(np.array([0.9, 0.2, -0.1, -1.0]), 400, rng)
    for scale in ("minmax", "maxabs"):
        fit = fit_arena(battles, bootstrap_rounds=50, scale=scale)
        offset, span = scale_scores(fit.bt, scale)
        np.testing.assert_allclose(fit.score, (fit.bt - offset) / span)
        np.testing.assert_allclose(fit.ci_low, (fit.bt_low - offset) / span)
        np.testing.assert_allclose(fit.ci_high, (fit.bt_high - offset) / span)
        assert fit.score.min() >= -1e-12 and fit.score.max() <= 1 + 1e-12
        assert np.all(fit.ci_low <= fit.score + 1e-12) and np.all(fit.score <= fit.ci_high + 1e-12)
        assert list(fit.score) == sorted(fit.score, reverse=True)
    minmax = fit_arena(battles, bootstrap_rounds=0, scale="minmax")
    assert minmax.score[0] == pytest.approx(1.0) and minmax.score[-1] == pytest.approx(0.0)
    maxabs = fit_arena(battles, bootstrap_rounds=0, scale="maxabs")
    assert np.mean(maxabs.score) == pytest.approx(0.5)  # the centre maps to ½
    assert min(maxabs.score.min(), 1 - maxabs.score.max()) == pytest.approx(0.0, abs=1e-12)


def test_overlapping_intervals_share_a_rank() -> None:
    low = np.array([0.8, 0.7, 0.2, 0.1])
    high = np.array([1.0, 0.9, 0.75, 0.3])
    # 0 and 1 overlap; 2 overlaps 1 (0.75 > 0.7) but not 0; 3 is below everyone but 2 (0.3 > 0.2).
    assert shared_ranks(low, high).tolist() == [1, 1, 2, 3]


def test_separable_results_stay_finite_and_ordered() -> None:
    battles = [Battle("best", "mid", "a")] * 3 + [Battle("mid", "worst", "a")] * 3 + [Battle("best", "worst", "a")]
    fit = fit_arena(battles, bootstrap_rounds=30)
    assert fit.models == ["best", "mid", "worst"]
    assert np.all(np.isfinite(fit.bt)) and np.all(np.isfinite(fit.ci_high))


def test_judgment_rows_are_validated_with_line_and_field() -> None:
    ok = battles_from_rows(
        [
            {"model_a": "x", "model_b": "y", "winner": "a"},
            {"model_a": "x", "model_b": "y", "winner": "unparseable", "prob": 0.5},
            {"model_a": "y", "model_b": "x", "winner": "tie", "prob": 0.25},
        ]
    )
    assert [(b.winner, b.prob) for b in ok] == [("a", 1.0), ("tie", 0.25)]
    bad = [
        ({"model_a": "x", "model_b": "y", "winner": "A"}, "line 1, field 'winner'"),
        ({"model_a": "x", "winner": "a"}, "line 1, field 'model_b'"),
        ({"model_a": "x", "model_b": "y", "winner": "b", "prob": 0}, "line 1, field 'prob'"),
        ({"model_a": "x", "model_b": "x", "winner": "b"}, "same model"),
    ]
    for row, message in bad:
        with pytest.raises(ValueError, match=message):
            battles_from_rows([row], source="j.jsonl")
    with pytest.raises(ValueError, match="no judgments"):
        fit_arena([])

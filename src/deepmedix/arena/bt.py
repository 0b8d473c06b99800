"""Bradley–Terry scores from pairwise judgments, with inverse-probability weights, ties and bootstrap intervals.

The fit is the paper's Eq. 8: ξ̂ = argmin_ξ Σ_t w_t · CE(y_t, σ(ξ_{a_t} − ξ_{b_t})) with w_t = 1/P(A_t) and
y_t = 1 (a won), 0 (b won) or ½ (tie: half a win each way, which is the same as one win and one loss at half
weight). It is written with scipy rather than scikit-learn because a tie's soft label and the gauge freedom
(only differences are identified) are natural here; ``tests/arena`` cross-checks it against scikit-learn's
unpenalised logistic regression.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import numpy as np
from scipy.optimize import minimize

from deepmedix.arena.options import FitOptions, Scale, check_scale
from deepmedix.arena.outcomes import Unresolved, Verdict, Winner
from deepmedix.errors import DataError, InputFileError

WINNER_VALUES: dict[Winner, float] = {Winner.A: 1.0, Winner.B: 0.0, Winner.TIE: 0.5}  # the first model's result


@dataclass
class Battle:
    """One judged comparison; ``prob`` is the probability with which its pair was drawn."""

    model_a: str
    model_b: str
    winner: Winner
    prob: float = 1.0


class JudgmentRow(TypedDict):
    """A line of a judgments file (``arena run`` writes them; ``arena fit`` needs model_a, model_b and winner)."""

    model_a: str
    model_b: str
    winner: Winner | Unresolved
    prob: NotRequired[float]  # the probability with which the pair was drawn; 1 when absent
    sample_id: NotRequired[str]
    step: NotRequired[int]
    verdicts: NotRequired[dict[str, Verdict | Unresolved]]  # each shown order's verdict ("ab", "ba")


def battles_from_rows(
    rows: Iterable[Mapping[str, Any]], source: str = "judgments", lines: Sequence[int] | None = None
) -> list[Battle]:
    """Validate judgment rows ({"model_a", "model_b", "winner", "prob"?}); errors name the file, line and field.

    ``lines`` are the rows' line numbers in ``source`` (default: 1, 2, …). Rows an arena run marks unresolved
    ("unparseable" or "error") are skipped (they stay in the file for the record).
    """
    battles: list[Battle] = []
    for i, row in enumerate(rows):
        line = lines[i] if lines is not None else i + 1
        if not isinstance(row, Mapping):
            raise InputFileError(source, "expected a JSON object", line=line)
        for key in ("model_a", "model_b"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise InputFileError(source, "must be a non-empty string", line=line, field=key)
        if row["model_a"] == row["model_b"]:
            raise InputFileError(
                source, f"'model_a' and 'model_b' name the same model {row['model_a']!r}", line=line, field="model_b"
            )
        winner = row.get("winner")
        if winner in tuple(Unresolved):
            continue
        if winner not in tuple(Winner):
            raise InputFileError(source, f"must be 'a', 'b' or 'tie', got {winner!r}", line=line, field="winner")
        prob = row.get("prob", 1.0)
        if prob is None:
            prob = 1.0
        if isinstance(prob, bool) or not isinstance(prob, int | float) or not (0.0 < float(prob) <= 1.0):
            raise InputFileError(source, f"must be a number in (0, 1], got {prob!r}", line=line, field="prob")
        battles.append(Battle(row["model_a"], row["model_b"], Winner(winner), float(prob)))
    return battles


@dataclass
class Design:
    """Battles as index arrays: first model, second model, outcome for the first (1, ½, 0), weight 1/P."""

    models: list[str]
    first: np.ndarray
    second: np.ndarray
    outcome: np.ndarray
    weight: np.ndarray


def design(battles: Sequence[Battle], models: Sequence[str] | None = None, weighted: bool = True) -> Design:
    names = list(models) if models is not None else sorted({m for b in battles for m in (b.model_a, b.model_b)})
    index = {m: i for i, m in enumerate(names)}
    first = np.array([index[b.model_a] for b in battles], dtype=np.int64)
    second = np.array([index[b.model_b] for b in battles], dtype=np.int64)
    outcome = np.array([WINNER_VALUES[b.winner] for b in battles], dtype=np.float64)
    weight = np.array([1.0 / b.prob if weighted else 1.0 for b in battles], dtype=np.float64)
    return Design(names, first, second, outcome, weight)


def fit_bt(
    first: np.ndarray,
    second: np.ndarray,
    outcome: np.ndarray,
    weight: np.ndarray,
    n_models: int,
    l2: float = 0.01,
    init: np.ndarray | None = None,
    n_battles: float | None = None,
) -> np.ndarray:
    """Weighted Bradley–Terry log-strengths, centred to mean 0.

    ``l2`` is a ridge in units of one average-weight judgment (the weights are divided by their mean, which leaves
    the unpenalised argmin unchanged): the default 0.01 keeps scores finite when one model wins every battle and
    is negligible otherwise; ``l2=0`` is the exact unpenalised fit. ``n_battles`` is the number of battles the rows
    stand for when identical battles were grouped into one weighted row.
    """
    if len(first) == 0:
        return np.zeros(n_models)
    w = weight / (weight.sum() / (n_battles or len(weight)))

    def loss_and_grad(xi: np.ndarray) -> tuple[float, np.ndarray]:
        d = xi[first] - xi[second]
        # CE(y, σ(d)) = y·log(1+e^{−d}) + (1−y)·log(1+e^{d}), written stably with logaddexp.
        loss = float(np.sum(w * (outcome * np.logaddexp(0.0, -d) + (1.0 - outcome) * np.logaddexp(0.0, d))))
        g = w * (_sigmoid(d) - outcome)
        grad = np.bincount(first, g, n_models) - np.bincount(second, g, n_models)
        if l2:
            loss += 0.5 * l2 * float(xi @ xi)
            grad = grad + l2 * xi
        return loss, grad

    x0 = np.zeros(n_models) if init is None else np.asarray(init, dtype=np.float64)
    res = minimize(loss_and_grad, x0, jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": 1e-10})
    xi = np.asarray(res.x, dtype=np.float64)
    return xi - xi.mean()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def bootstrap_bt(
    d: Design, rounds: int = 200, seed: int = 0, l2: float = 0.01, point: np.ndarray | None = None
) -> np.ndarray:
    """Scores refitted on ``rounds`` resamples of the battles (with replacement, weights kept): (rounds, M).

    Identical battles are grouped first and a resample is drawn as multinomial counts over the groups — the same
    distribution as resampling battles one by one, at a fraction of the cost.
    """
    rng = np.random.default_rng(seed)
    n, m = len(d.first), len(d.models)
    rows = np.stack([d.first.astype(np.float64), d.second.astype(np.float64), d.outcome, d.weight], axis=1)
    groups, counts = np.unique(rows, axis=0, return_counts=True)
    first, second = groups[:, 0].astype(np.int64), groups[:, 1].astype(np.int64)
    outcome, weight = groups[:, 2], groups[:, 3]
    out = np.empty((rounds, m))
    for r in range(rounds):
        drawn = rng.multinomial(n, counts / n).astype(np.float64)
        keep = drawn > 0
        out[r] = fit_bt(first[keep], second[keep], outcome[keep], weight[keep] * drawn[keep], m, l2, point, n)
    return out


def scale_scores(point: np.ndarray, scale: Scale = "minmax") -> tuple[float, float]:
    """The affine map x → (x − offset) / span that puts the point scores in [0, 1]; returns (offset, span).

    "minmax": best model 1, worst 0. "maxabs" (the paper's max-absolute scaling, made non-negative): centre, divide
    by the largest |score|, map [−1, 1] to [0, 1], i.e. 0.5 + 0.5·x/max|x|.
    """
    check_scale(scale)
    if scale == "minmax":
        lo, hi = float(point.min()), float(point.max())
        return (lo, hi - lo) if hi > lo else (lo - 0.5, 1.0)
    centre = float(point.mean())
    amax = float(np.max(np.abs(point - centre)))
    if amax == 0.0:
        return centre - 0.5, 1.0
    return centre - amax, 2.0 * amax


def shared_ranks(ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """Rank = 1 + number of models whose whole interval lies above this one's: overlapping intervals share a place."""
    return np.array([1 + int(np.sum(ci_low > ci_high[i])) for i in range(len(ci_low))], dtype=np.int64)


@dataclass
class ArenaFit:
    models: list[str]  # ordered best first
    bt: np.ndarray  # raw centred log-strengths
    bt_low: np.ndarray
    bt_high: np.ndarray
    score: np.ndarray  # scaled to [0, 1]
    ci_low: np.ndarray
    ci_high: np.ndarray
    rank: np.ndarray
    battles: np.ndarray  # (M, M) number of battles between each pair
    win_rate: np.ndarray  # (M, M) share of row's battles against column won (ties ½); NaN where none
    scale: Scale
    confidence: float
    bootstrap_rounds: int
    n_battles: int

    def scores_json(self) -> dict[str, dict[str, float | int]]:
        return {
            m: {
                "score": round(float(self.score[i]), 6),
                "ci_low": round(float(self.ci_low[i]), 6),
                "ci_high": round(float(self.ci_high[i]), 6),
                "rank": int(self.rank[i]),
                "bt": round(float(self.bt[i]), 6),
                "bt_ci_low": round(float(self.bt_low[i]), 6),
                "bt_ci_high": round(float(self.bt_high[i]), 6),
                "battles": int(self.battles[i].sum()),
            }
            for i, m in enumerate(self.models)
        }

    def matrices_json(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "battles": self.battles.astype(int).tolist(),
            "win_rate": [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in self.win_rate],
        }


def pair_matrices(d: Design) -> tuple[np.ndarray, np.ndarray]:
    """Unweighted battle counts and win rates of row against column (ties as half wins)."""
    m = len(d.models)
    battles = np.zeros((m, m))
    wins = np.zeros((m, m))
    np.add.at(battles, (d.first, d.second), 1.0)
    np.add.at(battles, (d.second, d.first), 1.0)
    np.add.at(wins, (d.first, d.second), d.outcome)
    np.add.at(wins, (d.second, d.first), 1.0 - d.outcome)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(battles > 0, wins / np.where(battles > 0, battles, 1.0), np.nan)
    return battles, rate


def fit_arena(
    battles: Sequence[Battle],
    models: Sequence[str] | None = None,
    bootstrap_rounds: int = FitOptions.bootstrap_rounds,
    confidence: float = 0.95,
    scale: Scale = FitOptions.scale,
    seed: int = FitOptions.seed,
    l2: float = 0.01,
    weighted: bool = FitOptions.weighted,
) -> ArenaFit:
    """Scores, percentile-bootstrap intervals, shared ranks and the pair matrices; models ordered best first.

    The same affine map scales the point scores and the interval ends, so intervals may reach a little beyond
    [0, 1] while the point scores span it.
    """
    if not battles:
        raise DataError("no judgments to fit: every comparison was unparseable, failed, or none was made")
    d = design(battles, models, weighted)
    m = len(d.models)
    point = fit_bt(d.first, d.second, d.outcome, d.weight, m, l2)
    if bootstrap_rounds > 0:
        boot = bootstrap_bt(d, bootstrap_rounds, seed, l2, point)
        alpha = (1.0 - confidence) / 2.0
        low, high = np.quantile(boot, alpha, axis=0), np.quantile(boot, 1.0 - alpha, axis=0)
    else:
        low, high = point.copy(), point.copy()
    offset, span = scale_scores(point, scale)
    score, ci_low, ci_high = (point - offset) / span, (low - offset) / span, (high - offset) / span
    rank = shared_ranks(low, high)
    battles_m, rate = pair_matrices(d)
    o = sorted(range(m), key=lambda i: (-point[i], d.models[i]))  # best first; names break exact ties
    return ArenaFit(
        models=[d.models[i] for i in o],
        bt=point[o],
        bt_low=low[o],
        bt_high=high[o],
        score=score[o],
        ci_low=ci_low[o],
        ci_high=ci_high[o],
        rank=rank[o],
        battles=battles_m[np.ix_(o, o)],
        win_rate=rate[np.ix_(o, o)],
        scale=scale,
        confidence=confidence,
        bootstrap_rounds=bootstrap_rounds,
        n_battles=len(battles),
    )

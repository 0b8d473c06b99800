"""Which pair of models to compare next: the active rule of the paper (Eq. 7, Chatbot Arena's rule) or uniform.

Active rule: P_t(a) ∝ sqrt(Σ̂_{a,a}/n_a) − sqrt(Σ̂_{a,a}/(n_a+1)), the shrinkage of pair a's standard error that
one more comparison buys. Here, concretely:

- a pair's outcome y ∈ {1, ½, 0} is the first model's result (ties half), and every pair starts with a prior of two
  imaginary comparisons, one won and one lost;
- n_a = the pair's real comparisons + 2 (the prior), so a pair never compared has the largest factor and is drawn;
- Σ̂_{a,a} = the variance of y over the pair's comparisons, prior included (the diagonal of the covariance of the
  per-pair win-rate estimates, per comparison): 1/4 before any comparison, smaller for lopsided or tie-prone pairs.

Chatbot Arena estimates Σ̂ from its inverse-probability-weighted estimator; the per-pair empirical variance used here
is the same quantity without the 1/P factor, which keeps early draws stable (see docs/arena.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepmedix.arena.options import ArenaOptions, Sampling, check_sampling

PRIOR_COMPARISONS = 2  # one imaginary win and one imaginary loss per pair


@dataclass
class PairStats:
    """Running totals of a pair's outcomes (for its first model)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, outcome: float) -> None:
        self.n += 1
        self.total += outcome
        self.total_sq += outcome * outcome

    def win_rate(self) -> float:
        return (self.total + 1.0) / (self.n + PRIOR_COMPARISONS)

    def variance(self) -> float:
        n = self.n + PRIOR_COMPARISONS
        mean = self.win_rate()
        return max(0.0, (self.total_sq + 1.0) / n - mean * mean)


def active_weights(stats: list[PairStats]) -> np.ndarray:
    """Unnormalised Eq. 7 weights, one per pair."""
    n = np.array([s.n + PRIOR_COMPARISONS for s in stats], dtype=np.float64)
    var = np.array([s.variance() for s in stats], dtype=np.float64)
    return np.sqrt(var / n) - np.sqrt(var / (n + 1.0))


def pair_probabilities(
    stats: list[PairStats], method: Sampling = ArenaOptions.sampling, available: np.ndarray | None = None
) -> np.ndarray:
    """Sampling probabilities over pairs (sum 1); pairs marked unavailable (no sample left) get 0."""
    k = len(stats)
    mask = np.ones(k, dtype=bool) if available is None else np.asarray(available, dtype=bool)
    if not mask.any():
        raise ValueError("no pair left to compare")
    check_sampling(method)
    # Under the active rule a pair whose outcomes so far are all identical ties still has positive variance through
    # the prior; the floor only guards a degenerate zero so every available pair keeps a chance.
    weights = np.ones(k) if method == "uniform" else np.maximum(active_weights(stats), 1e-12)
    weights = np.where(mask, weights, 0.0)
    return weights / weights.sum()

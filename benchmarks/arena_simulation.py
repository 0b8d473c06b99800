"""How many judgments the arena needs to recover a known ranking: active sampling (the paper's Eq. 7) vs uniform.

Models have known Bradley–Terry strengths; each comparison's outcome is drawn from the model (with an optional share
of ties). Both samplers use the same code as ``deepmedix arena run`` (``pair_probabilities``) and the same fit
(``fit_bt``, inverse-probability weighted). At budget checkpoints the fitted order is compared with the true one.

    .venv/bin/python benchmarks/arena_simulation.py --seeds 20 --out docs/figures

writes ``arena_simulation.json`` and ``arena_simulation.png`` into ``--out`` (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from deepmedix.arena.bt import fit_bt
from deepmedix.arena.sampling import PairStats, pair_probabilities

# Ten models, spaced like an arena leaderboard: a few clear gaps and some close neighbours.
DEFAULT_STRENGTHS = [1.6, 1.2, 1.0, 0.8, 0.45, 0.3, 0.0, -0.3, -0.8, -1.4]


def simulate(
    strengths: np.ndarray, method: str, budget: int, checkpoints: list[int], seed: int, tie_rate: float
) -> dict:
    rng = np.random.default_rng(seed)
    m = len(strengths)
    pairs = list(combinations(range(m), 2))
    stats = [PairStats() for _ in pairs]
    first = np.empty(budget, dtype=np.int64)
    second = np.empty(budget, dtype=np.int64)
    outcome = np.empty(budget)
    weight = np.empty(budget)
    true_order = np.argsort(-strengths)
    exact, tau, exact_unweighted = [], [], []
    c = 0
    for t in range(budget):
        p = pair_probabilities(stats, method)  # type: ignore[arg-type]
        k = int(rng.choice(len(pairs), p=p))
        i, j = pairs[k]
        if rng.random() < tie_rate:
            y = 0.5
        else:
            y = float(rng.random() < 1.0 / (1.0 + np.exp(-(strengths[i] - strengths[j]))))
        stats[k].add(y)
        first[t], second[t], outcome[t], weight[t] = i, j, y, 1.0 / p[k]
        if c < len(checkpoints) and t + 1 == checkpoints[c]:
            xi = fit_bt(first[: t + 1], second[: t + 1], outcome[: t + 1], weight[: t + 1], m, l2=0.01)
            exact.append(bool(np.array_equal(np.argsort(-xi), true_order)))
            tau.append(float(kendalltau(xi, strengths).statistic))
            plain = fit_bt(first[: t + 1], second[: t + 1], outcome[: t + 1], np.ones(t + 1), m, l2=0.01)
            exact_unweighted.append(bool(np.array_equal(np.argsort(-plain), true_order)))
            c += 1
    n_per_pair = [s.n for s in stats]
    return {"exact": exact, "tau": tau, "exact_unweighted": exact_unweighted, "comparisons_per_pair": n_per_pair}


def needed(exact: list[bool], checkpoints: list[int]) -> float:
    """The first checkpoint from which the ranking stays exactly right to the end of the budget (inf: never)."""
    for idx in range(len(exact)):
        if all(exact[idx:]):
            return float(checkpoints[idx])
    return float("inf")


def median_needed(values: list[float]) -> float | None:
    """Median over runs, runs that never recovered counting as beyond the budget; None when the median is."""
    med = float(np.median(values))
    return med if np.isfinite(med) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=6000)
    ap.add_argument("--step", type=int, default=250)
    ap.add_argument("--tie-rate", type=float, default=0.1, help="share of comparisons that end in a tie")
    ap.add_argument("--strengths", type=float, nargs="+", default=DEFAULT_STRENGTHS)
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    ap.add_argument("--name", default="arena_simulation", help="stem of the output files")
    args = ap.parse_args(argv)

    from tqdm.auto import tqdm

    strengths = np.array(args.strengths)
    checkpoints = list(range(args.step, args.budget + 1, args.step))
    results: dict[str, list[dict]] = {"active": [], "uniform": []}
    start = time.time()
    with tqdm(total=2 * args.seeds, desc="simulated arenas", unit="run") as bar:
        for seed in range(args.seeds):
            for method in results:
                results[method].append(simulate(strengths, method, args.budget, checkpoints, seed, args.tie_rate))
                bar.update(1)

    summary: dict[str, dict] = {}
    for method, runs in results.items():
        need = [needed(r["exact"], checkpoints) for r in runs]
        need_plain = [needed(r["exact_unweighted"], checkpoints) for r in runs]
        summary[method] = {
            "judgments_to_recover_median": median_needed(need),
            "recovered_runs": int(np.sum(np.isfinite(need))),
            "judgments_to_recover": [n if np.isfinite(n) else None for n in need],
            "unweighted_fit_judgments_to_recover_median": median_needed(need_plain),
            "exact_share": np.mean([r["exact"] for r in runs], axis=0).round(4).tolist(),
            "exact_share_unweighted_fit": np.mean([r["exact_unweighted"] for r in runs], axis=0).round(4).tolist(),
            "mean_kendall_tau": np.mean([r["tau"] for r in runs], axis=0).round(4).tolist(),
            "mean_comparisons_per_pair": np.mean([r["comparisons_per_pair"] for r in runs], axis=0).round(1).tolist(),
        }
    a, u = summary["active"]["judgments_to_recover_median"], summary["uniform"]["judgments_to_recover_median"]
    saving = (1.0 - a / u) if a and u else None
    report = {
        "strengths": strengths.tolist(),
        "seeds": args.seeds,
        "budget": args.budget,
        "tie_rate": args.tie_rate,
        "checkpoints": checkpoints,
        "saving_median": saving,
        "seconds": round(time.time() - start, 1),
        **summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / f"{args.name}.png")
    for method in ("active", "uniform"):
        s = summary[method]
        print(
            f"{method:8s} recovered for good in {s['recovered_runs']}/{args.seeds} runs; median judgments needed "
            f"{s['judgments_to_recover_median']} (IPW fit), {s['unweighted_fit_judgments_to_recover_median']} (unweighted fit)"
        )
    if saving is not None:
        print(f"active sampling needs {saving:.0%} fewer judgments (median) than uniform")
    return 0


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = report["checkpoints"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method, colour in (("active", "tab:red"), ("uniform", "tab:blue")):
        s = report[method]
        axes[0].plot(x, s["exact_share"], label=f"{method} (IPW fit)", color=colour)
        if method == "active":  # with uniform sampling every weight is equal: both fits coincide
            axes[0].plot(x, s["exact_share_unweighted_fit"], label="active (unweighted fit)", color=colour, ls=":")
        axes[1].plot(x, s["mean_kendall_tau"], label=method, color=colour)
        if s["judgments_to_recover_median"]:
            axes[0].axvline(s["judgments_to_recover_median"], color=colour, ls="--", lw=1)
    axes[0].set_title(f"Exact ranking recovered ({report['seeds']} seeds; dashed: median needed)")
    axes[0].set_xlabel("judgments")
    axes[0].set_ylabel("share of runs")
    axes[1].set_title("Kendall τ with the true ranking")
    axes[1].set_xlabel("judgments")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

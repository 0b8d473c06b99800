"""Arena outputs, like the paper's Fig. 2h–j: battle counts, win rates, scores with intervals — JSON, Markdown, PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TypedDict

import numpy as np

from deepmedix.arena.bt import ArenaFit
from deepmedix.arena.options import Sampling
from deepmedix.io import atomic_write_json, atomic_write_text, staged_folder


class PositionBias(TypedDict):
    """How often the report shown first wins, and how often a comparison's two orders disagree (None: no verdict)."""

    verdicts: int
    position_a_wins: float | None
    position_b_wins: float | None
    ties: float | None
    position_a_share_of_decisive: float | None
    unparseable_verdicts: int
    comparisons_both_orders: int
    order_inconsistent: float | None


class JudgeUsage(TypedDict):
    """What a run cost: judge calls and tokens, answers reused from the store, questions asked."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cached: int
    asked: int


class ArenaInfo(TypedDict, total=False):
    """What ``arena.json`` and ``arena.md`` say beside the scores: the run's settings and counts (``arena run``), or
    the judgments file it was fitted from (``arena fit``)."""

    judge: str
    prompt_version: str
    sampling: Sampling
    seed: int
    budget: int
    comparisons: int
    outcomes: dict[str, int]  # comparisons per outcome: a, b, tie, unparseable, error
    position_bias: PositionBias
    usage: JudgeUsage
    judgments: str
    rows: int
    skipped_unresolved: int


def _fmt(v: object, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown_report(fit: ArenaFit, info: ArenaInfo) -> str:
    lines = ["# Report Arena", ""]
    if info:
        if "judgments" in info:
            lines.append(
                f"Judgments: `{info['judgments']}`, {info.get('rows')} rows, {info.get('skipped_unresolved', 0)} "
                "unparseable or failed rows left out."
            )
        judge = info.get("judge")
        if judge:
            lines.append(
                f"Judge: `{judge}` (prompt {info.get('prompt_version', '?')}), sampling: {info.get('sampling', '?')}, seed {info.get('seed', '?')}."
            )
        outcomes = info.get("outcomes")
        if outcomes:
            lines.append(
                f"Comparisons: {info.get('comparisons')} — model_a wins {outcomes['a']}, model_b wins {outcomes['b']}, "
                f"ties {outcomes['tie']}, unparseable {outcomes['unparseable']}, failed {outcomes['error']}."
            )
        usage = info.get("usage")
        if usage:
            lines.append(
                f"Judge calls this run: {usage['calls']} ({usage['prompt_tokens']} prompt + {usage['completion_tokens']} "
                f"completion tokens); answers reused from the store: {usage['cached']}."
            )
        bias = info.get("position_bias")
        if bias and bias.get("verdicts"):
            lines.append(
                f"Position bias: the report shown first won {_fmt(bias['position_a_wins'])} of {bias['verdicts']} verdicts "
                f"(second {_fmt(bias['position_b_wins'])}, tie {_fmt(bias['ties'])}); the two orders disagreed on "
                f"{_fmt(bias['order_inconsistent'])} of {bias['comparisons_both_orders']} comparisons (counted as ties)."
            )
        lines.append("")
    pct = int(round(fit.confidence * 100))
    lines += [
        f"## Scores ({fit.scale} scaling to [0, 1]; {pct}% bootstrap intervals over {fit.bootstrap_rounds} resamples)",
        "",
        "| rank | model | score | interval | BT log-strength | battles |",
        "|---:|---|---:|---|---:|---:|",
    ]
    for i, m in enumerate(fit.models):
        lines.append(
            f"| {fit.rank[i]} | {m} | {fit.score[i]:.3f} | [{fit.ci_low[i]:.3f}, {fit.ci_high[i]:.3f}] | "
            f"{fit.bt[i]:+.3f} | {int(fit.battles[i].sum())} |"
        )
    lines += ["", "Models whose intervals overlap share a rank.", "", "## Battle counts", ""]
    lines += _matrix_table(fit.models, fit.battles, integer=True)
    lines += ["", "## Win rates (row against column; ties count half)", ""]
    lines += _matrix_table(fit.models, fit.win_rate, integer=False)
    return "\n".join(lines) + "\n"


def _matrix_table(models: list[str], mat: np.ndarray, integer: bool) -> list[str]:
    out = ["| | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for i, m in enumerate(models):
        cells = []
        for j in range(len(models)):
            v = mat[i, j]
            if i == j:
                cells.append("–")
            elif integer:
                cells.append(str(int(v)))
            else:
                cells.append(_fmt(float(v), 2))
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return out


def _heatmap(
    path: Path,
    models: list[str],
    mat: np.ndarray,
    title: str,
    fmt: str,
    cmap: str,
    vmin: float | None,
    vmax: float | None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(models)
    size = max(4.0, 0.7 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    shown = np.array(mat, dtype=float)
    np.fill_diagonal(shown, np.nan)
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), models, rotation=45, ha="right")
    ax.set_yticks(range(n), models)
    ax.set_xlabel("model B")
    ax.set_ylabel("model A")
    for i in range(n):
        for j in range(n):
            if i != j and not np.isnan(shown[i, j]):
                ax.text(j, i, format(shown[i, j], fmt), ha="center", va="center", fontsize=8)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _interval_plot(path: Path, fit: ArenaFit) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(fit.models)
    fig, ax = plt.subplots(figsize=(7.0, max(2.5, 0.45 * n + 1.2)))
    y = np.arange(n)[::-1]
    ax.errorbar(
        fit.score,
        y,
        xerr=[np.maximum(fit.score - fit.ci_low, 0), np.maximum(fit.ci_high - fit.score, 0)],
        fmt="o",
        color="tab:blue",
        ecolor="tab:gray",
        capsize=3,
    )
    ax.set_yticks(y, [f"{int(r)}. {m}" for r, m in zip(fit.rank, fit.models, strict=True)])
    ax.set_xlabel(f"arena score ({fit.scale} scaled; {int(round(fit.confidence * 100))}% bootstrap interval)")
    ax.set_title("Report Arena ranking")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out_dir: str | Path, fit: ArenaFit, info: ArenaInfo | None = None) -> dict[str, Path]:
    """scores.json, arena.json, arena.md and three figures (battle counts, win rates, ranked intervals)."""
    out = Path(out_dir)
    info = info or {}
    with staged_folder(out) as staging:  # the scores and their report together, or nothing
        paths = {
            "scores": staging / "scores.json",
            "arena": staging / "arena.json",
            "markdown": staging / "arena.md",
            "battles_figure": staging / "arena_battles.png",
            "win_rate_figure": staging / "arena_win_rate.png",
            "scores_figure": staging / "arena_scores.png",
        }
        atomic_write_json(paths["scores"], fit.scores_json())
        atomic_write_json(
            paths["arena"],
            {
                **info,
                "scale": fit.scale,
                "confidence": fit.confidence,
                "bootstrap_rounds": fit.bootstrap_rounds,
                "battles_fitted": fit.n_battles,
                "scores": fit.scores_json(),
                **fit.matrices_json(),
            },
        )
        atomic_write_text(paths["markdown"], markdown_report(fit, info))
        _heatmap(paths["battles_figure"], fit.models, fit.battles, "Battle counts", ".0f", "Blues", 0, None)
        _heatmap(paths["win_rate_figure"], fit.models, fit.win_rate, "Win rate of A against B", ".2f", "RdBu", 0.0, 1.0)
        _interval_plot(paths["scores_figure"], fit)
    paths = {name: out / path.name for name, path in paths.items()}
    return paths

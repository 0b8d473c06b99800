"""Training curves drawn next to each stage's final model: loss for SFT, reward components and KL for GRPO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepmedix.io import atomic_open

REWARD_KEYS = (
    ("reward", "total reward"),
    ("rewards/answer/mean", "answer"),
    ("rewards/format/mean", "format"),
    ("rewards/coordinate/mean", "coordinate"),
    ("rewards/valid_box_share/mean", "valid-box share"),
    ("rewards/reference_iou/mean", "IoU to reference boxes"),
)


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, int | float) and "step" in row:
            xs.append(float(row["step"]))
            ys.append(float(value))
    return xs, ys


def _smooth(ys: list[float], window: int) -> list[float]:
    """Trailing moving average (per-step GRPO rewards are noisy: each step sees a few prompts)."""
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_curves(log_history: list[dict[str, Any]], out_png: str | Path, title: str) -> Path | None:
    """Draw the logged loss (SFT) or reward components and KL (GRPO); returns the PNG, or None if nothing was
    logged. ``log_history`` is the trainer's ``state.log_history`` (or the rows of ``rewards.jsonl``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rewards = [(label, *_series(log_history, key)) for key, label in REWARD_KEYS]
    rewards = [r for r in rewards if r[1]]
    loss = _series(log_history, "loss")
    kl = _series(log_history, "kl")
    panels = [
        p
        for p in ("reward" if rewards else None, "kl" if kl[0] else None, "loss" if loss[0] and not rewards else None)
        if p
    ]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "reward":
            window = max(1, len(rewards[0][1]) // 10)
            for i, (label, xs, ys) in enumerate(rewards):
                color = f"C{i}"
                ax.plot(xs, ys, color=color, alpha=0.25, linewidth=0.8)
                ax.plot(
                    xs, _smooth(ys, window), color=color, label=label, linewidth=2.0 if label == "total reward" else 1.2
                )
            ax.set_ylabel(f"mean over generations ({window}-step average)")
            ax.legend(fontsize=8)
            ax.set_title("reward components")
        elif panel == "kl":
            ax.plot(*kl, color="tab:red")
            ax.set_ylabel("KL to the reference")
            ax.set_title("KL (k3 estimator)")
        else:
            ax.plot(*loss, color="tab:blue")
            ax.set_ylabel("training loss")
            ax.set_title("loss on answer tokens")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_open(out_png, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
    return out_png


__all__ = ["plot_curves"]

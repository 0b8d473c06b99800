"""What a samples file holds: counts per source / task / split / question type and answer lengths, as tables and a figure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepmedix.data.schema import Sample, iter_samples
from deepmedix.io import atomic_open


def answer_words(sample: Sample) -> int:
    """Answer length in words (a multi answer "a | b" counts its words, not the separators)."""
    return len(sample.answer.replace(" | ", " ").split())


@dataclass
class DatasetStats:
    total: int = 0
    by_source: Counter[str] = field(default_factory=Counter)
    by_task: Counter[str] = field(default_factory=Counter)
    by_split: Counter[str] = field(default_factory=Counter)
    by_source_task_split: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    by_question_type: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, question type)
    by_answer_type: Counter[str] = field(default_factory=Counter)
    answer_lengths: dict[str, list[int]] = field(default_factory=dict)  # task → lengths in words
    images: int = 0
    patients: int = 0
    with_boxes: int = 0

    @staticmethod
    def length_summary(lengths: list[int]) -> dict[str, float]:
        arr = np.asarray(lengths, dtype=float)
        return {
            "n": int(arr.size),
            "mean": float(arr.mean()),
            "median": float(np.median(arr)),
            "p90": float(np.percentile(arr, 90)),
            "max": float(arr.max()),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "images": self.images,
            "patients": self.patients,
            "with_boxes": self.with_boxes,
            "by_source": dict(self.by_source),
            "by_task": dict(self.by_task),
            "by_split": dict(self.by_split),
            "by_answer_type": dict(self.by_answer_type),
            "by_source_task_split": [
                {"source": s, "task": t, "split": sp, "n": n}
                for (s, t, sp), n in sorted(self.by_source_task_split.items())
            ],
            "by_question_type": [
                {"source": s, "question_type": q, "n": n} for (s, q), n in sorted(self.by_question_type.items())
            ],
            "answer_words": {t: self.length_summary(v) for t, v in sorted(self.answer_lengths.items())},
        }


def compute_stats(path: str | Path) -> DatasetStats:
    stats = DatasetStats()
    images: set[str] = set()
    patients: set[tuple[str, str]] = set()
    for s in iter_samples(path, resolve_images=False):
        stats.total += 1
        stats.by_source[s.source] += 1
        stats.by_task[s.task.value] += 1
        stats.by_split[s.split.value] += 1
        stats.by_answer_type[s.answer_type.value] += 1
        stats.by_source_task_split[(s.source, s.task.value, s.split.value)] += 1
        if s.question_type:
            stats.by_question_type[(s.source, s.question_type)] += 1
        stats.answer_lengths.setdefault(s.task.value, []).append(answer_words(s))
        images.update(img.path for img in s.images)
        if s.patient_id:
            patients.add((s.source, s.patient_id))
        stats.with_boxes += bool(s.boxes)
    stats.images, stats.patients = len(images), len(patients)
    return stats


def print_stats(stats: DatasetStats, title: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    splits = sorted(stats.by_split)
    table = Table(title=f"{title} — {stats.total} samples, {stats.images} images, {stats.patients} patients")
    for col in ("source", "task", *splits, "total"):
        table.add_column(col, justify="left" if col in ("source", "task") else "right")
    for source, task in sorted({(s, t) for s, t, _ in stats.by_source_task_split}):
        counts = [stats.by_source_task_split.get((source, task, sp), 0) for sp in splits]
        table.add_row(source, task, *(str(c) for c in counts), str(sum(counts)))
    table.add_row("all", "all", *(str(stats.by_split[sp]) for sp in splits), str(stats.total), style="bold")
    console.print(table)

    if stats.by_question_type:
        qt = Table(title="question types")
        for col in ("source", "question type", "n"):
            qt.add_column(col, justify="right" if col == "n" else "left")
        for (source, qtype), n in sorted(stats.by_question_type.items()):
            qt.add_row(source, qtype, str(n))
        console.print(qt)

    lengths = Table(title="answer length (words)")
    for col in ("task", "n", "mean", "median", "p90", "max"):
        lengths.add_column(col, justify="left" if col == "task" else "right")
    for task, values in sorted(stats.answer_lengths.items()):
        summary = stats.length_summary(values)
        lengths.add_row(
            task,
            str(summary["n"]),
            f"{summary['mean']:.1f}",
            f"{summary['median']:.0f}",
            f"{summary['p90']:.0f}",
            f"{summary['max']:.0f}",
        )
    console.print(lengths)


def draw_stats(stats: DatasetStats, out: str | Path, title: str = "") -> Path:
    """Composition by source and task (split-stacked), question types, and answer-length distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    ax = axes[0]
    groups = sorted({(s, t) for s, t, _ in stats.by_source_task_split})
    labels = [f"{s}\n{t}" for s, t in groups]
    left = np.zeros(len(groups))
    colors = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
    for split in ("train", "val", "test"):
        values = np.array([stats.by_source_task_split.get((s, t, split), 0) for s, t in groups], dtype=float)
        ax.barh(labels, values, left=left, label=split, color=colors[split])
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("samples")
    ax.set_title("samples by source and task")
    ax.legend(loc="lower right", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)

    ax = axes[1]
    if stats.by_question_type:
        items = sorted(stats.by_question_type.items(), key=lambda kv: -kv[1])[:20]
        ax.barh([f"{q} ({s})" for (s, q), _ in items], [n for _, n in items], color="#8172B3")
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    else:
        ax.text(0.5, 0.5, "no question types", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("samples")
    ax.set_title("VQA question types")

    ax = axes[2]
    top = max((max(v) for v in stats.answer_lengths.values()), default=1)
    bins = np.linspace(0, max(top, 1) + 1, 30)
    for task, values in sorted(stats.answer_lengths.items()):
        ax.hist(values, bins=bins, alpha=0.55, label=f"{task} (median {np.median(values):.0f})")
    ax.set_yscale("log")
    ax.set_xlabel("answer length (words)")
    ax.set_ylabel("samples")
    ax.set_title("answer length distribution")
    ax.legend(fontsize=8)

    fig.suptitle(title or "dataset composition")
    fig.tight_layout()
    out = Path(out)
    fmt = out.suffix.lstrip(".") or "png"
    with atomic_open(out, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=120)
    plt.close(fig)
    return out

"""The paper's Table 2 from a review store: each dimension per model, per group and averaged, and the
inter-group agreement per dimension (percentage agreement, and Cohen's κ).

Definitions (the paper states the dimensions, not the arithmetic; these are the plain readings):
- Relevance / Correctness: share of "yes" over the model's rated steps; Completeness: share of "yes" over its
  rated reasoning processes; Grounded / Overall Preference: share of preference ratings choosing the model.
  Within a group every rating counts once (one annotator per sample when the group split its samples; all the
  group's annotators' ratings when each rated everything).
- Average: the plain mean of the group values (the paper's Table 2: 0.9308 and 0.9899 average to 0.9603).
- Agreement between two groups: for each rated item (a step of a model; a model's process; a sample's
  preference) each group's label is the majority of its annotators' labels (a tie gives no label and the item is
  left out, and counted); agreement = share of items where both groups' labels match; κ = Cohen's κ of the two
  label sequences (scikit-learn). With more than two groups the table shows the mean over group pairs.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepmedix.annotation.store import DIMENSION_TITLES, DIMENSIONS, PREFERENCE_DIMENSIONS, ReviewStore
from deepmedix.errors import DataError
from deepmedix.io import atomic_write_jsonl, atomic_write_text, check_output, staged_folder


@dataclass
class Cell:
    model: str
    group: str  # a group name, or "Average"
    dimension: str
    value: float  # NaN when nothing was rated
    n: int


@dataclass
class Agreement:
    groups: tuple[str, str]
    dimension: str
    n_items: int  # items with a label from both groups
    n_ties: int  # items left out because a group's annotators were split evenly
    percent_agreement: float
    cohen_kappa: float


@dataclass
class ReviewResults:
    models: list[str]
    groups: list[str]
    cells: list[Cell]
    agreements: list[Agreement]

    def value(self, model: str, group: str, dimension: str) -> float:
        for c in self.cells:
            if (c.model, c.group, c.dimension) == (model, group, dimension):
                return c.value
        raise KeyError((model, group, dimension))

    def agreement(self, dimension: str) -> tuple[float, float]:
        """(mean percentage agreement, mean κ) over group pairs for one dimension."""
        rows = [a for a in self.agreements if a.dimension == dimension]
        return _nanmean([a.percent_agreement for a in rows]), _nanmean([a.cohen_kappa for a in rows])


def _nanmean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def _item(r: dict[str, Any]) -> tuple[str, int, int]:
    return (r["sample_id"], r["model"], r["step"])


def _group_labels(rows: list[dict[str, Any]]) -> dict[tuple[str, int, int], int | None]:
    """Item → the majority label of the group's annotators (None on a tie)."""
    votes: dict[tuple[str, int, int], Counter[int]] = {}
    for r in rows:
        votes.setdefault(_item(r), Counter())[int(r["value"])] += 1
    out: dict[tuple[str, int, int], int | None] = {}
    for item, counter in votes.items():
        top = counter.most_common()
        out[item] = top[0][0] if len(top) == 1 or top[0][1] > top[1][1] else None
    return out


def compute_results(ratings: list[dict[str, Any]], models: list[str]) -> ReviewResults:
    """``ratings``: rows with annotator, grp, sample_id, dimension, model (index; -1 for preferences), step,
    value (1/0, or the preferred model's index)."""
    from sklearn.metrics import cohen_kappa_score

    groups = sorted({str(r["grp"]) for r in ratings})
    cells: list[Cell] = []
    for m, model in enumerate(models):
        for dim in DIMENSIONS:
            group_values = []
            for g in groups:
                if dim in PREFERENCE_DIMENSIONS:
                    rows = [r for r in ratings if str(r["grp"]) == g and r["dimension"] == dim]
                    hits = sum(1 for r in rows if int(r["value"]) == m)
                else:
                    rows = [r for r in ratings if str(r["grp"]) == g and r["dimension"] == dim and r["model"] == m]
                    hits = sum(int(r["value"]) for r in rows)
                value = hits / len(rows) if rows else math.nan
                group_values.append(value)
                cells.append(Cell(model, g, dim, value, len(rows)))
            n_all = sum(c.n for c in cells if c.model == model and c.dimension == dim and c.group in groups)
            cells.append(Cell(model, "Average", dim, _nanmean(group_values), n_all))

    agreements: list[Agreement] = []
    for g1, g2 in itertools.combinations(groups, 2):
        for dim in DIMENSIONS:
            l1 = _group_labels([r for r in ratings if str(r["grp"]) == g1 and r["dimension"] == dim])
            l2 = _group_labels([r for r in ratings if str(r["grp"]) == g2 and r["dimension"] == dim])
            shared = sorted(set(l1) & set(l2))
            pairs = [(l1[i], l2[i]) for i in shared if l1[i] is not None and l2[i] is not None]
            ties = len(shared) - len(pairs)
            if pairs:
                a = [p[0] for p in pairs]
                b = [p[1] for p in pairs]
                pa = sum(x == y for x, y in zip(a, b, strict=True)) / len(pairs)
                # One label only: κ is 0/0, undefined.
                kappa = math.nan if len(set(a) | set(b)) < 2 else float(cohen_kappa_score(a, b))
            else:
                pa = kappa = math.nan
            agreements.append(Agreement((g1, g2), dim, len(pairs), ties, pa, kappa))
    return ReviewResults(list(models), groups, cells, agreements)


def results_from_store(review_dir: str | Path) -> tuple[ReviewResults, list[dict[str, Any]], list[str]]:
    with ReviewStore(review_dir) as store:
        models = store.models()
        ratings = store.ratings()
        left_of = {
            (a.name, x["sample_id"]): x["left_model"] for a in store.annotators() for x in store.assignments(a.name)
        }
    for r in ratings:
        r["shown_left"] = left_of.get((r["annotator"], r["sample_id"]))
    return compute_results(ratings, models), ratings, models


def _fmt(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.4f}"


def table_rows(res: ReviewResults) -> list[list[str]]:
    """Table 2's rows: model, group, then one column per dimension."""
    rows = []
    for model in res.models:
        for g in [*res.groups, "Average"]:
            label = g if g == "Average" else f"Group {g}"
            rows.append([model, label, *(_fmt(res.value(model, g, d)) for d in DIMENSIONS)])
    rows.append(["", "Agreement", *(_fmt(res.agreement(d)[0]) for d in DIMENSIONS)])
    rows.append(["", "Cohen's κ", *(_fmt(res.agreement(d)[1]) for d in DIMENSIONS)])
    return rows


def to_markdown(res: ReviewResults) -> str:
    header = ["Model", "Group", *(DIMENSION_TITLES[d] for d in DIMENSIONS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(res)]
    n_items = {d: sum(a.n_items for a in res.agreements if a.dimension == d) for d in DIMENSIONS}
    n_ties = {d: sum(a.n_ties for a in res.agreements if a.dimension == d) for d in DIMENSIONS}
    notes = ", ".join(f"{DIMENSION_TITLES[d]} {n_items[d]} ({n_ties[d]} tied)" for d in DIMENSIONS)
    return (
        "\n".join(lines)
        + '\n\nRelevance, Correctness, Completeness: share of "yes"; preferences: share of samples preferring the '
        "model. Average: mean of the groups. Agreement: share of items on which the groups' (majority) labels match; "
        f"Cohen's κ on the same items. Items compared: {notes}.\n"
    )


def plot_results(res: ReviewResults, out_png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.6))
    width = 0.8 / max(1, len(res.models))
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    markers = ["o", "s", "^", "D", "v"]
    for m, model in enumerate(res.models):
        xs = [i + (m - (len(res.models) - 1) / 2) * width for i in range(len(DIMENSIONS))]
        avg = [res.value(model, "Average", d) for d in DIMENSIONS]
        ax.bar(xs, [0 if math.isnan(v) else v for v in avg], width * 0.95, label=model, color=colors[m % 4])
        for gi, g in enumerate(res.groups):
            vals = [res.value(model, g, d) for d in DIMENSIONS]
            ax.scatter(
                xs, vals, color="black", marker=markers[gi % 5], s=18, zorder=3, label=f"Group {g}" if m == 0 else None
            )
        for x, v in zip(xs, avg, strict=True):
            if not math.isnan(v):
                ax.text(x, 0.03, f"{v:.2f}", ha="center", fontsize=8, color="white", fontweight="bold")
    labels = []
    for d in DIMENSIONS:
        pa, kappa = res.agreement(d)
        labels.append(f"{DIMENSION_TITLES[d]}\nagree {_fmt(pa)}\nκ {_fmt(kappa)}")
    ax.set_xticks(range(len(DIMENSIONS)), labels, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share")
    ax.set_title("Expert review of reasoning (bars: mean of groups; markers: each group)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=130)
    plt.close(fig)
    return out_png


def raw_rows(ratings: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """Every rating, un-blinded, in a flat form for CSV/JSONL."""
    out = []
    for r in ratings:
        dim = r["dimension"]
        pref = dim in PREFERENCE_DIMENSIONS
        out.append(
            {
                "annotator": r["annotator"],
                "group": r["grp"],
                "sample_id": r["sample_id"],
                "dimension": dim,
                "model": None if pref else models[r["model"]],
                "step": None if r["step"] < 0 else r["step"] + 1,  # 1-based, as on the page
                "value": models[r["value"]] if pref else ("yes" if r["value"] else "no"),
                "shown_left": None if r.get("shown_left") is None else models[r["shown_left"]],
                "updated_at": r["updated_at"],
                "origin": r["origin"],
            }
        )
    return out


def write_results(review_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    import csv
    import io

    out = Path(out_dir)
    check_output(out, folder=True)
    res, ratings, models = results_from_store(review_dir)
    if not ratings:
        raise DataError(f"{review_dir}: no ratings yet")
    paths: dict[str, Path] = {}
    with staged_folder(out) as staging:  # every table and the figure, or none

        def write_csv(name: str, header: list[str], rows: list[list[Any]]) -> None:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(header)
            w.writerows(rows)
            atomic_write_text(staging / name, buf.getvalue())
            paths[name] = out / name

        write_csv("table2.csv", ["model", "group", *DIMENSIONS], table_rows(res))
        write_csv(
            "cells.csv",
            ["model", "group", "dimension", "value", "n"],
            [[c.model, c.group, c.dimension, c.value, c.n] for c in res.cells],
        )
        write_csv(
            "agreement.csv",
            ["group_a", "group_b", "dimension", "n_items", "n_ties", "percent_agreement", "cohen_kappa"],
            [[*a.groups, a.dimension, a.n_items, a.n_ties, a.percent_agreement, a.cohen_kappa] for a in res.agreements],
        )
        atomic_write_text(staging / "table2.md", to_markdown(res))
        paths["table2.md"] = out / "table2.md"
        raw = raw_rows(ratings, models)
        write_csv("ratings.csv", list(raw[0]), [list(r.values()) for r in raw])
        atomic_write_jsonl(staging / "ratings.jsonl", raw)
        paths["ratings.jsonl"] = out / "ratings.jsonl"
        plot_results(res, staging / "review_table2.png")
        paths["review_table2.png"] = out / "review_table2.png"
    return paths

"""The demo's one HTML report: self-contained (figures embedded), readable offline."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from deepmedix.data.images import open_image
from deepmedix.inference.overlay import draw_overlay
from deepmedix.io import atomic_write_text, read_json, read_jsonl

REPORT_COLUMNS = (
    ("bleu_1", "BLEU-1"),
    ("bleu_2", "BLEU-2"),
    ("bleu_3", "BLEU-3"),
    ("bleu_4", "BLEU-4"),
    ("meteor", "METEOR"),
    ("rouge_l", "ROUGE-L"),
    ("cider", "CIDEr"),
    ("f1_radgraph", "F1-RadGraph"),
    ("f1_chexbert_micro_5", "CheXbert Micro-5"),
    ("f1_chexbert_macro_5", "CheXbert Macro-5"),
    ("f1_chexbert_micro_14", "CheXbert Micro-14"),
    ("f1_chexbert_macro_14", "CheXbert Macro-14"),
    ("f1_chexpert_rules_micro_14", "Rules Micro-14"),
    ("f1_chexpert_rules_macro_14", "Rules Macro-14"),
    ("average", "Average"),
)
GROUNDING_COLUMNS = (
    ("box_precision", "box precision"),
    ("box_recall", "box recall"),
    ("mean_best_iou", "mean best IoU"),
    ("boxes_per_sample", "boxes / sample"),
)
MODEL_TITLES = {
    "base": "base model (think)",
    "stage1": "stage 1 · SFT (DeepMedix)",
    "stage2": "stage 2 · cold start",
    "stage3": "stage 3 · GRPO (DeepMedix-R1)",
}


def _png_data_url(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _file_data_url(path: str | Path | None) -> str | None:
    if not path or not Path(path).is_file():
        return None
    mime = "image/png" if str(path).endswith(".png") else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _table(metrics: dict[str, dict], group: str, columns: tuple[tuple[str, str], ...], sub: str | None = None) -> dict:
    """Rows per model for one benchmark group; the best value of each column is marked."""

    def value(name: str, key: str) -> float | None:
        m = metrics[name].get(group) or {}
        if sub:
            m = m.get(sub) or {}
        v = m.get(key)
        return float(v) if isinstance(v, (int, float)) else None

    present = [(k, label) for k, label in columns if any(value(n, k) is not None for n in metrics)]
    rows = []
    for name in metrics:
        vals = [value(name, k) for k, _ in present]
        rows.append({"model": MODEL_TITLES.get(name, name), "raw": vals})
    for j, (key, _) in enumerate(present):
        col = [r["raw"][j] for r in rows if r["raw"][j] is not None]
        # a column where every model scores the same has no best
        best = max(col) if len(set(col)) > 1 else None
        for r in rows:
            v = r["raw"][j]
            r.setdefault("cells", []).append(
                {
                    "text": "—" if v is None else f"{v:.4f}",
                    "best": v is not None and v == best and key != "boxes_per_sample",
                }
            )
    return {"benchmark": group, "metrics": [label for _, label in present], "rows": rows}


def _interval_cell(value: dict[str, float | None], signed: bool = False) -> dict[str, str]:
    if value.get("value") is None:
        return {"text": "—", "interval": ""}
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return {
        "text": fmt.format(value["value"]),
        "interval": f"[{fmt.format(value['low'])}, {fmt.format(value['high'])}]",
    }


def _verdict(values: dict[str, dict], metrics: dict[str, str]) -> str:
    """What a paired difference's intervals say, in words: the metrics whose interval lies above or below zero."""
    up = [title for m, title in metrics.items() if (values[m].get("low") or 0) > 0]
    down = [title for m, title in metrics.items() if (values[m].get("high") or 0) < 0]
    parts = [f"higher: {', '.join(up)}"] if up else []
    parts += [f"lower: {', '.join(down)}"] if down else []
    if not parts:
        return "every change within noise"
    return "; ".join(parts) + ("; the rest within noise" if len(up) + len(down) < len(metrics) else "")


def _stage_tables(path: str | None) -> dict[str, Any] | None:
    """The held-out comparison of the stages (``eval/stages.json``): per model and per consecutive pair."""
    if not path or not Path(path).is_file():
        return None
    comparison = read_json(path)
    metrics = comparison["metrics"]
    rows = [
        {"model": MODEL_TITLES.get(name, name), "cells": [_interval_cell(values[m]) for m in metrics]}
        for name, values in comparison["models"].items()
    ]
    differences = []
    for pair, values in comparison["differences"].items():
        before, after = pair.split(" → ")
        label = f"{MODEL_TITLES.get(before, before)} → {MODEL_TITLES.get(after, after)}"
        differences.append(
            {
                "model": label,
                "cells": [_interval_cell(values[m], signed=True) for m in metrics],
                "verdict": _verdict(values, metrics),
            }
        )
    by_task = ", ".join(f"{n} {task}" for task, n in comparison["n_by_task"].items())
    return {
        "metrics": list(metrics.values()),
        "rows": rows,
        "differences": differences,
        "note": f"{comparison['n']} {comparison.get('heldout', 'held-out samples')} ({by_task}); "
        f"{comparison['n_reference_boxes']} reference boxes in {comparison['n_with_reference_boxes']} samples. "
        f"Brackets: {round(100 * comparison['confidence'])}% {comparison['interval']}.",
    }


def _vqa_table(metrics: dict[str, dict], group: str) -> dict:
    types = sorted({t for m in metrics.values() for t in ((m.get(group) or {}).get("accuracy_by_question_type") or {})})
    cols = [("accuracy", "overall")] + [(t, t) for t in types]
    rows = []
    for name, m in metrics.items():
        g = m.get(group) or {}
        by = g.get("accuracy_by_question_type") or {}
        raw = [g.get("accuracy")] + [by.get(t) for t in types]
        rows.append({"model": MODEL_TITLES.get(name, name), "raw": raw})
    for j in range(len(cols)):
        col = [r["raw"][j] for r in rows if r["raw"][j] is not None]
        best = max(col) if len(set(col)) > 1 else None
        for r in rows:
            v = r["raw"][j]
            r.setdefault("cells", []).append(
                {"text": "—" if v is None else f"{v:.3f}", "best": v is not None and v == best}
            )
    return {"benchmark": group, "metrics": [c[1] for c in cols], "rows": rows}


def _vqa_figure(metrics: dict[str, dict], groups: list[str]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(max(6, 4.2 * len(groups)), 3.4), squeeze=False)
    names = list(metrics)
    for ax, group in zip(axes[0], groups, strict=True):
        types = sorted(
            {t for m in metrics.values() for t in ((m.get(group) or {}).get("accuracy_by_question_type") or {})}
        )
        x = np.arange(len(types))
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            by = (metrics[name].get(group) or {}).get("accuracy_by_question_type") or {}
            ax.bar(x + i * width, [by.get(t, 0.0) for t in types], width, label=MODEL_TITLES.get(name, name))
        ax.set_xticks(x + width * (len(names) - 1) / 2, types, rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(group, fontsize=10)
        ax.set_ylabel("accuracy")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _png_data_url(fig)


def _reward_figure(rewards_path: str | None) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rewards_path or not Path(rewards_path).is_file():
        return None
    rows = read_jsonl(rewards_path, tolerate_torn_tail=True)
    if not rows:
        return None
    keys = [k for k in rows[0] if k.startswith("rewards/") and k.endswith("/mean")]
    # the zero-weight monitors (valid boxes, IoU to the reference boxes) are read on the same 0–1 scale
    if "reward" in rows[0]:
        keys = ["reward", *keys]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    steps = [r["step"] for r in rows]
    for k in keys:
        ax.plot(steps, [r.get(k) for r in rows], marker=".", label=k.replace("rewards/", "").replace("/mean", ""))
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png_data_url(fig)


def _reward_caption(rewards_path: str | None) -> str:
    """First and last tenth of the GRPO steps, component by component, in one sentence."""
    if not rewards_path or not Path(rewards_path).is_file():
        return ""
    rows = read_jsonl(rewards_path, tolerate_torn_tail=True)
    if len(rows) < 2:
        return ""
    k = max(1, len(rows) // 10)

    def mean(key: str, part: list[dict]) -> float:
        vals = [r[key] for r in part if isinstance(r.get(key), (int, float))]
        return sum(vals) / len(vals) if vals else float("nan")

    parts = []
    for key, label in (
        ("reward", "total reward"),
        ("rewards/answer/mean", "answer"),
        ("rewards/format/mean", "format"),
        ("rewards/coordinate/mean", "coordinate"),
        ("rewards/valid_box_share/mean", "share of outputs whose boxes are all valid"),
        ("rewards/reference_iou/mean", "IoU of the cited boxes to the reference boxes"),
    ):
        if key in rows[0]:
            parts.append(f"{label} {mean(key, rows[:k]):.3f} → {mean(key, rows[-k:]):.3f}")
    return (
        f"Mean over the first and last {k} of {len(rows)} steps: " + "; ".join(parts) + ". These are the training "
        "prompts' sampled completions, a few prompts per step, so the curves are noisy; what stage 3 changed on "
        "held-out samples is in the table at the top."
    )


def _examples(predictions: dict[str, str], per_model: int = 2) -> list[dict[str, Any]]:
    """Predictions whose reasoning cites boxes (grounding first), drawn on the original X-ray."""

    out = []
    for name in ("stage3", "stage2", "base"):
        if name not in predictions:
            continue
        rows = read_jsonl(predictions[name], tolerate_torn_tail=True)
        # reasoning that cites boxes first (that is what the figure is for), grounding questions before others
        rows.sort(
            key=lambda r: (-sum(len(s.get("boxes") or []) for s in r.get("steps") or []), r.get("task") != "grounding")
        )
        for r in rows[:per_model]:
            try:
                img = open_image(r["image"]).rgb()
                drawn = draw_overlay(img, r.get("steps") or [])
            except (ValueError, OSError, KeyError):
                continue
            buf = io.BytesIO()
            drawn.save(buf, format="PNG")
            out.append(
                {
                    "image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
                    "model": MODEL_TITLES.get(name, name),
                    "id": r.get("id"),
                    "task": r.get("task"),
                    "prompt": r.get("prompt", "").split("\n\n")[0],
                    "steps": [s.get("text", "") for s in r.get("steps") or []],
                    "answer": r.get("prediction", ""),
                    "reference": r.get("reference", ""),
                }
            )
    return out


def write_demo_report(
    out: Path,
    records: list,
    data: dict[str, str],
    predictions: dict[str, str],
    metrics_paths: dict[str, str],
    arena: dict[str, str],
    review: dict[str, str],
    cfg: Any,
    base_model: str = "",
) -> Path:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    stage_tables = _stage_tables(metrics_paths.get("stages"))
    metrics = {name: read_json(p) for name, p in metrics_paths.items() if name != "stages"}
    groups = sorted({g for m in metrics.values() for g in m if not g.startswith("_") and g != "weighted_average"})
    report_groups = [g for g in groups if any((m.get(g) or {}).get("n_report") for m in metrics.values())]
    vqa_groups = [g for g in groups if any((m.get(g) or {}).get("n_vqa") for m in metrics.values())]
    grounded = [g for g in groups if any((m.get(g) or {}).get("grounding") for m in metrics.values())]
    report_tables = [_table(metrics, g, REPORT_COLUMNS) for g in report_groups]
    if any("weighted_average" in m for m in metrics.values()):
        report_tables.append(_table(metrics, "weighted_average", REPORT_COLUMNS) | {"benchmark": "weighted average"})
    grounding_table = _table(metrics, grounded[0], GROUNDING_COLUMNS, sub="grounding") if grounded else None

    scores = read_json(arena["scores"]) if Path(arena.get("scores", "")).is_file() else {}
    arena_scores = sorted(({"model": MODEL_TITLES.get(m, m), **v} for m, v in scores.items()), key=lambda r: r["rank"])
    arena_dir = Path(arena.get("dir", out / "arena"))
    arena_figures = [u for u in (_file_data_url(p) for p in sorted(arena_dir.glob("*.png"))) if u]

    rewards_log = next((r.outputs.get("rewards") for r in records if r.name == "train"), None)
    notes = sorted({n for m in metrics.values() for g in report_groups for n in (m.get(g) or {}).get("notes", [])})
    judge = (
        "the offline rules-labeler judge (prefers the report whose CheXpert-style labels agree more with the "
        "reference's; not an LLM)"
        if cfg.judge == "offline"
        else f"the LLM judge {cfg.judge_model} at {cfg.judge}"
    )
    context = {
        "title": "DeepMedix-R1, end to end",
        "subtitle": f"{f'the embedded {base_model} ' if base_model else 'the '}random Qwen2.5-VL on "
        f"{'the bundled sample' if cfg.data is None else cfg.data} · output in {out}",
        "stages": [{"name": r.name, "seconds": r.seconds, "skipped": r.skipped} for r in records],
        "data_note": (
            "Bundled data: VQA-RAD chest radiographs with their question–answer pairs (CC0), NIH ChestX-ray14 "
            "images with findings/impression written by a fixed template from their official labels (not radiologist "
            "reports), and synthetic phantom radiographs with lesions at known boxes: a training set and a held-out "
            "set drawn from other seeds. The model starts from random weights and trains for minutes on a CPU."
            if cfg.data is None
            else f"Data: {cfg.data}."
        ),
        "stage_tables": stage_tables,
        "real_note": (
            "What the real-image numbers below can and cannot mean: the bundled real radiographs are a few dozen "
            "VQA-RAD and NIH ChestX-ray14 images, and each benchmark group is scored on at most "
            f"{cfg.per_benchmark} test samples. A random-weight model trained for minutes on them learns their "
            "answer priors and the template wording of the NIH reports, not radiology: these tables show that every "
            "metric runs end to end on real images, while differences between stages on so few samples are within "
            "chance. Learning is measured in the held-out phantom table above."
            if cfg.data is None
            else ""
        ),
        "stats_figure": _file_data_url(data.get("stats_figure")),
        "report_tables": report_tables,
        "metrics_note": " ".join(notes) + " Best value per column in bold.",
        "vqa_tables": [_vqa_table(metrics, g) for g in vqa_groups],
        "vqa_figure": _vqa_figure(metrics, vqa_groups),
        "grounding_table": grounding_table,
        "reward_figure": _reward_figure(rewards_log),
        "reward_caption": _reward_caption(rewards_log),
        "arena_note": f"{cfg.arena_budget} comparisons drawn by the active sampling rule, each asked in both orders, "
        f"judged by {judge}. Scores: inverse-probability-weighted Bradley–Terry, min–max scaled to "
        "[0, 1], with bootstrap 95% intervals.",
        "arena_scores": arena_scores,
        "arena_figures": arena_figures,
        "examples": _examples(predictions),
        "review_note": "A blinded review set of stage 3 against the base model, for four physicians in two groups. "
        "Start the server and open a personal link from the tokens file:",
        "review_command": f"deepmedix review serve --dir {review.get('dir')}\n# links: {review.get('tokens')}\n"
        f"deepmedix review results --dir {review.get('dir')} --out {out / 'review_results'}",
        "further": [
            "Real data: <code>deepmedix prepare mimic-cxr|open-i|ms-cxr|ext-vqa|cxr-vqa --root DIR --out FILE</code>, "
            "XrayBench with <code>deepmedix prepare xraybench --root Qika/xraybench</code>, the paper's training sets "
            "with <code>deepmedix prepare mix FILES --test-split XRAYBENCH --out DIR</code>.",
            "Real weights on GPUs: <code>deepmedix demo --recipes recipes/qwen2.5-vl-7b --data FILE.jsonl</code> "
            "(see docs/gpu.md for hardware and time).",
            "A real teacher and judge: <code>--teacher URL --judge URL</code> (any OpenAI-compatible endpoint).",
            "CheXbert: <code>--chexbert PATH</code> adds the paper's F1-CheXbert columns.",
            "Ask the model yourself: <code>deepmedix serve --model "
            f"{Path(out) / 'models' / 'grpo' / 'final'}</code> and open http://127.0.0.1:8000.",
        ],
    }
    env = Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")), autoescape=select_autoescape(["html", "jinja"])
    )
    html = env.get_template("report.html.jinja").render(**context)
    path = Path(out) / "report.html"
    atomic_write_text(path, html)
    return path

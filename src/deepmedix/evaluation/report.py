"""Human-readable evaluation reports: Markdown and a self-contained HTML page (figures embedded as base64 PNG).

Figures follow the paper's Fig. 2/3: output-length distributions against the references, per-observation F1 bars,
VQA accuracy by question type (and per-object recall).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepmedix.evaluation.metrics import METRIC_LABELS, PAPER_REPORT_METRICS, EvalResults
from deepmedix.io import atomic_write_bytes, atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_TABLE = (
    *PAPER_REPORT_METRICS,
    "average",
    "cider",
    "f1_chexpert_rules_macro_14",
    "f1_chexpert_rules_micro_14",
    "f1_chexpert_rules_macro_5",
    "f1_chexpert_rules_micro_5",
)
GROUNDING_TABLE = (
    "n_grounded",
    "box_precision",
    "box_recall",
    "mean_best_iou",
    "boxes_per_sample",
    "pixel_iou",
    "pixel_precision",
    "pixel_recall",
    "pixel_precision_pass_rate",
)


def _fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _groups(metrics: EvalResults) -> dict[str, Mapping[str, Any]]:
    """The groups and the weighted average, each read by metric name (``_meta`` left out)."""
    return {k: v for k, v in metrics.items() if not k.startswith("_") and isinstance(v, dict)}


def _png(fig: Figure) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def make_figures(metrics: EvalResults) -> dict[str, bytes]:
    """name → PNG bytes, for every figure the metrics support."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, bytes] = {}
    groups = _groups(metrics)
    report_groups = {g: m for g, m in groups.items() if m.get("lengths")}
    if report_groups:
        n = len(report_groups)
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), squeeze=False)
        for ax, (g, m) in zip(axes[0], report_groups.items(), strict=True):
            pred, ref = m["lengths"]["prediction_words"], m["lengths"]["reference_words"]
            top = max([*pred, *ref, 1])
            bins = list(range(0, top + 10, max(1, (top + 10) // 30)))
            ax.hist(ref, bins=bins, alpha=0.55, label="reference", color="#4c72b0")
            ax.hist(pred, bins=bins, alpha=0.55, label="model", color="#dd8452")
            ax.set_title(g, fontsize=9)
            ax.set_xlabel("words")
            ax.set_ylabel("reports")
            ax.legend(fontsize=8)
        fig.suptitle("Output length against the reference", y=1.03)
        figs["eval_lengths"] = _png(fig)
    for source, key in (
        ("CheXbert", "per_observation_f1_chexbert"),
        ("CheXpert rules", "per_observation_f1_chexpert_rules"),
    ):
        have = {g: m for g, m in groups.items() if m.get(key)}
        if not have:
            continue
        fig, axes = plt.subplots(len(have), 1, figsize=(8, 3.0 * len(have)), squeeze=False)
        for ax, (g, m) in zip(axes[:, 0], have.items(), strict=True):
            support = m.get("observation_support") or {}
            # the paper shows the ten observations the reports mention most
            names = sorted(m[key], key=lambda o: -support.get(o, 0))[:10]
            ax.barh(names[::-1], [m[key][o] for o in names[::-1]], color="#55a868")
            ax.set_xlim(0, 1)
            ax.set_title(f"{g}: F1 per observation ({source})", fontsize=9)
            ax.tick_params(labelsize=8)
        fig.tight_layout()
        figs[f"eval_observation_f1_{'chexbert' if source == 'CheXbert' else 'rules'}"] = _png(fig)
    vqa_groups = {g: m for g, m in groups.items() if m.get("accuracy_by_question_type")}
    if vqa_groups:
        fig, axes = plt.subplots(len(vqa_groups), 2, figsize=(10, 3.2 * len(vqa_groups)), squeeze=False)
        for row, (g, m) in enumerate(vqa_groups.items()):
            acc = m["accuracy_by_question_type"]
            axes[row, 0].bar(list(acc), list(acc.values()), color="#8172b3")
            axes[row, 0].set_ylim(0, 1)
            axes[row, 0].set_title(f"{g}: accuracy by question type", fontsize=9)
            axes[row, 0].tick_params(axis="x", labelrotation=30, labelsize=8)
            rec = m.get("object_recall") or {}
            axes[row, 1].barh(list(rec)[::-1], list(rec.values())[::-1], color="#c44e52")
            axes[row, 1].set_xlim(0, 1)
            axes[row, 1].set_title(f"{g}: recall of the top-{len(rec)} objects", fontsize=9)
            axes[row, 1].tick_params(labelsize=8)
        figs["eval_vqa"] = _png(fig)
    return figs


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown_report(metrics: EvalResults, figure_files: dict[str, str] | None = None) -> str:
    groups = _groups(metrics)
    lines = ["# XrayBench evaluation", ""]
    meta = metrics.get("_meta") or {}
    if meta:
        lines += [f"Predictions: `{meta.get('predictions')}` ({meta.get('n_lines')} lines)", ""]
    report = {g: m for g, m in groups.items() if m.get("n_report") or g == "weighted_average"}
    if report:
        cols = [m for m in REPORT_TABLE if any(v.get(m) is not None for v in report.values())]
        lines += ["## Report generation", ""]
        lines += _table(
            ["group", "n", *(METRIC_LABELS.get(c, c) for c in cols)],
            [[g, _fmt(m.get("n_report")), *(_fmt(m.get(c)) for c in cols)] for g, m in report.items()],
        )
        lines += [
            "",
            'Macro/Micro-14/5 are F1-CheXbert; "Rules" columns are F1-CheXpert (rules) from the rule '
            "labeler, not CheXbert. Average = plain mean of the paper's 11 metrics present.",
            "",
        ]
        for g, m in report.items():
            for note in m.get("notes", []):
                lines.append(f"- {g}: {note}")
        lines.append("")
    vqa = {g: m for g, m in groups.items() if m.get("n_vqa")}
    if vqa:
        lines += ["## VQA", ""]
        types = sorted({t for m in vqa.values() for t in m.get("accuracy_by_question_type", {})})
        lines += _table(
            ["group", "n", "accuracy", *types],
            [
                [
                    g,
                    _fmt(m["n_vqa"]),
                    _fmt(m["accuracy"]),
                    *(_fmt(m["accuracy_by_question_type"].get(t)) for t in types),
                ]
                for g, m in vqa.items()
            ],
        )
        lines.append("")
        for g, m in vqa.items():
            if m.get("object_recall"):
                lines += [
                    f"Per-object recall, {g} (mean {_fmt(m.get('mean_object_recall'))}): "
                    + ", ".join(f"{o} {_fmt(v)}" for o, v in m["object_recall"].items()),
                    "",
                ]
    grounded = {g: m["grounding"] for g, m in groups.items() if (m.get("grounding") or {}).get("n_grounded")}
    if grounded:
        lines += ["## Grounding of the reasoning", ""]
        lines += _table(
            ["group", *GROUNDING_TABLE], [[g, *(_fmt(m.get(c)) for c in GROUNDING_TABLE)] for g, m in grounded.items()]
        )
        lines += [
            "",
            f"Box precision/recall at IoU ≥ {_fmt(next(iter(grounded.values())).get('iou_threshold'))}; "
            "pixel metrics as RadFact's (union masks on a 224×224 grid).",
            "",
        ]
    for name, file in (figure_files or {}).items():
        lines += [f"![{name}]({file})", ""]
    return "\n".join(lines)


def html_report(markdown_text: str, figures: dict[str, bytes]) -> str:
    """A self-contained page: the Markdown tables rendered as HTML, figures inline as data URLs."""
    body: list[str] = []
    in_table = False
    for line in markdown_text.splitlines():
        if line.startswith("!["):
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if not in_table:
                body.append("<table>")
                body.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells) + "</tr>")
                in_table = True
            else:
                body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("- "):
            body.append(f"<p class='note'>{html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    for name, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
        "margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "th{background:#f3f3f3}td:first-child{text-align:left}.note{color:#666;font-size:13px;margin:2px}"
        "img{max-width:100%}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>XrayBench evaluation</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def write_reports(metrics: EvalResults, out_dir: str | Path, figures: bool = True) -> dict[str, Path]:
    out_dir = Path(out_dir)
    figs = make_figures(metrics) if figures else {}
    files: dict[str, str] = {}
    for name, png in figs.items():
        atomic_write_bytes(out_dir / "figures" / f"{name}.png", png)
        files[name] = f"figures/{name}.png"
    md = markdown_report(metrics, files)
    atomic_write_text(out_dir / "report.md", md)
    atomic_write_text(out_dir / "report.html", html_report(md, figs))
    return {"markdown": out_dir / "report.md", "html": out_dir / "report.html"}

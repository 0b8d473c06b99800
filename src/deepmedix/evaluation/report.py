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

from deepmedix.evaluation.metrics import METRIC_LABELS, PAPER_REPORT_METRICS, EvalResults, is_group
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


def _fmt_ci(v: object) -> str:
    """A [low, high] interval, or — when there is none."""
    if isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
        return f"[{v[0]:.4f}, {v[1]:.4f}]"
    return "—"


def truncation_warning(n_truncated: int, n_known: int) -> str:
    return (
        f"{n_truncated} of {n_known} completions hit the token limit: their answers are what the model wrote before "
        "it was cut off"
    )


def _groups(metrics: EvalResults) -> dict[str, Mapping[str, Any]]:
    """The groups and the weighted average, each read by metric name (``_meta``, ``paper_comparison`` left out)."""
    return {k: v for k, v in metrics.items() if is_group(k, v)}


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


def _truncation_lines(groups: dict[str, Mapping[str, Any]]) -> list[str]:
    """Warnings first (any completion cut off), then the per-group counts and the metrics without those lines."""
    counted = {g: m for g, m in groups.items() if m.get("n_truncation_known")}
    lines: list[str] = []
    for g, m in counted.items():
        if m.get("n_truncated"):
            lines.append(f"> **Warning — {g}:** {truncation_warning(m['n_truncated'], m['n_truncation_known'])}.")
    if lines:
        lines.append("")
    if not counted:
        return lines
    lines += ["## Completions cut off at the token limit", ""]
    lines += _table(
        ["group", "lines", "say whether cut off", "cut off", "share"],
        [
            [
                g,
                _fmt(m.get("n")),
                _fmt(m["n_truncation_known"]),
                _fmt(m.get("n_truncated")),
                _fmt(m.get("truncated_share")),
            ]
            for g, m in counted.items()
        ],
    )
    lines += [
        "",
        "Cut-off completions are scored as written. Lines without a `truncated` flag (or `finish_reason`) are not "
        "counted either way.",
        "",
    ]
    for g, m in counted.items():
        sub = m.get("non_truncated")
        if not sub or not sub.get("n"):
            continue
        keys = [k for k in (*REPORT_TABLE, "accuracy") if isinstance(m.get(k), float) and isinstance(sub.get(k), float)]
        if not keys:
            continue
        lines += [f"{g}: all {m.get('n')} lines against the {sub['n']} not cut off ({sub.get('note', '')}).", ""]
        lines += _table(
            ["lines", *(METRIC_LABELS.get(k, k) for k in keys)],
            [
                ["all", *(_fmt(m.get(k)) for k in keys)],
                ["not cut off", *(_fmt(sub.get(k)) for k in keys)],
                ["↳ 95 % CI", *(_fmt_ci((sub.get("ci") or {}).get(k)) for k in keys)],
            ],
        )
        lines.append("")
    return lines


def _paper_lines(comparison: Mapping[str, Any]) -> list[str]:
    """This run beside the paper's numbers, one table per group: metrics as columns, models as rows."""
    lines = ["## Against the paper", "", f"Source: {comparison['source']}; {', '.join(comparison['tables'])}.", ""]
    lines += [
        f"**{comparison['note']}** A cell reads `paper value (Δ) ✓` when the paper's number lies inside this run's "
        "interval and `✗` when it does not; a cell with the paper's value alone has nothing of this run to compare.",
        "",
    ]
    for g, block in comparison["groups"].items():
        metrics = block["metrics"]
        cols = list(metrics)
        lines += [f"### {g} — the paper's {block['label_in_paper']} ({block['table']})", ""]
        if block.get("not_comparable"):
            lines += [f"- not comparable: {block['not_comparable']}", ""]

        rows = [
            ["this run", *(_fmt(metrics[c]["this_run"]) if not metrics[c].get("absent") else "absent" for c in cols)],
            ["↳ 95 % CI", *(_fmt_ci(metrics[c]["ci"]) for c in cols)],
        ]
        models = [x for x in comparison["models"] if any(x in metrics[c]["paper"] for c in cols)]
        for model in models:
            cells = []
            for c in cols:
                e = metrics[c]["paper"].get(model)
                if e is None:
                    cells.append("")
                    continue
                cell = _fmt(e["value"])
                if e["difference"] is not None:
                    cell += f" ({e['difference']:+.4f})"
                if e["inside_interval"] is not None:
                    cell += " ✓" if e["inside_interval"] else " ✗"
                cells.append(cell)
            rows.append([model, *cells])
        lines += _table(["", *(METRIC_LABELS.get(c, c) for c in cols)], rows)
        lines.append("")
        for c in cols:
            if block.get("not_comparable"):
                continue
            if metrics[c].get("not_comparable"):
                lines.append(f"- {METRIC_LABELS.get(c, c)}: not comparable: {metrics[c]['not_comparable']}")
            elif metrics[c].get("absent"):
                lines.append(f"- {METRIC_LABELS.get(c, c)}: absent from this run (not computed), not zero")
        lines.append("")
    return lines


def markdown_report(metrics: EvalResults, figure_files: dict[str, str] | None = None) -> str:
    groups = _groups(metrics)
    lines = ["# XrayBench evaluation", ""]
    meta = metrics.get("_meta") or {}
    if meta:
        lines += [f"Predictions: `{meta.get('predictions')}` ({meta.get('n_lines')} lines)", ""]
    lines += _truncation_lines(groups)
    intervals = meta.get("intervals") if isinstance(meta, dict) else None
    if intervals:
        approx = "; ".join(f"{k}: {v}" for k, v in (intervals.get("approximate") or {}).items())
        lines += [
            f"Intervals: {intervals['level']:.0%} {intervals['method']} ({intervals['resamples']} resamples, seed "
            f"{intervals['seed']}). Approximate: {approx}.",
            "",
        ]
    report = {g: m for g, m in groups.items() if m.get("n_report") or g == "weighted_average"}
    if report:
        cols = [m for m in REPORT_TABLE if any(v.get(m) is not None for v in report.values())]
        lines += ["## Report generation", ""]
        rows = []
        for g, m in report.items():
            rows.append([g, _fmt(m.get("n_report")), *(_fmt(m.get(c)) for c in cols)])
            if m.get("ci"):
                rows.append(["↳ 95 % CI", "", *(_fmt_ci(m["ci"].get(c)) for c in cols)])
        lines += _table(["group", "n", *(METRIC_LABELS.get(c, c) for c in cols)], rows)
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
        rows = []
        for g, m in vqa.items():
            rows.append(
                [
                    g,
                    _fmt(m["n_vqa"]),
                    _fmt(m["accuracy"]),
                    *(_fmt(m["accuracy_by_question_type"].get(t)) for t in types),
                ]
            )
            ci = m.get("ci") or {}
            if ci:
                by_type = ci.get("accuracy_by_question_type") or {}
                rows.append(["↳ 95 % CI", "", _fmt_ci(ci.get("accuracy")), *(_fmt_ci(by_type.get(t)) for t in types)])
        lines += _table(["group", "n", "accuracy", *types], rows)
        lines.append("")
        for g, m in vqa.items():
            if m.get("object_recall"):
                ci = (m.get("ci") or {}).get("mean_object_recall")
                lines += [
                    f"Per-object recall, {g} (mean {_fmt(m.get('mean_object_recall'))}"
                    + (f", 95 % CI {_fmt_ci(ci)}" if ci else "")
                    + "): "
                    + ", ".join(f"{o} {_fmt(v)}" for o, v in m["object_recall"].items()),
                    "",
                ]
    grounded = {g: m for g, m in groups.items() if (m.get("grounding") or {}).get("n_grounded")}
    if grounded:
        lines += ["## Grounding of the reasoning", ""]
        rows = []
        for g, m in grounded.items():
            rows.append([g, *(_fmt(m["grounding"].get(c)) for c in GROUNDING_TABLE)])
            ci = (m.get("ci") or {}).get("grounding") or {}
            if ci:
                rows.append(["↳ 95 % CI", *(_fmt_ci(ci.get(c)) for c in GROUNDING_TABLE)])
        lines += _table(["group", *GROUNDING_TABLE], rows)
        lines += [
            "",
            f"Box precision/recall at IoU ≥ {_fmt(next(iter(grounded.values()))['grounding'].get('iou_threshold'))}; "
            "pixel metrics as RadFact's (union masks on a 224×224 grid).",
            "",
        ]
    comparison = metrics.get("paper_comparison")
    if isinstance(comparison, dict) and comparison.get("groups"):
        lines += _paper_lines(comparison)
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
        elif line.startswith("### "):
            body.append(f"<h3>{html.escape(line[4:])}</h3>")
        elif line.startswith("> "):
            body.append(f"<p class='warning'>{html.escape(line[2:].replace('**', ''))}</p>")
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
        ".warning{background:#fff3cd;border:1px solid #e0b000;padding:6px 10px;font-weight:600}"
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

"""This run beside the DeepMedix-R1 paper's published numbers, when the benchmark is XrayBench.

``paper/xraybench_table1.json`` holds the paper's Table 1 (report generation: ten models × the four report groups
and their weighted average × BLEU-1..4, METEOR, ROUGE-L, F1-RadGraph, F1-CheXbert micro/macro over 14 and 5
observations, Average) and the overall VQA numbers its text quotes (accuracy and mean top-10 object recall on
Ext-VQA and CXR-VQA), cited to arXiv:2509.03906 v1, keyed by the group names ``deepmedix prepare xraybench`` gives
(``mimic-cxr/findings`` …, ``ext-vqa/vqa``, ``cxr-vqa/vqa``).

For every such group in a run and every metric the paper reports: this run's number and its 95 % bootstrap interval,
the paper's number for each model it lists, the difference (this run − paper) and whether the paper's number lies
inside this run's interval. The paper gives point values only, so the check is one-sided: only this run's uncertainty
is known. A metric this run did not compute (no CheXbert checkpoint, no RadGraph model) is shown as absent, never as
zero, and an Average over fewer than the paper's 11 metrics is marked as not comparable.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from deepmedix.evaluation.metrics import PAPER_REPORT_METRICS, EvalResults, PaperComparison, is_group

TABLE_FILE = "paper/xraybench_table1.json"
NO_INTERVALS = (
    "The paper reports no intervals (point values only): inside_interval says whether the paper's number lies inside "
    "this run's 95 % bootstrap interval; difference = this run − paper."
)


@cache
def paper_tables() -> dict[str, Any]:
    """The published numbers: source, tables (Table 1 and the VQA numbers), each with groups → rows → metric."""
    text = resources.files("deepmedix.evaluation").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def paper_groups() -> dict[str, tuple[str, dict[str, Any]]]:
    """Group name → (table key, the table's block for that group)."""
    return {g: (key, block) for key, table in paper_tables()["tables"].items() for g, block in table["groups"].items()}


def _entry(
    value: float | None, interval: Any, paper_rows: dict[str, dict[str, float]], metric: str, not_comparable: str | None
) -> dict[str, Any]:
    lo_hi = tuple(interval) if isinstance(interval, list | tuple) and len(interval) == 2 else None
    entry: dict[str, Any] = {"this_run": value, "ci": list(lo_hi) if lo_hi else None, "paper": {}}
    if value is None:
        entry["absent"] = True
    if not_comparable:
        entry["not_comparable"] = not_comparable
    compare = value is not None and not not_comparable
    for model, row in paper_rows.items():
        published = row.get(metric)
        if published is None:
            continue
        entry["paper"][model] = {
            "value": published,
            "difference": value - published if compare else None,  # type: ignore[operator]
            "inside_interval": bool(lo_hi[0] <= published <= lo_hi[1]) if compare and lo_hi else None,
        }
    return entry


def paper_comparison(results: EvalResults) -> PaperComparison | None:
    """The side-by-side block for ``metrics.json`` (None when no group of the run is an XrayBench group)."""
    known = paper_groups()
    if not any(is_group(g, m) and g in known and g != "weighted_average" for g, m in results.items()):
        return None
    tables = paper_tables()
    groups = [g for g in known if g in results]  # the paper's order: Table 1's blocks, then the VQA sets
    out_groups: dict[str, Any] = {}
    used_tables: list[str] = []
    models: list[str] = []
    for g in groups:
        table_key, block = known[g]
        table = tables["tables"][table_key]
        m: dict[str, Any] = dict(results[g])  # type: ignore[arg-type]
        ci = m.get("ci") or {}
        out_group: dict[str, Any] = {"label_in_paper": block["label"], "table": table["name"]}
        group_reason = None
        if g == "weighted_average":
            have = sorted(m.get("groups") or [])
            report_groups = sorted(x for x, (k, _) in known.items() if k == "table_1" and x != "weighted_average")
            if have != report_groups:
                group_reason = out_group["not_comparable"] = (
                    "this run's weighted average is over " + (", ".join(have) or "no groups") + "; the paper's is over "
                    "the four report groups " + ", ".join(report_groups)
                )
        metrics: dict[str, Any] = {}
        for metric in table["columns"].values():
            reason = group_reason
            over = m.get("average_over") or []
            if metric == "average" and m.get("average") is not None and len(over) < len(PAPER_REPORT_METRICS):
                reason = (
                    f"this run's Average is over {len(over)} of the paper's 11 metrics "
                    f"(missing: {', '.join(x for x in PAPER_REPORT_METRICS if x not in over)})"
                )
            metrics[metric] = _entry(m.get(metric), ci.get(metric), block["rows"], metric, reason)
        out_group["metrics"] = metrics
        out_groups[g] = out_group
        if table["name"] not in used_tables:
            used_tables.append(table["name"])
        models += [x for x in table["models"] if x not in models]
    return {
        "source": f"{tables['source']} ({tables['url']})",
        "tables": used_tables,
        "note": NO_INTERVALS,
        "models": models,
        "groups": out_groups,
    }

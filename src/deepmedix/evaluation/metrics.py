"""What ``metrics.json`` holds: the metrics' names and labels, the shape of a group's metrics, and the paper's two
aggregates ("Average" and "Weighted Average").

The lowest module of the evaluation room: the scorers, the reports and the evaluator all import their metric names
and result types from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

# The paper's 11 report metrics, in Table 1's order; "Average" is their plain mean.
PAPER_REPORT_METRICS: tuple[str, ...] = (
    "bleu_1",
    "bleu_2",
    "bleu_3",
    "bleu_4",
    "meteor",
    "rouge_l",
    "f1_radgraph",
    "f1_chexbert_macro_14",
    "f1_chexbert_micro_14",
    "f1_chexbert_macro_5",
    "f1_chexbert_micro_5",
)
# The four clinical F1 numbers of one labeler, in the order a group's metrics list them.
CHEXBERT_F1: tuple[str, ...] = (
    "f1_chexbert_micro_14",
    "f1_chexbert_macro_14",
    "f1_chexbert_micro_5",
    "f1_chexbert_macro_5",
)
RULES_F1: tuple[str, ...] = (
    "f1_chexpert_rules_micro_14",
    "f1_chexpert_rules_macro_14",
    "f1_chexpert_rules_micro_5",
    "f1_chexpert_rules_macro_5",
)
# Every report metric the "Weighted Average" averages over the report groups.
WEIGHTED_METRICS: tuple[str, ...] = (
    *PAPER_REPORT_METRICS,
    "cider",
    *RULES_F1,
    "f1_radgraph_simple",
    "f1_radgraph_complete",
)
METRIC_LABELS: dict[str, str] = {
    "bleu_1": "BLEU-1",
    "bleu_2": "BLEU-2",
    "bleu_3": "BLEU-3",
    "bleu_4": "BLEU-4",
    "meteor": "METEOR",
    "rouge_l": "ROUGE-L",
    "cider": "CIDEr",
    "f1_radgraph": "F1-RadGraph",
    "f1_chexbert_macro_14": "Macro-14",
    "f1_chexbert_micro_14": "Micro-14",
    "f1_chexbert_macro_5": "Macro-5",
    "f1_chexbert_micro_5": "Micro-5",
    "f1_chexpert_rules_macro_14": "Rules Macro-14",
    "f1_chexpert_rules_micro_14": "Rules Micro-14",
    "f1_chexpert_rules_macro_5": "Rules Macro-5",
    "f1_chexpert_rules_micro_5": "Rules Micro-5",
    "average": "Average",
    "accuracy": "Accuracy",
    "mean_object_recall": "Top-10 object recall",
}


class Lengths(TypedDict):
    """Words per report, for the length figures."""

    prediction_words: list[int]
    reference_words: list[int]


class ReportMetrics(TypedDict, total=False):
    """A group's report metrics. A metric whose model was not given is None (never 0) and ``notes`` says why."""

    bleu_1: float | None
    bleu_2: float | None
    bleu_3: float | None
    bleu_4: float | None
    meteor: float | None
    rouge_l: float | None
    cider: float | None
    f1_chexbert_micro_14: float | None
    f1_chexbert_macro_14: float | None
    f1_chexbert_micro_5: float | None
    f1_chexbert_macro_5: float | None
    per_observation_f1_chexbert: dict[str, float]
    observation_support: dict[str, int]  # reference reports mentioning each observation
    f1_chexpert_rules_micro_14: float | None
    f1_chexpert_rules_macro_14: float | None
    f1_chexpert_rules_micro_5: float | None
    f1_chexpert_rules_macro_5: float | None
    per_observation_f1_chexpert_rules: dict[str, float]
    f1_radgraph: float | None  # the partial level
    f1_radgraph_simple: float | None
    f1_radgraph_partial: float | None
    f1_radgraph_complete: float | None
    average: float | None
    average_over: list[str]
    mean_prediction_words: float
    mean_reference_words: float
    lengths: Lengths
    notes: list[str]


class VQAMetrics(TypedDict, total=False):
    """VQA accuracy and its breakdowns (only ``n`` and ``accuracy`` when there is nothing to score)."""

    n: int
    accuracy: float | None
    accuracy_by_question_type: dict[str, float]
    n_by_question_type: dict[str, int]
    accuracy_by_answer_type: dict[str, float]
    object_recall: dict[str, float]  # the most frequent reference objects, most frequent first
    object_support: dict[str, int]
    mean_object_recall: float | None


class GroundingMetrics(TypedDict, total=False):
    """Boxes of the reasoning against the reference boxes (only ``n_grounded`` when no line has reference boxes)."""

    n_grounded: int
    iou_threshold: float
    box_precision: float | None
    box_recall: float | None
    mean_best_iou: float | None
    boxes_per_sample: float
    samples_without_boxes: int
    pixel_iou: float | None
    pixel_precision: float | None
    pixel_recall: float | None
    pixel_precision_pass_rate: float


class GroupMetrics(ReportMetrics, VQAMetrics, total=False):
    """Everything scored for one group (benchmark or split); ``n`` counts all its lines."""

    n_report: int
    n_vqa: int
    n_grounding: int
    grounding_answer_accuracy: float
    grounding: GroundingMetrics
    # 95 % bootstrap interval [low, high] of each metric above, under the same names (nested like the metrics;
    # the grounding block's under "grounding"); null where no resample defines the metric
    ci: dict[str, Any]
    # completions that hit the generation limit, over the lines that say whether they did (None: no line says)
    n_truncated: int | None
    n_truncation_known: int
    truncated_share: float | None
    # when some completions were cut off: the metrics (and intervals) of the lines marked not truncated
    non_truncated: dict[str, Any]


class WeightedAverage(ReportMetrics, total=False):
    """The paper's "Weighted Average": report metrics averaged over the report groups, weighted by their sizes."""

    groups: list[str]
    n_report: int
    ci: dict[str, Any]


class EvalMeta(TypedDict, total=False):
    """``metrics.json``'s ``_meta``: what was scored, with what (``deepmedix bench`` adds the model and adapter)."""

    predictions: str
    n_lines: int
    chexbert: str | None
    radgraph: str | None
    iou_threshold: float
    model: str
    adapter: str
    benchmark: str
    intervals: dict[str, Any]  # how the intervals were made: method, resamples, seed, level, approximate metrics
    per_sample: str  # the file of per-sample statistics beside metrics.json
    n_truncated: int | None
    n_truncation_known: int


# Top-level keys of metrics.json that are not groups (besides those starting with "_").
NOT_GROUPS = frozenset({"paper_comparison"})


class PaperComparison(TypedDict, total=False):
    """This run beside the paper's published numbers (XrayBench groups only; see deepmedix.evaluation.paper)."""

    source: str
    tables: list[str]
    note: str
    models: list[str]
    groups: dict[str, Any]  # group → metric → {this_run, ci, paper: {model: {value, difference, inside_interval}}}


# metrics.json: group name → GroupMetrics, "weighted_average" → WeightedAverage, "_meta" → EvalMeta,
# "paper_comparison" (XrayBench groups only) → PaperComparison.
EvalResults = dict[str, GroupMetrics | WeightedAverage | EvalMeta | PaperComparison]


def is_group(key: str, value: object) -> bool:
    """Whether a top-level entry of metrics.json is a group's metrics (or the weighted average)."""
    return not key.startswith("_") and key not in NOT_GROUPS and isinstance(value, dict)


def paper_average(metrics: Mapping[str, Any]) -> tuple[float | None, list[str]]:
    """The paper's "Average": the plain mean of its 11 report metrics, over those present."""
    present = [m for m in PAPER_REPORT_METRICS if metrics.get(m) is not None]
    if not present:
        return None, []
    return sum(float(metrics[m]) for m in present) / len(present), present


def weighted_average(groups: Mapping[str, Mapping[str, Any]]) -> WeightedAverage:
    """Size-weighted mean over report groups of every metric they report (the paper's "Weighted Average")."""
    report_groups = {g: m for g, m in groups.items() if m.get("n_report")}
    out: dict[str, Any] = {
        "groups": sorted(report_groups),
        "n_report": sum(m["n_report"] for m in report_groups.values()),
    }
    for k in WEIGHTED_METRICS:
        have = [(m[k], m["n_report"]) for m in report_groups.values() if m.get(k) is not None]
        if have and len(have) == len(report_groups):
            out[k] = sum(v * n for v, n in have) / sum(n for _, n in have)
        else:
            out[k] = None
    out["average"], out["average_over"] = paper_average(out)
    return cast(WeightedAverage, out)

"""XrayBench evaluation of a prediction file: every metric of the paper, grouped by benchmark, plus reports.

Input: a JSONL of prediction lines (the inference format, or any file with the fields in
:mod:`deepmedix.evaluation.predictions`). Output: ``DIR/metrics.json`` (group → metric → value, with a 95 % bootstrap
interval per metric under ``ci``), ``DIR/per_sample.jsonl`` (each line's statistics, from which any metric of any
subset is recomputed: :mod:`deepmedix.evaluation.resampling`), ``DIR/report.md``, ``DIR/report.html``
(self-contained) and the figures as PNGs in ``DIR/figures/``.

Completions that hit the generation limit (``truncated`` on the line) are scored as written, counted per group, and
the metrics of the other lines are given beside them. On XrayBench groups the paper's published numbers are put next
to this run's (:mod:`deepmedix.evaluation.paper`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from deepmedix.evaluation.chexbert import CheXbertLabeler, cached_classes
from deepmedix.evaluation.clinical import (
    ClinicalScores,
    binarize_chexbert_classes,
    clinical_f1,
    rules_labels,
)
from deepmedix.evaluation.grounding import grounding_metrics_from_scores, sample_box_scores
from deepmedix.evaluation.memo import open_label_cache
from deepmedix.evaluation.metrics import (
    CHEXBERT_F1,
    METRIC_LABELS,
    PAPER_REPORT_METRICS,
    RULES_F1,
    WEIGHTED_METRICS,
    EvalResults,
    GroupMetrics,
    ReportMetrics,
    paper_average,
    weighted_average,
)
from deepmedix.evaluation.nlg import NLGScorer
from deepmedix.evaluation.options import EvalOptions
from deepmedix.evaluation.paper import paper_comparison
from deepmedix.evaluation.predictions import PredictionRow, TaskKind, load_predictions, truncation_flag
from deepmedix.evaluation.radgraph import f1_radgraph
from deepmedix.evaluation.report import write_reports
from deepmedix.evaluation.resampling import (
    APPROXIMATE,
    GroupSamples,
    MeteorOfSums,
    MetricKey,
    SampleRecord,
    bootstrap_replicates,
    group_rng,
    metrics_of_sums,
    nest,
    percentile_interval,
    reference_digest,
)
from deepmedix.evaluation.vqa import score_answer, vqa_metrics_from_samples, vqa_sample_scores
from deepmedix.io import atomic_write_json, atomic_write_jsonl, cache_root, check_output, staged_folder

if TYPE_CHECKING:
    from deepmedix.endpoints import ResponseCache

log = logging.getLogger(__name__)

PER_SAMPLE_FILE = "per_sample.jsonl"
LEVEL = 0.95
INTERVAL_METHOD = (
    "percentile bootstrap over the group's lines (resampled with replacement within each task kind); every metric "
    "recomputed from per-sample statistics, exactly as the scorer computes it, except where 'approximate' says"
)


def _clinical_keys(keys: tuple[str, ...], scores: ClinicalScores) -> dict[str, float | None]:
    """A labeler's four F1 numbers under its metric names (``keys``: micro-14, macro-14, micro-5, macro-5)."""
    values = (scores["micro_f1_14"], scores["macro_f1_14"], scores["micro_f1_5"], scores["macro_f1_5"])
    return dict(zip(keys, values, strict=True))


class Evaluator:
    """Scores groups of prediction lines; heavy scorers (METEOR, CheXbert) are started once and reused."""

    def __init__(self, options: EvalOptions | None = None) -> None:
        self.options = options or EvalOptions()
        self._nlg: NLGScorer | None = None
        self._chexbert: CheXbertLabeler | None = None
        self._label_cache: ResponseCache | None = None

    def close(self) -> None:
        if self._nlg is not None:
            self._nlg.close()
            self._nlg = None
        if self._label_cache is not None:
            self._label_cache.close()
            self._label_cache = None

    @property
    def label_cache(self) -> ResponseCache | None:
        """The per-text store of CheXbert labels and RadGraph annotations (opened when a model needs it)."""
        if self._label_cache is None and self.options.cache:
            self._label_cache = open_label_cache(self.options.cache_dir or cache_root())
        return self._label_cache

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def nlg(self) -> NLGScorer:
        if self._nlg is None:
            self._nlg = NLGScorer(meteor=self.options.meteor)
        return self._nlg

    @property
    def chexbert(self) -> CheXbertLabeler | None:
        if self._chexbert is None and self.options.chexbert is not None:
            ckpt = Path(self.options.chexbert)
            tok = self.options.chexbert_tokenizer or ckpt.parent
            self._chexbert = CheXbertLabeler(
                ckpt, tok, min_vocab_size=self.options.chexbert_min_vocab, batch_size=self.options.chexbert_batch_size
            )
        return self._chexbert

    @property
    def meteor_of_sums(self) -> MeteorOfSums | None:
        """METEOR of summed statistics, by the jar (None when METEOR is switched off)."""
        return self.nlg.meteor_of_sums if self.options.meteor else None

    def report_scores(
        self, predictions: Sequence[str], references: Sequence[str]
    ) -> tuple[ReportMetrics, list[dict[str, Any]]]:
        """Every report metric of one group's (prediction, reference) pairs, and each pair's statistics.

        The Java tools work while Python does: the tokenizer runs while the rule labeler does, and METEOR's process
        gets its segments before BLEU, ROUGE-L, CIDEr, CheXbert and RadGraph are computed, and is collected last.
        """
        n = len(predictions)
        notes: list[str] = []
        per: list[dict[str, Any]] = [{} for _ in range(n)]
        nlg = self.nlg
        nlg.warm_up()  # the METEOR JVM loads its tables from now on
        tokens = nlg.tokenize(list(predictions) + list(references))
        clinical: dict[str, Any] = {}
        if self.options.rules:
            ref_rules, pred_rules = rules_labels(predictions, references)
            rules = clinical_f1(ref_rules, pred_rules)
            clinical.update(_clinical_keys(RULES_F1, rules))
            clinical["per_observation_f1_chexpert_rules"] = rules["per_observation"]
            support = rules["support"]
            for i in range(n):
                per[i]["chexpert_rules"] = {"prediction": pred_rules[i].tolist(), "reference": ref_rules[i].tolist()}
        else:
            notes.append("F1-CheXpert (rules) not computed (rules switched off)")
        tok = tokens.result()
        run = nlg.start(tok[:n], tok[n:])  # METEOR works in its own process from here on
        chexbert: dict[str, Any] = {}
        if self.chexbert is not None:
            ref_cls = binarize_chexbert_classes(cached_classes(self.chexbert, references, self.label_cache))
            pred_cls = binarize_chexbert_classes(cached_classes(self.chexbert, predictions, self.label_cache))
            scores = clinical_f1(ref_cls, pred_cls)
            chexbert.update(_clinical_keys(CHEXBERT_F1, scores))
            chexbert["per_observation_f1_chexbert"] = scores["per_observation"]
            chexbert["observation_support"] = scores["support"]
            for i in range(n):
                per[i]["chexbert"] = {"prediction": pred_cls[i].tolist(), "reference": ref_cls[i].tolist()}
        else:
            chexbert.update(dict.fromkeys(CHEXBERT_F1))
            notes.append("F1-CheXbert absent: no CheXbert checkpoint given (--chexbert)")
        radgraph: dict[str, Any] = {}
        if self.options.radgraph is not None:
            rg = f1_radgraph(
                predictions,
                references,
                self.options.radgraph_python,
                self.options.radgraph,
                model_type=self.options.radgraph_model_type,
                base_model=self.options.radgraph_base_model,
                cache=self.label_cache,
            )
            radgraph.update({k: v for k, v in rg.items() if k != "per_sample"})
            for i, levels in enumerate(rg["per_sample"]):
                per[i]["radgraph"] = dict(levels)
        else:
            radgraph["f1_radgraph"] = None
            notes.append("F1-RadGraph absent: no RadGraph model given (--radgraph)")
        scored = nlg.finish(run)
        if scored["corpus"].get("meteor") is None:
            notes.insert(0, "METEOR not computed (--no-meteor)")
        for i in range(n):
            per[i]["bleu"] = scored["stats"]["bleu"][i]
            if scored["stats"]["meteor"]:
                per[i]["meteor"] = scored["stats"]["meteor"][i]
            per[i]["rouge_l"] = scored["per_sample"]["rouge_l"][i]
            per[i]["cider"] = scored["per_sample"]["cider"][i]
        out: dict[str, Any] = {**scored["corpus"], **chexbert, **clinical}  # by metric name; shaped ReportMetrics
        if clinical:
            out.setdefault("observation_support", support)  # CheXbert's when it labelled, else the rules'
        out.update(radgraph)
        out["average"], out["average_over"] = paper_average(out)
        if out["average"] is not None and len(out["average_over"]) < len(PAPER_REPORT_METRICS):
            notes.append(
                f"average over {len(out['average_over'])} of the paper's 11 metrics: "
                + ", ".join(METRIC_LABELS[m] for m in out["average_over"])
            )
        pred_words, ref_words = [len(p.split()) for p in predictions], [len(r.split()) for r in references]
        out["mean_prediction_words"] = sum(pred_words) / max(len(pred_words), 1)
        out["mean_reference_words"] = sum(ref_words) / max(len(ref_words), 1)
        out["lengths"] = {"prediction_words": pred_words, "reference_words": ref_words}
        out["notes"] = notes
        return cast(ReportMetrics, out), per

    def report_metrics(self, predictions: Sequence[str], references: Sequence[str]) -> ReportMetrics:
        """Every report metric of one group's (prediction, reference) pairs; a metric whose model was not given is
        None, with a note."""
        return self.report_scores(predictions, references)[0]

    def _score_group(self, name: str, items: Sequence[PredictionRow]) -> tuple[GroupMetrics, list[SampleRecord]]:
        """One group's metrics and its lines' records (statistics for intervals and comparisons)."""
        m: GroupMetrics = {"n": len(items)}
        records: list[SampleRecord] = [
            {
                "group": name,
                "id": r["id"],
                "kind": str(r["kind"]),
                "truncated": truncation_flag(r),
                "reference_sha256": reference_digest(r["reference"]),
            }
            for r in items
        ]
        reports = [i for i, r in enumerate(items) if r["kind"] is TaskKind.REPORT]
        vqa = [i for i, r in enumerate(items) if r["kind"] is TaskKind.VQA]
        if reports:
            m["n_report"] = len(reports)
            metrics, per = self.report_scores(
                [items[i]["answer"] for i in reports], [items[i]["reference"] for i in reports]
            )
            m.update(metrics)
            for i, stats in zip(reports, per, strict=True):
                records[i].update(stats)  # type: ignore[typeddict-item]
        if vqa:
            m["n_vqa"] = len(vqa)
            answers = vqa_sample_scores(
                [
                    {
                        "prediction": items[i]["answer"],
                        "reference": items[i]["reference"],
                        "answer_type": items[i].get("answer_type"),
                        "question_type": items[i].get("question_type"),
                    }
                    for i in vqa
                ]
            )
            m.update(vqa_metrics_from_samples(answers))
            m["n"] = len(items)
            for i, answer in zip(vqa, answers, strict=True):
                records[i]["vqa"] = dict(answer)
        grounding_answers = [
            i for i, r in enumerate(items) if r["kind"] is TaskKind.GROUNDING and r["reference"].strip()
        ]
        if grounding_answers:
            m["n_grounding"] = len(grounding_answers)
            for i in grounding_answers:
                r = items[i]
                records[i]["grounding_answer"] = score_answer(r["answer"], r["reference"], r.get("answer_type"))
            m["grounding_answer_accuracy"] = sum(records[i]["grounding_answer"] for i in grounding_answers) / len(
                grounding_answers
            )
        grounded = [i for i, r in enumerate(items) if r.get("reference_boxes")]
        if grounded:
            threshold = self.options.iou_threshold
            boxes = [
                sample_box_scores(
                    items[i]["pred_boxes"], items[i]["reference_boxes"], threshold, items[i].get("image_size")
                )
                for i in grounded
            ]
            m["grounding"] = grounding_metrics_from_scores(boxes, threshold)
            for i, b in zip(grounded, boxes, strict=True):
                pp = b["pixel_precision"]
                records[i]["boxes"] = {**b, "pixel_precision_pass": bool(pp is not None and pp > threshold)}
        _add_truncation(m, records)
        return m, records

    def evaluate(self, rows: Sequence[PredictionRow]) -> EvalResults:
        """Metrics per group (benchmark, else split), plus the weighted average when there are report groups."""
        return self.evaluate_samples(rows)[0]

    def evaluate_samples(self, rows: Sequence[PredictionRow]) -> tuple[EvalResults, list[SampleRecord]]:
        """:meth:`evaluate`, and every line's statistics (the ``per_sample.jsonl`` records)."""
        if any(r["kind"] is TaskKind.REPORT for r in rows):
            self.nlg.warm_up()  # METEOR's JVM loads its tables while everything before its first segment runs
        groups: dict[str, list[PredictionRow]] = defaultdict(list)
        for r in rows:
            groups[r["group"]].append(r)
        results: dict[str, GroupMetrics] = {}
        records: dict[str, list[SampleRecord]] = {}
        for name in sorted(groups):
            log.info("scoring %s (%d lines)", name, len(groups[name]))
            results[name], records[name] = self._score_group(name, groups[name])
        out: EvalResults = dict(results)
        if sum(1 for m in results.values() if m.get("n_report")) > 1:
            out["weighted_average"] = weighted_average(results)
        resamples = self.options.bootstrap_resamples
        replicates: dict[str, dict[MetricKey, np.ndarray]] = {}
        for name, m in results.items():
            samples = GroupSamples.from_records(records[name], objects=list(m.get("object_recall") or {}) or None)
            if resamples:
                log.info("bootstrap intervals for %s (%d resamples)", name, resamples)
                replicates[name] = bootstrap_replicates(
                    samples, resamples, group_rng(self.options.bootstrap_seed, name), self.meteor_of_sums
                )
                m["ci"] = _intervals(replicates[name], m)
            if m.get("n_truncated"):
                m["non_truncated"] = self._non_truncated(name, samples)
        if resamples and "weighted_average" in out:
            out["weighted_average"]["ci"] = _weighted_intervals(out["weighted_average"], results, replicates)
        comparison = paper_comparison(out)
        if comparison is not None:
            out["paper_comparison"] = comparison
        return out, [r for name in sorted(records) for r in records[name]]

    def _non_truncated(self, name: str, samples: GroupSamples) -> dict[str, Any]:
        """The group's metrics on the lines marked not truncated, recomputed from their statistics."""
        keep = np.array([r.get("truncated") is False for r in samples.records])
        block: dict[str, Any] = {
            "n": int(keep.sum()),
            "note": "metrics of the lines marked not truncated, recomputed from their per-sample statistics "
            "(CIDEr with the whole group's document frequencies)",
        }
        if not keep.any():
            return block
        sub = samples.subset(keep)
        values = {k: float(v[0]) for k, v in metrics_of_sums(sub.totals(), self.meteor_of_sums).items()}
        block.update(nest({k: (v if np.isfinite(v) else None) for k, v in values.items()}))
        if self.options.bootstrap_resamples:
            reps = bootstrap_replicates(
                sub,
                self.options.bootstrap_resamples,
                group_rng(self.options.bootstrap_seed, name + "/non_truncated"),
                self.meteor_of_sums,
            )
            block["ci"] = nest({k: percentile_interval(v, LEVEL) for k, v in reps.items()})
        return block


def _add_truncation(m: GroupMetrics, records: Sequence[SampleRecord]) -> None:
    """How many completions hit the generation limit, over the lines that say (nothing inferred for the others)."""
    known = [r["truncated"] for r in records if r.get("truncated") is not None]
    m["n_truncation_known"] = len(known)
    m["n_truncated"] = sum(1 for f in known if f) if known else None
    m["truncated_share"] = (m["n_truncated"] or 0) / len(known) if known else None


def _present(m: Any, key: MetricKey) -> bool:
    """Whether a group reports the metric (an interval only for a metric with a value)."""
    node = m
    for part in key:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return node is not None


def _intervals(replicates: dict[MetricKey, np.ndarray], m: Any) -> dict[str, Any]:
    return nest({k: percentile_interval(v, LEVEL) for k, v in replicates.items() if _present(m, k)})


def _weighted_intervals(
    weighted: Any, groups: dict[str, GroupMetrics], replicates: dict[str, dict[MetricKey, np.ndarray]]
) -> dict[str, Any]:
    """Intervals of the size-weighted average: each resample's group values weighted as the point estimate is
    (the groups resampled independently)."""
    names = weighted.get("groups") or []
    if not names or any(g not in replicates for g in names):
        return {}
    sizes = np.array([groups[g]["n_report"] for g in names], dtype=np.float64)
    combined: dict[MetricKey, np.ndarray] = {}
    for metric in WEIGHTED_METRICS:
        if weighted.get(metric) is None or any((metric,) not in replicates[g] for g in names):
            continue
        combined[(metric,)] = np.column_stack([replicates[g][(metric,)] for g in names]) @ sizes / sizes.sum()
    paper = [combined[(m,)] for m in weighted.get("average_over") or [] if (m,) in combined]
    if paper and len(paper) == len(weighted.get("average_over") or []):
        combined[("average",)] = np.column_stack(paper).mean(axis=1)
    return nest({k: percentile_interval(v, LEVEL) for k, v in combined.items()})


def intervals_meta(options: EvalOptions) -> dict[str, Any]:
    return {
        "method": INTERVAL_METHOD,
        "level": LEVEL,
        "resamples": options.bootstrap_resamples,
        "seed": options.bootstrap_seed,
        "approximate": {"/".join(k): why for k, why in APPROXIMATE.items()},
    }


def evaluate_file(predictions: str | Path, out_dir: str | Path, options: EvalOptions | None = None) -> EvalResults:
    """Evaluate a prediction file and write metrics.json, per_sample.jsonl, report.md, report.html and figures."""
    options = options or EvalOptions()
    out_dir = Path(out_dir)
    check_output(out_dir, folder=True)
    rows = load_predictions(predictions)
    with Evaluator(options) as ev:
        metrics, records = ev.evaluate_samples(rows)
    groups = [m for m in metrics.values() if isinstance(m, dict) and "n_truncation_known" in m]
    known = sum(m["n_truncation_known"] for m in groups)
    metrics["_meta"] = {
        "predictions": str(predictions),
        "n_lines": len(rows),
        "chexbert": str(options.chexbert) if options.chexbert else None,
        "radgraph": str(options.radgraph) if options.radgraph else None,
        "iou_threshold": options.iou_threshold,
        "intervals": intervals_meta(options) if options.bootstrap_resamples else None,
        "per_sample": PER_SAMPLE_FILE,
        "n_truncated": sum(m["n_truncated"] or 0 for m in groups) if known else None,
        "n_truncation_known": known,
    }
    with staged_folder(out_dir) as staging:  # the metrics, their samples and their reports together, or nothing
        atomic_write_jsonl(staging / PER_SAMPLE_FILE, records)
        atomic_write_json(staging / "metrics.json", metrics)
        write_reports(metrics, staging, figures=options.figures)
    return metrics

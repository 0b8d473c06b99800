"""XrayBench evaluation of a prediction file: every metric of the paper, grouped by benchmark, plus reports.

Input: a JSONL of prediction lines (the inference format, or any file with the fields in
:mod:`deepmedix.evaluation.predictions`). Output: ``DIR/metrics.json`` (group → metric → value), ``DIR/report.md``,
``DIR/report.html`` (self-contained) and the figures as PNGs in ``DIR/figures/``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from deepmedix.evaluation.chexbert import CheXbertLabeler, cached_classes
from deepmedix.evaluation.clinical import ClinicalScores, binarize_chexbert_classes, clinical_f1, rules_f1
from deepmedix.evaluation.grounding import grounding_metrics
from deepmedix.evaluation.memo import open_label_cache
from deepmedix.evaluation.metrics import (
    CHEXBERT_F1,
    METRIC_LABELS,
    PAPER_REPORT_METRICS,
    RULES_F1,
    EvalResults,
    GroupMetrics,
    ReportMetrics,
    paper_average,
    weighted_average,
)
from deepmedix.evaluation.nlg import NLGScorer
from deepmedix.evaluation.options import EvalOptions
from deepmedix.evaluation.predictions import PredictionRow, TaskKind, load_predictions
from deepmedix.evaluation.radgraph import f1_radgraph
from deepmedix.evaluation.report import write_reports
from deepmedix.evaluation.vqa import score_answer, vqa_metrics
from deepmedix.io import atomic_write_json, cache_root, check_output, staged_folder

if TYPE_CHECKING:
    from deepmedix.endpoints import ResponseCache

log = logging.getLogger(__name__)


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

    def report_metrics(self, predictions: Sequence[str], references: Sequence[str]) -> ReportMetrics:
        """Every report metric of one group's (prediction, reference) pairs; a metric whose model was not given is
        None, with a note."""
        out: dict[str, Any] = {}  # built by metric name; its shape is ReportMetrics
        notes: list[str] = []
        out.update(self.nlg.score(predictions, references)["corpus"])
        if out.get("meteor") is None:
            notes.append("METEOR not computed (--no-meteor)")
        if self.chexbert is not None:
            ref_cls = cached_classes(self.chexbert, references, self.label_cache)
            pred_cls = cached_classes(self.chexbert, predictions, self.label_cache)
            scores = clinical_f1(binarize_chexbert_classes(ref_cls), binarize_chexbert_classes(pred_cls))
            out.update(_clinical_keys(CHEXBERT_F1, scores))
            out["per_observation_f1_chexbert"] = scores["per_observation"]
            out["observation_support"] = scores["support"]
        else:
            out.update(dict.fromkeys(CHEXBERT_F1))
            notes.append("F1-CheXbert absent: no CheXbert checkpoint given (--chexbert)")
        if self.options.rules:
            rules = rules_f1(predictions, references)
            out.update(_clinical_keys(RULES_F1, rules))
            out["per_observation_f1_chexpert_rules"] = rules["per_observation"]
            out.setdefault("observation_support", rules["support"])
        else:
            notes.append("F1-CheXpert (rules) not computed (rules switched off)")
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
            out.update({k: v for k, v in rg.items() if k != "per_sample"})
        else:
            out["f1_radgraph"] = None
            notes.append("F1-RadGraph absent: no RadGraph model given (--radgraph)")
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
        return cast(ReportMetrics, out)

    def evaluate(self, rows: Sequence[PredictionRow]) -> EvalResults:
        """Metrics per group (benchmark, else split), plus the weighted average when there are report groups."""
        groups: dict[str, list[PredictionRow]] = defaultdict(list)
        for r in rows:
            groups[r["group"]].append(r)
        results: dict[str, GroupMetrics] = {}
        for name in sorted(groups):
            items = groups[name]
            log.info("scoring %s (%d lines)", name, len(items))
            m: GroupMetrics = {"n": len(items)}
            reports = [r for r in items if r["kind"] is TaskKind.REPORT]
            vqa = [r for r in items if r["kind"] is TaskKind.VQA]
            if reports:
                m["n_report"] = len(reports)
                m.update(self.report_metrics([r["answer"] for r in reports], [r["reference"] for r in reports]))
            if vqa:
                m["n_vqa"] = len(vqa)
                m.update(
                    vqa_metrics(
                        [
                            {
                                "prediction": r["answer"],
                                "reference": r["reference"],
                                "answer_type": r.get("answer_type"),
                                "question_type": r.get("question_type"),
                            }
                            for r in vqa
                        ]
                    )
                )
                m["n"] = len(items)
            grounding_answers = [r for r in items if r["kind"] is TaskKind.GROUNDING and r["reference"].strip()]
            if grounding_answers:
                m["n_grounding"] = len(grounding_answers)
                m["grounding_answer_accuracy"] = sum(
                    score_answer(r["answer"], r["reference"], r.get("answer_type")) for r in grounding_answers
                ) / len(grounding_answers)
            grounded = [r for r in items if r.get("reference_boxes")]
            if grounded:
                m["grounding"] = grounding_metrics(
                    [
                        {
                            "pred_boxes": r["pred_boxes"],
                            "reference_boxes": r["reference_boxes"],
                            "image_size": r.get("image_size"),
                        }
                        for r in grounded
                    ],
                    self.options.iou_threshold,
                )
            results[name] = m
        out: EvalResults = dict(results)
        if sum(1 for m in results.values() if m.get("n_report")) > 1:
            out["weighted_average"] = weighted_average(results)
        return out


def evaluate_file(predictions: str | Path, out_dir: str | Path, options: EvalOptions | None = None) -> EvalResults:
    """Evaluate a prediction file and write metrics.json, report.md, report.html and figures under out_dir."""
    options = options or EvalOptions()
    out_dir = Path(out_dir)
    check_output(out_dir, folder=True)
    rows = load_predictions(predictions)
    with Evaluator(options) as ev:
        metrics = ev.evaluate(rows)
    metrics["_meta"] = {
        "predictions": str(predictions),
        "n_lines": len(rows),
        "chexbert": str(options.chexbert) if options.chexbert else None,
        "radgraph": str(options.radgraph) if options.radgraph else None,
        "iou_threshold": options.iou_threshold,
    }
    with staged_folder(out_dir) as staging:  # the metrics and their reports together, or nothing
        atomic_write_json(staging / "metrics.json", metrics)
        write_reports(metrics, staging, figures=options.figures)
    return metrics

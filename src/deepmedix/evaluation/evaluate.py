"""XrayBench evaluation of a prediction file: every metric of the paper, grouped by benchmark, plus reports.

Input: a JSONL of prediction lines (the inference format, or any file with the fields below). Output:
``DIR/metrics.json`` (group → metric → value), ``DIR/report.md``, ``DIR/report.html`` (self-contained) and the
figures as PNGs in ``DIR/figures/``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepmedix.errors import DataError, PredictionFileError
from deepmedix.evaluation.metrics import METRIC_LABELS, PAPER_REPORT_METRICS, paper_average, weighted_average
from deepmedix.evaluation.options import EvalOptions
from deepmedix.evaluation.report import write_reports
from deepmedix.io import atomic_write_json, json_object
from deepmedix.protocol import final_answer, find_boxes

log = logging.getLogger(__name__)

TASK_KINDS = ("report", "vqa", "grounding")


def task_kind(task: str) -> str:
    """report_findings / report_impression / report → report; vqa; grounding."""
    t = (task or "").strip().lower()
    if t.startswith("report"):
        return "report"
    if t in ("vqa", "grounding"):
        return t
    raise DataError(f"unknown task {task!r} (expected report*, vqa or grounding)")


def _boxes_field(value: Any, path: Path, line: int, name: str) -> list[list[float]]:
    if not isinstance(value, list) or not all(
        isinstance(b, list | tuple) and len(b) == 4 and all(isinstance(x, int | float) for x in b) for b in value
    ):
        raise PredictionFileError(path, "must be a list of [x_min, y_min, x_max, y_max]", line=line, field=name)
    return [[float(x) for x in b] for b in value]


def _predicted_boxes(line: dict[str, Any]) -> list[list[float]]:
    """The reasoning's boxes in original pixels: steps[].boxes, else boxes parsed from the completion (rescaled
    from the model frame when both image sizes are given)."""
    steps = line.get("steps")
    if isinstance(steps, list) and steps:
        return [[float(x) for x in b] for s in steps if isinstance(s, dict) for b in (s.get("boxes") or [])]
    completion = line.get("completion")
    if not isinstance(completion, str):
        completion = line.get("prediction")  # a raw completion given as the prediction
    if not isinstance(completion, str):
        return []
    boxes = [list(b) for b in find_boxes(completion)]
    size, model_size = line.get("image_size"), line.get("model_input_size")
    if size and model_size:
        sx, sy = size[0] / model_size[0], size[1] / model_size[1]
        boxes = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes]
    return boxes


def load_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate prediction lines; each gets ``kind``, ``answer`` (final answer) and ``group``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prediction file not found")
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                line = json_object(raw, f"{path}, line {lineno}")
            except ValueError as e:
                raise PredictionFileError(path, str(e).split(": ", 1)[1], line=lineno) from None
            for name in ("id", "task"):
                if not isinstance(line.get(name), str) or not line[name].strip():
                    raise PredictionFileError(path, "missing or not a non-empty string", line=lineno, field=name)
            try:
                kind = task_kind(line["task"])
            except ValueError as e:
                raise PredictionFileError(path, str(e), line=lineno, field="task") from None
            group = line.get("benchmark") or line.get("split")
            if not isinstance(group, str) or not group.strip():
                raise PredictionFileError(
                    path, "needs a 'benchmark' or a 'split' (the group it is scored in)", line=lineno
                )
            pred = line.get("prediction")
            if pred is None and isinstance(line.get("completion"), str):
                pred = line["completion"]
            if not isinstance(pred, str):
                raise PredictionFileError(path, "missing or not a string", line=lineno, field="prediction")
            ref = line.get("reference")
            if kind != "grounding" and not isinstance(ref, str):
                raise PredictionFileError(path, "missing or not a string", line=lineno, field="reference")
            if line.get("answer_type") not in (None, "closed", "multi", "open"):
                raise PredictionFileError(path, "must be closed, multi or open", line=lineno, field="answer_type")
            if "reference_boxes" in line and line["reference_boxes"] is not None:
                line["reference_boxes"] = _boxes_field(line["reference_boxes"], path, lineno, "reference_boxes")
            line["kind"], line["group"] = kind, group.strip()
            line["answer"] = final_answer(pred)
            line["reference"] = ref if isinstance(ref, str) else ""
            line["pred_boxes"] = _predicted_boxes(line)
            rows.append(line)
    if not rows:
        raise PredictionFileError(path, "no prediction lines")
    return rows


def _clinical_keys(prefix: str, scores: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{prefix}_micro_14": scores["micro_f1_14"],
        f"{prefix}_macro_14": scores["macro_f1_14"],
        f"{prefix}_micro_5": scores["micro_f1_5"],
        f"{prefix}_macro_5": scores["macro_f1_5"],
    }


class Evaluator:
    """Scores groups of prediction lines; heavy scorers (METEOR, CheXbert) are started once and reused."""

    def __init__(self, options: EvalOptions | None = None) -> None:
        self.options = options or EvalOptions()
        self._nlg: Any = None
        self._chexbert: Any = None
        self._label_cache: Any = None

    def close(self) -> None:
        if self._nlg is not None:
            self._nlg.close()
            self._nlg = None
        if self._label_cache is not None:
            self._label_cache.close()
            self._label_cache = None

    @property
    def label_cache(self) -> Any:
        """The per-text store of CheXbert labels and RadGraph annotations (opened when a model needs it)."""
        if self._label_cache is None and self.options.cache:
            from deepmedix.evaluation.memo import open_label_cache
            from deepmedix.io import cache_root

            self._label_cache = open_label_cache(self.options.cache_dir or cache_root())
        return self._label_cache

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def nlg(self) -> Any:
        if self._nlg is None:
            from deepmedix.evaluation.nlg import NLGScorer

            self._nlg = NLGScorer(meteor=self.options.meteor)
        return self._nlg

    @property
    def chexbert(self) -> Any:
        if self._chexbert is None and self.options.chexbert is not None:
            from deepmedix.evaluation.chexbert import CheXbertLabeler

            ckpt = Path(self.options.chexbert)
            tok = self.options.chexbert_tokenizer or ckpt.parent
            self._chexbert = CheXbertLabeler(
                ckpt, tok, min_vocab_size=self.options.chexbert_min_vocab, batch_size=self.options.chexbert_batch_size
            )
        return self._chexbert

    def report_metrics(self, group: str, predictions: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
        from deepmedix.evaluation import clinical

        out: dict[str, Any] = {}
        notes: list[str] = []
        out.update(self.nlg.score(predictions, references)["corpus"])
        if out.get("meteor") is None:
            notes.append("METEOR not computed (--no-meteor)")
        if self.chexbert is not None:
            from deepmedix.evaluation.chexbert import cached_classes

            ref_cls = cached_classes(self.chexbert, references, self.label_cache)
            pred_cls = cached_classes(self.chexbert, predictions, self.label_cache)
            scores = clinical.clinical_f1(
                clinical.binarize_chexbert_classes(ref_cls), clinical.binarize_chexbert_classes(pred_cls)
            )
            out.update(_clinical_keys("f1_chexbert", scores))
            out["per_observation_f1_chexbert"] = scores["per_observation"]
            out["observation_support"] = scores["support"]
        else:
            out.update(
                dict.fromkeys(
                    _clinical_keys(
                        "f1_chexbert", dict.fromkeys(("micro_f1_14", "macro_f1_14", "micro_f1_5", "macro_f1_5"))
                    ),
                    None,
                )
            )
            notes.append("F1-CheXbert absent: no CheXbert checkpoint given (--chexbert)")
        if self.options.rules:
            rules = clinical.rules_f1(predictions, references)
            out.update(_clinical_keys("f1_chexpert_rules", rules))
            out["per_observation_f1_chexpert_rules"] = rules["per_observation"]
            out.setdefault("observation_support", rules["support"])
        else:
            notes.append("F1-CheXpert (rules) not computed (rules switched off)")
        if self.options.radgraph is not None:
            from deepmedix.evaluation.radgraph import f1_radgraph

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
        return out

    def evaluate(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        from deepmedix.evaluation.grounding import grounding_metrics
        from deepmedix.evaluation.vqa import vqa_metrics

        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[r["group"]].append(r)
        results: dict[str, dict[str, Any]] = {}
        for name in sorted(groups):
            items = groups[name]
            log.info("scoring %s (%d lines)", name, len(items))
            m: dict[str, Any] = {"n": len(items)}
            reports = [r for r in items if r["kind"] == "report"]
            vqa = [r for r in items if r["kind"] == "vqa"]
            if reports:
                m["n_report"] = len(reports)
                m.update(self.report_metrics(name, [r["answer"] for r in reports], [r["reference"] for r in reports]))
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
            grounding_answers = [r for r in items if r["kind"] == "grounding" and r["reference"].strip()]
            if grounding_answers:
                from deepmedix.evaluation.vqa import score_answer

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
        out: dict[str, Any] = dict(results)
        if sum(1 for m in results.values() if m.get("n_report")) > 1:
            out["weighted_average"] = weighted_average(results)
        return out


def evaluate_file(predictions: str | Path, out_dir: str | Path, options: EvalOptions | None = None) -> dict[str, Any]:
    """Evaluate a prediction file and write metrics.json, report.md, report.html and figures under out_dir."""
    options = options or EvalOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
    atomic_write_json(out_dir / "metrics.json", metrics)
    write_reports(metrics, out_dir, figures=options.figures)
    return metrics

"""Bootstrap intervals and paired significance tests for every metric, recomputed from per-sample statistics.

Every metric of a group is a function of sums over its lines of a per-line vector of sufficient statistics:

* BLEU-1..4: each sample's length, reference length, and n-gram guesses and matches (pycocoevalcap's ``ctest``);
  corpus BLEU of the summed counts, with pycocoevalcap's formula — **exact**;
* METEOR: each segment's statistics line from the METEOR jar; the jar's corpus score is its score of the summed
  statistics (``MeteorStats.addStats``, which leaves out the chunk of a segment matched whole in one chunk), so a
  resample's METEOR is the jar's answer to one EVAL line with that resample's sum — **exact**;
* ROUGE-L, F1-RadGraph, VQA accuracy (and by question/answer type): means of per-sample values — **exact**;
* CIDEr-D: the mean of per-sample scores whose document frequencies come from the whole group's references — **an
  approximation** for a bootstrap resample (repeated references would change the frequencies); exact for a paired
  test of two systems on the same lines, where swapping predictions leaves the references, so the frequencies, alone;
* F1-CheXbert and F1-CheXpert (rules): each sample's present/absent labels on both sides → TP/FP/FN per observation;
  scikit-learn's micro/macro F1 of the summed counts — **exact**;
* grounding: box counts and matches, best IoUs, RadFact's pixel metrics — ratios of sums — **exact**;
* per-object recall: hits and reference occurrences of the group's top-10 objects, the objects fixed from the whole
  group — exact for those objects;
* the paper's Average: the mean of the metrics above in the same resample.

So a resample is a weight per line (how often it was drawn), and its metrics are those of the weighted sums: no scorer
runs again. Resampling is stratified by task kind within a group (a group normally has one), so every resample has as
many report, VQA and grounding lines as the group. Intervals are percentile intervals; a paired test is approximate
randomisation as RadEval and sacreBLEU do it: each shared sample's statistics are swapped between the two systems with
probability 1/2, the corpus metric recomputed, and p = (c + 1) / (N + 1) with c the trials whose absolute difference
reaches the observed one.
"""

from __future__ import annotations

import hashlib
import math
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, Required, TypedDict

import numpy as np

from deepmedix.evaluation.clinical import CHEXBERT_OBSERVATIONS, FIVE_INDEX
from deepmedix.evaluation.metrics import CHEXBERT_F1, PAPER_REPORT_METRICS, RULES_F1

MetricKey = tuple[str, ...]  # ("bleu_1",), ("accuracy_by_question_type", "presence"), ("grounding", "box_recall")
Family = tuple[str, ...]  # a block of per-sample statistics
MeteorOfSums = Callable[[np.ndarray], np.ndarray]  # summed METEOR statistics (R, 23) → METEOR (R,)

DEFAULT_SEED = 12345
CHUNK_ELEMENTS = 4_000_000  # weights held at once (rows × samples): 32 MB of float64
BOX_FIELDS = (
    "n_pred",
    "n_ref",
    "pred_hits",
    "ref_found",
    "best_iou_sum",
    "pixel_iou",
    "one",
    "pixel_precision",
    "pixel_precision_valid",
    "pixel_recall",
    "pixel_recall_valid",
    "pixel_precision_pass",
)
# Metrics whose interval or test is not exact, and why.
APPROXIMATE = {
    ("cider",): "CIDEr-D's document frequencies fixed from the whole group's references",
    ("mean_object_recall",): "the top-10 objects fixed from the whole group",
}


class ClinicalLabels(TypedDict):
    """One report pair's 14 present(1)/absent(0) observations, in CheXbert order."""

    prediction: list[int]
    reference: list[int]


class SampleRecord(TypedDict, total=False):
    """One line of ``per_sample.jsonl``: what every metric needs of one prediction line, kept once."""

    group: Required[str]
    id: Required[str]
    kind: Required[str]  # report, vqa or grounding
    truncated: bool | None  # None: the line does not say
    reference_sha256: str  # of the reference text (first 16 hex digits): two systems must share the reference
    bleu: list[int]  # BLEU_COUNTS
    meteor: str  # the METEOR jar's statistics line
    rouge_l: float
    cider: float  # with the document frequencies of the group it was scored in
    chexbert: ClinicalLabels
    chexpert_rules: ClinicalLabels
    radgraph: dict[str, float]  # simple, partial, complete
    vqa: dict[str, Any]  # VQASampleScore
    grounding_answer: float
    boxes: dict[str, Any]  # SampleBoxScores + pixel_precision_pass


def reference_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --- per-sample statistics → feature blocks ---------------------------------------------------------------------------


def meteor_features(lines: Sequence[str]) -> np.ndarray:
    """METEOR statistics lines → (n, 23), with addStats' rule applied per segment: the chunk count of a segment
    matched whole in a single chunk is not added. Summing the rows then gives the jar's own aggregate."""
    stats = np.array([[float(x) for x in line.split()] for line in lines], dtype=np.float64).reshape(len(lines), -1)
    if stats.shape[1] != 23:
        raise ValueError(f"METEOR statistics lines have {stats.shape[1]} fields, expected 23")
    test_matches = stats[:, 4:20:4].sum(axis=1) + stats[:, 6:20:4].sum(axis=1)
    ref_matches = stats[:, 5:20:4].sum(axis=1) + stats[:, 7:20:4].sum(axis=1)
    whole = (test_matches == stats[:, 0]) & (ref_matches == stats[:, 1]) & (stats[:, 20] == 1.0)
    stats[whole, 20] = 0.0
    return stats


def confusion_features(labels: Sequence[ClinicalLabels]) -> np.ndarray:
    """Present/absent labels → (n, 42): TP, FP, FN per observation."""
    ref = np.array([x["reference"] for x in labels], dtype=np.float64).reshape(len(labels), -1)
    pred = np.array([x["prediction"] for x in labels], dtype=np.float64).reshape(len(labels), -1)
    return np.concatenate([ref * pred, (1 - ref) * pred, ref * (1 - pred)], axis=1)


def _box_row(b: Mapping[str, Any]) -> list[float]:
    pp, pr = b.get("pixel_precision"), b.get("pixel_recall")
    return [
        b["n_pred"],
        b["n_ref"],
        b["pred_hits"],
        b["ref_found"],
        float(sum(b["best_ious"])),
        b["pixel_iou"],
        1.0,
        pp or 0.0,
        pp is not None,
        pr or 0.0,
        pr is not None,
        bool(b.get("pixel_precision_pass")),
    ]


@dataclass
class GroupSamples:
    """One group's lines as feature blocks: family → (n, k) array, zero rows for lines a family does not cover."""

    records: list[SampleRecord]
    strata: np.ndarray  # the task kind of each line, as an integer
    families: dict[Family, np.ndarray] = field(default_factory=dict)
    objects: list[str] = field(default_factory=list)  # the top reference objects, for per-object recall

    @classmethod
    def from_records(cls, records: Sequence[SampleRecord], objects: Sequence[str] | None = None) -> GroupSamples:
        records = list(records)
        n = len(records)
        kinds = sorted({r["kind"] for r in records})
        out = cls(records, np.array([kinds.index(r["kind"]) for r in records], dtype=np.int64))

        def block(family: Family, key: str, width: int, rows: Callable[[list[Any]], np.ndarray]) -> None:
            where = [i for i, r in enumerate(records) if r.get(key) is not None]
            if not where:
                return
            values = np.zeros((n, width), dtype=np.float64)
            values[where] = rows([records[i][key] for i in where])  # type: ignore[literal-required]
            out.families[family] = values

        def mean_of(values: list[Any]) -> np.ndarray:
            return np.column_stack([np.asarray(values, dtype=np.float64), np.ones(len(values))])

        block(("bleu",), "bleu", 10, lambda v: np.asarray(v, dtype=np.float64))
        block(("meteor",), "meteor", 23, meteor_features)
        block(("rouge_l",), "rouge_l", 2, mean_of)
        block(("cider",), "cider", 2, mean_of)
        block(("chexbert",), "chexbert", 42, confusion_features)
        block(("chexpert_rules",), "chexpert_rules", 42, confusion_features)
        block(
            ("radgraph",),
            "radgraph",
            4,
            lambda v: np.array([[x["simple"], x["partial"], x["complete"], 1.0] for x in v], dtype=np.float64),
        )
        block(("grounding_answer",), "grounding_answer", 2, mean_of)
        block(("boxes",), "boxes", len(BOX_FIELDS), lambda v: np.array([_box_row(b) for b in v], dtype=np.float64))
        vqa = [(i, r["vqa"]) for i, r in enumerate(records) if r.get("vqa") is not None]
        if vqa:
            score = np.zeros((n, 2))
            for i, v in vqa:
                score[i] = (v["score"], 1.0)
            out.families[("vqa",)] = score
            for axis in ("question_type", "answer_type"):
                for value in sorted({v[axis] for _, v in vqa}):
                    f = np.zeros((n, 2))
                    for i, v in vqa:
                        if v[axis] == value:
                            f[i] = (v["score"], 1.0)
                    out.families[(f"vqa_{axis}", value)] = f
            if objects is None:
                totals: dict[str, int] = {}
                for _, v in vqa:
                    for o in v["objects"]:
                        totals[o] = totals.get(o, 0) + 1
                objects = sorted(totals, key=lambda o: -totals[o])[:10]  # stable: first seen first among equals
            for o in objects:
                f = np.zeros((n, 2))
                for i, v in vqa:
                    if o in v["objects"]:
                        f[i] = (float(v["objects"][o]), 1.0)
                out.families[("vqa_object", o)] = f
            out.objects = list(objects)
        return out

    def subset(self, mask: np.ndarray) -> GroupSamples:
        """The lines where ``mask`` is true (the top objects kept from the whole group)."""
        return GroupSamples.from_records([r for r, keep in zip(self.records, mask, strict=True) if keep], self.objects)

    def totals(self) -> dict[Family, np.ndarray]:
        """Every family summed over all lines, as one row."""
        return {k: v.sum(axis=0, keepdims=True) for k, v in self.families.items()}


# --- metrics of summed statistics ------------------------------------------------------------------------------------


def bleu_of_sums(sums: np.ndarray) -> np.ndarray:
    """(R, 10) summed BLEU counts → (R, 4) BLEU-1..4, in pycocoevalcap's arithmetic (``BleuScorer.compute_score``)."""
    small, tiny = 1e-9, 1e-15
    out = np.empty((len(sums), 4))
    bleu = np.ones(len(sums))
    for k in range(4):
        bleu = bleu * ((sums[:, 6 + k] + tiny) / (sums[:, 2 + k] + small))
        # Python's own pow and math.exp (numpy's vectorised ones may differ in the last bit), as pycocoevalcap
        out[:, k] = [b ** (1.0 / (k + 1)) for b in bleu.tolist()]
    ratio = (sums[:, 0] + tiny) / (sums[:, 1] + small)
    short = np.flatnonzero(ratio < 1)
    out[short] *= np.array([math.exp(1 - 1 / r) for r in ratio[short].tolist()]).reshape(-1, 1)
    return out


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """scikit-learn's F1 from counts: 2·TP / (true + predicted), 0 where both are 0 (zero_division=0)."""
    denom = 1.0 * (tp + fn) + (tp + fp)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, 2.0 * tp / np.where(denom > 0, denom, 1.0), 0.0)


def clinical_of_sums(sums: np.ndarray) -> dict[str, np.ndarray]:
    """(R, 42) summed TP/FP/FN → micro/macro F1 over 14 and over 5 observations, and per observation."""
    tp, fp, fn = sums[:, :14], sums[:, 14:28], sums[:, 28:42]
    per = _f1(tp, fp, fn)
    five = FIVE_INDEX
    out = {
        "micro_14": _f1(tp.sum(1), fp.sum(1), fn.sum(1)),
        "macro_14": per.mean(axis=1),
        "micro_5": _f1(tp[:, five].sum(1), fp[:, five].sum(1), fn[:, five].sum(1)),
        "macro_5": per[:, five].mean(axis=1),
    }
    out.update({f"observation:{o}": per[:, j] for j, o in enumerate(CHEXBERT_OBSERVATIONS)})
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def metrics_of_sums(
    sums: Mapping[Family, np.ndarray], meteor: MeteorOfSums | None = None
) -> dict[MetricKey, np.ndarray]:
    """Every metric of summed statistics (one row per resample); METEOR only with the jar's ``meteor``."""
    out: dict[MetricKey, np.ndarray] = {}
    if ("bleu",) in sums:
        bleu = bleu_of_sums(sums[("bleu",)])
        out.update({(f"bleu_{k + 1}",): bleu[:, k] for k in range(4)})
    if ("meteor",) in sums and meteor is not None:
        out[("meteor",)] = meteor(sums[("meteor",)])
    for name in ("rouge_l", "cider", "grounding_answer"):
        if (name,) in sums:
            s = sums[(name,)]
            out[(name if name != "grounding_answer" else "grounding_answer_accuracy",)] = _ratio(s[:, 0], s[:, 1])
    for family, keys, per_key in (
        ("chexbert", CHEXBERT_F1, "per_observation_f1_chexbert"),
        ("chexpert_rules", RULES_F1, "per_observation_f1_chexpert_rules"),
    ):
        if (family,) in sums:
            f1 = clinical_of_sums(sums[(family,)])
            out.update({(k,): f1["_".join(k.split("_")[-2:])] for k in keys})  # f1_chexbert_micro_14 → micro_14
            out.update({(per_key, o): f1[f"observation:{o}"] for o in CHEXBERT_OBSERVATIONS})
    if ("radgraph",) in sums:
        s = sums[("radgraph",)]
        for j, level in enumerate(("simple", "partial", "complete")):
            out[(f"f1_radgraph_{level}",)] = _ratio(s[:, j], s[:, 3])
        out[("f1_radgraph",)] = out[("f1_radgraph_partial",)]
    if ("boxes",) in sums:
        s = {name: sums[("boxes",)][:, j] for j, name in enumerate(BOX_FIELDS)}
        out[("grounding", "box_precision")] = _ratio(s["pred_hits"], s["n_pred"])
        out[("grounding", "box_recall")] = _ratio(s["ref_found"], s["n_ref"])
        out[("grounding", "mean_best_iou")] = _ratio(s["best_iou_sum"], s["n_ref"])
        out[("grounding", "boxes_per_sample")] = _ratio(s["n_pred"], s["one"])
        out[("grounding", "pixel_iou")] = _ratio(s["pixel_iou"], s["one"])
        out[("grounding", "pixel_precision")] = _ratio(s["pixel_precision"], s["pixel_precision_valid"])
        out[("grounding", "pixel_recall")] = _ratio(s["pixel_recall"], s["pixel_recall_valid"])
        out[("grounding", "pixel_precision_pass_rate")] = _ratio(s["pixel_precision_pass"], s["one"])
    recalls = []
    for family, s in sums.items():
        if family == ("vqa",):
            out[("accuracy",)] = _ratio(s[:, 0], s[:, 1])
        elif family[0] == "vqa_question_type":
            out[("accuracy_by_question_type", family[1])] = _ratio(s[:, 0], s[:, 1])
        elif family[0] == "vqa_answer_type":
            out[("accuracy_by_answer_type", family[1])] = _ratio(s[:, 0], s[:, 1])
        elif family[0] == "vqa_object":
            out[("object_recall", family[1])] = _ratio(s[:, 0], s[:, 1])
            recalls.append(out[("object_recall", family[1])])
    if recalls:
        with warnings.catch_warnings():  # a resample in which no top object occurs: its mean recall is NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out[("mean_object_recall",)] = np.nanmean(np.column_stack(recalls), axis=1)
    paper = [out[(m,)] for m in PAPER_REPORT_METRICS if (m,) in out]
    if paper:
        out[("average",)] = np.column_stack(paper).mean(axis=1)
    return out


def point_values(samples: GroupSamples, meteor: MeteorOfSums | None = None) -> dict[MetricKey, float]:
    """The metrics of all lines, from the statistics (equal to the scorers' numbers; CIDEr: the mean of per-sample
    scores)."""
    return {k: float(v[0]) for k, v in metrics_of_sums(samples.totals(), meteor).items()}


# --- resampling ------------------------------------------------------------------------------------------------------


def group_rng(seed: int, group: str) -> np.random.Generator:
    """A generator per group, so a group's numbers do not depend on which other groups were scored."""
    return np.random.default_rng([seed, zlib.crc32(group.encode("utf-8"))])


def bootstrap_weights(strata: np.ndarray, resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Blocks of (rows, n) draw counts: each row one resample with replacement within every stratum."""
    n = len(strata)
    parts = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    rows = max(1, min(resamples, CHUNK_ELEMENTS // max(n, 1)))
    for start in range(0, resamples, rows):
        r = min(rows, resamples - start)
        counts = np.zeros(r * n, dtype=np.float64)
        offsets = (np.arange(r) * n).reshape(-1, 1)
        for idx in parts:
            draws = idx[rng.integers(0, len(idx), size=(r, len(idx)))]
            counts += np.bincount((offsets + draws).ravel(), minlength=r * n)
        yield counts.reshape(r, n)


def bootstrap_replicates(
    samples: GroupSamples, resamples: int, rng: np.random.Generator, meteor: MeteorOfSums | None = None
) -> dict[MetricKey, np.ndarray]:
    """Every metric on ``resamples`` bootstrap resamples of the group's lines."""
    parts: dict[MetricKey, list[np.ndarray]] = {}
    for weights in bootstrap_weights(samples.strata, resamples, rng):
        sums = {k: weights @ v for k, v in samples.families.items()}
        for key, values in metrics_of_sums(sums, meteor).items():
            parts.setdefault(key, []).append(values)
    return {k: np.concatenate(v) for k, v in parts.items()}


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The (1 − level)/2 and (1 + level)/2 quantiles, over the resamples where the metric is defined."""
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def nest(flat: Mapping[MetricKey, Any]) -> dict[str, Any]:
    """{("a",): x, ("b", "c"): y} → {"a": x, "b": {"c": y}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return out


# --- paired comparison -----------------------------------------------------------------------------------------------


class PairedResult(TypedDict):
    """A metric for two systems on the same samples: values, B − A with its paired-bootstrap interval, and the
    approximate-randomisation p-value."""

    a: float
    b: float
    difference: float
    ci: tuple[float, float] | None
    p: float
    approximate: NotRequired[str]


def _aligned(a: GroupSamples, b: GroupSamples) -> list[Family]:
    if len(a.records) != len(b.records) or not np.array_equal(a.strata, b.strata):
        raise ValueError("paired samples must be the same lines in the same order")
    return [f for f in a.families if f in b.families]


def _families_pair(a: GroupSamples, b: GroupSamples) -> tuple[dict[Family, np.ndarray], dict[Family, np.ndarray]]:
    """The two systems' blocks over the families both have (a VQA object one system's references lack is zero)."""
    families = _aligned(a, b)
    return {f: a.families[f] for f in families}, {f: b.families[f] for f in families}


def paired_test(
    a: GroupSamples,
    b: GroupSamples,
    trials: int,
    resamples: int,
    rng: np.random.Generator,
    meteor: MeteorOfSums | None = None,
    level: float = 0.95,
) -> dict[MetricKey, PairedResult]:
    """Paired approximate randomisation (``trials`` swaps) and paired-bootstrap interval of B − A, per metric."""
    fa, fb = _families_pair(a, b)
    n = len(a.records)
    va = {
        k: float(v[0]) for k, v in metrics_of_sums({f: x.sum(0, keepdims=True) for f, x in fa.items()}, meteor).items()
    }
    vb = {
        k: float(v[0]) for k, v in metrics_of_sums({f: x.sum(0, keepdims=True) for f, x in fb.items()}, meteor).items()
    }
    keys = [k for k in va if k in vb and math.isfinite(va[k]) and math.isfinite(vb[k])]
    observed = {k: abs(vb[k] - va[k]) for k in keys}
    reached = dict.fromkeys(keys, 0)
    base_a = {f: x.sum(0) for f, x in fa.items()}
    base_b = {f: x.sum(0) for f, x in fb.items()}
    delta = {f: fb[f] - fa[f] for f in fa}
    rows = max(1, min(trials, CHUNK_ELEMENTS // max(n, 1)))
    for start in range(0, trials, rows):
        r = min(rows, trials - start)
        swap = rng.integers(0, 2, size=(r, n)).astype(np.float64)
        moved = {f: swap @ d for f, d in delta.items()}
        ma = metrics_of_sums({f: base_a[f] + moved[f] for f in fa}, meteor)
        mb = metrics_of_sums({f: base_b[f] - moved[f] for f in fb}, meteor)
        for k in keys:
            # ties count (identical systems: every trial ties, p = 1); a relative 1e-12 absorbs summation order
            tol = 1e-12 * max(1.0, observed[k])
            reached[k] += int(np.sum(np.abs(mb[k] - ma[k]) >= observed[k] - tol))
    diffs: dict[MetricKey, list[np.ndarray]] = {k: [] for k in keys}
    for weights in bootstrap_weights(a.strata, resamples, rng):
        ma = metrics_of_sums({f: weights @ x for f, x in fa.items()}, meteor)
        mb = metrics_of_sums({f: weights @ x for f, x in fb.items()}, meteor)
        for k in keys:
            diffs[k].append(mb[k] - ma[k])
    out: dict[MetricKey, PairedResult] = {}
    for k in keys:
        res: PairedResult = {
            "a": va[k],
            "b": vb[k],
            "difference": vb[k] - va[k],
            "ci": percentile_interval(np.concatenate(diffs[k]), level) if resamples else None,
            "p": (reached[k] + 1) / (trials + 1),
        }
        if k in APPROXIMATE:
            res["approximate"] = APPROXIMATE[k]
        out[k] = res
    return out

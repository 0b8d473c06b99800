"""The whole CPU report-metric suite on 10,000 report pairs, timed metric by metric, against pycocoevalcap alone.

Pairs: IU X-ray findings/impressions (Open-i), shuffled, each paired with another report of the same section — a
realistic spread of overlap. "pycocoevalcap alone" is the standard direct use: PTBTokenizer on references and
predictions (two JVM runs), then Bleu(4), Meteor (its own process), Rouge, Cider. The suite is deepmedix's
NLGScorer (one tokenizer run, one METEOR process) plus F1-CheXpert (rules); both NLG paths must agree exactly.

    .venv/bin/python benchmarks/eval_suite.py --pairs 10000
Writes docs/figures/eval_suite_timing.png and prints the numbers recorded in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IU = ROOT.parent / "shared" / "data" / "curated" / "text" / "iu_xray_reports.jsonl"


def report_pairs(path: Path, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    rng = random.Random(seed)
    preds, refs = [], []
    by_section = {k: [r[k] for r in rows if r.get(k)] for k in ("findings", "impression")}
    while len(preds) < n:
        section = rng.choice(("findings", "impression"))
        ref, pred = rng.sample(by_section[section], 2)
        refs.append(ref)
        preds.append(pred)
    return preds, refs


def timed(fn, *a, **k):
    t0 = time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t0


def pycocoevalcap_alone(preds: list[str], refs: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    times: dict[str, float] = {}
    tok = PTBTokenizer()
    t0 = time.perf_counter()
    gts = tok.tokenize({i: [{"caption": r}] for i, r in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    times["tokenize"] = time.perf_counter() - t0
    (bleu, _), times["bleu"] = timed(Bleu(4).compute_score, gts, res, verbose=0)
    t0 = time.perf_counter()
    meteor = Meteor()
    m, _ = meteor.compute_score(gts, res)
    times["meteor"] = time.perf_counter() - t0
    del meteor
    (rouge, _), times["rouge_l"] = timed(Rouge().compute_score, gts, res)
    (cider, _), times["cider"] = timed(Cider().compute_score, gts, res)
    scores = {
        "bleu_1": bleu[0],
        "bleu_2": bleu[1],
        "bleu_3": bleu[2],
        "bleu_4": bleu[3],
        "meteor": m,
        "rouge_l": rouge,
        "cider": cider,
    }
    return scores, times


def deepmedix_suite(preds: list[str], refs: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from deepmedix.evaluation.clinical import rules_f1
    from deepmedix.evaluation.nlg import NLGScorer, ptb_tokenize, sanitize

    times: dict[str, float] = {}
    tokens, times["tokenize"] = timed(ptb_tokenize, preds + refs)
    p_tok, r_tok = tokens[: len(preds)], tokens[len(preds) :]
    res = {i: [sanitize(p)] for i, p in enumerate(p_tok)}
    gts = {i: [sanitize(r)] for i, r in enumerate(r_tok)}
    scores: dict[str, float] = {}
    (bleu, _), times["bleu"] = timed(Bleu(4).compute_score, gts, res, verbose=0)
    scores.update({f"bleu_{i + 1}": bleu[i] for i in range(4)})
    with NLGScorer() as scorer:
        t0 = time.perf_counter()
        scores["meteor"] = scorer._meteor_scorer().compute_score(gts, res)[0]
        times["meteor"] = time.perf_counter() - t0
    (scores["rouge_l"], _), times["rouge_l"] = timed(Rouge().compute_score, gts, res)
    (scores["cider"], _), times["cider"] = timed(Cider().compute_score, gts, res)
    rules, times["f1_chexpert_rules"] = timed(rules_f1, preds, refs)
    if rules is not None:
        scores.update(
            {f"f1_chexpert_rules_{k}": rules[k] for k in ("micro_f1_14", "macro_f1_14", "micro_f1_5", "macro_f1_5")}
        )
    return scores, times


def figure(coco: dict[str, float], ours: dict[str, float], n: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys([*coco, *ours]))
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar([i - 0.2 for i in x], [coco.get(k, 0) for k in names], width=0.4, label="pycocoevalcap alone")
    ax.bar([i + 0.2 for i in x], [ours.get(k, 0) for k in names], width=0.4, label="deepmedix suite")
    ax.set_xticks(list(x), names, rotation=20)
    ax.set_ylabel("seconds")
    ax.set_title(f"Report metrics on {n:,} pairs (2 CPU cores)")
    ax.legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=10000)
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "eval_suite_timing.png")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    preds, refs = report_pairs(IU, args.pairs)
    coco_scores, coco_times = pycocoevalcap_alone(preds, refs)
    our_scores, our_times = deepmedix_suite(preds, refs)
    mismatch = {k: (coco_scores[k], our_scores[k]) for k in coco_scores if coco_scores[k] != our_scores[k]}
    result = {
        "pairs": args.pairs,
        "pycocoevalcap_seconds": coco_times,
        "deepmedix_seconds": our_times,
        "pycocoevalcap_total_s": sum(coco_times.values()),
        "deepmedix_total_s": sum(our_times.values()),
        "scores": our_scores,
        "nlg_identical": not mismatch,
        "mismatch": mismatch,
    }
    print(json.dumps(result, indent=2))
    figure(coco_times, our_times, args.pairs, args.figure)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The whole CPU report-metric suite on 10,000 report pairs against pycocoevalcap alone, interleaved and repeated.

Pairs: IU X-ray findings/impressions (Open-i), shuffled, each paired with another report of the same section — a
realistic spread of overlap. "pycocoevalcap alone" is the standard direct use: PTBTokenizer on references and
predictions (two JVM runs), then Bleu(4), Meteor (its own process, one round trip per segment), Rouge, Cider, one
after the other. "deepmedix suite" is ``Evaluator.report_scores`` — what ``deepmedix eval`` runs on a report group
without CheXbert/RadGraph models: one tokenizer run while the rule labeler works, METEOR's jar fed in batches from a
thread while BLEU, ROUGE-L and CIDEr are computed, F1-CheXpert (rules) included, per-sample statistics kept. The NLG
numbers of the two must be identical. The 95 % bootstrap intervals (1,000 resamples, every metric) are timed
separately.

The two sides run alternately (A B A B …) in one process, each with fresh Java processes; every run records the
machine's load average, and the medians are reported.

    .venv/bin/python benchmarks/eval_suite.py --pairs 10000 --repeats 5 --json eval_suite.json
Writes docs/figures/eval_suite_timing.png and prints the numbers recorded in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def load() -> float:
    return os.getloadavg()[0]


def cpu_jiffies() -> tuple[int, int]:
    """(all, idle) CPU time of the machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]


def own_cpu() -> float:
    """CPU seconds of this process and its waited-for children (the Java processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def busy_cores(seconds: float = 5.0) -> float:
    """Cores busy over the next ``seconds`` (this process idle meanwhile, so: other processes)."""
    a = cpu_jiffies()
    time.sleep(seconds)
    b = cpu_jiffies()
    return (1 - (b[1] - a[1]) / max(b[0] - a[0], 1)) * (os.cpu_count() or 1)


def wait_until_quiet(threshold: float, max_wait: float) -> float:
    """Wait until other processes keep fewer than ``threshold`` cores busy (at most ``max_wait`` s); the last
    reading."""
    deadline = time.monotonic() + max_wait
    while True:
        others = busy_cores()
        if others < threshold or time.monotonic() > deadline:
            return others


class Spans:
    """Wall-clock spans of named steps, from wrappers around the functions that do them."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.spans: list[tuple[str, float, float]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            start = time.perf_counter() - self.t0
            try:
                return fn(*a, **k)
            finally:
                self.spans.append((name, start, time.perf_counter() - self.t0))

        return timed


def pycocoevalcap_alone(preds: list[str], refs: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    times: dict[str, float] = {}
    t = time.perf_counter()
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r}] for i, r in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    times["PTB tokenization"] = time.perf_counter() - t
    t = time.perf_counter()
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    times["BLEU-1..4"] = time.perf_counter() - t
    t = time.perf_counter()
    meteor = Meteor()
    m, _ = meteor.compute_score(gts, res)
    del meteor
    times["METEOR (incl. JVM start)"] = time.perf_counter() - t
    t = time.perf_counter()
    rouge, _ = Rouge().compute_score(gts, res)
    times["ROUGE-L"] = time.perf_counter() - t
    t = time.perf_counter()
    cider, _ = Cider().compute_score(gts, res)
    times["CIDEr"] = time.perf_counter() - t
    scores = {"bleu_1": bleu[0], "bleu_2": bleu[1], "bleu_3": bleu[2], "bleu_4": bleu[3], "meteor": m}
    scores |= {"rouge_l": rouge, "cider": cider}
    return scores, times


def deepmedix_suite(preds: list[str], refs: list[str]) -> tuple[dict[str, Any], float, Spans, list[dict[str, Any]]]:
    """``Evaluator.report_scores`` with every step's span recorded."""
    from deepmedix.evaluation import evaluate, nlg
    from deepmedix.evaluation.evaluate import Evaluator
    from deepmedix.evaluation.options import EvalOptions

    spans = Spans()
    patched = {
        (nlg, "ptb_tokenize"): "PTB tokenization (Java)",
        (nlg, "meteor_score"): "METEOR (Java, fed from a thread)",
        (nlg, "bleu_with_counts"): "BLEU-1..4",
        (evaluate, "rules_labels"): "F1-CheXpert (rules)",
    }
    saved = {k: getattr(*k) for k in patched}
    rouge, cider = nlg.Rouge.compute_score, nlg.Cider.compute_score
    try:
        for (module, attr), name in patched.items():
            setattr(module, attr, spans.wrap(name, saved[(module, attr)]))
        nlg.Rouge.compute_score = spans.wrap("ROUGE-L", rouge)
        nlg.Cider.compute_score = spans.wrap("CIDEr", cider)
        t = time.perf_counter()
        with Evaluator(EvalOptions(cache=False, figures=False, bootstrap_resamples=0)) as ev:
            metrics, per = ev.report_scores(preds, refs)
        wall = time.perf_counter() - t
    finally:
        for (module, attr), fn in saved.items():
            setattr(module, attr, fn)
        nlg.Rouge.compute_score, nlg.Cider.compute_score = rouge, cider
    return dict(metrics), wall, spans, per


def intervals(per: list[dict[str, Any]], resamples: int) -> float:
    """Wall time of the 95 % intervals of every metric (METEOR's aggregated by a fresh jar, started here)."""
    import numpy as np

    from deepmedix.evaluation.nlg import NLGScorer
    from deepmedix.evaluation.resampling import GroupSamples, bootstrap_replicates

    records = [{"group": "g", "id": str(i), "kind": "report", **p} for i, p in enumerate(per)]
    with NLGScorer() as scorer:
        scorer.warm_up()
        scorer.meteor_of_sums(np.zeros((1, 23)))  # the JVM is already up in a real run: not timed here
        t = time.perf_counter()
        samples = GroupSamples.from_records(records)  # type: ignore[arg-type]
        bootstrap_replicates(samples, resamples, np.random.default_rng(0), scorer.meteor_of_sums)
        return time.perf_counter() - t


def figure(
    coco: dict[str, float],
    coco_total: float,
    suite_wall: float,
    spans: Spans,
    extra: float,
    n: int,
    note: str,
    out: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "PTB tokenization": "#4c72b0",
        "BLEU-1..4": "#dd8452",
        "METEOR": "#c44e52",
        "ROUGE-L": "#55a868",
        "CIDEr": "#8172b3",
        "F1-CheXpert": "#937860",
    }

    def colour(name: str) -> str:
        return next((c for k, c in colours.items() if name.startswith(k)), "#999999")

    fig, ax = plt.subplots(figsize=(9, 3.8))
    left = 0.0
    for name, seconds in coco.items():
        ax.barh(3, seconds, left=left, color=colour(name), edgecolor="white")
        left += seconds
    ax.text(left + 0.2, 3, f"{coco_total:.1f} s", va="center", fontsize=9)
    lanes = {"PTB": 2.2, "METEOR": 1.8, "python": 1.4}
    for name, start, end in spans.spans:
        lane = (
            lanes["PTB"]
            if name.startswith("PTB")
            else lanes["METEOR"]
            if name.startswith("METEOR")
            else lanes["python"]
        )
        if name.startswith("METEOR"):  # its JVM was started at 0 and loaded its tables meanwhile
            ax.barh(lane, start, left=0, height=0.3, color=colour(name), alpha=0.35, edgecolor="white")
        ax.barh(lane, end - start, left=start, height=0.3, color=colour(name), edgecolor="white")
    ax.text(suite_wall + 0.2, 1.8, f"{suite_wall:.1f} s", va="center", fontsize=9)
    ax.barh(0.4, extra, left=0, height=0.5, color="#bbbbbb")
    ax.text(extra + 0.2, 0.4, f"{extra:.1f} s", va="center", fontsize=9)
    ax.set_yticks(
        [3, 2.2, 1.8, 1.4, 0.4],
        [
            "pycocoevalcap alone",
            "deepmedix: tokenizer (Java)",
            "deepmedix: METEOR (Java)",
            "deepmedix: Python",
            "then: 95 % intervals",
        ],
        fontsize=9,
    )
    for name, c in colours.items():
        ax.barh(0.4, 0, color=c, label=name)
    ax.legend(fontsize=8, ncol=3, loc="upper right", bbox_to_anchor=(1.0, -0.18))
    ax.set_xlabel("seconds (pycocoevalcap: median per step; deepmedix: the median run; pale: METEOR's JVM loading)")
    ax.set_title(f"Report metrics on {n:,} pairs, 2 CPU cores ({note})", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side, interleaved (A B A B …)")
    ap.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples timed after the suite")
    ap.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "eval_suite_timing.png")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--quiet",
        type=float,
        default=None,
        help="before each pair of runs, wait until other "
        "processes keep fewer than this many cores busy (a shared machine)",
    )
    ap.add_argument("--max-wait", type=float, default=900, help="longest wait for --quiet, seconds")
    ap.add_argument("--replot", type=Path, default=None, help="only draw the figure from a --json file of a run")
    args = ap.parse_args()
    if args.replot:
        r = json.loads(args.replot.read_text())
        spans = Spans()
        spans.spans = [tuple(x) for x in r["deepmedix_spans_of_median_run_s"]]
        loads = r["load_1min"]
        note = f"load average {loads['min']:.1f}–{loads['max']:.1f}; medians of {r['repeats']}"
        figure(
            r["pycocoevalcap_steps_median_s"],
            r["pycocoevalcap_total_s"]["median"],
            r["deepmedix_median_run_wall_s"],
            spans,
            r["intervals_s"],
            r["pairs"],
            note,
            args.figure,
        )
        return
    preds, refs = report_pairs(IU, args.pairs)
    pycocoevalcap_alone(preds[:50], refs[:50])  # imports and first-call costs out of the way
    deepmedix_suite(preds[:50], refs[:50])
    runs: list[dict[str, Any]] = []
    for r in range(args.repeats):
        quiet = wait_until_quiet(args.quiet, args.max_wait) if args.quiet is not None else None
        for side in ("pycocoevalcap", "deepmedix"):
            before = load()
            jiffies, mine = cpu_jiffies(), own_cpu()
            t = time.perf_counter()
            if side == "pycocoevalcap":
                scores, steps = pycocoevalcap_alone(preds, refs)
                run: dict[str, Any] = {"side": side, "steps": steps, "scores": scores}
            else:
                metrics, wall, spans, per = deepmedix_suite(preds, refs)
                run = {"side": side, "wall": wall, "spans": spans.spans, "scores": metrics}
            run.update(repeat=r, seconds=time.perf_counter() - t, load_before=before, load_after=load())
            end = cpu_jiffies()
            busy = (1 - (end[1] - jiffies[1]) / max(end[0] - jiffies[0], 1)) * (os.cpu_count() or 1)
            run["own_cores"] = (own_cpu() - mine) / run["seconds"]
            run["other_cores"] = max(0.0, busy - run["own_cores"])  # what the rest of the machine used meanwhile
            run["others_before"] = quiet
            print(
                f"{side:14s} run {r + 1}: {run['seconds']:.1f} s (load {before:.2f} → {run['load_after']:.2f}; "
                f"this run {run['own_cores']:.2f} cores, other processes {run['other_cores']:.2f})",
                flush=True,
            )
            runs.append(run)
    extra = intervals(per, args.resamples) if args.resamples else 0.0
    coco = [x for x in runs if x["side"] == "pycocoevalcap"]
    ours = [x for x in runs if x["side"] == "deepmedix"]
    nlg_keys = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")
    mismatch = {
        k: (coco[0]["scores"][k], ours[0]["scores"][k])
        for k in nlg_keys
        if coco[0]["scores"][k] != ours[0]["scores"][k]
    }
    median_ours = sorted(ours, key=lambda x: x["seconds"])[len(ours) // 2]
    loads = [x["load_before"] for x in runs] + [x["load_after"] for x in runs]
    result = {
        "pairs": args.pairs,
        "repeats": args.repeats,
        "cores": os.cpu_count(),
        "load_1min": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)},
        "runs": [
            {k: x[k] for k in ("side", "repeat", "seconds", "load_before", "load_after", "own_cores", "other_cores")}
            for x in runs
        ],
        "pycocoevalcap_total_s": {
            "median": statistics.median(x["seconds"] for x in coco),
            "runs": [x["seconds"] for x in coco],
        },
        "pycocoevalcap_steps_median_s": {k: statistics.median(x["steps"][k] for x in coco) for k in coco[0]["steps"]},
        "deepmedix_total_s": {
            "median": statistics.median(x["seconds"] for x in ours),
            "runs": [x["seconds"] for x in ours],
        },
        "deepmedix_spans_of_median_run_s": [(n, round(a, 2), round(b, 2)) for n, a, b in median_ours["spans"]],
        "deepmedix_median_run_wall_s": median_ours["wall"],
        "intervals_s": extra,
        "scores": {k: v for k, v in ours[0]["scores"].items() if isinstance(v, float)},
        "nlg_identical": not mismatch,
        "mismatch": mismatch,
    }
    print(json.dumps(result, indent=2))
    spans = Spans()
    spans.spans = median_ours["spans"]
    note = f"load average {result['load_1min']['min']:.1f}–{result['load_1min']['max']:.1f}; medians of {args.repeats}"
    coco_total = result["pycocoevalcap_total_s"]["median"]
    figure(
        result["pycocoevalcap_steps_median_s"],
        coco_total,
        median_ours["wall"],
        spans,
        extra,
        args.pairs,
        note,
        args.figure,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

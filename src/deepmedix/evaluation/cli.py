"""``deepmedix eval`` (score a prediction file) and ``deepmedix bench`` (predict + score, resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from deepmedix.errors import OptionError
from deepmedix.evaluation.options import BenchOptions, EvalOptions
from deepmedix.inference.options import BackendOptions
from deepmedix.options import add_dataclass_arguments, dataclass_from_args

if TYPE_CHECKING:
    from deepmedix.evaluation.metrics import EvalResults


def _summary(metrics: EvalResults) -> str:
    lines = []
    for g, m in metrics.items():
        if g.startswith("_") or g == "paper_comparison" or not isinstance(m, dict):
            continue
        ci = m.get("ci") or {}
        parts = [
            f"{k}={m[k]:.4f}" + (f" [{ci[k][0]:.4f}, {ci[k][1]:.4f}]" if isinstance(ci.get(k), list) else "")
            for k in ("average", "accuracy")
            if isinstance(m.get(k), float)
        ]
        gm = m.get("grounding") or {}
        if isinstance(gm.get("box_recall"), float):
            parts.append(f"box_recall={gm['box_recall']:.4f}")
        lines.append(f"{g}: " + (", ".join(parts) or json.dumps({k: m[k] for k in ("n",) if k in m})))
        if m.get("n_truncated"):
            lines.append(
                f"WARNING {g}: {m['n_truncated']} of {m['n_truncation_known']} completions hit the token limit: "
                "their answers are what the model wrote before it was cut off"
            )
    return "\n".join(lines)


def _compare_summary(report: dict) -> str:
    lines = [f"{report['n_shared']} shared lines (A {report['n_a']}, B {report['n_b']})"]
    for g, block in report["groups"].items():
        for key in ("average", "accuracy"):
            r = block["metrics"].get(key)
            if r:
                ci = f" [{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]" if r.get("ci") else ""
                lines.append(f"{g}: {key} A={r['a']:.4f} B={r['b']:.4f} B-A={r['difference']:+.4f}{ci} p={r['p']:.4f}")
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    if (args.predictions is None) == (args.compare is None):
        raise OptionError("give --predictions FILE (score one system) or --compare A B (compare two), not both")
    options = dataclass_from_args(EvalOptions, args)
    if args.compare is not None:
        from deepmedix.evaluation.compare import compare  # the scorers: not for `--help`

        report = compare(args.compare[0], args.compare[1], args.out, options)
        print(_compare_summary(report))
        print(f"wrote {Path(args.out) / 'compare.json'} and compare.md")
        return 0
    from deepmedix.evaluation.evaluate import evaluate_file  # the scorers (numpy, pydantic): not for `--help`

    metrics = evaluate_file(args.predictions, args.out, options)
    print(_summary(metrics))
    print(f"wrote {Path(args.out) / 'metrics.json'}, report.md, report.html")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from deepmedix.evaluation.bench import run_benchmark  # the scorers and the inference engine: not for `--help`

    options = dataclass_from_args(EvalOptions, args)
    backend = dataclass_from_args(BackendOptions, args)
    metrics = run_benchmark(backend, args.data, args.out, options, dataclass_from_args(BenchOptions, args))
    print(_summary(metrics))
    print(f"wrote {Path(args.out) / 'predictions.jsonl'} and {Path(args.out) / 'metrics.json'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a prediction file: XrayBench report, VQA and grounding metrics",
        description="Score prediction lines (grouped by 'benchmark', else 'split') and write "
        "OUT/metrics.json (with a 95%% bootstrap interval per metric), OUT/per_sample.jsonl, OUT/report.md and "
        "OUT/report.html; or, with --compare A B, test B against A on their shared lines.",
    )
    p.add_argument("--predictions", type=Path, default=None, help="prediction JSONL")
    p.add_argument(
        "--compare",
        type=Path,
        nargs=2,
        metavar=("A", "B"),
        default=None,
        help="paired significance test of B against A per metric and group, on the lines both share (each a "
        "prediction JSONL or a folder deepmedix eval wrote); writes OUT/compare.json and OUT/compare.md",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_dataclass_arguments(p, EvalOptions)
    p.set_defaults(func=run_eval)

    b = subparsers.add_parser("bench", help="predict with a model on a benchmark file, then score it (resumable)")
    b.add_argument("--data", type=Path, required=True, help="benchmark samples JSONL")
    b.add_argument("--out", type=Path, required=True, help="output folder (predictions.jsonl, metrics.json, reports)")
    add_dataclass_arguments(b, BackendOptions)
    add_dataclass_arguments(b, BenchOptions)
    add_dataclass_arguments(b, EvalOptions)
    b.set_defaults(func=run_bench)

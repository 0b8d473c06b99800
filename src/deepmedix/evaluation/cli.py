"""``deepmedix eval`` (score a prediction file) and ``deepmedix bench`` (predict + score, resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from deepmedix.evaluation.options import BenchOptions, EvalOptions
from deepmedix.inference.options import BackendOptions
from deepmedix.options import add_dataclass_arguments, dataclass_from_args

if TYPE_CHECKING:
    from deepmedix.evaluation.metrics import EvalResults


def _summary(metrics: EvalResults) -> str:
    lines = []
    for g, m in metrics.items():
        if g.startswith("_") or not isinstance(m, dict):
            continue
        parts = [f"{k}={m[k]:.4f}" for k in ("average", "accuracy") if isinstance(m.get(k), float)]
        gm = m.get("grounding") or {}
        if isinstance(gm.get("box_recall"), float):
            parts.append(f"box_recall={gm['box_recall']:.4f}")
        lines.append(f"{g}: " + (", ".join(parts) or json.dumps({k: m[k] for k in ("n",) if k in m})))
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    from deepmedix.evaluation.evaluate import evaluate_file  # the scorers (numpy, pydantic): not for `--help`

    metrics = evaluate_file(args.predictions, args.out, dataclass_from_args(EvalOptions, args))
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
        "OUT/metrics.json, OUT/report.md and OUT/report.html.",
    )
    p.add_argument("--predictions", type=Path, required=True, help="prediction JSONL")
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

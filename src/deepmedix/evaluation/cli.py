"""``deepmedix eval`` (score a prediction file) and ``deepmedix bench`` (predict + score, resumable)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from deepmedix.errors import OptionError


def _add_metric_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--chexbert",
        type=Path,
        default=None,
        help="CheXbert checkpoint (chexbert.pth); without it F1-CheXbert is reported absent",
    )
    p.add_argument(
        "--chexbert-tokenizer",
        type=Path,
        default=None,
        help="local bert-base-uncased folder (vocab.txt [+ config.json]); default: the checkpoint's folder",
    )
    p.add_argument(
        "--chexbert-min-vocab",
        type=int,
        default=30000,
        help="refuse a tokenizer with a smaller vocabulary (a placeholder); default 30000",
    )
    p.add_argument(
        "--chexbert-batch-size",
        type=int,
        default=None,
        help="reports per CheXbert forward (default 16 on a CPU, 64 on a GPU)",
    )
    p.add_argument(
        "--radgraph",
        type=Path,
        default=None,
        help="RadGraph model folder (config.json, vocabulary/, weights.th); needs --radgraph-python",
    )
    p.add_argument(
        "--radgraph-python",
        type=Path,
        default=None,
        help="python of a separate virtualenv with radgraph 0.1.x (transformers<5)",
    )
    p.add_argument("--radgraph-model-type", default="radgraph", help="radgraph | radgraph-xl | modern-radgraph-xl")
    p.add_argument(
        "--radgraph-base-model",
        type=Path,
        default=None,
        help="local folder of the transformer RadGraph's config names (instead of a hub id)",
    )
    p.add_argument("--iou-threshold", type=float, default=0.5, help="box match threshold for grounding (0.5)")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (no Java)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where CheXbert labels and RadGraph annotations are kept per text, so each text is labelled "
        "once per model (default: $DEEPMEDIX_CACHE or ~/.cache/deepmedix)",
    )
    p.add_argument("--no-cache", action="store_true", help="label every text afresh and keep nothing")


def _options(args: argparse.Namespace) -> Any:
    from deepmedix.evaluation.evaluate import EvalOptions

    if args.radgraph is not None and args.radgraph_python is None:
        raise OptionError(
            "--radgraph needs --radgraph-python (the python of a virtualenv with radgraph, transformers<5)"
        )
    if args.chexbert_batch_size is not None and args.chexbert_batch_size < 1:
        raise OptionError(f"--chexbert-batch-size must be at least 1, got {args.chexbert_batch_size}")
    if not 0 < args.iou_threshold <= 1:
        raise OptionError(f"--iou-threshold must be in (0, 1], got {args.iou_threshold}")
    return EvalOptions(
        chexbert=args.chexbert,
        chexbert_tokenizer=args.chexbert_tokenizer,
        chexbert_min_vocab=args.chexbert_min_vocab,
        chexbert_batch_size=args.chexbert_batch_size,
        radgraph=args.radgraph,
        radgraph_python=args.radgraph_python,
        radgraph_model_type=args.radgraph_model_type,
        radgraph_base_model=args.radgraph_base_model,
        iou_threshold=args.iou_threshold,
        meteor=not args.no_meteor,
        cache_dir=args.cache_dir,
        cache=not args.no_cache,
    )


def _summary(metrics: dict[str, Any]) -> str:
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
    from deepmedix.evaluation.evaluate import evaluate_file

    metrics = evaluate_file(args.predictions, args.out, _options(args))
    print(_summary(metrics))
    print(f"wrote {Path(args.out) / 'metrics.json'}, report.md, report.html")
    return 0


def _backend_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.backend != "openai":
        return {}
    if not args.base_url:
        raise OptionError("--backend openai needs --base-url (the OpenAI-compatible endpoint serving the model)")
    return {"base_url": args.base_url, "api_key_env": args.api_key_env}


def run_bench(args: argparse.Namespace) -> int:
    from deepmedix.evaluation.bench import run_benchmark

    metrics = run_benchmark(
        args.model,
        args.data,
        args.out,
        options=_options(args),
        adapter=args.adapter,
        backend=args.backend,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        **_backend_kwargs(args),
    )
    print(_summary(metrics))
    print(f"wrote {Path(args.out) / 'predictions.jsonl'} and {Path(args.out) / 'metrics.json'}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="score a prediction file: XrayBench report, VQA and grounding metrics",
        description="Score prediction lines (grouped by 'benchmark', else 'split') and write "
        "OUT/metrics.json, OUT/report.md and OUT/report.html.",
    )
    p.add_argument("--predictions", type=Path, required=True, help="prediction JSONL")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    _add_metric_options(p)
    p.set_defaults(func=run_eval)

    b = subparsers.add_parser("bench", help="predict with a model on a benchmark file, then score it (resumable)")
    b.add_argument("--model", required=True, help="'tiny', a local checkpoint or a hub id")
    b.add_argument("--data", type=Path, required=True, help="benchmark samples JSONL")
    b.add_argument("--out", type=Path, required=True, help="output folder (predictions.jsonl, metrics.json, reports)")
    b.add_argument("--adapter", default=None, help="force an adapter (see docs/evaluation.md); default: from --model")
    b.add_argument("--backend", default="transformers", help="transformers | vllm | openai")
    b.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (with --backend openai)")
    b.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the endpoint's key")
    b.add_argument("--batch-size", type=int, default=4)
    b.add_argument("--max-new-tokens", type=int, default=256)
    b.add_argument("--limit", type=int, default=None, help="only the first N samples")
    _add_metric_options(b)
    b.set_defaults(func=run_bench)

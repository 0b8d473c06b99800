"""``deepmedix demo``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole system on the embedded default: data → 3 training stages → XrayBench → arena → review → report",
        description="Runs every part of DeepMedix-R1 and writes OUT/report.html. Each stage is skipped when its "
        "outputs are complete, so a rerun is quick; --fresh redoes everything.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--fresh", action="store_true", help="delete OUT and start over")
    p.add_argument(
        "--recipes",
        type=Path,
        default=None,
        help="folder with sft.yaml, coldstart.yaml, grpo.yaml (default: recipes/small)",
    )
    p.add_argument("--data", type=Path, default=None, help="samples JSONL (default: the bundled sample)")
    p.add_argument("--per-benchmark", type=int, default=10, help="test samples per benchmark group (0: all)")
    p.add_argument("--phantom-train", type=int, default=3200, help="phantom training samples (bundled data only)")
    p.add_argument(
        "--phantom-heldout", type=int, default=240, help="held-out phantom samples every model answers (bundled data)"
    )
    p.add_argument("--coldstart-samples", type=int, default=600, help="training samples given to the teacher")
    p.add_argument("--grpo-samples", type=int, default=160, help="training samples for stage 3")
    p.add_argument("--review-samples", type=int, default=12)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads on a CPU (0: torch's choice; default 1, see docs/demo.md)"
    )
    p.add_argument(
        "--prediction-workers", type=int, default=None, help="models predicted in parallel (default: 2 on a CPU)"
    )
    p.add_argument("--backend", default="transformers", choices=("transformers", "vllm"))
    p.add_argument("--teacher", default="offline", help="'offline' or an OpenAI-compatible base URL")
    p.add_argument("--teacher-model", default="gpt-4.1")
    p.add_argument("--judge", default="offline", help="'offline' or an OpenAI-compatible base URL")
    p.add_argument("--judge-model", default="gpt-4.1")
    p.add_argument("--arena-budget", type=int, default=120)
    p.add_argument("--chexbert", type=Path, default=None, help="CheXbert checkpoint for F1-CheXbert")
    p.add_argument("--no-meteor", action="store_true", help="skip METEOR (needs Java)")
    p.add_argument("--quick", action="store_true", help="a few training steps per stage (a smoke run)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from deepmedix.demo.pipeline import DemoConfig, run_demo

    cfg = DemoConfig(
        out=args.out,
        recipes=args.recipes,
        data=args.data,
        fresh=args.fresh,
        per_benchmark=args.per_benchmark,
        phantom_train=args.phantom_train,
        phantom_heldout=args.phantom_heldout,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        threads=args.threads or None,
        prediction_workers=args.prediction_workers,
        backend=args.backend,
        teacher=args.teacher,
        teacher_model=args.teacher_model,
        judge=args.judge,
        judge_model=args.judge_model,
        arena_budget=args.arena_budget,
        coldstart_samples=args.coldstart_samples,
        grpo_samples=args.grpo_samples,
        review_samples=args.review_samples,
        chexbert=args.chexbert,
        meteor=not args.no_meteor,
        max_steps={"sft": 4, "coldstart": 4, "grpo": 2} if args.quick else None,
    )
    run_demo(cfg)
    return 0

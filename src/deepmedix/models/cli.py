"""``deepmedix tiny-model``: build an embedded model into a folder (registering stays cheap: no torch import)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _tiny_model(args: argparse.Namespace) -> int:
    from deepmedix.io import check_output, staged_folder
    from deepmedix.models.tiny import build_tiny_model

    check_output(args.out, folder=True)  # before torch is imported
    with staged_folder(args.out) as staging:  # the whole model or nothing
        build_tiny_model(staging, seed=args.seed, family=args.family)
    print(f"tiny {args.family} model written to {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tiny-model", help="build the tiny random Qwen2.5-VL used by tests and demos")
    p.add_argument("--out", type=Path, required=True, help="folder to write the model into")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--family",
        choices=("qwen2_5_vl", "qwen3_vl"),
        default="qwen2_5_vl",
        help="model family (default: Qwen2.5-VL, the paper's base)",
    )
    p.set_defaults(func=_tiny_model)

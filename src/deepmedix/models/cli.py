"""``deepmedix tiny-model``: build an embedded model into a folder (registering stays cheap: no torch import)."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmedix.errors import OptionError

EMBEDDED_NAMES = ("tiny", "small")  # deepmedix.models.registry.EMBEDDED_MODELS, without importing transformers here


def _tiny_model(args: argparse.Namespace) -> int:
    from deepmedix.io import check_output, staged_folder
    from deepmedix.models.registry import EMBEDDED_MODELS
    from deepmedix.models.tiny import build_tiny_model

    if args.name != "tiny" and args.family != "qwen2_5_vl":
        raise OptionError(f"the {args.name} model is a Qwen2.5-VL; --family {args.family} is built for tiny only")
    check_output(args.out, folder=True)  # before torch is imported
    with staged_folder(args.out) as staging:  # the whole model or nothing
        if args.name == "tiny":
            build_tiny_model(staging, seed=args.seed, family=args.family)
        else:
            EMBEDDED_MODELS[args.name].builder(staging, seed=args.seed)
    print(f"{args.name} {args.family} model written to {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tiny-model", help="build an embedded random Qwen2.5-VL: tiny (tests) or small (the demo)"
    )
    p.add_argument("--out", type=Path, required=True, help="folder to write the model into")
    p.add_argument(
        "--name",
        choices=EMBEDDED_NAMES,
        default="tiny",
        help="tiny: ~225K parameters, for tests; small: ~3.8M parameters, learns on a CPU in minutes (the demo)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--family",
        choices=("qwen2_5_vl", "qwen3_vl"),
        default="qwen2_5_vl",
        help="model family (default: Qwen2.5-VL, the paper's base; Qwen3-VL for the tiny model only)",
    )
    p.set_defaults(func=_tiny_model)

"""``deepmedix demo``: its flags are :class:`~deepmedix.demo.config.DemoConfig`'s fields."""

from __future__ import annotations

import argparse

from deepmedix.demo.config import DemoConfig
from deepmedix.options import add_dataclass_arguments, dataclass_from_args

QUICK_STEPS = {"sft": 4, "coldstart": 4, "grpo": 2}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the whole system on the embedded default: data → 3 training stages → XrayBench → arena → review → report",
        description="Runs every part of DeepMedix-R1 and writes OUT/report.html. Each stage is skipped when its "
        "outputs are complete, so a rerun is quick; --fresh redoes everything.",
    )
    add_dataclass_arguments(p, DemoConfig)
    p.add_argument("--quick", action="store_true", help="a few training steps per stage (a smoke run)")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from deepmedix.demo.pipeline import run_demo  # loads evaluation, arena and (for training) torch

    run_demo(dataclass_from_args(DemoConfig, args, max_steps=QUICK_STEPS if args.quick else None))
    return 0

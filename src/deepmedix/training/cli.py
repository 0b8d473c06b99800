"""``deepmedix train sft|coldstart|grpo`` and ``deepmedix pipeline``.

Registering stays cheap: torch, transformers and TRL are imported inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepmedix.errors import DataError, OptionError
from deepmedix.training.coldstart.cli import register as register_coldstart

STAGES = ("sft", "coldstart", "grpo")


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """Command-line overrides → recipe keys (``--set key=value`` values are parsed as YAML scalars)."""
    import yaml

    out: dict[str, object] = {}
    for flag, key in (
        ("output_dir", "output_dir"),
        ("max_steps", "max_steps"),
        ("data", "data"),
        ("model", "model"),
        ("ref_model", "ref_model"),
        ("seed", "seed"),
        ("prompt_template", "prompt_template"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = str(value) if isinstance(value, Path) else value
    if getattr(args, "push_to_hub", None):
        out["push_to_hub"], out["hub_model_id"] = True, args.push_to_hub
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise OptionError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise OptionError(f"--set {item!r}: not a YAML value ({' '.join(str(e).split())})") from None
    return out


def _train(args: argparse.Namespace) -> int:
    from deepmedix.training.stages import run_stage

    out = run_stage(args.stage, args.recipe, overrides=_overrides(args))
    print(f"{args.stage}: final model in {out}")
    return 0


def _model_card(args: argparse.Namespace) -> int:
    from deepmedix.io import read_json
    from deepmedix.training.model_card import push_to_hub, write_model_card

    evaluation = None
    if args.eval is not None:
        evaluation = read_json(args.eval)
        if not isinstance(evaluation, dict):
            raise DataError(f"{args.eval}: expected the metrics.json of deepmedix eval (a JSON object)")
    print(write_model_card(args.model, evaluation))
    if args.push_to_hub:
        print(push_to_hub(args.model, args.push_to_hub))
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from deepmedix.training.pipeline import run_pipeline

    # The template is the reasoning prompt: the stages that reason take it, stage 1 asks with the question alone.
    template = {"prompt_template": str(args.prompt_template)} if args.prompt_template else {}
    result = run_pipeline(
        args.recipes,
        data=args.data,
        output_root=args.output_dir,
        max_steps=args.max_steps,
        grpo_data=args.grpo_data,
        overrides={"coldstart": template, "grpo": template} if template else None,
    )
    for stage, path in result.items():
        print(f"{stage}: {path}")
    return 0


def _add_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-dir", dest="output_dir", type=Path, help="where checkpoints and the final model go")
    p.add_argument("--max-steps", dest="max_steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--data", type=Path, help="samples JSONL (overrides the recipe's data)")
    p.add_argument("--model", help='starting model: "tiny", a hub id or a folder (overrides the recipe)')
    p.add_argument("--seed", type=int)
    _add_prompt_template(p)
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any recipe key, e.g. --set learning_rate=1e-4 (repeatable)",
    )


def _add_prompt_template(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompt-template",
        dest="prompt_template",
        type=Path,
        metavar="FILE.jinja",
        help="Jinja template of the reasoning prompt's text, given the question as 'content' (recipe key "
        "prompt_template; default: the built-in one)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="run one training stage from a YAML recipe (sft, coldstart, grpo)")
    p.add_argument("stage", choices=STAGES, help="sft: instruction SFT; coldstart: SFT on reasoning data; grpo: RL")
    p.add_argument("--recipe", type=Path, required=True, help="YAML recipe, e.g. recipes/tiny/sft.yaml")
    _add_overrides(p)
    p.add_argument("--ref-model", dest="ref_model", help="grpo: the KL reference model (default: the recipe's)")
    p.add_argument("--push-to-hub", metavar="REPO", help="push the final model and its card to this hub repository")
    p.set_defaults(func=_train)

    p = subparsers.add_parser("model-card", help="(re)write a final model's README.md card, optionally push it")
    p.add_argument("model", type=Path, help="a final/ folder written by deepmedix train")
    p.add_argument("--eval", type=Path, default=None, help="metrics.json of deepmedix eval on held-out data to add")
    p.add_argument("--push-to-hub", metavar="REPO", help="also push the folder to this hub repository (private)")
    p.set_defaults(func=_model_card)

    p = subparsers.add_parser("pipeline", help="run SFT → cold-start synthesis → cold-start SFT → GRPO")
    p.add_argument("--recipes", type=Path, required=True, help="folder with sft.yaml, coldstart.yaml, grpo.yaml")
    p.add_argument("--data", type=Path, help="samples JSONL for all stages (default: the recipes' data)")
    p.add_argument("--grpo-data", dest="grpo_data", type=Path, help="samples JSONL for GRPO (default: --data)")
    p.add_argument("--output-dir", dest="output_dir", type=Path, help="root folder; each stage writes a subfolder")
    p.add_argument("--max-steps", dest="max_steps", type=int, help="cap every stage's steps (smoke runs)")
    _add_prompt_template(p)
    p.set_defaults(func=_pipeline)
    register_coldstart(subparsers)

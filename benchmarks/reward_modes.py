"""What the reward mode, or any other stage-3 setting, does: stage 3 rerun from a finished demo's stage-2 model with
another reward mode (``paper`` by default) and any recipe keys changed with ``--set``, everything else as the demo's
recipe, then compared with the demo's own stage 3 on the same held-out samples (paired bootstrap intervals, as in
the demo's report).

    python benchmarks/reward_modes.py --demo runs/demo [--mode paper] [--out runs/demo/reward-modes]
    python benchmarks/reward_modes.py --demo runs/demo --mode grounded \
        --set per_device_train_batch_size=64 --set learning_rate=1e-4 --out runs/demo/grpo-8-prompts

Prints the held-out metrics of stage 2, the demo's stage 3 and the rerun, and the paired differences against
stage 2; writes ``comparison.json`` under ``--out``. Numbers for docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from deepmedix.demo.pipeline import HELDOUT_SOURCE, _packaged_recipes
from deepmedix.evaluation.stage_comparison import METRICS, compare_stages, format_metric
from deepmedix.inference.predict import predict_file
from deepmedix.io import atomic_write_json
from deepmedix.training.config import read_recipe
from deepmedix.training.stages import run_stage


def _settings(pairs: list[str], ap: argparse.ArgumentParser) -> dict[str, object]:
    import yaml

    settings: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            ap.error(f"--set {pair!r}: expected KEY=VALUE")
        settings[key.strip()] = yaml.safe_load(value)
    return settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, required=True, help="a finished `deepmedix demo` output folder")
    ap.add_argument("--recipes", type=Path, default=None, help="the demo's recipes (default: the packaged small ones)")
    ap.add_argument("--mode", default="paper", choices=("paper", "release", "grounded"))
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a key of the stage-3 recipe (YAML value), e.g. learning_rate=1e-4; repeatable",
    )
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    out = args.out or args.demo / f"reward-mode-{args.mode}"
    label = f"stage3-{out.name}" if args.set else f"stage3-{args.mode}"  # the rerun's name in the tables
    recipes = args.recipes or _packaged_recipes()
    models = args.demo / "models"

    recipe = read_recipe(recipes / "grpo.yaml")
    recipe.update(
        {
            "model": str(models / "coldstart" / "final"),
            "ref_model": str(models / "sft" / "final"),
            "data": str(args.demo / "data" / "grpo.jsonl"),
            "output_dir": str(out / "grpo"),
            "reward_mode": args.mode,
        }
    )
    if args.mode != "grounded":
        recipe.pop("reward_weights", None)  # the mode's own weights: (1 − λ, λ, 1)
    recipe.update(_settings(args.set, ap))
    recipe_path = out / "grpo.yaml"
    out.mkdir(parents=True, exist_ok=True)
    import yaml

    recipe_path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    start = time.perf_counter()
    final = run_stage("grpo", recipe_path)
    print(f"stage 3 with the {args.mode} reward: {final} ({time.perf_counter() - start:.0f} s)")

    rerun = out / "predictions.jsonl"
    predict_file(
        str(final),
        args.demo / "data" / "test.jsonl",
        rerun,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        reasoning=True,
    )
    predictions = {
        "stage2": args.demo / "predictions" / "stage2.jsonl",
        "stage3": args.demo / "predictions" / "stage3.jsonl",
        label: rerun,
    }
    heldout = lambda row: row.get("source") == HELDOUT_SOURCE  # noqa: E731
    against_stage2 = {
        name: compare_stages({"stage2": predictions["stage2"], name: predictions[name]}, keep=heldout)
        for name in ("stage3", label)
    }
    head_to_head = compare_stages({"stage3": predictions["stage3"], label: predictions[label]}, keep=heldout)
    atomic_write_json(out / "comparison.json", {"against_stage2": against_stage2, "head_to_head": head_to_head})

    first = next(iter(against_stage2.values()))
    print(f"\nheld-out samples: {first['n']}; 95% percentile bootstrap intervals, differences paired")
    print(f"{'':<24}" + "".join(f"{title:>30}" for title in METRICS.values()))
    print(f"{'stage 2':<24}" + "".join(f"{format_metric(first['models']['stage2'][m]):>30}" for m in METRICS))
    for name, result in against_stage2.items():
        print(f"{name:<24}" + "".join(f"{format_metric(result['models'][name][m]):>30}" for m in METRICS))
    for name, result in against_stage2.items():
        diff = result["differences"][f"stage2 → {name}"]
        print(f"{'Δ ' + name:<24}" + "".join(f"{format_metric(diff[m], signed=True):>30}" for m in METRICS))
    diff = head_to_head["differences"][f"stage3 → {label}"]
    print(f"{label + ' − demo':<24}" + "".join(f"{format_metric(diff[m], signed=True):>30}" for m in METRICS))
    print(f"\n{json.dumps(str(out / 'comparison.json'))}")


if __name__ == "__main__":
    main()

"""The demo's stage comparison again, on held-out phantoms that no choice was made on.

The demo's recipes were chosen by their numbers on the demo's held-out phantoms (seeds 200–203), which makes those
a validation set. This script draws a second set from other seeds (300–303 by default; the training phantoms use
100), lets the demo's stage-2 and stage-3 models answer it, and prints the same table with paired bootstrap
intervals: the numbers to quote for what stage 3 does.

    python benchmarks/fresh_heldout.py --demo runs/demo [--per-kind 60] [--seed 300] [--out runs/demo/fresh-heldout]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepmedix.data.phantom import SAMPLE_KINDS, make_phantom_samples
from deepmedix.data.schema import sample_to_json
from deepmedix.demo.pipeline import PHANTOM_HELDOUT_SEED, PHANTOM_TRAIN_SEED, _packaged_recipes, _prediction_budget
from deepmedix.evaluation.stage_comparison import METRICS, compare_stages, format_metric
from deepmedix.inference.predict import predict_file
from deepmedix.io import atomic_write_json, atomic_write_jsonl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", type=Path, required=True, help="a finished `deepmedix demo` output folder")
    ap.add_argument("--per-kind", type=int, default=60, help="questions per kind (one per image)")
    ap.add_argument("--seed", type=int, default=300, help="first seed; kind i uses seed + i")
    ap.add_argument("--recipes", type=Path, default=None, help="the demo's recipes (default: the packaged small ones)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    used = {PHANTOM_TRAIN_SEED} | {PHANTOM_HELDOUT_SEED + i for i in range(len(SAMPLE_KINDS))}
    seeds = [args.seed + i for i in range(len(SAMPLE_KINDS))]
    if used & set(seeds):
        ap.error(f"--seed {args.seed}: seeds {sorted(used & set(seeds))} are the demo's own (training or held-out)")
    out = args.out or args.demo / "fresh-heldout"
    out.mkdir(parents=True, exist_ok=True)

    samples = [
        s
        for kind, seed in zip(SAMPLE_KINDS, seeds, strict=True)
        for s in make_phantom_samples(out / f"phantom-{kind}", args.per_kind, seed=seed, split="test", kinds=(kind,))
    ]
    data = out / "samples.jsonl"
    atomic_write_jsonl(data, (sample_to_json(s) for s in samples))

    models = args.demo / "models"
    budget = _prediction_budget(args.recipes or _packaged_recipes())  # the demo's own token budget
    predictions = {}
    for name, stage in (("stage2", "coldstart"), ("stage3", "grpo")):
        predictions[name] = predict_file(
            str(models / stage / "final"),
            data,
            out / f"{name}.jsonl",
            batch_size=args.batch_size,
            max_new_tokens=budget,
            reasoning=True,
        )
    result = compare_stages(predictions)
    atomic_write_json(out / "comparison.json", result)

    print(f"\n{result['n']} fresh held-out phantoms (seeds {seeds}); 95% bootstrap intervals, differences paired")
    print(f"{'':<18}" + "".join(f"{title:>30}" for title in METRICS.values()))
    for name in predictions:
        print(f"{name:<18}" + "".join(f"{format_metric(result['models'][name][m]):>30}" for m in METRICS))
    diff = result["differences"]["stage2 → stage3"]
    print(f"{'stage 2 → 3':<18}" + "".join(f"{format_metric(diff[m], signed=True):>30}" for m in METRICS))
    print(f"\n{json.dumps(str(out / 'comparison.json'))}")


if __name__ == "__main__":
    main()

"""The demo under other draws of its training data: stage 2, stage 3, and what stage 3 changed, per draw.

``deepmedix demo --seed S`` draws the cold-start samples, the GRPO prompts and the real-image test samples with seed
S; the phantom training and held-out sets, the base model and the training seeds stay the same, so every run is
measured on the same 240 held-out phantoms. At this size one draw of a cold start trained at a constant rate
changed stage 2 by up to 8 points (docs/demo.md), so a claim about what a stage does should hold on more than one.

    python benchmarks/demo_seeds.py --seeds 0 1 2 [--out runs/demo-seeds] [--parallel 2]

With ``--parallel N`` the runs go N at a time, each on one torch thread (``OMP_NUM_THREADS=1 --threads 0``: on two
cores, two processes of two threads stall each other). Finished runs are skipped (the demo's own markers). Prints,
per seed, stage 2, stage 3 and the paired stage-2 → stage-3 change with its 95% bootstrap interval; writes
``seeds.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from deepmedix.evaluation.stage_comparison import format_metric
from deepmedix.io import atomic_write_json

METRICS = ("answer_accuracy", "protocol_valid", "box_recall", "mean_iou", "mean_iou_grounding")


def run_seed(seed: int, out: Path, one_thread: bool) -> Path:
    folder = out / f"seed-{seed}"
    cmd = [sys.executable, "-m", "deepmedix.cli", "demo", "--seed", str(seed), "--out", str(folder)]
    env = dict(os.environ)
    if one_thread:
        cmd += ["--threads", "0"]
        env["OMP_NUM_THREADS"] = "1"
    with (out / f"seed-{seed}.log").open("w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return folder / "eval" / "stages.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("runs/demo-seeds"))
    ap.add_argument("--parallel", type=int, default=1, help="runs at a time, each on one torch thread when > 1")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        paths = list(pool.map(lambda s: run_seed(s, args.out, args.parallel > 1), args.seeds))
    rows: dict[str, dict[str, object]] = {}
    print(f"{'':<22}" + "".join(f"{m:>30}" for m in METRICS))
    for seed, path in zip(args.seeds, paths, strict=True):
        comparison = json.loads(path.read_text())
        change = comparison["differences"]["stage2 → stage3"]
        rows[str(seed)] = {
            "n": comparison["n"],
            "stage2": {m: comparison["models"]["stage2"][m] for m in METRICS},
            "stage3": {m: comparison["models"]["stage3"][m] for m in METRICS},
            "change": {m: change[m] for m in METRICS},
        }
        for label, values, signed in (
            ("stage 2", rows[str(seed)]["stage2"], False),
            ("stage 3", rows[str(seed)]["stage3"], False),
            ("stage 2 → 3", rows[str(seed)]["change"], True),
        ):
            print(
                f"{f'seed {seed}, {label}':<22}" + "".join(f"{format_metric(values[m], signed):>30}" for m in METRICS)
            )
    atomic_write_json(args.out / "seeds.json", rows)
    print(args.out / "seeds.json")


if __name__ == "__main__":
    main()

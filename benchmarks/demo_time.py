"""Time the main job: ``deepmedix demo --fresh`` and then a rerun (every stage skipped), stage by stage.

    python benchmarks/demo_time.py [--out runs/demo-bench] [--figure docs/figures/demo_stages.png]

Prints a table and draws the per-stage wall time, with the machine's load average before and after and the CPU
time the demo's processes used (on a shared machine the wall time stretches with other people's load; the CPU time
is close to what an idle machine's wall time would be for single-threaded work). Numbers for docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(out: Path, fresh: bool) -> tuple[float, float, dict[str, float]]:
    """(wall seconds, CPU seconds of the demo and its worker processes, seconds per stage)."""
    cmd = [sys.executable, "-m", "deepmedix.cli", "demo", "--out", str(out)] + (["--fresh"] if fresh else [])
    start, cpu = time.perf_counter(), _children_cpu()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total, cpu = time.perf_counter() - start, _children_cpu() - cpu
    stages = {}
    for marker in sorted((out / ".done").glob("*.json")):
        stages[marker.stem] = json.loads(marker.read_text())["seconds"]
    return total, cpu, stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("runs/demo-bench"))
    ap.add_argument("--figure", type=Path, default=Path("docs/figures/demo_stages.png"))
    args = ap.parse_args()

    load_before = os.getloadavg()
    first, first_cpu, stages = run(args.out, fresh=True)
    load_after = os.getloadavg()
    second, _, _ = run(args.out, fresh=False)
    order = ["prepare", "coldstart_data", "train", "predict", "eval", "arena", "review"]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        "load average (1/5/15 min) before: "
        + "/".join(f"{v:.1f}" for v in load_before)
        + ", after: "
        + "/".join(f"{v:.1f}" for v in load_after)
    )
    print(f"{'stage':<16}{'seconds':>10}")
    for name in order:
        print(f"{name:<16}{stages.get(name, float('nan')):>10.1f}")
    print(f"{'whole run':<16}{first:>10.1f}   (process start, imports and the report included)")
    print(f"{'CPU time':<16}{first_cpu:>10.1f}   (the demo and its worker processes, user + system)")
    print(f"{'rerun':<16}{second:>10.1f}   (every stage skipped)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(order[::-1], [stages.get(n, 0.0) for n in order[::-1]], color="#3b6fb6")
    ax.set_xlabel("wall seconds")
    ax.set_title(f"deepmedix demo on {os.cpu_count()} CPU cores: {first:.0f} s fresh, {second:.0f} s rerun")
    for y, n in enumerate(order[::-1]):
        ax.text(stages.get(n, 0.0), y, f" {stages.get(n, 0.0):.1f}", va="center", fontsize=8)
    fig.tight_layout()
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()

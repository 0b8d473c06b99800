"""Reward throughput: deepmedix's reward (paper mode) against the authors' released reward, same inputs, one process.

    .venv/bin/python benchmarks/reward_throughput.py [--n 1500] [--repeats 5] [--group 8] [--grpo-steps 12]
                                                     [--figure docs/figures/reward_throughput.png]

The set mixes the three answer types as GRPO sees them: open reports (real Open-I findings/impressions from
/work/shared/data), closed answers (VQA-RAD closed answers) and multi-object answers (sets of CheXpert observation
names), each completion citing 1-4 boxes, some outside the image, with a right or a wrong answer. The released
reward is a verbatim copy (tests/rewards/released_reward.py). Settings:

- cold process: a fresh Python subprocess per implementation and round, which builds the set, then imports the
  reward and scores every item once; CPU time of import + first pass (what a new worker pays), and of the first
  pass alone;
- distinct references (every reference new; the word → stem memo warm, as in a run past its first steps);
- GRPO groups (each reference scored against a group of completions, as the trainer calls it).

Then the reward's share of a GRPO step: the step is timed on deepmedix's tiny model (stage 3 on phantom samples,
``--group`` completions of at most 96 tokens per step, on CPU), the cheapest step a run takes, and compared with the
time each setting takes to score that many completions.

deepmedix is imported inside the functions: the cold-process runs time its import.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OBSERVATIONS = [
    "atelectasis",
    "cardiomegaly",
    "consolidation",
    "edema",
    "pleural effusion",
    "pneumonia",
    "pneumothorax",
    "lung opacity",
    "lung lesion",
    "fracture",
    "enlarged cardiomediastinum",
    "pleural other",
    "support devices",
]
REGIONS = [
    "right upper lung zone",
    "left lower lobe",
    "cardiac silhouette",
    "right costophrenic angle",
    "left hilum",
    "mediastinum",
]


def load_released() -> Callable:
    path = ROOT / "tests" / "rewards" / "released_reward.py"
    spec = importlib.util.spec_from_file_location("released_reward", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.compute_xray_score


def _reports() -> list[str]:
    curated = SHARED / "curated" / "text" / "iu_xray_reports.jsonl"
    texts: list[str] = []
    if curated.is_file():
        for line in curated.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            texts += [t for t in (rec.get("findings"), rec.get("impression")) if t and len(t.split()) > 2]
    else:  # the Kaggle CSV
        import csv

        with (SHARED / "open-i" / "indiana_reports.csv").open(encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                texts += [t for t in (rec.get("findings"), rec.get("impression")) if t and len(t.split()) > 2]
    return list(dict.fromkeys(texts))  # distinct: no reference is scored twice in a pass


def _closed_answers() -> list[str]:
    path = SHARED / "curated" / "vqa_pairs.jsonl"
    answers = (
        [
            json.loads(line)["answer"]
            for line in path.read_text(encoding="utf-8").splitlines()
            if json.loads(line)["answer_type"] == "CLOSED"
        ]
        if path.is_file()
        else []
    )
    return [a for a in answers if len(a.split()) <= 2] or ["yes", "no"]


def _box(rng: random.Random, size: int = 504) -> str:
    if rng.random() < 0.15:  # outside the image
        return f"[{rng.randint(0, 300)}, {rng.randint(0, 300)}, {rng.randint(520, 700)}, {rng.randint(400, 700)}]"
    x0, y0 = rng.randint(0, size - 60), rng.randint(0, size - 60)
    return f"[{x0}, {y0}, {rng.randint(x0 + 20, size)}, {rng.randint(y0 + 20, size)}]"


def _completion(rng: random.Random, answer: str) -> str:
    steps = [f"Step {i + 1}: the {rng.choice(REGIONS)} {_box(rng)} is assessed." for i in range(rng.randint(1, 4))]
    think = " ".join(steps)
    return f"<think> {think} </think> The answer is: \\boxed{{{answer}}}"


def build_set(n: int, seed: int = 0, group: int = 1) -> list[dict]:
    """n items: 1/3 open, 1/3 closed, 1/3 multi (answer type given); ``group`` completions per reference."""
    rng = random.Random(seed)
    reports = _reports()
    rng.shuffle(reports)
    closed = _closed_answers()
    items = []
    for i in range(0, n, group):
        kind = ("open", "closed", "multi")[(i // group) % 3]
        if kind == "open":
            reference = reports[(i // group) // 3 % len(reports)]
        elif kind == "closed":
            reference = rng.choice(closed)
        else:
            reference = " | ".join(rng.sample(OBSERVATIONS, rng.randint(2, 4)))
        for _ in range(min(group, n - i)):
            if kind == "open":
                answer = reference if rng.random() < 0.2 else rng.choice(reports)
            elif kind == "closed":
                answer = reference if rng.random() < 0.5 else rng.choice(closed)
            else:
                answer = " | ".join(rng.sample(OBSERVATIONS, rng.randint(1, 4)))
            items.append(
                {
                    "completion": _completion(rng, answer),
                    "reference": reference,
                    "answer_type": kind,
                    "image_size": [504, 504],
                }
            )
    return items


IMPLEMENTATIONS = ("released", "paper", "release")


def cold_child(name: str, n: int) -> dict[str, float]:
    """In a fresh process: build the set (untimed), then import ``name``'s reward and score the set once (timed)."""
    items = build_set(n)
    predicts = [it["completion"] for it in items]
    labels = [it["reference"] for it in items]
    start = time.process_time()
    if name == "released":
        compute_xray_score = load_released()
    else:
        from deepmedix.rewards.core import score_completion
    imported = time.process_time()
    if name == "released":
        compute_xray_score(predicts, labels)
    else:
        for it in items:
            score_completion(it["completion"], it["reference"], it["answer_type"], it["image_size"], mode=name)
    done = time.process_time()
    return {"import_s": imported - start, "pass_s": done - imported}


def measure_cold(n: int, repeats: int) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Best of ``repeats`` fresh subprocesses per implementation (interleaved): rewards per CPU-second counting
    import + first pass, counting the first pass alone, and the import's CPU seconds."""
    best: dict[str, dict[str, float]] = {
        name: {"import_s": math.inf, "pass_s": math.inf, "total_s": math.inf} for name in IMPLEMENTATIONS
    }
    for _ in range(repeats):
        for name in IMPLEMENTATIONS:
            out = subprocess.run(
                [sys.executable, __file__, "--cold-child", name, "--n", str(n)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            run = json.loads(out.strip().splitlines()[-1])
            run["total_s"] = run["import_s"] + run["pass_s"]
            best[name] = {key: min(best[name][key], run[key]) for key in best[name]}
    with_import = {name: n / b["total_s"] for name, b in best.items()}
    first_pass = {name: n / b["pass_s"] for name, b in best.items()}
    return with_import, first_pass, {name: b["import_s"] for name, b in best.items()}


def measure(items: list[dict], repeats: int) -> dict[str, float]:
    """Rewards per CPU-second of this process for each implementation, best of ``repeats`` interleaved rounds.

    CPU time rather than wall time: the numbers should not depend on what else the machine runs. Every round
    starts with deepmedix's reference caches empty; the word → stem memos keep what the warm-up set taught them (a
    training run after its first steps: the vocabulary of reports is small and is learnt once).
    """
    from deepmedix.rewards.core import score_completion
    from deepmedix.rewards.metrics import STEMS, clear_caches

    compute_xray_score = load_released()
    predicts = [it["completion"] for it in items]
    labels = [it["reference"] for it in items]

    def released() -> None:
        compute_xray_score(predicts, labels)

    def ours(mode: str) -> None:
        for it in items:
            score_completion(it["completion"], it["reference"], it["answer_type"], it["image_size"], mode=mode)

    runs = {"released": released, "paper": lambda: ours("paper"), "release": lambda: ours("release")}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            memo = STEMS.snapshot()
            clear_caches()
            STEMS.restore(memo)
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    return {name: len(items) / seconds for name, seconds in best.items()}


def time_grpo_step(steps: int, group: int) -> float:
    """The fastest of ``steps`` tiny-model GRPO steps (after two warm-up steps), in wall seconds."""
    import tempfile

    import torch
    from transformers import PrinterCallback, TrainerCallback

    from deepmedix.data.phantom import make_phantom_samples
    from deepmedix.training.config import build_stage_config
    from deepmedix.training.stages import build_grpo_trainer

    durations: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            durations.append(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory() as tmp:
        make_phantom_samples(Path(tmp) / "rl", 32, seed=5, kinds=("presence",))
        config = build_stage_config(
            "grpo",
            {
                "model": "tiny",
                "data": str(Path(tmp) / "rl" / "samples.jsonl"),
                "output_dir": str(Path(tmp) / "grpo"),
                "use_cpu": True,
                "bf16": False,
                "report_to": "none",
                "disable_tqdm": True,
                "log_level": "error",
                "save_strategy": "no",
                "dataloader_num_workers": 0,
                "seed": 0,
                "activation_checkpointing": False,
                "lr_scheduler_type": "constant",
                "max_steps": steps + 2,
                "num_generations": group,
                "per_device_train_batch_size": group,
                "max_completion_length": 96,
                "beta": 0.01,
            },
        )
        torch.set_num_threads(1)  # one core, as the reward gets
        trainer, *_ = build_grpo_trainer(config, callbacks=[StepTimer()])
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return min(durations[2:])


def draw(results: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [
        ("released", "released (authors' code)", "#9e9e9e"),
        ("paper", "deepmedix paper", "#1f77b4"),
        ("release", "deepmedix release", "#6baed6"),
    ]
    fig, axes = plt.subplots(1, len(results), figsize=(4.4 * len(results), 3.4), sharex=True)
    for ax, (label, rates) in zip(axes, results.items(), strict=True):
        values = [rates[key] for key, _, _ in names]
        bars = ax.barh([title for _, title, _ in names], values, color=[c for _, _, c in names])
        ax.set_xscale("log")
        for bar, v in zip(bars, values, strict=True):
            ax.text(
                v,
                bar.get_y() + bar.get_height() / 2,
                f" {v:,.0f}/s ({v / rates['released']:.1f}x)",
                va="center",
                fontsize=8,
            )
        ax.set_xlim(left=100, right=max(values) * 10)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("rewards per CPU-second (log)")
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.suptitle("Reward throughput, mixed open / closed / multi set", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print(label: str, what: str, rates: dict[str, float], imports: dict[str, float] | None = None) -> None:
    print(f"\n{label}: {what}")
    print(f"  {'reward':<32}{'rewards/s':>12}{'ratio':>9}" + (f"{'import':>10}" if imports else ""))
    for name, title in (
        ("released", "released compute_xray_score"),
        ("paper", "deepmedix paper mode"),
        ("release", "deepmedix release mode"),
    ):
        line = f"  {title:<32}{rates[name]:>12,.0f}{rates[name] / rates['released']:>8.1f}x"
        print(line + (f"{imports[name]:>9.3f}s" if imports else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="items in the mixed set")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--group", type=int, default=8, help="completions per reference in the GRPO-shaped set")
    parser.add_argument("--grpo-steps", type=int, default=12, help="tiny-model GRPO steps to time (0: skip)")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "reward_throughput.png")
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--cold-child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)  # one cold-process run
    args = parser.parse_args(argv)
    if args.cold_child:
        print(json.dumps(cold_child(args.cold_child, args.n)))
        return 0

    results = {}
    with_import, first_pass, imports = measure_cold(args.n, args.repeats)
    results["cold process: import + first pass"] = with_import
    _print(
        "cold process, import + first pass",
        f"{args.n} items, a fresh subprocess each (import CPU time shown)",
        with_import,
        imports,
    )
    results["cold process: first pass only"] = first_pass
    _print("cold process, first pass only", "the same subprocesses, import time left out", first_pass)

    # in-process settings: imports, the stemmer and regex compilation warmed up for both sides
    warm_up = build_set(300, seed=99)
    load_released()([it["completion"] for it in warm_up], [it["reference"] for it in warm_up])
    from deepmedix.rewards.core import score_many

    score_many(warm_up)
    runs = (
        ("distinct references", 1, "each reference once; stems memoised by the warm-up set"),
        (
            f"GRPO groups of {args.group}",
            args.group,
            f"{args.n // args.group} references x {args.group} completions; stems memoised",
        ),
    )
    for label, group, what in runs:
        results[label] = measure(build_set(args.n, group=group), args.repeats)
        _print(label, f"{args.n} items, {what}", results[label])
    print(
        f"\n(CPU time, best of {args.repeats} interleaved rounds; in-process settings clear the reference caches "
        f"each round; Python {sys.version.split()[0]})"
    )
    if args.grpo_steps:
        step_s = time_grpo_step(args.grpo_steps, args.group)
        print(
            f"\nshare of a tiny-model GRPO step ({step_s:.3f} s, the fastest of {args.grpo_steps}, {args.group} completions)"
        )
        print(f"  {'setting':<40}" + "".join(f"{name:>12}" for name in IMPLEMENTATIONS))
        for label, rates in results.items():
            shares = "".join(f"{100 * args.group / rates[name] / step_s:>11.2f}%" for name in IMPLEMENTATIONS)
            print(f"  {label:<40}{shares}")
    if not args.no_figure:
        draw(results, args.figure)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

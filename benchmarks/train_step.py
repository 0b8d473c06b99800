"""Training-step cost: deepmedix's stack (TRL's trainers, as ``deepmedix train`` builds them) against bare
transformers on the same model and the same batch, side by side in one process.

    python benchmarks/train_step.py [--model small] [--steps 8] [--rounds 3] [--threads 1] [--profile sft.prof]

- SFT: a ``deepmedix train coldstart`` step (``build_sft_trainer``: SFTTrainer, its collator, AdamW, clipping,
  logging) on a dataset holding one batch of 8 cold-start samples (phantom radiographs with template reasoning),
  so every step trains on the same 8 samples, against a bare step on that batch collated once: the model's forward
  with labels, backward, ``torch.optim.AdamW`` step.
- GRPO: a ``deepmedix train grpo`` step (2 prompts × G = 8 generations of exactly ``--new-tokens`` tokens,
  ``grounded`` reward, β > 0 against a reference model) against bare ``generate`` with the same sampling settings,
  the same reward, a reference forward, the policy's forward and backward on the completions, an AdamW step.

Rounds interleave the sides (A, B, A, B, …) so a change of machine load hits both; each side's median step time is
reported with the load average. ``--profile FILE`` writes a cProfile of the SFT trainer's rounds and prints where
its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from deepmedix.data.phantom import SAMPLE_KINDS, make_phantom_samples, phantom_reasoning
from deepmedix.data.schema import load_samples, sample_to_json
from deepmedix.io import atomic_write_jsonl
from deepmedix.models.loading import load_model_and_processor, model_frame
from deepmedix.rewards.grpo import score_batch
from deepmedix.training.config import build_stage_config
from deepmedix.training.stages import build_grpo_trainer, build_sft_trainer

BATCH = 8
# wall time, or the process's CPU time: on a shared machine CPU time is what an idle machine's wall time would be
# for a single-threaded run (others' load stretches wall time, not the CPU time the work needs)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
PROMPTS_PER_GRPO_STEP = 2
GENERATIONS = 8
CPU_ARGS: dict[str, Any] = {
    "use_cpu": True,
    "bf16": False,
    "report_to": "none",
    "disable_tqdm": True,
    "save_strategy": "no",
    "logging_steps": 1000,
    "dataloader_num_workers": 0,
    "activation_checkpointing": False,
    "lr_scheduler_type": "constant",
    "seed": 0,
    "log_level": "error",
}


class StepClock(TrainerCallback):
    """Time between consecutive step ends: everything a step costs (data, forward, backward, optimiser)."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.ends: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(self.clock())

    def take(self) -> list[float]:
        steps = [b - a for a, b in zip(self.ends, self.ends[1:], strict=False)]
        self.ends = []
        return steps


def _load_avg() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def _data(root: Path, model: str) -> tuple[Path, Path]:
    """(cold-start samples, plain samples) of phantom radiographs, reasoning in the model's frame."""
    make_phantom_samples(root / "phantom", 4 * BATCH, seed=0, kinds=SAMPLE_KINDS)
    frame = model_frame(model)
    samples = load_samples(root / "phantom" / "samples.jsonl")
    lines = []
    for sample in samples:
        sample.answer = phantom_reasoning(sample, frame)
        lines.append(sample_to_json(sample))
    atomic_write_jsonl(root / "coldstart.jsonl", lines)
    return root / "coldstart.jsonl", root / "phantom" / "samples.jsonl"


def _bare_model(model_name: str, lr: float, train_vision: bool = False):
    model, processor = load_model_and_processor(model_name)
    for name, param in model.named_parameters():
        if "visual" in name and not train_vision:  # frozen as in the stages unless train_vision
            param.requires_grad_(False)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    return model, processor, optimizer


def bench_sft(args: argparse.Namespace, root: Path) -> dict[str, float]:
    cold, plain = _data(root, args.model)
    config = build_stage_config(
        args.sft_stage,
        {
            **CPU_ARGS,
            "model": args.model,
            "data": str(cold if args.sft_stage == "coldstart" else plain),
            "train_vision": args.train_vision,
            "preprocess_once": args.preprocess_once,
            "output_dir": str(root / "sft"),
            "limit": BATCH,
            "repeat": args.steps + 1,
            "max_steps": args.steps,
            "per_device_train_batch_size": BATCH,
            "learning_rate": 1e-4,
        },
    )
    trainer, _, _, _ = build_sft_trainer(config, args.sft_stage)
    tick = CLOCKS[args.clock]
    clock = StepClock(tick)
    trainer.add_callback(clock)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(BATCH)])
    model, _, optimizer = _bare_model(args.model, 1e-4, args.train_vision)
    profile = cProfile.Profile() if args.profile else None

    def bare_step() -> float:
        start = tick()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tick() - start

    stack: list[float] = []
    bare: list[float] = []
    for r in range(args.rounds):
        if profile:
            profile.enable()
        trainer.train()
        if profile:
            profile.disable()
        stack += clock.take()
        bare += [bare_step() for _ in range(args.steps)][1:]  # the first step of a round warms caches
        print(
            f"  SFT round {r + 1}/{args.rounds}: stack {statistics.median(stack):.3f} s, "
            f"bare {statistics.median(bare):.3f} s  (load {_load_avg()})",
            flush=True,
        )
    if profile:
        profile.dump_stats(args.profile)
        print(f"  cProfile of the SFT trainer's rounds: {args.profile}; top 20 by own time:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    return {"stack": statistics.median(stack), "bare": statistics.median(bare), "tokens": batch["input_ids"].numel()}


def bench_grpo(args: argparse.Namespace, root: Path) -> dict[str, float]:
    _, plain = _data(root, args.model)
    per_step = PROMPTS_PER_GRPO_STEP * GENERATIONS
    config = build_stage_config(
        "grpo",
        {
            **CPU_ARGS,
            "model": args.model,
            "ref_model": args.model,
            "data": str(plain),
            "output_dir": str(root / "grpo"),
            "limit": PROMPTS_PER_GRPO_STEP,
            "repeat": args.steps + 1,
            "max_steps": args.steps,
            "per_device_train_batch_size": per_step,
            "num_generations": GENERATIONS,
            "max_completion_length": args.new_tokens,
            # every generation is exactly --new-tokens long, on both sides: equal work whatever the model samples
            "generation_kwargs": {"min_new_tokens": args.new_tokens},
            "temperature": 1.0,
            "beta": 0.01,
            "learning_rate": 1e-5,
            "reward_mode": "grounded",
        },
    )
    trainer, processor, _, _ = build_grpo_trainer(config)
    tick = CLOCKS[args.clock]
    clock = StepClock(tick)
    trainer.add_callback(clock)
    rows = [trainer.train_dataset[i] for i in range(PROMPTS_PER_GRPO_STEP)]
    model, _, optimizer = _bare_model(args.model, 1e-5)
    reference, _ = load_model_and_processor(args.model)
    texts = [processor.apply_chat_template(r["prompt"], add_generation_prompt=True) for r in rows]
    prompt_inputs = processor(
        text=texts,
        images=[r["images"][0].convert("RGB") for r in rows],
        return_tensors="pt",
        padding=True,
        padding_side="left",
    )
    gen = trainer.generation_kwargs | {"num_return_sequences": GENERATIONS}

    def bare_step() -> float:
        start = tick()
        with torch.no_grad():
            sequences = model.generate(**prompt_inputs, **gen)
        prompt_len = prompt_inputs["input_ids"].shape[1]
        completion_ids = sequences[:, prompt_len:]
        completions = processor.batch_decode(completion_ids, skip_special_tokens=True)
        columns = {k: [r[k] for r in rows for _ in range(GENERATIONS)] for k in ("answer", "answer_type")}
        columns |= {k: [r[k] for r in rows for _ in range(GENERATIONS)] for k in ("image_size", "reference_boxes")}
        rewards = torch.tensor([s.total for s in score_batch(completions, "grounded", 0.1, **columns)])
        grouped = rewards.view(-1, GENERATIONS)
        advantages = ((grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)).flatten()
        # every prompt's image patches and mask once per generation, in the order of the repeated sequences
        patches = prompt_inputs["pixel_values"].view(PROMPTS_PER_GRPO_STEP, -1, prompt_inputs["pixel_values"].shape[-1])
        prompt_mask = prompt_inputs["attention_mask"].repeat_interleave(GENERATIONS, 0)
        forward = {
            "input_ids": sequences,
            "attention_mask": torch.cat([prompt_mask, torch.ones_like(completion_ids)], dim=1),
            "pixel_values": patches.repeat_interleave(GENERATIONS, 0).flatten(0, 1),
            "image_grid_thw": prompt_inputs["image_grid_thw"].repeat_interleave(GENERATIONS, 0),
        }
        with torch.no_grad():
            ref_logps = _completion_logps(reference, forward, completion_ids)
        logps = _completion_logps(model, forward, completion_ids)
        ratio = torch.exp(logps - logps.detach())
        kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
        loss = (-(ratio * advantages[:, None]) + 0.01 * kl).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tick() - start

    stack: list[float] = []
    bare: list[float] = []
    for r in range(args.rounds):
        trainer.train()
        stack += clock.take()
        bare += [bare_step() for _ in range(args.steps)][1:]
        print(
            f"  GRPO round {r + 1}/{args.rounds}: stack {statistics.median(stack):.3f} s, "
            f"bare {statistics.median(bare):.3f} s  (load {_load_avg()})",
            flush=True,
        )
    return {"stack": statistics.median(stack), "bare": statistics.median(bare)}


def _completion_logps(model, forward: dict[str, torch.Tensor], completion_ids: torch.Tensor) -> torch.Tensor:
    logits = model(**forward).logits[:, -completion_ids.shape[1] - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, completion_ids[..., None]).squeeze(-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="small", help="embedded model name or folder (default: small)")
    ap.add_argument("--steps", type=int, default=8, help="steps per side and round (the first of each is not timed)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=48, help="GRPO: tokens generated per completion")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--clock", choices=tuple(CLOCKS), default="wall", help="wall time or process CPU time")
    ap.add_argument("--only", choices=("sft", "grpo"), default=None)
    ap.add_argument(
        "--sft-stage",
        choices=("coldstart", "sft"),
        default="coldstart",
        help="coldstart: protocol prompts and reasoning completions (default); sft: stage 1's plain questions",
    )
    ap.add_argument("--train-vision", action="store_true", help="SFT: train the vision tower too (the demo's recipes)")
    ap.add_argument(
        "--preprocess-once", action="store_true", help="SFT: samples tokenised and image-processed once per dataset"
    )
    ap.add_argument("--profile", type=Path, default=None, help="write a cProfile of the SFT trainer here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"model {args.model}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores, {args.clock} clock, "
        f"load {_load_avg()}"
    )
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="train-step-") as tmp:
        if args.only in (None, "sft"):
            details = (
                [args.sft_stage] + ["vision trained"] * args.train_vision + ["preprocessed once"] * args.preprocess_once
            )
            label = f"SFT ({', '.join(details)}), batch 8"
            results[label] = bench_sft(args, Path(tmp))
        if args.only in (None, "grpo"):
            label = f"GRPO, 2 prompts × {GENERATIONS} × {args.new_tokens} tokens"
            results[label] = bench_grpo(args, Path(tmp))
    print(f"\n{'step (' + args.clock + ' seconds)':<40}{'deepmedix':>12}{'bare':>10}{'ratio':>8}")
    for label, r in results.items():
        print(f"{label:<40}{r['stack']:>12.3f}{r['bare']:>10.3f}{r['stack'] / r['bare']:>8.2f}")
    print(f"load average at the end: {_load_avg()}")


if __name__ == "__main__":
    main()

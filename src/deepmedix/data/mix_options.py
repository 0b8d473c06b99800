"""The settings of ``deepmedix prepare mix``: one dataclass, which is also its flags (light: registering stays cheap).

Sizes are the paper's (351.5K SFT, 3.9K cold start, 6.6K RL). The paper gives no proportions, so every share below
is a project default, written here once and recorded in the mix's manifest as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepmedix.errors import OptionError

STAGES = ("sft", "coldstart", "rl")
# The paper's sizes (stage 1 instruction SFT, stage 2 cold start after filtering, stage 3 GRPO).
PAPER_SIZES = {"sft": 351_500, "coldstart": 3_900, "rl": 6_600}
TASKS = ("report_findings", "report_impression", "vqa", "grounding")
# Cold start and RL: reports (the paper's largest RL gain is MIMIC-CXR findings) beside checkable VQA and grounding.
DEFAULT_CHECKED_TASKS = "report_findings=0.25,report_impression=0.25,vqa=0.4,grounding=0.1"
SourceWeighting = Literal["available", "xraybench", "equal"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class MixOptions:
    """How much of what goes into each stage's set, drawn reproducibly from the training split of the inputs."""

    scale: float = field(default=1.0, metadata=_help("multiply the paper's sizes (e.g. 0.01 for a trial run)"))
    seed: int = field(default=0, metadata=_help("seed of every draw (same inputs + seed = same sets)"))
    sft: int | None = field(default=None, metadata=_help("SFT samples (default: 351,500 × --scale)"))
    coldstart: int | None = field(
        default=None,
        metadata=_help("cold-start input samples (default: 3,900 × --scale; the teacher's filter drops some)"),
    )
    rl: int | None = field(default=None, metadata=_help("RL samples (default: 6,600 × --scale)"))
    sft_tasks: str = field(
        default="available",
        metadata=_help(
            "task shares of SFT: 'available' (as the inputs provide, each capped by --task-cap) or 'task=share,…'"
        ),
    )
    coldstart_tasks: str = field(default=DEFAULT_CHECKED_TASKS, metadata=_help("task shares of the cold-start input"))
    rl_tasks: str = field(default=DEFAULT_CHECKED_TASKS, metadata=_help("task shares of RL"))
    task_cap: float = field(
        default=0.5,
        metadata=_help(
            "with 'available' shares, no task takes more than this share of a stage while others have samples left"
        ),
    )
    sft_sources: SourceWeighting = field(
        default="available", metadata=_help("sources within a task: as available, as in XrayBench, or equal")
    )
    coldstart_sources: SourceWeighting = field(default="xraybench", metadata=_help("sources within a task"))
    rl_sources: SourceWeighting = field(default="xraybench", metadata=_help("sources within a task"))
    test_split: list[Path] = field(
        default_factory=list,
        metadata={
            "help": "samples files that are test data as a whole (e.g. XrayBench prepared by 'prepare xraybench'); "
            "their patients must not be trained on",
            "metavar": "FILE",
        },
    )
    on_leak: Literal["fail", "drop"] = field(
        default="fail",
        metadata=_help(
            "a training patient who is also a test patient: stop naming them (fail), or leave their "
            "training samples out and record it (drop)"
        ),
    )
    figure: bool = field(default=True, metadata=_help("draw each set's composition figure"))
    relative_paths: bool = field(default=False, metadata=_help("write image paths relative to the output folder"))

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise OptionError(f"--scale must be above 0, got {self.scale}")
        for stage in STAGES:
            n = getattr(self, stage)
            if n is not None and n < 0:
                raise OptionError(f"--{stage} must be ≥ 0, got {n}")
        if not 0 < self.task_cap <= 1:
            raise OptionError(f"--task-cap must be in (0, 1], got {self.task_cap}")
        for stage in STAGES:
            self.task_shares(stage)  # fails early on a malformed value

    def size(self, stage: str) -> int:
        n = getattr(self, stage)
        return int(n) if n is not None else round(PAPER_SIZES[stage] * self.scale)

    def task_shares(self, stage: str) -> dict[str, float] | None:
        """``None`` for 'available', else task → share (normalised later over the tasks that have samples)."""
        text = getattr(self, f"{stage}_tasks").strip()
        if text == "available":
            return None
        shares: dict[str, float] = {}
        for item in text.split(","):
            task, sep, value = item.partition("=")
            task = task.strip()
            if not sep or task not in TASKS:
                raise OptionError(
                    f"--{stage}-tasks: {item.strip()!r} is not TASK=SHARE with TASK one of {', '.join(TASKS)} "
                    "(or give 'available')"
                )
            try:
                share = float(value)
            except ValueError:
                raise OptionError(f"--{stage}-tasks: {value.strip()!r} is not a number") from None
            if share < 0:
                raise OptionError(f"--{stage}-tasks: the share of {task} is negative")
            shares[task] = share
        if not sum(shares.values()) > 0:
            raise OptionError(f"--{stage}-tasks: the shares add up to 0")
        return shares

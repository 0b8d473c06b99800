"""What the main job runs on and how much of it: one dataclass, which is also the command line's flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


def _help(text: str, **more: object) -> dict[str, object]:
    return {"help": text, **more}


@dataclass
class DemoConfig:
    out: Path = field(default=Path("runs/demo"), metadata=_help("output folder; OUT/report.html is the report"))
    recipes: Path | None = field(
        default=None,
        metadata=_help("folder with sft.yaml, coldstart.yaml, grpo.yaml (default: the packaged small recipes)"),
    )
    data: Path | None = field(
        default=None, metadata=_help("samples JSONL (default: the bundled sample and phantom images)")
    )
    base_model: str | None = field(
        default=None, metadata=_help("starting model (default: the sft recipe's model, 'small' for the small recipes)")
    )
    fresh: bool = field(default=False, metadata=_help("delete OUT and start over"))
    per_benchmark: int = field(
        default=10, metadata=_help("test samples per benchmark group (source × task) every model answers; 0: all")
    )
    phantom_train: int = field(default=3200, metadata=_help("phantom training samples, four kinds (bundled data only)"))
    phantom_heldout: int = field(
        default=240,
        metadata=_help("held-out phantom samples every model answers, from other seeds (bundled data only)"),
    )
    coldstart_samples: int = field(default=1800, metadata=_help("training samples given to the cold-start teacher"))
    grpo_samples: int = field(default=160, metadata=_help("training samples for stage 3"))
    max_steps: dict[str, int] | None = field(
        default=None, metadata={"skip": True}
    )  # per-stage override, e.g. {"sft": 10} (the command line's --quick)
    max_new_tokens: int | None = field(
        default=None,
        metadata=_help(
            "new tokens per answer at prediction (default: by task, reports 1024 and VQA 512, or the GRPO recipe's "
            "max_completion_length where it is smaller: 128 for the small recipes)"
        ),
    )
    prompt_template: Path | None = field(
        default=None,
        metadata=_help(
            "Jinja template of the reasoning prompt ('content' = the question) for every stage that reasons"
        ),
    )
    batch_size: int = field(default=16, metadata=_help("samples per generation batch"))
    threads: int = field(
        default=1, metadata=_help("torch threads per process on a CPU (0: torch's choice; docs/demo.md says why 1)")
    )
    prediction_workers: int | None = field(
        default=None, metadata=_help("models predicted in parallel processes (default: 2 on a CPU, 1 on a GPU)")
    )
    backend: Literal["transformers", "vllm"] = field(default="transformers", metadata=_help("generation engine"))
    teacher: str = field(default="offline", metadata=_help("cold-start teacher: 'offline' or an OpenAI-compatible URL"))
    teacher_model: str = field(default="gpt-4.1", metadata=_help("model name the teacher endpoint serves"))
    judge: str = field(default="offline", metadata=_help("arena judge: 'offline' or an OpenAI-compatible base URL"))
    judge_model: str = field(default="gpt-4.1", metadata=_help("model name the judge endpoint serves"))
    arena_budget: int = field(default=120, metadata=_help("arena comparisons"))
    review_samples: int = field(default=12, metadata=_help("samples in the expert review set"))
    chexbert: Path | None = field(default=None, metadata=_help("CheXbert checkpoint for F1-CheXbert"))
    meteor: bool = field(default=True, metadata=_help("METEOR (needs Java); --no-meteor skips it"))
    seed: int = field(default=0, metadata=_help("seed of the data selection, arena and review draws"))


__all__ = ["DemoConfig"]

"""Shared, trained-once fixtures for the training tests.

Stage 1 and stage 2 models are trained once per test session and shared between xdist workers through a file lock
in the session's common temporary folder (the first worker trains, the others wait and reuse).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# Settings every tiny CPU run uses (quiet, single-process data loading, no reporting).
CPU_ARGS: dict[str, Any] = {
    "use_cpu": True,
    "bf16": False,
    "report_to": "none",
    "disable_tqdm": True,
    "log_level": "error",
    "dataloader_num_workers": 0,
    "seed": 0,
    "activation_checkpointing": False,
    "lr_scheduler_type": "constant",
    "save_strategy": "no",
}
STAGE1_STEPS = 40
STAGE2_STEPS = 150


def _shared_root(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    # Under xdist each worker has its own basetemp below a common parent.
    return (base.parent if base.name.startswith("popen-gw") else base) / "deepmedix-training-shared"


def _build_trained(root: Path) -> dict[str, Path]:
    import torch

    from deepmedix.data.phantom import make_phantom_samples, phantom_reasoning
    from deepmedix.data.schema import load_samples, sample_to_json
    from deepmedix.models.loading import model_frame
    from deepmedix.training.config import build_stage_config
    from deepmedix.training.stages import run_stage

    torch.set_num_threads(1)
    data_dir = root / "data"
    make_phantom_samples(data_dir, 24, seed=0)
    samples_path = data_dir / "samples.jsonl"
    stage1 = run_stage(
        "sft",
        config=build_stage_config(
            "sft",
            {
                **CPU_ARGS,
                "model": "tiny",
                "data": str(samples_path),
                "output_dir": str(root / "sft"),
                "max_steps": STAGE1_STEPS,
                "learning_rate": 3e-3,
                "per_device_train_batch_size": 4,
                "logging_steps": 5,
            },
        ),
    )
    frame = model_frame(stage1)
    cold_path = root / "coldstart.jsonl"
    lines = []
    for sample in load_samples(samples_path):
        sample.answer = phantom_reasoning(sample, frame)
        lines.append(sample_to_json(sample))
    cold_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    stage2 = run_stage(
        "coldstart",
        config=build_stage_config(
            "coldstart",
            {
                **CPU_ARGS,
                "model": str(stage1),
                "data": str(cold_path),
                "output_dir": str(root / "coldstart"),
                "max_steps": STAGE2_STEPS,
                "learning_rate": 3e-3,
                "per_device_train_batch_size": 4,
                "logging_steps": 5,
            },
        ),
    )
    return {"data": samples_path, "coldstart_data": cold_path, "sft": stage1, "coldstart": stage2}


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Phantom data, its cold-start version, and the stage-1 and stage-2 models trained on them."""
    from filelock import FileLock

    root = _shared_root(tmp_path_factory)
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / "manifest.json"
    with FileLock(str(root / ".lock")):
        if manifest.is_file():
            return {k: Path(v) for k, v in json.loads(manifest.read_text()).items()}
        paths = _build_trained(root)
        manifest.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
        return paths

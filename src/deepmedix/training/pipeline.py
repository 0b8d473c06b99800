"""The three stages chained: SFT → cold-start synthesis → cold-start SFT → GRPO (KL to the stage-1 model).

Each stage is skipped when its output already holds a complete final model, so a rerun after an interruption picks
up where it stopped (and a stage that was cut mid-way resumes from its last checkpoint).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from deepmedix.errors import DataError, OptionError
from deepmedix.io import check_output
from deepmedix.models.loading import model_frame
from deepmedix.training.coldstart.synthesize import synthesize_offline
from deepmedix.training.config import build_stage_config, read_recipe
from deepmedix.training.data import check_training_data
from deepmedix.training.stages import final_dir, is_complete, run_stage

log = logging.getLogger(__name__)

RECIPE_FILES = {"sft": "sft.yaml", "coldstart": "coldstart.yaml", "grpo": "grpo.yaml"}
COLDSTART_DATA = "coldstart_data.jsonl"


def _synthesize_coldstart(samples_path: Path, out_path: Path, stage1_model: Path) -> Path:
    summary = synthesize_offline(samples_path, out_path, model_frame(stage1_model))
    if summary.kept == 0:
        raise DataError(f"cold-start synthesis from {samples_path} kept no samples; see {out_path}")
    log.info("cold start: %s", summary)
    return out_path


def run_pipeline(
    recipes: str | Path,
    data: str | Path | None = None,
    output_root: str | Path | None = None,
    max_steps: int | None = None,
    grpo_data: str | Path | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    callbacks: list | None = None,
) -> dict[str, Path]:
    """Run the recipes in ``recipes/`` (sft.yaml, coldstart.yaml, grpo.yaml) in order; returns each final model.

    ``data`` feeds stage 1 (and GRPO unless ``grpo_data``); stage-2 data is the coldstart recipe's ``data`` when it
    names an existing file, else it is synthesised from the stage-1 data by the offline template teacher. With
    ``output_root`` the stages write to ``output_root/{sft,coldstart,grpo}``; otherwise to their recipes'
    ``output_dir``. The chain is fixed here: stage 2 starts from stage 1's final model, GRPO from stage 2's, with
    stage 1's as the KL reference. ``callbacks`` (``transformers.TrainerCallback``) join every stage's trainer.
    """
    recipes = Path(recipes)
    if not recipes.is_dir():
        raise FileNotFoundError(f"recipes folder {recipes}: not found")
    raw: dict[str, dict[str, Any]] = {}
    for stage, name in RECIPE_FILES.items():
        raw[stage] = read_recipe(recipes / name)
        raw[stage].update((overrides or {}).get(stage, {}))
        if output_root is not None:
            raw[stage]["output_dir"] = str(Path(output_root) / stage)
        if max_steps is not None:
            raw[stage]["max_steps"] = int(max_steps)
    if data is not None:
        raw["sft"]["data"] = str(data)
    if grpo_data is not None or data is not None:
        raw["grpo"]["data"] = str(grpo_data or data)
    if not raw["sft"].get("data"):
        raise OptionError(f"recipe {recipes / RECIPE_FILES['sft']}: field 'data' is empty; pass --data")
    # Every stage's given data is checked before stage 1 loads its model: a bad line fails now, not hours later.
    for checked in dict.fromkeys(str(raw[s]["data"]) for s in ("sft", "grpo") if raw[s].get("data")):
        check_training_data(checked)
    if output_root is not None:
        check_output(output_root, folder=True)

    results: dict[str, Path] = {}
    sft_config = build_stage_config("sft", raw["sft"], source=f"recipe {recipes / RECIPE_FILES['sft']}")
    results["sft"] = run_stage("sft", config=sft_config, callbacks=callbacks)

    cold = raw["coldstart"]
    cold["model"] = str(results["sft"])
    cold_out = Path(cold["output_dir"])
    if not is_complete(cold_out):
        given = cold.get("data")
        if not (given and Path(given).is_file()):
            target = cold_out.parent / COLDSTART_DATA
            cold["data"] = str(_synthesize_coldstart(Path(sft_config.data), target, results["sft"]))
    cold_config = build_stage_config("coldstart", cold, source=f"recipe {recipes / RECIPE_FILES['coldstart']}")
    results["coldstart"] = run_stage("coldstart", config=cold_config, callbacks=callbacks)

    grpo = raw["grpo"]
    grpo["model"] = str(results["coldstart"])
    grpo["ref_model"] = str(results["sft"])
    if not grpo.get("data"):
        grpo["data"] = str(sft_config.data)
    grpo_config = build_stage_config("grpo", grpo, source=f"recipe {recipes / RECIPE_FILES['grpo']}")
    results["grpo"] = run_stage("grpo", config=grpo_config, callbacks=callbacks)
    return results


__all__ = ["final_dir", "run_pipeline"]

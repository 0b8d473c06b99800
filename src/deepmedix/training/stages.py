"""Running one stage: build the TRL trainer from a stage config, train (resuming), save the final model atomically.

Layout of a stage's ``output_dir``::

    checkpoint-*/        TRL/transformers checkpoints (a rerun resumes from the last one)
    rewards.jsonl        GRPO only: per logging step, every reward component and the valid-box share
    final/               the finished model + processor + run_info.json (written last, by rename)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepmedix.data.frame import box_inside, iou
from deepmedix.errors import OptionError
from deepmedix.io import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    check_output,
    make_parents,
    remove_created,
    sha256_file,
)
from deepmedix.models.loading import (
    ensure_suppressed_placeholders,
    load_model_and_processor,
    processor_frame,
    resolve_model_path,
)
from deepmedix.models.special_tokens import generation_defaults
from deepmedix.protocol import MODEL_PROMPT_FILE, parse_completion, user_prompt_template
from deepmedix.rewards.core import completion_text
from deepmedix.rewards.grpo import TrlRewardFunc, make_trl_reward_funcs
from deepmedix.rewards.score import Completion
from deepmedix.training.config import (
    LANGUAGE_LORA_TARGETS,
    VISION_LORA_TARGETS,
    config_summary,
    load_stage_config,
    stage_prompt_template,
)
from deepmedix.training.curves import plot_curves
from deepmedix.training.data import build_dataset, check_training_data
from deepmedix.training.model_card import push_to_hub, write_model_card

log = logging.getLogger(__name__)

FINAL_DIR = "final"
RUN_INFO = "run_info.json"


def final_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / FINAL_DIR


def is_complete(output_dir: str | Path) -> bool:
    """A stage is done when its final model carries its run_info.json (written after the weights)."""
    return (final_dir(output_dir) / RUN_INFO).is_file()


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("deepmedix", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "deepspeed", "vllm"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


# --- model preparation -----------------------------------------------------------------------------------------


def _freeze_vision(model) -> int:
    """Freeze the vision tower and its merger (the paper trains the language model); returns frozen params."""
    frozen = 0
    for name, param in model.named_parameters():
        if ".visual." in f".{name}" or name.startswith("visual.") or "model.visual" in name:
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def peft_config_for(config) -> Any:
    from peft import LoraConfig

    target = config.lora_target_modules or (
        f"({LANGUAGE_LORA_TARGETS})|({VISION_LORA_TARGETS})" if config.train_vision else LANGUAGE_LORA_TARGETS
    )
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target,
        task_type="CAUSAL_LM",
    )


def load_for_training(config):
    """(model, processor, frame) for a stage, with the vision tower frozen unless ``train_vision``."""
    import torch

    dtype = config.model_dtype
    if dtype not in ("auto", None):
        dtype = getattr(torch, dtype)
    model, processor = load_model_and_processor(
        config.model, dtype=dtype, min_pixels=config.min_pixels, max_pixels=config.max_pixels
    )
    model.train()
    if not config.train_vision and not config.use_peft:
        _freeze_vision(model)
    frame = processor_frame(model.config.model_type, processor)
    return model, processor, frame


# --- callbacks --------------------------------------------------------------------------------------------------


def reward_log_callback(path: Path):
    """A TrainerCallback appending each logging step's reward components to ``path`` (main process only)."""
    from transformers import TrainerCallback

    class RewardLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            keys = [k for k in logs if k.startswith(("reward", "rewards/", "kl", "completions/", "entropy"))]
            if not keys:
                return
            row = {"step": state.global_step, "epoch": logs.get("epoch", state.epoch), "time": time.time()}
            row.update({k: logs[k] for k in keys})
            append_jsonl(path, [row])

    return RewardLog()


# --- saving -----------------------------------------------------------------------------------------------------


def _save_final(trainer, processor, config, stage: str, extra: dict[str, Any]) -> Path:
    """Write the final model to a temporary folder beside ``final/`` and rename it into place."""
    out = final_dir(config.output_dir)
    tmp = Path(config.output_dir) / ".final-tmp"  # one name on every rank; only rank 0 writes into it
    model = trainer.model
    if config.use_peft and hasattr(model, "merge_and_unload"):
        # A merged model is what the next stage and inference load; the adapter alone would need its base.
        model = model.merge_and_unload()
        trainer.model = model
    if trainer.is_world_process_zero() and tmp.exists():
        shutil.rmtree(tmp)
    trainer.save_model(str(tmp))  # every rank takes part (ZeRO-3 gathers the weights); rank 0 writes
    if trainer.is_world_process_zero():
        _finish_final(tmp, out, processor, config, stage, extra)
    trainer.accelerator.wait_for_everyone()
    return out


def _finish_final(tmp: Path, out: Path, processor, config, stage: str, extra: dict[str, Any]) -> None:
    """Main process: processor, generation config and run_info.json beside the weights, then the rename."""

    processor.save_pretrained(tmp)
    gen_path = tmp / "generation_config.json"
    if gen_path.is_file():  # keep the placeholder suppression in what is saved
        gen = json.loads(gen_path.read_text(encoding="utf-8"))
        suppress = set(gen.get("suppress_tokens") or []) | set(
            generation_defaults(processor.tokenizer)["suppress_tokens"]
        )
        gen["suppress_tokens"] = sorted(suppress)
        atomic_write_json(gen_path, gen)
    template = stage_prompt_template(config) if config.reasoning else None
    if template is not None:  # whoever loads the model asks it the way it was trained (inference reads it)
        atomic_write_bytes(tmp / MODEL_PROMPT_FILE, template.source.encode("utf-8"))
    info = {
        "stage": stage,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "base_model": config.model,
        "data": config.data,
        "data_sha256": extra.pop("data_sha256", None),
        "versions": package_versions(),
        "config": config_summary(config),
        **prompt_template_record(config),
        **extra,
    }

    curves = plot_curves(extra.get("log_history") or [], tmp / "curves.png", f"{stage}: {config.output_dir}")
    info["curves"] = curves.name if curves else None
    atomic_write_json(tmp / RUN_INFO, info)
    write_model_card(tmp)
    if out.exists():  # an earlier, incomplete final (no run_info.json): replace it
        shutil.rmtree(out)
    os.replace(tmp, out)


def prompt_template_record(config: Any) -> dict[str, str]:
    """The name and sha256 of the template the stage's prompts were rendered with (run_info.json)."""
    return user_prompt_template(bool(config.reasoning), stage_prompt_template(config)).record()


def _last_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not Path(output_dir).is_dir():
        return None
    return get_last_checkpoint(str(output_dir))


def _train_and_save(trainer, processor, config, stage: str, data_sha: str, n_rows: int) -> Path:
    resume = _last_checkpoint(config.output_dir)
    if resume:
        log.info("resuming %s from %s", stage, resume)
    result = trainer.train(resume_from_checkpoint=resume)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    extra = {
        "data_sha256": data_sha,
        "train_rows": n_rows,
        "resumed_from": resume,
        "global_step": trainer.state.global_step,
        "train_metrics": result.metrics,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "log_history": [
            {k: v for k, v in h.items() if isinstance(v, int | float | str)} for h in trainer.state.log_history
        ],
    }
    return _save_final(trainer, processor, config, stage, extra)


# --- stages -----------------------------------------------------------------------------------------------------


def _require_data(config) -> Path:
    if not config.data:
        raise OptionError("no training data: set 'data' in the recipe or pass --data")
    path = Path(config.data)
    if not path.is_file():
        raise FileNotFoundError(f"training data {path}: no such file")
    return path


def build_sft_trainer(config, stage: str = "sft", callbacks: list | None = None):
    """(trainer, processor, data_sha, rows) for stage 1 or 2."""
    from trl import SFTTrainer

    data = _require_data(config)
    model, processor, frame = load_for_training(config)
    dataset = build_dataset(
        data,
        stage,
        frame,
        reasoning=bool(config.reasoning),
        limit=config.limit,
        repeat=config.repeat,
        image_cache=Path(config.output_dir) / "image-cache",
        template=stage_prompt_template(config),
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=processor,
        callbacks=callbacks,
        peft_config=peft_config_for(config) if config.use_peft else None,
    )
    if config.preprocess_once:
        from deepmedix.training.preprocessed import preprocess_once

        # the trainer's own collator, run once per sample: the batches stay what TRL would build, without the
        # per-step image decoding and tokenisation
        trainer.train_dataset, trainer.data_collator = preprocess_once(
            trainer.train_dataset, trainer.data_collator, processor.tokenizer.pad_token_id
        )
    return trainer, processor, sha256_file(data), len(dataset)


def valid_box_share(completions: list[Completion], image_size: list[Sequence[float]], **_: Any) -> list[float]:
    """1 when a completion cites at least one box and every box lies inside the model-input image, else 0.

    Logged beside the reward (weight 0): the share of generations whose grounding is valid.
    """
    out = []
    for completion, size in zip(completions, image_size, strict=True):
        boxes = parse_completion(completion_text(completion)).boxes
        out.append(float(bool(boxes) and all(box_inside(b, size[0], size[1]) for b in boxes)))
    return out


def reference_iou(
    completions: list[Completion], reference_boxes: list[list[list[float]] | None] | None = None, **_: Any
) -> list[float | None]:
    """Per completion, the mean over its sample's reference boxes of the best IoU any cited box reaches (model
    frame); None for a sample without reference boxes, which TRL leaves out of the logged mean.

    Logged beside the reward (weight 0): whether the cited boxes move towards the reference regions.
    """
    references = reference_boxes if reference_boxes is not None else [None] * len(completions)
    out: list[float | None] = []
    for completion, reference in zip(completions, references, strict=True):
        if not reference:
            out.append(None)
            continue
        cited = parse_completion(completion_text(completion)).boxes
        best = [max((iou(box, ref) for box in cited), default=0.0) for ref in reference]
        out.append(sum(best) / len(best))
    return out


# Zero-weight reward functions: TRL logs them beside the reward components (rewards/<name>/mean).
MONITORS: tuple[TrlRewardFunc, ...] = (valid_box_share, reference_iou)


def reward_functions(config) -> tuple[list[TrlRewardFunc], list[float]]:
    """The paper's reward as TRL reward functions (from deepmedix.rewards), plus the zero-weight monitors."""
    components = make_trl_reward_funcs(mode=config.reward_mode, lam=config.reward_lambda)
    funcs: list[TrlRewardFunc] = [*components, *MONITORS]
    # Each component carries its weight ((1 − λ, λ, 1) for answer, format, coordinate): TRL's weighted sum is r.
    weights = list(config.reward_weights) if config.reward_weights else [float(f.weight) for f in components]
    extra = weights[len(components) :]
    if len(extra) <= len(MONITORS) and all(w == 0.0 for w in extra):  # a config that already carries monitor weights
        weights = weights[: len(components)]
    if len(weights) != len(components):
        raise OptionError(f"reward_weights has {len(weights)} values for {len(components)} reward functions")
    return funcs, [*weights, *(0.0 for _ in MONITORS)]


def build_grpo_trainer(config, callbacks: list | None = None):
    """(trainer, processor, data_sha, rows) for stage 3. The KL reference is ``config.ref_model`` when set.

    TRL builds its reference model from the policy's config path; pointing that path at the stage-1 model while the
    trainer is built makes the stage-1 model the reference, as in the paper (with LoRA, TRL instead disables the
    adapter, so the reference is the starting policy).
    """
    from trl import GRPOTrainer

    data = _require_data(config)
    model, processor, frame = load_for_training(config)
    dataset = build_dataset(
        data,
        "grpo",
        frame,
        reasoning=bool(config.reasoning),
        limit=config.limit,
        repeat=config.repeat,
        image_cache=Path(config.output_dir) / "image-cache",
        template=stage_prompt_template(config),
    )
    funcs, weights = reward_functions(config)
    config.reward_weights = weights
    callbacks = [reward_log_callback(Path(config.output_dir) / "rewards.jsonl"), *(callbacks or [])]
    # GRPOTrainer left-pads the prompt ids itself and re-runs the processor on the prompts for the loss's multimodal
    # inputs; its own default processor pads left. A right-padding one shifts mm_token_type_ids against the ids of
    # every shorter prompt in a batch: wrong rope positions in the loss, or a shape error when lengths differ a lot.
    processor.tokenizer.padding_side = "left"
    original_path = model.config._name_or_path
    if config.ref_model and config.beta > 0:
        model.config._name_or_path = resolve_model_path(config.ref_model)
    try:
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=config,
            train_dataset=dataset,
            processing_class=processor,
            callbacks=callbacks,
            peft_config=peft_config_for(config) if config.use_peft else None,
        )
    finally:
        model.config._name_or_path = original_path
    if getattr(trainer, "ref_model", None) is not None:
        ensure_suppressed_placeholders(trainer.ref_model, processor)
    return trainer, processor, sha256_file(data), len(dataset)


def run_stage(
    stage: str,
    recipe: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    config: Any = None,
    callbacks: list | None = None,
) -> Path:
    """Run a stage from a recipe file (or a ready config); returns the final model's folder.

    Skips the work when the output already holds a complete final model; resumes from the last checkpoint when a
    previous run was interrupted. ``callbacks`` are extra ``transformers.TrainerCallback`` objects. With
    ``push_to_hub`` (and ``hub_model_id``) in the recipe, the finished ``final/`` folder — weights, processor and
    model card — is pushed once at the end (the Trainer's own pushing of every checkpoint stays off).
    """
    if config is None:
        if recipe is None:
            raise ValueError("run_stage needs a recipe or a config")
        config = load_stage_config(stage, recipe, overrides)
    push_repo = config.hub_model_id if config.push_to_hub else None
    if config.push_to_hub and not push_repo:
        raise OptionError("push_to_hub needs hub_model_id (the repository to push the final model to)")
    config.push_to_hub = False  # no network from the Trainer; the final folder is pushed once, below
    if is_complete(config.output_dir):
        log.info("%s: %s is complete, skipping", stage, final_dir(config.output_dir))
        final = final_dir(config.output_dir)
    else:
        # The data and the output folder are checked before the model is loaded (minutes, on a real one).
        check_training_data(_require_data(config))
        check_output(config.output_dir, folder=True)
        created = make_parents(Path(config.output_dir) / FINAL_DIR)
        try:
            if stage == "grpo":
                trainer, processor, sha, rows = build_grpo_trainer(config, callbacks)
            else:
                trainer, processor, sha, rows = build_sft_trainer(config, stage, callbacks)
        except BaseException:
            remove_created(created)  # the folders made for this run, while still empty
            raise
        final = _train_and_save(trainer, processor, config, stage, sha, rows)
    if push_repo:
        log.info("%s: pushed to %s", final, push_to_hub(final, push_repo))
    return final


__all__ = [
    "build_grpo_trainer",
    "build_sft_trainer",
    "final_dir",
    "is_complete",
    "load_for_training",
    "package_versions",
    "prompt_template_record",
    "reference_iou",
    "reward_functions",
    "run_stage",
    "valid_box_share",
]

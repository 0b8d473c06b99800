"""The model card of a trained stage (``final/README.md``), and pushing a final model to the Hugging Face hub.

The card is built with huggingface_hub's ``ModelCard``/``ModelCardData`` (its YAML header is what the hub reads)
from the stage's ``run_info.json``: where the model comes from (the base model at the root of the stage chain), the
data it saw (file, sha256, and the manifest of ``deepmedix prepare mix`` when one sits beside the data), the recipe,
the reward mode for GRPO, the held-out evaluation when one is given, and what the model is for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from deepmedix import __version__
from deepmedix.errors import EndpointError, ModelFileError
from deepmedix.io import atomic_write_text, read_json, sha256_file
from deepmedix.protocol import BUILTIN_REASONING_SOURCE, MODEL_PROMPT_FILE, model_prompt_template

CARD_FILE = "README.md"
RUN_INFO = "run_info.json"
MANIFEST = "manifest.json"  # written by `deepmedix prepare mix` beside the data files
STAGE_TITLES = {
    "sft": "stage 1 — instruction SFT (DeepMedix)",
    "coldstart": "stage 2 — cold-start SFT on grounded reasoning",
    "grpo": "stage 3 — GRPO (DeepMedix-R1)",
}
INTENDED_USE = (
    "Research on chest X-ray interpretation with grounded reasoning only. It is **not** a medical device and must "
    "not be used for clinical decisions: its answers and the regions it cites can be wrong, and it has not been "
    "validated on any patient population. A model trained on credentialed data (MIMIC-CXR and the datasets built "
    "on it) falls under those datasets' data use agreements: share it only as they allow."
)
# Evaluation numbers put in the card's metadata (model-index): the paper's headline metrics.
CARD_METRICS = ("average", "accuracy", "bleu_4", "rouge_l", "f1_chexbert_micro_14", "f1_radgraph")


def read_run_info(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / RUN_INFO
    if not path.is_file():
        raise ModelFileError(f"{model_dir}: no {RUN_INFO} (not a final model written by deepmedix train)")
    info = read_json(path)
    if not isinstance(info, dict):
        raise ModelFileError(f"{path}: expected a JSON object (the run_info.json deepmedix train writes)")
    return info


def root_base_model(model: str) -> str:
    """The model a chain of stages started from: follow each local stage's ``base_model`` back to its origin."""
    seen: set[str] = set()
    while model not in seen and (Path(model) / RUN_INFO).is_file():
        seen.add(model)
        model = str(read_run_info(model).get("base_model") or model)
    return model


def data_provenance(data: str | None, data_sha256: str | None) -> dict[str, Any]:
    """The training data's file and hash, and its mix manifest (with its hash) when one sits beside it."""
    out: dict[str, Any] = {"file": data, "sha256": data_sha256}
    if data:
        manifest = Path(data).parent / MANIFEST
        if manifest.is_file():
            out["manifest"] = str(manifest)
            out["manifest_sha256"] = sha256_file(manifest)
    return out


def _eval_rows(evaluation: dict[str, Any]) -> list[tuple[str, str, float]]:
    """(group, metric, value) of the headline metrics in a metrics.json-shaped mapping."""
    rows = []
    for group, metrics in evaluation.items():
        if group.startswith("_") or not isinstance(metrics, dict):
            continue
        for metric in CARD_METRICS:
            value = metrics.get(metric)
            if isinstance(value, int | float):
                rows.append((group, metric, float(value)))
    return rows


def build_model_card(model_dir: str | Path, evaluation: dict[str, Any] | None = None) -> ModelCard:
    """The card of the final model in ``model_dir``, from its run_info.json (and ``evaluation``, a metrics.json)."""
    info = read_run_info(model_dir)
    stage = str(info.get("stage", "?"))
    config = info.get("config") or {}
    base = root_base_model(str(info.get("base_model") or ""))
    data = data_provenance(info.get("data"), info.get("data_sha256"))
    name = Path(model_dir).resolve().parent.name or "deepmedix-model"
    eval_rows = _eval_rows(evaluation or {})
    card_data = ModelCardData(
        model_name=name,
        base_model=base if "/" in base and not Path(base).exists() else None,  # only a hub id is a hub base model
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        tags=["deepmedix", "chest-x-ray", "grounded-reasoning", "medical", stage],
        eval_results=[
            EvalResult(
                task_type="image-text-to-text",
                dataset_type="deepmedix-heldout",
                dataset_name=group,
                metric_type=metric,
                metric_value=round(value, 4),
            )
            for group, metric, value in eval_rows
        ]
        or None,
        deepmedix_stage=stage,
        deepmedix_version=info.get("versions", {}).get("deepmedix", __version__),
        data_sha256=data["sha256"],
        data_manifest_sha256=data.get("manifest_sha256"),
        reward_mode=config.get("reward_mode") if stage == "grpo" else None,
    )
    lines = [
        f"# {name}: {STAGE_TITLES.get(stage, stage)}",
        "",
        "A chest X-ray vision-language model trained with deepmedix, an implementation of "
        "[DeepMedix-R1](https://arxiv.org/abs/2509.03906). It answers in the grounded protocol: reasoning steps in `<think>…</think>` "
        "that cite image regions as `[x_min, y_min, x_max, y_max]`, then `\\boxed{answer}`.",
        "",
        "## Intended use",
        "",
        INTENDED_USE,
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| stage | {stage} |",
        f"| base model (start of the chain) | `{base}` |",
        f"| this stage started from | `{info.get('base_model')}` |",
        f"| data | `{data['file']}` (sha256 `{data['sha256']}`) |",
    ]
    if data.get("manifest"):
        lines.append(f"| data manifest | `{data['manifest']}` (sha256 `{data['manifest_sha256']}`) |")
    lines += [
        f"| training rows | {info.get('train_rows')} |",
        f"| optimiser steps | {info.get('global_step')} |",
        f"| learning rate | {config.get('learning_rate')} |",
        f"| finished | {info.get('finished')} |",
    ]
    if stage == "grpo":
        lines += [
            f"| reward mode | `{config.get('reward_mode')}` (λ = {config.get('reward_lambda')}) |",
            f"| KL reference | `{config.get('ref_model')}` (β = {config.get('beta')}) |",
            f"| generations per prompt | {config.get('num_generations')} |",
        ]
    versions = ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())
    lines += ["", f"Software: {versions}.", "", "The full recipe is in `run_info.json` beside this card.", ""]
    lines += _how_to_ask(Path(model_dir), bool(config.get("reasoning")))
    lines += ["## Evaluation", ""]
    if eval_rows:
        lines += ["| benchmark | metric | value |", "|---|---|---|"]
        lines += [f"| {g} | {m} | {v:.4f} |" for g, m, v in eval_rows]
        lines.append("")
    else:
        lines += ["No evaluation was attached to this card (`deepmedix model-card --eval metrics.json` adds one).", ""]
    lines += [
        "## Citation",
        "",
        "Lin et al., *A Foundation Model for Chest X-ray Interpretation with Grounded Reasoning via Online "
        "Reinforcement Learning*, arXiv:2509.03906.",
        "",
    ]
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _how_to_ask(model_dir: Path, reasoning: bool) -> list[str]:
    """The user text the model was trained on, so that a user of plain transformers asks it the same way."""
    lines = ["## How to ask it", ""]
    if not reasoning:
        return lines + ["It was trained on the question (or task instruction) alone, after the image.", ""]
    kept = model_prompt_template(model_dir)
    source = kept.source if kept is not None else BUILTIN_REASONING_SOURCE
    where = (
        f"kept beside the weights as `{MODEL_PROMPT_FILE}`, which deepmedix reads when it loads this folder"
        if kept is not None
        else "deepmedix's built-in reasoning prompt"
    )
    return lines + [
        f"The user turn after the image is this Jinja template, `content` being the question ({where}):",
        "",
        "```jinja",
        source.strip(),
        "```",
        "",
    ]


def write_model_card(model_dir: str | Path, evaluation: dict[str, Any] | None = None) -> Path:
    """Write ``model_dir/README.md`` (atomically); returns its path."""
    path = Path(model_dir) / CARD_FILE
    atomic_write_text(path, str(build_model_card(model_dir, evaluation)))
    return path


def push_to_hub(model_dir: str | Path, repo_id: str, private: bool = True, token: str | None = None) -> str:
    """Upload the final model folder (weights, processor, card) to ``repo_id``; returns the commit URL.

    Nothing leaves the machine unless this is called. Offline (``HF_HUB_OFFLINE=1``) or refused, the error says so
    in one line; the card stays written locally either way.
    """
    model_dir = Path(model_dir)
    if not (model_dir / CARD_FILE).is_file():
        write_model_card(model_dir)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(model_dir), commit_message="deepmedix: final model")
    except OfflineModeIsEnabled:
        raise EndpointError(
            f"{repo_id}: not pushed, the hub is switched off (HF_HUB_OFFLINE); {model_dir} is complete"
        ) from None
    except (HfHubHTTPError, OSError) as e:
        raise EndpointError(f"{repo_id}: push refused or failed ({e}); {model_dir} is complete") from None
    return str(getattr(info, "commit_url", info))


__all__ = ["build_model_card", "push_to_hub", "read_run_info", "root_base_model", "write_model_card"]

"""Stage configurations: TRL's ``SFTConfig``/``GRPOConfig`` plus the model, data and LoRA fields, read from YAML.

A recipe is one flat YAML mapping (open-r1 style): any ``SFTConfig``/``GRPOConfig``/``TrainingArguments`` key, and
the fields below. Unknown keys are refused with the recipe's name, so a typo never trains silently with defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import trl

from deepmedix.errors import InputFileError, OptionError, RecipeError
from deepmedix.io import read_yaml
from deepmedix.protocol import PromptTemplate, load_prompt_template, model_prompt_template
from deepmedix.rewards.score import RewardMode, parse_reward_mode

# LoRA on the language model only: bare "gate_proj|up_proj|down_proj" would also match the vision tower's MLP.
LANGUAGE_LORA_TARGETS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
VISION_LORA_TARGETS = r".*visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(gate|up|down)_proj)"


@dataclass
class StageFields:
    """What a deepmedix stage adds to TRL's arguments: which model, which data, how to adapt it."""

    model: str = field(default="tiny", metadata={"help": '"tiny", a hub id, or a folder (e.g. the previous stage)'})
    data: str | None = field(default=None, metadata={"help": "samples JSONL to train on"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N samples"})
    repeat: int = field(default=1, metadata={"help": "repeat the data N times (small learning runs)"})
    reasoning: bool | None = field(
        default=None, metadata={"help": "ask for the <think> protocol in the prompt (default: by stage)"}
    )
    prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Jinja template of the reasoning prompt's text, given the question as 'content' (in a recipe, "
            "a relative path is read beside the recipe first; default: the one the starting model was trained on, "
            "else the built-in one); only for stages that reason. The final model keeps it as reasoning_prompt.jinja"
        },
    )
    model_dtype: str = field(default="auto", metadata={"help": "dtype to load the weights in"})
    min_pixels: int | None = field(default=None, metadata={"help": "processor lower pixel bound"})
    max_pixels: int | None = field(default=None, metadata={"help": "processor upper pixel bound (paper: 512*512)"})
    train_vision: bool = field(default=False, metadata={"help": "also train the vision tower and merger"})
    use_peft: bool = field(default=False, metadata={"help": "LoRA instead of full fine-tuning"})
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "regex of modules to adapt (default: the language model's projections)"}
    )
    preprocess_once: bool = field(
        default=False,
        metadata={
            "help": "SFT: tokenise and process images once per dataset, not every step (datasets that fit in memory)"
        },
    )


@dataclass
class SFTStageConfig(StageFields, trl.SFTConfig):
    """Stage 1 (instruction SFT) and stage 2 (SFT on cold-start reasoning samples)."""

    # CPU-safe and vision-safe defaults: a 1024-token cap could cut through image tokens.
    max_length: int | None = None
    report_to: Any = "none"
    remove_unused_columns: bool = False


@dataclass
class GRPOStageConfig(StageFields, trl.GRPOConfig):
    """Stage 3: GRPO against the paper's reward, KL to the stage-1 model."""

    ref_model: str | None = field(
        default=None,
        metadata={"help": "KL reference (the stage-1 model); default: the starting policy, as TRL does"},
    )
    reward_mode: RewardMode = field(
        default=RewardMode.PAPER, metadata={"help": "paper | release | grounded (see deepmedix.rewards)"}
    )
    reward_lambda: float = field(default=0.1, metadata={"help": "λ: weight of the format reward"})
    # The paper's objective: a KL penalty (TRL's k3 estimator) and the per-sequence GRPO loss.
    beta: float = 0.04
    loss_type: str = "grpo"
    report_to: Any = "none"
    remove_unused_columns: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reward_mode = parse_reward_mode(self.reward_mode, "reward_mode")


STAGE_CONFIGS: dict[str, type] = {"sft": SFTStageConfig, "coldstart": SFTStageConfig, "grpo": GRPOStageConfig}
# The stage decides whether the prompt asks for the reasoning protocol (stage 1 answers plainly).
STAGE_REASONING = {"sft": False, "coldstart": True, "grpo": True}


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path}: no such file")
    try:
        raw = read_yaml(path) or {}
    except InputFileError as e:  # not YAML, or not UTF-8: a recipe that cannot be used
        raise RecipeError(f"recipe {e}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path}: expected a mapping of keys to values, got {type(raw).__name__}")
    template = raw.get("prompt_template")
    if isinstance(template, str) and not Path(template).is_absolute() and (path.parent / template).is_file():
        raw["prompt_template"] = str(path.parent / template)  # a template shipped beside its recipe
    return raw


def build_stage_config(stage: str, recipe: dict[str, Any], source: str = "<recipe>") -> Any:
    """The stage's config object from a recipe mapping (``stage`` and ``description`` keys are informational)."""
    if stage not in STAGE_CONFIGS:
        raise RecipeError(f"{source}: unknown stage {stage!r}; one of {sorted(STAGE_CONFIGS)}")
    cls = STAGE_CONFIGS[stage]
    values = {k: v for k, v in recipe.items() if k not in ("stage", "description")}
    declared = recipe.get("stage")
    if declared is not None and declared != stage:
        raise RecipeError(f"{source}: field 'stage' says {declared!r} but it is run as {stage!r}")
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RecipeError(f"{source}: unknown key(s) {unknown} for a {stage} recipe ({cls.__name__})")
    defaults = {f.name: f.default for f in fields(cls) if f.init}
    for key, value in list(values.items()):
        values[key] = _coerce(key, value, defaults.get(key), source)
    if values.get("reasoning") is None:
        values["reasoning"] = STAGE_REASONING[stage]
    if values.get("prompt_template") is not None:
        if not values["reasoning"]:
            raise RecipeError(
                f"{source}: field 'prompt_template': a prompt template is the reasoning prompt, and this {stage} "
                "stage asks without reasoning (reasoning: false)"
            )
        values["prompt_template"] = str(values["prompt_template"])
        try:
            load_prompt_template(values["prompt_template"])  # a bad template stops the recipe, not the training
        except OptionError as e:
            raise RecipeError(f"{source}: field 'prompt_template': {e}") from None
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise RecipeError(f"{source}: {e}") from None


def stage_prompt_template(config: Any) -> PromptTemplate | None:
    """The template a stage's prompts are rendered with: the recipe's, else, for a reasoning stage, the one its
    starting model was trained on (None: the built-in one, or the question alone)."""
    given = load_prompt_template(getattr(config, "prompt_template", None))
    if given is None and getattr(config, "reasoning", False):
        return model_prompt_template(getattr(config, "model", None))
    return given


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """YAML reads "2e-3" as a string (YAML 1.1 floats need a dot): convert strings for numeric/bool fields."""
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    try:
        if isinstance(default, bool):
            lowered = value.strip().lower()
            if lowered in ("true", "yes", "1", "false", "no", "0"):
                return lowered in ("true", "yes", "1")
            raise ValueError(value)
        if isinstance(default, int):
            number = float(value)
            return int(number) if number.is_integer() else number
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise RecipeError(f"{source}: field '{key}' expects a {type(default).__name__}, got {value!r}") from None
    return value


def load_stage_config(stage: str, recipe_path: str | Path, overrides: dict[str, Any] | None = None) -> Any:
    recipe = read_recipe(recipe_path)
    recipe.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_stage_config(stage, recipe, source=f"recipe {recipe_path}")


def config_summary(config: Any) -> dict[str, Any]:
    """The config as plain JSON values (for run_info.json)."""
    out = config.to_dict()
    return {
        k: (v if isinstance(v, str | int | float | bool | list | dict | type(None)) else str(v)) for k, v in out.items()
    }


__all__ = [
    "GRPOStageConfig",
    "LANGUAGE_LORA_TARGETS",
    "SFTStageConfig",
    "STAGE_CONFIGS",
    "StageFields",
    "VISION_LORA_TARGETS",
    "build_stage_config",
    "config_summary",
    "stage_prompt_template",
    "load_stage_config",
    "read_recipe",
]

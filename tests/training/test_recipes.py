"""Recipes → stage configs: the shipped recipes build TRL configs (no weights loaded); bad recipes fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
import trl

from deepmedix.cli import main
from deepmedix.errors import RecipeError
from deepmedix.protocol import LARGEST_NEW_TOKENS
from deepmedix.training.config import load_stage_config

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
STAGES = ("sft", "coldstart", "grpo")


@pytest.mark.parametrize("stage", STAGES)
def test_7b_recipes_build_the_paper_setup(stage: str):
    # use_cpu only because this machine has no GPU (bf16 would be refused); nothing else is changed.
    config = load_stage_config(stage, RECIPES / "qwen2.5-vl-7b" / f"{stage}.yaml", {"use_cpu": True})
    assert config.model.startswith("Qwen/") if stage == "sft" else config.model.endswith("/final")
    assert config.max_pixels == 512 * 512 and config.bf16 and not config.train_vision
    assert config.reasoning is (stage != "sft")
    if stage == "grpo":
        assert isinstance(config, trl.GRPOConfig)
        assert config.beta > 0 and config.loss_type == "grpo" and config.epsilon == 0.2
        assert config.reward_lambda == 0.1 and config.reward_mode == "paper"
        assert config.use_vllm and config.vllm_mode == "colocate"
        assert config.ref_model.endswith("sft/final")
    else:
        assert isinstance(config, trl.SFTConfig)
        assert config.max_length is None  # never truncate through image tokens


def test_7b_release_recipe_differs_from_the_default_only_in_its_reward_and_folder():
    default = load_stage_config("grpo", RECIPES / "qwen2.5-vl-7b" / "grpo.yaml", {"use_cpu": True}).to_dict()
    release = load_stage_config("grpo", RECIPES / "qwen2.5-vl-7b" / "grpo-release.yaml", {"use_cpu": True}).to_dict()
    differing = {k for k in default if default[k] != release.get(k)}
    assert differing <= {"reward_mode", "output_dir", "logging_dir", "run_name"}
    assert release["reward_mode"] == "release" and release["output_dir"].endswith("grpo-release")


@pytest.mark.parametrize("stage", STAGES)
def test_tiny_recipes_run_on_cpu(stage: str):
    config = load_stage_config(stage, RECIPES / "tiny" / f"{stage}.yaml")
    assert config.use_cpu and not config.bf16
    assert config.max_steps > 0


def test_accelerate_configs_are_valid_yaml_for_eight_gpus():
    import yaml

    for name in ("zero2", "zero3", "fsdp2", "multi_gpu"):
        cfg = yaml.safe_load((RECIPES / "accelerate" / f"{name}.yaml").read_text())
        assert cfg["num_processes"] == 8 and cfg["mixed_precision"] == "bf16"
    assert yaml.safe_load((RECIPES / "accelerate" / "zero3.yaml").read_text())["deepspeed_config"]["zero_stage"] == 3


def test_overrides_win_over_the_recipe(tmp_path: Path):
    config = load_stage_config(
        "sft", RECIPES / "tiny" / "sft.yaml", {"output_dir": str(tmp_path), "max_steps": 7, "learning_rate": 0.5}
    )
    assert (config.output_dir, config.max_steps, config.learning_rate) == (str(tmp_path), 7, 0.5)


def test_unknown_key_names_the_recipe_and_the_key(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\nlerning_rate: 0.1\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml.*lerning_rate"):
        load_stage_config("sft", bad)
    bad.write_text("stage: grpo\nmodel: tiny\n")
    with pytest.raises(RecipeError, match="'stage' says 'grpo'"):
        load_stage_config("sft", bad)
    bad.write_text("- a list\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_stage_config("sft", bad)


def test_cli_reports_recipe_errors_in_one_line(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: tiny\nnum_generatons: 4\n")
    assert main(["train", "grpo", "--recipe", str(bad), "--output-dir", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.yaml" in err and "num_generatons" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert main(["train", "sft", "--recipe", str(tmp_path / "missing.yaml")]) == 1
    assert "missing.yaml" in capsys.readouterr().err


def test_yaml_strings_become_numbers_or_fail_naming_the_field(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: tiny\nlearning_rate: 2e-3\nmax_steps: '5'\nuse_cpu: 'true'\n")
    config = load_stage_config("sft", recipe)  # YAML 1.1 reads 2e-3 as a string
    assert config.learning_rate == 2e-3 and config.max_steps == 5 and config.use_cpu is True
    recipe.write_text("model: tiny\nlearning_rate: fast\n")
    with pytest.raises(RecipeError, match="field 'learning_rate' expects a float"):
        load_stage_config("sft", recipe)


def test_the_7b_rollouts_are_as_long_as_the_answers_asked_at_inference():
    for name in ("grpo.yaml", "grpo-release.yaml"):
        config = load_stage_config("grpo", RECIPES / "qwen2.5-vl-7b" / name, {"use_cpu": True})
        assert config.max_completion_length >= LARGEST_NEW_TOKENS, name

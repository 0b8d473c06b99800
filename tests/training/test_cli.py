"""``deepmedix train`` and ``deepmedix pipeline`` from the command line, on the tiny recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmedix.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "tiny"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from deepmedix.data.phantom import make_phantom_samples

    out = tmp_path_factory.mktemp("phantom-cli")
    make_phantom_samples(out, 6, seed=11)
    return out / "samples.jsonl"


def test_train_sft_with_overrides(phantom: Path, tmp_path: Path, capsys):
    out = tmp_path / "sft"
    rc = main(
        [
            "train",
            "sft",
            "--recipe",
            str(RECIPES / "sft.yaml"),
            "--data",
            str(phantom),
            "--output-dir",
            str(out),
            "--max-steps",
            "2",
            "--set",
            "learning_rate=2e-3",
            "--set",
            "disable_tqdm=true",
        ]
    )
    assert rc == 0
    assert str(out / "final") in capsys.readouterr().out
    info = json.loads((out / "final" / "run_info.json").read_text())
    assert info["global_step"] == 2 and info["config"]["learning_rate"] == 2e-3
    assert info["data"] == str(phantom)


@pytest.mark.slow
def test_pipeline_chains_the_three_stages_and_skips_finished_ones(phantom: Path, tmp_path: Path, capsys):
    root = tmp_path / "runs"
    args = [
        "pipeline",
        "--recipes",
        str(RECIPES),
        "--data",
        str(phantom),
        "--output-dir",
        str(root),
        "--max-steps",
        "2",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    for stage in ("sft", "coldstart", "grpo"):
        assert f"{stage}: {root / stage / 'final'}" in printed
    sft = json.loads((root / "sft" / "final" / "run_info.json").read_text())
    cold = json.loads((root / "coldstart" / "final" / "run_info.json").read_text())
    grpo = json.loads((root / "grpo" / "final" / "run_info.json").read_text())
    assert cold["base_model"] == str(root / "sft" / "final")
    assert grpo["base_model"] == str(root / "coldstart" / "final")
    assert grpo["config"]["ref_model"] == str(root / "sft" / "final")
    assert sft["config"]["reasoning"] is False and cold["config"]["reasoning"] is True
    # Stage 2 trained on synthesised protocol completions.
    cold_data = Path(cold["data"])
    assert cold_data.is_file() and "\\\\boxed{" in cold_data.read_text()
    assert (root / "grpo" / "rewards.jsonl").is_file()

    stamps = {s: (root / s / "final" / "model.safetensors").stat().st_mtime_ns for s in ("sft", "coldstart", "grpo")}
    assert main(args) == 0  # everything complete: nothing retrained
    assert stamps == {s: (root / s / "final" / "model.safetensors").stat().st_mtime_ns for s in stamps}


def test_pipeline_without_data_says_so(tmp_path: Path, capsys):
    assert main(["pipeline", "--recipes", str(RECIPES), "--output-dir", str(tmp_path)]) == 1
    assert "--data" in capsys.readouterr().err

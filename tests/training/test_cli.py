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
    _check_model_cards(root, phantom)

    stamps = {s: (root / s / "final" / "model.safetensors").stat().st_mtime_ns for s in ("sft", "coldstart", "grpo")}
    assert main(args) == 0  # everything complete: nothing retrained
    assert stamps == {s: (root / s / "final" / "model.safetensors").stat().st_mtime_ns for s in stamps}


def test_pipeline_without_data_says_so(tmp_path: Path, capsys):
    assert main(["pipeline", "--recipes", str(RECIPES), "--output-dir", str(tmp_path)]) == 1
    assert "--data" in capsys.readouterr().err


def _check_model_cards(root: Path, data: Path) -> None:
    """Every final model carries a card: the chain's base model, the data and its hash, recipe, reward mode, use."""
    from huggingface_hub import ModelCard

    from deepmedix.io import sha256_file

    for stage in ("sft", "coldstart", "grpo"):
        card = ModelCard.load(root / stage / "final" / "README.md")
        assert card.data.deepmedix_stage == stage
        assert "tiny" in card.text  # the start of the chain, found through each stage's run_info
        assert "not be used for clinical decisions" in card.text
    # how to ask it: the question alone after stage 1, the reasoning prompt it was trained on after stages 2 and 3
    from deepmedix.protocol import REASONING_SUFFIX

    assert "question (or task instruction) alone" in ModelCard.load(root / "sft" / "final" / "README.md").text
    for stage in ("coldstart", "grpo"):
        assert REASONING_SUFFIX in ModelCard.load(root / stage / "final" / "README.md").text
    grpo = ModelCard.load(root / "grpo" / "final" / "README.md")
    run = json.loads((root / "grpo" / "final" / "run_info.json").read_text())
    assert grpo.data.reward_mode == run["config"]["reward_mode"] and grpo.data.data_sha256 == sha256_file(data)
    assert f"`{run['config']['reward_mode']}`" in grpo.text


def test_model_card_adds_held_out_results_and_push_is_one_clear_line_offline(
    phantom: Path, tmp_path: Path, capsys, monkeypatch
):
    from huggingface_hub import ModelCard

    out = tmp_path / "sft"
    assert (
        main(
            ["train", "sft", "--recipe", str(RECIPES / "sft.yaml"), "--data", str(phantom)]
            + ["--output-dir", str(out), "--max-steps", "1"]
        )
        == 0
    )
    (phantom.parent / "manifest.json").write_text('{"seed": 0}')  # as `deepmedix prepare mix` writes beside data
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"phantom/vqa": {"n": 40, "accuracy": 0.625}, "_meta": {}}))
    capsys.readouterr()
    assert main(["model-card", str(out / "final"), "--eval", str(metrics)]) == 0
    card = ModelCard.load(out / "final" / "README.md")
    assert "| phantom/vqa | accuracy | 0.6250 |" in card.text
    assert card.data.eval_results[0].metric_value == 0.625 and card.data.data_manifest_sha256

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert main(["model-card", str(out / "final"), "--push-to-hub", "someone/model"]) == 1
    err = capsys.readouterr().err
    assert "someone/model: not pushed" in err and len(err.strip().splitlines()) == 1
    assert (out / "final" / "README.md").is_file()  # the card stays


def test_push_uploads_the_final_folder_with_its_card(phantom: Path, tmp_path: Path, monkeypatch):
    from deepmedix.training import model_card

    calls: list[tuple[str, dict]] = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return type("Info", (), {"commit_url": "https://hub.example/commit/1"})()

    monkeypatch.setattr(model_card, "HfApi", FakeApi)
    out = tmp_path / "sft"
    args = ["train", "sft", "--recipe", str(RECIPES / "sft.yaml"), "--data", str(phantom), "--output-dir", str(out)]
    assert main([*args, "--max-steps", "1", "--push-to-hub", "lab/cxr-sft"]) == 0
    assert calls[0] == ("create_repo", {"repo_id": "lab/cxr-sft", "private": True, "exist_ok": True})
    assert calls[1][1]["folder_path"] == str(out / "final") and calls[1][1]["repo_id"] == "lab/cxr-sft"
    assert (out / "final" / "README.md").is_file()

"""The main job end to end at reduced size: every stage runs, the report shows each part, a rerun skips all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmedix.demo.config import DemoConfig
from deepmedix.demo.pipeline import MODELS, Demo, _packaged_recipes
from deepmedix.io import read_jsonl


def _config(out: Path) -> DemoConfig:
    return DemoConfig(
        out=out,
        recipes=_packaged_recipes("tiny"),  # the tiny model: the demo's code paths at test speed
        per_benchmark=2,
        phantom_train=48,
        phantom_heldout=16,
        coldstart_samples=16,
        grpo_samples=16,
        max_steps={"sft": 3, "coldstart": 3, "grpo": 2},
        max_new_tokens=24,
        batch_size=8,
        arena_budget=12,
        review_samples=3,
        meteor=False,
    )


@pytest.mark.slow
def test_demo_runs_every_stage_then_skips_them(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = Demo(_config(out))
    report = first.run()
    assert [r.name for r in first.records] == [
        "prepare",
        "coldstart_data",
        "train",
        "predict",
        "eval",
        "arena",
        "review",
    ]
    assert not any(r.skipped for r in first.records)

    # every model answered the same test samples
    ids = {name: [r["id"] for r in read_jsonl(out / "predictions" / f"{name}.jsonl")] for name in MODELS}
    assert len({tuple(v) for v in ids.values()}) == 1 and ids["base"]
    # XrayBench for each model, with report and VQA groups
    for name in MODELS:
        metrics = json.loads((out / "eval" / name / "metrics.json").read_text())
        groups = [g for g in metrics if not g.startswith("_") and g != "weighted_average"]
        assert any(metrics[g].get("n_report") for g in groups)
        assert any(metrics[g].get("n_vqa") for g in groups)
        assert all(metrics[g]["f1_chexbert_micro_14"] is None for g in groups if metrics[g].get("n_report"))
    # the held-out phantoms: all answered by every model, compared with intervals and paired differences
    stages = json.loads((out / "eval" / "stages.json").read_text())
    assert stages["n"] == 16 and list(stages["models"]) == list(MODELS)
    assert list(stages["differences"]) == ["base → stage1", "stage1 → stage2", "stage2 → stage3"]
    for values in [*stages["models"].values(), *stages["differences"].values()]:
        for v in values.values():
            assert v["value"] is None or v["low"] - 1e-9 <= v["value"] <= v["high"] + 1e-9
    # the arena ranked all four models; the review set has four annotators in two groups
    scores = json.loads((out / "arena" / "scores.json").read_text())
    assert set(scores) == set(MODELS)
    tokens = (out / "review" / "tokens.txt").read_text().splitlines()
    assert [t.split("\t")[0] for t in tokens] == ["admin", "physician1", "physician2", "physician3", "physician4"]
    # GRPO logged its reward components for the curves
    rewards = read_jsonl(out / "models" / "grpo" / "rewards.jsonl")
    assert len(rewards) == 2 and "rewards/format/mean" in rewards[0]

    html = report.read_text()
    for heading in (
        "What each stage did — held-out samples",
        "Paired differences, stage to stage",
        "Report generation",
        "VQA — accuracy by question type",
        "GRPO reward by component",
        "Report Arena across the stages",
        "Example X-rays with the reasoning boxes drawn",
        "Expert review set",
        "How to go further",
    ):
        assert heading in html, heading
    assert html.count("data:image/png;base64,") >= 5  # stats, VQA, rewards, arena figures, examples
    assert "stage 3 · GRPO (DeepMedix-R1)" in html
    # each stage-to-stage change read out in words from its interval
    assert html.count("stage 3 · GRPO (DeepMedix-R1)</b>: ") == 1 and "What the 95% intervals say" in html

    # a rerun finds every stage complete and redoes nothing
    again = Demo(_config(out))
    again.run()
    assert all(r.skipped for r in again.records)
    # a stage whose output disappeared is redone, the others stay skipped
    (out / "arena" / "scores.json").unlink()
    third = Demo(_config(out))
    third.run()
    assert {r.name for r in third.records if not r.skipped} == {"arena"}
    assert (out / "arena" / "scores.json").is_file()


def test_demo_refuses_data_without_test_samples(tmp_path: Path) -> None:
    from deepmedix.data.bundled import prepare_bundled
    from deepmedix.data.schema import load_samples, sample_to_json

    full = prepare_bundled(tmp_path / "all.jsonl")
    train_only = tmp_path / "train.jsonl"
    train_only.write_text("".join(sample_to_json(s) + "\n" for s in load_samples(full) if s.split == "train"))
    cfg = _config(tmp_path / "demo")
    cfg.data = train_only
    with pytest.raises(ValueError, match="needs train and test samples"):
        Demo(cfg).run()

"""What the demo asks its models: the prompt template for the stages that reason (stage 1 answers the question alone),
and a budget of new tokens that follows the recipes (per task on the real recipes, the embedded recipes' GRPO completion length on theirs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from deepmedix.demo import pipeline
from deepmedix.demo.config import DemoConfig
from deepmedix.demo.pipeline import Demo
from deepmedix.errors import OptionError
from deepmedix.io import read_yaml

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.fixture
def template_file(tmp_path: Path) -> Path:
    path = tmp_path / "format.jinja"
    path.write_text("{{ content | trim }}\n\nThink, cite boxes, answer in \\boxed{}.\n", encoding="utf-8")
    return path


def _predict_calls(monkeypatch: pytest.MonkeyPatch, config: DemoConfig) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(pipeline, "predict_file", lambda *args, **kwargs: calls.append(kwargs))
    demo = Demo(config)
    for name, reasoning in (("base", True), ("stage1", False), ("stage3", True)):
        demo.predict(name, "model", "test.jsonl", reasoning)
    return calls


def test_real_recipes_answer_with_task_budgets_and_the_template_where_they_reason(
    monkeypatch: pytest.MonkeyPatch, template_file: Path, tmp_path: Path
) -> None:
    config = DemoConfig(out=tmp_path, recipes=RECIPES / "qwen2.5-vl-7b", prompt_template=template_file)
    calls = _predict_calls(monkeypatch, config)
    assert [c["max_new_tokens"] for c in calls] == [None, None, None]  # None: each task its own budget
    assert [c["prompt_template"] for c in calls] == [template_file, None, template_file]


def test_every_reasoning_model_is_asked_with_the_recipes_prompt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The small recipes train on their own short prompt: the base model is asked with it too, so every model that
    reasons gets the same question; stage 1 gets the question alone."""
    calls = _predict_calls(monkeypatch, DemoConfig(out=tmp_path))  # the default: the small recipes
    shipped = str(RECIPES / "small" / "reasoning_prompt.jinja")
    assert [c["prompt_template"] for c in calls] == [shipped, None, shipped]
    calls = _predict_calls(monkeypatch, DemoConfig(out=tmp_path, recipes=RECIPES / "tiny"))  # the built-in prompt
    assert [c["prompt_template"] for c in calls] == [None, None, None]


def test_embedded_recipes_keep_the_length_their_model_was_trained_to(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for recipes in (None, RECIPES / "small", RECIPES / "tiny"):  # None: the demo's default, the small recipes
        trained = read_yaml((recipes or RECIPES / "small") / "grpo.yaml")["max_completion_length"]
        calls = _predict_calls(monkeypatch, DemoConfig(out=tmp_path, recipes=recipes))
        assert [c["max_new_tokens"] for c in calls] == [trained] * 3
    assert read_yaml(RECIPES / "small" / "grpo.yaml")["max_completion_length"] != 96  # the two recipes differ
    given = _predict_calls(
        monkeypatch, DemoConfig(out=tmp_path, recipes=RECIPES / "qwen2.5-vl-7b", max_new_tokens=4096)
    )
    assert given[-1]["max_new_tokens"] == 4096


def test_the_template_goes_to_the_stages_that_reason(
    monkeypatch: pytest.MonkeyPatch, template_file: Path, tmp_path: Path
) -> None:
    from deepmedix.training import pipeline as training_pipeline

    seen: dict[str, Any] = {}

    def run_pipeline(recipes: Path, overrides: dict[str, dict[str, Any]], **kwargs: Any) -> dict[str, Path]:
        seen.update(overrides)
        return {stage: tmp_path / stage for stage in ("sft", "coldstart", "grpo")}

    monkeypatch.setattr(training_pipeline, "run_pipeline", run_pipeline)
    Demo(DemoConfig(out=tmp_path, prompt_template=template_file)).train({"train": "t", "grpo": "g"}, "c", "tiny")
    assert "prompt_template" not in seen["sft"]
    assert seen["coldstart"]["prompt_template"] == seen["grpo"]["prompt_template"] == str(template_file)


def test_a_broken_template_stops_the_demo_before_any_work(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for %}", encoding="utf-8")
    with pytest.raises(OptionError, match=rf"{bad}, line 1"):
        Demo(DemoConfig(out=tmp_path / "demo", prompt_template=bad)).run()
    assert not (tmp_path / "demo").exists()

"""A recipe's ``prompt_template``: the training rows' user text is its rendering, the processor is fed exactly that
text while training, run_info.json names it, and a broken or misplaced template stops the recipe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deepmedix.data.schema import load_samples
from deepmedix.errors import RecipeError
from deepmedix.models.loading import load_model_and_processor, processor_frame
from deepmedix.protocol import BUILTIN_REASONING_TEMPLATE, MODEL_PROMPT_FILE, load_prompt_template
from deepmedix.training import stages
from deepmedix.training.config import build_stage_config, load_stage_config
from deepmedix.training.data import build_dataset

from .conftest import CPU_ARGS

TEMPLATE = "{{ content | trim }}\n\nReason in <think> </think> citing [x_min, y_min, x_max, y_max]; answer \\boxed{}.\n"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from deepmedix.data.phantom import make_phantom_samples

    out = tmp_path_factory.mktemp("phantom-template")
    make_phantom_samples(out, 4, seed=5)
    return out / "samples.jsonl"


@pytest.fixture
def template_file(tmp_path: Path) -> Path:
    path = tmp_path / "format.jinja"
    path.write_text(TEMPLATE, encoding="utf-8")
    return path


def _rendered(question: str) -> str:
    return f"{question.strip()}\n\nReason in <think> </think> citing [x_min, y_min, x_max, y_max]; answer \\boxed{{}}."


def test_training_rows_carry_the_rendered_text(phantom: Path, template_file: Path, tmp_path: Path) -> None:
    _, processor = load_model_and_processor("tiny")
    frame = processor_frame("qwen2_5_vl", processor)
    template = load_prompt_template(template_file)
    rows = build_dataset(phantom, "grpo", frame, reasoning=True, image_cache=tmp_path / "cache", template=template)
    samples = load_samples(phantom)
    for row, sample in zip(rows, samples, strict=True):
        (message,) = row["prompt"]
        assert [p["type"] for p in message["content"]] == ["image", "text"]
        assert message["content"][1]["text"] == _rendered(sample.prompt)
    text = processor.apply_chat_template(rows[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert f"<|vision_end|>{_rendered(samples[0].prompt)}<|im_end|>" in text


def test_a_stage_trains_on_the_rendered_text_and_records_the_template(
    phantom: Path, template_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fed: list[str] = []
    load = stages.load_for_training

    def recording_load(config: Any) -> Any:
        model, processor, frame = load(config)
        cls = type(processor)
        call = cls.__call__

        def recording_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            text = kwargs.get("text")
            fed.extend([text] if isinstance(text, str) else text or [])
            return call(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__call__", recording_call)
        return model, processor, frame

    monkeypatch.setattr(stages, "load_for_training", recording_load)
    out = tmp_path / "sft"
    values = {**CPU_ARGS, "model": "tiny", "data": str(phantom), "output_dir": str(out), "max_steps": 1}
    values.update(per_device_train_batch_size=4, reasoning=True, prompt_template=str(template_file))
    final = stages.run_stage("sft", config=build_stage_config("sft", values))
    questions = [s.prompt for s in load_samples(phantom)]
    prompts = [text for text in fed if "<|im_start|>user" in text]  # TRL feeds completions on their own too
    assert prompts and all(any(_rendered(q) in text for q in questions) for text in prompts)
    assert not any(BUILTIN_REASONING_TEMPLATE.render(q) in text for q in questions for text in fed)
    info = json.loads((final / "run_info.json").read_text())
    assert info["prompt_template"] == "format.jinja"
    assert info["prompt_template_sha256"] == load_prompt_template(template_file).sha256
    assert info["config"]["prompt_template"] == str(template_file)
    # the model keeps the template, byte for byte, so that whoever loads it asks the way it was trained
    assert (final / MODEL_PROMPT_FILE).read_bytes() == template_file.read_bytes()
    card = (final / "README.md").read_text(encoding="utf-8")  # and its card shows it to users of plain transformers
    assert f"```jinja\n{TEMPLATE.strip()}\n```" in card and "internal monologue" not in card

    # The next stage, given no template, trains on the one its starting model keeps, and keeps it in turn.
    fed.clear()
    values.update(model=str(final), output_dir=str(tmp_path / "next"), prompt_template=None)
    follow = stages.run_stage("sft", config=build_stage_config("sft", values))
    prompts = [text for text in fed if "<|im_start|>user" in text]
    assert prompts and all(any(_rendered(q) in text for q in questions) for text in prompts)
    assert (follow / MODEL_PROMPT_FILE).read_bytes() == template_file.read_bytes()
    assert (
        json.loads((follow / "run_info.json").read_text())["prompt_template_sha256"] == info["prompt_template_sha256"]
    )
    # A stage on the built-in prompt leaves no file (the built-in one is every loader's default).
    values.update(model="tiny", output_dir=str(tmp_path / "builtin"))
    assert not (stages.run_stage("sft", config=build_stage_config("sft", values)) / MODEL_PROMPT_FILE).exists()


def test_a_broken_or_misplaced_template_stops_the_recipe(template_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ content }}\n{{ age }}", encoding="utf-8")
    with pytest.raises(RecipeError, match=rf"recipe r\.yaml: field 'prompt_template':.*{bad}, line 2:.*'age'"):
        build_stage_config("grpo", {"prompt_template": str(bad)}, source="recipe r.yaml")
    with pytest.raises(RecipeError, match="reasoning: false"):
        build_stage_config("sft", {"prompt_template": str(template_file)}, source="recipe r.yaml")
    values = {**CPU_ARGS, "output_dir": str(tmp_path)}
    config = build_stage_config("coldstart", {**values, "prompt_template": str(template_file)})
    assert stages.prompt_template_record(config)["prompt_template"] == "format.jinja"
    plain = build_stage_config("sft", values)
    assert stages.prompt_template_record(plain)["prompt_template"] == "builtin:plain"


def test_the_command_lines_take_the_template(template_file: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from deepmedix.cli import main
    from deepmedix.training import pipeline

    recipes = Path(__file__).resolve().parents[2] / "recipes" / "tiny"
    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ content }}\n{% endfor %}", encoding="utf-8")
    assert main(["train", "grpo", "--recipe", str(recipes / "grpo.yaml"), "--prompt-template", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert f"{bad}, line 2: template syntax error" in err and len(err.splitlines()) == 1
    assert main(["train", "sft", "--recipe", str(recipes / "sft.yaml"), "--prompt-template", str(template_file)]) == 1
    assert "reasoning: false" in capsys.readouterr().err
    seen: dict[str, Any] = {}
    monkeypatch.setattr(pipeline, "run_pipeline", lambda recipes, **kwargs: seen.update(kwargs) or {})
    assert main(["pipeline", "--recipes", str(recipes), "--prompt-template", str(template_file)]) == 0
    given = {"prompt_template": str(template_file)}
    assert seen["overrides"] == {"coldstart": given, "grpo": given}  # stage 1 asks with the question alone


def test_a_recipe_reads_its_template_beside_it(template_file: Path, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "short.jinja").write_text(TEMPLATE, encoding="utf-8")
    (folder / "grpo.yaml").write_text("stage: grpo\nprompt_template: short.jinja\nuse_cpu: true\nbf16: false\n")
    monkeypatch.chdir(tmp_path)  # not the recipe's folder
    config = load_stage_config("grpo", folder / "grpo.yaml", {"output_dir": str(tmp_path / "out")})
    assert config.prompt_template == str(folder / "short.jinja")
    # a path given on the command line is the user's: read from the working directory
    given = load_stage_config("grpo", folder / "grpo.yaml", {"output_dir": "out", "prompt_template": "format.jinja"})
    assert given.prompt_template == "format.jinja"
    # the small recipes' stage 2 and 3 ask with the prompt shipped beside them, from any working directory
    small = Path(__file__).resolve().parents[2] / "recipes" / "small"
    for stage in ("coldstart", "grpo"):
        template = stages.stage_prompt_template(load_stage_config(stage, small / f"{stage}.yaml", {"output_dir": "o"}))
        assert template is not None and Path(template.path) == small / "reasoning_prompt.jinja"

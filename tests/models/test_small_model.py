"""The small embedded model: built locally like tiny, resolved by name wherever a model is asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from deepmedix.models.loading import load_model_and_processor, load_processor, model_frame, resolve_model_path
from deepmedix.models.registry import EMBEDDED_MODELS, embedded_model_path
from deepmedix.protocol import build_messages


def test_registry_names_every_embedded_model_once_and_the_cli_offers_them():
    from deepmedix.models.cli import EMBEDDED_NAMES

    assert set(EMBEDDED_MODELS) == {"tiny", "small"} == set(EMBEDDED_NAMES)
    assert len({m.folder for m in EMBEDDED_MODELS.values()}) == len(EMBEDDED_MODELS)
    with pytest.raises(ValueError, match="no embedded model named 'huge'"):
        embedded_model_path("huge")


def test_small_is_built_once_into_the_cache_and_loads_by_name(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DEEPMEDIX_CACHE", str(tmp_path))
    path = Path(resolve_model_path("small"))
    assert path.parent == tmp_path and path.name == EMBEDDED_MODELS["small"].folder
    marker = json.loads((path / "deepmedix-small.json").read_text())
    assert marker["version"] == EMBEDDED_MODELS["small"].build_version
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert embedded_model_path("small") == path and (path / "model.safetensors").stat().st_mtime_ns == stamp

    model, processor = load_model_and_processor("small")
    n_params = sum(p.numel() for p in model.parameters())
    assert 3_000_000 < n_params < 5_000_000
    assert model.config.text_config.hidden_size == 256 and model.config.text_config.num_hidden_layers == 4
    assert model.config.vision_config.hidden_size == 128 and model.config.vision_config.depth == 4
    # the tiny model's tokenizer: the same vocabulary, so prompts and completions tokenise identically
    assert processor.tokenizer.get_vocab() == load_processor("tiny").tokenizer.get_vocab()
    assert model_frame("small") == model_frame("tiny")  # 112×112 inputs, boxes in the same frame

    text = processor.apply_chat_template(build_messages("Where is the lesion?"), add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.new("RGB", (224, 224), 90)], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert not set(out[0, inputs["input_ids"].shape[1] :].tolist()) & set(model.generation_config.suppress_tokens)


def test_cli_builds_the_small_model(tmp_path: Path):
    from deepmedix.cli import main

    assert main(["tiny-model", "--name", "small", "--out", str(tmp_path / "m"), "--seed", "1"]) == 0
    model, processor = load_model_and_processor(tmp_path / "m")
    assert model.config.text_config.hidden_size == 256 and hasattr(processor, "image_processor")
    assert json.loads((tmp_path / "m" / "deepmedix-small.json").read_text())["seed"] == 1
    assert main(["tiny-model", "--name", "small", "--family", "qwen3_vl", "--out", str(tmp_path / "q")]) != 0

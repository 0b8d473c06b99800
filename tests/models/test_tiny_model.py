"""The tiny Qwen2.5-VL: built offline, reloadable through the Auto classes, multimodal, placeholder-safe."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from deepmedix.models.loading import load_model_and_processor, load_processor, model_frame
from deepmedix.models.tiny import build_tiny_model, tiny_model_path
from deepmedix.protocol import build_messages, format_completion, parse_completion


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


def test_reloads_with_auto_classes_as_a_multimodal_model(tiny_dir: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    import deepmedix.models.processors  # noqa: F401  (registers the image-only processor)

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    assert model.config.model_type == "qwen2_5_vl"
    assert hasattr(processor, "image_processor"), "AutoProcessor fell back to a bare tokenizer"
    assert processor.chat_template == qwen2_5_vl_chat_template  # TRL recognises the family by this exact text
    n_params = sum(p.numel() for p in model.parameters())
    assert 50_000 < n_params < 1_000_000
    weights = (tiny_dir / "model.safetensors").stat().st_size
    assert weights < 2 * 1024 * 1024

    text = processor.apply_chat_template(build_messages("Where is the lesion?"), add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.new("RGB", (112, 112), 90)], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16  # 112×112 → 4×4 merged patches
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.text_config.vocab_size
    assert torch.isfinite(logits).all()


def test_tokenizer_speaks_the_protocol(tiny_dir: Path):
    tok = load_processor(tiny_dir).tokenizer
    assert len(tok.tokenize("<think>")) == 1 and len(tok.tokenize("</think>")) == 1
    completion = format_completion(["Step 1: the left upper zone [56, 12, 100, 50] is bright."], "left upper zone")
    ids = tok(completion, add_special_tokens=False)["input_ids"]
    decoded = tok.decode(ids, skip_special_tokens=True)
    assert decoded == completion  # byte-level BPE: lossless, and <think> survives skip_special_tokens
    assert parse_completion(decoded).format_valid
    # Trained merges make common words single tokens: far fewer tokens than bytes.
    assert len(ids) < len(completion.encode()) * 0.6


def test_same_seed_same_weights_other_seed_differs(tiny_dir: Path, tmp_path: Path):
    from safetensors.torch import load_file

    again = load_file(build_tiny_model(tmp_path / "a", seed=0) / "model.safetensors")
    first = load_file(tiny_dir / "model.safetensors")
    other = load_file(build_tiny_model(tmp_path / "b", seed=1) / "model.safetensors")
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_generation_never_emits_image_placeholders(tiny_dir: Path):
    model, processor = load_model_and_processor(tiny_dir)
    banned = {model.config.image_token_id, model.config.video_token_id, model.config.vision_start_token_id}
    assert banned <= set(model.generation_config.suppress_tokens)
    text = processor.apply_chat_template(build_messages("Is there a lesion?"), add_generation_prompt=True)
    inputs = processor(text=[text] * 4, images=[Image.new("RGB", (112, 112), 60)] * 4, return_tensors="pt")
    prompt_len = inputs["input_ids"].shape[1]
    torch.manual_seed(0)
    # Sampling hot from a random model over a 512-token vocabulary: without suppression these ids would appear.
    out = model.generate(**inputs, max_new_tokens=40, do_sample=True, temperature=3.0, min_new_tokens=40)
    generated = set(out[:, prompt_len:].flatten().tolist())
    assert not generated & banned
    assert len(generated) > 30  # it really sampled widely


def test_model_frame_matches_what_the_processor_does(tiny_dir: Path):
    model, processor = load_model_and_processor(tiny_dir)
    frame = model_frame(tiny_dir)
    assert frame.kind == "resized_pixels" and frame.max_pixels == 112 * 112
    assert model_frame(model) == frame
    for w, h in [(112, 112), (300, 200), (1024, 1024), (60, 400)]:
        inputs = processor.image_processor(images=[Image.new("RGB", (w, h))], return_tensors="pt")
        _, gh, gw = inputs["image_grid_thw"][0].tolist()
        assert frame.input_size(w, h) == (gw * 14, gh * 14)
    assert model_frame("Qwen/Qwen3-VL-8B-Instruct").kind == "relative_1000"
    assert model_frame("Qwen/Qwen2.5-VL-7B-Instruct").input_size(512, 512) == (504, 504)


def test_tiny_alias_is_built_once_even_when_raced(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DEEPMEDIX_CACHE", str(tmp_path))
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(tiny_model_path())
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1
    path = results[0]
    assert path.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no half-built leftovers
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert tiny_model_path() == path and (path / "model.safetensors").stat().st_mtime_ns == stamp
    model, processor = load_model_and_processor("tiny")
    assert model.config.model_type == "qwen2_5_vl" and hasattr(processor, "image_processor")


def test_bad_model_names_give_clear_errors(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model_and_processor(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="not-a-real/model-xyz"):
        load_model_and_processor("not-a-real/model-xyz")


def test_cli_builds_a_loadable_model(tmp_path: Path):
    from deepmedix.cli import main

    assert main(["tiny-model", "--out", str(tmp_path / "m")]) == 0
    model, processor = load_model_and_processor(tmp_path / "m")
    assert hasattr(processor, "image_processor")


def test_tiny_qwen3_vl_loads_with_its_relative_frame(tmp_path: Path):
    from deepmedix.cli import main

    assert main(["tiny-model", "--out", str(tmp_path / "q3"), "--family", "qwen3_vl"]) == 0
    model, processor = load_model_and_processor(tmp_path / "q3")
    assert model.config.model_type == "qwen3_vl" and hasattr(processor, "image_processor")
    frame = model_frame(tmp_path / "q3")
    assert frame.kind == "relative_1000" and frame.factor == 32
    assert frame.pixel_size(500, 300)[0] % 32 == 0
    text = processor.apply_chat_template(build_messages("Where is the lesion?"), add_generation_prompt=True)
    inputs = processor(text=[text], images=[Image.new("RGB", (128, 128), 90)], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == 16
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def test_a_cached_copy_from_an_older_build_is_replaced(tmp_path: Path, monkeypatch):
    import json

    monkeypatch.setenv("DEEPMEDIX_CACHE", str(tmp_path))
    path = tiny_model_path()
    marker = path / "deepmedix-tiny.json"
    assert json.loads(marker.read_text())["version"] >= 1
    marker.write_text(json.dumps({"version": 0}))  # as if built by older code
    assert tiny_model_path() == path
    assert json.loads(marker.read_text())["version"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # the stale copy is gone

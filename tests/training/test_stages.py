"""Stage mechanics: resume after a kill, skip when done, atomic final + run_info, frozen vision, LoRA, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from deepmedix.training.config import build_stage_config
from deepmedix.training.stages import run_stage

from .conftest import CPU_ARGS


class KillAt(TrainerCallback):
    """Simulates a killed job: raises once training reaches ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise KeyboardInterrupt("killed")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from deepmedix.data.phantom import make_phantom_samples

    out = tmp_path_factory.mktemp("phantom")
    make_phantom_samples(out, 8, seed=3)
    return out / "samples.jsonl"


def _sft(phantom: Path, out: Path, **extra) -> object:
    values = {
        **CPU_ARGS,
        "model": "tiny",
        "data": str(phantom),
        "output_dir": str(out),
        "max_steps": 6,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "logging_steps": 1,
    }
    values.update(extra)
    return build_stage_config("sft", values)


def test_killed_run_resumes_from_its_last_checkpoint(phantom: Path, tmp_path: Path):
    out = tmp_path / "sft"
    config = _sft(phantom, out, save_strategy="steps", save_steps=2)
    with pytest.raises(KeyboardInterrupt):
        run_stage("sft", config=config, callbacks=[KillAt(3)])
    assert (out / "checkpoint-2").is_dir()
    assert not (out / "final").exists()  # nothing final after a kill

    final = run_stage("sft", config=_sft(phantom, out, save_strategy="steps", save_steps=2))
    info = json.loads((final / "run_info.json").read_text())
    assert info["resumed_from"].endswith("checkpoint-2")
    assert info["global_step"] == 6
    assert info["data_sha256"] == hashlib.sha256(phantom.read_bytes()).hexdigest()
    assert info["config"]["max_steps"] == 6 and info["config"]["model"] == "tiny"
    assert {"torch", "transformers", "trl"} <= set(info["versions"])
    assert not list(out.glob(".final-tmp*"))  # written by rename, no leftovers
    assert info["curves"] == "curves.png" and (final / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # Steps 1-2 come from the checkpoint's state, step 3 (lost in the kill) is redone once: no gap, no duplicate.
    assert [h["step"] for h in info["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]

    stamp = (final / "model.safetensors").stat().st_mtime_ns
    again = run_stage("sft", config=_sft(phantom, out))  # complete: skipped, not retrained
    assert again == final and (final / "model.safetensors").stat().st_mtime_ns == stamp


def test_full_finetuning_keeps_the_vision_tower_frozen(phantom: Path, tmp_path: Path):
    from deepmedix.models.tiny import tiny_model_path

    final = run_stage("sft", config=_sft(phantom, tmp_path / "full", max_steps=3))
    base = load_file(tiny_model_path() / "model.safetensors")
    tuned = load_file(final / "model.safetensors")
    # Saved names are the checkpoint layout ("visual.*", "model.layers.*"), whatever the in-memory module paths.
    vision = [k for k in base if "visual" in k]
    language = [k for k in base if "layers." in k and "visual" not in k]
    assert vision and language
    assert all(torch.equal(base[k], tuned[k]) for k in vision)
    assert any(not torch.equal(base[k], tuned[k]) for k in language)


def test_lora_adapts_only_the_language_model_and_saves_a_merged_model(phantom: Path, tmp_path: Path):
    from deepmedix.models.loading import load_model_and_processor
    from deepmedix.models.tiny import tiny_model_path
    from deepmedix.training.stages import build_sft_trainer

    config = _sft(phantom, tmp_path / "lora", use_peft=True, lora_r=4, lora_alpha=8, max_steps=3, learning_rate=5e-3)
    trainer, *_ = build_sft_trainer(config)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)
    assert not any("visual" in n for n in trainable)

    final = run_stage(
        "sft",
        config=_sft(
            phantom, tmp_path / "lora2", use_peft=True, lora_r=4, lora_alpha=8, max_steps=3, learning_rate=5e-3
        ),
    )
    merged = load_file(final / "model.safetensors")
    assert not any("lora_" in k for k in merged)  # a plain model the next stage can load
    base = load_file(tiny_model_path() / "model.safetensors")
    assert set(merged) == set(base)
    q_proj = next(k for k in base if "visual" not in k and "q_proj.weight" in k)
    assert not torch.equal(base[q_proj], merged[q_proj])
    model, processor = load_model_and_processor(final)
    assert model.config.model_type == "qwen2_5_vl"


def test_coldstart_stage_refuses_samples_without_the_protocol(phantom: Path, tmp_path: Path):
    config = build_stage_config(
        "coldstart",
        {**CPU_ARGS, "model": "tiny", "data": str(phantom), "output_dir": str(tmp_path / "cs"), "max_steps": 1},
    )
    with pytest.raises(ValueError, match=r"sample 'phantom-3-train-00000-grounding', field 'answer'"):
        run_stage("coldstart", config=config)


def test_missing_data_is_a_clear_error(tmp_path: Path):
    config = build_stage_config(
        "sft",
        {
            **CPU_ARGS,
            "model": "tiny",
            "data": str(tmp_path / "nope.jsonl"),
            "output_dir": str(tmp_path / "o"),
            "max_steps": 1,
        },
    )
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        run_stage("sft", config=config)


def test_valid_box_share_reads_boxes_against_the_model_frame():
    from deepmedix.training.stages import valid_box_share

    completions = [
        "<think>Step 1: [10, 10, 50, 50] bright.</think> \\boxed{yes}",
        "<think>Step 1: [10, 10, 150, 50] bright.</think> \\boxed{yes}",  # beyond a 112-wide frame
        "<think>no box here</think> \\boxed{no}",
        [{"role": "assistant", "content": "<think>[1, 2, 3, 4]</think> \\boxed{a}"}],
    ]
    assert valid_box_share(completions, [[112, 112]] * 4) == [1.0, 0.0, 0.0, 1.0]


def test_sft_trains_a_qwen3_vl_model_too(phantom: Path, tmp_path: Path):
    from deepmedix.models.tiny import build_tiny_model

    base = build_tiny_model(tmp_path / "q3", family="qwen3_vl")
    final = run_stage("sft", config=_sft(phantom, tmp_path / "out", model=str(base), max_steps=4, learning_rate=3e-3))
    info = json.loads((final / "run_info.json").read_text())
    assert info["global_step"] == 4 and info["last_loss"] < info["first_loss"]
    assert json.loads((final / "config.json").read_text())["model_type"] == "qwen3_vl"


def test_dataset_keeps_paths_and_converts_what_pil_would_misread(tmp_path: Path):
    import numpy as np
    from PIL import Image

    from deepmedix.data.frame import frame_for
    from deepmedix.data.schema import Box, ImageRef, Provenance, Sample, sample_to_json
    from deepmedix.training.data import build_dataset

    deep = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20  # 16-bit: PIL alone would clip to white
    Image.fromarray(deep).save(tmp_path / "deep.png")
    Image.fromarray((deep // 256).astype(np.uint8)).save(tmp_path / "plain.png")
    rows = []
    for i, name in enumerate(("deep.png", "plain.png")):
        rows.append(
            sample_to_json(
                Sample(
                    id=f"s{i}",
                    source="t",
                    split="train",
                    task="grounding",
                    images=[ImageRef(path=name, width=64, height=48)],
                    prompt="Where?",
                    answer="here",
                    answer_type="closed",
                    boxes=[Box.from_list([8, 8, 32, 24])],
                    provenance=Provenance(dataset="t"),
                )
            )
        )
    (tmp_path / "s.jsonl").write_text("\n".join(rows) + "\n")
    frame = frame_for("qwen2_5_vl", max_pixels=112 * 112)
    ds = build_dataset(tmp_path / "s.jsonl", "grpo", frame, reasoning=True, image_cache=tmp_path / "cache")
    stored = ds.data.column("images").to_pylist()
    assert stored[1][0]["path"] == str(tmp_path / "plain.png")  # a plain PNG is used in place
    assert stored[0][0]["path"].startswith(str(tmp_path / "cache")) and stored[0][0]["bytes"] is None
    converted = ds[0]["images"][0]
    assert converted.mode == "L" and converted.size == (64, 48)
    assert len(set(np.asarray(converted).ravel().tolist())) > 100  # the ramp survived as grey levels
    assert ds[0]["image_size"] == list(frame.input_size(64, 48))
    assert ds[0]["reference_boxes"] == [list(frame.to_model([8, 8, 32, 24], 64, 48))]


def test_curves_need_something_logged(tmp_path: Path):
    from deepmedix.training.curves import plot_curves

    assert plot_curves([], tmp_path / "none.png", "empty") is None and not (tmp_path / "none.png").exists()
    rows = [{"step": i, "reward": 0.1 * i, "rewards/format/mean": 0.5, "kl": 0.01 * i} for i in range(1, 6)]
    png = plot_curves(rows, tmp_path / "grpo.png", "grpo")
    assert png and png.read_bytes()[:4] == b"\x89PNG"


def test_reference_iou_monitor_scores_cited_boxes_against_the_reference():
    from deepmedix.training.stages import reference_iou, reward_functions

    completions = [
        "<think>Step 1: [10, 10, 30, 30] bright.</think> \\boxed{yes}",  # exactly the reference
        "<think>Step 1: [20, 10, 40, 30] bright.</think> \\boxed{yes}",  # half overlapping: IoU 1/3
        "<think>no box here</think> \\boxed{no}",
        [{"role": "assistant", "content": "<think>[10, 10, 30, 30]</think> \\boxed{a}"}],
    ]
    reference = [[[10, 10, 30, 30]], [[10, 10, 30, 30]], [[10, 10, 30, 30]], []]
    scores = reference_iou(completions, reference_boxes=reference)
    assert scores[:3] == pytest.approx([1.0, 1 / 3, 0.0])
    assert scores[3] is None  # no reference boxes: left out of TRL's logged mean
    # two reference boxes, one found: the mean of the best IoUs
    two = reference_iou([completions[0]], reference_boxes=[[[10, 10, 30, 30], [60, 60, 80, 80]]])
    assert two == pytest.approx([0.5])

    config = build_stage_config("grpo", {**CPU_ARGS, "reward_mode": "grounded"})
    funcs, weights = reward_functions(config)
    assert [f.__name__ for f in funcs][-2:] == ["valid_box_share", "reference_iou"]
    assert weights[-2:] == [0.0, 0.0] and len(weights) == len(funcs)


def test_stage1_grounding_targets_hold_the_reference_boxes_in_the_model_frame(tmp_path: Path):
    from deepmedix.data.phantom import make_phantom_samples
    from deepmedix.evaluation.predictions import answer_without_boxes
    from deepmedix.models.loading import model_frame
    from deepmedix.protocol import find_boxes
    from deepmedix.training.data import sample_row

    samples = make_phantom_samples(tmp_path / "p", 12, seed=4, kinds=("grounding", "presence"))
    frame = model_frame("tiny")
    resized = 0
    for sample in samples:
        row = sample_row(sample, "sft", frame, reasoning=False, image_cache=tmp_path / "cache")
        target = row["completion"][0]["content"][0]["text"]
        if sample.task == "grounding":
            w, h = sample.image.width, sample.image.height
            resized += (w, h) != frame.input_size(w, h)
            expected = [frame.to_model(b.as_list(), w, h) for b in sample.boxes]
            cited = find_boxes(target)
            assert len(cited) == len(expected) > 0, target
            for box, ref in zip(cited, expected, strict=True):
                assert box == pytest.approx(ref, abs=0.5)  # whole pixels of the model's frame
            assert answer_without_boxes(target) == sample.answer
        else:
            assert target == sample.answer  # other questions keep their plain answer
    assert resized  # phantoms larger than the frame: the boxes really were converted


def test_preprocessing_once_builds_the_batches_trl_would_and_trains_the_same(phantom: Path, tmp_path: Path):
    from deepmedix.training.preprocessed import PreprocessedRows
    from deepmedix.training.stages import build_sft_trainer

    def trainer_for(name: str, once: bool):
        config = _sft(phantom, tmp_path / name, preprocess_once=once, max_steps=4, per_device_train_batch_size=3)
        return build_sft_trainer(config, "sft")[0]

    plain, once = trainer_for("plain", False), trainer_for("once", True)
    assert isinstance(once.train_dataset, PreprocessedRows) and len(once.train_dataset) == len(plain.train_dataset)
    # samples of one image share one pixel tensor (the phantom's kinds are asked of the same image)
    pixels = {id(row["pixel_values"]) for row in once.train_dataset.rows}
    assert len(pixels) < len(once.train_dataset)
    for indices in ([0, 1, 2], [5, 3, 7, 1]):  # samples of different lengths: padding matters
        expected = plain.data_collator([plain.train_dataset[i] for i in indices])
        got = once.data_collator([once.train_dataset[i] for i in indices])
        assert set(got) == set(expected)
        for key in expected:
            assert torch.equal(got[key], expected[key]), key
    losses = []
    for trainer in (plain, once):
        trainer.train()
        losses.append([h["loss"] for h in trainer.state.log_history if "loss" in h])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)  # same batches in the same order: the same training


def test_grpo_loss_positions_match_the_ids_when_prompts_differ_in_length(tmp_path: Path, monkeypatch):
    """GRPO re-processes a batch's prompts for the loss: the image-token types must line up with the left-padded ids
    of every row, the shorter prompts too (a right-padding processor shifted them: wrong rope positions, or a shape
    error once the padding ran past the image)."""
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    from deepmedix.data.phantom import make_phantom_samples
    from deepmedix.data.schema import load_samples, sample_to_json
    from deepmedix.io import atomic_write_jsonl

    make_phantom_samples(tmp_path / "phantom", 2, seed=4, kinds=("grounding",))
    short, long = load_samples(tmp_path / "phantom" / "samples.jsonl")
    long.prompt = "Looking at both lungs from apex to base, zone by zone, " * 4 + long.prompt  # ~80 tokens longer
    data = tmp_path / "two.jsonl"
    atomic_write_jsonl(data, [sample_to_json(short), sample_to_json(long)])

    image_pad = []
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = modeling_qwen2_5_vl.Qwen2_5_VLModel.get_rope_index

    def recording(self, input_ids, mm_token_type_ids=None, *args, **kwargs):
        if not image_pad:
            image_pad.append(self.config.image_token_id)
        seen.append((input_ids.clone(), mm_token_type_ids.clone()))
        return original(self, input_ids, mm_token_type_ids, *args, **kwargs)

    monkeypatch.setattr(modeling_qwen2_5_vl.Qwen2_5_VLModel, "get_rope_index", recording)
    values = {
        **CPU_ARGS,
        "model": "tiny",
        "data": str(data),
        "output_dir": str(tmp_path / "grpo"),
        "max_steps": 1,
        "num_generations": 2,
        "per_device_train_batch_size": 4,  # both prompts in the one step
        "max_completion_length": 8,
        "beta": 0.0,
        "logging_steps": 1,
    }
    run_stage("grpo", config=build_stage_config("grpo", values))
    assert seen
    for ids, types in seen:
        assert torch.equal(types == 1, ids == image_pad[0])  # every image token typed as one, and nothing else

"""The labeler benchmarks run and report what they claim (Open-I figure and table; the CheXbert reader)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from deepmedix.labeler import OBSERVATIONS

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_openi_benchmark_writes_figure_and_numbers(shared_data, tmp_path: Path, capsys) -> None:
    bench = _load("labeler_openi")
    figure, numbers = tmp_path / "fig.png", tmp_path / "numbers.json"
    csv = shared_data / "open-i" / "indiana_reports.csv"
    assert bench.main(["--csv", str(csv), "--figure", str(figure), "--json", str(numbers)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads(numbers.read_text())
    assert [row["observation"] for row in results["positive"]] == list(OBSERVATIONS)
    cardiomegaly = next(row for row in results["positive"] if row["observation"] == "Cardiomegaly")
    assert cardiomegaly["gold"] > 300 and cardiomegaly["precision"] > 0.9
    out = capsys.readouterr().out
    assert "| Cardiomegaly |" in out and "CheXbert comparison skipped" in out


def _tiny_chexbert(tmp_path: Path, head_classes: dict[str, int]) -> tuple[Path, Path]:
    """A randomly initialised CheXbert-shaped checkpoint whose heads always answer ``head_classes``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "no", "effusion", "heart", "."]) + "\n")
    tokenizer_dir = tmp_path / "tokenizer"
    BertTokenizer(str(vocab)).save_pretrained(tokenizer_dir)
    config = BertConfig(
        vocab_size=9,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    config.save_pretrained(tokenizer_dir)  # the loader reads the BERT shape from the tokenizer folder
    torch.manual_seed(0)
    state = {f"module.bert.{k}": v for k, v in BertModel(config).state_dict().items()}
    for i, name in enumerate(OBSERVATIONS):
        n_classes = 2 if name == "No Finding" else 4
        bias = torch.zeros(n_classes)
        bias[head_classes.get(name, 0)] = 100.0  # dominates whatever the random encoder produces
        state[f"module.linear_heads.{i}.weight"] = torch.zeros(n_classes, 32)
        state[f"module.linear_heads.{i}.bias"] = bias
    checkpoint = tmp_path / "chexbert.pth"
    torch.save({"model_state_dict": state, "epoch": 1}, checkpoint)
    return checkpoint, tokenizer_dir


@pytest.mark.slow
def test_chexbert_reader_maps_head_classes_to_chexpert_values(tmp_path: Path) -> None:
    bench = _load("labeler_openi")
    # CheXbert classes: 0 blank, 1 positive, 2 negative, 3 uncertain.
    checkpoint, tokenizer = _tiny_chexbert(tmp_path, {"Cardiomegaly": 1, "Edema": 2, "Pneumonia": 3, "No Finding": 1})
    labels = bench.chexbert_labels(checkpoint, tokenizer, ["no effusion .", "heart"], min_vocab_size=0)
    assert len(labels) == 2
    for row in labels:
        assert list(row) == list(OBSERVATIONS)
        assert (row["Cardiomegaly"], row["Edema"], row["Pneumonia"], row["No Finding"]) == (1, 0, -1, 1)
        assert row["Fracture"] is None


def test_chexbert_reader_rejects_a_foreign_checkpoint(tmp_path: Path) -> None:
    import torch

    bench = _load("labeler_openi")
    checkpoint, tokenizer = _tiny_chexbert(tmp_path, {})
    state = torch.load(checkpoint, weights_only=False)
    del state["model_state_dict"]["module.linear_heads.3.bias"]
    torch.save(state, checkpoint)
    with pytest.raises(ValueError, match="not a CheXbert checkpoint"):
        bench.chexbert_labels(checkpoint, tokenizer, ["heart"], min_vocab_size=0)


def test_speed_benchmark_reports_a_rate_and_unpins_the_process(shared_data, capsys) -> None:
    import os

    bench = _load("labeler_speed")
    cores = os.sched_getaffinity(0)
    assert bench.main(["--csv", str(shared_data / "open-i" / "indiana_reports.csv"), "--repeats", "1"]) == 0
    assert "reports/s" in capsys.readouterr().out
    assert os.sched_getaffinity(0) == cores

"""Shared fixtures: one METEOR process per test worker, and a tiny CheXbert of the real architecture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The environment with the field's reference scorers (f1chexbert, radgraph; transformers < 5) that `make test` builds.
REFERENCE_PYTHON = Path(os.environ.get("DEEPMEDIX_REFERENCE_PYTHON", ROOT / ".venv-reference" / "bin" / "python"))
needs_reference = pytest.mark.skipif(
    not REFERENCE_PYTHON.exists(), reason="no reference environment (`make test` builds .venv-reference)"
)

# Words the tiny tokenizer knows; anything else becomes [UNK], which is fine for a random-weight model.
TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    ".",
    ",",
    "the",
    "heart",
    "is",
    "normal",
    "size",
    "no",
    "pleural",
    "effusion",
    "small",
    "left",
    "right",
    "mild",
    "edema",
    "pneumothorax",
    "cardiomegaly",
    "lungs",
    "are",
    "clear",
    "atelectasis",
    "consolidation",
    "opacity",
    "acute",
    "disease",
    "tube",
    "fracture",
    "and",
    "of",
    "in",
    "there",
    "##s",
    "##ed",
    "lung",
    "bibasilar",
    "stable",
    "enlarged",
    "silhouette",
    "focal",
]


@pytest.fixture(scope="session")
def nlg_scorer():
    from deepmedix.evaluation.nlg import NLGScorer

    scorer = NLGScorer()
    yield scorer
    scorer.close()


def make_tiny_chexbert(folder: Path, seed: int = 0, prefix: str = "module.") -> tuple[Path, Path]:
    """A random-weight CheXbert (tiny BertConfig) saved like the released chexbert.pth, plus its tokenizer folder."""
    import torch
    from transformers import BertConfig

    from deepmedix.evaluation.chexbert import build_chexbert_module

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        initializer_range=0.5,
    )
    config.save_pretrained(folder)
    torch.manual_seed(seed)
    model = build_chexbert_module(config)
    # Wide random weights and bias-free heads, so that different texts land in different classes.
    with torch.no_grad():
        for head in model.linear_heads:
            head.bias.zero_()
    state = {prefix + k: v for k, v in model.state_dict().items()}
    ckpt = folder / "chexbert.pth"
    torch.save({"model_state_dict": state, "epoch": 3}, ckpt)
    return ckpt, folder


@pytest.fixture(scope="session")
def tiny_chexbert(tmp_path_factory) -> tuple[Path, Path]:
    return make_tiny_chexbert(tmp_path_factory.mktemp("chexbert"))

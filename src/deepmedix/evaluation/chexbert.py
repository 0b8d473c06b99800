"""F1-CheXbert from a CheXbert checkpoint the user supplies by path: loaded strictly, labelled in batches, cached.

CheXbert (Smit et al. 2020, stanfordmlgroup/CheXbert ``bert_labeler``) is BERT-base with 13 four-way heads
(blank, positive, negative, uncertain) and one two-way head ("No Finding"), all on the [CLS] vector. The released
``chexbert.pth`` holds ``{"model_state_dict": ...}`` with keys prefixed ``module.`` (it was saved from DataParallel).
Text preparation follows CheXbert/f1chexbert: strip, newlines to spaces, runs of whitespace to one space, lower-cased
WordPiece, [CLS] … [SEP] cut at 512 tokens; an empty report is [CLS][SEP].

Written here rather than taken from f1chexbert because that package downloads its weights from a hub, accepts no
path, loads non-strictly, scores one report at a time and does not run on transformers 5.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from deepmedix.errors import ModelFileError
from deepmedix.evaluation.clinical import CHEXBERT_OBSERVATIONS
from deepmedix.evaluation.memo import memoized
from deepmedix.io import sha256_file

if TYPE_CHECKING:
    import torch
    from transformers import BertConfig, BertTokenizer

    from deepmedix.endpoints import ResponseCache

BERT_BASE_VOCAB = 30522
# Buffers older transformers saved with the weights and current ones rebuild: harmless when present.
_IGNORABLE_UNEXPECTED = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")


class CheXbertError(ModelFileError):
    """A CheXbert checkpoint or tokenizer that cannot be used; the message names the file."""


def clean_report(text: str | None) -> str:
    """CheXbert's text preparation: strip, newlines → spaces, collapse whitespace."""
    if not isinstance(text, str):
        return ""
    return re.sub(r"\s+", " ", text.strip().replace("\n", " ")).strip()


def build_chexbert_module(config: BertConfig) -> torch.nn.Module:
    """The CheXbert architecture on a BertConfig: ``bert`` + ``dropout`` + ``linear_heads`` (13×4, 1×2)."""
    import torch
    from transformers import BertModel

    class CheXbertModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(config)
            self.dropout = torch.nn.Dropout(0.1)
            hidden = config.hidden_size
            heads = [torch.nn.Linear(hidden, 4, bias=True) for _ in range(13)]
            heads.append(torch.nn.Linear(hidden, 2, bias=True))
            self.linear_heads = torch.nn.ModuleList(heads)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
            cls = self.bert(input_ids, attention_mask=attention_mask)[0][:, 0, :]
            cls = self.dropout(cls)
            return [head(cls) for head in self.linear_heads]

    return CheXbertModule()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a wrong file: text, a pickle with code, a truncated download
        raise CheXbertError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, dict) or not obj or not all(hasattr(v, "shape") for v in obj.values()):
        raise CheXbertError(f"{path}: expected a CheXbert state dict (or {{'model_state_dict': ...}})")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_tokenizer(tokenizer_dir: str | Path, min_vocab_size: int = 30000) -> BertTokenizer:
    """A local BERT tokenizer folder (vocab.txt …); refuses a placeholder with a tiny vocabulary."""
    from transformers import BertTokenizer

    tokenizer_dir = Path(tokenizer_dir)
    if not tokenizer_dir.is_dir():
        raise CheXbertError(f"{tokenizer_dir}: CheXbert tokenizer folder not found (a local bert-base-uncased copy)")
    try:
        tok = BertTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    except Exception as e:
        raise CheXbertError(f"{tokenizer_dir}: cannot load a BERT tokenizer ({e})") from e
    if len(tok) < min_vocab_size:
        raise CheXbertError(
            f"{tokenizer_dir}: tokenizer vocabulary has {len(tok)} entries, expected about {BERT_BASE_VOCAB} "
            "(bert-base-uncased); this looks like a placeholder"
        )
    return tok


class CheXbertLabeler:
    """Labels reports with a CheXbert checkpoint: ``classes(texts)`` → (n, 14) of 0 blank/1 pos/2 neg/3 uncertain."""

    def __init__(
        self,
        checkpoint: str | Path,
        tokenizer_dir: str | Path,
        min_vocab_size: int = 30000,
        device: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        import torch
        from transformers import BertConfig

        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise CheXbertError(f"{self.checkpoint}: CheXbert checkpoint not found")
        self.tokenizer = load_tokenizer(tokenizer_dir, min_vocab_size)
        cfg_file = Path(tokenizer_dir) / "config.json"
        # bert-base-uncased's defaults are BertConfig's defaults; a folder's config.json overrides them.
        config = BertConfig.from_pretrained(str(tokenizer_dir)) if cfg_file.is_file() else BertConfig()
        state = _read_state_dict(self.checkpoint)
        model = build_chexbert_module(config)
        expected = set(model.state_dict())
        unexpected = sorted(k for k in state if k not in expected and k not in _IGNORABLE_UNEXPECTED)
        missing = sorted(k for k in expected if k not in state)
        if missing or unexpected:
            raise CheXbertError(
                f"{self.checkpoint}: not a CheXbert checkpoint for this architecture — "
                f"missing keys {missing[:8]}{'…' if len(missing) > 8 else ''}, "
                f"unexpected keys {unexpected[:8]}{'…' if len(unexpected) > 8 else ''}"
            )
        state = {k: v for k, v in state.items() if k in expected}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:  # shape mismatches (e.g. a config that does not fit the weights)
            raise CheXbertError(f"{self.checkpoint}: weights do not fit the BERT config: {e}") from e
        if config.vocab_size != len(self.tokenizer):
            raise CheXbertError(
                f"{self.checkpoint}: model vocabulary {config.vocab_size} != tokenizer vocabulary {len(self.tokenizer)}"
            )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        # On a CPU larger batches only pad more (the arithmetic is the limit); a GPU wants many reports at once.
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else 16)
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = sha256_file(self.checkpoint)
        return self._fingerprint

    def classes(self, texts: Sequence[str], progress: bool = True, dedupe: bool = True) -> np.ndarray:
        """Head argmax per report and observation. Each distinct (cleaned) text is labelled once — report sets
        repeat a lot ("No acute cardiopulmonary process.") — in batches of near-equal token counts, longest first.
        """
        import torch

        cleaned = [clean_report(t) for t in texts]
        unique = list(dict.fromkeys(cleaned)) if dedupe else cleaned
        labels = np.zeros((len(unique), len(CHEXBERT_OBSERVATIONS)), dtype=np.int64)
        # Tokenised once up front so batches can be formed by token count: equal lengths pad least.
        ids = self.tokenizer(unique, truncation=True, max_length=512)["input_ids"] if unique else []
        order = sorted(range(len(unique)), key=lambda i: -len(ids[i]))
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        with torch.inference_mode():
            for idx in tqdm(batches, desc="CheXbert", unit="batch", disable=not progress or len(batches) < 2):
                enc = self.tokenizer.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
                logits = self.model(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
                labels[idx] = torch.stack([head.argmax(dim=1) for head in logits], dim=1).cpu().numpy()
        if not dedupe:
            return labels
        row = {t: i for i, t in enumerate(unique)}
        return labels[[row[t] for t in cleaned]] if cleaned else labels


def cached_classes(
    labeler: CheXbertLabeler, texts: Sequence[str], cache: ResponseCache | None = None, progress: bool = True
) -> np.ndarray:
    """``labeler.classes(texts)``, each (cleaned) text labelled once per checkpoint across runs when ``cache`` (a
    :func:`deepmedix.evaluation.memo.open_label_cache` store) is given."""
    cleaned = [clean_report(t) for t in texts]
    rows = memoized(
        lambda missing: labeler.classes(missing, progress=progress).tolist(),
        cleaned,
        cache,
        ("chexbert", labeler.fingerprint),
    )
    return np.asarray(rows, dtype=np.int64).reshape(len(texts), len(CHEXBERT_OBSERVATIONS))


def f1chexbert_style_classes(labeler: CheXbertLabeler, text: str) -> list[int]:
    """One report the way f1chexbert's ``get_label`` does it (kept as the reference the batched path is checked
    and timed against): CheXbert's ``tokenize`` — WordPiece tokens, ids with [CLS]/[SEP], cut to 511 + [SEP], an
    empty report as [CLS][SEP] — then a batch of one with an all-ones attention mask and one argmax per head."""
    import torch

    tok = labeler.tokenizer
    tokens = tok.tokenize(clean_report(text))
    if tokens:
        ids = [tok.cls_token_id, *tok.convert_tokens_to_ids(tokens), tok.sep_token_id]  # encode_plus(tokens)
        if len(ids) > 512:
            ids = ids[:511] + [tok.sep_token_id]
    else:
        ids = [tok.cls_token_id, tok.sep_token_id]
    batch = torch.LongTensor([ids]).to(labeler.device)
    mask = torch.ones(batch.shape, dtype=torch.float, device=labeler.device)
    with torch.inference_mode():
        out = labeler.model(batch, mask)
    return [int(head.argmax(dim=1).item()) for head in out]

"""SFT samples tokenised and image-processed once per dataset, instead of once per step.

TRL's vision collator (``DataCollatorForVisionLanguageModeling``) renders the chat template, decodes and resizes
every image and tokenises prompt and completion for every batch, at every step: on a small model on a CPU that is
about a tenth of a stage-1 step (docs/training.md, "Training speed"). With ``preprocess_once: true`` a stage runs
the trainer's own collator once per sample, keeps what it returns (each image's pixels once, shared by the samples
that show it), and trains on batches that a padding-only collator assembles from them: the same tensors TRL's
collator would have built for the same samples. It holds every image's pixels in memory, so it suits datasets of
thousands of images, not the paper's hundreds of thousands (TRL processes on the fly for that reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

# Sequence tensors (batch × length) the collator pads, with the value padding takes.
SEQUENCE_PADDING = {"input_ids": None, "attention_mask": 0, "labels": -100, "mm_token_type_ids": 0}


class PreprocessedRows(Dataset):
    """One processed sample per item: its unpadded token sequences and its images' pixel rows."""

    def __init__(self, rows: list[dict[str, torch.Tensor]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.rows[index]


@dataclass
class PaddingCollator:
    """Right-pads preprocessed samples into a batch, as TRL's collator lays out a prompt-completion batch."""

    pad_token_id: int

    def __call__(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        length = max(r["input_ids"].shape[0] for r in rows)
        batch: dict[str, torch.Tensor] = {}
        for key, pad in SEQUENCE_PADDING.items():
            if key not in rows[0]:
                continue
            value = self.pad_token_id if pad is None else pad
            out = torch.full((len(rows), length), value, dtype=rows[0][key].dtype)
            for i, r in enumerate(rows):
                out[i, : r[key].shape[0]] = r[key]
            batch[key] = out
        for key in ("pixel_values", "image_grid_thw"):
            if key in rows[0]:
                batch[key] = torch.cat([r[key] for r in rows])
        return batch


def _image_keys(dataset: Any) -> list[tuple[str, ...] | None]:
    """Per sample, the paths of its images (None when an image has no path): samples of one image share pixels."""
    from datasets import Image, List

    if "images" not in getattr(dataset, "column_names", []):
        return [None] * len(dataset)
    raw = dataset.cast_column("images", List(Image(decode=False)))["images"]
    return [tuple(im["path"] for im in images) if all(im.get("path") for im in images) else None for images in raw]


def preprocess_once(
    dataset: Any, collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]], pad_token_id: int
) -> tuple[PreprocessedRows, PaddingCollator]:
    """Run ``collator`` (the trainer's) on every sample alone; returns the processed samples and their collator."""
    from rich.progress import track

    keys = _image_keys(dataset)
    pixels: dict[tuple[str, ...], torch.Tensor] = {}
    rows: list[dict[str, torch.Tensor]] = []
    for index in track(
        range(len(dataset)), description="preprocessing once", transient=True, disable=len(dataset) < 200
    ):
        one = collator([dataset[index]])
        row = {k: v[0] for k, v in one.items() if k in SEQUENCE_PADDING}
        if "image_grid_thw" in one:
            row["image_grid_thw"] = one["image_grid_thw"]
        if "pixel_values" in one:
            key = keys[index]
            if key is not None:  # one tensor per image file, shared by every sample that shows it
                row["pixel_values"] = pixels.setdefault(key, one["pixel_values"])
            else:
                row["pixel_values"] = one["pixel_values"]
        rows.append(row)
    return PreprocessedRows(rows), PaddingCollator(pad_token_id)


__all__ = ["PaddingCollator", "PreprocessedRows", "preprocess_once"]

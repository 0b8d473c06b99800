"""The Qwen VL special tokens every model of this project carries, and the ones it must never generate."""

from __future__ import annotations

from typing import Any

# Qwen2.5-VL's special tokens, in the order Qwen's tokenizer adds them after its BPE vocabulary.
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
REASONING_TOKENS = ("<think>", "</think>")
# Tokens a model must never generate: a generated image/video placeholder breaks the next forward pass.
SUPPRESSED_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>")


def suppressed_token_ids(tokenizer: Any) -> list[int]:
    """Ids of :data:`SUPPRESSED_TOKENS` that ``tokenizer`` knows."""
    ids = []
    for tok in SUPPRESSED_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
            ids.append(tid)
    return ids


def generation_defaults(tokenizer: Any) -> dict[str, Any]:
    """Generation settings every model of this project is saved with (placeholders suppressed)."""
    eos = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    return {
        "eos_token_id": eos,
        "pad_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "suppress_tokens": suppressed_token_ids(tokenizer),
        "do_sample": False,
    }

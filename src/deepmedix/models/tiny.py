"""A tiny random Qwen2.5-VL built locally from configs: the model every test and demo runs on without a hub.

About 1 MB: a byte-level BPE tokenizer (vocab 512) trained on a bundled corpus of report phrases and the protocol's
prompt text, wrapped as Qwen2Tokenizer with Qwen's special tokens plus ``<think>``/``</think>``; a 2-layer text
model (hidden 64) and a 2-block vision tower (patch 14, merge 2) whose images are resized to 112×112 (16 tokens).
It is saved with ``save_pretrained`` and reloads with ``AutoModelForImageTextToText`` / ``AutoProcessor`` once
:mod:`deepmedix.models.processors` has registered the processor class.
"""

from __future__ import annotations

import json
from pathlib import Path

from deepmedix.errors import OptionError
from deepmedix.models.embedded import EmbeddedModel
from deepmedix.models.processors import ImageTextQwen2_5_VLProcessor, ImageTextQwen3VLProcessor
from deepmedix.models.special_tokens import QWEN_SPECIAL_TOKENS, REASONING_TOKENS, generation_defaults
from deepmedix.protocol import REASONING_SUFFIX, TASK_PROMPTS

CORPUS_FILE = Path(__file__).with_name("tiny_corpus.txt")
TINY_NAME = "tiny"
# Bumped whenever the tiny model's construction changes, so a cached copy built by older code is rebuilt.
TINY_BUILD_VERSION = 1
BUILD_MARKER = "deepmedix-tiny.json"
VOCAB_SIZE = 512


def _corpus_lines() -> list[str]:
    lines = CORPUS_FILE.read_text(encoding="utf-8").splitlines()
    return [*lines, REASONING_SUFFIX, *TASK_PROMPTS.values()]


def build_tiny_tokenizer():
    """A Qwen2Tokenizer whose BPE merges are trained here, on the bundled corpus (no download)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AddedToken, Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    # The same pre-tokenisation as Qwen2Tokenizer, so the trained merges mean the same thing after wrapping.
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(QWEN_SPECIAL_TOKENS) - len(REASONING_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus_lines(), trainer=trainer)
    model_json = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_json["merges"]]

    tokenizer = Qwen2Tokenizer(
        vocab=model_json["vocab"],
        merges=merges,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS], special_tokens=True
    )
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in REASONING_TOKENS])
    return tokenizer


def tiny_config(tokenizer):
    """The Qwen2.5-VL config of the tiny model, its token ids taken from ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    hidden, heads = 64, 4
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "max_window_layers": 2,
            # mrope splits half the head dimension into (temporal, height, width) sections.
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "out_hidden_size": hidden,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def tiny_qwen3_config(tokenizer):
    """A Qwen3-VL config of the same size (patch 16, one deepstack layer), token ids from ``tokenizer``."""
    from transformers import Qwen3VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    return Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_tiny_model(out_dir: str | Path, seed: int = 0, family: str = "qwen2_5_vl") -> Path:
    """Build a tiny random model (model, tokenizer, processor, generation config) into ``out_dir``.

    ``family`` is ``"qwen2_5_vl"`` (the default, the paper's base: patch 14, 112×112 inputs) or ``"qwen3_vl"``
    (patch 16, 128×128 inputs); both give 16 image tokens per square image.
    """
    import torch
    from transformers import GenerationConfig
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from trl import chat_template_utils

    if family not in ("qwen2_5_vl", "qwen3_vl"):
        raise OptionError(f"family must be 'qwen2_5_vl' or 'qwen3_vl', got {family!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    # The stock template, byte for byte: TRL recognises the family by its text (and swaps in a training template
    # that marks assistant tokens).
    template = getattr(chat_template_utils, f"{family}_chat_template")
    tokenizer.chat_template = template
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration as model_cls

        patch, processor_cls, config = 14, ImageTextQwen2_5_VLProcessor, tiny_config(tokenizer)
        norm = {}
    else:
        from transformers import Qwen3VLForConditionalGeneration as model_cls

        patch, processor_cls, config = 16, ImageTextQwen3VLProcessor, tiny_qwen3_config(tokenizer)
        norm = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    side = patch * 2 * 4  # 4×4 merged patches
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=(side // 2) ** 2,
        max_pixels=side * side,
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        **norm,
    )
    processor = processor_cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config = GenerationConfig(**generation_defaults(tokenizer))
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    (out_dir / BUILD_MARKER).write_text(
        json.dumps({"version": TINY_BUILD_VERSION, "family": family, "seed": seed}), encoding="utf-8"
    )
    return out_dir


TINY = EmbeddedModel(
    name=TINY_NAME,
    builder=build_tiny_model,
    folder="tiny-qwen2.5-vl",
    build_version=TINY_BUILD_VERSION,
    summary="~225K parameters: text hidden 64 × 2 layers, vision hidden 32 × 2 blocks, 112×112 inputs (fast tests)",
)


def tiny_model_path() -> Path:
    """The tiny model's folder, built once into ``$DEEPMEDIX_CACHE`` (or ``~/.cache/deepmedix``)."""
    return TINY.path()


__all__ = ["TINY", "TINY_NAME", "build_tiny_model", "build_tiny_tokenizer", "generation_defaults", "tiny_model_path"]

"""A small random Qwen2.5-VL built locally from configs: big enough to learn grounded reasoning on phantom
radiographs within minutes on two CPU cores (the demo's default), small enough to build in a second.

About 3.9 M parameters: the tiny model's tokenizer (byte-level BPE, vocab 512, trained on the bundled corpus); a
4-layer text model (hidden 256, 8 heads / 4 KV heads); a 4-block vision tower (hidden 128, patch 14, merge 2);
images resized to 112×112 (16 image tokens), as for the tiny model.
"""

from __future__ import annotations

from pathlib import Path

from deepmedix.models.embedded import EmbeddedModel, write_build_marker
from deepmedix.models.processors import ImageTextQwen2_5_VLProcessor
from deepmedix.models.special_tokens import QWEN_SPECIAL_TOKENS, generation_defaults
from deepmedix.models.tiny import build_tiny_tokenizer

SMALL_NAME = "small"
# Bumped whenever the small model's construction changes, so a cached copy built by older code is rebuilt.
SMALL_BUILD_VERSION = 1
TEXT_HIDDEN = 256
VISION_HIDDEN = 128
PATCH = 14
MERGE = 2
SIDE = PATCH * MERGE * 4  # 4×4 merged patches: 112×112 inputs, 16 image tokens


def small_config(tokenizer):
    """The Qwen2.5-VL config of the small model, its token ids taken from ``tokenizer``."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    heads = 8
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 2 * TEXT_HIDDEN,
            "num_hidden_layers": 4,
            "num_attention_heads": heads,
            "num_key_value_heads": 4,
            "max_position_embeddings": 4096,
            "max_window_layers": 4,
            # mrope splits half the head dimension (32 / 2 = 16) into (temporal, height, width) sections.
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 4,
            "hidden_size": VISION_HIDDEN,
            "intermediate_size": 2 * VISION_HIDDEN,
            "num_heads": 4,
            "patch_size": PATCH,
            "spatial_merge_size": MERGE,
            "temporal_patch_size": 2,
            "window_size": SIDE,
            "out_hidden_size": TEXT_HIDDEN,
            "fullatt_block_indexes": [1, 3],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )


def build_small_model(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the small random model (model, tokenizer, processor, generation config) into ``out_dir``."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from trl.chat_template_utils import qwen2_5_vl_chat_template

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    # The stock template, byte for byte: TRL recognises the family by its text.
    tokenizer.chat_template = qwen2_5_vl_chat_template
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=(SIDE // 2) ** 2,
        max_pixels=SIDE * SIDE,
        patch_size=PATCH,
        merge_size=MERGE,
        temporal_patch_size=2,
    )
    processor = ImageTextQwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=qwen2_5_vl_chat_template
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(small_config(tokenizer))
    model.generation_config = GenerationConfig(**generation_defaults(tokenizer))
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    write_build_marker(out_dir, SMALL_NAME, SMALL_BUILD_VERSION, family="qwen2_5_vl", seed=seed)
    return out_dir


SMALL = EmbeddedModel(
    name=SMALL_NAME,
    builder=build_small_model,
    folder="small-qwen2.5-vl",
    build_version=SMALL_BUILD_VERSION,
    summary="~3.9M parameters: text hidden 256 × 4 layers, vision hidden 128 × 4 blocks, 112×112 inputs (the demo)",
)


def small_model_path() -> Path:
    """The small model's folder, built once into ``$DEEPMEDIX_CACHE`` (or ``~/.cache/deepmedix``)."""
    return SMALL.path()


__all__ = ["SMALL", "SMALL_NAME", "build_small_model", "small_config", "small_model_path"]

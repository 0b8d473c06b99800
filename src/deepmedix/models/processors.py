"""Image-only processors for the Qwen VL families, registered with ``AutoProcessor``.

Without torchvision the stock Qwen processors fail in ``__init__`` (their video processor needs it); these
subclasses take no video processor. Registering them makes ``AutoProcessor.from_pretrained`` return a real
multimodal processor for the folders this project saves, instead of a bare tokenizer.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen3VLConfig
from transformers.image_utils import SizeDict
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor


class ImageTextQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL's processor for images and text only (no video processor, so no torchvision needed)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


class ImageTextQwen3VLProcessor(Qwen3VLProcessor):
    """Qwen3-VL's processor for images and text only (no video processor, so no torchvision needed)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


IMAGE_ONLY_PROCESSORS: dict[str, type] = {
    "qwen2_5_vl": ImageTextQwen2_5_VLProcessor,
    "qwen3_vl": ImageTextQwen3VLProcessor,
}


def register_processors() -> None:
    """Make ``AutoProcessor`` know the image-only processors (idempotent).

    Folders saved by this project name the image-only class, which ``AutoProcessor`` finds once it is registered.
    Hub checkpoints name the stock class explicitly, so registering does not change what they load.
    """
    AutoProcessor.register(Qwen2_5_VLConfig, ImageTextQwen2_5_VLProcessor, exist_ok=True)
    AutoProcessor.register(Qwen3VLConfig, ImageTextQwen3VLProcessor, exist_ok=True)


def set_pixel_bounds(processor: Any, min_pixels: int | None = None, max_pixels: int | None = None) -> None:
    """Set the image processor's pixel bounds (what ``smart_resize`` keeps an image within)."""
    image_processor = processor.image_processor
    size = dict(image_processor.size) if image_processor.size is not None else {}
    size = {k: v for k, v in size.items() if v is not None and k not in ("min_pixels", "max_pixels")}
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    image_processor.size = SizeDict(**size)


# Importing this module is what makes ``AutoProcessor.from_pretrained`` work on the folders this project saves.
register_processors()

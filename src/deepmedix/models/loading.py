"""Loading a vision-language model and its processor by name: an embedded model (``"tiny"``, ``"small"``), a hub id,
or a local folder.

Supported families: Qwen2.5-VL (the paper's base) and Qwen3-VL; where torchvision is missing, the image-only
processors of :mod:`deepmedix.models.processors` stand in for the stock ones.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from deepmedix.data.frame import PAPER_MAX_PIXELS, ModelFrame, frame_for
from deepmedix.errors import ModelFileError
from deepmedix.models.processors import IMAGE_ONLY_PROCESSORS, set_pixel_bounds
from deepmedix.models.registry import EMBEDDED_MODELS
from deepmedix.models.special_tokens import suppressed_token_ids

log = logging.getLogger(__name__)


def _torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    return is_torchvision_available()


def resolve_model_path(name_or_path: str | Path) -> str:
    """An embedded model's name (``"tiny"``, ``"small"``) → its locally built folder; a folder → itself; anything
    else is a hub id."""
    text = str(name_or_path)
    if text in EMBEDDED_MODELS:
        return str(EMBEDDED_MODELS[text].path())
    path = Path(text).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a model folder (no config.json)")
        return str(path)
    return text


def _load_config(name_or_path: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name_or_path)
    except OSError as e:
        raise FileNotFoundError(
            f"model {name_or_path!r}: not a local folder and not available from the hub cache ({e.__class__.__name__})"
        ) from None


def _model_class(config):
    from transformers import AutoModelForImageTextToText

    model_type = getattr(config, "model_type", "")
    if model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration
    if model_type == "qwen3_vl":
        from transformers import Qwen3VLForConditionalGeneration

        return Qwen3VLForConditionalGeneration
    return AutoModelForImageTextToText


def _is_local(path: str) -> bool:
    return Path(path).is_dir()


def load_processor(name_or_path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The processor of a model (image-only subclass where torchvision is missing).

    A hub checkpoint gets the paper's bound of 512×512 pixels unless ``max_pixels`` says otherwise (SPEC §1: the
    authors' boxes live in at most 504×504); a local folder keeps the bounds it was saved with.
    """
    from transformers import AutoProcessor

    path = resolve_model_path(name_or_path)
    model_type = getattr(_load_config(path), "model_type", "")
    if not _torchvision_available() and model_type in IMAGE_ONLY_PROCESSORS:
        # A hub checkpoint names the stock class, which cannot be built here: build the image-only one directly.
        processor = IMAGE_ONLY_PROCESSORS[model_type].from_pretrained(path)
    else:
        processor = AutoProcessor.from_pretrained(path)
    if not hasattr(processor, "image_processor"):
        raise ModelFileError(
            f"model {name_or_path!r}: its processor has no image processor (got {type(processor).__name__})"
        )
    if max_pixels is None and not _is_local(path):
        max_pixels = PAPER_MAX_PIXELS
    if min_pixels is not None or max_pixels is not None:
        set_pixel_bounds(processor, min_pixels, max_pixels)
    return processor


def load_model_and_processor(
    name_or_path: str | Path,
    dtype: Any = "auto",
    device: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    **model_kwargs: Any,
) -> tuple[Any, Any]:
    """Load ``(model, processor)`` for ``"tiny"``, a hub id or a local folder.

    ``dtype`` is passed to ``from_pretrained`` ("auto" keeps the checkpoint's); ``device`` ("cpu", "cuda", "cuda:1")
    moves the model after loading; ``min_pixels``/``max_pixels`` override the processor's bounds (see
    :func:`load_processor`). The image-placeholder tokens are kept suppressed in the generation config: a
    generated ``<|image_pad|>`` would break the next forward pass.
    """
    path = resolve_model_path(name_or_path)
    config = _load_config(path)
    cls = _model_class(config)
    model = cls.from_pretrained(path, dtype=dtype, **model_kwargs)
    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    ensure_suppressed_placeholders(model, processor)
    if device is not None:
        model = model.to(device)
    model.eval()
    return model, processor


def ensure_suppressed_placeholders(model, processor) -> None:
    """Add the vision placeholder tokens to ``generation_config.suppress_tokens`` if missing."""
    tokenizer = getattr(processor, "tokenizer", processor)
    gen = getattr(model, "generation_config", None)
    if gen is None:
        return
    current = list(gen.suppress_tokens or [])
    for tid in suppressed_token_ids(tokenizer):
        if tid not in current:
            current.append(tid)
    gen.suppress_tokens = current
    if gen.pad_token_id is None and tokenizer.pad_token_id is not None:
        gen.pad_token_id = tokenizer.pad_token_id


def processor_frame(model_type: str, processor) -> ModelFrame:
    """The frame of a loaded processor: its family's, with the bounds it actually resizes within."""
    size = processor.image_processor.size
    return frame_for(model_type, min_pixels=size.get("shortest_edge"), max_pixels=size.get("longest_edge"))


def model_frame(name_or_path_or_config: Any) -> ModelFrame:
    """The box frame of a model: its family's frame (``deepmedix.data.frame``) with its processor's pixel bounds.

    Accepts ``"tiny"``, a folder, a hub id, a config, or a loaded model. A hub id gets the paper's bounds (as
    :func:`load_processor` applies them); a config alone carries no processor, so it gets its family's defaults.
    """
    obj = name_or_path_or_config
    if hasattr(obj, "config") and hasattr(obj.config, "model_type"):  # a loaded model: find its folder
        source = getattr(obj, "name_or_path", "") or ""
        if source and _is_local(source):
            return model_frame(source)
        obj = obj.config
    if hasattr(obj, "model_type"):
        return frame_for(obj.model_type)
    path = resolve_model_path(str(obj))
    if not _is_local(path):
        return frame_for(path)  # the hub id names the family; bounds are the paper's
    config = _load_config(path)
    return processor_frame(config.model_type, load_processor(path))


__all__ = [
    "ensure_suppressed_placeholders",
    "load_model_and_processor",
    "load_processor",
    "model_frame",
    "processor_frame",
    "resolve_model_path",
]

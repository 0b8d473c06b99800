"""Models: loading by name (an embedded model such as ``"tiny"``, a hub id or a folder), the image-only processors,
the locally built embedded models, and each model's box frame. Training and inference both load through here."""

from deepmedix.models.loading import (
    ensure_suppressed_placeholders,
    load_model_and_processor,
    load_processor,
    model_frame,
    processor_frame,
    resolve_model_path,
)

__all__ = [
    "ensure_suppressed_placeholders",
    "load_model_and_processor",
    "load_processor",
    "model_frame",
    "processor_frame",
    "resolve_model_path",
]

"""Inference and serving: grounded answers with boxes in original-image pixels, overlays drawn on the X-ray,
resumable batch prediction, and an HTTP API with a viewer.

Heavy libraries (torch, transformers, vLLM) are imported only when a backend is built.
"""

from __future__ import annotations

__all__ = ["api", "backends", "overlay", "predict", "server"]

"""The embedded models by name: ``"tiny"`` (fast unit tests) and ``"small"`` (the demo), each built locally."""

from __future__ import annotations

from pathlib import Path

from deepmedix.errors import OptionError
from deepmedix.models.embedded import EmbeddedModel
from deepmedix.models.small import SMALL
from deepmedix.models.tiny import TINY

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (TINY, SMALL)}


def embedded_model_path(name: str) -> Path:
    """The cached folder of the embedded model ``name`` (built on first use)."""
    try:
        return EMBEDDED_MODELS[name].path()
    except KeyError:
        raise OptionError(f"no embedded model named {name!r}; one of {sorted(EMBEDDED_MODELS)}") from None


__all__ = ["EMBEDDED_MODELS", "embedded_model_path"]

"""How to reach a model: one dataclass for the backend and its generation settings, which is also the flags of
``infer``, ``predict``, ``serve`` and ``bench`` (light: no torch, so registering commands stays cheap)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from deepmedix.errors import OptionError

BackendName = Literal["transformers", "vllm", "openai"]
BACKENDS: tuple[str, ...] = ("transformers", "vllm", "openai")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class BackendOptions:
    """The model, the engine that runs it, and the generation settings (greedy unless ``temperature`` > 0)."""

    model: str = field(metadata=_help('"tiny", a local checkpoint, a hub id, or the served model name'))
    backend: BackendName = field(default="transformers", metadata=_help("generation engine"))
    max_new_tokens: int = field(default=512, metadata=_help("new tokens per answer at most"))
    temperature: float = field(default=0.0, metadata=_help("0 = greedy (default); > 0 samples"))
    top_p: float = field(default=1.0, metadata=_help("nucleus sampling mass (when sampling)"))
    top_k: int | None = field(default=None, metadata=_help("top-k sampling (when sampling)"))
    seed: int | None = field(default=None, metadata=_help("sampling seed"))
    input_max_pixels: int | None = field(
        default=None, metadata=_help("pixels the model sees at most (default: the model's processor setting)")
    )
    device: str | None = field(
        default=None, metadata=_help("transformers: cpu, cuda, cuda:1 ... (default: best available)")
    )
    dtype: str = field(default="auto", metadata=_help("transformers: auto, bfloat16, float16, float32"))
    base_url: str | None = field(default=None, metadata=_help("openai: the endpoint, e.g. http://127.0.0.1:8001/v1"))
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=_help("openai: environment variable with the key"))
    max_concurrency: int = field(default=4, metadata=_help("openai: requests in flight"))
    requests_per_minute: float | None = field(default=None, metadata=_help("openai: rate limit"))
    cache_path: Path | None = field(
        default=None, metadata={"skip": True}
    )  # openai: replies cached by content (predict puts it beside its output)
    frame_model: str | None = field(
        default=None,
        metadata=_help(
            "openai: the model family for the box frame when the served name does not say it "
            "(e.g. Qwen/Qwen2.5-VL-7B-Instruct)"
        ),
    )

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OptionError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.max_new_tokens < 1:
            raise OptionError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise OptionError(f"--temperature must be ≥ 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise OptionError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.max_concurrency < 1:
            raise OptionError(f"--max-concurrency must be at least 1, got {self.max_concurrency}")
        if self.backend == "openai" and not self.base_url:
            raise OptionError("backend 'openai' needs --base-url (the endpoint to send images to)")


__all__ = ["BACKENDS", "BackendName", "BackendOptions"]

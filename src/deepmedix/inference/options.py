"""How to reach a model: one dataclass for the backend and its generation settings, which is also the flags of
``infer``, ``predict``, ``serve`` and ``bench``, and one for the model server's address and limits (light: no torch,
no FastAPI, so registering commands stays cheap)."""

from __future__ import annotations

import math
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
    max_new_tokens: int | None = field(
        default=None,
        metadata=_help(
            "new tokens per answer at most, for every task (default: by task — reports 1024, VQA and grounding 512; "
            "serve: also the most a request may ask for)"
        ),
    )
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
    prompt_template: Path | None = field(
        default=None,
        metadata={
            "metavar": "FILE.jinja",
            "help": "Jinja template of the reasoning prompt's text, given the question as 'content' (e.g. a model "
            "release's own template; default: the one a model folder was trained on, its reasoning_prompt.jinja, else "
            "the built-in one)",
        },
    )
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
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise OptionError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:  # NaN compares false
            raise OptionError(f"--temperature must be ≥ 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:  # NaN compares false
            raise OptionError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.max_concurrency < 1:
            raise OptionError(f"--max-concurrency must be at least 1, got {self.max_concurrency}")
        if self.backend == "openai" and not self.base_url:
            raise OptionError("backend 'openai' needs --base-url (the endpoint to send images to)")


@dataclass
class ServeOptions:
    """The model server: where it listens, what it accepts, and how long anyone waits (``deepmedix serve``'s flags).

    The largest answer a request may ask for is the backend's ``--max-new-tokens`` (default: the largest task
    budget, ``deepmedix.protocol.LARGEST_NEW_TOKENS``)."""

    host: str = field(default="127.0.0.1", metadata=_help("address to bind (default 127.0.0.1: this machine only)"))
    port: int = field(default=8000, metadata=_help("port to listen on"))
    samples: Path | None = field(default=None, metadata=_help("samples JSONL to pick from in the viewer"))
    max_upload_mb: float = field(
        default=20.0, metadata=_help("largest request body: an upload, or a /v1 JSON body with its images (MB)")
    )
    # A large digital CXR is ~3000×3500 (10.5 M pixels): generous, but bounded.
    max_pixels: int = field(default=50_000_000, metadata=_help("largest accepted image (width × height)"))
    max_side: int = field(default=16_384, metadata=_help("largest accepted image side in pixels"))
    max_question_chars: int = field(default=4_000, metadata=_help("longest question of /api/answer (characters)"))
    max_prompt_chars: int = field(
        default=16_000, metadata=_help("longest /v1 request: the text of all its messages together (characters)")
    )
    max_images: int = field(default=2, metadata=_help("images per /v1 request at most"))
    time_limit_s: float = field(
        default=120.0,
        metadata={"flag": "--time-limit", "metavar": "SECONDS", "help": "generation time per request at most"},
    )
    queue_wait_s: float = field(
        default=30.0,
        metadata={
            "flag": "--queue-wait",
            "metavar": "SECONDS",
            "help": "longest wait for the model behind other requests (then 503)",
        },
    )
    max_queued: int = field(default=16, metadata=_help("requests waiting for the model at most (more: 503 at once)"))
    shutdown_timeout_s: float = field(
        default=5.0,
        metadata={
            "flag": "--shutdown-timeout",
            "metavar": "SECONDS",
            "help": "on SIGTERM/SIGINT, how long open connections may take to finish",
        },
    )
    served_model_name: str | None = field(
        default=None, metadata=_help("the model's name on /v1 (default: the --model value)")
    )
    server_api_key_env: str | None = field(
        default=None,
        metadata={
            "metavar": "NAME",
            "help": "environment variable holding the key /v1 clients must send as 'Authorization: Bearer KEY'",
        },
    )
    allowed_image_dir: list[Path] = field(
        default_factory=list,
        metadata={"metavar": "DIR", "help": "folders whose images /v1 requests may name by file:// URL"},
    )

    def __post_init__(self) -> None:
        positive = {
            "--port": self.port,
            "--max-upload-mb": self.max_upload_mb,
            "--max-pixels": self.max_pixels,
            "--max-side": self.max_side,
            "--max-question-chars": self.max_question_chars,
            "--max-prompt-chars": self.max_prompt_chars,
            "--max-images": self.max_images,
            "--time-limit": self.time_limit_s,
            "--queue-wait": self.queue_wait_s,
            "--max-queued": self.max_queued,
            "--shutdown-timeout": self.shutdown_timeout_s,
        }
        if self.port > 65_535:
            raise OptionError(f"--port must be at most 65535, got {self.port}")
        for flag, value in positive.items():
            if not (value > 0 and math.isfinite(value)):  # also refuses NaN, which compares false
                raise OptionError(f"{flag} must be a positive number, got {value}")
        if self.server_api_key_env is not None and not self.server_api_key_env.strip():
            raise OptionError("--server-api-key-env must name an environment variable")
        self.allowed_image_dir = [Path(d) for d in self.allowed_image_dir]


__all__ = ["BACKENDS", "BackendName", "BackendOptions", "ServeOptions"]

"""The OpenAI chat-completions protocol on the model server: request models, the conversation the model is shown,
images from data: and file: URLs, and the chat.completion reply.

How a client's messages become the model's prompt: an OpenAI client sends its own full prompt, so its turns are
rendered by the model's chat template as they are — no deepmedix instruction and no reasoning suffix is added,
unless the request asks with ``"deepmedix": {"reasoning": true}`` (the last user turn's text is then rendered by the
server's grounded-reasoning prompt template, as ``/api/answer`` and training ask). System
(and developer) text is put at the start of the first user turn, because the model was trained under its
template's default system prompt. Images may appear in user turns only, where they are shown in the order given.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from deepmedix.inference.backends import GenerationConfig, GenerationRequest
from deepmedix.protocol import PromptTemplate, build_user_text

MAX_MESSAGES = 64  # a judge's retry is four; a chat longer than this is not a chest X-ray question
MAX_PARTS = 256  # content parts in all messages: bounds the work of rendering a request full of empty parts
SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.manual_seed accepts


class ApiError(Exception):
    """A request this server refuses: HTTP ``status``, a message, and the request field (``param``) at fault."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param


class _Strict(BaseModel):
    # NaN and ±Infinity are not numbers a request may carry (Python's JSON reader accepts them).
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class ImageURL(_Strict):
    url: str
    detail: str | None = None


class ContentPart(_Strict):
    type: str
    text: str | None = None
    image_url: ImageURL | None = None


class ChatMessage(_Strict):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None


class DeepmedixOptions(_Strict):
    reasoning: bool = Field(False, description="end the last user turn with the grounded-reasoning instruction")


class ChatCompletionRequest(_Strict):
    """The fields this server reads; others are accepted and ignored (``stream``, ``n`` > 1, ``tools``, ``stop``
    and ``logprobs`` are refused)."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    n: int | None = Field(None, ge=1)
    stream: bool | None = None
    stop: str | list[str] | None = None
    tools: list[Any] | None = None
    logprobs: bool | None = None
    deepmedix: DeepmedixOptions | None = None


@dataclass
class ChatLimits:
    max_new_tokens: int  # the server's most, and the default
    max_prompt_chars: int
    max_images: int
    max_image_bytes: int
    allowed_image_dirs: list[Path]


def check_request(req: ChatCompletionRequest, served_names: list[str], limits: ChatLimits) -> None:
    """Refuse what this server does not do, before any image is read."""
    if req.model not in served_names:
        raise ApiError(404, f"model {req.model!r} is not served here; this server serves {served_names[0]!r}", "model")
    if req.stream:
        raise ApiError(400, "streaming is not supported; send stream: false (or leave it out)", "stream")
    if req.n not in (None, 1):
        raise ApiError(400, f"n must be 1 (one completion per request), got {req.n}", "n")
    if req.tools:
        raise ApiError(400, "tools are not supported", "tools")
    if req.stop:
        raise ApiError(400, "stop sequences are not supported", "stop")
    if req.logprobs:
        raise ApiError(400, "logprobs are not supported", "logprobs")
    asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if asked is not None and asked > limits.max_new_tokens:
        param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
        raise ApiError(
            422,
            f"{param} {asked} is more than this server gives one answer ({limits.max_new_tokens}, --max-new-tokens)",
            param,
        )
    chars = 0
    images = 0
    parts = sum(len(m.content) for m in req.messages if isinstance(m.content, list))
    if parts > MAX_PARTS:
        raise ApiError(413, f"{parts} content parts in one request, more than {MAX_PARTS}", "messages")
    for i, m in enumerate(req.messages):
        if m.role not in ("system", "developer", "user", "assistant"):
            raise ApiError(
                400, f"messages[{i}].role {m.role!r} is not supported (system, developer, user, assistant)", "messages"
            )
        if isinstance(m.content, str):
            chars += len(m.content)
            continue
        for j, part in enumerate(m.content or []):
            where = f"messages[{i}].content[{j}]"
            if part.type == "text":
                if part.text is None:
                    raise ApiError(400, f"{where}: a text part needs 'text'", "messages")
                chars += len(part.text)
            elif part.type == "image_url":
                if m.role != "user":
                    raise ApiError(400, f"{where}: images are accepted in user messages only", "messages")
                if part.image_url is None:
                    raise ApiError(400, f"{where}: an image_url part needs 'image_url': {{'url': ...}}", "messages")
                images += 1
            else:
                raise ApiError(400, f"{where}.type {part.type!r} is not supported (text, image_url)", "messages")
    if chars > limits.max_prompt_chars:
        raise ApiError(
            413,
            f"the messages hold {chars} characters of text, more than this server accepts "
            f"({limits.max_prompt_chars}, --max-prompt-chars)",
            "messages",
        )
    if images > limits.max_images:
        raise ApiError(413, f"{images} images in one request, more than {limits.max_images} (--max-images)", "messages")
    if req.messages[-1].role != "user":
        raise ApiError(400, "the last message must be the user's (the model answers it)", "messages")


def generation_for(req: ChatCompletionRequest, defaults: GenerationConfig) -> GenerationConfig:
    """The server's settings, with the request's where it gives them (after :func:`check_request`)."""
    asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    return replace(
        defaults,
        max_new_tokens=asked or defaults.max_new_tokens,
        temperature=defaults.temperature if req.temperature is None else req.temperature,
        top_p=defaults.top_p if req.top_p is None else req.top_p,
        seed=defaults.seed if req.seed is None else req.seed,
    )


def build_generation_request(
    req: ChatCompletionRequest,
    limits: ChatLimits,
    decode: Callable[[bytes, str], Image.Image],
    defaults: GenerationConfig,
    template: PromptTemplate | None = None,
) -> GenerationRequest:
    """The request as the backend takes it: the conversation with image slots, and the images read by
    ``decode(data, name)`` (which checks their size) from the URLs. ``template``: the grounded-reasoning prompt a
    request asks for with ``deepmedix.reasoning`` (default: the built-in one). Call :func:`check_request` first."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    images: list[Image.Image] = []
    for i, m in enumerate(req.messages):
        raw = [ContentPart(type="text", text=m.content)] if isinstance(m.content, str) else (m.content or [])
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(raw):
            if part.type == "text":
                parts.append({"type": "text", "text": part.text or ""})
            else:
                assert part.image_url is not None  # check_request refused it otherwise
                name = f"messages[{i}].content[{j}]"
                images.append(decode(read_image_url(part.image_url.url, name, limits), name))
                parts.append({"type": "image"})
        if m.role in ("system", "developer"):
            system.extend(p["text"] for p in parts if p["text"])
        else:
            turns.append({"role": m.role, "content": parts})
    first_user = next(t for t in turns if t["role"] == "user")
    if system:
        _prefix_text(first_user["content"], "\n\n".join(system))
    last_user = turns[-1]
    if req.deepmedix is not None and req.deepmedix.reasoning:
        _render_reasoning(last_user["content"], template)
    question = " ".join(p["text"] for p in last_user["content"] if p["type"] == "text")
    return GenerationRequest(
        images,
        question,
        reasoning=bool(req.deepmedix and req.deepmedix.reasoning),
        conversation=turns,
        generation=generation_for(req, defaults),
        template=template,
    )


def _prefix_text(parts: list[dict[str, Any]], text: str) -> None:
    for p in parts:
        if p["type"] == "text":
            p["text"] = f"{text}\n\n{p['text']}" if p["text"] else text
            return
    parts.append({"type": "text", "text": text})


def _render_reasoning(parts: list[dict[str, Any]], template: PromptTemplate | None) -> None:
    """The turn's last text part becomes the template's rendering of it (a turn of images alone gets one)."""
    texts = [p for p in parts if p["type"] == "text"]
    if texts:
        texts[-1]["text"] = build_user_text(texts[-1]["text"], True, template)
    else:
        parts.append({"type": "text", "text": build_user_text("", True, template).strip()})


# --- images --------------------------------------------------------------------------------------------------


def read_image_url(url: str, name: str, limits: ChatLimits) -> bytes:
    """The bytes of a ``data:`` URL (base64) or of a ``file://`` URL under an allowed folder. Nothing is fetched
    from the network."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "data":
        return _data_url_bytes(url, name, limits.max_image_bytes)
    if scheme == "file":
        return _file_url_bytes(url, name, limits)
    raise ApiError(
        400,
        f"{name}: image URLs must be data: (base64) or file:// URLs; this server fetches nothing from the network",
        "messages",
    )


def _data_url_bytes(url: str, name: str, max_bytes: int) -> bytes:
    header, comma, payload = url.partition(",")
    meta = header[5:].split(";")
    if not comma or "base64" not in (m.strip().lower() for m in meta[1:]):
        raise ApiError(400, f"{name}: a data URL must be data:image/...;base64,<data>", "messages")
    mime = meta[0].strip().lower()
    if mime and not (mime.startswith("image/") or mime == "application/dicom"):
        raise ApiError(400, f"{name}: data URL of type {mime!r} is not an image", "messages")
    if len(payload) > (max_bytes + 2) // 3 * 4 + 16:
        raise ApiError(413, f"{name}: image larger than {max_bytes / 2**20:g} MB (--max-upload-mb)", "messages")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{name}: the data URL is not valid base64", "messages") from None
    if not data:
        raise ApiError(400, f"{name}: the image is empty", "messages")
    return data


def _file_url_bytes(url: str, name: str, limits: ChatLimits) -> bytes:
    if not limits.allowed_image_dirs:
        raise ApiError(
            403, f"{name}: file URLs are refused (the server names no image folder: --allowed-image-dir)", "messages"
        )
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ApiError(400, f"{name}: a file URL must name a file on this machine (file:///path)", "messages")
    try:
        path = Path(url2pathname(parts.path))
        # resolve() removes '..' and follows every link, so the test below is on where the file really is.
        resolved = path.resolve()
    except (ValueError, OSError):  # a NUL byte, a link loop
        raise ApiError(400, f"{name}: not a usable file path", "messages") from None
    if not path.is_absolute() or not any(resolved.is_relative_to(d.resolve()) for d in limits.allowed_image_dirs):
        raise ApiError(403, f"{name}: the file is outside the folders this server may read", "messages")
    try:
        # O_NOFOLLOW: a link put in place of the file after the check above is not followed; O_NONBLOCK: a FIFO
        # does not hang the server.
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise ApiError(400, f"{name}: cannot read {path.name}: {e.strerror}", "messages") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ApiError(400, f"{name}: {path.name} is not a regular file", "messages")
    with os.fdopen(fd, "rb") as f:
        data = f.read(limits.max_image_bytes + 1)
    if len(data) > limits.max_image_bytes:
        raise ApiError(
            413, f"{name}: image larger than {limits.max_image_bytes / 2**20:g} MB (--max-upload-mb)", "messages"
        )
    return data


# --- the reply -----------------------------------------------------------------------------------------------


def completion_body(
    model: str, text: str, finish_reason: str | None, prompt_tokens: int | None, completion_tokens: int | None
) -> dict[str, Any]:
    """A ``chat.completion`` object; ``usage`` when the engine counted the tokens."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason if finish_reason in ("stop", "length") else "stop",
                "logprobs": None,
            }
        ],
    }
    if prompt_tokens is not None and completion_tokens is not None:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


__all__ = [
    "ApiError",
    "ChatCompletionRequest",
    "ChatLimits",
    "build_generation_request",
    "check_request",
    "completion_body",
    "generation_for",
    "read_image_url",
]

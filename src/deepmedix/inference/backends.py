"""Generation backends behind one interface: ``Backend.generate(requests) -> list[str]``, and
``generate_detailed(requests, control)`` for a server (token counts, finish reasons, a stop at a deadline).

Every backend builds its prompt the same way training does — ``deepmedix.protocol.build_messages`` (the user text
rendered by the prompt template) put through the model's chat template (or sent as the same messages to an
OpenAI-compatible server) — so the model is asked at inference exactly what it was trained on. Each backend also
knows its model's coordinate frame, so callers can bring the boxes it cites back to original-image pixels.

Each request carries its own budget of new tokens (``GenerationRequest.max_new_tokens``, else the settings'), and
each :class:`Generation` says whether it ended by itself (``finish_reason`` "stop") or ran out of budget ("length").
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from PIL import Image

from deepmedix.data.frame import ModelFrame, frame_for
from deepmedix.endpoints import ChatEndpoint, EndpointConfig, ResponseCache, content_key, image_data_url
from deepmedix.errors import EndpointError, MissingDependencyError, OptionError
from deepmedix.protocol import LARGEST_NEW_TOKENS, PromptTemplate, build_messages, build_user_text

log = logging.getLogger(__name__)


@dataclass
class GenerationConfig:
    """Greedy by default (``temperature`` 0); a positive temperature samples. ``max_new_tokens`` None: each
    request's own budget (by its task), else :data:`~deepmedix.protocol.LARGEST_NEW_TOKENS`."""

    max_new_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    seed: int | None = None

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


@dataclass
class GenerationRequest:
    """One question to the model: its image(s) in original pixels and the instruction text.

    ``template`` renders the text of the user turn when the model is to reason (default: the built-in one).
    ``conversation``, when given, is a whole chat (an OpenAI client's) sent as it is instead of the project's prompt:
    transformers-style messages whose ``{"type": "image"}`` slots take ``images`` in order. ``generation``
    overrides the backend's settings for this request; ``max_new_tokens`` is this request's budget (it wins over
    both)."""

    images: list[Image.Image]
    prompt: str
    reasoning: bool = True
    conversation: list[dict[str, Any]] | None = None
    generation: GenerationConfig | None = None
    template: PromptTemplate | None = None
    max_new_tokens: int | None = None

    def messages(self) -> list[dict[str, Any]]:
        if self.conversation is not None:
            return self.conversation
        return build_messages(self.prompt, reasoning=self.reasoning, n_images=len(self.images), template=self.template)

    def user_text(self) -> str:
        """The text of the (last) user turn exactly as the model is sent it."""
        if self.conversation is None:
            return build_user_text(self.prompt, self.reasoning, self.template)
        users = [m for m in self.conversation if m.get("role") == "user"]
        if not users:
            return ""
        content = users[-1]["content"]
        if isinstance(content, str):
            return content
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")


@dataclass
class Generation:
    """A completion with what the engine says about it. ``finish_reason``: "stop" (the model ended), "length"
    (``max_new_tokens`` reached), the reason of a :class:`GenerationControl` that stopped it, or None (unknown).
    ``max_new_tokens`` is the budget it was given."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    max_new_tokens: int | None = None

    @property
    def truncated(self) -> bool:
        """Cut off at its budget: what it would have said next is lost."""
        return self.finish_reason == "length"


class GenerationControl:
    """Stops a generation early: at ``deadline`` (``time.monotonic()``) or when ``cancel``-led (server shutdown, a
    client given up on). Engines ask ``should_stop()`` between tokens; ``reason`` says why, and ``stopped`` whether
    an engine did stop on it (a generation that ended before is whole).

    Plain attribute writes only (no lock), so ``cancel`` is safe from a signal handler and from any thread."""

    def __init__(self, deadline: float | None = None):
        self.deadline = deadline
        self.reason: str | None = None
        self.stopped = False

    def cancel(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def should_stop(self) -> bool:
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.cancel("time")
        if self.reason is not None:
            self.stopped = True
        return self.stopped


class BackendError(EndpointError):
    """Generation failed for some requests; ``results`` holds the texts that did arrive (None where not)."""

    def __init__(self, message: str, results: list[str | None]):
        super().__init__(message)
        self.results = results


class Backend(ABC):
    """Turns requests into raw completions. ``frame`` is the coordinate frame the model's boxes are in."""

    model_name: str
    frame: ModelFrame
    generation: GenerationConfig

    @abstractmethod
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...

    def settings_for(self, request: GenerationRequest) -> GenerationConfig:
        """The settings a request is generated with, its budget resolved: the request's own, else its settings',
        else the largest default."""
        g = request.generation or self.generation
        budget = request.max_new_tokens or g.max_new_tokens or LARGEST_NEW_TOKENS
        return g if g.max_new_tokens == budget else replace(g, max_new_tokens=budget)

    def generate_detailed(
        self, requests: Sequence[GenerationRequest], control: GenerationControl | None = None
    ) -> list[Generation]:
        """:meth:`generate` with token counts and finish reasons where the engine gives them. ``control`` may stop
        the generation early; an engine that cannot stop mid-way checks it only before it starts."""
        if control is not None and control.should_stop():
            return [Generation("", control.reason) for _ in requests]
        budgets = [self.settings_for(r).max_new_tokens for r in requests]
        return [Generation(text, max_new_tokens=n) for text, n in zip(self.generate(requests), budgets, strict=True)]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free resources (engines, connections)."""


def _with_max_pixels(frame: ModelFrame, max_pixels: int | None) -> ModelFrame:
    return replace(frame, max_pixels=int(max_pixels)) if max_pixels else frame


def _as_rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


# --- transformers --------------------------------------------------------------------------------------------


class TransformersBackend(Backend):
    """A Hugging Face model on CPU or GPU: batched, left-padded, greedy unless ``temperature`` > 0."""

    def __init__(
        self,
        model: str,
        generation: GenerationConfig | None = None,
        device: str | None = None,
        dtype: str = "auto",
        input_max_pixels: int | None = None,
    ):
        from deepmedix.models.loading import (
            load_model_and_processor,
            processor_frame,
        )  # imports transformers/TRL: only this path pays for it

        self.model_name = str(model)
        self.generation = generation or GenerationConfig()
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else None
        # The loader keeps the vision placeholder tokens suppressed in the generation config.
        self.model, self.processor = load_model_and_processor(
            model, dtype=dtype, device=device, max_pixels=input_max_pixels
        )
        self.processor.tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
        # The frame comes from the processor that resizes the images, so boxes and pixels cannot disagree.
        self.frame = processor_frame(self.model.config.model_type, self.processor)

    def prompt_text(self, request: GenerationRequest) -> str:
        return self.processor.apply_chat_template(request.messages(), tokenize=False, add_generation_prompt=True)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return [g.text for g in self.generate_detailed(requests)]

    def generate_detailed(
        self, requests: Sequence[GenerationRequest], control: GenerationControl | None = None
    ) -> list[Generation]:
        # One model.generate call per group of requests that share settings (budget included: a batch of short answers
        # does not run on to a report's budget) and have images (or none).
        groups: list[tuple[tuple[GenerationConfig, bool], list[int]]] = []
        for i, r in enumerate(requests):
            key = (self.settings_for(r), bool(r.images))
            for group_key, members in groups:
                if group_key == key:
                    members.append(i)
                    break
            else:
                groups.append((key, [i]))
        results: list[Generation] = [Generation("")] * len(requests)
        for (config, _), members in groups:
            for i, generated in zip(
                members, self._generate_batch([requests[i] for i in members], config, control), strict=True
            ):
                results[i] = generated
        return results

    def _generate_batch(
        self, requests: list[GenerationRequest], g: GenerationConfig, control: GenerationControl | None
    ) -> list[Generation]:
        import torch

        texts = [self.prompt_text(r) for r in requests]
        images = [[_as_rgb(im) for im in r.images] for r in requests]
        inputs = self.processor(text=texts, images=images if images[0] else None, padding=True, return_tensors="pt")
        inputs = inputs.to(self.model.device)
        kwargs: dict[str, Any] = {"max_new_tokens": g.max_new_tokens, "do_sample": g.do_sample}
        if g.do_sample:
            kwargs.update(temperature=g.temperature, top_p=g.top_p)
            if g.top_k is not None:
                kwargs["top_k"] = g.top_k
            if g.seed is not None:
                torch.manual_seed(g.seed)
        else:  # plain greedy: drop any sampling defaults a checkpoint's generation_config carries
            kwargs.update(temperature=None, top_p=None, top_k=None)
        tok = self.processor.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        kwargs["pad_token_id"] = pad_id
        if control is not None:
            kwargs["stopping_criteria"] = _control_criteria(control)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {tok.eos_token_id}
        results = []
        budget = int(g.max_new_tokens or LARGEST_NEW_TOKENS)
        for row, mask, text in zip(
            new_tokens.tolist(),
            inputs["attention_mask"].sum(dim=1).tolist(),
            self.processor.batch_decode(new_tokens, skip_special_tokens=True),
            strict=True,
        ):
            # Cut off = no end-of-sequence token among the new tokens and the whole budget used.
            ended = next((k for k, t in enumerate(row) if t in eos_ids), None)
            if ended is not None:
                count, reason = ended + 1, "stop"
            else:
                count = len(row)
                stopped = control.reason if control is not None and control.stopped else None
                reason = stopped or ("length" if count >= budget else "stop")
            results.append(Generation(text.strip(), reason, int(mask), count, budget))
        return results


def _control_criteria(control: GenerationControl) -> Any:
    """A transformers stopping criterion that ends generation at the next token once ``control`` says stop
    (``max_time`` alone could not be moved earlier at shutdown, nor say which limit fired)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList  # heavy: only the transformers path pays

    class ControlCriteria(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), control.should_stop(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([ControlCriteria()])


def _processor_and_frame(model: str, input_max_pixels: int | None) -> tuple[str, Any, ModelFrame]:
    """(local path or hub id, processor, frame) the way the transformers backend gets them; vLLM environments
    pin an older transformers, so fall back to the stock processor there."""
    try:
        from transformers import AutoConfig

        from deepmedix.models.loading import (
            load_processor,
            processor_frame,
            resolve_model_path,
        )  # imports transformers/TRL: only this path pays for it
    except ImportError:  # pragma: no cover - depends on the installed transformers
        from transformers import AutoConfig, AutoProcessor

        processor = AutoProcessor.from_pretrained(model)
        if input_max_pixels:
            processor.image_processor.max_pixels = int(input_max_pixels)
        frame = _with_max_pixels(
            frame_for(getattr(AutoConfig.from_pretrained(model), "model_type", model)), input_max_pixels
        )
        return model, processor, frame
    path = resolve_model_path(model)
    processor = load_processor(path, max_pixels=input_max_pixels)
    return path, processor, processor_frame(AutoConfig.from_pretrained(path).model_type, processor)


# --- vLLM ----------------------------------------------------------------------------------------------------


class VLLMBackend(Backend):
    """vLLM's offline engine (GPU). The prompt is the processor's chat template over ``build_messages``; images
    go in ``multi_modal_data`` and vLLM's processor resizes them with the frame's pixel bounds."""

    def __init__(
        self,
        model: str,
        generation: GenerationConfig | None = None,
        input_max_pixels: int | None = None,
        max_images_per_prompt: int = 2,
        **engine_kwargs: Any,
    ):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:  # pragma: no cover - GPU environments only
            raise MissingDependencyError(
                "backend 'vllm' needs the vllm package (pip install 'deepmedix[vllm]' on a GPU machine)"
            ) from e
        self.model_name = str(model)
        self.generation = generation or GenerationConfig()
        path, self._processor, self.frame = _processor_and_frame(str(model), input_max_pixels)
        engine_kwargs.setdefault("max_model_len", 8192)
        engine_kwargs.setdefault("limit_mm_per_prompt", {"image": max_images_per_prompt})
        # vLLM's own processor resizes with the same bounds as the frame the boxes are converted from.
        engine_kwargs.setdefault(
            "mm_processor_kwargs", {"min_pixels": self.frame.min_pixels, "max_pixels": self.frame.max_pixels}
        )
        self._llm = LLM(model=path, **engine_kwargs)
        self._sampling_params = SamplingParams

    def _sampling_for(self, g: GenerationConfig) -> Any:
        params: dict[str, Any] = {
            "max_tokens": g.max_new_tokens or LARGEST_NEW_TOKENS,
            "temperature": g.temperature if g.do_sample else 0.0,
        }
        if g.do_sample:
            params["top_p"] = g.top_p
            if g.top_k is not None:  # omitted otherwise: vLLM versions disagree on the "disabled" value
                params["top_k"] = g.top_k
            if g.seed is not None:
                params["seed"] = g.seed
        return self._sampling_params(**params)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return [g.text for g in self.generate_detailed(requests)]

    def generate_detailed(
        self, requests: Sequence[GenerationRequest], control: GenerationControl | None = None
    ) -> list[Generation]:
        # The offline engine cannot be stopped inside one generate call: ``control`` is checked before it starts.
        if control is not None and control.should_stop():
            return [Generation("", control.reason) for _ in requests]
        prompts = []
        for r in requests:
            text = self._processor.apply_chat_template(r.messages(), tokenize=False, add_generation_prompt=True)
            images = [_as_rgb(im) for im in r.images]
            prompt: dict[str, Any] = {"prompt": text}
            if images:
                prompt["multi_modal_data"] = {"image": images[0] if len(images) == 1 else images}
            prompts.append(prompt)
        settings = [self.settings_for(r) for r in requests]
        sampling = [self._sampling_for(g) for g in settings]  # one SamplingParams per request: its own budget
        outputs = self._llm.generate(prompts, sampling, use_tqdm=False)
        results = []
        for o, g in zip(outputs, settings, strict=True):
            first = o.outputs[0]
            prompt_ids, token_ids = getattr(o, "prompt_token_ids", None), getattr(first, "token_ids", None)
            results.append(
                Generation(
                    first.text.strip(),
                    getattr(first, "finish_reason", None),  # vLLM's own: "stop" or "length"
                    len(prompt_ids) if prompt_ids is not None else None,
                    len(token_ids) if token_ids is not None else None,
                    g.max_new_tokens,
                )
            )
        return results


# --- OpenAI-compatible endpoint ------------------------------------------------------------------------------


@dataclass
class OpenAIOptions:
    base_url: str
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 4
    requests_per_minute: float | None = None
    timeout_s: float = 120.0
    cache_path: str | Path | None = None  # replies keyed by content: a rerun never pays twice
    frame_model: str | None = None  # model family for the frame when the served name does not say it
    extra: dict[str, Any] = field(default_factory=dict)


def _cached_generation(value: Any, budget: int | None) -> Generation:
    """A cached reply: a Generation's fields (a plain text from an older cache has no finish reason)."""
    if isinstance(value, dict):
        known = {f.name for f in fields(Generation)}
        return Generation(**{k: v for k, v in value.items() if k in known})
    return Generation(str(value), None, None, None, budget)


def openai_messages(request: GenerationRequest, frame: ModelFrame) -> list[dict[str, Any]]:
    """``build_messages`` in the OpenAI format: each image slot becomes a PNG data URL, the text is unchanged.

    Images are sent already resized to the model-input size, so the server's processor leaves them as they are
    and the boxes come back in the frame we convert from, whatever the server's own pixel bounds."""

    images = iter(request.images)
    out = []
    for msg in request.messages():
        if isinstance(msg["content"], str):
            out.append(dict(msg))
            continue
        content = []
        for part in msg["content"]:
            if part.get("type") == "image":
                img = next(images)
                size = frame.pixel_size(img.width, img.height)
                resized = img if img.size == size else img.resize(size, Image.Resampling.BICUBIC)
                content.append({"type": "image_url", "image_url": {"url": image_data_url(resized)}})
            else:
                content.append(part)
        out.append({"role": msg["role"], "content": content})
    return out


class OpenAIBackend(Backend):
    """Any OpenAI-compatible chat endpoint (vLLM's server, a hosted model). Nothing is sent unless a
    ``base_url`` is given."""

    def __init__(
        self,
        model: str,
        options: OpenAIOptions,
        generation: GenerationConfig | None = None,
        input_max_pixels: int | None = None,
        client: Any = None,
    ):

        if not options.base_url:
            raise OptionError("backend 'openai' needs --base-url (the endpoint to send images to)")
        self.model_name = str(model)
        self.generation = generation or GenerationConfig()
        self.frame = _with_max_pixels(frame_for(options.frame_model or str(model)), input_max_pixels)
        self.options = options
        g = self.generation
        self.endpoint = ChatEndpoint(
            EndpointConfig(
                base_url=options.base_url,
                model=str(model),
                api_key_env=options.api_key_env,
                max_concurrency=options.max_concurrency,
                requests_per_minute=options.requests_per_minute,
                timeout_s=options.timeout_s,
                temperature=g.temperature,
                max_tokens=g.max_new_tokens or LARGEST_NEW_TOKENS,
            ),
            client=client,
        )
        self.cache = ResponseCache(options.cache_path) if options.cache_path else None

    def _params(self, g: GenerationConfig) -> dict[str, Any]:
        """What is sent beside the messages, except the temperature and the budget (the cache key's other parts)."""
        params: dict[str, Any] = dict(self.options.extra)
        if g.do_sample:
            params["top_p"] = g.top_p
        if g.seed is not None:
            params["seed"] = g.seed
        return params

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return [g.text for g in self._generate_cached(requests)]

    def _generate_cached(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Concurrent calls, one ``chat_many`` per group of requests that share settings (each with its own budget),
        every reply cached by content with its finish reason."""
        settings = [self.settings_for(r) for r in requests]
        conversations = [openai_messages(r, self.frame) for r in requests]
        keys = [
            content_key(self.model_name, c, g.temperature, g.max_new_tokens, self._params(g))
            for c, g in zip(conversations, settings, strict=True)
        ]
        results: list[Generation | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                results[i] = _cached_generation(cached, settings[i].max_new_tokens)
            else:
                g = settings[i]
                groups.setdefault(content_key(g.temperature, g.max_new_tokens, self._params(g)), []).append(i)
        errors: list[str] = []
        for todo in groups.values():
            g = settings[todo[0]]
            params = {**self._params(g), "temperature": g.temperature, "max_tokens": g.max_new_tokens}
            for j, reply in self.endpoint.chat_many([conversations[i] for i in todo], **params):
                i = todo[j]
                if isinstance(reply, Exception):
                    errors.append(f"request {i}: {type(reply).__name__}: {reply}")
                    continue
                generated = Generation(
                    reply.text.strip(),
                    reply.finish_reason,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    g.max_new_tokens,
                )
                results[i] = generated
                if self.cache is not None:
                    self.cache.put(keys[i], asdict(generated))
        if errors:
            texts = [r.text if r is not None else None for r in results]
            raise BackendError(f"{len(errors)} of {len(requests)} requests failed; first: {errors[0]}", texts)
        return [r or Generation("") for r in results]

    def generate_detailed(
        self, requests: Sequence[GenerationRequest], control: GenerationControl | None = None
    ) -> list[Generation]:
        """Without ``control``: concurrent and cached. With it: one uncached call per request (a server answering
        its clients), each given the time ``control`` leaves."""
        if control is None:
            return self._generate_cached(requests)
        results = []
        for i, r in enumerate(requests):
            if control.should_stop():
                results.append(Generation("", control.reason))
                continue
            g = self.settings_for(r)
            params = {**self._params(g), "temperature": g.temperature, "max_tokens": g.max_new_tokens}
            remaining = control.remaining()
            if remaining is not None:
                params["timeout"] = max(remaining, 0.001)
            try:
                reply = self.endpoint.chat(openai_messages(r, self.frame), **params)
            except Exception as e:  # the endpoint's failure, reported as the backend's (the server answers 502)
                raise BackendError(f"request {i}: {type(e).__name__}: {e}", [None] * len(requests)) from e
            results.append(
                Generation(
                    reply.text.strip(),
                    reply.finish_reason,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    g.max_new_tokens,
                )
            )
        return results

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

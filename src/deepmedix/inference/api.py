"""The Python API: load a backend, ask a grounded question, get the answer with boxes in original pixels.

from deepmedix.inference.api import load_backend, GroundedAnswerer
answerer = GroundedAnswerer(load_backend("tiny"))
result = answerer.answer("cxr.png", question="Is there a pleural effusion?")
result.answer, result.steps[0].boxes          # boxes in the ORIGINAL image's pixels
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PIL import Image

from deepmedix.data.frame import ModelFrame
from deepmedix.errors import OptionError
from deepmedix.inference.backends import (
    Backend,
    GenerationConfig,
    GenerationControl,
    GenerationRequest,
    OpenAIBackend,
    OpenAIOptions,
    TransformersBackend,
    VLLMBackend,
)
from deepmedix.inference.images import CXRImage, load_image
from deepmedix.inference.options import BackendOptions
from deepmedix.protocol import (
    PromptTemplate,
    final_answer,
    find_boxes,
    load_prompt_template,
    model_prompt_template,
    new_token_budget,
    parse_completion,
    task_prompt,
    user_prompt_template,
)

# CLI task names → sample tasks.
TASK_ALIASES = {
    "findings": "report_findings",
    "impression": "report_impression",
    "report_findings": "report_findings",
    "report_impression": "report_impression",
    "vqa": "vqa",
    "grounding": "grounding",
}


def load_backend(model: str, backend: str = "transformers", **settings: Any) -> Backend:
    """Build a backend by name. ``model`` is "tiny", a local checkpoint or a hub id (or, for "openai", the
    served model name); ``settings`` are :class:`BackendOptions` fields, and anything else goes to vLLM's engine.
    Without ``max_new_tokens`` each answer gets its task's budget (``deepmedix.protocol.TASK_NEW_TOKENS``)."""
    names = {f.name for f in fields(BackendOptions)}
    engine_kwargs = {k: v for k, v in settings.items() if k not in names}
    options = BackendOptions(model=str(model), backend=backend, **{k: v for k, v in settings.items() if k in names})
    return build_backend(options, **engine_kwargs)


def build_backend(options: BackendOptions, **engine_kwargs: Any) -> Backend:
    """The backend that :class:`BackendOptions` describe (``engine_kwargs``: vLLM ``LLM`` arguments). Its prompt
    template is the answerer's (:func:`build_answerer`)."""
    o = options
    generation = GenerationConfig(o.max_new_tokens, o.temperature, o.top_p, o.top_k, o.seed)
    if o.backend == "transformers":
        return TransformersBackend(
            o.model, generation, device=o.device, dtype=o.dtype, input_max_pixels=o.input_max_pixels
        )
    if o.backend == "vllm":
        return VLLMBackend(o.model, generation, input_max_pixels=o.input_max_pixels, **engine_kwargs)
    openai = OpenAIOptions(
        base_url=o.base_url or "",
        api_key_env=o.api_key_env,
        max_concurrency=o.max_concurrency,
        requests_per_minute=o.requests_per_minute,
        cache_path=o.cache_path,
        frame_model=o.frame_model,
    )
    return OpenAIBackend(o.model, openai, generation, input_max_pixels=o.input_max_pixels)


def build_answerer(options: BackendOptions, **engine_kwargs: Any) -> GroundedAnswerer:
    """A :class:`GroundedAnswerer` on the backend ``options`` describe, asking with their prompt template. The
    template is read and checked before the model is loaded."""
    template = load_prompt_template(options.prompt_template) or model_prompt_template(options.model)
    return GroundedAnswerer(build_backend(options, **engine_kwargs), template)


def resolve_prompt(task: str | None = None, question: str | None = None) -> tuple[str, str]:
    """(task, instruction text) from a task name and/or a question; a question without a task is VQA."""
    if question is not None and not question.strip():
        raise OptionError("question is empty")
    if task is None:
        if question is None:
            raise OptionError("give a question or a task (findings or impression)")
        task = "vqa"
    if task not in TASK_ALIASES:
        raise OptionError(f"unknown task {task!r}; choose one of findings, impression, vqa, grounding")
    full = TASK_ALIASES[task]
    return full, task_prompt(full, question)


def _r(v: float) -> float:
    return round(float(v), 1)


@dataclass
class GroundedStep:
    text: str
    boxes: list[list[float]] = field(default_factory=list)  # original-image pixels
    boxes_model: list[list[float]] = field(default_factory=list)  # as the model wrote them


@dataclass
class GroundedAnswer:
    answer: str
    format_valid: bool
    steps: list[GroundedStep]
    completion: str
    prompt: str
    task: str
    model: str
    image_size: list[int]
    model_input_size: list[int]
    # The exact text of the user turn the model was sent, and the template that rendered it.
    prompt_text: str = ""
    prompt_template: str = ""
    prompt_template_sha256: str = ""
    # The budget of new tokens, and how the answer ended: "stop" (by itself) or "length" (cut off at the budget).
    max_new_tokens: int | None = None
    finish_reason: str | None = None
    truncated: bool = False
    timing: dict[str, float] = field(default_factory=dict)
    # Boxes written in the final answer itself (a grounding answer such as \boxed{[x0, y0, x1, y1]}).
    answer_boxes: list[list[float]] = field(default_factory=list)  # original pixels
    answer_boxes_model: list[list[float]] = field(default_factory=list)

    @property
    def boxes(self) -> list[list[float]]:
        return [b for s in self.steps for b in s.boxes]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ground_completion(
    completion: str, frame: ModelFrame, width: int, height: int
) -> tuple[str, bool, list[GroundedStep]]:
    """Parse a completion and bring each step's boxes from the model frame to original pixels."""
    parsed = parse_completion(completion)
    steps = [
        GroundedStep(
            text=s.text,
            boxes=[[_r(v) for v in frame.to_original(b, width, height)] for b in s.boxes],
            boxes_model=[[float(v) for v in b] for b in s.boxes],
        )
        for s in parsed.steps
    ]
    return final_answer(completion), parsed.format_valid, steps


class GroundedAnswerer:
    """Asks a backend and returns structured, grounded answers. Boxes refer to the first image.

    ``template`` is the grounded-reasoning prompt (a :class:`~deepmedix.protocol.PromptTemplate` or its ``.jinja``
    file; default: the one the model folder was trained on, if it keeps one, else the built-in one); questions asked
    without reasoning are sent as they are. Each answer's budget of new tokens is the one the backend's settings
    give, else its task's."""

    def __init__(self, backend: Backend, template: PromptTemplate | str | Path | None = None):
        self.backend = backend
        # no template given: the one a model folder was trained on, if it keeps one
        self.template = load_prompt_template(template) or model_prompt_template(backend.model_name)

    def budget(self, task: str, generation: GenerationConfig | None = None) -> int:
        """New tokens for an answer to ``task``: a budget set for every answer (``generation``'s, else the
        backend's), else the task's default."""
        given = (generation or self.backend.generation).max_new_tokens
        return int(given) if given else new_token_budget(task)

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    def answer_many(
        self,
        images: Sequence[Image.Image | CXRImage | str | Path | Sequence[Any]],
        prompts: Sequence[str],
        tasks: Sequence[str],
        reasoning: bool = True,
        generation: GenerationConfig | None = None,
        control: GenerationControl | None = None,
    ) -> list[GroundedAnswer]:
        """``generation`` overrides the backend's settings; ``control`` may stop the generation early."""
        views = [[_to_pil(v) for v in (item if isinstance(item, (list, tuple)) else [item])] for item in images]
        sizes = [v[0].size for v in views]
        given = self.template if reasoning else None  # asked without reasoning: the question alone
        template = user_prompt_template(reasoning, given)
        reqs = [
            GenerationRequest(
                v, p, reasoning, generation=generation, template=given, max_new_tokens=self.budget(t, generation)
            )
            for v, p, t in zip(views, prompts, tasks, strict=True)
        ]
        t0 = time.perf_counter()
        generated = self.backend.generate_detailed(reqs, control)
        gen_s = time.perf_counter() - t0
        out = []
        for (w, h), gen, req, task in zip(sizes, generated, reqs, tasks, strict=True):
            comp, prompt, frame = gen.text, req.prompt, self.backend.frame
            answer, valid, steps = ground_completion(comp, frame, w, h)
            in_answer = find_boxes(answer)
            out.append(
                GroundedAnswer(
                    answer=answer,
                    format_valid=valid,
                    steps=steps,
                    completion=comp,
                    prompt=prompt,
                    task=task,
                    model=self.backend.model_name,
                    image_size=[w, h],
                    model_input_size=list(frame.input_size(w, h)),
                    prompt_text=req.user_text(),
                    prompt_template=template.name,
                    prompt_template_sha256=template.sha256,
                    max_new_tokens=gen.max_new_tokens or req.max_new_tokens,
                    finish_reason=gen.finish_reason,
                    truncated=gen.truncated,
                    timing={"generate_s": round(gen_s / max(1, len(reqs)), 4)},
                    answer_boxes=[[_r(v) for v in frame.to_original(b, w, h)] for b in in_answer],
                    answer_boxes_model=[[float(v) for v in b] for b in in_answer],
                )
            )
        return out

    def answer(
        self,
        image: Image.Image | CXRImage | str | Path,
        question: str | None = None,
        task: str | None = None,
        reasoning: bool = True,
    ) -> GroundedAnswer:
        full_task, prompt = resolve_prompt(task, question)
        return self.answer_many([image], [prompt], [full_task], reasoning)[0]


def _to_pil(item: Image.Image | CXRImage | str | Path) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, CXRImage):
        return item.image
    return load_image(item).image

"""Batch prediction over a samples JSONL → a prediction JSONL that evaluation reads.

Resumable: ids already in the output are skipped, a last line torn by a kill is dropped and the file rewritten,
and each finished batch is appended and fsync'd, so a kill loses at most the batch in flight.

Every line is self-contained: the exact user text sent (``prompt_text``), the template that rendered it (name and
sha256), the budget of new tokens, and whether the answer was cut off at it (``truncated``, ``finish_reason``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepmedix.data.schema import Sample, check_sample_images, load_numbered_samples
from deepmedix.errors import DataError, InputFileError, OptionError, SampleFileError
from deepmedix.inference.api import GroundedAnswer, GroundedAnswerer, build_backend
from deepmedix.inference.backends import Backend
from deepmedix.inference.images import load_image
from deepmedix.inference.options import BackendOptions
from deepmedix.io import append_jsonl, atomic_write_jsonl, check_output, iter_jsonl_objects, read_jsonl
from deepmedix.protocol import PromptTemplate, load_prompt_template, model_prompt_template, user_prompt_template

log = logging.getLogger(__name__)

_BENCHMARK_TASK = {
    "report_findings": "findings",
    "report_impression": "impression",
    "vqa": "vqa",
    "grounding": "grounding",
}


def benchmark_name(source: str, task: str) -> str:
    """The group evaluation reports by: "<source>/<findings|impression|vqa|grounding>"."""
    return f"{source}/{_BENCHMARK_TASK.get(task, task)}"


def prediction_record(sample: Sample, result: GroundedAnswer, reasoning: bool = True) -> dict[str, Any]:
    """One output line: the sample's identity and reference beside the model's parsed, grounded answer."""
    record: dict[str, Any] = {
        "id": sample.id,
        "split": str(sample.split),
        "source": sample.source,
        "task": str(sample.task),
        "benchmark": benchmark_name(sample.source, str(sample.task)),
        "model": result.model,
        "prompt": sample.prompt,
        "reasoning": reasoning,
        "prompt_text": result.prompt_text,
        "prompt_template": result.prompt_template,
        "prompt_template_sha256": result.prompt_template_sha256,
        "image": sample.images[0].path,
        "image_size": result.image_size,
        "model_input_size": result.model_input_size,
        "completion": result.completion,
        "max_new_tokens": result.max_new_tokens,
        "finish_reason": result.finish_reason,
        "truncated": result.truncated,
        "prediction": result.answer,
        "format_valid": result.format_valid,
        "steps": [{"text": s.text, "boxes": s.boxes, "boxes_model": s.boxes_model} for s in result.steps],
        "reference": sample.answer,
        "answer_type": str(sample.answer_type),
    }
    if result.answer_boxes:
        record["answer_boxes"] = result.answer_boxes
        record["answer_boxes_model"] = result.answer_boxes_model
    if len(sample.images) > 1:
        record["images"] = [im.path for im in sample.images]
    if sample.question_type:
        record["question_type"] = sample.question_type
    if sample.boxes:
        record["reference_boxes"] = [b.as_list() for b in sample.boxes]
        record["reference_box_labels"] = [b.label for b in sample.boxes]
    return record


def _resume(out: Path, model_name: str, template: PromptTemplate) -> set[str]:
    """Ids already predicted in ``out``; a torn last line is dropped and the file rewritten whole. Lines of another
    model, or asked with another prompt template, are refused: one file, one way of asking.

    Every earlier line is checked first (valid JSON, an id, this model's, this template's), so a damaged or foreign
    file is refused and left as it is."""
    if not out.exists():
        return set()
    rows = list(iter_jsonl_objects(out, tolerate_torn_tail=True))
    for lineno, row in rows:
        if not isinstance(row.get("id"), str | int) or isinstance(row.get("id"), bool):
            raise InputFileError(out, "missing or not a string; not a prediction file", line=lineno, field="id")
        if row.get("model") not in (None, model_name):
            raise InputFileError(
                out,
                f"is {row.get('model')!r}, not {model_name!r}; write another model's predictions to another file",
                line=lineno,
                field="model",
            )
        if row.get("prompt_template_sha256") not in (None, template.sha256):
            raise InputFileError(
                out,
                f"asked with prompt template {row.get('prompt_template')!r}, not {template.name!r} (sha256 "
                f"{template.sha256[:12]}…); write predictions asked another way to another file",
                line=lineno,
                field="prompt_template_sha256",
            )
    with out.open("rb") as fh:
        size = fh.seek(0, 2)
        torn = size > 0 and fh.seek(size - 1) >= 0 and fh.read(1) != b"\n"
    if torn:  # the reader left the torn line out (and said so): the file is rewritten without it
        atomic_write_jsonl(out, [row for _, row in rows])
    return {str(row["id"]) for _, row in rows}


def prediction_summary(path: str | Path) -> dict[str, int]:
    """Counts of a prediction file: lines, and lines cut off at their budget of new tokens."""
    rows = read_jsonl(Path(path), tolerate_torn_tail=True)
    return {"predictions": len(rows), "truncated": sum(1 for r in rows if r.get("truncated") is True)}


def predict_file(
    model: str | Backend | BackendOptions,
    data: str | Path,
    out: str | Path,
    backend: str = "transformers",
    batch_size: int = 4,
    max_new_tokens: int | None = None,
    limit: int | None = None,
    reasoning: bool = True,
    progress: bool = True,
    prompt_template: str | Path | PromptTemplate | None = None,
    **backend_kwargs: Any,
) -> Path:
    """Predict every sample of ``data`` (the first ``limit`` ones) into ``out``; returns ``out``.

    ``model`` is a model name/path (a backend is built with ``backend``, ``max_new_tokens`` and ``backend_kwargs``),
    the :class:`BackendOptions` of one, or a ready ``Backend``. With the "openai" backend, replies are also cached
    beside ``out`` so no call is paid twice. ``max_new_tokens`` None: each answer gets its task's budget.
    ``prompt_template`` (else the options') is the reasoning prompt's template; it cannot go with
    ``reasoning=False``."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise OptionError(f"batch size must be at least 1, got {batch_size}")
    if prompt_template is None and isinstance(model, BackendOptions):
        prompt_template = model.prompt_template
    if prompt_template is not None and not reasoning:
        raise OptionError(
            f"--prompt-template {prompt_template}: a prompt template is the reasoning prompt, and these predictions "
            "are asked without reasoning (--no-reasoning, or an adapter for a plain model)"
        )
    template = load_prompt_template(prompt_template)  # checked before any model is loaded
    data, out = Path(data), Path(out)
    check_output(out)
    numbered = load_numbered_samples(data)
    if limit is not None:
        numbered = numbered[: max(0, limit)]
    if not numbered:
        raise DataError(f"{data}: no samples to predict (the file is empty)")
    seen: dict[str, int] = {}
    for lineno, s in numbered:
        if s.id in seen:
            raise SampleFileError(data, f"{s.id!r} repeats line {seen[s.id]}; ids must be unique", lineno, "id")
        seen[s.id] = lineno
    # Every image is found and readable (from its header) before a model is loaded: a bad sample costs a second.
    check_sample_images(data, numbered)
    samples = [s for _, s in numbered]

    if isinstance(model, Backend):
        model_name = model.model_name
    elif isinstance(model, BackendOptions):
        model_name = model.model
    else:
        model_name = str(model)
        model = BackendOptions(model=model_name, backend=backend, max_new_tokens=max_new_tokens, **backend_kwargs)
    if template is None and reasoning:  # the prompt the model folder was trained on, if it keeps one
        template = model_prompt_template(model_name)
    done = _resume(out, model_name, user_prompt_template(reasoning, template))
    todo = [s for s in samples if s.id not in done]
    if not todo:
        log.info("%s: all %d samples already predicted", out, len(samples))
        return out
    if isinstance(model, Backend):
        engine = model
    else:
        if model.backend == "openai" and model.cache_path is None:
            model = replace(model, cache_path=out.with_name(out.name + ".cache.sqlite"))
        engine = build_backend(model)
    answerer = GroundedAnswerer(engine, template)

    bar = tqdm(total=len(todo), desc=f"predict {model_name}", unit="sample", disable=not progress)
    t0 = time.perf_counter()
    written = truncated = 0
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            views = []
            for s in batch:
                try:
                    views.append([load_image(im.path).image for im in s.images])
                except (ValueError, OSError) as e:  # checked from its header, it fails to decode: name it
                    raise SampleFileError(data, f"{e}", line=seen[s.id], field="images") from None
            results = answerer.answer_many(views, [s.prompt for s in batch], [str(s.task) for s in batch], reasoning)
            written += append_jsonl(
                out, [prediction_record(s, r, reasoning) for s, r in zip(batch, results, strict=True)]
            )
            truncated += sum(r.truncated for r in results)
            bar.set_postfix(
                samples_per_s=f"{written / max(1e-9, time.perf_counter() - t0):.2f}", truncated=truncated, refresh=False
            )
            bar.update(len(batch))
    finally:
        bar.close()
        if engine is not model:
            engine.close()
    elapsed = time.perf_counter() - t0
    log.info(
        "%s: %d predictions in %.1f s (%.2f samples/s), %d truncated (cut off at their budget of new tokens); "
        "%d were already there",
        out,
        written,
        elapsed,
        written / max(1e-9, elapsed),
        truncated,
        len(done),
    )
    if truncated:
        log.warning(
            "%s: %d of %d answers hit their budget of new tokens and were cut off (field 'truncated'); "
            "a larger --max-new-tokens lets them finish",
            out,
            truncated,
            written,
        )
    return out

"""Batch prediction over a samples JSONL → a prediction JSONL that evaluation reads.

Resumable: ids already in the output are skipped, a last line torn by a kill is dropped and the file rewritten,
and each finished batch is appended and fsync'd, so a kill loses at most the batch in flight.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from deepmedix.data.schema import Sample, load_samples
from deepmedix.errors import DataError, OptionError
from deepmedix.inference.api import GroundedAnswer, GroundedAnswerer, build_backend
from deepmedix.inference.backends import Backend
from deepmedix.inference.images import load_image
from deepmedix.inference.options import BackendOptions
from deepmedix.io import append_jsonl, atomic_write_jsonl, read_jsonl

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
        "image": sample.images[0].path,
        "image_size": result.image_size,
        "model_input_size": result.model_input_size,
        "completion": result.completion,
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


def _resume(out: Path, model_name: str) -> set[str]:
    """Ids already predicted in ``out``; a torn last line is dropped and the file rewritten whole."""
    if not out.exists():
        return set()
    text = out.read_text(encoding="utf-8")
    rows = read_jsonl(out, tolerate_torn_tail=True)
    if text and not text.endswith("\n"):
        log.warning("%s: last line was cut short (an interrupted run); dropping it and resuming", out)
        atomic_write_jsonl(out, rows)
    for i, row in enumerate(rows, start=1):
        if "id" not in row:
            raise DataError(f"{out}, line {i}: field 'id' missing; not a prediction file")
        if row.get("model") not in (None, model_name):
            raise DataError(
                f"{out}, line {i}: field 'model' is {row.get('model')!r}, not {model_name!r}; "
                "write another model's predictions to another file"
            )
    return {str(r["id"]) for r in rows}


def predict_file(
    model: str | Backend | BackendOptions,
    data: str | Path,
    out: str | Path,
    backend: str = "transformers",
    batch_size: int = 4,
    max_new_tokens: int = 256,
    limit: int | None = None,
    reasoning: bool = True,
    progress: bool = True,
    **backend_kwargs: Any,
) -> Path:
    """Predict every sample of ``data`` (the first ``limit`` ones) into ``out``; returns ``out``.

    ``model`` is a model name/path (a backend is built with ``backend``, ``max_new_tokens`` and ``backend_kwargs``),
    the :class:`BackendOptions` of one, or a ready ``Backend``. With the "openai" backend, replies are also cached
    beside ``out`` so no call is paid twice."""
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise OptionError(f"batch size must be at least 1, got {batch_size}")
    data, out = Path(data), Path(out)
    if not data.exists():
        raise FileNotFoundError(f"{data}: no such samples file")
    samples = load_samples(data)
    if limit is not None:
        samples = samples[: max(0, limit)]
    seen: dict[str, int] = {}
    for n, s in enumerate(samples, start=1):
        if s.id in seen:
            raise DataError(f"{data}: record {n}: field 'id' {s.id!r} repeats record {seen[s.id]}; ids must be unique")
        seen[s.id] = n

    if isinstance(model, Backend):
        model_name = model.model_name
    elif isinstance(model, BackendOptions):
        model_name = model.model
    else:
        model_name = str(model)
        model = BackendOptions(model=model_name, backend=backend, max_new_tokens=max_new_tokens, **backend_kwargs)
    done = _resume(out, model_name)
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
    answerer = GroundedAnswerer(engine)

    bar = tqdm(total=len(todo), desc=f"predict {model_name}", unit="sample", disable=not progress)
    t0 = time.perf_counter()
    written = 0
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            views = []
            for s in batch:
                try:
                    views.append([load_image(im.path).image for im in s.images])
                except (ValueError, OSError) as e:
                    raise DataError(f"{data}: sample {s.id!r}: field 'images': {e}") from None
            results = answerer.answer_many(views, [s.prompt for s in batch], [str(s.task) for s in batch], reasoning)
            written += append_jsonl(
                out, [prediction_record(s, r, reasoning) for s, r in zip(batch, results, strict=True)]
            )
            bar.set_postfix(samples_per_s=f"{written / max(1e-9, time.perf_counter() - t0):.2f}", refresh=False)
            bar.update(len(batch))
    finally:
        bar.close()
        if engine is not model:
            engine.close()
    elapsed = time.perf_counter() - t0
    log.info(
        "%s: %d predictions in %.1f s (%.2f samples/s); %d were already there",
        out,
        written,
        elapsed,
        written / max(1e-9, elapsed),
        len(done),
    )
    return out

"""Run a teacher over a samples file, cache every reply by content, filter, and write stage-2 training data."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmedix.data.frame import QWEN25_VL_FRAME, ModelFrame
from deepmedix.data.images import open_image
from deepmedix.data.schema import Sample, iter_samples, sample_to_json
from deepmedix.endpoints import ResponseCache, content_key
from deepmedix.errors import DataError
from deepmedix.io import atomic_write_json, atomic_write_jsonl, check_output
from deepmedix.training.coldstart.filter import DROP_REASONS, check_completion
from deepmedix.training.coldstart.teachers import (
    TEACHER_PROMPT_VERSION,
    VERIFIER_PROMPT_VERSION,
    EndpointVerifier,
    Teacher,
    TemplateTeacher,
)

log = logging.getLogger(__name__)


@dataclass
class SynthesisSummary:
    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    cached: int = 0  # replies served from the cache (not paid for again)
    requested: int = 0  # replies asked of the teacher in this run

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "kept": self.kept,
            "dropped": {r: self.dropped.get(r, 0) for r in (*DROP_REASONS, "image_error") if self.dropped.get(r)},
            "teacher_replies_from_cache": self.cached,
            "teacher_replies_requested": self.requested,
        }


def _prepare(sample: Sample, frame: ModelFrame) -> tuple[Any, tuple[int, int], list]:

    cxr = open_image(sample.image.path)
    frame_size = frame.input_size(cxr.width, cxr.height)
    boxes = [(*frame.to_model(b.as_list(), cxr.width, cxr.height), b.label) for b in sample.boxes]
    return cxr.image, frame_size, boxes


def synthesize(
    samples_path: str | Path,
    out_path: str | Path,
    teacher: Teacher,
    frame: ModelFrame = QWEN25_VL_FRAME,
    verifier: EndpointVerifier | None = None,
    cache_path: str | Path | None = None,
    limit: int | None = None,
    require_box: bool = True,
    batch_size: int = 16,
) -> SynthesisSummary:
    """Write ``out_path`` (kept samples, ``answer`` = the full completion), ``<out>.dropped.jsonl`` (each dropped
    sample with its reason) and ``<out>.summary.json``. Rerunning with the same cache asks nothing twice."""
    from tqdm.auto import tqdm

    out_path = Path(out_path)
    outputs = (out_path, out_path.with_suffix(".dropped.jsonl"), out_path.with_suffix(".summary.json"))
    for output in outputs:  # every output can be written, before the teacher is paid
        check_output(output)
    summary = SynthesisSummary()
    samples = []
    for i, s in enumerate(iter_samples(samples_path)):
        if limit is not None and i >= limit:
            break
        samples.append(s)
    if not samples:
        raise DataError(f"{samples_path}: no samples for the teacher (the file is empty)")
    summary.total = len(samples)
    cache = ResponseCache(cache_path or out_path.with_suffix(".cache.sqlite"))  # kept: replies are paid for

    kept: list[str] = []
    dropped: list[dict[str, Any]] = []
    bar = tqdm(total=len(samples), desc=f"cold start ({teacher.name})", unit="sample")
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        prepared: list[tuple[Sample, Any, tuple[int, int], Any, str]] = []
        for s in batch:
            try:
                image, frame_size, boxes = _prepare(s, frame)
            except ValueError as e:  # unreadable image: named, counted, not fatal to the run
                summary.dropped["image_error"] += 1
                dropped.append({"id": s.id, "reason": "image_error", "detail": str(e)})
                continue
            req = teacher.request(s, image, frame_size, boxes)
            key = content_key(TEACHER_PROMPT_VERSION, teacher.name, req)
            prepared.append((s, image, frame_size, req, key))

        replies: dict[str, str | Exception] = {}
        todo = []
        for _, _, _, req, key in prepared:
            hit = cache.get(key)
            if hit is not None:
                replies[key] = hit["text"]
                summary.cached += 1
            elif key not in {k for _, k in todo}:
                todo.append((req, key))
        if todo:
            results = teacher.complete([r for r, _ in todo])
            summary.requested += len(todo)
            for (_, key), result in zip(todo, results, strict=True):
                replies[key] = result
                if not isinstance(result, Exception):
                    cache.put(key, {"text": result})  # paid for: stored at once

        passing: list[tuple[Sample, Any, tuple[int, int], str]] = []
        for s, image, frame_size, _, key in prepared:
            reply = replies[key]
            if isinstance(reply, Exception):
                summary.dropped["teacher_error"] += 1
                dropped.append({"id": s.id, "reason": "teacher_error", "detail": str(reply)})
                continue
            verdict = check_completion(reply, s.answer, str(s.answer_type), frame_size, require_box=require_box)
            if not verdict.kept:
                summary.dropped[verdict.reason or "unknown"] += 1
                dropped.append({"id": s.id, "reason": verdict.reason, "detail": verdict.detail, "completion": reply})
                continue
            passing.append((s, image, frame_size, reply))

        if verifier is not None and passing:
            passing = _verify(verifier, passing, cache, summary, dropped)

        for s, _, frame_size, completion in passing:
            provenance = s.provenance.model_dump()
            provenance["coldstart"] = {"teacher": teacher.name, "ground_truth": s.answer, "frame": list(frame_size)}
            out = s.model_copy(update={"answer": completion, "provenance": type(s.provenance)(**provenance)})
            kept.append(sample_to_json(out))
            summary.kept += 1
        bar.update(len(batch))
    bar.close()
    cache.close()

    atomic_write_jsonl(outputs[0], kept)
    atomic_write_jsonl(outputs[1], dropped)
    atomic_write_json(outputs[2], summary.to_dict())
    return summary


def _verify(
    verifier: EndpointVerifier,
    passing: list[tuple[Sample, Any, tuple[int, int], str]],
    cache: ResponseCache,
    summary: SynthesisSummary,
    dropped: list[dict[str, Any]],
) -> list[tuple[Sample, Any, tuple[int, int], str]]:
    reqs = [verifier.request(s, img, fs, c) for s, img, fs, c in passing]
    keys = [content_key(VERIFIER_PROMPT_VERSION, verifier.name, r) for r in reqs]
    verdicts: dict[str, bool | None] = {}
    todo = [(r, k) for r, k in zip(reqs, keys, strict=True) if cache.get(k) is None]
    for k in keys:
        hit = cache.get(k)
        if hit is not None:
            verdicts[k] = hit["valid"]
    if todo:
        for (_, k), v in zip(todo, verifier.judge([r for r, _ in todo]), strict=True):
            verdicts[k] = v
            if v is not None:
                cache.put(k, {"valid": v})
    kept = []
    for item, k in zip(passing, keys, strict=True):
        if verdicts.get(k) is True:
            kept.append(item)
        else:
            summary.dropped["verifier_rejected"] += 1
            dropped.append(
                {
                    "id": item[0].id,
                    "reason": "verifier_rejected",
                    "detail": "INVALID" if verdicts.get(k) is False else "no verdict",
                    "completion": item[3],
                }
            )
    return kept


def synthesize_offline(
    samples_path: str | Path, out_path: str | Path, model_frame: ModelFrame = QWEN25_VL_FRAME, limit: int | None = None
) -> SynthesisSummary:
    """Cold-start data from the offline template teacher (the demo's and the tests' stage 2)."""
    return synthesize(samples_path, out_path, TemplateTeacher(), frame=model_frame, limit=limit)

"""``deepmedix bench``: predict a benchmark file with a model (resumable), then evaluate the predictions."""

from __future__ import annotations

import logging
from pathlib import Path

from deepmedix.data.schema import check_sample_images, load_numbered_samples, load_samples, sample_to_json
from deepmedix.errors import DataError, OptionError
from deepmedix.evaluation.adapters import Adapter, resolve_adapter
from deepmedix.evaluation.evaluate import evaluate_file
from deepmedix.evaluation.metrics import EvalResults
from deepmedix.evaluation.options import BenchOptions, EvalOptions
from deepmedix.inference.options import BackendOptions
from deepmedix.inference.predict import predict_file
from deepmedix.io import (
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    check_output,
    make_parents,
    read_jsonl,
    remove_created,
)

log = logging.getLogger(__name__)


def _samples_for(adapter: Adapter, data: Path, out_dir: Path) -> Path:
    """The benchmark file itself, or a copy with the adapter's report instructions (image paths made absolute)."""
    if not adapter.report_prompts:
        return data
    samples = load_samples(data)
    lines = []
    for s in samples:
        prompt = adapter.prompt_for(str(s.task))
        lines.append(sample_to_json(s.model_copy(update={"prompt": prompt}) if prompt else s))
    path = out_dir / f"samples.{adapter.name}.jsonl"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def run_benchmark(
    model: str | BackendOptions,
    data: str | Path,
    out_dir: str | Path,
    options: EvalOptions | None = None,
    bench_options: BenchOptions | None = None,
) -> EvalResults:
    """Predict into OUT/predictions.jsonl (already predicted ids are skipped), then score into OUT/metrics.json.

    ``model`` is a model name (run with the transformers backend's defaults) or the :class:`BackendOptions` of one.
    """
    backend = model if isinstance(model, BackendOptions) else BackendOptions(model=str(model))
    model = backend.model
    bench_options = bench_options or BenchOptions()
    data, out_dir = Path(data), Path(out_dir)
    # The output folder, the samples and their images are checked before anything is written or loaded.
    check_output(out_dir, folder=True)
    chosen = resolve_adapter(model, bench_options.adapter)
    if chosen.loader == "served" and backend.backend != "openai":
        raise OptionError(
            f"{model}: the {chosen.name} adapter needs its authors' code; serve the model behind an OpenAI-compatible "
            "endpoint and run with --backend openai (see docs/evaluation.md)"
        )
    numbered = load_numbered_samples(data)
    if not numbered:
        raise DataError(f"{data}: no samples to predict (the file is empty)")
    check_sample_images(data, numbered)
    # The folder holds predictions.jsonl, appended and resumed across runs; made here, it goes again if still empty.
    created = make_parents(out_dir / "predictions.jsonl")
    try:
        log.info(
            "bench %s with adapter %s (reasoning=%s, answer=%s)", model, chosen.name, chosen.reasoning, chosen.answer
        )
        predictions = out_dir / "predictions.jsonl"
        predict_file(
            backend,
            _samples_for(chosen, data, out_dir),
            predictions,
            batch_size=bench_options.batch_size,
            limit=bench_options.limit,
            reasoning=chosen.reasoning,
        )
        # The scored answer is the adapter's reading of the raw completion.
        rows = read_jsonl(predictions)
        for r in rows:
            r["prediction"] = chosen.read_answer(r.get("completion") or r.get("prediction") or "")
            r["adapter"] = chosen.name
        scored = out_dir / "predictions.scored.jsonl"
        atomic_write_jsonl(scored, rows)
        metrics = evaluate_file(scored, out_dir, options)
        metrics["_meta"].update({"model": model, "adapter": chosen.name, "benchmark": str(data)})
        atomic_write_json(out_dir / "metrics.json", metrics)
    except BaseException:
        remove_created(created)
        raise
    return metrics

"""``deepmedix bench --prompt-template``: the template reaches the prediction lines of a model asked to reason, and is
refused for an adapter that asks a plain model (before any model is loaded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmedix.cli import main
from deepmedix.data.phantom import make_phantom_samples


@pytest.fixture
def bench_data(tmp_path: Path) -> Path:
    make_phantom_samples(tmp_path / "bench", 2, seed=4, split="test")
    return tmp_path / "bench" / "samples.jsonl"


def _bench(data: Path, out: Path, model: str, template: Path) -> int:
    args = ["bench", "--model", model, "--data", str(data), "--out", str(out), "--no-meteor"]
    return main([*args, "--max-new-tokens", "3", "--prompt-template", str(template)])


@pytest.mark.slow
def test_bench_asks_with_the_template(bench_data: Path, tmp_path: Path) -> None:
    template = tmp_path / "format.jinja"
    template.write_text("{{ content | trim }}\n\nReason, cite boxes, answer in \\boxed{}.\n", encoding="utf-8")
    assert _bench(bench_data, tmp_path / "out", "tiny", template) == 0
    rows = [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]
    assert rows and all(r["prompt_template"] == "format.jinja" for r in rows)
    assert all(r["prompt_text"] == f"{r['prompt']}\n\nReason, cite boxes, answer in \\boxed{{}}." for r in rows)
    assert all(r["truncated"] and r["max_new_tokens"] == 3 for r in rows)


def test_a_plain_adapter_refuses_the_template(bench_data: Path, tmp_path: Path, capsys) -> None:
    template = tmp_path / "format.jinja"
    template.write_text("{{ content }}", encoding="utf-8")
    # Qwen2.5-VL's adapter asks without reasoning; the model is not on this machine, so the refusal comes first.
    assert _bench(bench_data, tmp_path / "out", "Qwen/Qwen2.5-VL-7B-Instruct", template) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "without reasoning" in errors[0]

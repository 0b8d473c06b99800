"""``deepmedix bench`` on the tiny Qwen2.5-VL, and the baseline adapters."""

from __future__ import annotations

import json

import pytest

from deepmedix.evaluation.adapters import ADAPTERS, adapter_by_name, resolve_adapter


def test_adapters_resolve_by_hub_id():
    assert resolve_adapter("tiny").name == "deepmedix"
    assert resolve_adapter("Qwen/Qwen2.5-VL-7B-Instruct").name == "qwen2.5-vl"
    assert resolve_adapter("Qwen/Qwen2.5-VL-7B-Instruct", "qwen2.5-vl-think").reasoning is True
    assert resolve_adapter("google/medgemma-4b-it").name == "medgemma"
    assert resolve_adapter("StanfordAIMI/CheXagent-2-3b").loader == "served"
    assert resolve_adapter("microsoft/llava-rad").name == "llava-rad"
    assert resolve_adapter("FreedomIntelligence/HuatuoGPT-Vision-7B").name == "huatuogpt-vision"
    assert resolve_adapter("FreedomIntelligence/HuatuoGPT-Vision-7B-Qwen2.5VL").loader == "transformers"
    assert resolve_adapter("/ckpt/my-grpo-run").name == "deepmedix"
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        adapter_by_name("nope")
    assert len({a.name for a in ADAPTERS}) == len(ADAPTERS)


def test_answer_reading():
    protocol, plain = adapter_by_name("deepmedix"), adapter_by_name("medgemma")
    text = "<think>Step 1: [1, 2, 3, 4] looks fine.</think> The answer is: \\boxed{No effusion.}"
    assert protocol.read_answer(text) == "No effusion."
    assert plain.read_answer("**Findings:** The lungs are clear.</s>") == "The lungs are clear."
    assert plain.read_answer("Impression: no acute disease") == "no acute disease"
    assert plain.read_answer("<think>hmm</think>Yes") == "Yes"


def test_served_adapter_needs_openai_backend(tmp_path):
    from deepmedix.evaluation.bench import run_benchmark

    data = tmp_path / "s.jsonl"
    data.write_text("")
    with pytest.raises(ValueError, match="--backend openai"):
        run_benchmark("StanfordAIMI/CheXagent-2-3b", data, tmp_path / "o")


@pytest.mark.slow
def test_bench_tiny_predicts_scores_and_resumes(tmp_path, monkeypatch, capsys):
    from deepmedix.cli import main
    from deepmedix.data.phantom import make_phantom_samples

    make_phantom_samples(tmp_path / "bench", 4, seed=3, split="test")
    data = tmp_path / "bench" / "samples.jsonl"
    out = tmp_path / "out"
    args = [
        "bench",
        "--model",
        "tiny",
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-new-tokens",
        "12",
        "--batch-size",
        "2",
        "--no-meteor",
    ]
    assert main(args) == 0
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 4 and {p["model"] for p in preds} == {"tiny"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["_meta"]["adapter"] == "deepmedix"
    groups = [g for g in metrics if not g.startswith("_")]
    assert groups and all(metrics[g]["n"] >= 1 for g in groups if g != "weighted_average")
    vqa = [m for m in metrics.values() if isinstance(m, dict) and m.get("n_vqa")]
    assert vqa and 0 <= vqa[0]["accuracy"] <= 1
    assert (out / "report.html").is_file()

    # resumable: nothing left to predict, so no model is loaded the second time
    import deepmedix.inference.predict as predict

    monkeypatch.setattr(predict, "build_backend", lambda *a, **k: pytest.fail("model loaded again"))
    assert main(args) == 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4

"""Budgets of new tokens by task, and truncation counted where it happens: an answer cut off at its budget says so
(``truncated``, ``finish_reason`` "length") on every engine, in every answer and prediction line."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepmedix.cli import main
from deepmedix.inference.api import GroundedAnswerer, load_backend
from deepmedix.inference.backends import GenerationRequest, TransformersBackend
from deepmedix.inference.predict import predict_file, prediction_summary
from deepmedix.inference.server import create_app
from deepmedix.io import read_jsonl
from deepmedix.protocol import TASK_NEW_TOKENS
from tests.fake_openai import fake_openai_server
from tests.inference.conftest import FIXED_COMPLETION, ScriptedBackend, grey_image, png_bytes


@pytest.fixture(scope="module")
def tiny() -> TransformersBackend:
    backend = load_backend("tiny")
    assert isinstance(backend, TransformersBackend)
    return backend


def _request(budget: int | None = None, question: str = "Is there an effusion?") -> GenerationRequest:
    return GenerationRequest([grey_image(128, 128)], question, max_new_tokens=budget)


def test_a_completion_cut_at_its_budget_is_truncated(tiny: TransformersBackend) -> None:
    (cut,) = tiny.generate_detailed([_request(4)])
    assert (cut.finish_reason, cut.truncated, cut.completion_tokens, cut.max_new_tokens) == ("length", True, 4, 4)


def test_a_completion_that_ends_in_eos_is_not(tiny: TransformersBackend) -> None:
    # Make the token the model writes first its end-of-sequence token: it then stops by itself after one token.
    request = _request(4)
    inputs = tiny.processor(
        text=[tiny.prompt_text(request)], images=[[grey_image(128, 128).convert("RGB")]], return_tensors="pt"
    )
    first = int(tiny.model.generate(**inputs, max_new_tokens=1, do_sample=False)[0, -1])
    config = tiny.model.generation_config
    saved = config.eos_token_id
    config.eos_token_id = [first]
    try:
        (ended,) = tiny.generate_detailed([request])
    finally:
        config.eos_token_id = saved
    assert (ended.finish_reason, ended.truncated, ended.completion_tokens) == ("stop", False, 1)


def test_requests_of_one_batch_keep_their_own_budgets(tiny: TransformersBackend) -> None:
    together = tiny.generate_detailed([_request(3), _request(6, "Any pneumothorax?"), _request(3, "Heart size?")])
    alone = [tiny.generate_detailed([r])[0] for r in (_request(3), _request(6, "Any pneumothorax?"))]
    assert [g.max_new_tokens for g in together] == [3, 6, 3]
    assert [g.completion_tokens for g in together] == [3, 6, 3]  # the random model never stops early here
    assert [g.text for g in together[:2]] == [g.text for g in alone]


def test_answers_get_their_tasks_budget_unless_one_is_given() -> None:
    answerer = GroundedAnswerer(ScriptedBackend())
    assert {t: answerer.budget(t) for t in TASK_NEW_TOKENS} == TASK_NEW_TOKENS
    assert TASK_NEW_TOKENS["report_findings"] >= 1024 and TASK_NEW_TOKENS["vqa"] >= 512
    answers = answerer.answer_many([grey_image(64, 64)] * 2, ["q?", "Write it."], ["vqa", "report_impression"])
    assert [a.max_new_tokens for a in answers] == [512, 1024]
    scripted = ScriptedBackend()
    scripted.generation.max_new_tokens = 7  # --max-new-tokens 7: every task
    answers = GroundedAnswerer(scripted).answer_many([grey_image(64, 64)] * 2, ["q?", "W."], ["vqa", "report_findings"])
    assert [a.max_new_tokens for a in answers] == [7, 7]


def test_prediction_lines_say_which_answers_were_cut(samples_file: Path, tmp_path: Path) -> None:
    out = predict_file("tiny", samples_file, tmp_path / "pred.jsonl", max_new_tokens=4, progress=False)
    rows = read_jsonl(out)
    assert all(r["truncated"] is True and r["finish_reason"] == "length" and r["max_new_tokens"] == 4 for r in rows)
    assert prediction_summary(out) == {"predictions": 5, "truncated": 5}
    scripted = read_jsonl(predict_file(ScriptedBackend(), samples_file, tmp_path / "s.jsonl", progress=False))
    assert {r["task"]: r["max_new_tokens"] for r in scripted} == {
        "vqa": 512,
        "report_findings": 1024,
        "grounding": 512,
        "report_impression": 1024,
    }
    assert not any(r["truncated"] for r in scripted)


def test_predict_command_counts_the_truncated(samples_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pred.jsonl"
    args = ["predict", "--model", "tiny", "--data", str(samples_file), "--out", str(out), "--max-new-tokens", "3"]
    assert main([*args, "--limit", "2"]) == 0
    assert f"{out}: 2 predictions, 2 truncated" in capsys.readouterr().out


def test_the_openai_backend_asks_each_task_its_budget_and_reads_length(tmp_path: Path) -> None:
    seen: list[dict] = []

    def responder(body: dict) -> tuple[str, str]:
        seen.append(body)
        return FIXED_COMPLETION, "length" if body["max_tokens"] > 600 else "stop"

    cache = tmp_path / "cache.sqlite"
    with fake_openai_server(responder) as url:
        backend = load_backend("m", "openai", base_url=url, cache_path=cache)
        images, prompts = [grey_image(64, 64, seed=1), grey_image(64, 64, seed=2)], ["q?", "Write the FINDINGS."]
        answers = GroundedAnswerer(backend).answer_many(images, prompts, ["vqa", "report_findings"])
        assert sorted(b["max_tokens"] for b in seen) == [512, 1024]
        assert [(a.finish_reason, a.truncated) for a in answers] == [("stop", False), ("length", True)]
        # From the cache, a rerun knows the same.
        again = GroundedAnswerer(backend).answer_many(images, prompts, ["vqa", "report_findings"])
        assert len(seen) == 2 and [a.truncated for a in again] == [False, True]
        backend.close()


def test_the_server_gives_tasks_their_budgets_and_says_when_an_answer_was_cut(tiny: TransformersBackend) -> None:
    client = TestClient(create_app(GroundedAnswerer(tiny)))
    limits = client.get("/health").json()["limits"]
    assert limits["max_new_tokens"] == 1024 and limits["task_new_tokens"]["vqa"] == 512
    image = {"image": ("cxr.png", png_bytes(grey_image(64, 64)), "image/png")}
    body = client.post("/api/answer", files=image, data={"question": "Effusion?", "max_new_tokens": "3"}).json()
    assert (body["truncated"], body["finish_reason"], body["max_new_tokens"]) == (True, "length", 3)
    assert client.post("/api/answer", files=image, data={"question": "q", "max_new_tokens": "1025"}).status_code == 422
    reply = client.post(
        "/v1/chat/completions",
        json={"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "Describe the heart."}]},
    ).json()
    assert reply["choices"][0]["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 2

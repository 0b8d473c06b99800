from __future__ import annotations

import json
from typing import Any

import pytest
from PIL import Image

from deepmedix.arena.judges import RETRY_INSTRUCTION, JudgeTask, LLMJudge, RulesLabelerJudge, parse_verdict
from deepmedix.endpoints import ChatEndpoint, EndpointConfig
from tests.arena.conftest import quality_verdict, shown_reports, user_text
from tests.fake_openai import fake_openai_server


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"verdict": "A", "reason": "mentions the effusion"}', "A"),
        ('```json\n{"verdict": "Report B", "reason": "x"}\n```', "B"),
        ('Some thoughts first. {"winner": "tie"}', "tie"),
        ('<think>A looks better... {"verdict": "A"}</think>\nVerdict: B', "B"),
        ("Both are similar in content.\nVerdict: tie", "tie"),
        ("**Verdict:** A", "A"),
        ('{"verdict": "neither"}', "tie"),
        ("I cannot decide between these.", None),
        ('{"verdict": "C"}', None),
        ("", None),
    ],
)
def test_parse_verdict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply)[0] == verdict


def test_parse_verdict_keeps_the_reason() -> None:
    assert parse_verdict('{"verdict": "B", "reason": "B notes the cardiomegaly"}') == ("B", "B notes the cardiomegaly")


def task(i: int, qa: int, qb: int, image: str | None = None) -> JudgeTask:
    return JudgeTask(f"s{i}", f"reference {i}", f"report quality {qa}", f"report quality {qb}", image=image)


def test_llm_judge_reads_verdicts_from_the_endpoint() -> None:
    with fake_openai_server(quality_verdict) as url:
        judge = LLMJudge(ChatEndpoint(EndpointConfig(base_url=url, model="judge", max_retries=0)))
        outcomes = dict(judge.judge_many([task(0, 3, 1), task(1, 1, 3), task(2, 2, 2)]))
    assert [outcomes[k].verdict for k in range(3)] == ["A", "B", "tie"]
    assert outcomes[0].reason == "quality 3 vs 1"
    assert all(o.calls == 1 and o.prompt_tokens == 10 for o in outcomes.values())
    assert judge.name == f"llm:judge@{url}"


def test_garbage_reply_is_retried_once_then_recorded_unparseable() -> None:
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        a, _ = shown_reports(body)
        if "quality 9" in a:
            return "Both reports have merit; it is hard to say."
        if "quality 5" in a and body["messages"][-1]["content"] != RETRY_INSTRUCTION:
            return "Let me think about it."  # unreadable at first, readable on the retry
        return quality_verdict(body)

    with fake_openai_server(responder) as url:
        judge = LLMJudge(ChatEndpoint(EndpointConfig(base_url=url, model="judge", max_retries=0)))
        outcomes = dict(judge.judge_many([task(0, 9, 1), task(1, 5, 1), task(2, 1, 2)]))
    assert outcomes[0].verdict == "unparseable" and outcomes[0].calls == 2
    assert outcomes[0].replies == ["Both reports have merit; it is hard to say."] * 2
    assert outcomes[1].verdict == "A" and outcomes[1].calls == 2 and len(outcomes[1].replies) == 2
    assert outcomes[2].verdict == "B" and outcomes[2].calls == 1
    assert len(seen) == 5
    retries = [b for b in seen if b["messages"][-1]["content"] == RETRY_INSTRUCTION]
    assert len(retries) == 2
    # The retry carries the unreadable reply back to the judge.
    assert all(b["messages"][-2]["role"] == "assistant" for b in retries)


def test_vision_judge_sends_the_image(tmp_path) -> None:
    image = tmp_path / "cxr.png"
    Image.new("L", (64, 48), 128).save(image)
    seen: list[dict[str, Any]] = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(body)
        return quality_verdict(body)

    with fake_openai_server(responder) as url:
        judge = LLMJudge(ChatEndpoint(EndpointConfig(base_url=url, model="vlm", max_retries=0)), vision=True)
        ((_, outcome),) = list(judge.judge_many([task(0, 2, 1, image=str(image))]))
    assert outcome.verdict == "A"
    parts = next(m for m in seen[0]["messages"] if m["role"] == "user")["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "Reference report:\nreference 0" in user_text(seen[0])
    assert judge.name.endswith("+vision")
    with pytest.raises(ValueError, match="field 'image'"):
        list(judge.judge_many([task(1, 1, 2)]))


def fake_labels(texts: list[str]) -> list[dict[str, int | None]]:
    """Labels from keywords, standing in for the rule labeler."""
    out = []
    for t in texts:
        t = t.lower()
        out.append(
            {
                "Cardiomegaly": 1 if "cardiomegaly" in t else None,
                "Pleural Effusion": 0 if "no effusion" in t else (1 if "effusion" in t else None),
                "Pneumothorax": 0 if "no pneumothorax" in t else None,
            }
        )
    return out


def test_rules_labeler_prefers_the_report_agreeing_with_the_reference() -> None:
    judge = RulesLabelerJudge(label_fn=fake_labels)
    ref = "Cardiomegaly. Small left effusion."
    tasks = [
        JudgeTask("s0", ref, "Cardiomegaly with effusion.", "No effusion."),
        JudgeTask("s1", ref, "Clear lungs.", "Cardiomegaly and effusion."),
        JudgeTask("s2", ref, "Cardiomegaly.", "Effusion."),
    ]
    outcomes = dict(judge.judge_many(tasks))
    assert [outcomes[k].verdict for k in range(3)] == ["A", "B", "tie"]
    assert outcomes[0].calls == 0 and json.loads(outcomes[0].replies[0])["verdict"] == "A"
    assert "3/3" in outcomes[0].reason


def test_rules_labeler_with_the_offline_labeler() -> None:
    judge = RulesLabelerJudge()
    ref = "Moderate cardiomegaly. Large right pleural effusion."
    good = "Cardiomegaly is present. There is a large right pleural effusion."
    bad = "The heart size is normal. No pleural effusion."
    outcomes = dict(judge.judge_many([JudgeTask("s0", ref, good, bad), JudgeTask("s1", ref, bad, good)]))
    assert outcomes[0].verdict == "A" and outcomes[1].verdict == "B"

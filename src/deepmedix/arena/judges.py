"""Judges for the arena: an LLM behind any OpenAI-compatible endpoint, or the offline ``rules-labeler``.

A judge sees the reference report and two candidate reports shown as "Report A" and "Report B" (and the image, for a
vision judge) and returns a position verdict: "A", "B", "tie" — or "unparseable" when its reply could not be read
even after one retry, or "error" when the endpoint failed (not stored; a rerun asks again).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from deepmedix.arena.outcomes import Unresolved, Verdict
from deepmedix.endpoints import image_data_url
from deepmedix.errors import DataError
from deepmedix.labeler import label_reports

if TYPE_CHECKING:
    from deepmedix.endpoints import ChatEndpoint

PROMPT_VERSION = "arena-judge-v1"

JUDGE_SYSTEM = (
    "You are a board-certified radiologist grading chest X-ray reports. You compare two candidate reports written "
    "for the same study against the reference report written by the reading radiologist (and the image, when it "
    "is shown). Judge clinical correctness first: findings present or absent, their location, severity and "
    "devices; then completeness; then concision. Ignore style and length except where they change the clinical "
    "meaning. The order in which the reports are shown means nothing."
)

JUDGE_INSTRUCTION = (
    "Which candidate report is clinically better? Reply with only a JSON object: "
    '{"verdict": "A" | "B" | "tie", "reason": "<one or two sentences>"}. '
    'Use "tie" when neither is clinically better.'
)

RETRY_INSTRUCTION = (
    "Your reply could not be read. Answer again with only the JSON object "
    '{"verdict": "A" | "B" | "tie", "reason": "<one or two sentences>"} and nothing else.'
)


@dataclass
class JudgeTask:
    """One question to a judge: ``text_a`` is shown as Report A, ``text_b`` as Report B."""

    sample_id: str
    reference: str
    text_a: str
    text_b: str
    task: str = "report_findings"
    image: str | None = None


@dataclass
class JudgeOutcome:
    verdict: Verdict | Unresolved
    reason: str = ""
    replies: list[str] = field(default_factory=list)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Judge(Protocol):
    name: str  # identifies the judge in the judgment store: a cached verdict is reused only by the same judge

    def judge_many(self, tasks: Sequence[JudgeTask], desc: str | None = None) -> Iterator[tuple[int, JudgeOutcome]]:
        """Yields (index into tasks, outcome) as each finishes."""
        ...


def _section_name(task: str) -> str:
    return "impression" if "impression" in task else "findings"


def build_judge_messages(task: JudgeTask, image_url: str | None = None) -> list[dict[str, Any]]:
    section = _section_name(task.task)
    text = (
        f"Section compared: {section}.\n\n"
        f"Reference report:\n{task.reference.strip()}\n\n"
        f"Report A:\n{task.text_a.strip()}\n\n"
        f"Report B:\n{task.text_b.strip()}\n\n"
        f"{JUDGE_INSTRUCTION}"
    )
    if image_url:
        content: Any = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": text}]
    else:
        content = text
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}]


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
_VERDICT_LINE = re.compile(
    r"(?:verdict|winner|answer|better(?:\s+report)?)\s*[:=\-]\s*\**\s*\"?(?:report\s+)?([ab]|tie|draw|equal|neither|both)\b",
    re.I,
)


def _normalise_verdict(value: Any) -> Verdict | None:
    if not isinstance(value, str):
        return None
    v = value.strip().strip("*\"'`.").lower()
    v = re.sub(r"^(report|candidate|response)\s+", "", v)
    if v in ("a", "1"):
        return Verdict.A
    if v in ("b", "2"):
        return Verdict.B
    if v in ("tie", "draw", "equal", "neither", "both", "same", "tied"):
        return Verdict.TIE
    return None


def parse_verdict(text: str) -> tuple[Verdict | None, str]:
    """(verdict or None, reason) from a judge's reply: a JSON object, else a ``Verdict: A|B|tie`` line (the last)."""
    body = _THINK.sub("", text or "")
    for candidate in reversed(_JSON_OBJECT.findall(body)):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        for key in ("verdict", "winner", "better", "answer", "choice"):
            verdict = _normalise_verdict(obj.get(key))
            if verdict:
                reason = obj.get("reason", obj.get("rationale", obj.get("explanation", "")))
                return verdict, str(reason or "").strip()
    matches = _VERDICT_LINE.findall(body)
    if matches:
        verdict = _normalise_verdict(matches[-1])
        if verdict:
            return verdict, body.strip()
    return None, ""


class LLMJudge:
    """A judge behind an OpenAI-compatible chat endpoint (``deepmedix.endpoints.ChatEndpoint``).

    An unreadable reply is asked once more, with the reply and a short correction appended to the conversation;
    still unreadable → "unparseable", recorded with both raw replies.
    """

    def __init__(self, endpoint: ChatEndpoint, vision: bool = False, image_max_side: int = 1024):
        self.endpoint = endpoint
        self.vision = vision
        self.image_max_side = image_max_side
        cfg = endpoint.config
        self.name = f"llm:{cfg.model}@{cfg.base_url.rstrip('/')}" + ("+vision" if vision else "")

    def _messages(self, task: JudgeTask) -> list[dict[str, Any]]:
        image_url = None
        if self.vision:
            if not task.image:
                raise DataError(f"sample {task.sample_id}: field 'image' is needed for a vision judge")
            image_url = image_data_url(task.image, max_side=self.image_max_side)
        return build_judge_messages(task, image_url)

    def judge_many(self, tasks: Sequence[JudgeTask], desc: str | None = None) -> Iterator[tuple[int, JudgeOutcome]]:
        conversations = [self._messages(t) for t in tasks]
        outcomes: dict[int, JudgeOutcome] = {}
        retry: list[int] = []
        for k, reply in self.endpoint.chat_many(conversations, desc=desc):
            outcome = JudgeOutcome(Unresolved.ERROR)
            if isinstance(reply, Exception):
                outcome.reason = f"{type(reply).__name__}: {reply}"
                yield k, outcome
                continue
            outcome.calls, outcome.prompt_tokens, outcome.completion_tokens = (
                1,
                reply.prompt_tokens,
                reply.completion_tokens,
            )
            outcome.replies.append(reply.text)
            verdict, reason = parse_verdict(reply.text)
            if verdict:
                outcome.verdict, outcome.reason = verdict, reason
                yield k, outcome
            else:
                outcomes[k] = outcome
                retry.append(k)
        if not retry:
            return
        followups = [
            [
                *conversations[k],
                {"role": "assistant", "content": outcomes[k].replies[0]},
                {"role": "user", "content": RETRY_INSTRUCTION},
            ]
            for k in retry
        ]
        for j, reply in self.endpoint.chat_many(followups, desc=f"{desc} (retries)" if desc else None):
            k = retry[j]
            outcome = outcomes[k]
            if isinstance(reply, Exception):
                outcome.verdict, outcome.reason = Unresolved.ERROR, f"retry failed: {type(reply).__name__}: {reply}"
                yield k, outcome
                continue
            outcome.calls += 1
            outcome.prompt_tokens += reply.prompt_tokens
            outcome.completion_tokens += reply.completion_tokens
            outcome.replies.append(reply.text)
            verdict, reason = parse_verdict(reply.text)
            outcome.verdict, outcome.reason = (
                (verdict, reason) if verdict else (Unresolved.UNPARSEABLE, "no verdict in reply")
            )
            yield k, outcome


LabelFn = Callable[[list[str]], list[dict[str, int | None]]]


class RulesLabelerJudge:
    """Offline judge: prefers the report whose labels from the offline rule labeler match the reference's labels on
    more of the 14 CheXpert observations (positive, negative, uncertain and not-mentioned must match exactly); a tie
    when equal. Symmetric by construction, so it has no position bias: a baseline and a test double, not a clinician.
    """

    name = "rules-labeler"

    def __init__(self, label_fn: LabelFn = label_reports):
        self._label_fn = label_fn

    def judge_many(self, tasks: Sequence[JudgeTask], desc: str | None = None) -> Iterator[tuple[int, JudgeOutcome]]:
        texts: list[str] = []
        for t in tasks:
            texts.extend([t.reference, t.text_a, t.text_b])
        labels = self._label_fn(texts) if texts else []
        for k in range(len(tasks)):
            ref, a, b = labels[3 * k : 3 * k + 3]
            keys = sorted(set(ref) | set(a) | set(b))
            agree_a = sum(a.get(key) == ref.get(key) for key in keys)
            agree_b = sum(b.get(key) == ref.get(key) for key in keys)
            verdict = Verdict.A if agree_a > agree_b else Verdict.B if agree_b > agree_a else Verdict.TIE
            reason = f"labels agree with the reference on {agree_a}/{len(keys)} observations for A, {agree_b}/{len(keys)} for B"
            yield k, JudgeOutcome(verdict, reason, replies=[json.dumps({"verdict": verdict, "reason": reason})])


def image_for(record_image: object, prediction_file: Path) -> str | None:
    """A prediction line's image path, resolved against the prediction file's folder when relative."""
    if not record_image:
        return None
    path = Path(str(record_image))
    if not path.is_absolute() and not path.exists():
        candidate = prediction_file.parent / path
        if candidate.exists():
            return str(candidate)
    return str(path)

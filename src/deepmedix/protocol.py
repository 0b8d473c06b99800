"""The grounded output protocol: prompts that ask for it, and the parser that reads it back.

    <think> step 1 ... [x_min, y_min, x_max, y_max] ...; step 2 ... </think> The answer is: \\boxed{answer}

One prompt construction serves training, inference and the cold-start teacher, so what a model is trained on is
exactly what it is asked at inference. The parser is shared by the reward, inference, evaluation and review.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypedDict

from deepmedix.errors import OptionError

# --- prompts ---------------------------------------------------------------------------------------------------

TASK_PROMPTS: dict[str, str] = {
    "report_findings": "Write the FINDINGS section of the radiology report for this chest X-ray.",
    "report_impression": "Write the IMPRESSION section of the radiology report for this chest X-ray.",
}

# In substance the authors' xray_format.jinja: think first, cite regions as boxes, answer in \boxed{}.
REASONING_SUFFIX = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
    "The reasoning process MUST BE enclosed within <think> </think> tags. While reasoning, analyse the relevant "
    "local regions of the image and cite each one as a bounding box [x_min, y_min, x_max, y_max] in image pixels. "
    "The final answer MUST BE put in \\boxed{}. For example: <think> Step 1: the right lower lung zone "
    "[40, 220, 160, 330] shows ... Step 2: ... </think> The answer is: \\boxed{...}"
)


def task_prompt(task: str, question: str | None = None) -> str:
    """The instruction text for a task: a report section, or the question itself for VQA and grounding."""
    if task in TASK_PROMPTS and not question:
        return TASK_PROMPTS[task]
    if not question or not question.strip():
        raise OptionError(f"task {task!r} needs a question")
    return question.strip()


def build_user_text(prompt: str, reasoning: bool = True) -> str:
    """The user turn's text: the instruction, then the protocol suffix when the model is to reason."""
    return f"{prompt}\n\n{REASONING_SUFFIX}" if reasoning else prompt


class ContentPart(TypedDict, total=False):
    """One part of a message's content: ``{"type": "image"}`` or ``{"type": "text", "text": ...}``."""

    type: str
    text: str


class ChatMessage(TypedDict):
    """A chat message in the transformers/TRL format; TRL's conversational completions are lists of these."""

    role: str
    content: str | list[ContentPart]


def build_messages(prompt: str, reasoning: bool = True, n_images: int = 1) -> list[ChatMessage]:
    """Chat messages in the transformers/TRL multimodal format: image placeholders first, then the text."""
    content: list[ContentPart] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": build_user_text(prompt, reasoning)})
    return [{"role": "user", "content": content}]


def format_completion(steps: list[str], answer: str) -> str:
    """Write a completion in the protocol (used by the cold-start teacher template and tests)."""
    body = "\n".join(s.strip() for s in steps if s.strip())
    return f"<think>\n{body}\n</think>\nThe answer is: \\boxed{{{answer}}}"


# --- parsing ---------------------------------------------------------------------------------------------------

ParsedBox = tuple[float, float, float, float]  # [x_min, y_min, x_max, y_max] as written, in the model's frame

# Tags are matched as written (lower case), with any whitespace inside the angle brackets: ``< think >``,
# ``</ think >``, ``< / think >``.
_OPEN_TAG = re.compile(r"<\s*think\s*>")
_CLOSE_TAG = re.compile(r"<\s*/\s*think\s*>")
_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# A number: optional sign, ASCII digits, optional decimal part ("12", "-3", "4.5", ".5", "7.").
_NUM = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
BOX_PATTERN = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_BRACE = re.compile(r"[{}]")
_STEP_MARK = re.compile(r"(?=\bstep\s*\d+\s*[:.)])", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.;!?])\s+(?=[A-Z])")


def normalize_tags(text: str) -> str:
    """``< think >`` and ``</ think >`` → ``<think>`` and ``</think>`` (Qwen2.5-VL-32B writes the former)."""
    return _CLOSE_TAG.sub("</think>", _OPEN_TAG.sub("<think>", text))


def extract_boxed(text: str) -> str:
    """Content of the last ``\\boxed{...}`` whose braces balance (nested braces kept); ``""`` when none.

    A trailing ``\\boxed{`` that never closes (a cut-off completion) is skipped for the last one that does.
    """
    closing: dict[int, int] = {}  # position of each "{" → position of the "}" that closes it
    opened: list[int] = []
    for brace in _BRACE.finditer(text):  # one pass, so a run of unclosed braces costs linear time
        if brace.group() == "{":
            opened.append(brace.start())
        elif opened:
            closing[opened.pop()] = brace.start()
    start = text.rfind("\\boxed{")
    while start >= 0:
        close = closing.get(start + 6)
        if close is not None:
            return text[start + 7 : close].strip()
        start = text.rfind("\\boxed{", 0, start)
    return ""


def find_boxes(text: str) -> list[ParsedBox]:
    """Every ``[a, b, c, d]`` of four numbers in ``text``, in order (the matches of ``BOX_PATTERN``)."""
    return [(float(a), float(b), float(c), float(d)) for a, b, c, d in BOX_PATTERN.findall(text)]


def format_ok(normalized: str) -> bool:
    """The format rule on tag-normalised text: in full, optional leading whitespace, ``<think>``, anything,
    ``</think>``, anything, ``\\boxed{``, anything, ``}``, anything.

    Each piece is looked for after the previous one, and the earliest occurrence is always the best choice, so one
    pass decides it (the same rule as a regular expression of ``.*`` pieces, which backtracks quadratically on
    repetitive output).
    """
    start = len(normalized) - len(normalized.lstrip())
    if not normalized.startswith("<think>", start):
        return False
    close = normalized.find("</think>", start + 7)
    if close < 0:
        return False
    boxed = normalized.find("\\boxed{", close + 8)
    return boxed >= 0 and normalized.find("}", boxed + 7) >= 0


def _join_box_lines(text: str) -> str:
    """A box written across a line break stays one box (and in one step): its line breaks become spaces."""
    return BOX_PATTERN.sub(lambda m: " ".join(m.group().split()), text)


def split_steps(block: str) -> list[str]:
    """A reasoning block → steps: its lines; a one-line block by "Step N:" markers, else by sentences."""
    lines = [ln.strip() for ln in _join_box_lines(block).splitlines() if ln.strip()]
    if len(lines) > 1:
        return lines
    if not lines:
        return []
    line = lines[0]
    parts = [p.strip() for p in _STEP_MARK.split(line) if p.strip()]
    if len(parts) > 1:
        return parts
    return [p.strip() for p in _SENTENCE_END.split(line) if p.strip()]


class StepDict(TypedDict):
    text: str
    boxes: list[list[float]]


class ParsedCompletionDict(TypedDict):
    answer: str
    format_valid: bool
    steps: list[StepDict]


@dataclass
class Step:
    text: str
    boxes: list[ParsedBox] = field(default_factory=list)


@dataclass
class ParsedCompletion:
    """A completion read against the protocol. Boxes are in the model's frame, as written."""

    text: str
    reasoning_blocks: list[str]
    steps: list[Step]
    answer: str
    format_valid: bool

    @property
    def boxes(self) -> list[ParsedBox]:
        """Every box of every reasoning block, in order."""
        return [b for s in self.steps for b in s.boxes]

    def to_dict(self) -> ParsedCompletionDict:
        return {
            "answer": self.answer,
            "format_valid": self.format_valid,
            "steps": [{"text": s.text, "boxes": [list(b) for b in s.boxes]} for s in self.steps],
        }


def parse_completion(text: str) -> ParsedCompletion:
    """Read a completion: its reasoning blocks split into steps (each with its boxes), the answer, format validity.

    Never raises: malformed text gives format_valid=False and whatever could be read.
    """
    text = text if isinstance(text, str) else str(text)
    norm = normalize_tags(text)
    blocks = _BLOCK.findall(norm)
    return ParsedCompletion(
        text=text,
        reasoning_blocks=blocks,
        steps=[Step(s, find_boxes(s)) for b in blocks for s in split_steps(b)],
        answer=extract_boxed(norm),
        format_valid=format_ok(norm),
    )


def final_answer(text: str) -> str:
    """The answer of a completion: the last ``\\boxed{}``, or — for a model that does not use the protocol —
    the text itself with any reasoning block removed."""
    norm = normalize_tags(text)
    boxed = extract_boxed(norm)
    if boxed or "\\boxed{" in norm:
        return boxed
    return _BLOCK.sub("", norm).strip()


__all__ = [
    "BOX_PATTERN",
    "REASONING_SUFFIX",
    "TASK_PROMPTS",
    "ChatMessage",
    "ContentPart",
    "ParsedBox",
    "ParsedCompletion",
    "ParsedCompletionDict",
    "Step",
    "StepDict",
    "build_messages",
    "build_user_text",
    "extract_boxed",
    "final_answer",
    "find_boxes",
    "format_completion",
    "format_ok",
    "normalize_tags",
    "parse_completion",
    "split_steps",
    "task_prompt",
]

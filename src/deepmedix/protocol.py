"""The grounded output protocol: prompts that ask for it, and the parser that reads it back.

    <think> step 1 ... [x_min, y_min, x_max, y_max] ...; step 2 ... </think> The answer is: \\boxed{answer}

One prompt construction serves training, inference and the cold-start teacher, so what a model is trained on is
exactly what it is asked at inference. The parser is shared by the reward, inference, evaluation and review.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

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


def build_messages(prompt: str, reasoning: bool = True, n_images: int = 1) -> list[dict[str, Any]]:
    """Chat messages in the transformers/TRL multimodal format: image placeholders first, then the text."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": build_user_text(prompt, reasoning)})
    return [{"role": "user", "content": content}]


def format_completion(steps: list[str], answer: str) -> str:
    """Write a completion in the protocol (used by the cold-start teacher template and tests)."""
    body = "\n".join(s.strip() for s in steps if s.strip())
    return f"<think>\n{body}\n</think>\nThe answer is: \\boxed{{{answer}}}"


# --- parsing ---------------------------------------------------------------------------------------------------

# Tags are matched as written (lower case), with any whitespace inside the angle brackets: ``< think >``,
# ``</ think >``, ``< / think >``.
_OPEN_TAG = re.compile(r"<\s*think\s*>")
_CLOSE_TAG = re.compile(r"<\s*/\s*think\s*>")
_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# A number: optional sign, ASCII digits, optional decimal part ("12", "-3", "4.5", ".5", "7.").
_NUM = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
BOX_PATTERN = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
FORMAT_PATTERN = re.compile(r"\s*<think>.*</think>.*\\boxed\{.*\}.*", re.DOTALL)
# BOX_PATTERN with each number loosened to "sign?, then digits and dots": it matches at exactly the positions
# BOX_PATTERN does plus those where a number has no digit or two dots, which float() then rejects (for such
# strings float() accepts exactly _NUM); find_boxes then keeps only the boxes whose numbers match _NUM in full.
# One simple pattern and float() are about twice as fast as BOX_PATTERN.
_LOOSE_BOX = re.compile(r"\[\s*([+-]?[0-9.]+)\s*,\s*([+-]?[0-9.]+)\s*,\s*([+-]?[0-9.]+)\s*,\s*([+-]?[0-9.]+)\s*\]")
_NUM_FULL = re.compile(_NUM)
# Any think tag not written canonically ("< think >", "</ think>", ...): without one, normalize_tags changes nothing.
_LOOSE_TAG = re.compile(r"<\s+/?\s*think|</\s+think|</?think\s+>")
_BOXED_START = re.compile(r"\\boxed\{")
_BRACE = re.compile(r"[{}]")
_STEP_MARK = re.compile(r"(?=\bstep\s*\d+\s*[:.)])", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.;!?])\s+(?=[A-Z])")


def normalize_tags(text: str) -> str:
    """``< think >`` and ``</ think >`` → ``<think>`` and ``</think>`` (Qwen2.5-VL-32B writes the former)."""
    if _LOOSE_TAG.search(text) is None:  # the usual case: one scan instead of two substitutions
        return text
    return _CLOSE_TAG.sub("</think>", _OPEN_TAG.sub("<think>", text))


def extract_boxed(text: str) -> str:
    """Content of the last ``\\boxed{...}`` whose braces balance (nested braces kept); ``""`` when none.

    A trailing ``\\boxed{`` that never closes (a cut-off completion) is skipped for the last one that does.
    """
    last = text.rfind("\\boxed{")
    if last < 0:
        return ""
    content = last + 7
    close = text.find("}", content)
    if close >= 0 and text.find("{", content, close) < 0:  # the usual case: no braces inside
        return text[content:close].strip()
    starts = [m.end() for m in _BOXED_START.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for m in _BRACE.finditer(text, start):
            depth += 1 if m.group() == "{" else -1
            if depth == 0:
                return text[start : m.start()].strip()
    return ""


def find_boxes(text: str) -> list[tuple[float, float, float, float]]:
    """Every ``[a, b, c, d]`` of four numbers in ``text``, in order (the matches of ``BOX_PATTERN``)."""
    if "[" not in text:
        return []
    found = _LOOSE_BOX.findall(text)
    try:
        return [(float(a), float(b), float(c), float(d)) for a, b, c, d in found]
    except ValueError:  # "1.2.3" or ".": not a number by the protocol's rule, so no box (as BOX_PATTERN says)
        return [tuple(map(float, box)) for box in found if all(map(_NUM_FULL.fullmatch, box))]


def reasoning_blocks(normalized: str) -> list[str]:
    """The contents of every ``<think>…</think>`` block of tag-normalised text, in order (what
    ``re.finditer(r"<think>(.*?)</think>", text, re.DOTALL)`` yields, found with ``str.find``)."""
    blocks = []
    pos = 0
    while True:
        start = normalized.find("<think>", pos)
        if start < 0:
            return blocks
        end = normalized.find("</think>", start + 7)
        if end < 0:
            return blocks
        blocks.append(normalized[start + 7 : end])
        pos = end + 8


def format_ok(normalized: str) -> bool:
    """The format rule on tag-normalised text: in full, optional leading whitespace, ``<think>``, anything,
    ``</think>``, anything, ``\\boxed{``, anything, ``}``, anything.

    Same answer as ``FORMAT_PATTERN.fullmatch`` (the tests check it), by three ``str.find`` calls: the earliest
    occurrence of each piece after the previous one is the best choice, so finding them in turn decides it.
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
    if "[" not in text:
        return text
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


@dataclass
class Step:
    text: str
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


@dataclass
class ParsedCompletion:
    """A completion read against the protocol. Boxes are in the model's frame, as written."""

    text: str
    reasoning_blocks: list[str]
    steps: list[Step]
    answer: str
    format_valid: bool

    @property
    def boxes(self) -> list[tuple[float, float, float, float]]:
        return [b for s in self.steps for b in s.boxes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "format_valid": self.format_valid,
            "steps": [{"text": s.text, "boxes": [list(b) for b in s.boxes]} for s in self.steps],
        }


def parse_completion(text: str) -> ParsedCompletion:
    """Read a completion. Never raises: malformed text gives format_valid=False and whatever could be read."""
    text = text if isinstance(text, str) else str(text)
    norm = normalize_tags(text)
    blocks = reasoning_blocks(norm)
    steps = [Step(s, find_boxes(s)) for b in blocks for s in split_steps(b)]
    return ParsedCompletion(
        text=text,
        reasoning_blocks=blocks,
        steps=steps,
        answer=extract_boxed(norm),
        format_valid=format_ok(norm),
    )


@dataclass(frozen=True)
class CompletionOutline:
    """What a reward needs of a completion — the same reading as :func:`parse_completion`, without the steps."""

    answer: str
    format_valid: bool
    boxes: list[tuple[float, float, float, float]]


def outline_completion(text: str) -> CompletionOutline:
    """Answer, format validity and the reasoning blocks' boxes (in order) — cheap enough for a reward's hot loop.

    Equal to ``parse_completion(text)``'s ``answer``, ``format_valid`` and ``boxes``.
    """
    return CompletionOutline(*outline_parts(text))


def outline_parts(text: str) -> tuple[str, bool, list[tuple[float, float, float, float]]]:
    """``outline_completion``'s (answer, format_valid, boxes) as a plain tuple (no object built: the reward's path)."""
    text = text if isinstance(text, str) else str(text)
    norm = normalize_tags(text)
    if "[" not in norm:
        boxes = []
    else:
        blocks = reasoning_blocks(norm)
        boxes = find_boxes(blocks[0]) if len(blocks) == 1 else [b for block in blocks for b in find_boxes(block)]
    return extract_boxed(norm) if "\\boxed{" in norm else "", format_ok(norm), boxes


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
    "FORMAT_PATTERN",
    "REASONING_SUFFIX",
    "TASK_PROMPTS",
    "CompletionOutline",
    "ParsedCompletion",
    "Step",
    "asdict",
    "build_messages",
    "build_user_text",
    "extract_boxed",
    "final_answer",
    "find_boxes",
    "format_completion",
    "format_ok",
    "normalize_tags",
    "outline_completion",
    "outline_parts",
    "parse_completion",
    "reasoning_blocks",
    "split_steps",
    "task_prompt",
]

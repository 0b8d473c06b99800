"""The grounded output protocol: prompts that ask for it, and the parser that reads it back.

    <think> step 1 ... [x_min, y_min, x_max, y_max] ...; step 2 ... </think> The answer is: \\boxed{answer}

One prompt construction serves training, inference and the cold-start teacher, so what a model is trained on is
exactly what it is asked at inference. The parser is shared by the reward, inference, evaluation and review.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2 import nodes as jinja_nodes
from jinja2.sandbox import SandboxedEnvironment

from deepmedix.errors import OptionError

# --- prompts ---------------------------------------------------------------------------------------------------

TASK_PROMPTS: dict[str, str] = {
    "report_findings": "Write the FINDINGS section of the radiology report for this chest X-ray.",
    "report_impression": "Write the IMPRESSION section of the radiology report for this chest X-ray.",
}

# The built-in grounded-reasoning instructions (the project's wording; --prompt-template FILE asks in others): think
# first, cite regions as boxes, answer in \boxed{}.
REASONING_SUFFIX = (
    "You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
    "The reasoning process MUST BE enclosed within <think> </think> tags. While reasoning, analyse the relevant "
    "local regions of the image and cite each one as a bounding box [x_min, y_min, x_max, y_max] in image pixels. "
    "The final answer MUST BE put in \\boxed{}. For example: <think> Step 1: the right lower lung zone "
    "[40, 220, 160, 330] shows ... Step 2: ... </think> The answer is: \\boxed{...}"
)


# New tokens an answer may take when no budget is given: room for the reasoning (each cited box alone is ~20 Qwen2.5
# tokens, one per digit) plus the answer. Reports: the longest Open-I findings section is 238 tokens (99th
# percentile 118), so 1024 leaves ~800 for the reasoning; VQA and grounding answers are at most ~20 tokens.
# docs/inference.md ("Generation budgets") gives the measurement.
TASK_NEW_TOKENS: dict[str, int] = {"report_findings": 1024, "report_impression": 1024, "vqa": 512, "grounding": 512}
LARGEST_NEW_TOKENS = max(TASK_NEW_TOKENS.values())


def new_token_budget(task: str | None) -> int:
    """The default number of new tokens for a task's answer (an unknown task gets the largest)."""
    return TASK_NEW_TOKENS.get(str(task), LARGEST_NEW_TOKENS) if task is not None else LARGEST_NEW_TOKENS


def task_prompt(task: str, question: str | None = None) -> str:
    """The instruction text for a task: a report section, or the question itself for VQA and grounding."""
    if task in TASK_PROMPTS and not question:
        return TASK_PROMPTS[task]
    if not question or not question.strip():
        raise OptionError(f"task {task!r} needs a question")
    return question.strip()


# --- prompt templates ----------------------------------------------------------------------------------------
# The user turn's text is a Jinja template of one variable, ``content`` (the question or task instruction), rendered
# the way the authors' EasyR1 training renders their ``xray_format.jinja``: ``Template(source.strip()).render(
# content=prompt)``. The built-in grounded-reasoning template has that file's form: the content, a blank line, the
# instructions. Asked without reasoning, the model gets the content alone.

TEMPLATE_VARIABLE = "content"
BUILTIN_REASONING_SOURCE = "{{ content | trim }}\n\n" + REASONING_SUFFIX
BUILTIN_PLAIN_SOURCE = "{{ content | trim }}"


class PromptTemplate:
    """A user-turn template read once and checked: ``render(content)`` is the text the model is asked.

    ``name`` is the file's name (``builtin:...`` for the built-in ones) and ``sha256`` the hash of the file's bytes,
    so a run record says exactly which wording was used."""

    def __init__(self, source: str, name: str, sha256: str | None = None, path: str | None = None):
        self.name = name
        self.path = path or name
        self.source = source
        self.sha256 = sha256 or hashlib.sha256(source.encode("utf-8")).hexdigest()
        stripped = source.strip()  # as EasyR1 reads the authors' file: its trailing newline is not part of the text
        # Lines of an error are the file's: count the lines the strip removed at the start.
        self._line_offset = source[: len(source) - len(source.lstrip())].count("\n")
        env = SandboxedEnvironment(undefined=StrictUndefined)
        try:
            parsed = env.parse(stripped)
        except TemplateSyntaxError as e:
            raise self._error(e.lineno, f"template syntax error: {e.message}") from None
        names = [n for n in parsed.find_all(jinja_nodes.Name) if n.ctx == "load"]
        for node in names:
            if node.name != TEMPLATE_VARIABLE and node.name in meta.find_undeclared_variables(parsed):
                raise self._error(
                    node.lineno, f"undefined variable {node.name!r} (a prompt template is given only 'content')"
                )
        if not any(n.name == TEMPLATE_VARIABLE for n in names):
            raise self._error(None, "the template never uses {{ content }}: the question would not reach the model")
        self._template = env.from_string(stripped)
        self.render("Is there a pleural effusion?")  # a template that fails on a plain question fails now, not later

    def render(self, content: str) -> str:
        try:
            return self._template.render(content=content)
        except TemplateError as e:
            raise self._error(_template_line(e), f"{type(e).__name__}: {e}") from None

    def record(self) -> dict[str, str]:
        """The template's identity for a run record or a prediction line."""
        return {"prompt_template": self.name, "prompt_template_sha256": self.sha256}

    def _error(self, line: int | None, message: str) -> OptionError:
        where = self.path if line is None else f"{self.path}, line {line + self._line_offset}"
        return OptionError(f"prompt template {where}: {message}")

    def __repr__(self) -> str:
        return f"PromptTemplate({self.name!r}, sha256={self.sha256[:12]})"


def _template_line(error: BaseException) -> int | None:
    """The template line an error was raised on (Jinja rewrites tracebacks to name the template's lines)."""
    line = getattr(error, "lineno", None)
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def load_prompt_template(path: str | Path | PromptTemplate | None) -> PromptTemplate | None:
    """The template in a ``.jinja`` file (None stays None: the built-in one is used). Every problem — no such file,
    not UTF-8, a syntax error, a variable other than ``content`` — is one :class:`OptionError` naming the file and,
    where there is one, the line."""
    if path is None or isinstance(path, PromptTemplate):
        return path
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise OptionError(f"prompt template {path}: {e.strerror or e}") from None
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise OptionError(f"prompt template {path}, line {line}: not UTF-8 text") from None
    return PromptTemplate(source, path.name, hashlib.sha256(data).hexdigest(), str(path))


# A model trained on a reasoning prompt of its own keeps it beside its weights, so that whoever loads the folder
# asks the way the model was taught (as the chat template travels in the tokenizer's files).
MODEL_PROMPT_FILE = "reasoning_prompt.jinja"


def model_prompt_template(model: str | Path | None) -> PromptTemplate | None:
    """The reasoning prompt a model folder was trained on (``MODEL_PROMPT_FILE`` in it); None for a folder trained
    on the built-in prompt, an embedded model's name or a hub id."""
    if model is None:
        return None
    path = Path(str(model)) / MODEL_PROMPT_FILE
    return load_prompt_template(path) if path.is_file() else None


BUILTIN_REASONING_TEMPLATE = PromptTemplate(BUILTIN_REASONING_SOURCE, "builtin:grounded-reasoning")
BUILTIN_PLAIN_TEMPLATE = PromptTemplate(BUILTIN_PLAIN_SOURCE, "builtin:plain")


def user_prompt_template(reasoning: bool = True, template: PromptTemplate | None = None) -> PromptTemplate:
    """The template a request is rendered with: ``template`` (the grounded-reasoning prompt a user gave) or the
    built-in one when the model is to reason; the content alone when it is not."""
    if not reasoning:
        if template is not None:
            raise OptionError(
                f"prompt template {template.path} is the reasoning prompt, but this request asks without reasoning"
            )
        return BUILTIN_PLAIN_TEMPLATE
    return template or BUILTIN_REASONING_TEMPLATE


def build_user_text(prompt: str, reasoning: bool = True, template: PromptTemplate | None = None) -> str:
    """The user turn's text: the instruction rendered by the prompt template (by default the instruction, a blank
    line and the protocol instructions when the model is to reason; the instruction alone when not)."""
    return user_prompt_template(reasoning, template).render(prompt)


class ContentPart(TypedDict, total=False):
    """One part of a message's content: ``{"type": "image"}`` or ``{"type": "text", "text": ...}``."""

    type: str
    text: str


class ChatMessage(TypedDict):
    """A chat message in the transformers/TRL format; TRL's conversational completions are lists of these."""

    role: str
    content: str | list[ContentPart]


def build_messages(
    prompt: str, reasoning: bool = True, n_images: int = 1, template: PromptTemplate | None = None
) -> list[ChatMessage]:
    """Chat messages in the transformers/TRL multimodal format: image placeholders first, then the text (the
    template replaces only the text; images stay parts of their own)."""
    content: list[ContentPart] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": build_user_text(prompt, reasoning, template)})
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
    "BUILTIN_PLAIN_TEMPLATE",
    "BUILTIN_REASONING_TEMPLATE",
    "LARGEST_NEW_TOKENS",
    "MODEL_PROMPT_FILE",
    "REASONING_SUFFIX",
    "TASK_NEW_TOKENS",
    "TASK_PROMPTS",
    "ChatMessage",
    "ContentPart",
    "ParsedBox",
    "ParsedCompletion",
    "ParsedCompletionDict",
    "PromptTemplate",
    "Step",
    "StepDict",
    "build_messages",
    "build_user_text",
    "extract_boxed",
    "final_answer",
    "find_boxes",
    "format_completion",
    "format_ok",
    "load_prompt_template",
    "model_prompt_template",
    "new_token_budget",
    "normalize_tags",
    "parse_completion",
    "split_steps",
    "task_prompt",
    "user_prompt_template",
]

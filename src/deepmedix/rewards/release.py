"""``release`` mode: the reward exactly as the authors' released code computes it.

Reference: ``compute_xray_score`` in github.com/DeepReasoning/DeepMedix-R1, ``src/reward.py`` (an EasyR1 reward
function, Apache-2.0), with mathruler 0.1.0's ``extract_boxed_content``. Every behaviour below is theirs; the test
suite compares this module with a verbatim copy of that code, value for value. Only the speed differs (cached stems
and reference counts, see :mod:`.metrics`).

The released behaviour, quirk by quirk:
- whitespace around every ``<``, ``>`` and ``/`` is removed from the whole completion before anything else (this
  also changes the answer text: ``"a / b"`` becomes ``"a/b"``);
- format: the text must match ``<think>.*</think>.*\\boxed\\{.*\\}.*`` in full (no text before ``<think>``);
- the answer is mathruler's: the content of the LAST ``\\boxed{`` if its braces close, else the string ``"None"``;
  an empty answer becomes ``" "``;
- the answer type is guessed from the label: a ``|`` in a label of at most 20 words → multi (F1 over the
  ``|``-separated, stripped, lower-cased items; precision and recall divide by the list lengths, duplicates and
  empty items included); else a label of at most 2 words → closed (``answer.lower() == label.lower()``, nothing
  stripped from the label); else open: (BLEU-1 + BLEU-4 + "ROUGE-L") / 3 where BLEU is nltk sentence_bleu with
  smoothing method2 over CHARACTERS (strings given raw) and "ROUGE-L" is rouge-score's ROUGE-1 F with stemming;
- coordinate: only the first ``<think>`` block; boxes match ``\\[([-+]?\\d*\\.?\\d+(?:,\\s*[-+]?\\d*\\.?\\d+){3})\\]``
  (no space after ``[`` or before a comma); a box with any coordinate above 512 scores −0.2, any other +0.05
  (negative, reversed and empty boxes included); the sum is capped at 0.15.
"""

from __future__ import annotations

import re

from deepmedix.data.enums import guess_answer_type  # the released typing rule lives on the data floor
from deepmedix.rewards import metrics
from deepmedix.rewards.score import DEFAULT_LAMBDA, AnswerType, RewardMode, RewardScore

_WS_AROUND_TAG_CHARS = re.compile(r"\s*(<|>|/)\s*")
_FORMAT = re.compile(r"<think>.*</think>.*\\boxed\{.*\}.*", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_BOX = re.compile(r"\[([-+]?\d*\.?\d+(?:,\s*[-+]?\d*\.?\d+){3})\]")
_BOXED = "\\boxed{"


def mathruler_boxed(text: str) -> str:
    """mathruler 0.1.0 ``extract_boxed_content``: the last ``\\boxed{...}`` (stripped), else ``"None"``."""
    start = text.rfind(_BOXED)
    if start == -1:
        return "None"
    content_start = start + len(_BOXED)
    depth = 0
    for i in range(content_start, len(text)):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == -1:
                return text[content_start:i].strip()
    return "None"


def release_answer(text: str, label: str) -> tuple[float, AnswerType]:
    """The released accuracy term (already × 1.5) and the guessed answer type; ``text`` already de-spaced."""
    answer = mathruler_boxed(text)
    if len(answer) == 0:
        answer = " "
    answer_type = guess_answer_type(label)
    if answer_type == AnswerType.MULTI:
        labels = [item.strip().lower() for item in label.strip().split("|")]
        predicted = [item.strip().lower() for item in answer.strip().split("|")]
        overlap = len(set(labels) & set(predicted))
        precision = overlap / len(predicted) if len(predicted) > 0 else 0
        recall = overlap / len(labels) if len(labels) > 0 else 0
        f1 = 2 * (precision * recall) / (precision + recall) if (precision + recall) > 0 else 0
        return f1 * 1.5, answer_type
    if answer_type == AnswerType.CLOSED:
        return (1.5 if answer.lower() == label.lower() else 0.0), answer_type
    bleu1, bleu4 = metrics.bleu_1_4(label, answer)  # strings: character n-grams, as nltk reads them
    # rouge-score's score(target=answer, prediction=label); ROUGE-1 F, reported by the released code as ROUGE-L
    rouge1 = metrics.rouge_1_f(metrics.rouge_tokens(answer), metrics.rouge_tokens(label))
    return (bleu1 + bleu4 + rouge1) / 3 * 1.5, answer_type


def release_coordinate(text: str) -> float:
    """The released box term: first reasoning block only, 'above 512' is the only invalid."""
    first = _THINK.search(text)
    if first is None:
        return 0.0
    value = 0.0
    for match in _BOX.findall(first.group(1)):
        if max(float(a.strip()) for a in match.split(",")) > 512:
            value += -0.2
        else:
            value += 0.05
    if value > 0.15:
        value = 0.15
    return value


def release_score(completion: str, label: str, lam: float = DEFAULT_LAMBDA) -> RewardScore:
    """``compute_xray_score`` for one completion, as a :class:`~deepmedix.rewards.score.RewardScore`."""
    text = _WS_AROUND_TAG_CHARS.sub(r"\1", completion)
    fmt = 1.0 if _FORMAT.fullmatch(text) else 0.0
    answer, answer_type = release_answer(text, label)
    coordinate = release_coordinate(text)
    total = (1 - lam) * answer + lam * fmt + coordinate
    return RewardScore(
        answer=answer,
        format=fmt,
        coordinate=coordinate,
        total=total,
        mode=RewardMode.RELEASE,
        answer_type=answer_type,
        details={"coordinate_rule": "release"},
    )

"""BLEU and ROUGE for the reward's hot loop: the exact numbers of nltk and rouge-score, computed faster.

The reward is called once per sampled completion during GRPO, so its text metrics run millions of times. The
libraries' own entry points spend most of their time on set-up (nltk builds ``Fraction`` objects and re-counts the
reference; rouge-score stems every token anew and fills an O(n·m) LCS table in Python). What no library offers is
written here: the same formulas with cached stems and reference counts and a bit-parallel LCS. The test suite
checks every function against the library call it replaces, value for value.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

# rouge-score's own patterns, so tokenisation cannot drift from it.
from rouge_score.tokenize import NON_ALPHANUM_RE, SPACES_RE, VALID_TOKEN_RE

_MAX_ORDER = 4
_ALPHANUM_RUN = re.compile(r"[a-z0-9]+")
_STEM_CACHE_LIMIT = 500_000


class _Stems:
    """Porter stems (rouge-score's stemmer and rule: only tokens longer than 3 characters), memoised per word.

    The memo maps a raw lower-case token to rouge-score's final token, or to ``""`` when rouge-score drops it.
    """

    def __init__(self) -> None:
        self._stemmer: Any = None
        self.memo: dict[str, str] = {"": ""}

    def token(self, raw: str) -> str:
        out = raw
        if len(raw) > 3:
            if self._stemmer is None:
                from nltk.stem import porter

                self._stemmer = porter.PorterStemmer()  # what rouge_score.tokenizers.DefaultTokenizer builds
            out = self._stemmer.stem(raw)
        final = out if VALID_TOKEN_RE.match(out) else ""
        if len(self.memo) < _STEM_CACHE_LIMIT:
            self.memo[raw] = final
        return final

    def clear(self) -> None:
        self.memo = {"": ""}


STEMS = _Stems()


def rouge_tokens(text: str, stem: bool = True) -> list[str]:
    """Tokens exactly as ``rouge_score``'s DefaultTokenizer(use_stemmer=stem) makes them."""
    if not stem:
        return [r for r in SPACES_RE.split(NON_ALPHANUM_RE.sub(" ", text.lower())) if VALID_TOKEN_RE.match(r)]
    # rouge-score replaces every non-[a-z0-9] run by a space and splits on whitespace: its raw tokens are exactly
    # the [a-z0-9] runs of the lower-cased text, which one findall yields.
    raw = _ALPHANUM_RUN.findall(text.lower())
    tokens = list(map(STEMS.memo.get, raw))
    if None in tokens:
        token = STEMS.token
        tokens = [t if t is not None else token(r) for t, r in zip(tokens, raw, strict=True)]
    return list(filter(None, tokens))


def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence (Hyyrö's bit-vector algorithm: one big-int step per item of b)."""
    if not a or not b:
        return 0
    masks: dict[Any, int] = {}
    bit = 1
    for item in a:
        masks[item] = masks.get(item, 0) | bit
        bit <<= 1
    full = bit - 1
    v = full
    get = masks.get
    for item in b:
        m = get(item)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _fmeasure(precision: float, recall: float) -> float:
    """rouge_score.scoring.fmeasure, same operation order."""
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f(target_tokens: Sequence[str], prediction_tokens: Sequence[str]) -> float:
    """rouge-score's ``rougeL`` F-measure on already-tokenised text."""
    if not target_tokens or not prediction_tokens:
        return 0.0
    lcs = lcs_length(target_tokens, prediction_tokens)
    precision = lcs / len(prediction_tokens)
    recall = lcs / len(target_tokens)
    return _fmeasure(precision, recall)


def rouge_1_f(target_tokens: Sequence[str], prediction_tokens: Sequence[str]) -> float:
    """rouge-score's ``rouge1`` F-measure on already-tokenised text."""
    target_counts = Counter(target_tokens)
    prediction_counts = Counter(prediction_tokens)
    overlap = 0
    for token, count in target_counts.items():
        other = prediction_counts.get(token)
        if other:
            overlap += min(count, other)
    precision = overlap / max(len(prediction_tokens), 1)
    recall = overlap / max(len(target_tokens), 1)
    return _fmeasure(precision, recall)


def _ngrams(seq: Sequence[Any], n: int) -> Any:
    if n == 1:
        return seq
    if n == 2:
        return zip(seq, seq[1:], strict=False)
    if n == 3:
        return zip(seq, seq[1:], seq[2:], strict=False)
    return zip(*(seq[i:] for i in range(n)), strict=False)


class _Reference:
    """A reference's n-grams for orders 1..4 (sets; counts made when a hypothesis repeats an n-gram)."""

    __slots__ = ("counts", "length", "seq", "sets")

    def __init__(self, seq: Sequence[Any]) -> None:
        self.seq = seq
        self.length = len(seq)
        self.sets: list[set | None] = [None] * _MAX_ORDER
        self.counts: list[Counter | None] = [None] * _MAX_ORDER

    def set(self, n: int) -> set:
        grams = self.sets[n - 1]
        if grams is None:
            grams = self.sets[n - 1] = set(_ngrams(self.seq, n))
        return grams

    def count(self, n: int) -> Counter:
        counts = self.counts[n - 1]
        if counts is None:
            counts = self.counts[n - 1] = Counter(_ngrams(self.seq, n))
        return counts


@lru_cache(maxsize=4096)
def _reference(reference: tuple[Any, ...] | str) -> _Reference:
    """A reference, analysed once (GRPO scores each reference against a whole group of completions)."""
    return _Reference(reference)


def _clipped_matches(hypothesis: Sequence[Any], n: int, ref: _Reference) -> int:
    """nltk's modified-precision numerator: hypothesis n-grams matched, each clipped to its reference count."""
    if n > 1:
        unique = set(_ngrams(hypothesis, n))
        if len(unique) == len(hypothesis) - n + 1:  # no repeats: each shared n-gram matches once (set speed)
            return len(unique.intersection(ref.set(n)))
    # unigrams nearly always repeat ("the"): count straight away
    ref_counts = ref.count(n)
    clipped = 0
    for gram, count in Counter(_ngrams(hypothesis, n)).items():
        available = ref_counts.get(gram)
        if available:
            clipped += count if count < available else available
    return clipped


def _bleu_from_counts(numerators: list[int], hyp_len: int, ref_len: int) -> tuple[float, float]:
    if numerators[0] == 0:
        return 0.0, 0.0
    # hyp_len > 0 here: a match needs a hypothesis token
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    # nltk's denominators: max(1, number of hypothesis n-grams); method2 adds one to both terms above order 1
    logs = [math.log(numerators[0] / hyp_len)] + [
        math.log((numerators[i] + 1) / (max(1, hyp_len - i) + 1)) for i in range(1, _MAX_ORDER)
    ]
    bleu1 = brevity * math.exp(math.fsum([logs[0], 0 * logs[1], 0 * logs[2], 0 * logs[3]]))
    bleu4 = brevity * math.exp(math.fsum([0.25 * x for x in logs]))
    return bleu1, bleu4


def bleu_1_4(reference: Sequence[Any], hypothesis: Sequence[Any], *, _ref: _Reference | None = None
             ) -> tuple[float, float]:
    """nltk ``sentence_bleu([reference], hypothesis, weights, SmoothingFunction().method2)`` for BLEU-1 and BLEU-4.

    ``reference`` and ``hypothesis`` are token sequences (a ``str`` is a sequence of characters, as nltk reads it).
    """
    ref = _ref or _reference(reference if isinstance(reference, str) else tuple(reference))
    hyp_len = len(hypothesis)
    numerators = [0] * _MAX_ORDER
    for n in range(1, min(hyp_len, _MAX_ORDER) + 1):
        numerators[n - 1] = _clipped_matches(hypothesis, n, ref)
        if numerators[n - 1] == 0:  # no n-gram shared: no longer one is either
            break
    return _bleu_from_counts(numerators, hyp_len, ref.length)


class OpenReference:
    """Everything the open-text answer score needs of a reference, computed once per reference text."""

    __slots__ = ("bleu", "lcs_masks", "rouge_tokens")

    def __init__(self, reference: str) -> None:
        self.bleu = _Reference(tuple(reference.lower().split()))
        self.rouge_tokens = rouge_tokens(reference)
        masks: dict[str, int] = {}
        bit = 1
        for token in self.rouge_tokens:
            masks[token] = masks.get(token, 0) | bit
            bit <<= 1
        self.lcs_masks = masks


@lru_cache(maxsize=4096)
def open_reference(reference: str) -> OpenReference:
    return OpenReference(reference)


def open_scores(prediction: str, reference: str) -> tuple[float, float, float]:
    """(BLEU-1, BLEU-4, ROUGE-L) of the paper's open-text answer score; see ``core.open_text_scores``."""
    ref = open_reference(reference)
    hypothesis = prediction.lower().split()
    bleu1, bleu4 = bleu_1_4((), hypothesis, _ref=ref.bleu) if hypothesis else (0.0, 0.0)
    target = ref.rouge_tokens
    predicted = rouge_tokens(prediction)
    if not target or not predicted:
        return bleu1, bleu4, 0.0
    # Hyyrö's bit-vector LCS over the cached reference masks (see lcs_length)
    full = (1 << len(target)) - 1
    v = full
    get = ref.lcs_masks.get
    for token in predicted:
        m = get(token)
        if m:
            u = v & m
            v = ((v + u) | (v - u)) & full
    lcs = len(target) - v.bit_count()
    precision = lcs / len(predicted)
    recall = lcs / len(target)
    return bleu1, bleu4, _fmeasure(precision, recall)


def clear_caches() -> None:
    """Forget cached stems and reference counts (for honest cold-start timing)."""
    STEMS.clear()
    _reference.cache_clear()
    open_reference.cache_clear()

"""BLEU and ROUGE for the reward's hot loop: the exact numbers of nltk and rouge-score, computed faster.

The reward is called once per sampled completion during GRPO, so its text metrics run millions of times. The
libraries' own entry points spend most of their time on set-up (nltk builds ``Fraction`` objects and re-counts the
reference; rouge-score stems every token anew and fills an O(n·m) LCS table in Python). What no library offers is
written here: the same formulas with stems memoised per word, each text split once for both metrics, reference
n-grams and masks analysed once per reference, and a bit-parallel LCS. Stems come from nltk's Porter
stemmer (what rouge-score uses), memoised per word; importing nltk costs about a second, once per process. The test suite checks every function
against the library call it replaces, value for value.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Sequence
from functools import lru_cache
from itertools import chain, groupby
from typing import Any

# rouge-score's own pattern, so tokenisation cannot drift from it.
from rouge_score.tokenize import VALID_TOKEN_RE

_MAX_ORDER = 4
_ALPHANUM_RUN = re.compile(r"[a-z0-9]+")
_STEM_CACHE_LIMIT = 500_000


class _Stems:
    """Porter stems (rouge-score's stemmer and rule: only tokens longer than 3 characters), memoised per word.

    ``memo`` maps a raw lower-case ``[a-z0-9]+`` token to rouge-score's final token, or to ``""`` when rouge-score
    drops it. ``words`` maps a lower-cased whitespace-separated word (what BLEU counts) to the tuple of final tokens
    rouge-score makes of it (``"effusion."`` → ``("effus",)``, ``"x-ray"`` → ``("x", "ray")``): reports reuse a small
    vocabulary, so one dict look-up per word replaces a regex pass and a stem look-up per token.
    """

    def __init__(self) -> None:
        self._stemmer: Any = None
        self.memo: dict[str, str] = {"": ""}
        self.words: dict[str, tuple[str, ...]] = {}

    def token(self, raw: str) -> str:
        out = raw
        if len(raw) > 3:
            if self._stemmer is None:
                # rouge_score.tokenizers.DefaultTokenizer builds the same nltk PorterStemmer(). Imported at the first
                # stemmed word, not with the module: ``import nltk`` loads scipy and scikit-learn (about 1.4 s), which
                # a process that scores no open text (the ``deepmedix`` command at start, VQA) never needs.
                from nltk.stem.porter import PorterStemmer

                self._stemmer = PorterStemmer()
            out = self._stemmer.stem(raw)
        final = out if VALID_TOKEN_RE.match(out) else ""
        if len(self.memo) < _STEM_CACHE_LIMIT:
            self.memo[raw] = final
        return final

    def word(self, word: str) -> tuple[str, ...]:
        """rouge-score's tokens of one lower-cased whitespace-free word, memoised."""
        get = self.memo.get
        tokens = []
        for raw in _ALPHANUM_RUN.findall(word):
            final = get(raw)
            if final is None:
                final = self.token(raw)
            if final:
                tokens.append(final)
        out = tuple(tokens)
        if len(self.words) < _STEM_CACHE_LIMIT:
            self.words[word] = out
        return out

    def clear(self) -> None:
        self.memo = {"": ""}
        self.words = {}

    def snapshot(self) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
        """Copies of both memos (``restore`` puts them back; for benchmarks that time a warm memo)."""
        return dict(self.memo), dict(self.words)

    def restore(self, saved: tuple[dict[str, str], dict[str, tuple[str, ...]]]) -> None:
        self.memo, self.words = dict(saved[0]), dict(saved[1])


STEMS = _Stems()


def rouge_tokens(text: str) -> list[str]:
    """Tokens exactly as ``rouge_score``'s DefaultTokenizer(use_stemmer=True) makes them."""
    return words_rouge_tokens(text.lower().split())


def words_rouge_tokens(words: Sequence[str]) -> list[str]:
    """rouge-score's stemmed tokens of a text given as its lower-cased whitespace-split words.

    rouge-score replaces every non-[a-z0-9] run by a space and splits on whitespace: its raw tokens are exactly the
    [a-z0-9] runs of the lower-cased text, and no run crosses whitespace, so the text's tokens are its words'
    tokens in order (each word's tuple memoised in ``STEMS.words``).
    """
    try:  # every word memoised (the usual case): chain fails on the None of an unknown word
        return list(chain.from_iterable(map(STEMS.words.get, words)))
    except TypeError:
        get, word = STEMS.words.get, STEMS.word
        return [token for w in words for token in (get(w) if w in STEMS.words else word(w))]


def lcs_masks(a: Sequence[Hashable]) -> dict[Hashable, int]:
    """Each item of ``a`` → the bit mask of its positions in ``a`` (bit i set when ``a[i]`` is the item): what the
    bit-vector LCS needs of one side, computed once for a reference."""
    masks: dict[Hashable, int] = {}
    bit = 1
    for item in a:
        masks[item] = masks.get(item, 0) | bit
        bit <<= 1
    return masks


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable], a_masks: dict[Hashable, int] | None = None) -> int:
    """Length of the longest common subsequence (Hyyrö's bit-vector algorithm: one big-int step per item of b).

    ``a_masks``: :func:`lcs_masks` of ``a``, when already computed.
    """
    if not a or not b:
        return 0
    get = (a_masks if a_masks is not None else lcs_masks(a)).get
    full = (1 << len(a)) - 1
    v = full
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


def _bleu_from_counts(numerators: list[int], hyp_len: int, ref_len: int) -> tuple[float, float]:
    if numerators[0] == 0:
        return 0.0, 0.0
    # hyp_len > 0 here: a match needs a hypothesis token
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    # nltk's denominators: max(1, number of hypothesis n-grams); method2 adds one to both terms above order 1
    logs = [math.log(numerators[0] / hyp_len)] + [
        math.log((numerators[i] + 1) / (max(1, hyp_len - i) + 1)) for i in range(1, _MAX_ORDER)
    ]
    # nltk sums w·log p with fsum; for weights (1, 0, 0, 0) that exact sum is logs[0] itself (the others are ±0.0)
    bleu1 = brevity * math.exp(logs[0])
    bleu4 = brevity * math.exp(math.fsum([0.25 * x for x in logs]))
    return bleu1, bleu4


def bleu_1_4(
    reference: Sequence[Any], hypothesis: Sequence[Any], *, _ref: _Reference | None = None
) -> tuple[float, float]:
    """nltk ``sentence_bleu([reference], hypothesis, weights, SmoothingFunction().method2)`` for BLEU-1 and BLEU-4.

    ``reference`` and ``hypothesis`` are token sequences (a ``str`` is a sequence of characters, as nltk reads it).
    """
    ref = _ref or _reference(reference if isinstance(reference, str) else tuple(reference))
    hyp_len = len(hypothesis)
    numerators = [0] * _MAX_ORDER
    if not hyp_len:
        return _bleu_from_counts(numerators, hyp_len, ref.length)
    # nltk's modified precision: hypothesis n-grams matched, each clipped to its reference count
    ref_counts = ref.count(1)
    hyp_counts = Counter(hypothesis)
    matched = 0
    for token, count in hyp_counts.items():
        available = ref_counts.get(token)
        if available:
            matched += count if count < available else available
    numerators[0] = matched
    if matched and hyp_len > 1:
        # An n-gram with a word the reference lacks matches nothing, so only n-grams inside the hypothesis's runs of
        # shared words are counted (a report shares about half its words with another: half the n-grams to build).
        shared = hyp_counts.keys() & ref_counts.keys()
        runs = [tuple(run) for inside, run in groupby(hypothesis, shared.__contains__) if inside]
        for n in range(2, min(hyp_len, _MAX_ORDER) + 1):
            unique = {gram for run in runs if len(run) >= n for gram in _ngrams(run, n)}
            if len(unique) == sum(len(run) - n + 1 for run in runs if len(run) >= n):
                # no repeats: each shared n-gram matches once (set speed)
                matched = len(unique.intersection(ref.set(n)))
            else:
                ref_counts_n = ref.count(n)
                matched = 0
                grams = Counter(gram for run in runs if len(run) >= n for gram in _ngrams(run, n))
                for gram, count in grams.items():
                    available = ref_counts_n.get(gram)
                    if available:
                        matched += count if count < available else available
            numerators[n - 1] = matched
            if matched == 0:  # no n-gram shared: no longer one is either
                break
    return _bleu_from_counts(numerators, hyp_len, ref.length)


class OpenReference:
    """Everything the open-text answer score needs of a reference, computed once per reference text."""

    __slots__ = ("bleu", "lcs_masks", "rouge_tokens")

    def __init__(self, reference: str) -> None:
        words = tuple(reference.lower().split())  # one split serves BLEU's tokens and ROUGE's
        self.bleu = _Reference(words)
        self.rouge_tokens = words_rouge_tokens(words)
        self.lcs_masks = lcs_masks(self.rouge_tokens)


@lru_cache(maxsize=4096)
def open_reference(reference: str) -> OpenReference:
    return OpenReference(reference)


def open_scores(prediction: str, reference: str) -> tuple[float, float, float]:
    """(BLEU-1, BLEU-4, ROUGE-L) of the paper's open-text answer score; see ``core.open_text_scores``."""
    ref = open_reference(reference)
    hypothesis = prediction.lower().split()  # one split serves BLEU's tokens and ROUGE's
    bleu1, bleu4 = bleu_1_4((), hypothesis, _ref=ref.bleu) if hypothesis else (0.0, 0.0)
    target = ref.rouge_tokens
    predicted = words_rouge_tokens(hypothesis)
    if not target or not predicted:
        return bleu1, bleu4, 0.0
    lcs = lcs_length(target, predicted, ref.lcs_masks)
    precision = lcs / len(predicted)
    recall = lcs / len(target)
    return bleu1, bleu4, _fmeasure(precision, recall)


def clear_caches() -> None:
    """Forget cached stems and reference counts (for honest cold-start timing)."""
    STEMS.clear()
    _reference.cache_clear()
    open_reference.cache_clear()

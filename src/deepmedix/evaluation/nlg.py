"""Report NLG metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr exactly as pycocoevalcap computes them.

The COCO convention is kept: both sides go through pycocoevalcap's own Stanford PTBTokenizer (lower-cased,
punctuation dropped) before scoring, and the scorers are pycocoevalcap's own classes, so the numbers equal a direct
pycocoevalcap run on the same text. Two things are done differently, neither of which changes a number:

* the tokenizer's Java program is called with its input file in a private temporary folder (pycocoevalcap writes it
  into its own package folder, which fails on a read-only install and is shared by parallel runs);
* text is sanitised first: every character Java or the METEOR protocol reads as a line break becomes a space and the
  METEOR field separator ``|||`` is removed, so a stray newline can neither shift lines nor hang the METEOR process.

One METEOR process (JVM start and paraphrase table load take several seconds) is kept for a whole run. It is sent all
segments at once while its replies are collected, rather than one round trip per segment as pycocoevalcap's
``Meteor.compute_score`` does; the lines sent and read are the same, so the numbers are too, and the JVM works while
Python computes the other metrics (:meth:`NLGScorer.start`, :meth:`NLGScorer.finish`).

Besides the scores, every sample's sufficient statistics are kept: BLEU's n-gram match/guess counts and lengths and
METEOR's statistics line, from which the corpus scores of any resample are recomputed exactly
(:mod:`deepmedix.evaluation.resampling`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypedDict

import numpy as np
import pycocoevalcap
from pycocoevalcap.bleu.bleu_scorer import BleuScorer
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS, STANFORD_CORENLP_3_4_1_JAR

log = logging.getLogger(__name__)

NLG_METRICS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider")

# Everything Java's line readers or Stanford's PTBLexer treat as a line end.
_LINE_BREAKS = re.compile("[\r\n\u2028\u2029\u000b\u000c\u0085]")


def sanitize(text: str) -> str:
    """One line of text that the PTB tokenizer and the METEOR protocol both read as exactly one record."""
    text = text if isinstance(text, str) else ("" if text is None else str(text))
    return _LINE_BREAKS.sub(" ", text).replace("|||", " ")


class NLGStats(TypedDict):
    """Each sample's sufficient statistics, from which corpus BLEU and METEOR of any resample are recomputed."""

    bleu: list[list[int]]  # BLEU_COUNTS per sample
    meteor: list[str]  # the METEOR jar's statistics line per sample (empty without METEOR)


class NLGScores(TypedDict):
    """Corpus scores (None: not computed), per-sample scores by metric, and per-sample statistics."""

    corpus: dict[str, float | None]
    per_sample: dict[str, list[float]]
    stats: NLGStats


# BLEU's per-sample counts, in the order kept: summed over a corpus they give pycocoevalcap's corpus BLEU.
BLEU_COUNTS = (
    "testlen",
    "reflen",
    "guess_1",
    "guess_2",
    "guess_3",
    "guess_4",
    "correct_1",
    "correct_2",
    "correct_3",
    "correct_4",
)
# The thread that feeds METEOR reads the jar's replies in large chunks with this pause between reads. Reading line by
# line would wake it (and take the interpreter lock) per reply; with CPython's 5 ms switch interval each wake-up can
# stall the thread computing BLEU/ROUGE/CIDEr meanwhile, and the two then run slower together than one after the other.
METEOR_READ_PAUSE_S = 0.02
# Summed statistics lines per EVAL line when METEOR is recomputed for resamples.
METEOR_EVAL_BATCH = 1000


def _package_dir(sub: str) -> Path:
    return Path(list(pycocoevalcap.__path__)[0]) / sub


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer on a list of texts (same jar, flags and punctuation filter), one line each.

    Each distinct text is tokenized once (``-preserveLines`` tokenizes every line on its own)."""
    if not texts:
        return []
    lines = [sanitize(t) for t in texts]
    distinct = list(dict.fromkeys(lines))
    tokens = dict(zip(distinct, _ptb_tokenize_lines(distinct), strict=True))
    return [tokens[line] for line in lines]


def _ptb_tokenize_lines(lines: list[str]) -> list[str]:
    jar = _package_dir("tokenizer") / STANFORD_CORENLP_3_4_1_JAR
    with tempfile.TemporaryDirectory(prefix="deepmedix-ptb-") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_text("\n".join(lines), encoding="utf-8")
        proc = subprocess.run(
            [
                "java",
                "-cp",
                str(jar),
                "edu.stanford.nlp.process.PTBTokenizer",
                "-preserveLines",
                "-lowerCase",
                src.name,
            ],
            cwd=tmp,
            capture_output=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"PTB tokenizer failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
    out = proc.stdout.decode("utf-8").split("\n")
    # Empty trailing inputs can come back without their (empty) lines; anything else is a protocol break.
    if len(out) < len(lines):
        out += [""] * (len(lines) - len(out))
    if any(o.strip() for o in out[len(lines) :]):
        raise RuntimeError(f"PTB tokenizer returned {len(out)} lines for {len(lines)} texts")
    return [" ".join(w for w in o.rstrip().split(" ") if w not in PUNCTUATIONS) for o in out[: len(lines)]]


def _stop_meteor(meteor: Meteor) -> None:
    """End a pycocoevalcap Meteor's process; its own ``__del__`` then finds everything closed and does nothing."""
    proc = meteor.meteor_p
    with meteor.lock:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        proc.kill()
        proc.wait()


def bleu_with_counts(
    gts: dict[int, list[str]], res: dict[int, list[str]]
) -> tuple[list[float], list[list[float]], list[list[int]]]:
    """pycocoevalcap's ``Bleu(4).compute_score`` (its BleuScorer, option "closest"), plus each sample's counts."""
    scorer = BleuScorer(n=4)
    for i in gts:
        scorer += (res[i][0], gts[i])
    score, each = scorer.compute_score(option="closest", verbose=0)
    counts = [
        [c["testlen"], scorer._single_reflen(c["reflen"], "closest", c["testlen"]), *c["guess"], *c["correct"]]
        for c in scorer.ctest
    ]
    return score, each, counts


def _meteor_replies(proc: subprocess.Popen[bytes], n: int, pause: float = METEOR_READ_PAUSE_S) -> list[str]:
    """The next ``n`` reply lines of the METEOR jar, read in large chunks (see ``METEOR_READ_PAUSE_S``)."""
    stdout = proc.stdout
    chunks: list[bytes] = []
    seen = 0
    while seen < n:
        data = stdout.read1(1 << 20) if stdout else b""
        if not data:
            raise ValueError("no reply")
        chunks.append(data)
        seen += data.count(b"\n")
        if seen < n:
            time.sleep(pause)
    lines = b"".join(chunks).split(b"\n")
    if seen != n or lines[-1]:
        raise ValueError(f"{seen} reply lines where {n} were expected")
    return [line.decode().strip() for line in lines[:n]]


def _write_all(stream: IO[bytes], data: bytes, failed: list[BaseException]) -> None:
    try:
        stream.write(data)
        stream.flush()
    except (OSError, ValueError) as e:  # the jar died: the reader sees it too
        failed.append(e)


def meteor_score(
    meteor: Meteor, hypotheses: Sequence[str], references: Sequence[str]
) -> tuple[float, list[float], list[str]]:
    """pycocoevalcap's ``Meteor.compute_score`` on one reference per sample — the same SCORE and EVAL lines, so the same
    numbers — without a round trip per segment: a thread writes every SCORE line while this one collects the replies;
    also returns each segment's statistics."""
    proc = meteor.meteor_p
    lines = "".join(
        "SCORE ||| {} ||| {}\n".format(ref, hyp.replace("|||", "").replace("  ", " "))
        for hyp, ref in zip(hypotheses, references, strict=True)
    ).encode()
    with meteor.lock:
        failed: list[BaseException] = []
        # the jar answers each line as it reads it, so writing and reading must go on at once
        writer = threading.Thread(target=_write_all, args=(proc.stdin, lines, failed), daemon=True)
        writer.start()
        stats = _meteor_replies(proc, len(hypotheses))
        writer.join()
        if failed:
            raise BrokenPipeError(str(failed[0]))
        proc.stdin.write("EVAL{}\n".format("".join(f" ||| {s}" for s in stats)).encode())
        proc.stdin.flush()
        replies = _meteor_replies(proc, len(stats) + 1)
    return float(replies[-1]), [float(x) for x in replies[:-1]], stats


@dataclass
class NLGRun:
    """Scoring in progress: the sanitised pairs, and METEOR working in its own process meanwhile."""

    gts: dict[int, list[str]]
    res: dict[int, list[str]]
    meteor: Future[tuple[float, list[float], list[str]]] | None


class NLGScorer:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr on (prediction, reference) pairs; one METEOR process for its lifetime.

    :meth:`start` hands METEOR its segments (the jar works in its own process, fed by a thread) and returns at once;
    :meth:`finish` computes BLEU, ROUGE-L and CIDEr in Python meanwhile and then collects METEOR. Work done between
    the two (the clinical metrics) overlaps the jar as well.
    """

    def __init__(self, meteor: bool = True) -> None:
        self.use_meteor = meteor
        self._meteor: Meteor | None = None
        self._threads: ThreadPoolExecutor | None = None

    def _meteor_scorer(self) -> Meteor:
        if self._meteor is None:
            self._meteor = Meteor()
        return self._meteor

    def warm_up(self) -> None:
        """Start the METEOR process now: its JVM loads its tables while other work goes on."""
        if self.use_meteor:
            self._meteor_scorer()

    def in_background(self) -> ThreadPoolExecutor:
        """Threads for work that waits on a Java process (the tokenizer, METEOR) while Python computes."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="deepmedix-nlg")
        return self._threads

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        if self._meteor is not None:
            _stop_meteor(self._meteor)
            self._meteor = None

    def __enter__(self) -> NLGScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tokenize(self, texts: Sequence[str]) -> Future[list[str]]:
        """PTB-tokenize in a background thread (the tokenizer is a Java process)."""
        return self.in_background().submit(ptb_tokenize, list(texts))

    def start(self, predictions: Sequence[str], references: Sequence[str]) -> NLGRun:
        """Start scoring already PTB-tokenized pairs: METEOR's segments go to its process now."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        res = {i: [sanitize(p)] for i, p in enumerate(predictions)}
        gts = {i: [sanitize(r)] for i, r in enumerate(references)}
        job = None
        if self.use_meteor and predictions:
            meteor = self._meteor_scorer()
            job = self.in_background().submit(meteor_score, meteor, [res[i][0] for i in res], [gts[i][0] for i in gts])
        return NLGRun(gts, res, job)

    def _collect_meteor(
        self, job: Future[tuple[float, list[float], list[str]]]
    ) -> tuple[float, list[float], list[str]]:
        try:
            return job.result()
        except (ValueError, BrokenPipeError) as e:  # the jar died: its reply lines came back empty
            meteor = self._meteor
            err = ""
            if meteor is not None:
                proc = meteor.meteor_p
                err = proc.stderr.read().decode(errors="replace")[-400:] if proc.poll() is not None else ""
                _stop_meteor(meteor)
            self._meteor = None
            raise RuntimeError(f"the METEOR process (meteor-1.5.jar, Java) stopped: {e} {err}".strip()) from e

    def finish(self, run: NLGRun) -> NLGScores:
        """BLEU, ROUGE-L and CIDEr here while METEOR works, then METEOR's result."""
        gts, res = run.gts, run.res
        if not res:
            return {"corpus": dict.fromkeys(NLG_METRICS), "per_sample": {}, "stats": {"bleu": [], "meteor": []}}
        corpus: dict[str, float | None] = {}
        per: dict[str, list[float]] = {}
        bleu, bleu_each, bleu_counts = bleu_with_counts(gts, res)
        for n in range(4):
            corpus[f"bleu_{n + 1}"] = float(bleu[n])
            per[f"bleu_{n + 1}"] = [float(x) for x in bleu_each[n]]
        r, r_each = Rouge().compute_score(gts, res)
        c, c_each = Cider().compute_score(gts, res)
        meteor_stats: list[str] = []
        if run.meteor is not None:
            m, m_each, meteor_stats = self._collect_meteor(run.meteor)
            corpus["meteor"], per["meteor"] = float(m), [float(x) for x in m_each]
        else:
            corpus["meteor"] = None
        corpus["rouge_l"], per["rouge_l"] = float(r), [float(x) for x in r_each]
        corpus["cider"], per["cider"] = float(c), [float(x) for x in c_each]
        corpus = {k: corpus[k] for k in NLG_METRICS}
        return {"corpus": corpus, "per_sample": per, "stats": {"bleu": bleu_counts, "meteor": meteor_stats}}

    def score_tokenized(self, predictions: Sequence[str], references: Sequence[str]) -> NLGScores:
        """Corpus scores, per-sample scores and statistics from already PTB-tokenized text."""
        return self.finish(self.start(predictions, references))

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> NLGScores:
        """PTB-tokenize both sides (one tokenizer call), then score."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        self.warm_up()
        tokens = ptb_tokenize(list(predictions) + list(references))
        return self.score_tokenized(tokens[: len(predictions)], tokens[len(predictions) :])

    def meteor_of_sums(self, sums: np.ndarray) -> np.ndarray:
        """METEOR of each row of summed statistics (a row per resample), aggregated by the jar itself.

        The jar's corpus score is its score of the summed statistics of the segments (``MeteorStats.addStats``), so a
        resample's METEOR is the jar's answer to one EVAL line holding that resample's sum: exact, and no segment is
        aligned again. ``sums`` must already follow addStats' rule for the chunk count
        (:func:`deepmedix.evaluation.resampling.meteor_features`).
        """
        meteor = self._meteor_scorer()
        proc = meteor.meteor_p
        out: list[float] = []
        try:
            with meteor.lock:
                for start in range(0, len(sums), METEOR_EVAL_BATCH):
                    rows = sums[start : start + METEOR_EVAL_BATCH]
                    line = "EVAL" + "".join(" ||| " + " ".join(repr(float(x)) for x in row) for row in rows.tolist())
                    proc.stdin.write(f"{line}\n".encode())
                    proc.stdin.flush()
                    # one score per row, then the aggregate over the batch (not wanted)
                    out.extend(float(x) for x in _meteor_replies(proc, len(rows) + 1, pause=0.001)[:-1])
        except (ValueError, BrokenPipeError) as e:
            _stop_meteor(meteor)
            self._meteor = None
            raise RuntimeError(f"the METEOR process (meteor-1.5.jar, Java) stopped: {e}") from e
        return np.asarray(out, dtype=np.float64)

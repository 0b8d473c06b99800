"""Report NLG metrics: BLEU-1..4, METEOR, ROUGE-L and CIDEr exactly as pycocoevalcap computes them.

The COCO convention is kept: both sides go through pycocoevalcap's own Stanford PTBTokenizer (lower-cased,
punctuation dropped) before scoring, and the scorers are pycocoevalcap's own classes, so the numbers equal a direct
pycocoevalcap run on the same text. Two things are done differently, neither of which changes a number:

* the tokenizer's Java program is called with its input file in a private temporary folder (pycocoevalcap writes it
  into its own package folder, which fails on a read-only install and is shared by parallel runs);
* text is sanitised first: every character Java or the METEOR protocol reads as a line break becomes a space and the
  METEOR field separator ``|||`` is removed, so a stray newline can neither shift lines nor hang the METEOR process.

One METEOR process (JVM start and paraphrase table load take several seconds) is kept for a whole run.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import pycocoevalcap
from pycocoevalcap.bleu.bleu import Bleu
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


class NLGScores(TypedDict):
    """Corpus scores (None: not computed) and per-sample scores, by metric."""

    corpus: dict[str, float | None]
    per_sample: dict[str, list[float]]


def _package_dir(sub: str) -> Path:
    return Path(list(pycocoevalcap.__path__)[0]) / sub


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer on a list of texts (same jar, flags and punctuation filter), one line each."""
    if not texts:
        return []
    jar = _package_dir("tokenizer") / STANFORD_CORENLP_3_4_1_JAR
    lines = [sanitize(t) for t in texts]
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


class NLGScorer:
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr on (prediction, reference) pairs; one METEOR process for its lifetime."""

    def __init__(self, meteor: bool = True) -> None:
        self.use_meteor = meteor
        self._meteor: Meteor | None = None

    def _meteor_scorer(self) -> Meteor:
        if self._meteor is None:
            self._meteor = Meteor()
        return self._meteor

    def close(self) -> None:
        if self._meteor is not None:
            _stop_meteor(self._meteor)
            self._meteor = None

    def __enter__(self) -> NLGScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def score_tokenized(self, predictions: Sequence[str], references: Sequence[str]) -> NLGScores:
        """Corpus scores and per-sample scores from already PTB-tokenized text."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        if not predictions:
            return {"corpus": dict.fromkeys(NLG_METRICS), "per_sample": {}}
        res = {i: [sanitize(p)] for i, p in enumerate(predictions)}
        gts = {i: [sanitize(r)] for i, r in enumerate(references)}
        corpus: dict[str, float | None] = {}
        per: dict[str, list[float]] = {}
        bleu, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
        for n in range(4):
            corpus[f"bleu_{n + 1}"] = float(bleu[n])
            per[f"bleu_{n + 1}"] = [float(x) for x in bleu_each[n]]
        if self.use_meteor:
            meteor = self._meteor_scorer()
            try:
                m, m_each = meteor.compute_score(gts, res)
            except (ValueError, BrokenPipeError) as e:  # the jar died: its reply lines came back empty
                if meteor.lock.locked():
                    meteor.lock.release()
                proc = meteor.meteor_p
                err = proc.stderr.read().decode(errors="replace")[-400:] if proc.poll() is not None else ""
                _stop_meteor(meteor)
                self._meteor = None
                raise RuntimeError(f"the METEOR process (meteor-1.5.jar, Java) stopped: {e} {err}".strip()) from e
            corpus["meteor"], per["meteor"] = float(m), [float(x) for x in m_each]
        else:
            corpus["meteor"] = None
        r, r_each = Rouge().compute_score(gts, res)
        corpus["rouge_l"], per["rouge_l"] = float(r), [float(x) for x in r_each]
        c, c_each = Cider().compute_score(gts, res)
        corpus["cider"], per["cider"] = float(c), [float(x) for x in c_each]
        return {"corpus": corpus, "per_sample": per}

    def score(self, predictions: Sequence[str], references: Sequence[str]) -> NLGScores:
        """PTB-tokenize both sides (one tokenizer call), then score. Returns {"corpus": {...}, "per_sample": {...}}."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
        tokens = ptb_tokenize(list(predictions) + list(references))
        return self.score_tokenized(tokens[: len(predictions)], tokens[len(predictions) :])

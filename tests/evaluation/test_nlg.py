"""Report NLG metrics equal a direct pycocoevalcap run, and survive text that breaks the raw tools."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deepmedix.evaluation import nlg

PREDS = [
    "The heart is normal in size. No pleural effusion!",
    "Small LEFT pleural effusion, and mild pulmonary edema.",
    "",
    "Lungs are clear; no pneumothorax (stable).",
    "Cardiomegaly -- unchanged since the prior exam...",
]
REFS = [
    "Heart size normal. No pleural effusion or pneumothorax.",
    "Left effusion is small; mild pulmonary edema.",
    "No acute cardiopulmonary disease.",
    "The lungs are clear bilaterally, no pneumothorax.",
    "Stable cardiomegaly.",
]


def _pycocoevalcap_direct(preds, refs, meteor):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r}] for i, r in enumerate(refs)})
    res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(preds)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    m, _ = meteor.compute_score(gts, res)  # pycocoevalcap's Meteor.compute_score on its own process
    return {
        "bleu_1": bleu[0],
        "bleu_2": bleu[1],
        "bleu_3": bleu[2],
        "bleu_4": bleu[3],
        "meteor": m,
        "rouge_l": Rouge().compute_score(gts, res)[0],
        "cider": Cider().compute_score(gts, res)[0],
    }


@pytest.mark.slow
def test_numbers_identical_to_pycocoevalcap(nlg_scorer):
    ours = nlg_scorer.score(PREDS, REFS)["corpus"]
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = nlg_scorer._meteor_scorer()
    assert isinstance(meteor, Meteor)
    direct = _pycocoevalcap_direct(PREDS, REFS, meteor)
    assert set(ours) == set(nlg.NLG_METRICS)
    for k, v in direct.items():
        assert ours[k] == v, k  # identical, not approximately equal
    assert 0 < ours["bleu_1"] < 1 and ours["meteor"] > 0


def test_ptb_tokenizer_matches_package_and_uses_private_tempdir(monkeypatch):
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    seen: list[str] = []
    real_run = subprocess.run

    def spy(cmd, *a, **kw):
        seen.append(kw["cwd"])
        assert (Path(kw["cwd"]) / cmd[-1]).is_file()
        return real_run(cmd, *a, **kw)

    monkeypatch.setattr(nlg.subprocess, "run", spy)
    texts = ["Hello, World.", "", "No  acute\tdisease (stable)!", ""]
    ours = nlg.ptb_tokenize(texts)
    direct = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    assert ours == [direct[i][0] for i in range(len(texts))]
    package_dir = Path(nlg._package_dir("tokenizer")).resolve()
    assert seen and package_dir not in Path(seen[0]).resolve().parents and Path(seen[0]).resolve() != package_dir
    assert not Path(seen[0]).exists()  # cleaned up


@pytest.mark.timeout(120)
def test_line_breaks_cannot_shift_lines_or_hang_meteor(nlg_scorer):
    broken = ["the heart is\nnormal", "no\r\neffusion ||| seen", "clear\u2028lungs"]
    clean = ["the heart is normal", "no  effusion   seen", "clear lungs"]
    refs = ["the heart is normal", "no effusion", "lungs are clear\nbilaterally"]
    a = nlg_scorer.score(broken, refs)
    b = nlg_scorer.score(clean, refs)
    assert a["corpus"] == b["corpus"]
    assert len(a["per_sample"]["meteor"]) == 3
    assert a["per_sample"]["bleu_1"][0] == pytest.approx(1.0)  # line 1 still scored against its own reference


def test_meteor_process_is_reused(nlg_scorer):
    nlg_scorer.score(["a b c"], ["a b d"])
    first = nlg_scorer._meteor
    nlg_scorer.score(["x y"], ["x y z"])
    assert nlg_scorer._meteor is first and first.meteor_p.poll() is None


def test_length_mismatch_is_an_error(nlg_scorer):
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        nlg_scorer.score(["a", "b"], ["a"])


def test_a_dead_meteor_process_is_a_clear_error():
    scorer = nlg.NLGScorer()
    try:
        scorer.score_tokenized(["a b"], ["a b"])
        scorer._meteor.meteor_p.kill()
        scorer._meteor.meteor_p.wait()
        with pytest.raises(RuntimeError, match="METEOR process"):
            scorer.score_tokenized(["a b"], ["a c"])
        assert scorer._meteor is None  # a fresh process next time
    finally:
        scorer.close()


@pytest.mark.slow
def test_batched_meteor_equals_pycocoevalcap_round_trips(nlg_scorer):
    """More text than a pipe holds both ways: scores, per-segment scores and statistics equal Meteor.compute_score's."""
    import random

    rng = random.Random(0)
    words = [
        "the",
        "heart",
        "is",
        "normal",
        "size",
        "no",
        "pleural",
        "effusion",
        "small",
        "left",
        "mild",
        "edema",
        "lungs",
        "are",
        "clear",
        "stable",
    ]
    n = 2017
    hyps = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(n)]
    refs = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(n)]
    meteor = nlg_scorer._meteor_scorer()
    ours, ours_each, stats = nlg.meteor_score(meteor, hyps, refs)
    gts, res = {i: [r] for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}
    direct, direct_each = meteor.compute_score(gts, res)
    assert ours == direct and ours_each == direct_each
    assert stats == [meteor._stat(res[i][0], gts[i]) for i in range(5)] + stats[5:]
    assert len(stats) == n and sum(len(h) + len(r) for h, r in zip(hyps, refs, strict=True)) > 2 * 65536


def test_meteor_works_while_python_scores(monkeypatch):
    """METEOR is in flight while BLEU/ROUGE/CIDEr are computed: a METEOR that waits for CIDEr to start finishes."""
    import threading

    cider_started = threading.Event()
    real_meteor, real_cider = nlg.meteor_score, nlg.Cider.compute_score

    def meteor_waiting_for_cider(*args, **kwargs):
        if not cider_started.wait(timeout=60):
            raise AssertionError("METEOR ran before the Python metrics, not beside them")
        return real_meteor(*args, **kwargs)

    def cider(self, gts, res):
        cider_started.set()
        return real_cider(self, gts, res)

    monkeypatch.setattr(nlg, "meteor_score", meteor_waiting_for_cider)
    monkeypatch.setattr(nlg.Cider, "compute_score", cider)
    with nlg.NLGScorer() as scorer:
        out = scorer.score_tokenized(["a b c", "d e"], ["a b d", "d e f"])
    assert out["corpus"]["meteor"] is not None and len(out["stats"]["meteor"]) == 2


def test_bleu_counts_sum_to_the_corpus_score():
    from deepmedix.evaluation.resampling import bleu_of_sums

    gts = {i: [r] for i, r in enumerate(["a b c d e", "the heart is normal", "x y"])}
    res = {i: [h] for i, h in enumerate(["a b c d", "the heart is normal in size", ""])}
    score, _, counts = nlg.bleu_with_counts(gts, res)
    from pycocoevalcap.bleu.bleu import Bleu

    assert score == Bleu(4).compute_score(gts, res, verbose=0)[0]
    assert bleu_of_sums(__import__("numpy").array(counts, dtype=float).sum(0, keepdims=True))[0].tolist() == score

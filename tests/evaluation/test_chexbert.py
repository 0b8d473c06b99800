"""F1-CheXbert: strict loading, placeholder tokenizer refused, batching equal to the one-at-a-time loop, caching,
and the F1 convention (uncertain counts as present)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from deepmedix.evaluation import chexbert as cb
from deepmedix.evaluation.clinical import (
    CHEXBERT_OBSERVATIONS,
    binarize_chexbert_classes,
    binarize_chexpert_dicts,
    clinical_f1,
)
from deepmedix.evaluation.memo import open_label_cache
from tests.evaluation.conftest import REFERENCE_PYTHON, ROOT, TINY_VOCAB, make_tiny_chexbert, needs_reference

REPORTS = [
    "The heart is normal in size. No pleural effusion.",
    "Small left pleural effusion and mild edema.",
    "",
    "Cardiomegaly. Bibasilar atelectasis. There is no pneumothorax.",
    "Lungs are clear.\n\nNo acute disease.",
    " ".join(["the heart is enlarged and there is focal consolidation"] * 80),  # > 512 word pieces: truncated
    "tube",
    "Small left  pleural effusion and mild edema. ",  # same text as the second once cleaned: labelled once
]


def _labeler(paths, **kw):
    ckpt, tok = paths
    return cb.CheXbertLabeler(ckpt, tok, min_vocab_size=10, **kw)


def test_batched_labels_equal_the_one_report_loop(tiny_chexbert):
    labeler = _labeler(tiny_chexbert, batch_size=3)
    batched = labeler.classes(REPORTS, progress=False)
    single = np.array([cb.f1chexbert_style_classes(labeler, r) for r in REPORTS])
    assert batched.shape == (len(REPORTS), 14)
    np.testing.assert_array_equal(batched, single)
    np.testing.assert_array_equal(labeler.classes(REPORTS, progress=False, dedupe=False), single)
    assert len({tuple(r) for r in batched}) > 1  # the random model does tell reports apart
    assert batched[:, 13].max() <= 1 and batched.max() <= 3  # No Finding head is two-way


@needs_reference
def test_labels_equal_the_f1chexbert_package_on_the_same_weights(tiny_chexbert):
    """The reference implementation itself — f1chexbert's get_label loop under transformers 4 — gives the same 14
    labels per report as the batched labeler under transformers 5."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from chexbert_throughput import CLASSIFICATION_TO_CLASS, f1chexbert_package_run
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    ckpt, tok = tiny_chexbert
    refs = REPORTS[3:] + REPORTS[:3]  # the same reports, paired with others as references
    theirs = f1chexbert_package_run(REFERENCE_PYTHON, ckpt, tok, REPORTS, threads=1, refs=refs)
    assert theirs["versions"]["transformers"].startswith("4.")
    labeler = _labeler(tiny_chexbert)
    ours = labeler.classes(REPORTS, progress=False)
    assert len(set(map(tuple, ours.tolist()))) > 3  # the reports really are told apart
    np.testing.assert_array_equal(ours, [[CLASSIFICATION_TO_CLASS[v] for v in row] for row in theirs["labels"]])

    # and the F1s it reports (sklearn's classification_report over its "rrg" labels) are the ones deepmedix reports
    f1 = clinical_f1(binarize_chexbert_classes(labeler.classes(refs, progress=False)), binarize_chexbert_classes(ours))
    for avg in ("micro", "macro"):
        for n in ("14", "5"):
            assert f1[f"{avg}_f1_{n}"] == pytest.approx(theirs["f1"][f"{avg}_{n}"], abs=1e-12), (avg, n)
    assert 0 < f1["micro_f1_14"] < 1


def test_checkpoint_loaded_strictly(tiny_chexbert, tmp_path):
    ckpt, tok = tiny_chexbert
    state = torch.load(ckpt, weights_only=True)["model_state_dict"]
    missing = dict(state)
    missing.pop("module.linear_heads.13.bias")
    torch.save({"model_state_dict": missing}, tmp_path / "missing.pth")
    with pytest.raises(cb.CheXbertError, match=r"missing keys \['linear_heads.13.bias'\]"):
        cb.CheXbertLabeler(tmp_path / "missing.pth", tok, min_vocab_size=10)
    extra = dict(state) | {"module.extra_head.weight": torch.zeros(2, 2)}
    torch.save({"model_state_dict": extra}, tmp_path / "extra.pth")
    with pytest.raises(cb.CheXbertError, match="unexpected keys.*extra_head.weight"):
        cb.CheXbertLabeler(tmp_path / "extra.pth", tok, min_vocab_size=10)
    # an old-transformers buffer is tolerated; a raw state dict without "module." works too
    old = {k.removeprefix("module."): v for k, v in state.items()} | {
        "bert.embeddings.position_ids": torch.arange(512)[None]
    }
    torch.save(old, tmp_path / "old.pth")
    np.testing.assert_array_equal(
        cb.CheXbertLabeler(tmp_path / "old.pth", tok, min_vocab_size=10).classes(REPORTS[:2], progress=False),
        _labeler(tiny_chexbert).classes(REPORTS[:2], progress=False),
    )
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(cb.CheXbertError, match="notes.pth: not a readable PyTorch checkpoint"):
        cb.CheXbertLabeler(tmp_path / "notes.pth", tok, min_vocab_size=10)
    with pytest.raises(cb.CheXbertError, match="checkpoint not found"):
        cb.CheXbertLabeler(tmp_path / "nope.pth", tok, min_vocab_size=10)


def test_shape_mismatch_named(tiny_chexbert, tmp_path):
    other_ckpt, _ = make_tiny_chexbert(tmp_path / "other", seed=1)
    cfg = tmp_path / "other" / "config.json"
    cfg.write_text(cfg.read_text().replace('"hidden_size": 32', '"hidden_size": 16'))
    with pytest.raises(cb.CheXbertError, match="do not fit the BERT config"):
        cb.CheXbertLabeler(other_ckpt, tmp_path / "other", min_vocab_size=10)


def test_placeholder_tokenizer_refused(tiny_chexbert):
    ckpt, tok = tiny_chexbert
    with pytest.raises(cb.CheXbertError, match=rf"vocabulary has {len(TINY_VOCAB)} entries, expected about 30522"):
        cb.CheXbertLabeler(ckpt, tok)  # default minimum: a real bert-base-uncased vocabulary


def test_labels_kept_per_text_and_checkpoint(tiny_chexbert, tmp_path, monkeypatch):
    labeler = _labeler(tiny_chexbert)
    expected = labeler.classes(REPORTS, progress=False)
    first = cb.cached_classes(labeler, REPORTS, open_label_cache(tmp_path), progress=False)
    np.testing.assert_array_equal(first, expected)

    calls: list[list[str]] = []
    real = labeler.classes
    monkeypatch.setattr(labeler, "classes", lambda texts, progress=True: calls.append(list(texts)) or real(texts))
    again = cb.cached_classes(labeler, REPORTS, open_label_cache(tmp_path))  # a later run: a new connection
    np.testing.assert_array_equal(again, expected)
    assert calls == []

    mixed = [REPORTS[3], "Large right pneumothorax.", REPORTS[1]]
    np.testing.assert_array_equal(
        cb.cached_classes(labeler, mixed, open_label_cache(tmp_path)), real(mixed, progress=False)
    )
    assert calls == [["Large right pneumothorax."]]  # only the text never labelled before

    labeler._fingerprint = "another checkpoint"  # other weights: nothing reused
    cb.cached_classes(labeler, REPORTS[:2], open_label_cache(tmp_path))
    assert calls[-1] == [cb.clean_report(t) for t in REPORTS[:2]]


def test_uncertain_counts_as_present_and_f1_by_hand():
    classes = np.array([[3, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]])
    assert binarize_chexbert_classes(classes)[0, :4].tolist() == [1, 1, 0, 0]
    ref = np.zeros((4, 14), dtype=int)
    pred = np.zeros((4, 14), dtype=int)
    card, eff, ec = (
        CHEXBERT_OBSERVATIONS.index(o) for o in ("Cardiomegaly", "Pleural Effusion", "Enlarged Cardiomediastinum")
    )
    ref[[0, 1], card] = 1
    pred[[0, 2], card] = 1  # TP 1, FP 1, FN 1 → F1 0.5
    ref[[0, 1, 2], eff] = 1
    pred[[0, 1, 2], eff] = 1  # perfect
    pred[3, ec] = 1  # a false positive outside the five
    s = clinical_f1(ref, pred)
    # micro-14: TP 4, FP 2, FN 1 → 2·4 / (2·4 + 2 + 1)
    assert s["micro_f1_14"] == pytest.approx(8 / 11)
    assert s["macro_f1_14"] == pytest.approx((0.5 + 1.0) / 14)
    assert s["micro_f1_5"] == pytest.approx(8 / 10)
    assert s["macro_f1_5"] == pytest.approx((0.5 + 1.0) / 5)
    assert s["per_observation"]["Cardiomegaly"] == pytest.approx(0.5)


def test_chexpert_dicts_mapped_by_name():
    m = binarize_chexpert_dicts([{"no finding": None, "Pleural Effusion": -1, "Edema": 0, "Cardiomegaly": 1}])
    row = dict(zip(CHEXBERT_OBSERVATIONS, m[0], strict=True))
    assert row["Pleural Effusion"] == 1 and row["Cardiomegaly"] == 1 and row["Edema"] == 0 and row["No Finding"] == 0

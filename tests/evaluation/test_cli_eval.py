"""``deepmedix eval`` end to end: groups, absent metrics, CheXbert and RadGraph paths, reports, bad input."""

from __future__ import annotations

import json
import sys

import pytest

from deepmedix.cli import main
from tests.evaluation.test_radgraph import FAKE_RADGRAPH

LINES = [
    {
        "id": "f1",
        "split": "test",
        "task": "report_findings",
        "benchmark": "openi/findings",
        "prediction": "<think>Step 1: the right base [10, 10, 50, 50] is clear.</think> The answer is: "
        "\\boxed{The heart is normal in size. No pleural effusion.}",
        "reference": "Heart size is normal. No pleural effusion.",
        "reference_boxes": [[12, 12, 48, 52]],
        "image_size": [100, 100],
    },
    {
        "id": "f2",
        "split": "test",
        "task": "report_findings",
        "benchmark": "openi/findings",
        "prediction": "Small left pleural effusion and cardiomegaly.",
        "reference": "Cardiomegaly. Small left effusion.",
    },
    {
        "id": "f3",
        "split": "test",
        "task": "report_findings",
        "benchmark": "openi/findings",
        "prediction": "Mild pulmonary edema.",
        "reference": "Mild edema, no pneumothorax.",
    },
    {
        "id": "i1",
        "split": "test",
        "task": "report_impression",
        "benchmark": "openi/impression",
        "prediction": "No acute disease.",
        "reference": "No acute cardiopulmonary abnormality.",
    },
    {
        "id": "v1",
        "split": "test",
        "task": "vqa",
        "benchmark": "vqa-rad/vqa",
        "completion": "<think>x</think> \\boxed{Yes}",
        "prediction": "Yes",
        "reference": "yes",
        "answer_type": "closed",
        "question_type": "presence",
    },
    {
        "id": "v2",
        "split": "test",
        "task": "vqa",
        "benchmark": "vqa-rad/vqa",
        "prediction": "effusion | edema",
        "reference": "effusion | atelectasis",
        "answer_type": "multi",
        "question_type": "abnormality",
    },
]


def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_eval_without_checkpoints_reports_absent_metrics(tmp_path, capsys):
    pred = _write(tmp_path / "pred.jsonl", LINES)
    out = tmp_path / "out"
    assert main(["eval", "--predictions", str(pred), "--out", str(out), "--no-meteor"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= {"openi/findings", "openi/impression", "vqa-rad/vqa", "weighted_average"}
    f = m["openi/findings"]
    assert f["n_report"] == 3
    for k in ("f1_chexbert_micro_14", "f1_chexbert_macro_5", "f1_radgraph", "meteor"):
        assert f[k] is None, k  # absent, never zero
    assert any("F1-CheXbert absent" in n for n in f["notes"]) and any("F1-RadGraph absent" in n for n in f["notes"])
    assert f["average_over"] == ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"]
    assert f["average"] == pytest.approx(sum(f[k] for k in f["average_over"]) / 5)
    assert f["f1_chexpert_rules_micro_14"] is not None  # the rule labeler always runs
    # the boxed answer was parsed out of the raw completion before scoring
    assert f["lengths"]["prediction_words"][0] == 9  # "The heart is normal in size. No pleural effusion."
    assert f["grounding"]["box_recall"] == 1.0 and f["grounding"]["n_grounded"] == 1
    v = m["vqa-rad/vqa"]
    assert v["accuracy"] == pytest.approx(0.75) and v["accuracy_by_question_type"]["abnormality"] == 0.5
    w = m["weighted_average"]
    assert w["bleu_1"] == pytest.approx((3 * f["bleu_1"] + m["openi/impression"]["bleu_1"]) / 4)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "src='http" not in html and 'src="http' not in html
    md = (out / "report.md").read_text()
    assert "| openi/findings | 3 |" in md and "F1-CheXpert (rules)" in md
    assert (out / "figures" / "eval_lengths.png").stat().st_size > 1000
    assert "openi/findings: average=" in capsys.readouterr().out


def test_group_by_split_without_benchmark(tmp_path):
    lines = [
        {k: v for k, v in x.items() if k != "benchmark"} | {"split": "val" if i < 2 else "test"}
        for i, x in enumerate(LINES)
    ]
    out = tmp_path / "out"
    assert (
        main(["eval", "--predictions", str(_write(tmp_path / "p.jsonl", lines)), "--out", str(out), "--no-meteor"]) == 0
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["val"]["n"] == 2 and m["test"]["n_report"] == 2 and m["test"]["n_vqa"] == 2


@pytest.mark.slow
def test_eval_with_chexbert_and_radgraph(tmp_path, tiny_chexbert, monkeypatch):
    ckpt, tok = tiny_chexbert
    env = tmp_path / "env" / "radgraph"
    env.mkdir(parents=True)
    (env / "__init__.py").write_text(FAKE_RADGRAPH)
    model = tmp_path / "radgraph"
    model.mkdir()
    (model / "weights.th").write_bytes(b"x")
    (model / "config.json").write_text('{"model": {"embedder": {"model_name": "hub/id"}}}')
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "env"} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    pred = _write(tmp_path / "pred.jsonl", LINES)
    out = tmp_path / "out"
    args = [
        "eval",
        "--predictions",
        str(pred),
        "--out",
        str(out),
        "--no-meteor",
        "--chexbert",
        str(ckpt),
        "--chexbert-tokenizer",
        str(tok),
        "--chexbert-min-vocab",
        "10",
        "--radgraph",
        str(model),
        "--radgraph-python",
        str(python),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(args) == 0
    f = json.loads((out / "metrics.json").read_text())["openi/findings"]
    for k in (
        "f1_chexbert_micro_14",
        "f1_chexbert_macro_14",
        "f1_chexbert_micro_5",
        "f1_chexbert_macro_5",
        "f1_radgraph",
    ):
        assert isinstance(f[k], float) and 0 <= f[k] <= 1, k
    assert len(f["average_over"]) == 10  # all but METEOR
    assert len(f["per_observation_f1_chexbert"]) == 14

    # Another model on the same benchmark, scored into another folder: only its one new report is labelled.
    from deepmedix.evaluation.chexbert import CheXbertLabeler
    from deepmedix.evaluation.radgraph import RadGraphSubprocess

    labelled: list[str] = []
    annotated: list[str] = []
    classes, annotate = CheXbertLabeler.classes, RadGraphSubprocess.__call__
    monkeypatch.setattr(
        CheXbertLabeler, "classes", lambda self, texts, **kw: labelled.extend(texts) or classes(self, texts, **kw)
    )
    monkeypatch.setattr(
        RadGraphSubprocess, "__call__", lambda self, texts: annotated.extend(texts) or annotate(self, texts)
    )
    other = [dict(x) for x in LINES]
    other[1]["prediction"] = "Large right pneumothorax."
    args[2], args[4] = str(_write(tmp_path / "other.jsonl", other)), str(tmp_path / "other")
    assert main(args) == 0
    assert labelled == annotated == ["Large right pneumothorax."]

    labelled.clear()
    annotated.clear()
    assert main([*args, "--no-cache"]) == 0  # nothing kept: every report labelled again
    assert len(labelled) > 1 and len(annotated) > 1
    with_cache = json.loads((tmp_path / "other" / "metrics.json").read_text())["openi/findings"]
    assert main(args) == 0
    assert json.loads((tmp_path / "other" / "metrics.json").read_text())["openi/findings"] == with_cache


def test_placeholder_tokenizer_is_a_clear_error(tmp_path, tiny_chexbert, capsys):
    ckpt, tok = tiny_chexbert
    pred = _write(tmp_path / "pred.jsonl", LINES[:1])
    rc = main(
        [
            "eval",
            "--predictions",
            str(pred),
            "--out",
            str(tmp_path / "o"),
            "--no-meteor",
            "--chexbert",
            str(ckpt),
            "--chexbert-tokenizer",
            str(tok),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "placeholder" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"pred.jsonl, line 2(, |: )not valid JSON"),
        (
            json.dumps({"id": "x", "split": "test", "task": "report", "reference": "r"}),
            r"pred.jsonl, line 2(, |: )field 'prediction'",
        ),
        (
            json.dumps({"id": "x", "split": "test", "task": "poem", "prediction": "p", "reference": "r"}),
            r"pred.jsonl, line 2(, |: )field 'task'",
        ),
        (
            json.dumps({"id": "x", "task": "vqa", "prediction": "p", "reference": "r"}),
            r"pred.jsonl, line 2(, |: )needs a 'benchmark'",
        ),
        (
            json.dumps(
                {
                    "id": "x",
                    "split": "t",
                    "task": "vqa",
                    "prediction": "p",
                    "reference": "r",
                    "reference_boxes": [[1, 2, 3]],
                }
            ),
            r"pred.jsonl, line 2(, |: )field 'reference_boxes\[0\]'",
        ),
        (
            json.dumps(
                {"id": "x", "split": "t", "task": "vqa", "prediction": "p", "reference": "r", "answer_type": "x"}
            ),
            r"pred.jsonl, line 2(, |: )field 'answer_type'",
        ),
    ],
)
def test_malformed_lines_named(tmp_path, capsys, line, message):
    pred = tmp_path / "pred.jsonl"
    pred.write_text(json.dumps(LINES[0]) + "\n" + line + "\n")
    rc = main(["eval", "--predictions", str(pred), "--out", str(tmp_path / "o"), "--no-meteor"])
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    import re

    assert re.search(message, err), err


def test_radgraph_without_python_is_refused(tmp_path, capsys):
    pred = _write(tmp_path / "pred.jsonl", LINES[:1])
    rc = main(["eval", "--predictions", str(pred), "--out", str(tmp_path / "o"), "--radgraph", str(tmp_path)])
    assert rc == 1 and "--radgraph-python" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--chexbert-batch-size", "0", "--chexbert-batch-size must be at least 1"),
        ("--iou-threshold", "1.5", "--iou-threshold must be in (0, 1]"),
    ],
)
def test_bad_option_values_refused(tmp_path, capsys, flag, value, message):
    pred = _write(tmp_path / "pred.jsonl", LINES[:1])
    rc = main(["eval", "--predictions", str(pred), "--out", str(tmp_path / "o"), flag, value])
    err = capsys.readouterr().err
    assert rc == 1 and message in err and not (tmp_path / "o" / "metrics.json").exists()


def test_unwritable_label_store_is_a_clear_error(tmp_path, tiny_chexbert, capsys):
    ckpt, tok = tiny_chexbert
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    pred = _write(tmp_path / "pred.jsonl", LINES[:2])
    args = [
        "eval",
        "--predictions",
        str(pred),
        "--out",
        str(tmp_path / "o"),
        "--no-meteor",
        "--chexbert",
        str(ckpt),
        "--chexbert-tokenizer",
        str(tok),
        "--chexbert-min-vocab",
        "10",
    ]
    assert main([*args, "--cache-dir", str(blocker / "cache")]) == 1
    err = capsys.readouterr().err
    assert "cannot open the label store" in err and "--no-cache" in err and "Traceback" not in err
    assert main([*args, "--cache-dir", str(blocker / "cache"), "--no-cache"]) == 0  # without a store it runs

"""Bootstrap intervals and the paired test: statistics recompute each metric exactly, and known answers come out.

The central check: a metric recomputed from the per-sample statistics of a resample (drawn with repeats) equals the
metric the scorers compute directly on those resampled lines — BLEU and METEOR to the last digit.
"""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest

from deepmedix.cli import main
from deepmedix.evaluation.evaluate import Evaluator
from deepmedix.evaluation.options import EvalOptions
from deepmedix.evaluation.predictions import load_predictions
from deepmedix.evaluation.resampling import (
    GroupSamples,
    bootstrap_weights,
    group_rng,
    metrics_of_sums,
    paired_test,
    point_values,
)
from tests.evaluation.test_radgraph import FAKE_RADGRAPH

SENTENCES = [
    "The heart is normal in size.",
    "No pleural effusion or pneumothorax.",
    "Small left pleural effusion.",
    "Mild pulmonary edema.",
    "The lungs are clear.",
    "Cardiomegaly with mild edema.",
    "Right lower lobe consolidation, concerning for pneumonia.",
    "Bibasilar atelectasis.",
    "Stable enlarged cardiac silhouette.",
    "No focal consolidation.",
    "Endotracheal tube in standard position.",
    "Left basilar opacity may reflect atelectasis.",
]
ANSWERS = ["yes", "no", "effusion | edema", "atelectasis", "cardiomegaly | effusion", "left lung"]


def _report(rng: random.Random) -> str:
    return " ".join(rng.sample(SENTENCES, rng.randint(1, 4)))


def make_lines(n_reports: int = 24, n_vqa: int = 16, seed: int = 0, better: bool = False) -> list[dict]:
    """Report, VQA and grounding lines; ``better``: every prediction is its reference."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_reports):
        ref, other = _report(rng), _report(rng)
        pred = ref if better or i % 4 == 0 else other
        lines.append(
            {
                "id": f"r{i}",
                "task": "report_findings",
                "benchmark": "open-i/findings",
                "prediction": pred,
                "reference": ref,
            }
        )
    for i in range(n_vqa):
        ref, coin, other = rng.choice(ANSWERS), rng.random(), rng.choice(["yes", "no", "edema", "effusion"])
        pred = ref if better or coin < 0.5 else other
        lines.append(
            {
                "id": f"v{i}",
                "task": "vqa",
                "benchmark": "ext-vqa/vqa",
                "prediction": pred,
                "reference": ref,
                "question_type": rng.choice(["presence", "abnormality"]),
            }
        )
    for i in range(10):
        x = rng.randint(0, 50)
        pred_boxes = [[x, 10, x + 40, 60]] if i % 3 else []
        lines.append(
            {
                "id": f"g{i}",
                "task": "grounding",
                "benchmark": "ms-cxr/grounding",
                "prediction": "effusion" if i % 2 else "edema",
                "reference": "effusion",
                "reference_boxes": [[20, 10, 60, 60]],
                "steps": [{"boxes": pred_boxes}],
                "image_size": [100, 100],
            }
        )
    return lines


def _write(path, lines):
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _close(a: float | None, b: float | None) -> bool:
    return a is None and b is None or (a is not None and b is not None and abs(a - b) <= 1e-12)


@pytest.fixture()
def fake_radgraph(tmp_path):
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
    return model, python


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_statistics_of_a_resample_give_the_direct_metrics_of_its_lines(tmp_path, tiny_chexbert, fake_radgraph):
    ckpt, tok = tiny_chexbert
    model, python = fake_radgraph
    options = EvalOptions(
        chexbert=ckpt,
        chexbert_tokenizer=tok,
        chexbert_min_vocab=10,
        radgraph=model,
        radgraph_python=python,
        cache=False,
        bootstrap_resamples=0,
        figures=False,
    )
    lines = make_lines()
    rows = load_predictions(_write(tmp_path / "all.jsonl", lines))
    with Evaluator(options) as ev:
        metrics, records = ev.evaluate_samples(rows)
        by_group = {g: [r for r in records if r["group"] == g] for g in ("open-i/findings", "ext-vqa/vqa")}
        by_group["ms-cxr/grounding"] = [r for r in records if r["group"] == "ms-cxr/grounding"]
        # Every metric from the statistics of all lines = the scorers' own numbers (CIDEr included: same frequencies).
        for group, recs in by_group.items():
            samples = GroupSamples.from_records(recs, objects=list(metrics[group].get("object_recall") or {}) or None)
            points = point_values(samples, ev.meteor_of_sums)
            for key, value in points.items():
                node = metrics[group]
                for part in key:
                    node = node[part]
                assert _close(value, node), (group, key, value, node)
        # A resample drawn with repeats, scored directly as a prediction file of its own.
        rng = np.random.default_rng(7)
        for group, recs in by_group.items():
            picked = rng.integers(0, len(recs), len(recs))
            assert len(set(picked.tolist())) < len(recs)  # repeats, as a bootstrap resample has
            source = {(x["benchmark"], x["id"]): x for x in lines}
            resampled = [dict(source[(group, recs[i]["id"])], id=f"{recs[i]['id']}#{j}") for j, i in enumerate(picked)]
            direct = ev.evaluate(load_predictions(_write(tmp_path / "resample.jsonl", resampled)))[group]
            samples = GroupSamples.from_records(recs, objects=list(direct.get("object_recall") or {}) or None)
            weights = np.bincount(picked, minlength=len(recs)).astype(float).reshape(1, -1)
            recomputed = metrics_of_sums({f: weights @ v for f, v in samples.families.items()}, ev.meteor_of_sums)
            checked = []
            for key, values in recomputed.items():
                if key == ("cider",):
                    continue  # its document frequencies stay those of the whole group: an approximation, said so
                node = direct
                for part in key:
                    node = node.get(part) if isinstance(node, dict) else None
                if not np.isfinite(values[0]):  # e.g. a question type the resample did not draw: absent both ways
                    assert node is None, (group, key)
                    continue
                if key[0].startswith(("bleu_", "meteor")):
                    assert values[0] == node, (group, key)  # to the last digit
                else:
                    assert _close(float(values[0]), node), (group, key, values[0], node)
                checked.append(key[0])
            expected = {
                "open-i/findings": {"bleu_4", "meteor", "rouge_l", "f1_chexbert_macro_5", "f1_chexpert_rules_micro_14"},
                "ext-vqa/vqa": {"accuracy", "accuracy_by_question_type", "object_recall", "mean_object_recall"},
                "ms-cxr/grounding": {"grounding", "grounding_answer_accuracy"},
            }[group]
            assert expected <= set(checked)
            if group == "open-i/findings":
                assert {"f1_radgraph", "average"} <= set(checked)


def test_intervals_are_seeded_and_contain_the_mean(tmp_path):
    pred = _write(tmp_path / "p.jsonl", make_lines(n_reports=12))
    outs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert main(["eval", "--predictions", str(pred), "--out", str(tmp_path / name), "--no-meteor",
                     "--bootstrap-resamples", "200", "--bootstrap-seed", str(seed)]) == 0  # fmt: skip
        outs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    f, v = outs["a"]["open-i/findings"], outs["a"]["ext-vqa/vqa"]
    assert outs["a"]["open-i/findings"]["ci"] == outs["b"]["open-i/findings"]["ci"]
    assert outs["a"]["open-i/findings"]["ci"] != outs["c"]["open-i/findings"]["ci"]
    for key in ("bleu_1", "bleu_4", "rouge_l", "cider", "f1_chexpert_rules_micro_14", "average"):
        lo, hi = f["ci"][key]
        assert lo <= f[key] <= hi and lo < hi, key
    assert "meteor" not in f["ci"] and f["meteor"] is None  # absent metric: no interval either
    lo, hi = v["ci"]["accuracy"]
    assert lo <= v["accuracy"] <= hi
    assert set(v["ci"]["accuracy_by_question_type"]) == set(v["accuracy_by_question_type"])
    g = outs["a"]["ms-cxr/grounding"]
    assert (
        g["ci"]["grounding"]["box_recall"][0] <= g["grounding"]["box_recall"] <= g["ci"]["grounding"]["box_recall"][1]
    )
    assert outs["a"]["_meta"]["intervals"]["resamples"] == 200
    assert set(outs["a"]["_meta"]["intervals"]["approximate"]) == {"cider", "mean_object_recall"}
    per_sample = (tmp_path / "a" / "per_sample.jsonl").read_text().splitlines()
    assert len(per_sample) == len(make_lines(n_reports=12))
    assert "[" in (tmp_path / "a" / "report.md").read_text().split("## Report generation")[1].split("## VQA")[0]
    assert main(["eval", "--predictions", str(pred), "--out", str(tmp_path / "none"), "--no-meteor",
                 "--bootstrap-resamples", "0"]) == 0  # fmt: skip
    assert "ci" not in json.loads((tmp_path / "none" / "metrics.json").read_text())["open-i/findings"]


def test_bootstrap_resamples_within_each_task_kind():
    strata = np.array([0] * 5 + [1] * 3)
    for block in bootstrap_weights(strata, 50, np.random.default_rng(0)):
        assert (block[:, :5].sum(axis=1) == 5).all() and (block[:, 5:].sum(axis=1) == 3).all()


def _compare(tmp_path, a_lines, b_lines, *extra):
    a = _write(tmp_path / "a.jsonl", a_lines)
    b = _write(tmp_path / "b.jsonl", b_lines)
    out = tmp_path / "cmp"
    rc = main(["eval", "--compare", str(a), str(b), "--out", str(out), "--ar-trials", "2000",
               "--bootstrap-resamples", "300", *extra])  # fmt: skip
    return rc, out


@pytest.mark.slow
def test_identical_systems_p_one_difference_zero(tmp_path):
    lines = make_lines()
    rc, out = _compare(tmp_path, lines, lines)
    assert rc == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["n_shared"] == len(lines)
    seen = 0
    for group in report["groups"].values():
        stack = [group["metrics"]]
        while stack:
            node = stack.pop()
            if "p" in node and "difference" in node:
                assert node["p"] == 1.0 and node["difference"] == 0.0 and node["ci"] == [0.0, 0.0], node
                seen += 1
            else:
                stack.extend(v for v in node.values() if isinstance(v, dict))
    assert seen > 20
    assert "| METEOR | " in (out / "compare.md").read_text()


@pytest.mark.slow
def test_a_system_better_on_every_sample_has_a_small_p(tmp_path):
    rc, out = _compare(tmp_path, make_lines(seed=3), make_lines(seed=3, better=True))
    assert rc == 0
    report = json.loads((out / "compare.json").read_text())
    reports, vqa = report["groups"]["open-i/findings"]["metrics"], report["groups"]["ext-vqa/vqa"]["metrics"]
    for key in ("bleu_1", "bleu_4", "meteor", "rouge_l", "average"):
        r = reports[key]
        assert r["b"] > r["a"] and r["p"] < 0.01 and r["ci"][0] > 0, key
    assert vqa["accuracy"]["p"] < 0.01 and vqa["accuracy"]["b"] == 1.0
    # 2000 trials: the smallest p the test can give is 1/2001; a sure difference reaches it
    assert reports["bleu_4"]["p"] == pytest.approx(1 / 2001)


def test_paired_test_on_constructed_statistics():
    """Scores as means: B beats A by 1 on half the samples and ties on the rest."""
    n = 40
    a = [{"group": "g", "id": str(i), "kind": "vqa", "vqa": {"score": 0.0, "question_type": "q",
          "answer_type": "closed", "objects": {}}} for i in range(n)]  # fmt: skip
    b = [dict(r, vqa=dict(r["vqa"], score=float(i % 2))) for i, r in enumerate(a)]
    sa, sb = GroupSamples.from_records(a), GroupSamples.from_records(b)
    res = paired_test(sa, sb, 5000, 500, group_rng(1, "g"))[("accuracy",)]
    assert res["difference"] == 0.5 and res["p"] < 0.001
    lo, hi = res["ci"]
    assert 0.3 < lo < 0.5 < hi < 0.7
    same = paired_test(sa, sa, 1000, 100, group_rng(1, "g"))[("accuracy",)]
    assert same["p"] == 1.0 and same["ci"] == (0.0, 0.0)


def test_compare_refuses_files_that_share_no_line(tmp_path, capsys):
    a = make_lines(n_reports=3, n_vqa=0)
    b = [dict(x, id=x["id"] + "-other") for x in a]
    rc, _ = _compare(tmp_path, a, b, "--no-meteor")
    err = capsys.readouterr().err
    assert rc == 1 and "share no line" in err and f"({len(a)} lines)" in err and "Traceback" not in err


def test_compare_refuses_different_references(tmp_path, capsys):
    a = make_lines(n_reports=3, n_vqa=0)
    b = [dict(x) for x in a]
    b[1]["reference"] = "something else entirely"
    rc, _ = _compare(tmp_path, a, b, "--no-meteor")
    err = capsys.readouterr().err
    assert rc == 1 and "different references" in err and "'r1'" in err


def test_compare_needs_predictions_or_compare(tmp_path, capsys):
    assert main(["eval", "--out", str(tmp_path / "o")]) == 1
    assert "--predictions FILE" in capsys.readouterr().err


def test_compare_from_eval_folders_equals_compare_from_files(tmp_path):
    a_lines, b_lines = make_lines(seed=4), make_lines(seed=5)
    b_lines = [dict(x, prediction=y["prediction"]) for x, y in zip(a_lines, b_lines, strict=True)]  # same references
    rc, from_files = _compare(tmp_path, a_lines, b_lines, "--no-meteor")
    assert rc == 0
    for name in ("a", "b"):
        assert main(["eval", "--predictions", str(tmp_path / f"{name}.jsonl"), "--out", str(tmp_path / f"e{name}"),
                     "--no-meteor", "--bootstrap-resamples", "0"]) == 0  # fmt: skip
    out = tmp_path / "cmp-dirs"
    assert main(["eval", "--compare", str(tmp_path / "ea"), str(tmp_path / "eb"), "--out", str(out),
                 "--ar-trials", "2000", "--bootstrap-resamples", "300"]) == 0  # fmt: skip
    files = json.loads((from_files / "compare.json").read_text())["groups"]
    dirs = json.loads((out / "compare.json").read_text())["groups"]
    assert files == dirs  # same statistics, same seed: the same numbers


def test_truncated_lines_counted_and_metrics_without_them(tmp_path):
    lines = make_lines(n_reports=20, n_vqa=8)
    for i, x in enumerate(lines):
        if x["task"] == "report_findings":
            x["truncated"] = i % 5 == 0
        elif x["task"] == "vqa":
            x["finish_reason"] = "length" if i % 4 == 0 else "stop"  # the engine's own word counts too
    out = tmp_path / "out"
    assert main(["eval", "--predictions", str(_write(tmp_path / "p.jsonl", lines)), "--out", str(out),
                 "--no-meteor", "--bootstrap-resamples", "100"]) == 0  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    f = m["open-i/findings"]
    assert f["n_truncated"] == 4 and f["n_truncation_known"] == 20 and f["truncated_share"] == pytest.approx(0.2)
    assert m["ms-cxr/grounding"]["n_truncated"] is None and m["ms-cxr/grounding"]["truncated_share"] is None
    assert m["_meta"]["n_truncated"] == f["n_truncated"] + m["ext-vqa/vqa"]["n_truncated"]
    # the non-truncated block equals scoring only those lines
    kept = [x for x in lines if x["task"] == "report_findings" and not x["truncated"]]
    direct = tmp_path / "direct"
    assert main(["eval", "--predictions", str(_write(tmp_path / "kept.jsonl", kept)), "--out", str(direct),
                 "--no-meteor", "--bootstrap-resamples", "0"]) == 0  # fmt: skip
    d = json.loads((direct / "metrics.json").read_text())["open-i/findings"]
    sub = f["non_truncated"]
    assert sub["n"] == 16
    for key in ("bleu_1", "bleu_4", "rouge_l", "f1_chexpert_rules_micro_14"):
        assert sub[key] == pytest.approx(d[key], abs=1e-12), key
    assert sub["ci"]["bleu_4"][0] <= sub["bleu_4"] <= sub["ci"]["bleu_4"][1]
    report = (out / "report.md").read_text()
    assert (
        "4 of 20 completions hit the token limit: their answers are what the model wrote before it was cut off"
        in report.split("## ")[0]  # before the first section: prominent
    )
    assert "class='warning'" in (out / "report.html").read_text()
    bad = [dict(lines[0], truncated="yes")]
    assert main(["eval", "--predictions", str(_write(tmp_path / "bad.jsonl", bad)), "--out", str(tmp_path / "x"),
                 "--no-meteor"]) == 1  # fmt: skip


def test_lines_without_flags_infer_nothing(tmp_path):
    out = tmp_path / "out"
    assert main(["eval", "--predictions", str(_write(tmp_path / "p.jsonl", make_lines(n_reports=4, n_vqa=2))),
                 "--out", str(out), "--no-meteor", "--bootstrap-resamples", "0"]) == 0  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    f = m["open-i/findings"]
    assert f["n_truncated"] is None and f["truncated_share"] is None and "non_truncated" not in f
    assert "token limit" not in (out / "report.md").read_text()

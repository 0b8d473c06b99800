"""The paper's Table 1 and VQA numbers as shipped, and this run beside them."""

from __future__ import annotations

import json

import pytest

from deepmedix.cli import main
from deepmedix.evaluation.metrics import PAPER_REPORT_METRICS
from deepmedix.evaluation.paper import paper_comparison, paper_tables

REPORT_GROUPS = ("mimic-cxr/findings", "mimic-cxr/impression", "open-i/findings", "open-i/impression")


def test_table_is_cited_and_internally_consistent():
    tables = paper_tables()
    assert "arXiv:2509.03906" in tables["source"] and "intervals" in tables["note"]
    t1 = tables["tables"]["table_1"]
    assert t1["name"] == "Table 1" and t1["caption"] and len(t1["models"]) == 10
    assert set(t1["groups"]) == {*REPORT_GROUPS, "weighted_average"}
    for group, block in t1["groups"].items():
        assert set(block["rows"]) == set(t1["models"])
        for model, row in block["rows"].items():
            assert list(row) == [*PAPER_REPORT_METRICS, "average"]
            # the printed Average is the plain mean of the 11 metrics (four decimals each)
            assert sum(row[m] for m in PAPER_REPORT_METRICS) / 11 == pytest.approx(row["average"], abs=6e-5), (
                group,
                model,
            )
    # the Weighted Average block is one weighting of the four blocks for every model and metric
    import numpy as np

    rows = [(model, m) for model in t1["models"] for m in (*PAPER_REPORT_METRICS, "average")]
    blocks = np.array([[t1["groups"][g]["rows"][model][m] for g in REPORT_GROUPS] for model, m in rows])
    target = np.array([t1["groups"]["weighted_average"]["rows"][model][m] for model, m in rows])
    weights, *_ = np.linalg.lstsq(blocks, target, rcond=None)
    assert np.abs(blocks @ weights - target).max() < 2e-4 and weights.sum() == pytest.approx(1, abs=1e-3)
    vqa = tables["tables"]["vqa"]["groups"]
    assert vqa["ext-vqa/vqa"]["rows"]["DeepMedix-R1"]["accuracy"] == 0.7243
    assert vqa["cxr-vqa/vqa"]["rows"]["DeepMedix-R1"]["accuracy"] == 0.6589


def test_group_names_are_those_prepare_xraybench_writes():
    from deepmedix.data.xraybench import PAPER_GROUPS
    from deepmedix.inference.predict import benchmark_name

    ours = {benchmark_name(source, str(task)) for source, task in PAPER_GROUPS.values()}
    shipped = {g for t in paper_tables()["tables"].values() for g in t["groups"]} - {"weighted_average"}
    assert ours == shipped


def test_comparison_differences_and_interval_flags():
    results = {
        "mimic-cxr/findings": {
            "n_report": 10,
            "bleu_1": 0.34,
            "f1_chexbert_micro_14": None,  # no CheXbert: absent, never zero
            "average": 0.3,
            "average_over": ["bleu_1"],
            "ci": {"bleu_1": [0.33, 0.35], "average": [0.25, 0.35]},
        },
        "other/vqa": {"n_vqa": 3, "accuracy": 0.5},
        "_meta": {},
    }
    out = paper_comparison(results)
    assert out is not None and "arXiv:2509.03906" in out["source"] and "no intervals" in out["note"]
    assert list(out["groups"]) == ["mimic-cxr/findings"]  # only the paper's groups
    bleu = out["groups"]["mimic-cxr/findings"]["metrics"]["bleu_1"]
    assert bleu["this_run"] == 0.34 and bleu["ci"] == [0.33, 0.35]
    r1, llava = bleu["paper"]["DeepMedix-R1"], bleu["paper"]["LLaVA-Rad"]
    assert r1["value"] == 0.3402 and r1["difference"] == pytest.approx(0.34 - 0.3402) and r1["inside_interval"]
    assert llava["inside_interval"] is False and llava["difference"] == pytest.approx(0.34 - 0.2911)
    micro = out["groups"]["mimic-cxr/findings"]["metrics"]["f1_chexbert_micro_14"]
    assert micro["absent"] and micro["this_run"] is None
    assert micro["paper"]["DeepMedix-R1"] == {"value": 0.5189, "difference": None, "inside_interval": None}
    average = out["groups"]["mimic-cxr/findings"]["metrics"]["average"]
    assert "over 1 of the paper's 11" in average["not_comparable"]
    assert average["paper"]["DeepMedix-R1"]["difference"] is None  # no difference between unlike averages
    assert paper_comparison({"openi/findings": {"n_report": 3, "bleu_1": 0.1}}) is None


def test_eval_on_xraybench_groups_reports_the_paper(tmp_path, capsys):
    lines = [
        {
            "id": f"m{i}",
            "task": "report_findings",
            "benchmark": "mimic-cxr/findings",
            "prediction": "The heart is normal. No effusion." if i % 2 else "Small left effusion.",
            "reference": "The heart is normal in size. No pleural effusion.",
        }
        for i in range(8)
    ] + [
        {
            "id": f"v{i}",
            "task": "vqa",
            "benchmark": "cxr-vqa/vqa",
            "prediction": "yes" if i % 3 else "no",
            "reference": "yes",
        }
        for i in range(9)
    ]
    pred = tmp_path / "p.jsonl"
    pred.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    assert main(["eval", "--predictions", str(pred), "--out", str(out), "--no-meteor", "--bootstrap-resamples",
                 "200"]) == 0  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    comparison = m["paper_comparison"]
    assert list(comparison["groups"]) == ["mimic-cxr/findings", "cxr-vqa/vqa"]
    acc = comparison["groups"]["cxr-vqa/vqa"]["metrics"]["accuracy"]
    lo, hi = m["cxr-vqa/vqa"]["ci"]["accuracy"]
    assert acc["this_run"] == m["cxr-vqa/vqa"]["accuracy"] and acc["ci"] == [lo, hi]
    for model, e in acc["paper"].items():
        assert e["inside_interval"] == (lo <= e["value"] <= hi), model
    meteor = comparison["groups"]["mimic-cxr/findings"]["metrics"]["meteor"]
    assert meteor["absent"] and all(e["difference"] is None for e in meteor["paper"].values())
    report = (out / "report.md").read_text()
    section = report.split("## Against the paper")[1]
    assert "reports no intervals" in section
    assert "| this run |" in section and "absent" in section and "DeepMedix-R1" in section
    assert "Against the paper" in (out / "report.html").read_text()
    assert "paper_comparison" not in capsys.readouterr().out  # not a group in the summary either

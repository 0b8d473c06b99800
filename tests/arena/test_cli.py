from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepmedix.cli import main
from deepmedix.io import read_jsonl
from tests.arena.conftest import quality_verdict, write_predictions
from tests.fake_openai import fake_openai_server


def write_judgments(path: Path) -> Path:
    rows = (
        [{"model_a": "alpha", "model_b": "beta", "winner": "a", "prob": 0.5}] * 6
        + [{"model_a": "alpha", "model_b": "beta", "winner": "b", "prob": 0.5}] * 2
        + [{"model_a": "beta", "model_b": "gamma", "winner": "a"}] * 5
        + [{"model_a": "beta", "model_b": "gamma", "winner": "tie"}] * 2
        + [{"model_a": "gamma", "model_b": "alpha", "winner": "b", "prob": 0.25}] * 4
        + [{"model_a": "gamma", "model_b": "alpha", "winner": "a", "prob": 0.25}]
        + [{"model_a": "gamma", "model_b": "alpha", "winner": "unparseable", "prob": 0.25}]
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_arena_fit_writes_scores_tables_and_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    judgments = write_judgments(tmp_path / "judgments.jsonl")
    out = tmp_path / "fit"
    assert main(["arena", "fit", str(judgments), "--out", str(out), "--bootstrap", "50"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == ["alpha", "beta", "gamma"]
    assert scores["alpha"]["score"] == 1.0 and scores["gamma"]["score"] == 0.0
    for v in scores.values():
        assert v["ci_low"] <= v["score"] <= v["ci_high"] and v["rank"] >= 1
    arena = json.loads((out / "arena.json").read_text())
    assert arena["battles"][0][1] == 8 and arena["skipped_unresolved"] == 1
    assert arena["win_rate"][1][2] == pytest.approx((5 + 1) / 7)  # beta vs gamma: 5 wins and 2 ties
    md = (out / "arena.md").read_text()
    assert "| 1 | alpha |" in md and "## Win rates" in md
    for fig in ("arena_battles.png", "arena_win_rate.png", "arena_scores.png"):
        assert (out / fig).read_bytes()[:4] == b"\x89PNG"
    assert "alpha" in capsys.readouterr().out


def test_arena_fit_reports_bad_rows_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"model_a": "x", "model_b": "y", "winner": "a"}\n{"model_a": "x", "model_b": "y", "winner": "x wins"}\n'
    )
    assert main(["arena", "fit", str(bad), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.jsonl, line 2, field 'winner'" in err and "\n" not in err and "Traceback" not in err
    assert main(["arena", "fit", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 1
    assert "missing.jsonl" in capsys.readouterr().err


def test_arena_run_against_an_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        write_predictions(tmp_path / f"{name}.jsonl", quality=q) for name, q in (("good", 3), ("fair", 2), ("poor", 1))
    ]
    out = tmp_path / "arena"
    with fake_openai_server(quality_verdict) as url:
        argv = ["arena", "run", "--predictions", *map(str, files), "--names", "Good", "Fair", "Poor"]
        argv += ["--judge", url, "--judge-model", "judge", "--budget", "9", "--out", str(out), "--bootstrap", "30"]
        assert main(argv) == 0
    assert "judge calls this run 18" in capsys.readouterr().out
    assert list(json.loads((out / "scores.json").read_text())) == ["Good", "Fair", "Poor"]
    assert len(read_jsonl(out / "judgments.jsonl")) == 9 and (out / "judgments.sqlite").exists()

    assert (
        main(["arena", "run", "--predictions", *map(str, files), "--judge", url, "--budget", "3", "--out", str(out)])
        == 1
    )
    assert "--judge-model is required" in capsys.readouterr().err
    argv = [
        "arena",
        "run",
        "--predictions",
        str(files[0]),
        str(files[0]),
        "--judge",
        "offline",
        "--budget",
        "3",
        "--out",
        str(out),
    ]
    assert main(argv) == 1
    assert "--names" in capsys.readouterr().err


def test_arena_run_offline_with_the_rules_labeler(tmp_path: Path) -> None:
    ref = "Cardiomegaly. Small right pleural effusion. No pneumothorax."
    reports = {
        "faithful": "The heart is enlarged (cardiomegaly). Small right pleural effusion. No pneumothorax.",
        "partial": "Cardiomegaly. No pleural effusion. No pneumothorax.",
        "normal": "Normal heart size. No pleural effusion. No pneumothorax. Lungs are clear.",
    }
    files = []
    for name, text in reports.items():
        rows = [{"id": f"s{i}", "task": "report_findings", "prediction": text, "reference": ref} for i in range(5)]
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(path)
    out = tmp_path / "offline"
    assert (
        main(
            [
                "arena",
                "run",
                "--predictions",
                *map(str, files),
                "--judge",
                "offline",
                "--budget",
                "15",
                "--out",
                str(out),
                "--bootstrap",
                "20",
            ]
        )
        == 0
    )
    scores = json.loads((out / "scores.json").read_text())
    assert list(scores)[0] == "faithful" and list(scores)[-1] == "normal"
    arena = json.loads((out / "arena.json").read_text())
    assert arena["judge"] == "rules-labeler" and arena["usage"]["calls"] == 0
    assert arena["position_bias"]["order_inconsistent"] == 0.0

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from deepmedix.arena.judges import JudgeOutcome, JudgeTask, LLMJudge
from deepmedix.arena.run import load_predictions, run_arena
from deepmedix.endpoints import ChatEndpoint, EndpointConfig
from deepmedix.io import read_jsonl
from tests.arena.conftest import quality_verdict, shown_reports, write_predictions
from tests.fake_openai import fake_openai_server


@pytest.fixture
def three_models(tmp_path: Path) -> list[Path]:
    return [
        write_predictions(tmp_path / "strong.jsonl", quality=3),
        write_predictions(tmp_path / "middle.jsonl", quality=2, skip={5}),  # middle did not answer s5
        write_predictions(tmp_path / "weak.jsonl", quality=1),
    ]


class Recorder:
    """A fake judge endpoint's responder that counts calls and can misbehave on request."""

    def __init__(self, respond=quality_verdict):
        self.bodies: list[dict[str, Any]] = []
        self.respond = respond

    def __call__(self, body: dict[str, Any]) -> str:
        self.bodies.append(body)
        return self.respond(body)


def llm_judge(url: str, concurrency: int = 4) -> LLMJudge:
    return LLMJudge(
        ChatEndpoint(EndpointConfig(base_url=url, model="judge", max_retries=0, max_concurrency=concurrency))
    )


def test_run_asks_both_orders_stores_everything_and_ranks(three_models: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "arena"
    rec = Recorder()
    with fake_openai_server(rec) as url:
        result = run_arena(
            three_models, llm_judge(url), out, budget=12, seed=1, batch_size=4, bootstrap_rounds=50, progress=False
        )
    assert len(result.draws) == 12
    assert len(rec.bodies) == 24  # two orders per comparison, nothing retried
    assert result.usage["calls"] == 24 and result.usage["cached"] == 0

    # Each comparison was shown both ways round.
    shown = [shown_reports(b) for b in rec.bodies]
    quality = {"strong": 3, "middle": 2, "weak": 1}
    for d in result.draws:
        a, b = (result.models[k] for k in ((0, 1), (0, 2), (1, 2))[d.pair])
        text = {m: f"Report {d.sample_id[1:]}: quality {quality[m]}. No pneumothorax." for m in (a, b)}
        assert (text[a], text[b]) in shown and (text[b], text[a]) in shown
    assert result.bias["order_inconsistent"] == 0.0

    rows = read_jsonl(out / "judgments.jsonl")
    assert len(rows) == 12
    for row in rows:
        assert row["model_a"] < row["model_b"] and 0 < row["prob"] <= 1
        expected = {"strong": 3, "middle": 2, "weak": 1}
        assert row["winner"] == ("a" if expected[row["model_a"]] > expected[row["model_b"]] else "b")
        if "middle" in (row["model_a"], row["model_b"]):
            assert row["sample_id"] != "s5"  # only samples both models answered
    pairs_samples = [(r["model_a"], r["model_b"], r["sample_id"]) for r in rows]
    assert len(set(pairs_samples)) == len(pairs_samples)  # a pair is never judged twice on one sample

    scores = json.loads((out / "scores.json").read_text())
    assert list(scores) == ["strong", "middle", "weak"]
    assert scores["strong"]["score"] == 1.0 and scores["weak"]["score"] == 0.0
    assert all({"score", "ci_low", "ci_high", "rank"} <= set(v) for v in scores.values())
    for name in ("arena.md", "arena.json", "arena_battles.png", "arena_win_rate.png", "arena_scores.png"):
        assert (out / name).stat().st_size > 0
    arena = json.loads((out / "arena.json").read_text())
    assert arena["usage"]["calls"] == 24 and sum(map(sum, arena["battles"])) == 24  # symmetric: each battle twice

    with sqlite3.connect(out / "judgments.sqlite") as db:
        stored = db.execute(
            "SELECT judge, prompt_version, shown_order, verdict, winner, raw_replies FROM judgments"
        ).fetchall()
    assert len(stored) == 24
    assert {r[2] for r in stored} == {"ab", "ba"}
    assert all(r[0] == f"llm:judge@{url}" and r[1] == "arena-judge-v1" for r in stored)
    assert all(json.loads(r[5])[0].startswith('{"verdict"') for r in stored)


def test_rerun_pays_nothing_and_gives_the_same_result(three_models: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "arena"
    rec = Recorder()
    with fake_openai_server(rec) as url:
        first = run_arena(
            three_models, llm_judge(url), out, budget=10, seed=2, batch_size=4, bootstrap_rounds=20, progress=False
        )
        calls = len(rec.bodies)
        again = run_arena(
            three_models, llm_judge(url), out, budget=10, seed=2, batch_size=4, bootstrap_rounds=20, progress=False
        )
        assert len(rec.bodies) == calls  # zero new calls
        assert again.usage == {**again.usage, "calls": 0, "cached": 20}
        # A larger budget extends the same sequence: only the new comparisons are paid for.
        more = run_arena(
            three_models, llm_judge(url), out, budget=13, seed=2, batch_size=4, bootstrap_rounds=20, progress=False
        )
    assert [(d.pair, d.sample_id, d.winner) for d in again.draws] == [
        (d.pair, d.sample_id, d.winner) for d in first.draws
    ]
    assert [(d.pair, d.sample_id) for d in more.draws[:10]] == [(d.pair, d.sample_id) for d in first.draws]
    assert len(rec.bodies) - calls == more.usage["calls"] <= 6


class KilledJudge:
    """Wraps a judge and dies (like a kill) after ``survive`` answers."""

    def __init__(self, inner: LLMJudge, survive: int):
        self.inner, self.survive, self.name = inner, survive, inner.name

    def judge_many(self, tasks: Sequence[JudgeTask], desc: str | None = None) -> Iterator[tuple[int, JudgeOutcome]]:
        for item in self.inner.judge_many(tasks, desc):
            if self.survive == 0:
                raise KeyboardInterrupt
            self.survive -= 1
            yield item


def test_killed_run_resumes_without_paying_twice(three_models: list[Path], tmp_path: Path) -> None:
    reference = Recorder()
    with fake_openai_server(reference) as url:
        whole = run_arena(
            three_models,
            llm_judge(url),
            tmp_path / "whole",
            budget=9,
            seed=5,
            batch_size=3,
            bootstrap_rounds=0,
            progress=False,
        )

    rec = Recorder()
    out = tmp_path / "killed"
    with fake_openai_server(rec) as url:
        with pytest.raises(KeyboardInterrupt):
            run_arena(
                three_models,
                KilledJudge(llm_judge(url, concurrency=1), survive=8),
                out,
                budget=9,
                seed=5,
                batch_size=3,
                progress=False,
            )
        with sqlite3.connect(out / "judgments.sqlite") as db:
            kept = db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
        assert kept == 8  # every answer before the kill was stored
        assert len(read_jsonl(out / "judgments.jsonl")) == 3  # whole batches only: the first is complete
        paid_before = len(rec.bodies)
        resumed = run_arena(
            three_models, llm_judge(url), out, budget=9, seed=5, batch_size=3, bootstrap_rounds=0, progress=False
        )
    assert resumed.usage["cached"] == 8
    assert len(rec.bodies) - paid_before == 18 - 8
    assert [(d.pair, d.sample_id, d.winner) for d in resumed.draws] == [
        (d.pair, d.sample_id, d.winner) for d in whole.draws
    ]


def test_position_bias_is_measured_and_disagreement_becomes_a_tie(three_models: list[Path], tmp_path: Path) -> None:
    rec = Recorder(lambda body: "Verdict: A")  # a judge that always prefers the report shown first
    with fake_openai_server(rec) as url:
        result = run_arena(
            three_models, llm_judge(url), tmp_path / "a", budget=6, seed=0, bootstrap_rounds=0, progress=False
        )
    assert result.bias["position_a_wins"] == 1.0
    assert result.bias["order_inconsistent"] == 1.0
    assert all(d.winner == "tie" for d in result.draws)
    md = (tmp_path / "a" / "arena.md").read_text()
    assert "Position bias: the report shown first won 1.000 of 12 verdicts" in md


def test_unparseable_comparisons_are_recorded_and_left_out_of_the_fit(three_models: list[Path], tmp_path: Path) -> None:
    def respond(body: dict[str, Any]) -> str:
        a, b = shown_reports(body)
        if a.startswith("Report 0:"):
            return "no idea"
        return quality_verdict(body)

    rec = Recorder(respond)
    out = tmp_path / "arena"
    with fake_openai_server(rec) as url:
        result = run_arena(
            three_models, llm_judge(url), out, budget=15, seed=0, batch_size=5, bootstrap_rounds=0, progress=False
        )
        calls = len(rec.bodies)
        run_arena(
            three_models, llm_judge(url), out, budget=15, seed=0, batch_size=5, bootstrap_rounds=0, progress=False
        )
        assert len(rec.bodies) == calls  # unparseable answers were paid for: they are reused, not asked again
    bad = [d for d in result.draws if d.sample_id == "s0"]
    assert bad and all(d.winner == "unparseable" for d in bad)
    assert result.outcome_counts["unparseable"] == len(bad)
    assert result.fit.n_battles == 15 - len(bad)
    assert calls == 2 * 15 + 2 * len(bad)  # each unparseable order was retried once
    with sqlite3.connect(out / "judgments.sqlite") as db:
        rows = db.execute("SELECT raw_replies, winner FROM judgments WHERE verdict='unparseable'").fetchall()
    assert len(rows) == 2 * len(bad) and all(json.loads(r[0]) == ["no idea", "no idea"] and r[1] is None for r in rows)
    jsonl = read_jsonl(out / "judgments.jsonl")
    assert sum(r["winner"] == "unparseable" for r in jsonl) == len(bad)


def test_prediction_files_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "s0", "task": "report_findings", "prediction": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl, line 1, field 'reference': missing or empty \(id s0\)"):
        load_predictions(bad)
    bad.write_text(json.dumps({"id": "s0", "prediction": "x", "reference": "y"}) + "\n")
    with pytest.raises(ValueError, match="line 1, field 'task'"):
        load_predictions(bad)
    only_vqa = tmp_path / "vqa.jsonl"
    only_vqa.write_text(json.dumps({"id": "q", "task": "vqa", "prediction": "yes", "reference": "no"}) + "\n")
    with pytest.raises(ValueError, match="no report predictions"):
        load_predictions(only_vqa)
    good = write_predictions(tmp_path / "m.jsonl", quality=1, skip={0})
    entries = load_predictions(good)
    assert sorted(entries) == ["s1", "s2", "s3", "s4", "s5"]  # s0 unanswered, the VQA line skipped
    assert entries["s1"].image == "img1.png"
    # a model that wrote nothing still competes with its empty report; a line without the field is an error
    rows = [json.loads(x) for x in good.read_text().splitlines()]
    rows[0]["prediction"] = ""
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert load_predictions(good)["s1"].prediction == ""
    del rows[0]["prediction"]
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match="field 'prediction': missing"):
        load_predictions(good)


@pytest.mark.slow
def test_sigkilled_process_resumes_from_the_store(three_models: list[Path], tmp_path: Path) -> None:
    """A real kill -9 of ``deepmedix arena run`` in flight: what was answered is kept, and only the rest is paid."""
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    answered_before_kill = 7
    arrived = threading.Event()
    release = threading.Event()
    count = {"n": 0}

    def respond(body: dict[str, Any]) -> str:
        count["n"] += 1
        if count["n"] == answered_before_kill + 1:
            arrived.set()
            release.wait(30)  # hold the next answer until the client has been killed
        return quality_verdict(body)

    out = tmp_path / "arena"
    with fake_openai_server(respond) as url:
        argv = [sys.executable, "-m", "deepmedix.cli", "arena", "run", "--predictions", *map(str, three_models)]
        argv += ["--judge", url, "--judge-model", "judge", "--budget", "6", "--out", str(out)]
        argv += ["--max-concurrency", "1", "--batch-size", "3", "--bootstrap", "0", "--seed", "4"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
        try:
            assert arrived.wait(60), "the arena run never reached the judge"
            time.sleep(0.5)  # let the client store the answer it already has
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
        with sqlite3.connect(out / "judgments.sqlite") as db:
            kept = db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0]
        assert kept == answered_before_kill
        before = count["n"]
        resumed = run_arena(
            three_models,
            llm_judge(url, concurrency=1),
            out,
            budget=6,
            seed=4,
            batch_size=3,
            bootstrap_rounds=0,
            progress=False,
        )
    assert resumed.usage["cached"] == answered_before_kill
    assert count["n"] - before == 12 - answered_before_kill
    assert len(read_jsonl(out / "judgments.jsonl")) == 6

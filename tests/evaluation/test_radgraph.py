"""F1-RadGraph reward levels on hand-made annotations, and the subprocess exchange with a separate environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deepmedix.evaluation.memo import open_label_cache
from deepmedix.evaluation.radgraph import RadGraphSubprocess, f1_radgraph, f1_radgraph_from_annotations, pair_reward
from tests.evaluation.conftest import REFERENCE_PYTHON, needs_reference

REFERENCE_SCRIPTS = Path(__file__).with_name("reference")


def ent(tokens, label, relations=()):
    return {"tokens": tokens, "label": label, "start_ix": 0, "end_ix": 0, "relations": [list(r) for r in relations]}


# "Small left pleural effusion." — effusion located at pleural, pleural modified by left.
REF = {
    "text": "small left pleural effusion",
    "entities": {
        "1": ent("small", "OBS-DP", [("modify", "4")]),
        "2": ent("left", "ANAT-DP", [("modify", "3")]),
        "3": ent("pleural", "ANAT-DP"),
        "4": ent("effusion", "OBS-DP", [("located_at", "3")]),
    },
}
# "Left pleural Effusion, no pneumothorax." — effusion found but without its relation; a new absent finding.
HYP = {
    "text": "left pleural effusion no pneumothorax",
    "entities": {
        "1": ent("left", "ANAT-DP", [("modify", "2")]),
        "2": ent("pleural", "ANAT-DP"),
        "3": ent("Effusion", "OBS-DP", [("located_at", "2")]),
        "4": ent("pneumothorax", "OBS-DA"),
    },
}


def test_reward_levels_by_hand():
    r = pair_reward(HYP, REF)
    # simple: (tokens, label) sets. hyp {left, pleural, Effusion, pneumothorax}; ref {small, left, pleural, effusion}
    # matches: left, pleural → P 2/4, R 2/4 → F1 0.5 ("Effusion" ≠ "effusion": tokens compared as written)
    assert r["simple"] == pytest.approx(0.5)
    # partial: + has-relation flag. hyp {(left,ANAT,T), (pleural,ANAT), (Effusion,OBS,T), (pneumothorax,OBS-DA)}
    # ref {(small,OBS,T), (left,ANAT,T), (pleural,ANAT), (effusion,OBS,T)} → matches left, pleural → 0.5
    assert r["partial"] == pytest.approx(0.5)
    # complete: relations lower-cased with their target. hyp {(left,ANAT,modify,pleural), (pleural,ANAT),
    # (effusion,OBS,located_at,pleural), (pneumothorax,OBS-DA)}; ref {(small,OBS,modify,effusion),
    # (left,ANAT,modify,pleural), (pleural,ANAT), (effusion,OBS,located_at,pleural)} → 3 of 4 each side → 0.75
    assert r["complete"] == pytest.approx(0.75)


def test_partial_level_sees_a_missing_relation():
    no_rel = {"entities": {"1": ent("effusion", "OBS-DP")}}
    with_rel = {"entities": {"1": ent("effusion", "OBS-DP", [("located_at", "2")]), "2": ent("pleural", "ANAT-DP")}}
    r = pair_reward(no_rel, with_rel)
    assert r["simple"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # effusion matches on (tokens, label)
    assert r["partial"] == 0.0  # but not once "has a relation" is part of the key
    assert pair_reward({"entities": {}}, with_rel) == {"simple": 0.0, "partial": 0.0, "complete": 0.0}


def test_empty_reports_score_zero_and_are_not_sent():
    sent = []

    def annotate(texts):
        sent.append(list(texts))
        return [HYP if t.startswith("h") else REF for t in texts]

    out = f1_radgraph_from_annotations(["h1", "", "h3"], ["r1", "r2", ""], annotate)
    assert sent == [["h1", "r1"]]
    assert out["per_sample"][1] == {"simple": 0.0, "partial": 0.0, "complete": 0.0}
    assert out["f1_radgraph"] == pytest.approx(0.5 / 3)  # mean over all three pairs, as radgraph does
    assert out["f1_radgraph_complete"] == pytest.approx(0.75 / 3)


FAKE_RADGRAPH = textwrap.dedent("""
    import json, os
    class RadGraph:
        def __init__(self, model_type=None, model_cache_dir=None, batch_size=1, **kw):
            d = os.path.join(model_cache_dir, model_type)
            self.config = json.load(open(os.path.join(d, "config.json")))
            assert os.path.exists(os.path.join(d, "weights.th"))
            print("Using device: cpu")  # the real package chatters on stdout
        def __call__(self, texts):
            name = self.config["model"]["embedder"]["model_name"]
            return {str(i): {"text": t, "entities": {"1": {"tokens": t.split()[0], "label": name,
                    "relations": []}}} for i, t in enumerate(texts) if t != "unparseable"}  # as radgraph drops one
""")


def test_subprocess_worker_exchanges_json_and_retargets_the_base_model(tmp_path):
    pkg = tmp_path / "env" / "radgraph"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_RADGRAPH)
    model = tmp_path / "models" / "mymodel"
    model.mkdir(parents=True)
    (model / "weights.th").write_bytes(b"x")
    (model / "config.json").write_text('{"model": {"embedder": {"model_name": "microsoft/some-hub-id"}}}')
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={tmp_path / "env"} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    base = tmp_path / "pubmedbert"
    base.mkdir()
    annotate = RadGraphSubprocess(python, model, model_type="radgraph", base_model=base)
    out = annotate(["effusion on the left", "no pneumothorax"])
    assert [a["entities"]["1"]["tokens"] for a in out] == ["effusion", "no"]
    assert out[0]["entities"]["1"]["label"] == str(base)  # config's hub id pointed at the local folder
    dropped = annotate(["effusion", "unparseable", "edema"])  # the others keep their places
    assert [a["entities"] for a in dropped][1] == {} and dropped[2]["entities"]["1"]["tokens"] == "edema"
    scores = f1_radgraph_from_annotations(["effusion left", "x"], ["effusion right", "y"], annotate)
    assert scores["per_sample"][0]["simple"] == 1.0 and scores["per_sample"][1]["simple"] == 0.0


def test_subprocess_failure_is_reported(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    annotate = RadGraphSubprocess(sys.executable, model)  # this environment has no radgraph package
    with pytest.raises(RuntimeError, match="RadGraph worker .* failed"):
        annotate(["text"])
    with pytest.raises(FileNotFoundError, match="RadGraph model folder not found"):
        RadGraphSubprocess(sys.executable, tmp_path / "absent")


@pytest.fixture(scope="module")
def tiny_radgraph(tmp_path_factory):
    """A random-weight RadGraph model built by the radgraph package's own classes in the reference environment."""
    out = tmp_path_factory.mktemp("radgraph-model")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [str(REFERENCE_PYTHON), str(REFERENCE_SCRIPTS / "build_tiny_radgraph.py"), str(out)],
        check=True,
        capture_output=True,
        env=env,
    )
    return out / "radgraph", out / "bert"


@needs_reference
def test_f1_radgraph_equals_the_radgraph_package(tiny_radgraph, tmp_path):
    """Our worker driving the real radgraph package, and our reward on its annotations, give per pair the three
    numbers radgraph's own F1RadGraph gives on the same model — empty reports and the label store included."""
    model, bert = tiny_radgraph
    hyps = [
        "Small left pleural effusion.",
        "",
        "Mild edema in the right lung base.",
        "No pneumothorax.",
        "The heart size is normal, lungs are clear.",
        "Stable cardiomegaly and mild edema.",
    ]
    refs = [
        "Left pleural effusion is small.",
        "No pneumothorax.",
        "Mild edema.",
        "No pneumothorax.",
        "Normal heart size. Clear lungs.",
        "",
    ]
    store = open_label_cache(tmp_path)
    ours = f1_radgraph(hyps, refs, REFERENCE_PYTHON, model, base_model=bert, cache=store)
    again = f1_radgraph(hyps, refs, REFERENCE_PYTHON, model, base_model=bert, cache=store)  # served from the store
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    job = {"model_dir": str(model), "base_model": str(bert), "hyps": hyps, "refs": refs}
    proc = subprocess.run(
        [str(REFERENCE_PYTHON), str(REFERENCE_SCRIPTS / "radgraph_package_f1.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    for level in ("simple", "partial", "complete"):
        assert [p[level] for p in ours["per_sample"]] == pytest.approx(theirs[level], abs=1e-12), level
        assert ours[f"f1_radgraph_{level}"] == pytest.approx(sum(theirs[level]) / len(hyps), abs=1e-12)
    assert ours["f1_radgraph"] == ours["f1_radgraph_partial"]
    assert again == ours
    assert sum(1 for v in theirs["complete"] if 0 < v < 1) >= 2  # the model really annotates: not all 0 or 1

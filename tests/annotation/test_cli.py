"""The ``deepmedix review`` commands, end to end through the CLI entry point."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepmedix.annotation.server import create_app
from deepmedix.annotation.store import ReviewStore
from deepmedix.cli import main
from tests.annotation.conftest import write_predictions


def create(tmp_path: Path, *extra: str, annotators: str = "alice:1,bob:1,carol:2,dan:2") -> list[str]:
    a, b = write_predictions(tmp_path / "preds")
    return [
        "review",
        "create",
        "--predictions",
        str(a),
        str(b),
        "--names",
        "R1",
        "Qwen",
        "--samples",
        "2",
        "--seed",
        "3",
        "--annotators",
        annotators,
        "--out",
        str(tmp_path / "rev"),
        *extra,
    ]


def test_create_prints_working_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(create(tmp_path, "--tokens-out", str(tmp_path / "links.txt"))) == 0
    out = capsys.readouterr().out
    links = dict(re.findall(r"^\s+(\w+|admin \(progress\)): http://127\.0\.0\.1:8765/t/(\S+)$", out, re.M))
    assert set(links) == {"alice", "bob", "carol", "dan", "admin (progress)"}
    assert stat.S_IMODE((tmp_path / "links.txt").stat().st_mode) == 0o600
    client = TestClient(create_app(tmp_path / "rev"))
    me = client.get("/api/me", headers={"Authorization": f"Bearer {links['dan']}"}).json()
    assert me["annotator"] == "dan" and me["n_samples"] == 2
    with ReviewStore(tmp_path / "rev") as store:
        assert store.models() == ["R1", "Qwen"] and len(store.sample_ids()) == 2
        assert store.meta()["seed"] == 3
    # The same seed draws the same samples and the same blinding.
    assert main(create(tmp_path / "again")) == 0
    with ReviewStore(tmp_path / "rev") as s1, ReviewStore(tmp_path / "again" / "rev") as s2:
        assert s1.sample_ids() == s2.sample_ids()
        assert s1.assignments("bob") == s2.assignments("bob")
    # Rotating a token: the new link works, the old one no longer does.
    capsys.readouterr()
    assert main(["review", "token", "--dir", str(tmp_path / "rev"), "--annotator", "dan"]) == 0
    new = capsys.readouterr().out.strip().rsplit("/t/", 1)[1]
    assert client.get("/api/me", headers={"Authorization": f"Bearer {links['dan']}"}).status_code == 401
    assert client.get("/api/me", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_yaml_annotators_and_split(tmp_path: Path) -> None:
    spec = tmp_path / "team.yaml"
    spec.write_text("groups:\n  A: [ann, ben]\n  B: [cat]\n")
    assert main(create(tmp_path, "--within-group", "split", annotators=str(spec))) == 0
    with ReviewStore(tmp_path / "rev") as store:
        assert {(a.name, a.group) for a in store.annotators()} == {("ann", "A"), ("ben", "A"), ("cat", "B")}
        assert len(store.assignments("ann")) + len(store.assignments("ben")) == 2  # shared within group A
        assert len(store.assignments("cat")) == 2  # alone in group B: rates everything


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows[1].pop("image"), r"a\.jsonl, line 2, field 'image': missing \(record 's1'\)"),
        (lambda rows: rows[0].update(steps=[{"text": "x", "boxes": [[1, 2, 3]]}]), r"line 1.*steps\[0\]\.boxes"),
        (lambda rows: rows[2].update(id="s0"), r"line 3, field 'id': 's0' repeats line 1"),
    ],
)
def test_bad_predictions_give_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate, message: str
) -> None:
    a, b = write_predictions(tmp_path / "preds")
    rows = [json.loads(x) for x in a.read_text().splitlines()]
    mutate(rows)
    a.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = [
        "review",
        "create",
        "--predictions",
        str(a),
        str(b),
        "--names",
        "A",
        "B",
        "--annotators",
        "x:1",
        "--out",
        str(tmp_path / "rev"),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_other_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(create(tmp_path, annotators="alice:1,alice:2")) == 1
    assert "duplicate name(s) alice" in capsys.readouterr().err
    assert main(create(tmp_path, annotators="alice")) == 1
    assert "'alice' is not NAME:GROUP" in capsys.readouterr().err
    argv = create(tmp_path)
    argv[argv.index("--samples") + 1] = "9"
    assert main(argv) == 1
    assert "only 3 samples are in both prediction files" in capsys.readouterr().err
    assert main(create(tmp_path)) == 0
    assert main(create(tmp_path)) == 1  # never overwrite a review set
    assert "already exists" in capsys.readouterr().err
    assert main(["review", "results", "--dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "no review set here" in capsys.readouterr().err


def test_results_and_labelstudio_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(create(tmp_path)) == 0
    rev = tmp_path / "rev"
    with ReviewStore(rev) as store:
        sid = store.sample_ids()[0]
        store.put_rating("alice", sid, "overall_preference", -1, -1, 0)
        store.put_rating("carol", sid, "overall_preference", -1, -1, 0)
    capsys.readouterr()
    assert main(["review", "results", "--dir", str(rev), "--out", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "| R1 | Average |" in out
    assert {"table2.csv", "table2.md", "agreement.csv", "ratings.csv", "ratings.jsonl", "review_table2.png"} <= {
        p.name for p in (tmp_path / "res").iterdir()
    }
    tasks = tmp_path / "ls" / "tasks.json"
    assert main(["review", "export-labelstudio", "--dir", str(rev), "--out", str(tasks)]) == 0
    assert tasks.with_suffix(".xml").is_file()
    assert json.loads((tmp_path / "ls" / "tasks.project.json").read_text())["maximum_annotations"] == 4
    task = json.loads(tasks.read_text())[0]
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            [
                {
                    "id": 1,
                    "data": task["data"],
                    "annotations": [
                        {
                            "completed_by": {"email": "bob@x.org"},
                            "result": [
                                {
                                    "from_name": "grounded_preference",
                                    "to_name": "image",
                                    "type": "choices",
                                    "value": {"choices": ["Left"]},
                                }
                            ],
                        }
                    ],
                }
            ]
        )
    )
    assert main(["review", "import-labelstudio", "--dir", str(rev), "--export", str(export)]) == 0
    assert "imported 1 ratings" in capsys.readouterr().out


def test_serve_binds_loopback_by_default() -> None:
    from deepmedix.cli import build_parser

    args = build_parser().parse_args(["review", "serve", "--dir", "somewhere"])
    assert (args.host, args.port) == ("127.0.0.1", 8765)

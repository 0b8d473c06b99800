from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from deepmedix.cli import main
from tests.inference.conftest import grey_image


def test_infer_with_the_tiny_model_prints_json_and_draws_an_overlay(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = tmp_path / "cxr.png"
    grey_image(640, 480).save(image)
    overlay = tmp_path / "overlay.png"
    rc = main(
        [
            "infer",
            "--model",
            "tiny",
            str(image),
            "--question",
            "Is there an effusion?",
            "--overlay",
            str(overlay),
            "--max-new-tokens",
            "8",
            "--out",
            str(tmp_path / "answer.json"),
        ]
    )
    assert rc == 0
    body = json.loads(capsys.readouterr().out)
    assert body["model"] == "tiny" and body["task"] == "vqa" and body["image_size"] == [640, 480]
    assert body["model_input_size"][0] * body["model_input_size"][1] <= 112 * 112
    assert set(body) >= {"answer", "steps", "completion", "format_valid", "overlay"}
    assert json.loads((tmp_path / "answer.json").read_text()) == body
    with Image.open(overlay) as im:
        assert im.size == (640, 480) and im.mode == "RGB"


def test_infer_report_section_without_reasoning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    image = tmp_path / "cxr.png"
    grey_image(128, 128).save(image)
    assert (
        main(
            ["infer", "--model", "tiny", str(image), "--task", "impression", "--no-reasoning", "--max-new-tokens", "4"]
        )
        == 0
    )
    body = json.loads(capsys.readouterr().out)
    assert body["task"] == "report_impression" and "<think>" not in body["prompt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--question", "  "], "question is empty"),
        (["--question", "q?", "--backend", "openai"], "--base-url"),
    ],
)
def test_infer_bad_input_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    image = tmp_path / "cxr.png"
    grey_image(64, 64).save(image)
    assert main(["infer", "--model", "m", str(image), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("deepmedix infer: error:") and message in err and "\n" not in err


def test_infer_missing_or_broken_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["infer", "--model", "tiny", str(tmp_path / "nope.png"), "--question", "q?"]) == 1
    assert "nope.png" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nrubbish")
    assert main(["infer", "--model", "tiny", str(bad), "--question", "q?"]) == 1
    assert "bad.png" in capsys.readouterr().err


def test_registering_the_commands_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, argparse, deepmedix.inference.cli as c; p = argparse.ArgumentParser(); "
        "c.register(p.add_subparsers()); "
        "print(sorted(m for m in ('torch', 'transformers', 'fastapi', 'uvicorn', 'vllm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_serve_builds_the_app_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    import deepmedix.inference.server as server
    from tests.inference.conftest import png_bytes, write_samples

    started: dict = {}
    monkeypatch.setattr(server, "serve", lambda app, host, port, **kw: started.update(app=app, host=host, port=port))
    samples = write_samples(tmp_path / "d", n=2)
    assert (
        main(
            [
                "serve",
                "--model",
                "tiny",
                "--port",
                "8123",
                "--samples",
                str(samples),
                "--max-upload-mb",
                "1",
                "--max-new-tokens",
                "4",
                "--time-limit",
                "7",
                "--queue-wait",
                "3",
                "--max-question-chars",
                "100",
            ]
        )
        == 0
    )
    assert started["host"] == "127.0.0.1" and started["port"] == 8123  # local only unless told otherwise
    client = TestClient(started["app"])
    health = client.get("/health").json()
    assert health["model"] == "tiny" and health["samples"] == 2 and health["limits"]["max_upload_mb"] == 1
    assert {
        k: health["limits"][k] for k in ("time_limit_s", "queue_wait_s", "max_question_chars", "max_new_tokens")
    } == {
        "time_limit_s": 7,
        "queue_wait_s": 3,
        "max_question_chars": 100,
        "max_new_tokens": 4,
    }
    r = client.post(
        "/api/answer",
        files={"image": ("a.png", png_bytes(grey_image(100, 80)), "image/png")},
        data={"question": "Effusion?"},
    )
    assert r.status_code == 200 and r.json()["image_size"] == [100, 80]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--server-api-key-env", "DEEPMEDIX_NO_SUCH_VARIABLE"], "DEEPMEDIX_NO_SUCH_VARIABLE"),
        (["--allowed-image-dir", "/no/such/folder"], "/no/such/folder"),
        (["--time-limit", "nan"], "--time-limit"),
        (["--queue-wait", "0"], "--queue-wait"),
    ],
)
def test_serve_rejects_bad_server_flags_before_loading_a_model(
    flags: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(["serve", "--model", "no-such-model", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_serve_rejects_a_bad_samples_file_before_loading_a_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"id": "x"}\n')
    assert main(["serve", "--model", "no-such-model", "--samples", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "s.jsonl" in err and "line 1" in err

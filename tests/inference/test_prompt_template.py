"""``--prompt-template``: the rendered text is what reaches the model (the processor's text, the OpenAI request, the
server's conversation), every answer records it, and a bad template stops a command before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deepmedix.cli import main
from deepmedix.endpoints import image_data_url
from deepmedix.errors import DataError, OptionError
from deepmedix.inference.api import GroundedAnswerer, load_backend
from deepmedix.inference.backends import TransformersBackend
from deepmedix.inference.predict import predict_file
from deepmedix.inference.server import create_app
from deepmedix.io import read_jsonl
from deepmedix.protocol import BUILTIN_REASONING_TEMPLATE, load_prompt_template
from tests.fake_openai import fake_openai_server
from tests.inference.conftest import FIXED_COMPLETION, ScriptedBackend, grey_image, png_bytes

TEMPLATE = "{{ content | trim }}\n\nThink inside <think> </think>; cite [x_min, y_min, x_max, y_max]; end \\boxed{}.\n"


@pytest.fixture
def template_file(tmp_path: Path) -> Path:
    path = tmp_path / "format.jinja"
    path.write_text(TEMPLATE, encoding="utf-8")
    return path


def _rendered(question: str) -> str:
    return f"{question.strip()}\n\nThink inside <think> </think>; cite [x_min, y_min, x_max, y_max]; end \\boxed{{}}."


class _RecordingProcessor:
    """The backend's processor, with the texts it is given recorded (what the model is fed)."""

    def __init__(self, processor: Any):
        self._processor = processor
        self.texts: list[str] = []

    def __call__(self, *args: Any, text: list[str], **kwargs: Any) -> Any:
        self.texts.extend(text)
        return self._processor(*args, text=text, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)


def test_the_rendered_text_is_what_the_tiny_model_is_fed(template_file: Path) -> None:
    backend = load_backend("tiny", max_new_tokens=3)
    assert isinstance(backend, TransformersBackend)
    recorder = _RecordingProcessor(backend.processor)
    backend.processor = recorder  # type: ignore[assignment]
    answerer = GroundedAnswerer(backend, template_file)
    result = answerer.answer(grey_image(128, 128), question="  Is there an effusion? ")
    assert result.prompt_text == _rendered("Is there an effusion?")
    assert result.prompt_template == "format.jinja" and result.prompt_template_sha256 == answerer.template.sha256
    (fed,) = recorder.texts
    # The chat template wraps exactly the rendered text after the image slot, and nothing of the built-in wording.
    assert f"<|vision_end|>{_rendered('Is there an effusion?')}<|im_end|>" in fed
    assert "internal monologue" not in fed
    # Asked without reasoning, the question goes alone.
    plain = answerer.answer(grey_image(128, 128), question="Is there an effusion?", reasoning=False)
    assert plain.prompt_text == "Is there an effusion?" and plain.prompt_template == "builtin:plain"
    assert recorder.texts[-1].count("Is there an effusion?<|im_end|>") == 1


def test_the_openai_backend_sends_the_rendered_text(template_file: Path) -> None:
    seen: list[dict] = []
    with fake_openai_server(lambda body: seen.append(body) or FIXED_COMPLETION) as url:
        backend = load_backend("Qwen/Qwen2.5-VL-7B-Instruct", "openai", base_url=url)
        result = GroundedAnswerer(backend, template_file).answer(grey_image(256, 256), question="Where is it?")
    content = seen[0]["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url", "text"]
    assert content[1]["text"] == _rendered("Where is it?") == result.prompt_text


def test_prediction_lines_record_the_text_and_the_template(
    template_file: Path, samples_file: Path, tmp_path: Path
) -> None:
    backend = ScriptedBackend()
    out = predict_file(backend, samples_file, tmp_path / "pred.jsonl", prompt_template=template_file, progress=False)
    rows = read_jsonl(out)
    template = load_prompt_template(template_file)
    assert template is not None
    for row, request in zip(rows, backend.requests, strict=True):
        assert row["prompt_text"] == _rendered(row["prompt"]) == request.user_text()
        assert request.messages()[0]["content"][-1]["text"] == row["prompt_text"]
        assert (row["prompt_template"], row["prompt_template_sha256"]) == ("format.jinja", template.sha256)
    # The file is one way of asking: a rerun with another template is refused, naming the line and the field.
    (tmp_path / "other.jinja").write_text("Q: {{ content }}", encoding="utf-8")
    with pytest.raises(DataError, match=r"pred\.jsonl, line 1, field 'prompt_template_sha256'.*format\.jinja"):
        predict_file(ScriptedBackend(), samples_file, out, prompt_template=tmp_path / "other.jinja", progress=False)
    with pytest.raises(OptionError, match="without reasoning"):
        predict_file(ScriptedBackend(), samples_file, out, prompt_template=template_file, reasoning=False)


def test_without_a_template_the_built_in_one_is_recorded(samples_file: Path, tmp_path: Path) -> None:
    rows = read_jsonl(predict_file(ScriptedBackend(), samples_file, tmp_path / "p.jsonl", progress=False))
    assert {r["prompt_template"] for r in rows} == {"builtin:grounded-reasoning"}
    assert {r["prompt_template_sha256"] for r in rows} == {BUILTIN_REASONING_TEMPLATE.sha256}
    assert rows[0]["prompt_text"] == BUILTIN_REASONING_TEMPLATE.render(rows[0]["prompt"])


def test_the_server_asks_with_its_template_on_both_apis(template_file: Path) -> None:
    backend = ScriptedBackend()
    client = TestClient(create_app(GroundedAnswerer(backend, template_file)))
    health = client.get("/health").json()
    assert health["prompt_template"]["name"] == "format.jinja"
    r = client.post(
        "/api/answer",
        files={"image": ("cxr.png", png_bytes(grey_image(64, 64)), "image/png")},
        data={"question": "Effusion?"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["prompt_text"] == _rendered("Effusion?") == backend.requests[-1].user_text()
    message = {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": image_data_url(grey_image(64, 64))}},
            {"type": "text", "text": "Effusion?"},
        ],
    }
    body = {"model": "scripted", "messages": [message], "deepmedix": {"reasoning": True}}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    sent = backend.requests[-1].messages()
    assert sent == [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": _rendered("Effusion?")}]}]
    body.pop("deepmedix")  # not asked for: the client's text as it is
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert backend.requests[-1].messages()[0]["content"][1]["text"] == "Effusion?"


def test_a_broken_template_stops_infer_before_the_model_is_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "cxr.png"
    grey_image(64, 64).save(image)
    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ content | trim }}\n\n{{ content | }}\n", encoding="utf-8")
    # The model does not exist: the template error must come first.
    args = ["infer", str(image), "--question", "q?", "--model", str(tmp_path / "no-model"), "--prompt-template"]
    assert main([*args, str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert f"{bad}, line 3: template syntax error" in err and len(err.splitlines()) == 1
    good = tmp_path / "good.jinja"
    good.write_text(TEMPLATE, encoding="utf-8")
    assert main([*args, str(good), "--no-reasoning"]) == 1
    assert "--no-reasoning" in capsys.readouterr().err


def test_infer_prints_the_text_it_sent(template_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    image = tmp_path / "cxr.png"
    grey_image(64, 64).save(image)
    args = ["infer", "--model", "tiny", str(image), "--task", "findings", "--max-new-tokens", "2"]
    assert main([*args, "--prompt-template", str(template_file)]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["prompt_text"] == _rendered("Write the FINDINGS section of the radiology report for this chest X-ray.")
    assert body["prompt_template"] == "format.jinja" and body["max_new_tokens"] == 2


def test_a_model_folder_is_asked_with_the_template_it_was_trained_on(
    template_file: Path, samples_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A trained model keeps its reasoning prompt as reasoning_prompt.jinja: predict, infer and the server ask with it
    unless told otherwise; a folder without one gets the built-in prompt."""
    import shutil

    from deepmedix.models.registry import embedded_model_path
    from deepmedix.protocol import MODEL_PROMPT_FILE

    folder = tmp_path / "trained"
    shutil.copytree(embedded_model_path("tiny"), folder)
    (folder / MODEL_PROMPT_FILE).write_text(TEMPLATE, encoding="utf-8")
    sha = load_prompt_template(template_file).sha256  # type: ignore[union-attr]

    rows = read_jsonl(predict_file(ScriptedBackend(model_name=str(folder)), samples_file, tmp_path / "a.jsonl"))
    assert {(r["prompt_template"], r["prompt_template_sha256"]) for r in rows} == {(MODEL_PROMPT_FILE, sha)}
    assert rows[0]["prompt_text"] == _rendered(rows[0]["prompt"])
    other = tmp_path / "other.jinja"
    other.write_text("Q: {{ content }}", encoding="utf-8")  # a template given wins over the folder's
    given = predict_file(
        ScriptedBackend(model_name=str(folder)), samples_file, tmp_path / "b.jsonl", prompt_template=other
    )
    assert read_jsonl(given)[0]["prompt_text"] == f"Q: {rows[0]['prompt']}"
    health = TestClient(create_app(GroundedAnswerer(ScriptedBackend(model_name=str(folder))))).get("/health").json()
    assert health["prompt_template"] == {"name": MODEL_PROMPT_FILE, "sha256": sha}

    image = tmp_path / "cxr.png"
    grey_image(64, 64).save(image)
    assert main(["infer", "--model", str(folder), str(image), "--question", "Effusion?", "--max-new-tokens", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["prompt_text"] == _rendered("Effusion?")
    (folder / MODEL_PROMPT_FILE).unlink()  # trained on the built-in prompt
    assert main(["infer", "--model", str(folder), str(image), "--question", "Effusion?", "--max-new-tokens", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["prompt_text"] == BUILTIN_REASONING_TEMPLATE.render("Effusion?")

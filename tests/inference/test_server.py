from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from deepmedix.inference.api import GroundedAnswerer
from deepmedix.inference.server import create_app
from tests.inference.conftest import ScriptedBackend, grey_image, png_bytes, png_header_only


def _client(samples: Path | None = None, **limits: float) -> TestClient:
    return TestClient(create_app(GroundedAnswerer(ScriptedBackend()), samples=samples, **limits))


def _ask(client: TestClient, data: bytes, name: str = "cxr.png", **form: str):
    return client.post(
        "/api/answer", files={"image": (name, data, "image/png")}, data=form or {"question": "Effusion?"}
    )


def _good(client: TestClient) -> None:
    r = _ask(client, png_bytes(grey_image(64, 64)))
    assert r.status_code == 200, r.text
    assert r.json()["answer"] == "pleural effusion"


def test_answer_returns_grounded_steps_in_original_pixels() -> None:
    client = _client()
    r = _ask(client, png_bytes(grey_image(1024, 768)), question="Is there an effusion?")
    assert r.status_code == 200
    body = r.json()
    assert body["answer"] == "pleural effusion" and body["format_valid"] is True
    assert body["image_size"] == [1024, 768] and body["task"] == "vqa"
    mw, mh = body["model_input_size"]
    assert (mw, mh) != (1024, 768) and mw * mh <= 512 * 512
    box = body["steps"][0]["boxes"][0]
    assert box == pytest.approx([50 * 1024 / mw, 300 * 768 / mh, 200 * 1024 / mw, 450 * 768 / mh], abs=0.06)
    assert set(body["timing"]) == {"decode_s", "generate_s", "total_s"}
    preview = Image.open(io.BytesIO(base64.b64decode(body["image_url"].split(",", 1)[1])))
    assert preview.size == (1024, 768)
    assert client.get("/health").json()["model"] == "scripted"


def test_task_without_question_writes_a_report_section() -> None:
    r = _client().post(
        "/api/answer",
        files={"image": ("a.png", png_bytes(grey_image(64, 64)), "image/png")},
        data={"task": "findings", "reasoning": "false"},
    )
    assert r.status_code == 200
    assert r.json()["task"] == "report_findings" and r.json()["prompt"].startswith("Write the FINDINGS")


@pytest.mark.parametrize(
    ("payload", "form", "status", "message"),
    [
        (b"this is not an image at all", {"question": "q?"}, 400, "cxr.png"),
        (png_bytes(grey_image(300, 300))[:900], {"question": "q?"}, 400, "cxr.png"),
        (png_header_only(30_000, 30_000), {"question": "q?"}, 413, "too large"),
        (png_header_only(30_000, 20), {"question": "q?"}, 413, "30000×20 pixels is too large"),
        (png_bytes(grey_image(64, 64)), {"question": "   "}, 400, "question is empty"),
        (png_bytes(grey_image(64, 64)), {"task": "x-ray"}, 400, "unknown task"),
        (b"", {"question": "q?"}, 400, "empty"),
    ],
    ids=["not-an-image", "truncated", "30000-pixels", "30000-wide", "empty-question", "bad-task", "empty-file"],
)
def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(
    payload: bytes, form: dict, status: int, message: str
) -> None:
    client = _client()
    r = _ask(client, payload, **form)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    _good(client)


def test_too_large_upload_is_refused() -> None:
    client = _client(max_upload_mb=0.05)
    big = png_bytes(grey_image(600, 600, seed=3))  # noisy: ~300 KB
    assert len(big) > 0.05 * 1024 * 1024 + 64 * 1024
    r = _ask(client, big)
    assert r.status_code == 413 and "exceeds the limit of 0.05 MB" in r.json()["detail"]
    _good(client)


def test_missing_image_and_missing_question() -> None:
    client = _client()
    r = client.post("/api/answer", data={"question": "q?"})
    assert r.status_code == 400 and "upload an image" in r.json()["detail"]
    r = client.post("/api/answer", files={"image": ("a.png", png_bytes(grey_image(64, 64)), "image/png")})
    assert r.status_code == 400 and "question" in r.json()["detail"]
    r = client.post(
        "/api/answer",
        files={"image": ("a.png", png_bytes(grey_image(64, 64)), "image/png")},
        data={"question": "q", "sample": "abc"},
    )
    assert r.status_code == 422 and "field 'sample'" in r.json()["detail"]


def test_dicom_upload(shared_data: Path) -> None:
    dcm = next((shared_data / "dicom").glob("1.2.276*.dcm")).read_bytes()
    r = _ask(_client(), dcm, name="study.dcm")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image_size"][0] > 100 and body["steps"][0]["boxes"]


def test_samples_listing_image_and_answer_by_index(samples_file: Path) -> None:
    client = _client(samples=samples_file)
    listing = client.get("/api/samples").json()
    assert [s["id"] for s in listing] == ["s0", "s1", "s2", "s3", "s4"]
    assert listing[2]["reference_boxes"] == [[10.0, 20.0, 110.0, 220.0]]
    img = client.get("/api/samples/0/image")
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(img.content)).size == (512, 512)
    assert client.get("/api/samples/9/image").status_code == 404
    r = client.post("/api/answer", data={"sample": "1"})
    assert r.status_code == 200
    body = r.json()
    assert body["task"] == "report_findings" and body["sample"]["id"] == "s1"
    assert _client().get("/api/samples/0/image").status_code == 404


def test_page_and_static_files_are_served_without_external_references() -> None:
    client = _client()
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        res = client.get(asset)
        assert res.status_code == 200
        assert "http://" not in res.text and "https://" not in res.text
    assert "http://" not in page.text and "https://" not in page.text


@pytest.mark.slow
def test_real_tiny_model_through_the_api() -> None:
    from deepmedix.inference.api import load_backend

    client = TestClient(create_app(GroundedAnswerer(load_backend("tiny", max_new_tokens=10))))
    r = _ask(client, png_bytes(grey_image(512, 400)), question="Is there an effusion?")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tiny" and body["image_size"] == [512, 400]
    assert body["completion"] and body["model_input_size"] == [112, 84]
    assert client.get("/health").json()["frame"]["max_pixels"] == 112 * 112


def test_failing_model_endpoint_is_a_502_and_serving_goes_on() -> None:
    from deepmedix.inference.backends import BackendError

    class Flaky(ScriptedBackend):
        def generate(self, requests):  # type: ignore[override]
            self.calls += 1
            if self.calls == 1:
                raise BackendError("1 of 1 requests failed; first: request 0: APITimeoutError", [None])
            return super().generate(requests)

    client = TestClient(create_app(GroundedAnswerer(Flaky())))
    r = _ask(client, png_bytes(grey_image(64, 64)))
    assert r.status_code == 502 and "APITimeoutError" in r.json()["detail"]
    _good(client)

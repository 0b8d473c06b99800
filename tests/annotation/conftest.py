"""Fixtures: two models' prediction files over a few generated radiograph-like images, and review sets built
from them."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw

from deepmedix.annotation.create import AnnotatorSpec, CreatedReview, create_review
from tests.annotation.labelstudio_server import LABELSTUDIO_VENV, LabelStudio, running_labelstudio

ANNOTATORS = [
    AnnotatorSpec("alice", "1"),
    AnnotatorSpec("bob", "1"),
    AnnotatorSpec("carol", "2"),
    AnnotatorSpec("dan", "2"),
]


def make_image(path: Path, size: tuple[int, int], lesion: tuple[int, int, int, int]) -> None:
    """A dark field with two brighter lung-like ellipses and a bright blob at ``lesion``."""
    w, h = size
    img = Image.new("L", size, 20)
    draw = ImageDraw.Draw(img)
    draw.ellipse([w * 0.1, h * 0.1, w * 0.45, h * 0.9], fill=90)
    draw.ellipse([w * 0.55, h * 0.1, w * 0.9, h * 0.9], fill=90)
    draw.ellipse(lesion, fill=220)
    img.save(path)


def write_predictions(folder: Path, n: int = 3) -> tuple[Path, Path]:
    """Model A's lines carry parsed ``steps`` (boxes in original pixels); model B's only a completion whose boxes
    are in the model frame (``model_input_size`` half the original), so review must convert them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows_a, rows_b = [], []
    for i in range(n):
        size = (400, 300)
        lesion = (60 + 10 * i, 80, 140 + 10 * i, 160)
        image = folder / f"cxr_{i}.png"
        make_image(image, size, lesion)
        base = {
            "id": f"s{i}",
            "split": "test",
            "source": "fixture",
            "task": "vqa",
            "benchmark": "fixture/vqa",
            "prompt": f"Is there a nodule in the right lung? (case {i})",
            "image": image.name,
            "image_size": list(size),
            "reference": "yes",
            "answer_type": "closed",
        }
        steps_a = [
            {
                "text": f"Step 1: the right upper zone [{lesion[0]}, {lesion[1]}, {lesion[2]}, {lesion[3]}] is dense.",
                "boxes": [list(lesion)],
                "boxes_model": [list(lesion)],
            },
            {"text": "Step 2: the left lung is clear.", "boxes": [], "boxes_model": []},
        ]
        completion_a = "<think>\n" + "\n".join(s["text"] for s in steps_a) + "\n</think>\nThe answer is: \\boxed{yes}"
        rows_a.append(
            {
                **base,
                "model": "model-a",
                "model_input_size": list(size),
                "completion": completion_a,
                "prediction": "yes",
                "format_valid": True,
                "steps": steps_a,
            }
        )
        # Model B: three steps, boxes in a half-size model frame: [30, 40, 70, 80] → original [60, 80, 140, 160].
        completion_b = (
            "<think>\nStep 1: heart size normal [100, 60, 150, 120].\nStep 2: a nodule [30, 40, 70, 80].\n"
            "Step 3: no effusion.\n</think>\nThe answer is: \\boxed{yes}"
        )
        rows_b.append(
            {
                **base,
                "model": "model-b",
                "model_input_size": [200, 150],
                "completion": completion_b,
                "prediction": "yes",
                "format_valid": True,
            }
        )
    rows_b.append({**rows_b[0], "id": "only-in-b"})
    a, b = folder / "a.jsonl", folder / "b.jsonl"
    a.write_text("".join(json.dumps(r) + "\n" for r in rows_a))
    b.write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    return a, b


def rate_all(client: httpx.Client, sample_id: str, preference: str = "left") -> None:
    sample = client.get(f"/api/samples/{sample_id}").json()
    bodies: list[dict[str, Any]] = []
    for side in ("left", "right"):
        for step in range(len(sample[side]["steps"])):
            for dim in ("relevance", "correctness"):
                bodies.append({"sample_id": sample_id, "dimension": dim, "side": side, "step": step, "value": "yes"})
        bodies.append({"sample_id": sample_id, "dimension": "completeness", "side": side, "value": "yes"})
    for dim in ("grounded_preference", "overall_preference"):
        bodies.append({"sample_id": sample_id, "dimension": dim, "value": preference})
    for body in bodies:
        assert client.post("/api/ratings", json=body).status_code == 200


@pytest.fixture
def predictions(tmp_path: Path) -> tuple[Path, Path]:
    return write_predictions(tmp_path / "preds")


@pytest.fixture
def review(tmp_path: Path, predictions: tuple[Path, Path]) -> CreatedReview:
    return create_review(
        list(predictions), ["DeepMedix-R1", "Qwen2.5-VL-7B"], tmp_path / "review", ANNOTATORS, n_samples=3, seed=7
    )


@contextmanager
def live_server(review_dir: Path) -> Iterator[str]:
    """The review app on a real HTTP server, on a free port picked by the OS (safe under xdist)."""
    import uvicorn

    from deepmedix.annotation.server import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(review_dir), log_level="warning", lifespan="off", log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("review server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    """One real Label Studio for the session (its start takes tens of seconds: migrations on a fresh database)."""
    if not LABELSTUDIO_VENV.is_dir():
        pytest.skip(f"{LABELSTUDIO_VENV} not built: `make labelstudio` (make test builds it) installs Label Studio")
    with running_labelstudio(tmp_path_factory.mktemp("labelstudio")) as ls:
        yield ls

"""End to end in headless Chromium: upload an X-ray, get the answer, see the boxes drawn where they belong."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page

from deepmedix.inference.api import GroundedAnswerer
from deepmedix.inference.overlay import STEP_COLOURS
from deepmedix.inference.server import create_app
from tests.fake_openai import free_port
from tests.inference.conftest import ScriptedBackend, grey_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from tests.inference.conftest import write_samples

    samples = write_samples(tmp_path_factory.mktemp("samples"), n=2)
    app = create_app(GroundedAnswerer(ScriptedBackend(cut_short={"Describe everything."})), samples=samples)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    give_up_at = time.time() + 15
    while not server.started:
        if time.time() > give_up_at:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server_url: str) -> Iterator[Page]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith(server_url) else route.abort()
        )  # nothing may be fetched from anywhere else
        yield pg
        browser.close()


def _near(img: Image.Image, x: float, y: float, colour: tuple[int, int, int], radius: int = 3, tol: int = 40) -> bool:
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            px = img.getpixel((min(img.width - 1, max(0, round(x + dx))), min(img.height - 1, max(0, round(y + dy)))))
            if all(abs(a - b) <= tol for a, b in zip(px[:3], colour, strict=True)):
                return True
    return False


def _canvas(pg: Page) -> Image.Image:
    return Image.open(io.BytesIO(pg.locator("#canvas").screenshot())).convert("RGB")


def test_upload_answer_and_boxes_drawn_on_the_image(page: Page, server_url: str, tmp_path: Path) -> None:
    pg = page
    requests: list[str] = []
    pg.on("request", lambda req: requests.append(req.url))
    pg.goto(server_url + "/")
    pg.wait_for_selector("body[data-state=ready]")
    image = tmp_path / "cxr.png"
    grey_image(512, 512).save(image)
    pg.set_input_files("#file", str(image))
    pg.fill("#question", "Is there a pleural effusion?")
    pg.click("#ask")
    pg.wait_for_selector("body[data-state=answered]", timeout=15000)
    assert pg.inner_text("#answer") == "pleural effusion"
    assert pg.locator("#steps li.step").count() == 3

    shot = _canvas(pg)
    s = shot.width / 512  # the canvas may be shown scaled
    # Step 1's box in original pixels is [50.8, 304.8, 203.2, 457.1]: its left and bottom edges are red.
    red, green = STEP_COLOURS[0], STEP_COLOURS[1]
    assert _near(shot, 50.8 * s, 381 * s, red)
    assert _near(shot, 127 * s, 457.1 * s, red)
    # Step 2's first box [182.9, 203.2, 335.2, 406.3]: green.
    assert _near(shot, 335.2 * s, 300 * s, green)
    # Inside a box and away from edges, the X-ray stays grey.
    r, g, b = shot.getpixel((round(120 * s), round(380 * s)))
    assert max(r, g, b) - min(r, g, b) < 10

    # Hovering step 2 dims step 1's boxes.
    pg.hover("#steps li.step[data-step='1']")
    dimmed = _canvas(pg)
    assert not _near(dimmed, 50.8 * s, 381 * s, red, tol=40)
    assert _near(dimmed, 335.2 * s, 300 * s, green)
    assert all(u.startswith(server_url) or u.startswith(("data:", "blob:")) for u in requests)


def test_an_answer_cut_off_at_its_budget_says_so(page: Page, server_url: str, tmp_path: Path) -> None:
    pg = page
    image = tmp_path / "cxr.png"
    grey_image(256, 256).save(image)
    for question, cut in (("Describe everything.", True), ("Is there a pleural effusion?", False)):
        pg.goto(server_url + "/")  # a fresh page: "answered" below is this question's answer
        pg.wait_for_selector("body[data-state=ready]")
        pg.set_input_files("#file", str(image))
        pg.fill("#question", question)
        pg.click("#ask")
        pg.wait_for_selector("body[data-state=answered]", timeout=15000)
        note = pg.inner_text("#timing")
        assert ("cut off at its budget of 512 new tokens" in note) is cut, note


def test_bad_upload_shows_the_servers_message(page: Page, server_url: str, tmp_path: Path) -> None:
    pg = page
    pg.goto(server_url + "/")
    pg.wait_for_selector("body[data-state=ready]")
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    pg.set_input_files("#file", str(bad))
    pg.fill("#question", "Effusion?")
    pg.click("#ask")
    pg.wait_for_selector("body[data-state=error]", timeout=15000)
    assert "notes.png" in pg.inner_text("#status")


def test_pick_a_sample_and_ask(page: Page, server_url: str) -> None:
    pg = page
    pg.goto(server_url + "/")
    pg.wait_for_selector("body[data-state=ready]")
    pg.select_option("#sample", "0")
    assert pg.input_value("#question") == "Question 0?"
    pg.click("#ask")
    pg.wait_for_selector("body[data-state=answered]", timeout=15000)
    assert "s0.png" in pg.inner_text("#image-info")

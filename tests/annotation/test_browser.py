"""End to end in headless Chromium: open the personal link, rate a whole sample with the keyboard, reload, and
find every rating still there (and stored un-blinded on the server); the page under its own Content-Security-Policy,
and a forged request from another page on the same host."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from deepmedix.annotation.create import CreatedReview
from deepmedix.annotation.store import ReviewStore
from tests.annotation.conftest import live_server, rate_all

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
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
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def pressed(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('aria-pressed'))")


def test_rate_with_keyboard_reload_and_resume(browser, review: CreatedReview) -> None:
    with live_server(review.dir) as base:
        # The page's CSP forbids eval; Playwright's wait_for_function needs it, so the test context bypasses it.
        page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/")
        page.wait_for_function(
            "!document.querySelector('#signin').hidden"
        )  # no token yet: asked to open the personal link

        page.goto(f"{base}/t/{review.tokens['alice']}")
        page.wait_for_selector("li.step")
        assert page.url.startswith(f"{base}/#1")  # the link signed in and landed on the first unrated sample
        sample_id = page.evaluate("state.sample.sample_id")
        n_left = page.locator("#side-left li.step").count()
        n_right = page.locator("#side-right li.step").count()
        assert (n_left, n_right) in {(2, 3), (3, 2)}

        # The current step's box is drawn over the image, in original pixels (the SVG's viewBox is the image size).
        assert page.locator("#overlay").get_attribute("viewBox") == "0 0 400 300"
        rect = page.locator("#overlay rect")
        assert rect.count() == 1
        first_box = page.evaluate("state.sample.left.steps[0].boxes[0]")
        assert [float(rect.get_attribute(k)) for k in ("x", "y")] == first_box[:2]
        page.keyboard.press("j")
        n_boxes_step2 = len(page.evaluate("state.sample.left.steps[1].boxes"))
        assert page.locator("#overlay rect").count() == n_boxes_step2
        page.keyboard.press("k")

        # Every step: relevance yes (r), correctness no (C), then j to the next step (Left's then Right's).
        for _ in range(n_left + n_right):
            page.keyboard.press("r")
            page.keyboard.press("Shift+C")
            page.keyboard.press("j")
        page.keyboard.press("h")
        page.keyboard.press("m")  # Left complete: yes
        page.keyboard.press("l")
        page.keyboard.press("Shift+M")  # Right complete: no
        page.keyboard.press("2")  # grounded preference: Right
        page.keyboard.press("3")  # overall preference: Left
        page.wait_for_function("document.querySelector('#status').textContent === 'saved'")
        page.wait_for_selector("#sample-state.done")
        assert page.locator("#progress").inner_text() == "1 / 3 complete"

        page.reload()
        page.wait_for_selector("li.step")
        assert page.evaluate("state.sample.sample_id") == sample_id  # resumed on the same sample
        for side in ("left", "right"):
            assert set(pressed(page, f"#side-{side} li.step button[data-dim=relevance][data-value=yes]")) == {"true"}
            assert set(pressed(page, f"#side-{side} li.step button[data-dim=correctness][data-value=no]")) == {"true"}
            assert set(pressed(page, f"#side-{side} li.step button[data-dim=relevance][data-value=no]")) == {"false"}
        assert pressed(page, "#side-left button[data-dim=completeness]") == ["true", "false"]
        assert pressed(page, "#side-right button[data-dim=completeness]") == ["false", "true"]
        assert pressed(page, "button[data-dim=grounded_preference]") == ["false", "true"]
        assert pressed(page, "button[data-dim=overall_preference]") == ["true", "false"]

        # Change a rating before finishing: clicking works as well as keys, and the change is stored.
        page.locator("#side-left li.step").first.locator("button[data-dim=relevance][data-value=no]").click()
        page.wait_for_function("document.querySelector('#status').textContent === 'saved'")

        # n goes to the next sample; a fresh sample shows no ratings.
        page.keyboard.press("n")
        page.wait_for_function(f"state.sample && state.sample.sample_id !== {sample_id!r}")
        assert page.url.endswith("#2")
        assert "true" not in pressed(page, "button[data-dim]")
        assert not errors, errors
        page.close()

    with ReviewStore(review.dir) as store:
        left = store.assignment("alice", sample_id)["left_model"]
        rows = store.ratings("alice", sample_id)
        n_steps = store.n_steps()
    right = 1 - left
    assert len(rows) == 2 * (n_left + n_right) + 4
    by_key = {(r["dimension"], r["model"], r["step"]): r["value"] for r in rows}
    assert by_key[("completeness", left, -1)] == 1 and by_key[("completeness", right, -1)] == 0
    assert by_key[("grounded_preference", -1, -1)] == right
    assert by_key[("overall_preference", -1, -1)] == left
    assert by_key[("relevance", left, 0)] == 0  # the changed rating
    for step in range(1, n_steps[(sample_id, left)]):
        assert by_key[("relevance", left, step)] == 1
    for step in range(n_steps[(sample_id, right)]):
        assert by_key[("relevance", right, step)] == 1 and by_key[("correctness", right, step)] == 0


@contextmanager
def other_site(pages: dict[str, str]) -> Iterator[int]:
    """Another web site on this machine: a plain HTTP server on its own port serving ``pages`` (path → HTML)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_page_under_its_own_csp_and_forgery_from_another_page(browser, review: CreatedReview) -> None:
    """No CSP bypass here: the page, its fetch() calls and the admin page work under the app's headers; the personal
    link works when followed from another site (the cookie is SameSite=Strict); and a page on another port of the
    same host — same site, so the browser does attach the cookie — cannot finish alice's review or rate for her."""
    with live_server(review.dir) as base:
        alice = {"Authorization": f"Bearer {review.tokens['alice']}"}
        carol = {"Authorization": f"Bearer {review.tokens['carol']}"}
        with httpx.Client(base_url=base, headers=alice) as c:
            for sid in ("s0", "s1", "s2"):  # alice rated everything: a forged finish would lock her review
                rate_all(c, sid)
        with httpx.Client(base_url=base, headers=carol) as c:
            for sid in ("s0", "s1", "s2"):
                rate_all(c, sid)
            assert c.post("/api/finish").status_code == 200
        forged_rating = json.dumps({"sample_id": "s0", "dimension": "overall_preference", "value": "right"})
        pages = {
            "/link.html": f'<a id="go" href="{base}/t/{review.tokens["alice"]}">your review</a>',
            "/forge.html": f"""<form id="f" method="POST" action="{base}/api/finish" enctype="text/plain">
                <input name="a" value="b"></form>
                <script>
                fetch("{base}/api/ratings", {{method: "POST", mode: "no-cors", credentials: "include",
                    headers: {{"Content-Type": "text/plain"}}, body: {json.dumps(forged_rating)}}})
                  .catch(() => null)  // the answer is unreadable (Cross-Origin-Resource-Policy); it was sent
                  .finally(() => document.getElementById("f").submit());
                </script>""",
        }
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        csp_reports: list[str] = []
        page.on("console", lambda m: csp_reports.append(m.text) if "Content Security Policy" in m.text else None)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        with other_site(pages) as port:
            page.goto(f"http://localhost:{port}/link.html")  # localhost vs 127.0.0.1: another site
            page.click("#go")
            page.wait_for_selector("li.step")
            assert page.locator("#who").inner_text().startswith("alice")
            page.locator("#side-left li.step").first.locator("button[data-dim=relevance][data-value=no]").click()
            page.wait_for_selector("#status.ok:has-text('saved')")

            with ReviewStore(review.dir) as store:
                before = (store.ratings("alice"), store.annotator("alice").finished_at)
            page.goto(f"http://127.0.0.1:{port}/forge.html")
            page.wait_for_url(f"{base}/api/finish")  # the forged form was posted, the browser shows the answer
            assert "refused" in page.content()
            with ReviewStore(review.dir) as store:
                assert (store.ratings("alice"), store.annotator("alice").finished_at) == before
                assert before[1] is None

            page.goto(f"{base}/t/{review.admin_token}")  # the admin page's Reopen posts through the same guard
            page.wait_for_selector("#progress-table button")
            page.click("#progress-table button")
            page.wait_for_selector("#progress-table tbody tr >> nth=3")
            page.wait_for_selector("#progress-table button", state="detached")
        with ReviewStore(review.dir) as store:
            assert store.annotator("carol").finished_at is None
        assert not csp_reports, csp_reports
        assert not errors, errors
        context.close()

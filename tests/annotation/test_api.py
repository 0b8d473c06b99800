"""The review app's HTTP API: sign-in, blinding, saving, access control, validation, finishing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deepmedix.annotation.create import CreatedReview
from deepmedix.annotation.server import COOKIE, create_app
from deepmedix.annotation.store import ReviewStore


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(review: CreatedReview) -> TestClient:
    return TestClient(create_app(review.dir))


def rate_everything(client: TestClient, token: str, sample: dict) -> None:
    sid = sample["sample_id"]
    for side in ("left", "right"):
        for step in range(len(sample[side]["steps"])):
            for dim in ("relevance", "correctness"):
                body = {"sample_id": sid, "dimension": dim, "side": side, "step": step, "value": "yes"}
                assert client.post("/api/ratings", json=body, headers=bearer(token)).status_code == 200
        body = {"sample_id": sid, "dimension": "completeness", "side": side, "value": "no"}
        assert client.post("/api/ratings", json=body, headers=bearer(token)).status_code == 200
    for dim in ("grounded_preference", "overall_preference"):
        body = {"sample_id": sid, "dimension": dim, "value": "left"}
        assert client.post("/api/ratings", json=body, headers=bearer(token)).status_code == 200


def test_no_token_is_401_everywhere(client: TestClient) -> None:
    for path in (
        "/api/me",
        "/api/samples/s0",
        "/api/images/s0",
        "/api/admin/progress",
        "/api/annotators/alice/ratings",
    ):
        assert client.get(path).status_code == 401, path
    body = {"sample_id": "s0", "dimension": "overall_preference", "value": "left"}
    assert client.post("/api/ratings", json=body).status_code == 401
    assert client.get("/api/me", headers=bearer("not-a-token")).status_code == 401
    assert client.get("/t/not-a-token", follow_redirects=False).status_code == 401


def test_personal_link_sets_cookie_and_identifies(client: TestClient, review: CreatedReview) -> None:
    r = client.get(f"/t/{review.tokens['carol']}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "httponly" in r.headers["set-cookie"].lower()
    me = client.get("/api/me").json()  # the cookie alone now signs in
    assert me["annotator"] == "carol" and me["group"] == "2"
    assert me["n_samples"] == 3 and me["n_complete"] == 0
    r = client.get(f"/t/{review.admin_token}", follow_redirects=False)
    assert r.headers["location"] == "/admin"


def test_tokens_are_stored_hashed(review: CreatedReview) -> None:
    raw = (review.dir / "review.sqlite").read_bytes()
    for token in [*review.tokens.values(), review.admin_token]:
        assert token.encode() not in raw


def test_sample_is_blinded_and_boxes_are_original_pixels(client: TestClient, review: CreatedReview) -> None:
    with ReviewStore(review.dir) as store:
        assignment = store.assignment("alice", "s0")
        models = store.models()
    s = client.get("/api/samples/s0", headers=bearer(review.tokens["alice"])).json()
    text = str(s)
    assert all(name not in text for name in models)  # no model name reaches the page
    # Model 0 (A) has 2 steps with the box given in original pixels; model 1 (B) has 3 steps whose model-frame
    # boxes (half size) were scaled back: [30, 40, 70, 80] → [60, 80, 140, 160].
    a_side = "left" if assignment["left_model"] == 0 else "right"
    b_side = "right" if a_side == "left" else "left"
    assert len(s[a_side]["steps"]) == 2 and len(s[b_side]["steps"]) == 3
    assert s[b_side]["steps"][1]["boxes"] == [[60.0, 80.0, 140.0, 160.0]]
    assert s[a_side]["steps"][0]["boxes"] == [[60.0, 80.0, 140.0, 160.0]]
    assert s["image_size"] == [400, 300]
    img = client.get(s["image_url"], headers=bearer(review.tokens["alice"]))
    assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_left_right_differs_across_annotators_and_samples(review: CreatedReview) -> None:
    with ReviewStore(review.dir) as store:
        layouts = {
            (a.name, x["sample_id"]): x["left_model"] for a in store.annotators() for x in store.assignments(a.name)
        }
    assert len(layouts) == 12  # 4 annotators × 3 samples, every group rates everything
    assert set(layouts.values()) == {0, 1}


def test_rating_is_stored_unblinded_and_upserted(client: TestClient, review: CreatedReview) -> None:
    tok = review.tokens["bob"]
    s = client.get("/api/samples/s1", headers=bearer(tok)).json()
    body = {"sample_id": "s1", "dimension": "relevance", "side": "right", "step": 0, "value": "yes"}
    r = client.post("/api/ratings", json=body, headers=bearer(tok))
    assert r.status_code == 200 and r.json()["ratings"] == {"relevance/right/0": "yes"}
    client.post("/api/ratings", json={**body, "value": "no"}, headers=bearer(tok))  # change of mind
    client.post(
        "/api/ratings",
        json={"sample_id": "s1", "dimension": "overall_preference", "value": "right"},
        headers=bearer(tok),
    )
    with ReviewStore(review.dir) as store:
        left = store.assignment("bob", "s1")["left_model"]
        rows = store.ratings("bob")
    right_model = 1 - left
    assert len(rows) == 2
    rel = next(r for r in rows if r["dimension"] == "relevance")
    assert (rel["model"], rel["step"], rel["value"]) == (right_model, 0, 0)
    pref = next(r for r in rows if r["dimension"] == "overall_preference")
    assert pref["value"] == right_model
    again = client.get("/api/samples/s1", headers=bearer(tok)).json()
    assert again["ratings"] == {"relevance/right/0": "no", "overall_preference": "right"}
    assert s["sample_id"] == "s1"


def test_another_annotators_data_is_403(client: TestClient, review: CreatedReview, tmp_path: Path) -> None:
    alice, bob = bearer(review.tokens["alice"]), bearer(review.tokens["bob"])
    assert client.get("/api/annotators/bob/ratings", headers=alice).status_code == 403
    assert client.get("/api/annotators/alice/ratings", headers=alice).status_code == 200
    assert client.get("/api/admin/progress", headers=alice).status_code == 403
    assert client.get("/api/annotators/bob/ratings", headers=bearer(review.admin_token)).status_code == 200
    # With split assignment, a sample of a group-mate is not assigned to you: reading or rating it is refused.
    from deepmedix.annotation.create import create_review
    from tests.annotation.conftest import ANNOTATORS, write_predictions

    a, b = write_predictions(tmp_path / "p2")
    split = create_review([a, b], ["A", "B"], tmp_path / "split", ANNOTATORS, n_samples=3, seed=1, within_group="split")
    c2 = TestClient(create_app(split.dir))
    with ReviewStore(split.dir) as store:
        bobs = {x["sample_id"] for x in store.assignments("bob")}
        alices = {x["sample_id"] for x in store.assignments("alice")}
    assert alices and bobs and not alices & bobs and alices | bobs == {"s0", "s1", "s2"}
    theirs = sorted(bobs)[0]
    h = bearer(split.tokens["alice"])
    assert c2.get(f"/api/samples/{theirs}", headers=h).status_code == 403
    assert c2.get(f"/api/images/{theirs}", headers=h).status_code == 403
    body = {"sample_id": theirs, "dimension": "overall_preference", "value": "left"}
    assert c2.post("/api/ratings", json=body, headers=h).status_code == 403
    assert bob and alice  # both tokens were in use


@pytest.mark.parametrize(
    "body",
    [
        {"sample_id": "s0", "dimension": "relevance", "side": "left", "value": "yes"},  # no step
        {"sample_id": "s0", "dimension": "relevance", "side": "left", "step": 0, "value": "left"},  # wrong value
        {"sample_id": "s0", "dimension": "completeness", "side": "left", "step": 0, "value": "yes"},  # step given
        {"sample_id": "s0", "dimension": "overall_preference", "side": "left", "value": "left"},  # side given
        {"sample_id": "s0", "dimension": "overall_preference", "value": "yes"},
        {"sample_id": "s0", "dimension": "beauty", "value": "yes"},
        {"sample_id": "s0", "dimension": "relevance", "side": "middle", "step": 0, "value": "yes"},
        {"sample_id": "s0", "dimension": "relevance", "side": "left", "step": -1, "value": "yes"},
        {"sample_id": "s0", "dimension": "relevance", "side": "left", "step": 0, "value": "yes", "extra": 1},
        {"sample_id": "s0", "dimension": "relevance", "side": "left", "step": 99, "value": "yes"},  # no such step
        {"dimension": "overall_preference", "value": "left"},
    ],
)
def test_malformed_payloads_are_422_and_store_nothing(client: TestClient, review: CreatedReview, body: dict) -> None:
    r = client.post("/api/ratings", json=body, headers=bearer(review.tokens["alice"]))
    assert r.status_code == 422, r.text
    with ReviewStore(review.dir) as store:
        assert store.ratings("alice") == []


def test_not_json_is_422(client: TestClient, review: CreatedReview) -> None:
    r = client.post(
        "/api/ratings",
        content=b"{not json",
        headers={**bearer(review.tokens["alice"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 422


def test_progress_finish_lock_and_admin_reopen(client: TestClient, review: CreatedReview) -> None:
    tok = review.tokens["dan"]
    assert client.post("/api/finish", headers=bearer(tok)).status_code == 409  # nothing rated yet
    for sid in ("s0", "s1", "s2"):
        rate_everything(client, tok, client.get(f"/api/samples/{sid}", headers=bearer(tok)).json())
    me = client.get("/api/me", headers=bearer(tok)).json()
    assert me["n_complete"] == 3 and all(s["complete"] for s in me["samples"])
    progress = client.get("/api/admin/progress", headers=bearer(review.admin_token)).json()
    dan = next(a for a in progress["annotators"] if a["annotator"] == "dan")
    alice = next(a for a in progress["annotators"] if a["annotator"] == "alice")
    # per sample: (2 + 3 steps) × 2 step dimensions + 2 completeness + 2 preferences = 14 ratings
    assert (dan["complete"], dan["assigned"], dan["ratings"]) == (3, 3, 42)
    assert (alice["complete"], alice["ratings"]) == (0, 0)
    assert client.post("/api/finish", headers=bearer(tok)).status_code == 200
    body = {"sample_id": "s0", "dimension": "overall_preference", "value": "right"}
    assert client.post("/api/ratings", json=body, headers=bearer(tok)).status_code == 409  # locked
    assert client.post("/api/admin/reopen/dan", headers=bearer(tok)).status_code == 403
    assert client.post("/api/admin/reopen/dan", headers=bearer(review.admin_token)).status_code == 200
    assert client.post("/api/ratings", json=body, headers=bearer(tok)).status_code == 200


def test_ratings_survive_a_new_app_instance(review: CreatedReview) -> None:
    tok = bearer(review.tokens["alice"])
    body = {"sample_id": "s2", "dimension": "grounded_preference", "value": "right"}
    assert TestClient(create_app(review.dir)).post("/api/ratings", json=body, headers=tok).status_code == 200
    fresh = TestClient(create_app(review.dir))  # as after a server restart
    assert fresh.get("/api/samples/s2", headers=tok).json()["ratings"] == {"grounded_preference": "right"}


def test_pages_are_served_without_external_resources(client: TestClient) -> None:
    html = client.get("/").text
    js = client.get("/static/app.js").text
    assert "keyboard shortcuts" in html.lower() and "<kbd>r</kbd>" in html
    for text in (html, js, client.get("/admin").text, client.get("/static/app.css").text):
        assert "http://" not in text.replace("http://127.0.0.1", "").replace("http://www.w3.org", "")
        assert "https://" not in text
    assert client.get("/").headers["content-security-policy"].startswith("default-src 'self'")
    assert COOKIE


def test_sample_ids_with_slashes(tmp_path: Path) -> None:
    import json
    from urllib.parse import quote

    from deepmedix.annotation.create import create_review
    from tests.annotation.conftest import ANNOTATORS, write_predictions

    a, b = write_predictions(tmp_path / "p")
    for f in (a, b):
        rows = [json.loads(x) for x in f.read_text().splitlines()]
        f.write_text("".join(json.dumps({**r, "id": f"openi/{r['id']}"}) + "\n" for r in rows))
    made = create_review([a, b], ["A", "B"], tmp_path / "rev", ANNOTATORS[:1], n_samples=1, seed=0)
    client = TestClient(create_app(made.dir))
    h = bearer(made.tokens["alice"])
    sid = client.get("/api/me", headers=h).json()["samples"][0]["sample_id"]
    assert sid.startswith("openi/s")
    s = client.get(f"/api/samples/{quote(sid, safe='')}", headers=h).json()  # as the page's encodeURIComponent
    assert s["sample_id"] == sid
    assert client.get(s["image_url"], headers=h).status_code == 200
    body = {"sample_id": sid, "dimension": "overall_preference", "value": "left"}
    assert client.post("/api/ratings", json=body, headers=h).json()["ratings"] == {"overall_preference": "left"}

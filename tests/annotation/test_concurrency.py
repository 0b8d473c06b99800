"""Many annotators posting at once over real HTTP: every rating lands, none is lost or duplicated."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import httpx

from deepmedix.annotation.create import CreatedReview
from deepmedix.annotation.store import ReviewStore
from tests.annotation.conftest import live_server


def payloads(sample: dict, rng: random.Random) -> list[dict]:
    sid = sample["sample_id"]
    out = []
    for side in ("left", "right"):
        for step in range(len(sample[side]["steps"])):
            for dim in ("relevance", "correctness"):
                out.append(
                    {"sample_id": sid, "dimension": dim, "side": side, "step": step, "value": rng.choice(["yes", "no"])}
                )
        out.append({"sample_id": sid, "dimension": "completeness", "side": side, "value": rng.choice(["yes", "no"])})
    for dim in ("grounded_preference", "overall_preference"):
        out.append({"sample_id": sid, "dimension": dim, "value": rng.choice(["left", "right"])})
    return out


def test_concurrent_annotators_lose_nothing(review: CreatedReview) -> None:
    with live_server(review.dir) as base:
        jobs: list[tuple[str, list[dict]]] = []  # one job per (annotator, sample): 12 threads' worth of posts
        expected: dict[tuple[str, str], dict[str, str]] = {}
        for name, token in review.tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            for sid in ("s0", "s1", "s2"):
                sample = httpx.get(f"{base}/api/samples/{sid}", headers=headers).json()
                posts = payloads(sample, random.Random(f"{name}{sid}"))
                jobs.append((token, posts))
                for p in posts:
                    key = "/".join(str(p[k]) for k in ("dimension", "side", "step") if k in p)
                    expected.setdefault((name, sid), {})[key] = p["value"]

        def run(job: tuple[str, list[dict]]) -> list[int]:
            token, posts = job
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
                return [c.post("/api/ratings", json=p).status_code for p in posts]

        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = [code for result in pool.map(run, jobs) for code in result]
        assert codes == [200] * len(codes) and len(codes) == 4 * (14 + 14 + 14)

        for name, token in review.tokens.items():
            headers = {"Authorization": f"Bearer {token}"}
            for sid in ("s0", "s1", "s2"):
                got = httpx.get(f"{base}/api/samples/{sid}", headers=headers).json()
                assert got["ratings"] == expected[(name, sid)]
                assert got["complete"] is True
    with ReviewStore(review.dir) as store:
        assert len(store.ratings()) == 4 * 3 * 14


def test_racing_writes_to_one_rating_keep_exactly_one_row(review: CreatedReview) -> None:
    token = review.tokens["carol"]
    body = {"sample_id": "s0", "dimension": "overall_preference"}
    with (
        live_server(review.dir) as base,
        httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client,
    ):
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(
                pool.map(
                    lambda v: client.post("/api/ratings", json={**body, "value": v}).status_code, ["left", "right"] * 20
                )
            )
        assert set(codes) == {200}
        final = client.get("/api/samples/s0").json()["ratings"]["overall_preference"]
    with ReviewStore(review.dir) as store:
        rows = [r for r in store.ratings("carol") if r["dimension"] == "overall_preference"]
        left = store.assignment("carol", "s0")["left_model"]
    assert len(rows) == 1
    assert rows[0]["value"] == (left if final == "left" else 1 - left)

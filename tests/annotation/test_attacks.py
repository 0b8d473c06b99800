"""The review app attacked over real HTTP, as `deepmedix review serve` runs it (a subprocess, the real CLI).

Every row of the tables states the request, the status it must get, and is checked for three things: the status,
that nothing changed in the store (ratings with their timestamps, annotators with finish stamps and token hashes,
meta), and the error body's shape (``{"detail": ...}``, short, never repeating what was sent). Each refused request
is also one that would have changed the store had it been accepted: ``test_the_same_requests_from_the_page_succeed``
sends them the right way and sees them work.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deepmedix.annotation.create import CreatedReview, create_review
from deepmedix.annotation.security import SECURITY_HEADERS
from deepmedix.annotation.server import COOKIE, MAX_BODY_BYTES
from deepmedix.annotation.store import ReviewStore
from tests.annotation.conftest import ANNOTATORS, rate_all, write_predictions

pytestmark = pytest.mark.xdist_group("review-attacks")  # one server for the module

PUBLIC = "https://review.example.org"  # the --public-origin the server runs with
EVIL = "http://evil.example"
MARKER = "ATTACK-MARKER-7f3a"  # planted in bodies: must never come back


@dataclass
class Target:
    base: str
    port: int
    review: CreatedReview
    server: subprocess.Popen
    cookies: dict[str, str]  # "alice" / "admin" → the session cookie the personal link set
    alice_sample: str  # alice's first sample: fully rated by her, overall preference "left"
    bob_sample: str  # assigned to bob only (split within group 1)
    carol_finished: str  # carol's finish stamp

    @property
    def own(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.server.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")


def start_server(review_dir: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    for _attempt in range(3):  # the free port could be taken between picking and binding it
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "deepmedix.cli", "review", "serve", "--dir", str(review_dir), "--port", str(port)]
        log = review_dir.parent / "serve.log"
        with log.open("wb") as out:  # a file, not a pipe: nobody reads the server's output while it runs
            server = subprocess.Popen([*cmd, *extra], env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while server.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/favicon.ico", timeout=2)
                return server, port
            except httpx.TransportError:
                time.sleep(0.05)
        server.kill()
        server.wait()
    raise RuntimeError(f"review serve did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("attacks")
    a, b = write_predictions(root / "preds")
    review = create_review([a, b], ["A", "B"], root / "review", ANNOTATORS, n_samples=3, seed=5, within_group="split")
    with ReviewStore(review.dir) as store:
        alice_samples = [x["sample_id"] for x in store.assignments("alice")]
        bob_sample = store.assignments("bob")[0]["sample_id"]
        carol_samples = [x["sample_id"] for x in store.assignments("carol")]
    server, port = start_server(review.dir, "--public-origin", PUBLIC)
    base = f"http://127.0.0.1:{port}"
    try:
        # alice has rated everything but not finished (a forged finish would lock her); carol has finished (a
        # forged reopen would unlock her).
        for name, samples in (("alice", alice_samples), ("carol", carol_samples)):
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {review.tokens[name]}"}) as c:
                for sid in samples:
                    rate_all(c, sid)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {review.tokens['carol']}"}) as c:
            carol_finished = c.post("/api/finish").json()["finished_at"]
        cookies = {}
        for who, token in (("alice", review.tokens["alice"]), ("admin", review.admin_token)):
            r = httpx.get(f"{base}/t/{token}", follow_redirects=False)
            assert r.status_code == 303
            cookies[who] = r.cookies[COOKIE]
        yield Target(base, port, review, server, cookies, alice_samples[0], bob_sample, carol_finished)
    finally:
        server.terminate()
        server.wait(10)


def snapshot(review_dir: Path) -> dict[str, list[tuple]]:
    with ReviewStore(review_dir) as store:
        return {
            table: sorted(tuple(row) for row in store.conn.execute(f"SELECT * FROM {table}"))
            for table in ("meta", "annotators", "ratings")
        }


def assert_error_body(response: httpx.Response, sent: bytes = b"", quotes: bool = False) -> None:
    """``{"detail": "..."}`` or ``{"detail": [{loc, msg, type}, ...]}``, short, repeating nothing of the request —
    or with ``quotes``, at most the first 60 characters of an id it names (``sample 's9' is not assigned``)."""
    assert len(response.content) < 1500, response.content[:300]
    body = response.json()
    assert set(body) == {"detail"}
    if isinstance(body["detail"], list):
        assert body["detail"] and all(set(e) == {"loc", "msg", "type"} for e in body["detail"]), body
    else:
        assert isinstance(body["detail"], str) and body["detail"]
    assert (MARKER * 4 if quotes else MARKER) not in response.text
    if len(sent) > 40:
        assert sent[:40].decode("utf-8", "replace") not in response.text
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


# --- the request table ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    id: str
    method: str
    path: str  # {alice_sample}, {bob_sample} are filled in
    status: int
    auth: str = ""  # "bearer:alice", "cookie:alice", "bearer:<literal>", "" = none
    origin: str | None = None  # "own", "public" or a literal origin; None = no header
    referer: str | None = None
    content_type: str | None = "application/json"
    body: Any = None  # dict → JSON; str → raw text; None → no body
    headers: dict[str, str] = field(default_factory=dict)


def rating(value: str = "right", **overrides: Any) -> dict[str, Any]:
    """A rating of alice's first sample that differs from what she stored, so accepting it changes the store."""
    return {"sample_id": "{alice_sample}", "dimension": "overall_preference", "value": value, **overrides}


ATTACKS = [
    # --- authentication ---------------------------------------------------------------------------------------
    Attack("no token: me", "GET", "/api/me", 401),
    Attack("no token: a sample", "GET", "/api/samples/{alice_sample}", 401),
    Attack("no token: an image", "GET", "/api/images/{alice_sample}", 401),
    Attack("no token: rate", "POST", "/api/ratings", 401, body=rating()),
    Attack("no token: finish", "POST", "/api/finish", 401),
    Attack("no token: admin progress", "GET", "/api/admin/progress", 401),
    Attack("no token: admin reopen", "POST", "/api/admin/reopen/carol", 401),
    Attack("wrong token", "GET", "/api/me", 401, auth="bearer:not-a-token"),
    Attack("token one character off", "POST", "/api/ratings", 401, auth="bearer:{alice_token_off}", body=rating()),
    Attack(
        "cookie one character off",
        "POST",
        "/api/ratings",
        401,
        auth="cookie:{alice_token_off}",
        origin="own",
        body=rating(),
    ),
    Attack("invalid personal link", "GET", "/t/{alice_token_off}", 401),
    Attack("annotator on admin progress", "GET", "/api/admin/progress", 403, auth="bearer:alice"),
    Attack("annotator reopens carol", "POST", "/api/admin/reopen/carol", 403, auth="bearer:alice"),
    Attack("admin token rates", "POST", "/api/ratings", 403, auth="bearer:admin", body=rating()),
    Attack("admin token finishes", "POST", "/api/finish", 403, auth="bearer:admin"),
    # --- one annotator against another --------------------------------------------------------------------------
    Attack("read bob's ratings", "GET", "/api/annotators/bob/ratings", 403, auth="bearer:alice"),
    Attack("read carol's ratings", "GET", "/api/annotators/carol/ratings", 403, auth="bearer:alice"),
    Attack("read bob's sample", "GET", "/api/samples/{bob_sample}", 403, auth="bearer:alice"),
    Attack("read bob's image", "GET", "/api/images/{bob_sample}", 403, auth="bearer:alice"),
    Attack(
        "rate bob's sample", "POST", "/api/ratings", 403, auth="bearer:alice", body=rating(sample_id="{bob_sample}")
    ),
    # --- cross-site request forgery (alice's session cookie, as her browser would attach it) -------------------
    Attack(
        "finish, other site, text/plain (the issue's attack)",
        "POST",
        "/api/finish",
        403,
        auth="cookie:alice",
        origin=EVIL,
        content_type="text/plain",
        body="x",
    ),
    Attack("finish, other site, JSON", "POST", "/api/finish", 403, auth="cookie:alice", origin=EVIL, body={}),
    Attack("finish, other site, no body", "POST", "/api/finish", 403, auth="cookie:alice", origin=EVIL),
    Attack("rate, other site", "POST", "/api/ratings", 403, auth="cookie:alice", origin=EVIL, body=rating()),
    Attack(
        "rate, same host other port (same site: the cookie is sent)",
        "POST",
        "/api/ratings",
        403,
        auth="cookie:alice",
        origin="http://127.0.0.1:1",
        body=rating(),
    ),
    Attack(
        "rate, localhost instead of 127.0.0.1",
        "POST",
        "/api/ratings",
        403,
        auth="cookie:alice",
        origin="http://localhost:1",
        body=rating(),
    ),
    Attack("rate, Origin null", "POST", "/api/ratings", 403, auth="cookie:alice", origin="null", body=rating()),
    Attack(
        "rate, the public origin over http",
        "POST",
        "/api/ratings",
        403,
        auth="cookie:alice",
        origin="http://review.example.org",
        body=rating(),
    ),
    Attack(
        "rate, a look-alike of the public origin",
        "POST",
        "/api/ratings",
        403,
        auth="cookie:alice",
        origin="https://review.example.org.evil.example",
        body=rating(),
    ),
    Attack(
        "rate, no Origin, Referer of another site",
        "POST",
        "/api/ratings",
        403,
        auth="cookie:alice",
        referer=f"{EVIL}/page.html",
        body=rating(),
    ),
    Attack(
        "rate, cookie but neither Origin nor Referer", "POST", "/api/ratings", 403, auth="cookie:alice", body=rating()
    ),
    Attack("finish, cookie but neither Origin nor Referer", "POST", "/api/finish", 403, auth="cookie:alice"),
    Attack(
        "finish, form post from another site",
        "POST",
        "/api/finish",
        403,
        auth="cookie:alice",
        origin=EVIL,
        content_type="application/x-www-form-urlencoded",
        body="a=1",
    ),
    Attack(
        "reopen carol with the admin's cookie, other site",
        "POST",
        "/api/admin/reopen/carol",
        403,
        auth="cookie:admin",
        origin=EVIL,
    ),
    Attack("log out, other site", "POST", "/api/logout", 403, auth="cookie:alice", origin=EVIL),
    Attack(
        "bearer token but another site's Origin",
        "POST",
        "/api/ratings",
        403,
        auth="bearer:alice",
        origin=EVIL,
        body=rating(),
    ),
    # --- the right origin, the wrong body type ------------------------------------------------------------------
    Attack(
        "rate, own origin, JSON sent as text/plain",
        "POST",
        "/api/ratings",
        415,
        auth="cookie:alice",
        origin="own",
        content_type="text/plain",
        body=json.dumps(rating()),
    ),
    Attack(
        "finish, own origin, text/plain",
        "POST",
        "/api/finish",
        415,
        auth="cookie:alice",
        origin="own",
        content_type="text/plain",
        body="x",
    ),
    Attack(
        "rate, own origin, a form",
        "POST",
        "/api/ratings",
        415,
        auth="cookie:alice",
        origin="own",
        content_type="application/x-www-form-urlencoded",
        body="sample_id=s0&dimension=overall_preference&value=right",
    ),
    Attack(
        "rate, own origin, multipart",
        "POST",
        "/api/ratings",
        415,
        auth="cookie:alice",
        origin="own",
        content_type="multipart/form-data; boundary=x",
        body='--x\r\nContent-Disposition: form-data; name="value"\r\n\r\nright\r\n--x--\r\n',
    ),
    Attack(
        "rate, bearer, no Content-Type",
        "POST",
        "/api/ratings",
        415,
        auth="bearer:alice",
        content_type=None,
        body=json.dumps(rating()),
    ),
    # --- sizes within reach of one request ----------------------------------------------------------------------
    Attack(
        "a body over the limit",
        "POST",
        "/api/ratings",
        413,
        auth="bearer:alice",
        body=rating(sample_id=MARKER * (MAX_BODY_BYTES // len(MARKER) + 1)),
    ),
    Attack(
        "a body over the limit, unauthenticated",
        "POST",
        "/api/ratings",
        413,
        body=rating(sample_id=MARKER * (MAX_BODY_BYTES // len(MARKER) + 1)),
    ),
    Attack(
        "a long sample id just under the limit",
        "POST",
        "/api/ratings",
        422,
        auth="bearer:alice",
        body=rating(sample_id=MARKER * ((MAX_BODY_BYTES - 200) // len(MARKER))),
    ),
    Attack("a long path", "GET", "/api/samples/" + MARKER * 500, 403, auth="bearer:alice"),
    Attack("a long annotator name", "GET", "/api/annotators/" + MARKER * 500 + "/ratings", 403, auth="bearer:alice"),
    Attack("admin: a long annotator name", "POST", "/api/admin/reopen/" + MARKER * 500, 404, auth="bearer:admin"),
]

# --- every field of a rating, with what JSON (or Python's json) lets one put there ------------------------------------

FIELD_TEXT = {
    "sample_id": '"{alice_sample}"',
    "dimension": '"relevance"',
    "side": '"left"',
    "step": "0",
    "value": '"no"',
}


def body_text(**raw: str) -> str:
    """A rating body as text, each field's raw JSON text replaceable (alice rated this step "yes": "no" changes it)."""
    return "{" + ", ".join(f'"{name}": {text}' for name, text in {**FIELD_TEXT, **raw}.items()) + "}"


BAD_VALUES = {
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "1e999": "1e999",  # a float that overflows to inf
    "huge int": "1" + "2345678901" * 8,
    "fraction": "0.5",
    "float integer": "1.0",
    "true": "true",
    "null": "null",
    "list": "[0]",
    "object": '{"x": 0}',
    "number as text": '"0"',
    "marker text": f'"{MARKER}"',
}
# Not malformed: any text is a possible sample id (an unassigned one is 403: the cross-annotator rows), and a null
# value clears a rating.
WELL_FORMED = {("sample_id", "number as text"), ("sample_id", "marker text"), ("value", "null")}
BAD_FIELDS = [
    pytest.param(body_text(**{name: literal}), id=f"{name}={label}")
    for name in FIELD_TEXT
    for label, literal in BAD_VALUES.items()
    if (name, label) not in WELL_FORMED
]
WHOLE_BODIES = [
    pytest.param("NaN", id="body=NaN"),
    pytest.param("[]", id="body=list"),
    pytest.param('"text"', id="body=string"),
    pytest.param("null", id="body=null"),
    pytest.param("{not json", id="body=broken"),
    pytest.param(body_text(step='0, "step": NaN'), id="duplicate key with NaN"),
    pytest.param(body_text(value='"no", "extra": 1'), id="extra field"),
    pytest.param(body_text(value='"no", "annotator": "bob"'), id="annotator field"),
    pytest.param(body_text(step="99"), id="no such step"),
    pytest.param(body_text(side='"middle"'), id="side middle"),
    pytest.param(body_text(value='"\\ud800"'), id="value lone surrogate"),
    pytest.param(body_text(sample_id='"\\ud800"'), id="sample id lone surrogate"),
    pytest.param(body_text(sample_id=f'"{MARKER * 40}"'), id="sample id over 512 characters"),
]


def fill(text: str, t: Target) -> str:
    off = t.review.tokens["alice"][:-1] + ("A" if t.review.tokens["alice"][-1] != "A" else "B")
    return (
        text.replace("{alice_sample}", t.alice_sample)
        .replace("{bob_sample}", t.bob_sample)
        .replace("{alice_token_off}", off)
    )


def send(t: Target, attack: Attack) -> tuple[httpx.Response, bytes]:
    headers = dict(attack.headers)
    if attack.auth:
        kind, who = attack.auth.split(":", 1)
        if kind == "bearer":
            token = {"alice": t.review.tokens["alice"], "admin": t.review.admin_token}.get(who, fill(who, t))
            headers["Authorization"] = f"Bearer {token}"
        else:
            headers["Cookie"] = f"{COOKIE}={t.cookies.get(who, fill(who, t))}"
    if attack.origin is not None:
        headers["Origin"] = {"own": t.own, "public": PUBLIC}.get(attack.origin, attack.origin)
    if attack.referer is not None:
        headers["Referer"] = attack.referer
    if attack.content_type is not None:
        headers["Content-Type"] = attack.content_type
    if isinstance(attack.body, dict):
        content = fill(json.dumps(attack.body), t).encode()
    elif isinstance(attack.body, str):
        content = fill(attack.body, t).encode("utf-8", "surrogatepass")
    else:
        content = b""
    request = httpx.Request(attack.method, t.base + fill(attack.path, t), headers=headers, content=content or None)
    with httpx.Client(timeout=30) as client:
        return client.send(request), content


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_attack_is_refused_and_changes_nothing(target: Target, attack: Attack) -> None:
    before = snapshot(target.review.dir)
    response, sent = send(target, attack)
    assert response.status_code == attack.status, response.text[:300]
    assert snapshot(target.review.dir) == before
    assert_error_body(response, sent, quotes=attack.status in {403, 404})
    if attack.status == 413:
        assert response.headers["connection"] == "close"  # the rest of the body is not read


@pytest.mark.parametrize("text", BAD_FIELDS + WHOLE_BODIES)
def test_malformed_rating_is_422_without_echo(target: Target, text: str) -> None:
    before = snapshot(target.review.dir)
    attack = Attack("bad body", "POST", "/api/ratings", 422, auth="bearer:alice", body=text)
    response, sent = send(target, attack)
    assert response.status_code == 422, response.text[:300]
    assert snapshot(target.review.dir) == before
    assert_error_body(response, sent)
    assert '"input"' not in response.text and "1234567890123" not in response.text
    detail = response.json()["detail"]
    messages = [detail] if isinstance(detail, str) else [e["msg"] for e in detail]
    assert all(0 < len(m) <= 200 for m in messages)
    if "NaN" in text or "Infinity" in text:
        assert "is not a JSON number" in messages[0]


def test_the_same_requests_from_the_page_succeed(target: Target) -> None:
    """The controls: each kind of refused request, sent the way the page (or a script) sends it, works."""
    alice = f"{COOKIE}={target.cookies['alice']}"
    admin = f"{COOKIE}={target.cookies['admin']}"
    body = fill(json.dumps(rating()), target).encode()
    restore = fill(json.dumps(rating("left")), target).encode()
    json_type = {"Content-Type": "application/json"}
    with httpx.Client(base_url=target.base, timeout=30) as c:
        for origin in (target.own, PUBLIC):
            before = snapshot(target.review.dir)
            r = c.post("/api/ratings", content=body, headers={**json_type, "Cookie": alice, "Origin": origin})
            assert r.status_code == 200 and r.json()["ratings"]["overall_preference"] == "right"
            assert snapshot(target.review.dir) != before
            r = c.post("/api/ratings", content=restore, headers={**json_type, "Cookie": alice, "Origin": origin})
            assert r.status_code == 200
        # Referer when a browser sends no Origin; a script with a Bearer token and neither header.
        r = c.post("/api/ratings", content=body, headers={**json_type, "Cookie": alice, "Referer": f"{PUBLIC}/#2"})
        assert r.status_code == 200
        bearer = {"Authorization": f"Bearer {target.review.tokens['alice']}"}
        assert c.post("/api/ratings", content=restore, headers={**json_type, **bearer}).status_code == 200
        # A TLS proxy on this machine that forwards Host and X-Forwarded-Proto needs no --public-origin.
        proxied = {"Host": "ward.example:443", "X-Forwarded-Proto": "https", "Origin": "https://ward.example"}
        assert (
            c.post("/api/ratings", content=body, headers={**json_type, "Cookie": alice, **proxied}).status_code == 200
        )
        assert c.post("/api/ratings", content=restore, headers={**json_type, **bearer}).status_code == 200
        # finish and reopen, as the page and the admin page send them (no body, own origin)
        r = c.post("/api/finish", headers={**json_type, "Cookie": alice, "Origin": target.own})
        assert r.status_code == 200 and r.json()["finished_at"]
        r = c.post("/api/admin/reopen/alice", headers={"Cookie": admin, "Origin": target.own})
        assert r.status_code == 200
    with ReviewStore(target.review.dir) as store:
        assert store.annotator("alice").finished_at is None
        assert store.annotator("carol").finished_at == target.carol_finished


def test_cookie_and_headers(target: Target) -> None:
    r = httpx.get(f"{target.base}/t/{target.review.tokens['alice']}", follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    # https public origin → Secure; the app is static HTML whose same-site fetch() carries the cookie → Strict
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert r.headers["cache-control"] == "no-store"
    for path in ("/", "/admin", "/static/app.js", "/static/app.css", "/api/me"):
        response = httpx.get(target.base + path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


def test_no_host_header_is_no_way_around_the_origin_check(target: Target) -> None:
    """HTTP/1.0 needs no Host: the request's own origin is then unknown, and nothing but a --public-origin passes."""
    before = snapshot(target.review.dir)
    for origin in ("null", EVIL, ""):
        with socket.create_connection(("127.0.0.1", target.port)) as s:
            s.sendall(
                f"POST /api/finish HTTP/1.0\r\nCookie: {COOKIE}={target.cookies['alice']}\r\nOrigin: {origin}\r\n"
                "Content-Type: application/json\r\nContent-Length: 0\r\n\r\n".encode()
            )
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 403"), reply[:100]
    assert snapshot(target.review.dir) == before


def test_cookie_is_secure_exactly_when_reached_over_https(review: CreatedReview) -> None:
    from fastapi.testclient import TestClient

    from deepmedix.annotation.server import create_app

    link = f"/t/{review.tokens['alice']}"
    plain = TestClient(create_app(review.dir)).get(link, follow_redirects=False).headers["set-cookie"].lower()
    tls = TestClient(create_app(review.dir), base_url="https://testserver")  # as behind a trusted TLS proxy
    over_https = tls.get(link, follow_redirects=False).headers["set-cookie"].lower()
    assert "secure" not in plain and "samesite=strict" in plain and "httponly" in plain
    assert "secure" in over_https and "samesite=strict" in over_https


# --- bodies too large to read --------------------------------------------------------------------------------------


def stream_body(port: int, token: str, megabytes: int, chunked: bool, expect_continue: bool = False) -> dict:
    """Send a rating body of ``megabytes`` MB over a raw socket while reading the reply; stop at the reply."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(60)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {megabytes * 2**20 + 32}"
    expect = "Expect: 100-continue\r\n" if expect_continue else ""
    head = (
        f"POST /api/ratings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{expect}{framing}\r\n\r\n"
    )
    reply = bytearray()
    done = threading.Event()

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                reply.extend(chunk)
        except OSError:
            pass
        done.set()

    start = time.perf_counter()
    sock.sendall(head.encode())
    threading.Thread(target=read, daemon=True).start()
    sent = 0
    block = (f'{{"sample_id": "{MARKER}' + "x" * (2**20 - 40)).encode()
    try:
        for _ in range(megabytes):
            if reply or done.is_set():
                break
            sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n" if chunked else block)
            sent += len(block)
    except OSError:
        pass  # the server closed the connection: refusing the rest
    done.wait(60)
    seconds = time.perf_counter() - start
    sock.close()
    return {"reply": bytes(reply), "seconds": seconds, "sent": sent}


@pytest.mark.parametrize(
    ("chunked", "expect_continue"),
    [(False, False), (True, False), (False, True)],
    ids=["with Content-Length", "chunked, no Content-Length", "Expect: 100-continue"],
)
def test_a_100_mb_body_is_refused_at_once(target: Target, chunked: bool, expect_continue: bool) -> None:
    before = snapshot(target.review.dir)
    rss_before = target.peak_rss_mb()
    got = stream_body(target.port, target.review.tokens["alice"], 100, chunked, expect_continue)
    status_line, _, rest = got["reply"].partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), got["reply"][:200]  # no "100 Continue" first
    assert got["seconds"] < 5 and got["sent"] < 10 * 2**20  # measured: at most 0.05 s and 4 MB sent
    assert target.peak_rss_mb() - rss_before < 20  # before the limit: +300 MB (Content-Length), +900 MB (chunked)
    assert snapshot(target.review.dir) == before
    head, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert MARKER.encode() not in body and len(body) < 200 and json.loads(body)["detail"]


# --- slow clients --------------------------------------------------------------------------------------------------


def test_stalled_requests_do_not_hold_up_other_annotators(target: Target) -> None:
    """Slowloris: connections that send headers (and a little body) and then stall cost the server a socket each,
    but no thread and no database connection; another annotator is served as usual. uvicorn sets no deadline on
    an unfinished request, so they stay open until the client goes (docs/security.md: a proxy in front)."""
    before = snapshot(target.review.dir)
    stalled = []
    for i in range(60):
        s = socket.create_connection(("127.0.0.1", target.port))
        head = f"POST /api/ratings HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
        if i % 2:  # half stall inside the body, half inside the headers
            head += (
                f"Authorization: Bearer {target.review.tokens['alice']}\r\nContent-Type: application/json\r\n"
                f'Origin: {target.own}\r\nContent-Length: 90\r\n\r\n{{"sample_id": "'
            )
        s.sendall(head.encode())
        stalled.append(s)
    try:
        bob = {"Authorization": f"Bearer {target.review.tokens['bob']}"}
        times = []
        with httpx.Client(base_url=target.base, headers=bob, timeout=30) as c:
            for value in ["left", "right"] * 10:
                t0 = time.perf_counter()
                r = c.post(
                    "/api/ratings",
                    json={"sample_id": target.bob_sample, "dimension": "overall_preference", "value": value},
                )
                times.append(time.perf_counter() - t0)
                assert r.status_code == 200
            c.post(
                "/api/ratings", json={"sample_id": target.bob_sample, "dimension": "overall_preference", "value": None}
            )
        assert max(times) < 2, times  # measured: a few ms each, as without the stalled connections
    finally:
        for s in stalled:
            s.close()
    after = snapshot(target.review.dir)
    assert [r for r in after["ratings"] if r[0] != "bob"] == [r for r in before["ratings"] if r[0] != "bob"]
    assert after["annotators"] == before["annotators"]


# --- files ---------------------------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def spy_on_chmod(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The names of the files chmod'ed from now on (a file made private only by a chmod was readable before it)."""
    names: set[str] = set()
    real_chmod, real_path_chmod = os.chmod, Path.chmod

    def chmod(path: Any, *args: Any, **kwargs: Any) -> None:
        names.add(Path(path).name)
        real_chmod(path, *args, **kwargs)

    def path_chmod(self: Path, *args: Any, **kwargs: Any) -> None:
        names.add(self.name)
        real_path_chmod(self, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(Path, "chmod", path_chmod)
    return names


def test_tokens_and_database_are_private_from_the_first_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Created 0600 (no chmod afterwards: chmod is made to fail), even under umask 000; the -wal and -shm files that
    SQLite makes beside the database follow it."""
    from deepmedix.cli import main

    chmodded = spy_on_chmod(monkeypatch)
    a, b = write_predictions(tmp_path / "preds")
    tokens = tmp_path / "links.txt"
    old = os.umask(0)
    try:
        argv = ["review", "create", "--predictions", str(a), str(b), "--names", "A", "B"]
        argv += ["--annotators", "alice:1", "--out", str(tmp_path / "rev"), "--tokens-out", str(tokens)]
        assert main(argv) == 0
    finally:
        os.umask(old)
    assert mode(tokens) == 0o600 and "alice: http" in tokens.read_text()
    db = tmp_path / "rev" / "review.sqlite"
    assert mode(db) == 0o600
    assert not {tokens.name, db.name} & chmodded
    with ReviewStore(tmp_path / "rev") as store:  # a connection open and written to: the WAL files exist
        store.put_rating("alice", store.sample_ids()[0], "overall_preference", -1, -1, 0)
        companions = [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]
        assert all(p.exists() for p in companions)
        assert [mode(p) for p in companions] == [0o600, 0o600]


def test_a_database_made_readable_by_an_older_version_is_made_private(review: CreatedReview) -> None:
    db = review.dir / "review.sqlite"
    db.chmod(0o644)
    with ReviewStore(review.dir) as store:
        assert store.models()
    assert mode(db) == 0o600


def test_the_demo_writes_its_tokens_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepmedix.demo.config import DemoConfig
    from deepmedix.demo.pipeline import Demo

    a, b = write_predictions(tmp_path / "preds")
    chmodded = spy_on_chmod(monkeypatch)
    old = os.umask(0)
    try:
        made = Demo(DemoConfig(out=tmp_path / "demo", review_samples=2)).review({"stage3": str(a), "base": str(b)})
    finally:
        os.umask(old)
    assert mode(Path(made["tokens"])) == 0o600
    assert mode(Path(made["dir"]) / "review.sqlite") == 0o600
    assert not {"tokens.txt", "review.sqlite"} & chmodded


@pytest.mark.parametrize(
    "origin",
    [
        "review.example.org",
        "ftp://review.example.org",
        "https://review.example.org/review",
        "https://u@review.example.org",
    ],
)
def test_public_origin_must_be_an_origin(
    review: CreatedReview, origin: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from deepmedix.cli import main

    assert main(["review", "serve", "--dir", str(review.dir), "--public-origin", origin]) == 1
    err = capsys.readouterr().err
    assert f"--public-origin {origin!r}" in err and len(err.strip().splitlines()) == 1


def test_create_behind_a_proxy_says_how_to_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from deepmedix.cli import main

    a, b = write_predictions(tmp_path / "preds")
    argv = ["review", "create", "--predictions", str(a), str(b), "--names", "A", "B", "--annotators", "alice:1"]
    assert main([*argv, "--out", str(tmp_path / "rev"), "--base-url", "https://review.example.org"]) == 0
    out = capsys.readouterr().out
    assert "alice: https://review.example.org/t/" in out
    assert f"deepmedix review serve --dir {tmp_path / 'rev'} --public-origin https://review.example.org" in out

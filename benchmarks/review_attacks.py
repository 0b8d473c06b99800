"""Attack a real ``deepmedix review serve`` and measure what it costs the server.

    python benchmarks/review_attacks.py [--mb 100] [--slow 200]

Starts the review app in a subprocess on a throw-away review set and sends, as a raw HTTP client would:

- a ``--mb`` MB rating body with ``Content-Length``, and the same body chunked (no ``Content-Length``): the time
  until the server's answer arrives, how much of the body the client got to send, and the server's peak RSS
  (``VmHWM`` of /proc) before and after;
- ``--slow`` connections that send their headers and a few bytes of body and then stall (slowloris), while one
  annotator keeps rating: that annotator's request times.

Prints one table; numbers for docs/security.md. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.annotation.conftest import ANNOTATORS, write_predictions  # noqa: E402  the tests' fixture data

CHUNK = b"x" * 2**20


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_big_body(port: int, token: str, mb: int, chunked: bool) -> tuple[str, float, int]:
    """Stream an ``mb`` MB rating body; return (the server's status line, seconds until it came, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {mb * len(CHUNK) + 16}"
    head = (
        f"POST /api/ratings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()
    status: list[str] = []
    arrived = threading.Event()

    def read() -> None:
        data = b""
        try:
            while b"\r\n" not in data:
                got = sock.recv(65536)
                if not got:
                    break
                data += got
        except OSError:
            pass
        status.append(data.split(b"\r\n", 1)[0].decode("latin-1") or "(connection closed)")
        arrived.set()

    reader = threading.Thread(target=read, daemon=True)
    start = time.perf_counter()
    sock.sendall(head)
    reader.start()
    sent = 0
    try:
        body = [b'{"sample_id": "'] + [CHUNK] * mb + [b'"}']
        for part in body:
            if arrived.is_set():
                break
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
            sent += len(part)
        if chunked and not arrived.is_set():
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection: the rest of the body is refused
    arrived.wait(300)
    elapsed = time.perf_counter() - start
    sock.close()
    return (status[0] if status else "(no answer)"), elapsed, sent


def slowloris(port: int, token: str, n: int, rate: dict, seconds: float) -> tuple[list[float], int]:
    """Hold ``n`` stalled rating requests open while one annotator rates for ``seconds``; return their timings."""
    stalled = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(
            (
                f"POST /api/ratings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                'Content-Type: application/json\r\nContent-Length: 80\r\n\r\n{"sample_id": '
            ).encode()
        )
        stalled.append(s)
    times = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as c:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            assert c.post("/api/ratings", json=rate).status_code == 200
            times.append(time.perf_counter() - t)
    still_open = 0
    for s in stalled:
        s.setblocking(False)
        try:
            s.recv(1)  # b"" (closed) or an answer: the server let go of it
        except BlockingIOError:
            still_open += 1  # nothing received, not closed: the server still holds it
        except OSError:
            pass
        s.close()
    return times, still_open


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--slow", type=int, default=200, help="stalled connections held open")
    args = ap.parse_args()

    from deepmedix.annotation.create import create_review

    work = Path(tempfile.mkdtemp(prefix="review-attacks-"))
    a, b = write_predictions(work / "preds")
    made = create_review([a, b], ["A", "B"], work / "review", ANNOTATORS, n_samples=3, seed=0)
    token = made.tokens["alice"]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "deepmedix.cli", "review", "serve", "--dir", str(made.dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/favicon.ico")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        rate = {"sample_id": "s0", "dimension": "overall_preference", "value": "left"}
        print(f"server peak RSS after start: {peak_rss_mb(server.pid):.0f} MB")
        for chunked in (False, True):
            status, seconds, sent = send_big_body(port, token, args.mb, chunked)
            how = "chunked, no Content-Length" if chunked else "with Content-Length"
            print(
                f"{args.mb} MB body {how}: {status!r} after {seconds:.2f} s; client sent {sent / 2**20:.1f} MB; "
                f"server peak RSS now {peak_rss_mb(server.pid):.0f} MB"
            )
        times, held = slowloris(port, token, args.slow, rate, seconds=5)
        print(
            f"{args.slow} stalled requests held open: another annotator's {len(times)} ratings in 5 s, "
            f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms; "
            f"{held} stalled connections still open after 5 s"
        )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()

"""A real Label Studio (from ``.venv-labelstudio``, built by ``make test``) on 127.0.0.1, for the interchange test.

It runs headless on a free port with its data in a temporary folder; the admin user and its API token are made
at start from the environment, and annotators join through the organisation's invite link, as people do.
Nothing it does may reach beyond this machine: version check, analytics and error reporting are switched off, and
any other outbound HTTP request is sent to a closed local port so it fails at once instead of waiting.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
LABELSTUDIO_VENV = REPO / ".venv-labelstudio"
LABELSTUDIO_BIN = LABELSTUDIO_VENV / "bin" / "label-studio"
ADMIN_EMAIL = "admin@review.local"
_STARTED = re.compile(r"Starting development server at (http://127\.0\.0\.1:\d+)/")


@dataclass
class LabelStudio:
    url: str
    admin_token: str
    files_root: Path  # LOCAL_FILES_DOCUMENT_ROOT: the `?d=` of /data/local-files/ URLs is relative to it
    log: Path
    startup_s: float

    def client(self, token: str | None = None) -> httpx.Client:
        """An API client with the legacy token header (``Authorization: Token …``)."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Token {token or self.admin_token}"}, timeout=120
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(log: Path, n: int = 4000) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-n:] if log.is_file() else "(no log)"


@contextmanager
def running_labelstudio(workdir: Path, timeout_s: float = 600) -> Iterator[LabelStudio]:
    """Start Label Studio in ``workdir``; stop it (and everything it started) on exit."""
    if not LABELSTUDIO_BIN.is_file():
        raise FileNotFoundError(f"{LABELSTUDIO_BIN} missing: run `make labelstudio`")
    data_dir, files_root, log = workdir / "data", workdir / "files", workdir / "labelstudio.log"
    data_dir.mkdir(parents=True)
    files_root.mkdir()
    token = secrets.token_hex(20)
    # A local port nothing listens on: a request sent there is refused at once.
    dead_end = f"http://127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        # Without it the settings module first creates ~/.local/share/label-studio before --data-dir applies.
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": ADMIN_EMAIL,
        "LABEL_STUDIO_PASSWORD": secrets.token_urlsafe(16),
        "LABEL_STUDIO_USER_TOKEN": token,
        # Annotators join only through the invite link, never by open sign-up.
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(files_root),
        "SECRET_KEY": secrets.token_urlsafe(32),
        # No call home: PyPI version check, usage analytics, Sentry (its DSN is set by default).
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "HTTP_PROXY": dead_end,
        "HTTPS_PROXY": dead_end,
        "http_proxy": dead_end,
        "https_proxy": dead_end,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        str(LABELSTUDIO_BIN),
        "start",
        "--no-browser",
        "--data-dir",
        str(data_dir),
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(_free_port()),
        "--enable-legacy-api-token",
        "--log-level",
        "WARNING",
    ]
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        # The port can move if another process took it meanwhile: read the one Label Studio says it serves on.
        url = None
        while url is None or not _answers(url, token):
            if proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {proc.returncode} at start:\n{_log_tail(log)}")
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"Label Studio did not answer within {timeout_s:.0f} s:\n{_log_tail(log)}")
            if url is None and (m := _STARTED.search(_log_tail(log, 100_000))):
                url = m.group(1)
            time.sleep(0.25)
        yield LabelStudio(url, token, files_root, log, time.monotonic() - started)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def _answers(url: str, token: str) -> bool:
    try:
        r = httpx.get(f"{url}/api/current-user/whoami", headers={"Authorization": f"Token {token}"}, timeout=5)
    except httpx.HTTPError:
        return False
    return r.status_code == 200 and r.json().get("email") == ADMIN_EMAIL


def sign_up_annotator(ls: LabelStudio, email: str, password: str) -> str:
    """Join the organisation through its invite link (the sign-up form, with its CSRF token) and return the new
    user's own API token, read from the logged-in session."""
    with ls.client() as admin:
        invite = admin.get("/api/invite")
        invite.raise_for_status()
        invite_token = invite.json()["token"]
    with httpx.Client(base_url=ls.url, timeout=120) as browser:
        browser.get("/user/signup/", params={"token": invite_token}).raise_for_status()
        form = browser.post(
            "/user/signup/",
            params={"token": invite_token},
            data={"email": email, "password": password, "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
            headers={"Referer": f"{ls.url}/user/signup/"},
        )
        if form.status_code != 302:  # the form comes back (200) with its errors when sign-up failed
            raise RuntimeError(f"sign-up of {email} failed: HTTP {form.status_code}")
        own = browser.get("/api/current-user/token")
        own.raise_for_status()
        return str(own.json()["token"])

"""The review app's transport guard: every response gets the security headers, and a state-changing request
(POST/PUT/PATCH/DELETE) must come from the review page itself and carry JSON, or it is refused before the app
reads it.

- Cross-site request forgery: the session cookie is SameSite=Strict, but "same site" ignores the port, so a page on
  another port of the same host (a notebook, a second web app) still gets the cookie sent. Hence the ``Origin``
  check (``Referer`` when a browser sends no ``Origin``): it must be the server's own origin — the scheme and
  ``Host`` of the request itself, or one named with ``--public-origin`` (a TLS reverse proxy in front) — else 403.
  A request relying on the cookie with neither header is refused too; one with ``Authorization: Bearer`` and
  neither header is a script, which no other site can forge.
- A body must be declared ``application/json`` (else 415): an HTML form or a ``no-cors`` fetch cannot send that
  type without a CORS preflight, which this app never grants.
- A declared ``Content-Length`` over the limit gets 413 before a byte of the body is read (Starlette's body-limit
  middleware, inside this one, counts the bytes of a chunked body as they arrive and stops at the limit).
- The guard's own refusals close the connection, as do 413s: the client's unread body is not drained.

Written here because Starlette's middlewares do not make these checks (its CORS middleware governs what other sites
may read, not which requests they may send).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepmedix.errors import OptionError

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": 80, "https": 443}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # personal links must not leak through Referer
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",  # other sites cannot even embed the images
}


def _origin(scheme: str, host: str | None, port: int | None) -> str:
    host = (host or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_origin(text: str, what: str = "--public-origin") -> str:
    """``https://review.example.org[:port]`` → its normalised origin; an OptionError for anything else."""
    try:
        url = urlsplit(text.strip())
        port = url.port
    except ValueError as e:
        raise OptionError(f"{what} {text!r}: not a URL ({e})") from None
    if url.scheme not in DEFAULT_PORTS or not url.hostname:
        raise OptionError(f"{what} {text!r}: give scheme and host, e.g. https://review.example.org")
    if url.path not in {"", "/"} or url.query or url.fragment or url.username or url.password:
        raise OptionError(f"{what} {text!r}: an origin is scheme://host[:port] only (no path, query or user)")
    return _origin(url.scheme, url.hostname, port)


def origin_of_url(text: str) -> str | None:
    """The origin of a URL (an ``Origin`` or ``Referer`` value), or None when it has none (``null``, garbage)."""
    try:
        url = urlsplit(text.strip())
        port = url.port
    except ValueError:
        return None
    if url.scheme not in DEFAULT_PORTS or not url.hostname:
        return None
    return _origin(url.scheme, url.hostname, port)


def own_origin(scope: Scope) -> str | None:
    """The origin this request was addressed to: its scheme (https when a trusted proxy says so) and Host."""
    host = Headers(scope=scope).get("host")
    return origin_of_url(f"{scope.get('scheme', 'http')}://{host}") if host else None


def error_response(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})


class RequestGuard:
    """ASGI middleware: security headers on every response; Origin and content-type checks on state changes."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, public_origins: Iterable[str] = (), session_cookie: str = ""
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.public_origins = frozenset(public_origins)
        self.session_cookie = session_cookie

    def too_large(self, scope: Scope) -> JSONResponse | None:
        declared = Headers(scope=scope).get("content-length", "")
        if declared.strip().isdigit() and int(declared) > self.max_body_bytes:
            return error_response(413, f"request body too large: the limit is {self.max_body_bytes} bytes")
        return None

    def refusal(self, scope: Scope) -> JSONResponse | None:
        """Why this state-changing request is refused (403/415), or None."""
        headers = Headers(scope=scope)
        own = own_origin(scope)
        allowed = (self.public_origins | {own}) if own else self.public_origins
        origin = headers.get("origin")
        referer = headers.get("referer")
        if origin is not None:
            if origin_of_url(origin) not in allowed:
                return error_response(403, "refused: this request comes from another site (Origin)")
        elif referer is not None:
            if origin_of_url(referer) not in allowed:
                return error_response(403, "refused: this request comes from another site (Referer)")
        elif self._uses_cookie(headers) and not headers.get("authorization", "").lower().startswith("bearer "):
            return error_response(403, "refused: a signed-in request with neither Origin nor Referer")
        content_type = headers.get("content-type")
        has_body = headers.get("content-length", "0").strip() not in {"", "0"} or "transfer-encoding" in headers
        if content_type is not None or has_body:
            media_type = (content_type or "").split(";", 1)[0].strip().lower()
            if media_type != "application/json":
                return error_response(415, "request bodies must be JSON (Content-Type: application/json)")
        return None

    def _uses_cookie(self, headers: Headers) -> bool:
        cookies = headers.get("cookie", "")
        return any(part.strip().startswith(f"{self.session_cookie}=") for part in cookies.split(";"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = scope["path"].startswith(("/api/", "/t/"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if no_store:
                    headers["Cache-Control"] = "no-store"
                if message["status"] == 413:
                    headers["Connection"] = "close"  # stop reading the rest of a body too large to read
            await send(message)

        refused = self.refusal(scope) if scope["method"] in STATE_CHANGING else None
        if (response := refused or self.too_large(scope)) is not None:
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

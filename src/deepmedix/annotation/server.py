"""The review web app: a FastAPI server over the review store, serving the page in ``static/``.

Every rating is one POST, written (upsert) before the reply, so a browser crash or a server restart loses nothing.
Annotators see only their assigned samples and their own ratings, blinded as Left/Right. The transport guard
(``security.py``) refuses requests forged by other sites; bodies over ``MAX_BODY_BYTES`` get 413 before they are read;
a malformed body gets 422 with a short detail that never repeats the input.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency annotations defined in create_app.
import json
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from deepmedix.annotation.security import RequestGuard
from deepmedix.annotation.store import (
    PREFERENCE_DIMENSIONS,
    STEP_DIMENSIONS,
    ReviewStore,
)

STATIC_DIR = Path(__file__).parent / "static"
COOKIE = "deepmedix_review"
SIDES = ("left", "right")
# A rating is about 150 bytes; nothing the app accepts comes near this.
MAX_BODY_BYTES = 64 * 1024
MAX_ERRORS_SHOWN = 5

Dimension = Literal["relevance", "correctness", "completeness", "grounded_preference", "overall_preference"]


class RatingIn(BaseModel):
    """One rating as the page sends it: blinded (a side, never a model name)."""

    # strict: the page sends ints and strings; "1", 1.0 and true are someone else's mistakes, refused.
    model_config = ConfigDict(extra="forbid", strict=True)

    sample_id: str = Field(min_length=1, max_length=512)
    dimension: Dimension
    side: Literal["left", "right"] | None = None
    step: int | None = Field(default=None, ge=0, le=100_000)
    value: Literal["yes", "no", "left", "right"] | None  # None clears the rating

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.dimension in STEP_DIMENSIONS:
            if self.side is None or self.step is None:
                raise ValueError(f"{self.dimension} is rated per step: give `side` and `step`")
            if self.value not in {"yes", "no", None}:
                raise ValueError(f"{self.dimension} takes `value` yes or no")
        elif self.dimension == "completeness":
            if self.side is None or self.step is not None:
                raise ValueError("completeness is rated per reasoning process: give `side`, no `step`")
            if self.value not in {"yes", "no", None}:
                raise ValueError("completeness takes `value` yes or no")
        else:
            if self.side is not None or self.step is not None:
                raise ValueError(f"{self.dimension} is rated per sample: no `side` or `step`")
            if self.value not in {"left", "right", None}:
                raise ValueError(f"{self.dimension} takes `value` left or right")
        return self


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


class StrictJSONRequest(Request):
    """A request whose JSON body may not hold ``NaN``/``Infinity`` (Python's json accepts them; JSON has none)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                text = body.decode("utf-8")  # JSON is UTF-8 (RFC 8259)
            except UnicodeDecodeError as e:
                raise json.JSONDecodeError("not UTF-8", body.decode("utf-8", "replace"), e.start) from None
            try:
                self._json = json.loads(text, parse_constant=_refuse_constant)
            except ValueError as e:
                if isinstance(e, json.JSONDecodeError):
                    raise
                constant = str(e)
                raise json.JSONDecodeError(f"{constant} is not a JSON number", text, text.find(constant)) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """FastAPI's documented hook for a custom Request class: every route parses JSON strictly."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def validation_error_response(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field and why, never what was sent: no ``input``, no ``ctx``, a few errors at most."""
    errors = exc.errors()
    detail: list[dict[str, Any]] = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        loc = [part for part in error.get("loc", ()) if isinstance(part, str | int)]
        msg = str(error.get("msg", "invalid"))
        if error.get("type") == "json_invalid":
            loc = loc[:1]  # the body; the character position goes into the message
            where = error["loc"][1] if len(error.get("loc", ())) > 1 else None
            msg = f"not valid JSON: {error.get('ctx', {}).get('error', 'decode error')}"
            if isinstance(where, int) and where >= 0:
                msg += f" (at character {where})"
        detail.append({"loc": loc, "msg": msg[:200], "type": str(error.get("type", ""))[:40]})
    if len(errors) > MAX_ERRORS_SHOWN:
        detail.append({"loc": [], "msg": f"and {len(errors) - MAX_ERRORS_SHOWN} more error(s)", "type": "more"})
    return JSONResponse({"detail": detail}, status_code=422)


def _shown(value: str, limit: int = 60) -> str:
    """A value from the request, quoted and cut short for an error message."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "…"


class Caller(BaseModel):
    role: Literal["admin", "annotator"]
    name: str | None = None


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get(COOKIE)


def blinded_ratings(store: ReviewStore, annotator: str, sample_id: str, left_model: int) -> dict[str, str]:
    """The annotator's ratings of one sample keyed as the page knows them: ``relevance/left/0`` → ``yes``."""
    side_of = {left_model: "left", 1 - left_model: "right"}
    out: dict[str, str] = {}
    for r in store.ratings(annotator, sample_id):
        dim = r["dimension"]
        if dim in PREFERENCE_DIMENSIONS:
            out[dim] = side_of[r["value"]]
        elif dim == "completeness":
            out[f"{dim}/{side_of[r['model']]}"] = "yes" if r["value"] else "no"
        else:
            out[f"{dim}/{side_of[r['model']]}/{r['step']}"] = "yes" if r["value"] else "no"
    return out


def create_app(
    review_dir: str | Path, public_origins: Iterable[str] = (), max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    """The app. ``public_origins``: origins (``https://review.example.org``) a reverse proxy serves the page under,
    accepted besides the request's own; an https one also marks the session cookie ``Secure``."""
    review_dir = Path(review_dir).resolve()
    public_origins = frozenset(public_origins)
    https_public = any(o.startswith("https://") for o in public_origins)
    with ReviewStore(review_dir) as store:  # fails at start-up, not on the first request, when the set is missing
        # The outputs never change once the set is created: count their steps once.
        step_counts = store.n_steps()

    app = FastAPI(
        title="deepmedix review",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        exception_handlers={RequestValidationError: validation_error_response},
    )
    app.router.route_class = StrictJSONRoute
    # Added last = outermost: the guard sees every response, including the limiter's 413 (which it makes close).
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=max_body_bytes)
    app.add_middleware(
        RequestGuard, max_body_bytes=max_body_bytes, public_origins=public_origins, session_cookie=COOKIE
    )

    def get_store() -> Iterator[ReviewStore]:
        store = ReviewStore(review_dir)
        try:
            yield store
        finally:
            store.close()

    StoreDep = Annotated[ReviewStore, Depends(get_store)]

    def caller(request: Request, store: StoreDep) -> Caller:
        role, name = store.identify(_token(request))
        if role == "none":
            raise HTTPException(
                401, "not signed in: open your personal review link", headers={"WWW-Authenticate": "Bearer"}
            )
        return Caller(role=role, name=name)

    CallerDep = Annotated[Caller, Depends(caller)]

    def annotator_only(who: CallerDep) -> str:
        if who.role != "annotator" or not who.name:
            raise HTTPException(403, "this is an annotator's page; the admin token only opens /admin")
        return who.name

    AnnotatorDep = Annotated[str, Depends(annotator_only)]

    def admin_only(who: CallerDep) -> None:
        if who.role != "admin":
            raise HTTPException(403, "admin token required")

    def assigned(store: ReviewStore, name: str, sample_id: str) -> dict[str, Any]:
        a = store.assignment(name, sample_id)
        if a is None:
            raise HTTPException(403, f"sample {_shown(sample_id)} is not assigned to {name}")
        return a

    # --- pages -------------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "admin.html")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/t/{token}", include_in_schema=False)
    def login(token: str, request: Request, store: StoreDep) -> Response:
        role, _ = store.identify(token)
        if role == "none":
            raise HTTPException(401, "this review link is not valid (ask the study admin for a new one)")
        response = RedirectResponse("/admin" if role == "admin" else "/", status_code=303)
        # Strict suits this app: the link's own navigation needs no cookie (the page is static; its fetch() calls,
        # same-site, carry it). Secure whenever the page is reached over https.
        secure = https_public or request.url.scheme == "https"
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, max_age=60 * 60 * 24 * 180)
        return response

    @app.post("/api/logout")
    def logout(request: Request) -> Response:
        response = Response(status_code=204)
        secure = https_public or request.url.scheme == "https"
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=secure)
        return response

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # --- annotator API -----------------------------------------------------------------------------------------
    @app.get("/api/me")
    def me(name: AnnotatorDep, store: StoreDep) -> dict[str, Any]:
        me_ = store.annotator(name)
        progress = store.progress(name, step_counts)
        return {
            "annotator": name,
            "group": me_.group if me_ else None,
            "finished_at": me_.finished_at if me_ else None,
            "n_samples": len(progress),
            "n_complete": sum(progress.values()),
            "samples": [{"sample_id": sid, "complete": done} for sid, done in progress.items()],
        }

    @app.get("/api/samples/{sample_id:path}")  # sample ids may hold "/"
    def sample(sample_id: str, name: AnnotatorDep, store: StoreDep) -> dict[str, Any]:
        a = assigned(store, name, sample_id)
        s = store.sample(sample_id)
        if s is None:  # pragma: no cover - assignments reference samples
            raise HTTPException(404, f"no sample {_shown(sample_id)}")
        outs = store.outputs(sample_id)
        left = a["left_model"]
        sides = {"left": outs[left], "right": outs[1 - left]}
        return {
            "sample_id": sample_id,
            "position": a["position"],
            "question": s["prompt"],
            "reference": s["reference"],
            "task": s["task"],
            "image_url": f"/api/images/{quote(sample_id, safe='')}",
            "image_size": [s["width"], s["height"]],
            **{side: {"steps": out["steps"], "answer": out["answer"]} for side, out in sides.items()},
            "ratings": blinded_ratings(store, name, sample_id, left),
            "complete": store.progress(name, step_counts).get(sample_id, False),
        }

    @app.get("/api/images/{sample_id:path}")
    def image(sample_id: str, who: CallerDep, store: StoreDep) -> FileResponse:
        if who.role == "annotator":
            assigned(store, who.name or "", sample_id)
        s = store.sample(sample_id)
        if s is None:
            raise HTTPException(404, f"no sample {_shown(sample_id)}")
        path = (review_dir / s["image"]).resolve()
        if not path.is_relative_to(review_dir) and not (review_dir / s["image"]).is_symlink():
            raise HTTPException(404, "image outside the review set")
        return FileResponse(path)

    @app.post("/api/ratings")
    def rate(body: RatingIn, name: AnnotatorDep, store: StoreDep) -> dict[str, Any]:
        a = assigned(store, name, body.sample_id)
        me_ = store.annotator(name)
        if me_ and me_.finished_at:
            raise HTTPException(409, "your review is finished and locked; ask the admin to reopen it")
        left = a["left_model"]
        model_of = {"left": left, "right": 1 - left}
        if body.dimension in PREFERENCE_DIMENSIONS:
            model, step = -1, -1
            value = None if body.value is None else model_of[body.value]
        else:
            model = model_of[body.side or "left"]
            step = -1 if body.step is None else body.step
            if body.dimension in STEP_DIMENSIONS:
                n = step_counts[(body.sample_id, model)]
                if step >= n:
                    raise HTTPException(422, f"step: {body.side} reasoning of {_shown(body.sample_id)} has {n} step(s)")
            value = None if body.value is None else int(body.value == "yes")
        store.put_rating(name, body.sample_id, body.dimension, model, step, value)
        progress = store.progress(name, step_counts)
        return {
            "ratings": blinded_ratings(store, name, body.sample_id, left),
            "complete": progress[body.sample_id],
            "n_complete": sum(progress.values()),
        }

    @app.get("/api/annotators/{annotator}/ratings")
    def ratings_of(annotator: str, who: CallerDep, store: StoreDep) -> list[dict[str, Any]]:
        if who.role == "annotator" and who.name != annotator:
            raise HTTPException(403, "annotators see only their own ratings")
        if store.annotator(annotator) is None:
            raise HTTPException(404, f"no annotator {_shown(annotator)}")
        if who.role == "admin":
            return store.ratings(annotator)
        out = []
        for a in store.assignments(annotator):
            for key, value in blinded_ratings(store, annotator, a["sample_id"], a["left_model"]).items():
                out.append({"sample_id": a["sample_id"], "key": key, "value": value})
        return out

    @app.post("/api/finish")
    def finish(name: AnnotatorDep, store: StoreDep) -> dict[str, Any]:
        progress = store.progress(name, step_counts)
        missing = [sid for sid, done in progress.items() if not done]
        if missing:
            raise HTTPException(409, f"{len(missing)} sample(s) still have unrated items, first: {_shown(missing[0])}")
        return {"finished_at": store.finish(name)}

    # --- admin API ---------------------------------------------------------------------------------------------
    @app.get("/api/admin/progress", dependencies=[Depends(admin_only)])
    def admin_progress(store: StoreDep) -> dict[str, Any]:
        rows = []
        for a in store.annotators():
            progress = store.progress(a.name, step_counts)
            last = store.conn.execute(
                "SELECT MAX(updated_at) AS t, COUNT(*) AS n FROM ratings WHERE annotator=?", (a.name,)
            ).fetchone()
            rows.append(
                {
                    "annotator": a.name,
                    "group": a.group,
                    "assigned": len(progress),
                    "complete": sum(progress.values()),
                    "ratings": last["n"],
                    "last_rating_at": last["t"],
                    "finished_at": a.finished_at,
                }
            )
        return {"models": len(store.models()), "samples": len(store.sample_ids()), "annotators": rows}

    @app.post("/api/admin/reopen/{annotator}", dependencies=[Depends(admin_only)])
    def admin_reopen(annotator: str, store: StoreDep) -> dict[str, Any]:
        if store.annotator(annotator) is None:
            raise HTTPException(404, f"no annotator {_shown(annotator)}")
        store.reopen(annotator)
        return {"annotator": annotator, "finished_at": None}

    return app

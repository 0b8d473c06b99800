"""The review web app: a FastAPI server over the review store, serving the page in ``static/``.

Every rating is one POST, written (upsert) before the reply, so a browser crash or a server restart loses nothing.
Annotators see only their assigned samples and their own ratings, blinded as Left/Right.
"""

# No `from __future__ import annotations`: FastAPI must resolve the dependency annotations defined in create_app.
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator

from deepmedix.annotation.store import (
    PREFERENCE_DIMENSIONS,
    STEP_DIMENSIONS,
    ReviewStore,
)

STATIC_DIR = Path(__file__).parent / "static"
COOKIE = "deepmedix_review"
SIDES = ("left", "right")

Dimension = Literal["relevance", "correctness", "completeness", "grounded_preference", "overall_preference"]


class RatingIn(BaseModel):
    """One rating as the page sends it: blinded (a side, never a model name)."""

    model_config = ConfigDict(extra="forbid")

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


def create_app(review_dir: str | Path) -> FastAPI:
    review_dir = Path(review_dir).resolve()
    with ReviewStore(review_dir) as store:  # fails at start-up, not on the first request, when the set is missing
        # The outputs never change once the set is created: count their steps once.
        step_counts = store.n_steps()

    app = FastAPI(title="deepmedix review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # personal links must not leak through Referer
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        )
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

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
            raise HTTPException(403, f"sample {sample_id!r} is not assigned to {name}")
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
    def login(token: str, store: StoreDep) -> Response:
        role, _ = store.identify(token)
        if role == "none":
            raise HTTPException(401, "this review link is not valid (ask the study admin for a new one)")
        response = RedirectResponse("/admin" if role == "admin" else "/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="lax", max_age=60 * 60 * 24 * 180)
        return response

    @app.post("/api/logout")
    def logout() -> Response:
        response = Response(status_code=204)
        response.delete_cookie(COOKIE)
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
            raise HTTPException(404, f"no sample {sample_id!r}")
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
            raise HTTPException(404, f"no sample {sample_id!r}")
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
                    raise HTTPException(422, f"step: {body.side} reasoning of {body.sample_id!r} has {n} step(s)")
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
            raise HTTPException(404, f"no annotator {annotator!r}")
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
            raise HTTPException(409, f"{len(missing)} sample(s) still have unrated items, first: {missing[0]!r}")
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
            raise HTTPException(404, f"no annotator {annotator!r}")
        store.reopen(annotator)
        return {"annotator": annotator, "finished_at": None}

    return app

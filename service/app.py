"""The HTTP API (FastAPI): search, feedback, status, jobs, thumbnails, chat with the agents, improvement.

Models, the catalog and stores are built once in the app's lifespan (never at import). Every ``/v1``
route needs a bearer token from ``SKYSCOUT_API_TOKENS`` (compared in constant time): 401 without one,
403 with a wrong one. Bodies larger than ``SKYSCOUT_MAX_BODY_BYTES`` get 413; errors never carry a
stack trace.
"""

from __future__ import annotations

import dataclasses
import hmac
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.context import AppContext
from service.settings import Settings, load_settings
from tools.search import SearchHit

log = logging.getLogger(__name__)

Scalar = str | int | float | bool
ASGIApp = Callable[[MutableMapping[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]],
                   Awaitable[None]]


# -- request and response models ---------------------------------------------------------------------


class SearchRequest(BaseModel):
    """A search: text and/or example image ids, negatives, filters. At least a text or an image_id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
        {"required": ["image_id"], "properties": {"image_id": {"type": "string"}}},
    ]})
    text: str | None = Field(None, min_length=1, max_length=500, description="what to look for")
    image_id: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="an example image (more like this)")
    negative_texts: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=10)
    negative_image_ids: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        default_factory=list, max_length=10)
    k: int = Field(10, ge=1, le=100)
    filters: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], Scalar] = Field(
        default_factory=dict, max_length=10, description="metadata equality filters, e.g. {'label': 'beach'}",
        json_schema_extra={"additionalProperties": False})
    min_score: float | None = Field(None, ge=-1, le=1)

    @model_validator(mode="after")
    def _something_to_look_for(self) -> SearchRequest:
        if not self.text and not self.image_id:
            raise ValueError("give a text, an image_id, or both")
        return self


@dataclasses.dataclass
class Hit(SearchHit):
    """A search hit as the API returns it: the Query agent's hit plus where to fetch its thumbnail."""

    thumbnail: str = ""


class SearchResponse(BaseModel):
    query_id: str
    index: str
    hits: list[Hit]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query_id: str = Field(..., min_length=1, max_length=100)
    image_id: str = Field(..., pattern=r"^[0-9a-f]{64}$")
    relevant: bool
    query: str | None = Field(None, max_length=500)


class FeedbackResponse(BaseModel):
    feedback_id: int


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread_id: str = Field(default_factory=lambda: f"t-{uuid.uuid4().hex[:12]}", min_length=1, max_length=100,
                           pattern=r"^[A-Za-z0-9_.:-]+$")
    message: str = Field(..., min_length=1, max_length=2000)
    stream: bool = False


class ErrorBody(BaseModel):
    error: str
    request_id: str | None = None


# -- middleware and dependencies -------------------------------------------------------------------


class BodySizeLimit:
    """Refuse request bodies over ``limit`` bytes with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[..., Awaitable[Any]],
                       send: Callable[..., Awaitable[Any]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _send_json(send, 413, {"error": f"request body larger than {self.limit} bytes"})
            return
        seen = 0

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await _send_json(send, 413, {"error": f"request body larger than {self.limit} bytes"})


class _TooLarge(Exception):
    pass


async def _send_json(send: Callable[..., Awaitable[Any]], status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


_bearer = HTTPBearer(auto_error=False)


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 without a bearer token, 403 with one that matches none of the configured tokens."""
    tokens: list[str] = request.app.state.ctx.settings.tokens
    if not tokens:
        return  # `serve` refuses to listen beyond loopback without tokens
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    given = credentials.credentials.encode()
    # Compare against every token so the time taken does not reveal which one nearly matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token.encode())
    if not matched:
        raise HTTPException(403, "invalid token")


Ctx = Annotated[AppContext, Depends(get_ctx)]


# -- the app -----------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, *, warm: bool = True,
               agent_runner: Any | None = None) -> FastAPI:
    """Build the API. ``warm`` loads the active index's model at start-up so the first search is fast.

    ``agent_runner`` (for ``/v1/chat`` and ``/v1/improve``) defaults to the LangGraph runner built from the
    same context.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = AppContext(settings=settings or load_settings())
        app.state.ctx = ctx
        app.state.runner = agent_runner
        _ = ctx.catalog
        if warm:
            try:
                from tools.embedding import active_index

                ctx.model(active_index(ctx.catalog, ctx.settings.store)["model"])
            except LookupError:
                log.info("no active index yet; searches will answer 409 until one is built")
        yield

    s = settings or load_settings()
    app = FastAPI(title="SkyScout", version="0.1.0", lifespan=lifespan,
                  description="Zero-shot search in satellite imagery, run by agents.")
    app.add_middleware(BodySizeLimit, limit=s.max_body_bytes)
    _install_error_handlers(app)
    auth = [Depends(require_token)]
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 403: {"model": ErrorBody},
        404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 413: {"model": ErrorBody},
    }

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/search", response_model=SearchResponse, dependencies=auth, responses=errors, tags=["search"])
    def search_route(body: SearchRequest, ctx: Ctx) -> SearchResponse:
        from service.commands.search import run_search
        from tools.search import Query as SearchQuery

        query = SearchQuery(texts=[body.text] if body.text else [], images=[body.image_id] if body.image_id else [],
                            negative_texts=body.negative_texts, negative_images=body.negative_image_ids, k=body.k,
                            filter=dict(body.filters) or None, min_score=body.min_score)
        result = run_search(ctx, query)
        return SearchResponse(query_id=result.query_id, index=result.index, hits=[
            Hit(**dataclasses.asdict(h), thumbnail=f"/v1/images/{h.image_id}/thumbnail") for h in result.hits])

    @app.post("/v1/feedback", response_model=FeedbackResponse, dependencies=auth, responses=errors,
              tags=["search"])
    def feedback_route(body: FeedbackRequest, ctx: Ctx) -> FeedbackResponse:
        if not ctx.catalog.has_image(body.image_id):
            raise HTTPException(404, f"image {body.image_id} is not in the catalog")
        fid = ctx.catalog.add_feedback(image_id=body.image_id, relevant=body.relevant, query_id=body.query_id,
                                       query=body.query)
        return FeedbackResponse(feedback_id=fid)

    @app.get("/v1/status", dependencies=auth, responses=errors, tags=["ops"])
    def status_route(ctx: Ctx) -> dict[str, Any]:
        return status_document(ctx)

    @app.get("/v1/jobs", dependencies=auth, responses=errors, tags=["ops"])
    def jobs_route(ctx: Ctx, kind: Annotated[str | None, Query(max_length=50)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
        return [j.__dict__ for j in ctx.catalog.list_jobs(kind=kind, limit=limit)]

    @app.get("/v1/jobs/{job_id}", dependencies=auth, responses=errors, tags=["ops"])
    def job_route(job_id: str, ctx: Ctx) -> dict[str, Any]:
        job = ctx.catalog.get_job(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job.__dict__

    @app.get("/v1/images/{image_id}/thumbnail", dependencies=auth, responses=errors, tags=["search"],
             response_class=Response)
    def thumbnail_route(image_id: str, ctx: Ctx, size: Annotated[int, Query(ge=16, le=1024)] = 256) -> Response:
        from tools.imageio import load_rgb
        from tools.paths import PathNotAllowedError, check_allowed

        rec = ctx.catalog.get_image(image_id) if len(image_id) == 64 else None
        if rec is None or rec.status != "ok":
            raise HTTPException(404, f"no image {image_id!r}")
        try:
            path = check_allowed(rec.uri, ctx.settings.roots)
            img = load_rgb(path)
        except PathNotAllowedError:
            raise HTTPException(403, "the image lies outside the configured data roots") from None
        except OSError:
            raise HTTPException(404, "the image file is no longer readable") from None
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        return Response(buf.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.post("/v1/chat", dependencies=auth, responses=errors, tags=["agents"])
    def chat_route(body: ChatRequest, request: Request, ctx: Ctx) -> Any:
        runner = _runner(request, ctx)
        if body.stream:
            def events() -> Any:
                # One event per graph node as it finishes (the agent's step and its result), then the answer.
                try:
                    for update in runner.stream(body.message, thread_id=body.thread_id):
                        for node, change in update.items():
                            yield _sse("step", {"node": node, "update": change})
                    yield _sse("done", runner.outcome(body.thread_id).to_dict())
                except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band, no trace
                    log.error("chat stream on thread %s failed", body.thread_id, exc_info=exc)
                    yield _sse("error", {"error": str(exc) if isinstance(exc, ValueError) else "internal error"})
            return StreamingResponse(events(), media_type="text/event-stream")
        return runner.run(body.message, thread_id=body.thread_id).to_dict()

    @app.post("/v1/improve", dependencies=auth, responses=errors, tags=["agents"])
    def improve_route(ctx: Ctx) -> dict[str, Any]:
        """One improvement tick now (watched folders, then a planner round); 409 while another one runs."""
        from service.scheduler import TickBusy, improvement_tick, tick_lock

        try:
            with tick_lock(ctx.settings.home / "improve.lock"):
                return improvement_tick(ctx)
        except TickBusy as exc:
            raise HTTPException(409, str(exc)) from None

    return app


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _runner(request: Request, ctx: AppContext) -> Any:
    runner = request.app.state.runner
    if runner is None:
        runner = request.app.state.runner = ctx.agent_runner()
    return runner


def status_document(ctx: AppContext) -> dict[str, Any]:
    """Catalog counts, the active model and index, latest metrics and recent decisions."""
    from service.commands.data import status_document as catalog_status

    cat = ctx.catalog
    active = cat.get_alias("active_model")
    doc = catalog_status(ctx)
    doc["active_model"] = active or "skyscout-tiny"
    doc["active_index"] = cat.get_alias(f"active_index:{ctx.settings.store}")
    doc["latest_metrics"] = [{k: e[k] for k in ("model", "dataset", "split", "kind", "created_at")}
                             | {"headline": {m: v for m, v in e["metrics"].items() if not isinstance(v, dict)}}
                             for e in cat.evaluations(limit=5)]
    doc["recent_decisions"] = cat.decisions(limit=10)
    return doc


def _replying(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status)

    return handler


def _install_error_handlers(app: FastAPI) -> None:
    from tools.embedding import NoIndexError
    from tools.search import QueryError

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    # Errors our tools raise on purpose carry a message for the caller (Starlette matches the closest class).
    for exc_class, status in ((QueryError, 400), (NoIndexError, 409), (LookupError, 404), (ValueError, 400)):
        app.add_exception_handler(exc_class, _replying(status))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.error("request %s failed", request_id, exc_info=exc)
        return JSONResponse({"error": "internal error", "request_id": request_id}, status_code=500)

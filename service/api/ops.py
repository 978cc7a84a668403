"""Operations routes: ``GET /healthz``, ``GET /v1/status``, ``GET /v1/jobs``, ``GET /v1/jobs/{id}``,
``POST /v1/jobs/{id}/cancel`` (operate), and the API's own description (``/openapi.json``), which needs a
token like every other route but ``/healthz``; ``/docs`` (Swagger UI from local assets) is in :mod:`service.api.web`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from app.operations import cancel_job, job_doc, list_jobs
from app.status import status
from service.api.deps import AUTH, OPERATE, App, Redact
from service.api.schemas import ERROR_RESPONSES

public = APIRouter(tags=["ops"])
router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["ops"])
described = APIRouter(dependencies=AUTH, include_in_schema=False)


@public.get("/healthz")
def healthz(request: Request) -> dict[str, str]:
    """Liveness, which SkyScout home this server serves (an opaque id: the CLI uses the server for its reads
    only when it is the same home), and whether calls need a bearer token (the web app asks for one first)."""
    from service.context import instance_id

    settings = request.app.state.services.settings
    return {"status": "ok", "instance": instance_id(settings), "auth": "bearer" if settings.tokens else "none"}


@described.get("/openapi.json")
def openapi_route(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/status")
def status_route(app: App, redact: Redact) -> dict[str, Any]:
    doc: dict[str, Any] = redact(status(app))
    return doc


@router.get("/jobs")
def jobs_route(app: App, redact: Redact, kind: Annotated[str | None, Query(max_length=50)] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    return [redact(job_doc(j)) for j in list_jobs(app, kind=kind, limit=limit)]


@router.get("/jobs/{job_id}")
def job_route(job_id: str, app: App, redact: Redact) -> dict[str, Any]:
    job = app.catalog.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    doc: dict[str, Any] = redact(job_doc(job))
    return doc


@router.post("/jobs/{job_id}/cancel", dependencies=OPERATE)
def cancel_route(job_id: str, app: App, redact: Redact) -> dict[str, Any]:
    """Ask a running job to stop at its next batch (what it finished stays; running it again resumes it)."""
    doc: dict[str, Any] = redact(job_doc(cancel_job(app, job_id)))
    return doc

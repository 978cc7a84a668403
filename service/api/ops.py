"""Operations routes: ``GET /healthz``, ``GET /v1/status``, ``GET /v1/jobs``, ``GET /v1/jobs/{id}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from app.status import status
from service.api.deps import AUTH, App
from service.api.schemas import ERROR_RESPONSES

public = APIRouter(tags=["ops"])
router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["ops"])


@public.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/status")
def status_route(app: App) -> dict[str, Any]:
    return status(app)


@router.get("/jobs")
def jobs_route(app: App, kind: Annotated[str | None, Query(max_length=50)] = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    return [j.__dict__ for j in app.catalog.list_jobs(kind=kind, limit=limit)]


@router.get("/jobs/{job_id}")
def job_route(job_id: str, app: App) -> dict[str, Any]:
    job = app.catalog.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job.__dict__

"""What the web app's status panel reads besides ``/v1/status``: ``GET /v1/models`` (model versions with their
metrics), ``GET /v1/indexes`` (index versions), ``GET /v1/decisions`` (the planner's decision log with reasons
and evidence), and ``GET /v1/ui`` (the page's settings: the optional basemap)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from app.inventory import decisions, indexes, models
from service.api.deps import AUTH, App, Redact, ServicesDep
from service.api.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["ops"])


@router.get("/models")
def models_route(app: App) -> dict[str, Any]:
    """Model versions, newest first: status (active, candidate, retired), lineage, latest metrics per split."""
    return models(app)


@router.get("/indexes")
def indexes_route(app: App) -> dict[str, Any]:
    """Index versions, newest first (model, store, state, vectors), and the one answering searches."""
    return indexes(app)


@router.get("/decisions")
def decisions_route(app: App, redact: Redact, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    action: Annotated[str | None, Query(max_length=50)] = None) -> list[dict[str, Any]]:
    """The decision log, newest first: action, reason, evidence, actor, outcome."""
    return [redact(d) for d in decisions(app, limit=limit, action=action)]


@router.get("/ui")
def ui_route(request: Request, services: ServicesDep) -> dict[str, Any]:
    """The web app's settings: an optional XYZ basemap (``SKYSCOUT_BASEMAP_URL``; none by default), and which
    optional parts of the API this server has (the page uses them when present, without probing)."""
    from service.api.scenes import DetectBody

    s = services.settings
    paths = {getattr(r, "path", "") for r in request.app.routes}
    return {"basemap_url": s.basemap_url, "basemap_attribution": s.basemap_attribution,
            "features": {"concepts": "/v1/concepts" in paths, "detect_concept": "concept" in DetectBody.model_fields}}

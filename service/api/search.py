"""Search routes: ``POST /v1/search``, ``POST /v1/feedback``, ``GET /v1/images/{id}/thumbnail``."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.search import encode_query_texts, record_feedback, search
from service.api.deps import AUTH, App, Redact
from service.api.redact import Redactor
from service.api.schemas import ERROR_RESPONSES, FeedbackRequest, FeedbackResponse, Hit, SearchRequest, SearchResponse
from tools.geo import aoi_from_geojson, parse_bbox
from tools.search import Query as SearchQuery
from tools.search import SearchResult

router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["search"])


#: searches ranked at once per server; the others wait their turn in the event loop. Sixteen searches in
#: sixteen threads on two cores spend their time taking the GIL from each other (bench/bench_search.py).
#: Query texts are encoded before a slot is taken, so that concurrent new texts still share one batch.
SEARCH_SLOTS = 2


def _slots(request: Request) -> asyncio.Semaphore:
    slots: asyncio.Semaphore | None = getattr(request.app.state, "search_slots", None)
    if slots is None:
        slots = request.app.state.search_slots = asyncio.Semaphore(SEARCH_SLOTS)
    return slots


@router.post("/search", response_model=SearchResponse)
async def search_route(body: SearchRequest, request: Request, app: App, redact: Redact) -> SearchResponse:
    images = list(dict.fromkeys(([body.image_id] if body.image_id else []) + body.image_ids))
    query = SearchQuery(texts=[body.text] if body.text else [], images=images,
                        negative_texts=body.negative_texts, negative_images=body.negative_image_ids, k=body.k,
                        filter=dict(body.filters) or None, min_score=body.min_score, **_area(body))
    await run_in_threadpool(encode_query_texts, app, query)
    async with _slots(request):
        result = await run_in_threadpool(search, app, query)
    return search_response(result, redact)


def search_response(result: SearchResult, redact: Redactor) -> SearchResponse:
    """A search result as the API answers it: paths relative to their data root, a thumbnail path per hit."""
    return SearchResponse(query_id=result.query_id, index=result.index, hits=[
        Hit(**{**dataclasses.asdict(h), "uri": redact.path(h.uri)}, thumbnail=f"/v1/images/{h.image_id}/thumbnail")
        for h in result.hits])


def _area(body: SearchRequest) -> dict[str, Any]:
    """The request's area of interest as a query's ``aoi`` (GeoJSON geometry) or ``scenes``."""
    if body.bbox is not None and body.aoi is not None:
        raise ValueError("give a bbox or an aoi, not both")
    if body.bbox is not None:
        return {"aoi": parse_bbox(body.bbox).to_dict()["geometry"]}
    if body.aoi is not None:
        return {"aoi": aoi_from_geojson(body.aoi, "aoi").to_dict()["geometry"]}
    return {"scenes": [body.scene_id]} if body.scene_id else {}


@router.post("/feedback", response_model=FeedbackResponse)
def feedback_route(body: FeedbackRequest, app: App) -> FeedbackResponse:
    fid = record_feedback(app, image_id=body.image_id, relevant=body.relevant, query_id=body.query_id,
                          query=body.query)
    return FeedbackResponse(feedback_id=fid)


@router.get("/images/{image_id}/thumbnail", response_class=Response)
def thumbnail_route(image_id: str, app: App, size: Annotated[int, Query(ge=16, le=1024)] = 256) -> Response:
    """A JPEG of the image, decoded at a reduced size and bounded in memory (:mod:`tools.thumbnails`); 409 when
    the file changed since ingestion, 422 when its header claims more than SKYSCOUT_MAX_PIXELS pixels."""
    from tools.paths import PathNotAllowedError
    from tools.thumbnails import thumbnail_jpeg

    rec = app.catalog.get_image(image_id) if len(image_id) == 64 else None
    if rec is None or rec.status != "ok":
        raise HTTPException(404, f"no image {image_id!r}")
    try:
        data = thumbnail_jpeg(rec.uri, rec.id, size, roots=app.config.roots, max_pixels=app.config.max_pixels,
                              cache_dir=app.config.thumbnails_dir)
    except PathNotAllowedError:
        raise HTTPException(403, "the image lies outside the configured data roots") from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

"""Search by an uploaded image: ``POST /v1/search/image`` with the image's bytes as the body.

The body is the file itself (``Content-Type: image/jpeg``, ``image/png``, ... or ``application/octet-stream``), at
most ``SKYSCOUT_MAX_BODY_BYTES``; the query's other terms are query parameters. The bytes are checked as ingestion
checks a file (:mod:`app.image_search`): a file that does not decode, or claims more pixels than
``SKYSCOUT_MAX_PIXELS``, is refused with 400 and the reason (422 is for a request that does not match the schema).
(An area is a ``scene_id``; for a box or polygon, search ``POST /v1/search`` with the hits' ids.) The answer is
``POST /v1/search``'s.

    curl -H "Authorization: Bearer $T" -H 'Content-Type: image/jpeg' --data-binary @harbor.jpg \\
        'http://127.0.0.1:8000/v1/search/image?k=20&negative_texts=parking%20lot'
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from service.api.deps import AUTH, App, Redact
from service.api.schemas import ERROR_RESPONSES, SearchResponse
from service.api.search import search_response
from tools.imageio import ImageRejected
from tools.search import Query as SearchQuery

router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["search"])

ImageIds = list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]]
Filter = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}=.{1,200}$")]


def _filters(items: list[str]) -> dict[str, Any] | None:
    """``key=value`` query parameters as a metadata filter."""
    return {k: v for k, _, v in (item.partition("=") for item in items)} or None


#: the media types an upload may declare: the formats ingestion accepts (tools.imageio.SUPPORTED_FORMATS)
UPLOAD_TYPES = ("image/jpeg", "image/png", "image/tiff", "image/webp", "application/octet-stream")


@router.post("/search/image", response_model=SearchResponse, openapi_extra={"requestBody": {
    "required": True, "description": "the image file's bytes: JPEG, PNG, TIFF or WebP, as ingestion accepts",
    "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in UPLOAD_TYPES}}})
async def upload_search_route(
    request: Request, app: App, redact: Redact,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    text: Annotated[str | None, Query(min_length=1, max_length=500, pattern=r"\S",
                                      description="a text to search for together with the image")] = None,
    image_ids: Annotated[ImageIds, Query(max_length=20, description="more example images")] = [],  # noqa: B006
    negative_texts: Annotated[list[Annotated[str, Field(max_length=200)]], Query(max_length=10)] = [],  # noqa: B006
    negative_image_ids: Annotated[ImageIds, Query(max_length=10)] = [],  # noqa: B006 - FastAPI copies defaults
    filter: Annotated[list[Filter], Query(max_length=10, description="metadata filters, key=value")] = [],  # noqa: B006
    scene_id: Annotated[str | None, Query(min_length=6, max_length=64, pattern=r"^[0-9a-f]+$")] = None,
) -> SearchResponse:
    """Rank the indexed images by their likeness to the uploaded one (with optional text and negatives)."""
    data = await request.body()
    if not data:
        raise HTTPException(400, "the request body must be the image file's bytes; it was empty")
    area: dict[str, Any] = {"scenes": [scene_id]} if scene_id else {}
    query = SearchQuery(texts=[text] if text else [], images=list(dict.fromkeys(image_ids)),
                        negative_texts=negative_texts,
                        negative_images=negative_image_ids, k=k, filter=_filters(filter), **area)
    from app.image_search import search_by_upload

    try:
        result = await run_in_threadpool(search_by_upload, app, data, query)
    except ImageRejected as exc:
        raise HTTPException(400, f"the uploaded file was refused: {exc.reason}") from None
    return search_response(result, redact)

"""The HTTP API's request and response bodies (the OpenAPI schema is generated from these)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from tools.search import SearchHit

Scalar = str | int | float | bool
ImageId = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _json_integer(value: Any) -> Any:
    """What JSON Schema calls an integer: ``22`` and ``22.0``, never ``true`` or ``"22"`` (then strict int says
    why it refuses)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: an integer field as JSON Schema defines one (pair it with ``strict=True``)
JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class SearchRequest(BaseModel):
    """A search: text and/or example image ids, negatives, filters. At least a text or an image_id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
        {"required": ["image_id"], "properties": {"image_id": {"type": "string"}}},
        {"required": ["image_ids"], "properties": {"image_ids": {"type": "array", "minItems": 1}}},
    ]})
    text: str | None = Field(None, min_length=1, max_length=500, pattern=r"\S",
                             description="what to look for (not only spaces)")
    image_id: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="an example image (more like this)")
    image_ids: list[ImageId] = Field(default_factory=list, max_length=20,
                                     description="more example images (e.g. the results marked relevant)")
    negative_texts: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=10)
    negative_image_ids: list[ImageId] = Field(default_factory=list, max_length=10)
    k: JsonInt = Field(10, ge=1, le=100, strict=True, description="how many hits (an integer: true is not one)")
    filters: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")], Scalar] = Field(
        default_factory=dict, max_length=10, description="metadata equality filters, e.g. {'label': 'beach'}",
        json_schema_extra={"additionalProperties": False})
    min_score: float | None = Field(None, ge=-1, le=1)
    bbox: list[float] | None = Field(None, min_length=4, max_length=4,
                                     description="only chips touching W, S, E, N (degrees, EPSG:4326)")
    aoi: dict[str, Any] | None = Field(None, description="only chips touching this GeoJSON polygon (EPSG:4326)")
    scene_id: str | None = Field(None, min_length=6, max_length=64, pattern=r"^[0-9a-f]+$",
                                 description="only chips of this scene (id or id prefix)")

    @model_validator(mode="after")
    def _something_to_look_for(self) -> SearchRequest:
        if not self.text and not self.image_id and not self.image_ids:
            raise ValueError("give a text, an image_id (or image_ids), or both")
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
    message: str | None = Field(None, min_length=1, max_length=2000, pattern=r"\S",
                                description="the request; leave it out to answer an approval (approve) or to "
                                            "continue the thread's unfinished run")
    approve: bool | None = Field(None, description="the answer to the approval the thread waits for (yes / no)")

    @model_validator(mode="after")
    def _message_or_answer(self) -> ChatRequest:
        if self.message is None and self.approve is None:
            raise ValueError("give a message, or approve (true / false) to answer the thread's pending approval")
        return self


class ErrorBody(BaseModel):
    error: str
    request_id: str | None = None


class InvalidRequestBody(ErrorBody):
    """A request that does not match the schema: the error in words, and each problem (``loc``, ``msg``)."""

    details: list[dict[str, Any]] = Field(default_factory=list)


#: the error bodies every /v1 route may answer with, for the OpenAPI schema (422 replaces FastAPI's own)
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    **{code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 503)},
    422: {"model": InvalidRequestBody},
}

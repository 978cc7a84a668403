"""Scene and detection routes: ``POST /v1/detect`` (GeoJSON), ``GET /v1/scenes``, ``GET /v1/scenes/{id}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.detect import DetectRequest, detect
from app.scenes import get_scene, list_scenes
from service.api.deps import AUTH, App
from service.api.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["scenes"])

#: RFC 7946's media type
GEOJSON = "application/geo+json"


class DetectBody(BaseModel):
    """What to detect, and where: one scene, a box (W, S, E, N in degrees) or a GeoJSON polygon (EPSG:4326)."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., min_length=1, max_length=500, description="what to find, e.g. vineyards")
    negative: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=10)
    scene_id: str | None = Field(None, min_length=6, max_length=64, pattern=r"^[0-9a-f]+$",
                                 description="only this scene (id or id prefix)")
    bbox: list[float] | None = Field(None, min_length=4, max_length=4, description="W, S, E, N in degrees")
    aoi: dict[str, Any] | None = Field(None, description="a GeoJSON Polygon / MultiPolygon / Feature (EPSG:4326)")
    top_k: int | None = Field(None, ge=1, le=100_000)
    threshold: float | None = Field(None, ge=0, le=1, description="minimum probability (default 0.5)")
    merge: bool = Field(False, description="dissolve touching chips into polygons with area_m2")
    nms: bool = Field(False, description="keep only chips no better-scoring overlapping chip outranks")
    parts: bool = Field(False, description="temper each chip by its weakest quadrant (embeds 4 per chip)")
    background: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(None, max_length=50)
    concept: str | None = Field(None, min_length=1, max_length=100, description="score with this concept (id or "
                                "name): at its classifier stage the probabilities are the classifier's")


@router.post("/detect", response_class=JSONResponse,
             responses={200: {"content": {GEOJSON: {}}, "description": "an RFC 7946 FeatureCollection"}})
def detect_route(body: DetectBody, app: App) -> JSONResponse:
    """Chips (or merged regions) scoring for ``text``, as GeoJSON in EPSG:4326."""
    result = detect(app, DetectRequest(
        text=body.text, negative=body.negative, scene=body.scene_id, bbox=body.bbox, aoi=body.aoi,
        top_k=body.top_k, threshold=body.threshold, merge=body.merge, nms=body.nms, parts=body.parts,
        background=body.background, georeferenced=True, concept=body.concept))
    doc = result.geojson()
    doc["warnings"] = result.warnings
    return JSONResponse(doc, media_type=GEOJSON)


@router.get("/scenes")
def scenes_route(app: App) -> list[dict[str, Any]]:
    """Every ingested scene: size, bands, dtype, CRS, footprint (EPSG:4326), chips."""
    return list_scenes(app)


@router.get("/scenes/{scene_id}")
def scene_route(scene_id: str, app: App) -> dict[str, Any]:
    """One scene by id or id prefix, with its chipping runs (skipped nodata, broken windows)."""
    return get_scene(app, scene_id)

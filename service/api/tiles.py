"""Map tiles of the ingested scenes: ``GET /v1/scenes/{id}/tilejson.json`` and
``GET /v1/scenes/{id}/tiles/{z}/{x}/{y}.png`` (Web Mercator XYZ, 256 px, transparent outside the scene),
rendered from the scene file by window with the bands and stretch its chips were cut with (:mod:`app.tiles`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from app.tiles import scene_tile, tilejson
from service.api.deps import AUTH, App
from service.api.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["scenes"])
SceneRef = Annotated[str, Path(min_length=6, max_length=64, pattern=r"^[0-9a-f]+$")]


@router.get("/scenes/{scene_id}/tilejson.json")
def tilejson_route(scene_id: SceneRef, app: App) -> dict[str, Any]:
    """TileJSON 3.0 of a scene: bounds (EPSG:4326), zooms, and the tile path template."""
    return tilejson(app, scene_id)


@router.get("/scenes/{scene_id}/tiles/{z}/{x}/{y}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "a 256 px RGBA PNG"}})
def tile_route(scene_id: SceneRef, z: Annotated[int, Path(ge=0, le=24)], x: Annotated[int, Path(ge=0)],
               y: Annotated[int, Path(ge=0)], app: App) -> Response:
    """One XYZ tile of a scene; 400 for a tile that does not exist at that zoom."""
    return Response(scene_tile(app, scene_id, z, x, y), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})

"""Map tiles of the ingested scenes: TileJSON per scene and XYZ PNG tiles rendered as the chips are read.

The band choice and stretch come from the scene's latest chipping run (what the model was shown); a scene
never chipped gets the default bands and a stretch computed now. Rendered tiles are kept in memory (a few
hundred), keyed by scene, style and address.
"""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from app.scenes import resolve_scene
from tools.catalog import SceneRecord
from tools.paths import check_allowed
from tools.scenes.tiles import MAX_ZOOM, TileCache, TileStyle, native_zoom, png_bytes, render_tile

_CACHE = TileCache()


def _scene(ctx: AppContext, ref: str) -> SceneRecord:
    scene = ctx.catalog.get_scene(resolve_scene(ctx, ref))
    if scene is None:
        raise LookupError(f"no scene {ref!r}")
    return scene


def tile_style(ctx: AppContext, scene: SceneRecord) -> TileStyle:
    """The bands and stretch the scene's chips were cut with (its latest chipping run)."""
    runs = [r for r in scene.metadata.get("chipping", []) if r.get("bands") and r.get("stretch")]
    if runs:
        run = runs[-1]
        return TileStyle(bands=tuple(int(b) for b in run["bands"]), stretch=str(run["stretch"]))
    from tools.scenes.chips import ChipParams
    from tools.scenes.read import open_cached
    from tools.scenes.stretch import choose_bands, compute_stretch

    ds = open_cached(scene.uri)
    colorinterp = tuple(c.name for c in ds.colorinterp)
    bands = choose_bands(ChipParams(), ds.count, colorinterp)
    return TileStyle(bands=bands, stretch=compute_stretch(ds, bands, ChipParams(), ds.nodata))


def tilejson(ctx: AppContext, ref: str) -> dict[str, Any]:
    """A TileJSON 3.0 document for a scene (``tiles`` is the API path, relative to the server)."""
    scene = _scene(ctx, ref)
    if scene.crs is None or not scene.bbox:
        raise ValueError(f"scene {scene.id[:12]} has no CRS, so it has no place on a map")
    west, south, east, north = scene.bbox
    native = native_zoom(scene.gsd, (south + north) / 2)
    return {"tilejson": "3.0.0", "name": scene.id[:12], "scheme": "xyz", "bounds": [west, south, east, north],
            "minzoom": 0, "maxzoom": min(MAX_ZOOM, native + 3), "native_zoom": native,
            "center": [(west + east) / 2, (south + north) / 2, max(0, native - 2)],
            "tiles": [f"/v1/scenes/{scene.id}/tiles/{{z}}/{{x}}/{{y}}.png"]}


def scene_tile(ctx: AppContext, ref: str, z: int, x: int, y: int) -> bytes:
    """PNG bytes of tile z/x/y of a scene (transparent outside it); the file must lie inside the data roots."""
    scene = _scene(ctx, ref)
    path = str(check_allowed(scene.uri, ctx.config.roots))
    style = tile_style(ctx, scene)
    key = (scene.id, style, z, x, y)
    data = _CACHE.get(key)
    if data is None:
        data = png_bytes(render_tile(path, z, x, y, style))
        _CACHE.put(key, data)
    return data


__all__ = ["scene_tile", "tile_style", "tilejson"]

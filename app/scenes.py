"""Scene use cases: list and describe scenes, name a scene by id, id prefix or path, chipping options.

Ingesting scenes is :func:`app.data.ingest` (a scene is a file among the others); this module serves the
CLI's ``skyscout scenes``, ``GET /v1/scenes`` and the agents alike.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from app.context import AppContext
from tools.catalog import SceneRecord
from tools.paths import check_allowed
from tools.scenes.chips import ChipParams, parse_bands
from tools.scenes.ingest import SceneOptions

_HEX = re.compile(r"^[0-9a-f]{6,64}$")


def scene_options(ctx: AppContext, *, chip_size: int | None = None, overlap: float | None = None,
                  gsd: float | None = None, bands: str | tuple[int, ...] | None = None, stretch: str | None = None,
                  max_nodata: float | None = None, force: bool | None = None) -> SceneOptions:
    """How ingestion chips scenes: the given options over the defaults (``ChipParams``) and the config's limits."""
    base = ChipParams()
    params = ChipParams(
        size=chip_size or base.size, overlap=base.overlap if overlap is None else overlap, gsd=gsd,
        bands=parse_bands(bands) if isinstance(bands, str) else bands, stretch=stretch or base.stretch,
        max_nodata=base.max_nodata if max_nodata is None else max_nodata)
    return SceneOptions(chips=params, force=force, min_side=ctx.config.scene_min_side,
                        max_pixels=ctx.config.max_scene_pixels)


def resolve_scene(ctx: AppContext, ref: str) -> str:
    """The id of the scene ``ref`` names: its id, an unambiguous id prefix (6+ characters), or its file path."""
    text = ref.strip()
    if _HEX.match(text.lower()):
        found = ctx.catalog.scene_ids_with_prefix(text.lower(), limit=6)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise LookupError(f"{ref!r} matches several scenes ({', '.join(f[:16] for f in found[:5])}); "
                              "give more characters")
    path = Path(text).expanduser()
    if "/" in text or path.suffix:
        real = check_allowed(path, ctx.config.roots)
        scene = ctx.catalog.scene_by_uri(str(real))
        if scene is not None:
            return scene.id
    raise LookupError(f"no scene {ref!r}; `skyscout scenes` lists the ingested scenes (ids and paths)")


def describe(scene: SceneRecord) -> dict[str, Any]:
    """A scene as the CLI, the API and the agents show it."""
    doc = scene.to_dict()
    runs = scene.metadata.get("chipping", [])
    doc["broken_windows"] = sum(int(r.get("broken_count", 0)) for r in runs)
    doc["skipped_nodata"] = sum(int(r.get("skipped_nodata", 0)) for r in runs)
    doc["georeferenced"] = scene.crs is not None
    return doc


def list_scenes(ctx: AppContext) -> list[dict[str, Any]]:
    """Every catalogued scene, oldest first, with its chip count."""
    return [describe(s) for s in ctx.catalog.list_scenes()]


def get_scene(ctx: AppContext, ref: str) -> dict[str, Any]:
    """One scene (by id, id prefix or path), with its chipping runs and their broken windows."""
    scene = ctx.catalog.get_scene(resolve_scene(ctx, ref))
    if scene is None:
        raise LookupError(f"no scene {ref!r}")
    return describe(scene)


__all__ = ["describe", "get_scene", "list_scenes", "resolve_scene", "scene_options"]

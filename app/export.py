"""Exporting search results: the hits a user is looking at, as GeoJSON (with footprints) or JSON."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Literal

from app.context import AppContext
from tools.catalog import ImageRecord

ExportFormat = Literal["geojson", "json"]


def _geometry(rec: ImageRecord) -> dict[str, Any] | None:
    """A hit's footprint in EPSG:4326: a chip's polygon, or a georeferenced tile's bounds; else none."""
    if rec.footprint:
        return rec.footprint
    if rec.bounds and rec.crs:
        from tools.geo import box_to_wgs84, to_geojson

        minx, miny, maxx, maxy = rec.bounds
        return to_geojson(box_to_wgs84(minx, miny, maxx, maxy, rec.crs))
    return None


def export_hits(ctx: AppContext, hits: list[dict[str, Any]], *, fmt: ExportFormat = "geojson",
                query: str | None = None, query_id: str | None = None) -> dict[str, Any]:
    """Write ``hits`` (``image_id``, ``score``) to ``<home>/exports/``; returns the file and what it holds."""
    features: list[dict[str, Any]] = []
    for rank, hit in enumerate(hits, start=1):
        rec = ctx.catalog.get_image(hit["image_id"])
        props = {"rank": rank, "image_id": hit["image_id"], "score": hit.get("score"), "query": query,
                 "query_id": query_id, "label": rec.labels[0] if rec and rec.labels else None,
                 "scene_id": rec.scene_id if rec else None, "name": Path(rec.uri).name if rec else None}
        features.append({"type": "Feature", "geometry": _geometry(rec) if rec else None, "properties": props})
    name = re.sub(r"[^\w-]+", "_", query_id or time.strftime("%Y%m%d-%H%M%S"))
    out = ctx.config.home / "exports" / f"{name}.{fmt}"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: Any = {"type": "FeatureCollection", "features": features} if fmt == "geojson" else \
        [f["properties"] | {"geometry": f["geometry"]} for f in features]
    out.write_text(json.dumps(doc, indent=1))
    return {"path": str(out), "count": len(features), "format": fmt,
            "with_geometry": sum(f["geometry"] is not None for f in features)}


__all__ = ["ExportFormat", "export_hits"]

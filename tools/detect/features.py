"""Detections as RFC 7946 GeoJSON: one Feature per chip, and touching chips dissolved into polygons.

Every geometry is in EPSG:4326 with right-hand rings. ``merge`` dissolves the chips it is given (those
above the threshold) wherever they touch or overlap, and gives each polygon the max and mean score and
probability of its chips, how many chips it holds, and its area in square metres, computed in the local
UTM zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shapely import geometry as sgeom
from shapely.ops import unary_union
from shapely.strtree import STRtree

from tools.geo import area_m2, to_geojson


@dataclass
class Detection:
    """One chip scored for a query."""

    chip_id: str
    scene_id: str
    score: float  # cosine similarity of the chip to the query vector
    probability: float
    window: list[int]
    geometry: dict[str, Any] | None  # GeoJSON polygon, EPSG:4326 (None: the scene has no CRS)
    uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    logit: float = 0.0  # the probability's log-odds: what detections are ranked by

    def properties(self, query: str, model: str) -> dict[str, Any]:
        return {"score": round(self.score, 5), "probability": round(self.probability, 5), "query": query,
                "model": model, "chip_id": self.chip_id, "scene_id": self.scene_id, "window": self.window,
                **self.extra}


def chip_features(detections: Sequence[Detection], *, query: str, model: str) -> list[dict[str, Any]]:
    """One Feature per georeferenced chip, best first."""
    return [{"type": "Feature", "geometry": to_geojson(sgeom.shape(d.geometry)),
             "properties": d.properties(query, model)}
            for d in detections if d.geometry is not None]


def merge(detections: Sequence[Detection], *, query: str, model: str) -> list[dict[str, Any]]:
    """Touching or overlapping chips dissolved into polygons (largest max score first)."""
    located = [d for d in detections if d.geometry is not None]
    if not located:
        return []
    shapes = [sgeom.shape(d.geometry) for d in located]
    union = unary_union(shapes)
    parts = list(union.geoms) if hasattr(union, "geoms") else [union]
    tree = STRtree(shapes)
    out: list[dict[str, Any]] = []
    for poly in parts:
        members = [located[int(i)] for i in tree.query(poly, predicate="intersects")
                   if shapes[int(i)].intersection(poly).area > 0]
        scores = [d.score for d in members]
        probs = [d.probability for d in members]
        out.append({"type": "Feature", "geometry": to_geojson(poly), "properties": {
            "query": query, "model": model, "chips": len(members),
            "max_score": round(max(scores), 5), "mean_score": round(sum(scores) / len(scores), 5),
            "max_probability": round(max(probs), 5), "mean_probability": round(sum(probs) / len(probs), 5),
            "area_m2": round(area_m2(poly), 1),
            "scene_ids": sorted({d.scene_id for d in members}),
            "chip_ids": [d.chip_id for d in sorted(members, key=lambda d: -d.score)]}})
    out.sort(key=lambda f: -float(f["properties"]["max_score"]))
    return out


def feature_collection(features: list[dict[str, Any]], **members: Any) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection (extra top-level members, e.g. the query, are allowed by the spec)."""
    return {"type": "FeatureCollection", **members, "features": features}


__all__ = ["Detection", "chip_features", "feature_collection", "merge"]

"""Geometry in EPSG:4326: CRS transforms, footprints, UTM areas, RFC 7946 rings, GeoJSON checks, areas of interest.

Everything SkyScout returns is in EPSG:4326 (longitude, latitude), whatever CRS a scene is in. Areas are
computed in the local UTM zone of the geometry's centroid. Polygons are oriented by the right-hand rule
(exterior rings counter-clockwise, holes clockwise) as RFC 7946 asks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shapely import geometry as sgeom
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

WGS84 = "EPSG:4326"


class GeoError(ValueError):
    """A geometry, CRS or area of interest that cannot be used (the message says why)."""


@lru_cache(maxsize=64)
def _transformer(src: str, dst: str) -> Any:
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def transform_points(xs: Sequence[float], ys: Sequence[float], src: str, dst: str = WGS84) -> tuple[list[float],
                                                                                                    list[float]]:
    """Coordinates from ``src`` to ``dst`` (x = easting / longitude first)."""
    if src == dst:
        return list(xs), list(ys)
    tx, ty = _transformer(src, dst).transform(list(xs), list(ys))
    return [float(v) for v in tx], [float(v) for v in ty]


def box_to_wgs84(minx: float, miny: float, maxx: float, maxy: float, crs: str, *, densify: int = 0) -> sgeom.Polygon:
    """The box ``[minx, maxx] x [miny, maxy]`` of ``crs`` as a polygon in EPSG:4326.

    ``densify`` adds points along each edge (a projected scene's edges are curves in longitude/latitude).
    """
    n = max(1, densify + 1)
    ring = ([(minx + (maxx - minx) * i / n, miny) for i in range(n)]
            + [(maxx, miny + (maxy - miny) * i / n) for i in range(n)]
            + [(maxx - (maxx - minx) * i / n, maxy) for i in range(n)]
            + [(minx, maxy - (maxy - miny) * i / n) for i in range(n)])
    xs, ys = transform_points([p[0] for p in ring], [p[1] for p in ring], crs)
    if not all(math.isfinite(v) for v in (*xs, *ys)):
        raise GeoError(f"the box {minx, miny, maxx, maxy} of {crs} has no position in EPSG:4326")
    return orient(sgeom.Polygon(zip(xs, ys, strict=True)), 1.0)


def utm_crs(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone CRS of a point (EPSG:326zz north, 327zz south)."""
    zone = min(60, max(1, int((lon + 180.0) // 6.0) + 1))
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


def area_m2(geom: BaseGeometry) -> float:
    """Area in square metres of an EPSG:4326 geometry, computed in the UTM zone of its centroid."""
    import numpy as np
    import shapely

    c = geom.centroid
    fwd = _transformer(WGS84, utm_crs(c.x, c.y))
    projected = shapely.transform(geom, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    return float(projected.area)


def rfc7946(geom: BaseGeometry) -> BaseGeometry:
    """``geom`` with polygon rings oriented by the right-hand rule (exterior counter-clockwise)."""
    if isinstance(geom, sgeom.Polygon):
        return orient(geom, 1.0)
    if isinstance(geom, sgeom.MultiPolygon):
        return sgeom.MultiPolygon([orient(p, 1.0) for p in geom.geoms])
    return geom


def to_geojson(geom: BaseGeometry, ndigits: int = 7) -> dict[str, Any]:
    """An RFC 7946 geometry object (right-hand rings, coordinates rounded to ``ndigits`` places, about 1 cm)."""
    mapped = sgeom.mapping(rfc7946(geom))

    def rounded(c: Any) -> Any:
        if isinstance(c, list | tuple) and c and isinstance(c[0], int | float):
            return [round(float(v), ndigits) for v in c]
        return [rounded(x) for x in c]

    return {"type": mapped["type"], "coordinates": rounded(mapped["coordinates"])}


def bbox_of(geojson: dict[str, Any]) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a GeoJSON geometry."""
    return tuple(float(v) for v in sgeom.shape(geojson).bounds)  # type: ignore[return-value]


# -- validation -------------------------------------------------------------------------------------


def _ring_area2(ring: Sequence[Sequence[float]]) -> float:
    """Twice the signed area of a ring (positive: counter-clockwise)."""
    return sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:], strict=False))


def _ring_problems(ring: Sequence[Sequence[float]], where: str, exterior: bool) -> list[str]:
    out = []
    if len(ring) < 4:
        out.append(f"{where}: a ring needs at least 4 positions, has {len(ring)}")
        return out
    if list(ring[0]) != list(ring[-1]):
        out.append(f"{where}: ring is not closed")
    for lon, lat, *_ in ring:
        if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
            out.append(f"{where}: position ({lon}, {lat}) is out of range")
            break
    area = _ring_area2(ring)
    if exterior and area <= 0:
        out.append(f"{where}: exterior ring is not counter-clockwise")
    if not exterior and area >= 0:
        out.append(f"{where}: hole is not clockwise")
    return out


def _polygon_problems(rings: Sequence[Any], where: str) -> list[str]:
    out: list[str] = []
    for i, ring in enumerate(rings):
        out += _ring_problems(ring, f"{where} ring {i}", exterior=i == 0)
    return out


def geometry_problems(geom: dict[str, Any], where: str = "geometry") -> list[str]:
    """What breaks RFC 7946 in a (Multi)Polygon geometry: unclosed or wrongly wound rings, positions out of range."""
    kind = geom.get("type")
    if kind == "Polygon":
        return _polygon_problems(geom["coordinates"], where)
    if kind == "MultiPolygon":
        return [p for i, poly in enumerate(geom["coordinates"]) for p in _polygon_problems(poly, f"{where}[{i}]")]
    return [f"{where}: expected a Polygon or MultiPolygon, got {kind!r}"]


def feature_collection_problems(doc: dict[str, Any]) -> list[str]:
    """RFC 7946 problems of a FeatureCollection of polygons (an empty list when it is valid)."""
    if doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        return ["not a FeatureCollection with a features list"]
    out: list[str] = []
    for i, feat in enumerate(doc["features"]):
        if feat.get("type") != "Feature" or not isinstance(feat.get("properties"), dict | None):
            out.append(f"feature {i}: not a Feature with properties")
            continue
        out += geometry_problems(feat.get("geometry") or {}, f"feature {i}")
    return out


# -- areas of interest ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaOfInterest:
    """Where to look, in EPSG:4326: an exact geometry and its bounding box (W, S, E, N)."""

    geometry: BaseGeometry
    bbox: tuple[float, float, float, float]
    description: str

    def intersects(self, footprint: dict[str, Any] | None) -> bool:
        """Whether a chip's footprint (GeoJSON, EPSG:4326) touches the area."""
        return footprint is not None and self.geometry.intersects(sgeom.shape(footprint))

    def to_dict(self) -> dict[str, Any]:
        return {"bbox": list(self.bbox), "geometry": to_geojson(self.geometry), "description": self.description}


def parse_bbox(value: str | Sequence[float]) -> AreaOfInterest:
    """``"W,S,E,N"`` (or four numbers) in degrees as an area of interest."""
    parts: Iterable[Any] = value.replace(";", ",").split(",") if isinstance(value, str) else value
    try:
        w, s, e, n = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise GeoError(f"bbox {value!r} is not four numbers W,S,E,N in degrees (e.g. -120.5,37.2,-120.4,37.3)")\
            from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise GeoError(f"bbox {value!r} has a value that is not a finite number")
    if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
        raise GeoError(f"bbox {value!r} is out of range: longitudes in [-180, 180], latitudes in [-90, 90], "
                       "in the order W,S,E,N")
    if w >= e or s >= n:
        raise GeoError(f"bbox {value!r} is empty or reversed: it must be W,S,E,N with W < E and S < N "
                       "(boxes across the antimeridian: give two searches)")
    return AreaOfInterest(sgeom.box(w, s, e, n), (w, s, e, n), f"bbox {w},{s},{e},{n}")


def aoi_from_geojson(doc: dict[str, Any], description: str = "GeoJSON area") -> AreaOfInterest:
    """An area of interest from a GeoJSON geometry, Feature or FeatureCollection (EPSG:4326, as RFC 7946 says)."""
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features") or [] if isinstance(f, dict)]
    elif kind == "Feature":
        geoms = [doc.get("geometry")]
    elif kind in ("Polygon", "MultiPolygon"):
        geoms = [doc]
    else:
        raise GeoError(f"{description}: expected a GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection, "
                       f"got {kind!r}")
    try:
        shapes = [sgeom.shape(g) for g in geoms if g]
    except Exception as exc:  # noqa: BLE001 - shapely's errors are the reason
        raise GeoError(f"{description}: not a valid geometry ({exc})") from None
    polys = [s for s in shapes if isinstance(s, sgeom.Polygon | sgeom.MultiPolygon) and not s.is_empty]
    if not polys:
        raise GeoError(f"{description}: holds no polygon")
    from shapely.ops import unary_union

    geom = unary_union([p if p.is_valid else p.buffer(0) for p in polys])
    w, s, e, n = geom.bounds
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise GeoError(f"{description}: coordinates are not longitude/latitude in degrees (EPSG:4326); "
                       f"bounds {geom.bounds}")
    return AreaOfInterest(geom, (w, s, e, n), description)


def load_aoi(path: str | Path) -> AreaOfInterest:
    """An area of interest from a GeoJSON file."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"area of interest file {p} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeoError(f"{p} is not a GeoJSON file ({exc})") from None
    return aoi_from_geojson(doc, description=str(p))


__all__ = ["WGS84", "AreaOfInterest", "GeoError", "aoi_from_geojson", "area_m2", "bbox_of", "box_to_wgs84",
           "feature_collection_problems", "geometry_problems", "load_aoi", "parse_bbox", "rfc7946",
           "to_geojson", "transform_points", "utm_crs"]

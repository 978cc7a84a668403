"""The catalog's scenes (large georeferenced rasters) and their chips (catalog images that are windows of a scene)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.catalog.connection import CatalogBase


@dataclass(frozen=True)
class SceneRecord:
    """One catalogued scene: where it is, what its header says, and where it lies on Earth."""

    id: str  # sha256 of the file bytes
    uri: str
    width: int
    height: int
    bands: int
    dtype: str
    crs: str | None = None
    transform: list[float] | None = None  # GDAL order
    nodata: float | None = None
    gsd: float | None = None
    footprint: dict[str, Any] | None = None  # GeoJSON polygon, EPSG:4326
    bbox: list[float] | None = None  # west, south, east, north
    file_size: int | None = None
    mtime: float | None = None
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    chips: int = 0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class ChipRecord:
    """One chip: a catalog image that is a window of a scene, with its bounds and its EPSG:4326 polygon."""

    id: str
    uri: str
    scene_id: str
    window: list[int]  # x, y, w, h in scene pixels
    size: int
    source: str | None
    bounds: list[float] | None = None  # in the scene's CRS
    crs: str | None = None
    footprint: dict[str, Any] | None = None
    bbox: list[float] | None = None  # west, south, east, north
    metadata: dict[str, Any] = field(default_factory=dict)


_SCENE_COLS = ("id, uri, width, height, bands, dtype, crs, transform, nodata, gsd, footprint, west, south, east, "
               "north, file_size, mtime, source, metadata")


def _scene_from_row(row: Any, chips: int = 0) -> SceneRecord:
    bbox = [row["west"], row["south"], row["east"], row["north"]] if row["west"] is not None else None
    return SceneRecord(
        id=row["id"], uri=row["uri"], width=row["width"], height=row["height"], bands=row["bands"],
        dtype=row["dtype"], crs=row["crs"], transform=json.loads(row["transform"]) if row["transform"] else None,
        nodata=row["nodata"], gsd=row["gsd"], footprint=json.loads(row["footprint"]) if row["footprint"] else None,
        bbox=bbox, file_size=row["file_size"], mtime=row["mtime"], source=row["source"],
        metadata=json.loads(row["metadata"] or "{}"), chips=chips)


class ScenesMixin(CatalogBase):
    """Scenes and chips: add, find by id, prefix, path or area, and each chip's window and geometry."""

    # -- scenes -----------------------------------------------------------------------------------

    def add_scene(self, scene: SceneRecord) -> bool:
        """Insert a scene unless its id is known; returns whether it was new."""
        b: list[float | None] = list(scene.bbox) if scene.bbox else [None] * 4
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO scenes ({_SCENE_COLS}, added_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (scene.id, scene.uri, scene.width, scene.height, scene.bands, scene.dtype, scene.crs,
                 json.dumps(scene.transform) if scene.transform else None, scene.nodata, scene.gsd,
                 json.dumps(scene.footprint) if scene.footprint else None, *b, scene.file_size, scene.mtime,
                 scene.source, json.dumps(scene.metadata, default=str), time.time()))
            if not cur.rowcount:  # known content: remember where it is now, and point its chips there
                old = conn.execute("SELECT uri FROM scenes WHERE id = ?", (scene.id,)).fetchone()["uri"]
                conn.execute("UPDATE scenes SET uri = ?, file_size = ?, mtime = ? WHERE id = ?",
                             (scene.uri, scene.file_size, scene.mtime, scene.id))
                if old != scene.uri:
                    conn.execute("UPDATE images SET uri = ? || substr(uri, ?) WHERE scene_id = ?",
                                 (scene.uri, len(old) + 1, scene.id))
        return bool(cur.rowcount)

    def update_scene_metadata(self, scene_id: str, metadata: dict[str, Any]) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE scenes SET metadata = ? WHERE id = ?", (json.dumps(metadata, default=str), scene_id))

    def get_scene(self, scene_id: str) -> SceneRecord | None:
        rows = self.query(f"SELECT {_SCENE_COLS} FROM scenes WHERE id = ?", (scene_id,))
        return _scene_from_row(rows[0], self.count_chips(scene_id)) if rows else None

    def scene_ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        rows = self.query("SELECT id FROM scenes WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                          (prefix, prefix + "~", limit))
        return [r["id"] for r in rows]

    def scene_by_uri(self, uri: str) -> SceneRecord | None:
        rows = self.query(f"SELECT {_SCENE_COLS} FROM scenes WHERE uri = ? ORDER BY added_at DESC LIMIT 1", (uri,))
        return _scene_from_row(rows[0]) if rows else None

    def list_scenes(self) -> list[SceneRecord]:
        counts = {r["scene_id"]: r["n"] for r in self.query(
            "SELECT scene_id, COUNT(*) AS n FROM images WHERE scene_id IS NOT NULL AND status = 'ok' "
            "GROUP BY scene_id")}
        return [_scene_from_row(r, counts.get(r["id"], 0))
                for r in self.query(f"SELECT {_SCENE_COLS} FROM scenes ORDER BY added_at, id")]

    def count_scenes(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM scenes")[0][0])

    # -- chips ------------------------------------------------------------------------------------

    def add_chips(self, chips: Iterable[ChipRecord]) -> int:
        """Insert chips not yet present (as accepted images of format CHIP); returns how many were new."""
        added = 0
        now = time.time()
        with self.transaction() as conn:
            for c in chips:
                b: list[float | None] = list(c.bbox) if c.bbox else [None] * 4
                cur = conn.execute(
                    "INSERT OR IGNORE INTO images (id, uri, width, height, bands, format, mode, source, bounds, crs, "
                    "metadata, status, added_at, scene_id, chip_window, footprint, west, south, east, north) "
                    "VALUES (?, ?, ?, ?, 3, 'CHIP', 'RGB', ?, ?, ?, ?, 'ok', ?, ?, ?, ?, ?, ?, ?, ?)",
                    (c.id, c.uri, c.size, c.size, c.source, json.dumps(c.bounds) if c.bounds else None, c.crs,
                     json.dumps(c.metadata), now, c.scene_id, json.dumps(c.window),
                     json.dumps(c.footprint) if c.footprint else None, *b))
                added += cur.rowcount
        return added

    def count_chips(self, scene_id: str | None = None) -> int:
        if scene_id is None:
            return int(self.query("SELECT COUNT(*) FROM images WHERE scene_id IS NOT NULL AND status = 'ok'")[0][0])
        return int(self.query("SELECT COUNT(*) FROM images WHERE scene_id = ? AND status = 'ok'", (scene_id,))[0][0])

    def chip_rows(self, *, scene_ids: Sequence[str] | None = None,
                  bbox: Sequence[float] | None = None) -> list[dict[str, Any]]:
        """Chips (id, uri, scene id, window, CRS bounds, footprint, bbox) of some scenes and/or touching a box."""
        where: list[str] = ["scene_id IS NOT NULL", "status = 'ok'"]
        params: list[Any] = []
        if scene_ids is not None:
            if not scene_ids:
                return []
            where.append(f"scene_id IN ({','.join('?' * len(scene_ids))})")
            params.extend(scene_ids)
        if bbox is not None:
            w, s, e, n = bbox
            where.append("east >= ? AND west <= ? AND north >= ? AND south <= ?")
            params.extend([w, e, s, n])
        rows = self.query(
            "SELECT id, uri, scene_id, chip_window, bounds, crs, footprint, west, south, east, north FROM images "
            f"WHERE {' AND '.join(where)} ORDER BY scene_id, id", params)
        return [{"id": r["id"], "uri": r["uri"], "scene_id": r["scene_id"], "window": json.loads(r["chip_window"]),
                 "bounds": json.loads(r["bounds"]) if r["bounds"] else None, "crs": r["crs"],
                 "footprint": json.loads(r["footprint"]) if r["footprint"] else None,
                 "bbox": [r["west"], r["south"], r["east"], r["north"]] if r["west"] is not None else None}
                for r in rows]

    def chip_geometry(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{id: {scene_id, window, footprint}}`` for the chips among ``image_ids`` (plain images are absent)."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(image_ids), 900):
            chunk = list(image_ids[start:start + 900])
            for r in self.query(
                f"SELECT id, scene_id, chip_window, footprint FROM images WHERE id IN ({','.join('?' * len(chunk))}) "
                "AND scene_id IS NOT NULL", chunk):
                out[r["id"]] = {"scene_id": r["scene_id"], "window": json.loads(r["chip_window"]),
                                "footprint": json.loads(r["footprint"]) if r["footprint"] else None}
        return out


__all__ = ["ChipRecord", "SceneRecord", "ScenesMixin"]

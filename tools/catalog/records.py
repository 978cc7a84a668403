"""Typed records read from the catalog (images, jobs) and their conversion from SQLite rows."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageRecord:
    """One catalogued image (accepted or rejected)."""

    id: str
    uri: str
    width: int | None
    height: int | None
    bands: int | None
    format: str | None
    mode: str | None
    source: str | None
    status: str
    reason: str | None = None
    bounds: list[float] | None = None
    crs: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    scene_id: str | None = None  # chips: the scene they are a window of
    window: list[int] | None = None  # chips: x, y, w, h in scene pixels
    footprint: dict[str, Any] | None = None  # chips: GeoJSON polygon in EPSG:4326


@dataclass(frozen=True)
class Job:
    """A durable record of long work: kind, state, progress, parameters, outcome."""

    id: str
    kind: str
    state: str
    done: int
    total: int | None
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    started_at: float | None
    updated_at: float | None
    finished_at: float | None
    owner_pid: int | None = None
    owner_host: str | None = None
    heartbeat_at: float | None = None
    cancel_requested_at: float | None = None
    origin: str | None = None


def image_from_row(row: sqlite3.Row, labels: list[str] | None = None) -> ImageRecord:
    return ImageRecord(
        id=row["id"],
        uri=row["uri"],
        width=row["width"],
        height=row["height"],
        bands=row["bands"],
        format=row["format"],
        mode=row["mode"],
        source=row["source"],
        status=row["status"],
        reason=row["reason"],
        bounds=json.loads(row["bounds"]) if row["bounds"] else None,
        crs=row["crs"],
        metadata=json.loads(row["metadata"] or "{}"),
        labels=labels or [],
        **_chip_fields(row),
    )


def _chip_fields(row: sqlite3.Row) -> dict[str, Any]:
    """A chip's scene, window and footprint (absent from rows of plain images and of older queries)."""
    if "scene_id" not in row.keys() or row["scene_id"] is None:
        return {}
    return {"scene_id": row["scene_id"], "window": json.loads(row["chip_window"]) if row["chip_window"] else None,
            "footprint": json.loads(row["footprint"]) if row["footprint"] else None}


def job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        kind=row["kind"],
        state=row["state"],
        done=row["done"],
        total=row["total"],
        params=json.loads(row["params"] or "{}"),
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        owner_pid=row["owner_pid"],
        owner_host=row["owner_host"],
        heartbeat_at=row["heartbeat_at"],
        cancel_requested_at=row["cancel_requested_at"],
        origin=row["origin"],
    )

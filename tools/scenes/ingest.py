"""Ingesting one scene: its header and footprint become a scene row, its grid of windows becomes chips.

Every window is read once at full resolution (through GDAL's bounded block cache): windows that are mostly
nodata are skipped and counted, windows GDAL cannot decode (a truncated or corrupt file) are reported with
GDAL's reason, and the rest become chips. Nothing is copied: a chip is a window of the scene file.
A scene whose path, size and modification time are already known is not hashed again; chip ids are stable,
so re-ingesting the same scene with the same parameters adds nothing.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.catalog import Catalog, ChipRecord, SceneRecord
from tools.scenes.chips import ChipParams, ChipRef, Grid, chip_id, chip_uri, make_grid
from tools.scenes.raster import (
    DEFAULT_MAX_SCENE_PIXELS,
    DEFAULT_SCENE_MIN_SIDE,
    SceneInfo,
    file_identity,
    gdal_env,
    inspect_scene,
    sha256_file,
)
from tools.scenes.read import read_window
from tools.scenes.stretch import choose_bands, compute_stretch

_BATCH = 512


@dataclass(frozen=True)
class SceneOptions:
    """How ingestion treats scenes: which files are scenes, how they are chipped, how large they may be.

    ``force``: True makes every file a scene, False none, None decides by size (a longer side of at least
    ``min_side`` pixels).
    """

    chips: ChipParams = field(default_factory=ChipParams)
    force: bool | None = None
    min_side: int = DEFAULT_SCENE_MIN_SIDE
    max_pixels: int = DEFAULT_MAX_SCENE_PIXELS


@dataclass
class SceneReport:
    """What ingesting one scene did; part of the ingestion report."""

    path: str
    scene_id: str | None = None
    new_scene: bool = False
    width: int = 0
    height: int = 0
    bands: int = 0
    dtype: str = ""
    crs: str | None = None
    gsd: float | None = None
    chip_size: int = 0
    window: int = 0
    stride: int = 0
    windows: int = 0
    chips_added: int = 0
    chips_existing: int = 0
    skipped_nodata: int = 0
    broken: list[dict[str, Any]] = field(default_factory=list)
    stretch: str = "none"
    read_bands: list[int] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        return out


def _scene_id(catalog: Catalog, path: Path) -> str:
    """The scene's content hash, reused when the same path has the same size and modification time."""
    size, mtime = file_identity(path)
    known = catalog.scene_by_uri(str(path))
    if known is not None and known.file_size == size and known.mtime == mtime:
        return known.id
    return sha256_file(path)


def _footprints(bounds: list[tuple[float, float, float, float]], crs: str | None) -> list[dict[str, Any] | None]:
    """EPSG:4326 polygons of many windows' bounds, in one transform call."""
    if crs is None or not bounds:
        return [None] * len(bounds)
    from tools.geo import transform_points

    xs = [v for b in bounds for v in (b[0], b[2], b[2], b[0])]
    ys = [v for b in bounds for v in (b[1], b[1], b[3], b[3])]
    lon, lat = transform_points(xs, ys, crs)
    out: list[dict[str, Any] | None] = []
    for i in range(len(bounds)):
        ring = [[round(lon[4 * i + k], 7), round(lat[4 * i + k], 7)] for k in range(4)]
        if sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:] + ring[:1], strict=True)) < 0:
            ring.reverse()  # right-hand rule (a CRS with a flipped axis mirrors the window)
        out.append({"type": "Polygon", "coordinates": [[*ring, ring[0]]]})
    return out


def _window_bounds(info: SceneInfo, x: int, y: int, w: int, h: int) -> tuple[float, float, float, float]:
    x0, dx, rx, y0, ry, dy = info.transform
    xs = [x0 + px * dx + py * rx for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
    ys = [y0 + px * ry + py * dy for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h))]
    return min(xs), min(ys), max(xs), max(ys)


def _chip_records(info: SceneInfo, scene_id: str, found: list[tuple[int, int, ChipRef]], source: str | None
                  ) -> list[ChipRecord]:
    bounds = [_window_bounds(info, r.x, r.y, r.w, r.h) for _, _, r in found]
    footprints = _footprints(bounds, info.crs)
    out = []
    for (row, col, ref), b, fp in zip(found, bounds, footprints, strict=True):
        bbox = None
        if fp is not None:
            ring = fp["coordinates"][0]
            bbox = [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring),
                    max(p[1] for p in ring)]
        out.append(ChipRecord(
            id=chip_id(scene_id, ref.x, ref.y, ref.w, ref.h, size=ref.size, bands=ref.bands, stretch=ref.stretch),
            uri=chip_uri(ref.path, ref.x, ref.y, ref.w, ref.h, size=ref.size, bands=ref.bands, stretch=ref.stretch),
            scene_id=scene_id, window=[ref.x, ref.y, ref.w, ref.h], size=ref.size, source=source,
            bounds=list(b) if info.crs else None, crs=info.crs, footprint=fp, bbox=bbox,
            metadata={"scene": Path(info.path).name, "row": row, "col": col}))
    return out


def _scan(ds: Any, grid: Grid, refs: Callable[[int, int, int, int], ChipRef], max_nodata: float,
          report: SceneReport, on_window: Callable[[], None] | None
          ) -> list[tuple[int, int, ChipRef]]:
    """Read every window once: keep those with enough data, count nodata ones, report broken ones."""
    kept = []
    for row, col, x, y, w, h in grid.windows():
        ref = refs(x, y, w, h)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _, valid = read_window(ds, ref, ref.w if ref.w == ref.h else max(ref.w, ref.h))
        except Exception as exc:  # noqa: BLE001 - GDAL's message is the reason
            report.broken.append({"window": [x, y, w, h], "row": row, "col": col,
                                  "reason": " ".join(str(exc).split())[:300]})
        else:
            if 1.0 - float(np.mean(valid)) > max_nodata:
                report.skipped_nodata += 1
            else:
                kept.append((row, col, ref))
        if on_window is not None:
            on_window()
    return kept


def ingest_scene(
    catalog: Catalog, path: Path, *, params: ChipParams | None = None, source: str | None = None,
    max_pixels: int = DEFAULT_MAX_SCENE_PIXELS, on_window: Callable[[], None] | None = None,
    metadata: dict[str, Any] | None = None,
) -> SceneReport:
    """Catalog one scene and its chips (``path`` must already be checked against the data roots).

    Raises :class:`~tools.scenes.raster.SceneRejected` when the file cannot be a scene (bomb, dtype,
    unreadable header), and :class:`~tools.scenes.chips.ChipError` for parameters that do not fit it.
    """
    import rasterio

    params = params or ChipParams()
    started = time.perf_counter()
    info = inspect_scene(path, max_pixels=max_pixels)
    report = SceneReport(path=str(path), width=info.width, height=info.height, bands=info.bands, dtype=info.dtype,
                         crs=info.crs, gsd=info.gsd, chip_size=params.size)
    if info.crs is None:
        report.warnings.append("the scene has no CRS: its chips can be searched, but have no coordinates")
    with gdal_env(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = rasterio.open(path)
    with ds:
        colorinterp = tuple(c.name for c in ds.colorinterp)
        bands = choose_bands(params, info.bands, colorinterp)
        grid = make_grid(info.width, info.height, params, info.gsd)
        stretch = compute_stretch(ds, bands, params, info.nodata)
        report.read_bands, report.stretch = list(bands), stretch
        report.window, report.stride, report.windows = grid.window, grid.stride, len(grid)
        scene_id = report.scene_id = _scene_id(catalog, path)
        known = catalog.get_scene(scene_id)
        scene = SceneRecord(
            id=scene_id, uri=str(path), width=info.width, height=info.height, bands=info.bands, dtype=info.dtype,
            crs=info.crs, transform=list(info.transform) if info.crs else None, nodata=info.nodata, gsd=info.gsd,
            footprint=info.footprint, bbox=_bbox(info.footprint), file_size=info.file_size, mtime=info.mtime,
            source=source, metadata={**(metadata or {}), "tiled": info.tiled, "overviews": info.overviews,
                                     "chipping": []})
        report.new_scene = catalog.add_scene(scene)
        if _already_cut(known, params, stretch, report):
            report.seconds = time.perf_counter() - started
            return report

        def refs(x: int, y: int, w: int, h: int) -> ChipRef:
            return ChipRef(str(path), x, y, w, h, params.size, bands, stretch)

        kept = _scan(ds, grid, refs, params.max_nodata, report, on_window)
    for start in range(0, len(kept), _BATCH):
        records = _chip_records(info, scene_id, kept[start:start + _BATCH], source)
        added = catalog.add_chips(records)
        report.chips_added += added
        report.chips_existing += len(records) - added
    _remember_run(catalog, scene_id, known.metadata if known else scene.metadata, params, report)
    report.seconds = time.perf_counter() - started
    return report


def _already_cut(known: SceneRecord | None, params: ChipParams, stretch: str, report: SceneReport) -> bool:
    """Whether this file was already cut with these parameters (then nothing is read again)."""
    runs = [r for r in (known.metadata.get("chipping", []) if known else [])
            if r.get("params") == params.to_dict() and r.get("stretch") == stretch]
    if not runs:
        return False
    report.chips_existing, report.skipped_nodata = int(runs[-1]["chips"]), int(runs[-1]["skipped_nodata"])
    report.broken = list(runs[-1].get("broken", []))
    return True


def _bbox(footprint: dict[str, Any] | None) -> list[float] | None:
    if footprint is None:
        return None
    ring: Sequence[Sequence[float]] = footprint["coordinates"][0]
    return [min(p[0] for p in ring), min(p[1] for p in ring), max(p[0] for p in ring), max(p[1] for p in ring)]


def _remember_run(catalog: Catalog, scene_id: str, metadata: dict[str, Any], params: ChipParams,
                  report: SceneReport) -> None:
    """Keep the latest outcome per chipping parameters in the scene's metadata (broken windows included)."""
    runs = [r for r in metadata.get("chipping", []) if r.get("params") != params.to_dict()]
    runs.append({"params": params.to_dict(), "window": report.window, "stride": report.stride,
                 "windows": report.windows, "chips": report.chips_added + report.chips_existing,
                 "skipped_nodata": report.skipped_nodata, "broken": report.broken[:100],
                 "broken_count": len(report.broken), "stretch": report.stretch, "bands": report.read_bands,
                 "at": time.time()})
    catalog.update_scene_metadata(scene_id, {**metadata, "chipping": runs})


__all__ = ["SceneOptions", "SceneReport", "ingest_scene"]

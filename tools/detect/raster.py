"""Heat maps: a scene's chip scores as a georeferenced Cloud-Optimized GeoTIFF, one pixel per stride.

Each pixel covers ``stride x stride`` scene pixels and holds the mean over the chips that cover it of their
score (band 1) and probability (band 2); pixels no chip covers (skipped nodata, broken windows) are NaN.
The raster is in the scene's CRS with the scene's geotransform scaled by the stride, so QGIS overlays it
on the scene as it is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tools.detect.features import Detection
from tools.geo import GeoError


def infer_stride(windows: Sequence[Sequence[int]]) -> int:
    """The chipping stride: the most common gap between neighbouring window starts (the last, shifted-in
    window makes one smaller gap)."""
    gaps: Counter[int] = Counter()
    for axis in (0, 1):
        starts = sorted({int(w[axis]) for w in windows})
        gaps.update(b - a for a, b in zip(starts, starts[1:], strict=False))
    if not gaps:
        return int(max(windows[0][2], windows[0][3])) if windows else 1
    return max(1, gaps.most_common(1)[0][0])


def score_grid(detections: Sequence[Detection], width: int, height: int, stride: int) -> np.ndarray:
    """``(2, rows, cols)`` float32: mean score and mean probability of the chips covering each cell."""
    rows, cols = -(-height // stride), -(-width // stride)
    total = np.zeros((2, rows, cols), dtype=np.float64)
    count = np.zeros((rows, cols), dtype=np.int32)
    for d in detections:
        x, y, w, h = d.window
        c0, c1 = x // stride, min(cols, -(-(x + w) // stride))
        r0, r1 = y // stride, min(rows, -(-(y + h) // stride))
        total[0, r0:r1, c0:c1] += d.score
        total[1, r0:r1, c0:c1] += d.probability
        count[r0:r1, c0:c1] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (total / count[None]).astype(np.float32)
    out[:, count == 0] = np.nan
    return out


def write_score_cog(path: str | Path, detections: Sequence[Detection], *, width: int, height: int, crs: str | None,
                    transform: Sequence[float] | None, stride: int | None = None,
                    tags: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write one scene's score heat map as a COG; returns what was written."""
    if crs is None or transform is None:
        raise GeoError("the scene has no CRS, so its scores cannot be written as a georeferenced raster")
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import Affine

    stride = stride or infer_stride([d.window for d in detections])
    grid = score_grid(detections, width, height, stride)
    cell = Affine.from_gdal(*transform) @ Affine.scale(stride, stride)
    profile = {"driver": "GTiff", "width": grid.shape[2], "height": grid.shape[1], "count": 2, "dtype": "float32",
               "crs": crs, "transform": cell, "nodata": float("nan")}
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(grid)
            ds.set_band_description(1, "score")
            ds.set_band_description(2, "probability")
            ds.update_tags(**{k: str(v) for k, v in (tags or {}).items()})
        with mem.open() as src, rasterio.Env():
            rio_copy(src, str(path), driver="COG", COMPRESS="DEFLATE", PREDICTOR="3", BLOCKSIZE="256",
                     OVERVIEW_RESAMPLING="AVERAGE")
    return {"path": str(path), "width": grid.shape[2], "height": grid.shape[1], "stride": stride, "crs": crs,
            "cells_with_score": int(np.isfinite(grid[0]).sum())}


__all__ = ["infer_stride", "score_grid", "write_score_cog"]

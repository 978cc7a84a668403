"""Reading scene headers with rasterio: size, bands, dtype, CRS, geotransform, nodata, GSD, footprint; and sanity.

Only headers are read here; pixels are read window by window (:mod:`tools.scenes.read`). A header that
claims more pixels than a scene can have, or far more than its file could hold, is a decompression bomb;
complex (SAR) data is refused with the reason. GDAL's block cache is capped (:data:`GDAL_ENV`) so that
memory does not grow with the scene.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: GDAL options for every scene open: no sidecar-file hunting per open, GDAL errors as exceptions only
GDAL_ENV: dict[str, Any] = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "CPL_LOG_ERRORS": "OFF"}
#: GDAL's block cache in MB. GDAL reads it once, when the cache is first used, and its default is 5% of
#: RAM; a bounded cache keeps a reader's memory flat however large the scene (set before any read).
os.environ.setdefault("GDAL_CACHEMAX", "128")
# GDAL's warnings about odd headers are noise to users: what SkyScout cannot use it reports itself, with why.
# (warnings.catch_warnings is not thread-safe, and headers are read from ingestion's worker threads.)
logging.getLogger("rasterio._env").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="Dataset has no geotransform")
#: the most pixels a scene may have (100,000 x 100,000)
DEFAULT_MAX_SCENE_PIXELS = 10_000_000_000
#: a header claiming more than this many raw bytes per byte of file is a decompression bomb. Real data stays
#: far below; the most compressed real files are sparse GeoTIFFs (empty blocks not written), which still
#: hold 16 bytes of offsets per block, so they top out at (bytes of a block) / 16, about 10^5 for 512 px
#: blocks of 3 x 16-bit bands
MAX_COMPRESSION_RATIO = 1_000_000
#: files whose longer side reaches this many pixels are ingested as scenes
DEFAULT_SCENE_MIN_SIDE = 1024
#: suffixes rasterio is asked about when a file may be a scene
SCENE_SUFFIXES = frozenset({".tif", ".tiff", ".jpg", ".jpeg", ".png", ".webp", ".jp2", ".img", ".vrt"})
_PEEK_BYTES = 512 * 1024  # JPEG / PNG files smaller than this are tiles, not scenes: no header read


class SceneRejected(ValueError):
    """A file that cannot be used as a scene; ``reason`` says why in words a user can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SceneInfo:
    """What a scene's header says about it."""

    path: str
    width: int
    height: int
    bands: int
    dtype: str
    crs: str | None
    transform: tuple[float, float, float, float, float, float]  # GDAL order: x0, dx, rx, y0, ry, dy
    nodata: float | None
    gsd: float | None  # metres per pixel, when the scene is georeferenced
    bounds: tuple[float, float, float, float] | None  # in the scene's CRS
    footprint: dict[str, Any] | None  # GeoJSON polygon, EPSG:4326
    file_size: int
    mtime: float
    tiled: bool
    overviews: int
    has_mask: bool

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None


def sha256_file(path: str | Path, chunk: int = 8 << 20) -> str:
    """sha256 of a file read in chunks (a scene is never read into memory whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def gdal_env() -> Any:
    """A rasterio environment with :data:`GDAL_ENV`."""
    import rasterio

    return rasterio.Env(**GDAL_ENV)


def looks_like_scene(path: Path, min_side: int = DEFAULT_SCENE_MIN_SIDE) -> bool:
    """Whether ``path`` should be chipped: a raster whose longer side reaches ``min_side`` pixels.

    Small JPEG / PNG / WebP files are never opened here (tiles are the common case and must stay fast);
    TIFFs and large files get a header read. A header rasterio cannot read is not a scene (the image path
    reports why).
    """
    suffix = path.suffix.lower()
    if suffix not in SCENE_SUFFIXES or min_side <= 0:
        return False
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if suffix not in (".tif", ".tiff", ".jp2", ".img", ".vrt") and size < _PEEK_BYTES:
        return False
    try:
        import rasterio

        with gdal_env(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                return max(ds.width, ds.height) >= min_side
    except Exception:  # noqa: BLE001 - not readable as a raster: left to the image path
        return False


def _gsd(ds: Any) -> float | None:
    """Metres per pixel (the mean of x and y), or None without a CRS."""
    if ds.crs is None:
        return None
    dx, dy = abs(ds.transform.a), abs(ds.transform.e)
    if ds.crs.is_geographic:
        lat = math.radians((ds.bounds.top + ds.bounds.bottom) / 2)
        return float((dx * 111_320.0 * math.cos(lat) + dy * 110_574.0) / 2)
    factor = ds.crs.linear_units_factor[1] if ds.crs.linear_units_factor else 1.0
    return float((dx + dy) / 2 * factor)


def _footprint(ds: Any, crs: str | None) -> dict[str, Any] | None:
    if crs is None:
        return None
    from tools.geo import box_to_wgs84, to_geojson

    b = ds.bounds
    return to_geojson(box_to_wgs84(b.left, b.bottom, b.right, b.top, crs, densify=8))


def _check_size(ds: Any, file_size: int, max_pixels: int) -> None:
    pixels = int(ds.width) * int(ds.height)
    if ds.width <= 0 or ds.height <= 0:
        raise SceneRejected(f"invalid dimensions {ds.width}x{ds.height}")
    if pixels > max_pixels:
        raise SceneRejected(
            f"decompression bomb: the header claims {ds.width:,}x{ds.height:,} = {pixels:,} pixels, more than "
            f"the scene limit of {max_pixels:,} (SKYSCOUT_MAX_SCENE_PIXELS)")
    raw = pixels * ds.count * max(1, _itemsize(ds.dtypes[0]))
    if raw > file_size * MAX_COMPRESSION_RATIO:
        raise SceneRejected(
            f"decompression bomb: the header claims {pixels:,} pixels x {ds.count} bands ({raw:,} bytes raw) in "
            f"a file of {file_size:,} bytes, a ratio of {raw // max(1, file_size):,}:1 that no real scene has")


def _itemsize(dtype: str) -> int:
    import numpy as np

    return int(np.dtype(dtype).itemsize)


def inspect_scene(path: str | Path, *, max_pixels: int = DEFAULT_MAX_SCENE_PIXELS) -> SceneInfo:
    """Read and check a scene's header; raise :class:`SceneRejected` with the reason when it cannot be used."""
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    st = p.stat()
    try:
        with gdal_env(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning: reported as crs None
            with rasterio.open(p) as ds:
                _check_size(ds, st.st_size, max_pixels)
                dtypes = set(ds.dtypes)
                if any(d.startswith("complex") for d in dtypes):
                    raise SceneRejected(f"unsupported data type {sorted(dtypes)}: complex (e.g. SAR) values have no "
                                        "RGB rendering; convert to amplitude or intensity first")
                if len(dtypes) > 1:
                    raise SceneRejected(f"bands of different data types {sorted(dtypes)} are not supported")
                crs = ds.crs.to_string() if ds.crs else None
                flags = [str(f) for f in ds.mask_flag_enums[0]] if ds.count else []
                return SceneInfo(
                    path=str(p), width=int(ds.width), height=int(ds.height), bands=int(ds.count),
                    dtype=str(ds.dtypes[0]), crs=crs, transform=tuple(ds.transform.to_gdal()),
                    nodata=float(ds.nodata) if ds.nodata is not None else None, gsd=_gsd(ds),
                    bounds=tuple(ds.bounds) if crs else None,
                    footprint=_footprint(ds, crs), file_size=int(st.st_size), mtime=float(st.st_mtime),
                    tiled=bool(ds.profile.get("tiled", False)), overviews=len(ds.overviews(1)) if ds.count else 0,
                    has_mask=any("per_dataset" in f or "alpha" in f for f in flags),
                )
    except SceneRejected:
        raise
    except RasterioIOError as exc:
        raise SceneRejected(f"not a readable raster: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - GDAL's message is the reason
        raise SceneRejected(f"unreadable raster header: {exc}") from None


def file_identity(path: str | Path) -> tuple[int, float]:
    """(size, mtime) of a file: when both match a known scene, its id is reused without hashing again."""
    st = os.stat(path)
    return int(st.st_size), float(st.st_mtime)


__all__ = ["DEFAULT_MAX_SCENE_PIXELS", "DEFAULT_SCENE_MIN_SIDE", "GDAL_ENV", "MAX_COMPRESSION_RATIO", "SceneInfo",
           "SceneRejected", "file_identity", "gdal_env", "inspect_scene", "looks_like_scene", "sha256_file"]

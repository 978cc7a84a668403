"""XYZ map tiles (Web Mercator, 256 px PNG) rendered from a scene, with the stretch its chips use.

A tile is a warped window read: a ``WarpedVRT`` of the scene in EPSG:3857 with the tile's transform, so GDAL
reads only the source blocks under the tile (a COG is read by window, from the overview whose pixels are
closest to, and no coarser than, the tile's). The pixels go through the scene's band choice and per-scene
stretch (:func:`tools.scenes.stretch.to_rgb8`), so the map shows what the model sees; nodata and everything
outside the scene are transparent.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from tools.scenes.raster import GDAL_ENV
from tools.scenes.stretch import to_rgb8

#: half the width of the Web Mercator plane in metres
ORIGIN = 20037508.342789244
TILE = 256
#: the deepest zoom served (about 2 cm a pixel at the equator)
MAX_ZOOM = 24
#: Web Mercator's latitude limit
MAX_LAT = 85.0511287798066


class TileError(ValueError):
    """A tile address that does not exist (the message says why)."""


@dataclass(frozen=True)
class TileStyle:
    """How a scene's values become RGB: 1-based bands (one or three) and the stretch string of its chips."""

    bands: tuple[int, ...]
    stretch: str


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` of tile z/x/y in EPSG:3857 metres."""
    if not 0 <= z <= MAX_ZOOM:
        raise TileError(f"zoom must be between 0 and {MAX_ZOOM}, got {z}")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise TileError(f"tile {z}/{x}/{y} does not exist (x and y go from 0 to {n - 1} at zoom {z})")
    size = 2 * ORIGIN / n
    return (-ORIGIN + x * size, ORIGIN - (y + 1) * size, -ORIGIN + (x + 1) * size, ORIGIN - y * size)


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The tile at zoom ``z`` that holds a point (degrees)."""
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def native_zoom(gsd_m: float | None, lat: float) -> int:
    """The zoom whose pixels are closest to (no coarser than) the scene's ground sample distance."""
    if not gsd_m or gsd_m <= 0:
        return 18
    at_equator = 2 * ORIGIN / TILE  # metres per pixel at zoom 0
    z = math.log2(at_equator * math.cos(math.radians(max(-MAX_LAT, min(MAX_LAT, lat)))) / gsd_m)
    return int(min(MAX_ZOOM, max(0, math.ceil(z))))


def _overview_level(ds: Any, tile_res: float, native_res: float) -> int | None:
    """The coarsest overview (0-based) whose pixels are still finer than the tile's, or None for full res."""
    factors = ds.overviews(1) if ds.count else []
    best = None
    for level, factor in enumerate(factors):
        if native_res * factor <= tile_res:
            best = level
    return best


def _native_res_3857(ds: Any) -> float:
    """The scene's pixel size in Web Mercator metres near its centre (for choosing an overview)."""
    from rasterio.warp import calculate_default_transform

    transform, _, _ = calculate_default_transform(ds.crs, "EPSG:3857", ds.width, ds.height, *ds.bounds)
    return float(abs(transform.a))


_open_lock = threading.Lock()
_local = threading.local()


def _open(path: str, overview: int | None) -> Any:
    """A rasterio dataset per thread and (path, overview level), kept open for the next tiles."""
    import rasterio

    cache: OrderedDict[tuple[str, int | None], Any] | None = getattr(_local, "tiles", None)
    if cache is None:
        cache = _local.tiles = OrderedDict()
    key = (path, overview)
    ds = cache.get(key)
    if ds is not None:
        cache.move_to_end(key)
        return ds
    with rasterio.Env(**GDAL_ENV), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = rasterio.open(path, overview_level=overview) if overview is not None else rasterio.open(path)
    cache[key] = ds
    while len(cache) > 8:
        cache.popitem(last=False)[1].close()
    return ds


def close_tiles() -> None:
    """Close this thread's open datasets (e.g. before a scene file is replaced)."""
    cache = getattr(_local, "tiles", None)
    while cache:
        cache.popitem()[1].close()


def render_tile(path: str, z: int, x: int, y: int, style: TileStyle, *, size: int = TILE) -> np.ndarray | None:
    """Tile z/x/y of the scene at ``path`` as ``(size, size, 4)`` uint8 RGBA, or None when it holds no pixel
    of the scene. Raises :class:`TileError` for a tile that does not exist, and ``ValueError`` for a scene
    without a CRS (it has no place on a map)."""
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    base = _open(path, None)
    if base.crs is None:
        raise ValueError("this scene has no CRS, so it has no place on a map")
    res = (maxx - minx) / size
    level = _overview_level(base, res, _native_res_3857(base))
    ds = _open(path, level) if level is not None else base
    transform = Affine(res, 0.0, minx, 0.0, -res, maxy)
    with rasterio_env(), WarpedVRT(ds, crs="EPSG:3857", transform=transform, width=size, height=size,
                                   resampling=Resampling.bilinear, add_alpha=True) as vrt:
        alpha = vrt.read(vrt.count)
        if not alpha.any():
            return None
        data = vrt.read(list(style.bands))
    valid = alpha > 0
    if base.nodata is not None:
        nd = base.nodata
        valid &= ~(np.isnan(data).all(axis=0) if np.isnan(nd) else (data == nd).all(axis=0))
    rgb = to_rgb8(data, style.stretch, valid)
    return np.dstack([rgb, (valid * 255).astype(np.uint8)])


def rasterio_env() -> Any:
    import rasterio

    return rasterio.Env(**GDAL_ENV)


def png_bytes(rgba: np.ndarray | None, size: int = TILE) -> bytes:
    """A tile as PNG bytes (an empty tile is fully transparent)."""
    if rgba is None:
        return _empty_png(size)
    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


_EMPTY: dict[int, bytes] = {}


def _empty_png(size: int) -> bytes:
    with _open_lock:
        if size not in _EMPTY:
            buf = io.BytesIO()
            Image.new("RGBA", (size, size), (0, 0, 0, 0)).save(buf, format="PNG")
            _EMPTY[size] = buf.getvalue()
        return _EMPTY[size]


class TileCache:
    """The last ``capacity`` rendered tiles (PNG bytes), keyed by whatever identifies a scene's rendering."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Any, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: Any, data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


__all__ = ["MAX_ZOOM", "TILE", "TileCache", "TileError", "TileStyle", "close_tiles", "lonlat_to_tile",
           "native_zoom", "png_bytes", "render_tile", "tile_bounds"]

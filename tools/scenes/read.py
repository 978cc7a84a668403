"""Reading chips: one window of a scene, at full or reduced resolution, as 8-bit RGB, with its nodata mask.

Open datasets are kept per thread (a handful, keyed by path and modification time), so embedding thousands
of chips of one scene opens it once per reader thread or process. A reduced read (``min_size``) asks GDAL
for fewer pixels, which it serves from the overviews when the file has them: the analogue of a JPEG's
draft mode for a model that resizes to ``min_size`` anyway.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
from PIL import Image

from tools.scenes.chips import ChipRef, parse_chip_uri
from tools.scenes.raster import GDAL_ENV
from tools.scenes.stretch import to_rgb8

_local = threading.local()
_MAX_OPEN = 8


#: how often (seconds) an open dataset's file is checked for changes
_RECHECK_S = 1.0


class _Open:
    """An open dataset, what it was opened for, and what each read asks of it (looked up once)."""

    def __init__(self, ds: Any, mtime: float) -> None:
        self.ds = ds
        self.mtime = mtime
        self.checked = time.monotonic()
        flags = [str(f) for f in ds.mask_flag_enums[0]] if ds.count else []
        self.has_mask = any("per_dataset" in f or "alpha" in f for f in flags)
        self.nodata = ds.nodata


def _entry(path: str) -> _Open:
    import rasterio

    cache: OrderedDict[str, _Open] | None = getattr(_local, "datasets", None)
    if cache is None:
        cache = _local.datasets = OrderedDict()
    hit = cache.get(path)
    now = time.monotonic()
    if hit is not None and now - hit.checked < _RECHECK_S:
        cache.move_to_end(path)
        return hit
    mtime = os.stat(path).st_mtime
    if hit is not None and hit.mtime == mtime:
        hit.checked = now
        cache.move_to_end(path)
        return hit
    if hit is not None:
        hit.ds.close()
        del cache[path]
    with rasterio.Env(**GDAL_ENV), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entry = cache[path] = _Open(rasterio.open(path), mtime)
    while len(cache) > _MAX_OPEN:
        cache.popitem(last=False)[1].ds.close()
    return entry


def open_cached(path: str) -> Any:
    """A rasterio dataset for ``path``, opened once per thread (reopened when the file changed)."""
    return _entry(path).ds


def close_cached() -> None:
    """Close this thread's open datasets (e.g. before a scene file is replaced)."""
    cache = getattr(_local, "datasets", None)
    while cache:
        cache.popitem()[1].ds.close()


def valid_mask(ds: Any, data: np.ndarray, window: Any, out_shape: tuple[int, int] | None, *,
               has_mask: bool | None = None) -> np.ndarray:
    """Pixels that hold data: not every band equal to the nodata value, and inside the dataset's mask / alpha."""
    valid = np.ones(data.shape[1:], dtype=bool)
    if ds.nodata is not None:
        nd = ds.nodata
        valid &= ~(np.isnan(data).all(axis=0) if np.isnan(nd) else (data == nd).all(axis=0))
    if has_mask is None:
        has_mask = any("per_dataset" in str(f) or "alpha" in str(f) for f in ds.mask_flag_enums[0])
    if has_mask:
        kwargs: dict[str, Any] = {"window": window}
        if out_shape is not None:
            kwargs["out_shape"] = out_shape
        valid &= ds.dataset_mask(**kwargs) > 0
    return valid


def read_window(ds: Any, ref: ChipRef, out_side: int, *, has_mask: bool | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(bands, h, w)`` values of a chip's window resampled to ``out_side`` (average), and its valid mask."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    window = Window(ref.x, ref.y, ref.w, ref.h)
    same = out_side == ref.w == ref.h
    out_shape = None if same else (len(ref.bands), out_side, out_side)
    data = ds.read(list(ref.bands), window=window, out_shape=out_shape,
                   resampling=Resampling.average if not same else Resampling.nearest)
    return data, valid_mask(ds, data, window, None if same else (out_side, out_side), has_mask=has_mask)


def _out_side(ref: ChipRef, min_size: int | None) -> int:
    """The chip's size, halved while it stays at least ``min_size`` (as JPEG draft mode scales by 1/2^k)."""
    side = ref.size
    if min_size:
        while side // 2 >= min_size and side % 2 == 0 and side // 2 >= 1:
            side //= 2
    return side


def read_chip_array(uri: str, *, min_size: int | None = None) -> np.ndarray:
    """A chip URI as an ``(h, w, 3)`` uint8 array (nodata black)."""
    ref = parse_chip_uri(uri)
    entry = _entry(ref.path)
    data, valid = read_window(entry.ds, ref, _out_side(ref, min_size), has_mask=entry.has_mask)
    return to_rgb8(data, ref.stretch, valid)


def read_chip(uri: str, *, min_size: int | None = None) -> Image.Image:
    """A chip URI as an RGB image of its catalogued size (or smaller, down to ``min_size``)."""
    return Image.fromarray(read_chip_array(uri, min_size=min_size), mode="RGB")


__all__ = ["close_cached", "open_cached", "read_chip", "read_chip_array", "read_window", "valid_mask"]

"""From scene values to the 8-bit RGB a model sees: band choice, a per-scene percentile stretch, nodata.

The stretch is computed once per scene from a decimated read (GDAL serves it from the overviews when the
file has them), so it costs the same for a 1,000 px and a 100,000 px scene and is identical for every chip:
chips of one scene are comparable. It travels inside each chip's URI (``lo:hi`` per band), so a chip reads
back the same way anywhere.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from tools.scenes.chips import ChipError, ChipParams

#: the longer side of the decimated read the stretch is computed from
STRETCH_SAMPLE_SIDE = 1024


def default_bands(count: int, colorinterp: tuple[str, ...] = ()) -> tuple[int, ...]:
    """Bands shown as RGB when none are given: the red, green, blue bands if labelled, else 1,2,3 (or 1)."""
    if count < 3:
        return (1,)
    names = [c.lower() for c in colorinterp]
    if all(c in names for c in ("red", "green", "blue")):
        return (names.index("red") + 1, names.index("green") + 1, names.index("blue") + 1)
    return (1, 2, 3)


def choose_bands(params: ChipParams, count: int, colorinterp: tuple[str, ...] = ()) -> tuple[int, ...]:
    """The bands to read, checked against the scene's band count."""
    bands = params.bands or default_bands(count, colorinterp)
    bad = [b for b in bands if b > count]
    if bad:
        raise ChipError(f"band(s) {bad} requested but the scene has {count} band(s)")
    return bands


def needs_stretch(params: ChipParams, dtype: str) -> bool:
    return params.stretch == "percentile" or (params.stretch == "auto" and dtype != "uint8")


def compute_stretch(ds: Any, bands: tuple[int, ...], params: ChipParams, nodata: float | None) -> str:
    """The stretch string of a scene: ``none``, or ``lo:hi`` per band from a decimated read's percentiles."""
    if not needs_stretch(params, str(ds.dtypes[0])):
        return "none"
    scale = max(ds.width, ds.height) / STRETCH_SAMPLE_SIDE
    shape = (len(bands), max(1, round(ds.height / max(scale, 1))), max(1, round(ds.width / max(scale, 1))))
    from rasterio.enums import Resampling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = ds.read(list(bands), out_shape=shape, resampling=Resampling.nearest, masked=True)
    lo_p, hi_p = params.percentiles
    parts = []
    for i in range(len(bands)):
        band = data[i]
        values = band.compressed() if np.ma.isMaskedArray(band) else np.asarray(band).ravel()
        values = values[np.isfinite(values)]
        if nodata is not None:
            values = values[values != nodata]
        if values.size == 0:
            parts.append("0:1")
            continue
        lo, hi = np.percentile(values.astype(np.float64), [lo_p, hi_p])
        if hi <= lo:
            hi = lo + 1
        parts.append(f"{float(lo):.6g}:{float(hi):.6g}")
    return ",".join(parts)


def parse_stretch(text: str, n_bands: int) -> list[tuple[float, float]] | None:
    """``"lo:hi,lo:hi"`` -> pairs, ``"none"`` -> None."""
    if text == "none":
        return None
    try:
        pairs = [tuple(float(v) for v in part.split(":")) for part in text.split(",")]
    except ValueError:
        raise ChipError(f"malformed stretch {text!r}") from None
    if len(pairs) != n_bands or any(len(p) != 2 for p in pairs):
        raise ChipError(f"stretch {text!r} does not give lo:hi for each of {n_bands} band(s)")
    return [(p[0], p[1]) for p in pairs]


def to_rgb8(data: np.ndarray, stretch: str, valid: np.ndarray | None = None) -> np.ndarray:
    """``(bands, h, w)`` scene values -> ``(h, w, 3)`` uint8; nodata (``valid`` False) becomes black.

    Without a stretch, 8-bit values pass unchanged and other types are clipped to 0..255.
    """
    pairs = parse_stretch(stretch, data.shape[0])
    if pairs is None:
        out = data if data.dtype == np.uint8 else np.clip(np.nan_to_num(data), 0, 255).astype(np.uint8)
    else:
        out = np.empty(data.shape, dtype=np.uint8)
        for i, (lo, hi) in enumerate(pairs):
            band = np.nan_to_num(data[i].astype(np.float32))
            out[i] = np.clip((band - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
    if valid is not None and not valid.all():
        out = out * valid[None].astype(np.uint8)
    if out.shape[0] == 1:
        out = np.repeat(out, 3, axis=0)
    return np.ascontiguousarray(out.transpose(1, 2, 0))


__all__ = ["STRETCH_SAMPLE_SIDE", "choose_bands", "compute_stretch", "default_bands", "needs_stretch",
           "parse_stretch", "to_rgb8"]

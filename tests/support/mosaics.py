"""Real scenes for tests, the detection evaluation and the benchmarks: UC Merced tiles planted in a GeoTIFF.

Tiles are placed on a grid of 256 px cells at known positions in a UTM scene with 0.3 m pixels (UC Merced's
own resolution), written window by window (never the whole raster in memory). Variants: an 8-bit COG, a
tiled 16-bit 4-band GeoTIFF in B,G,R,NIR order with a nodata border, a stripped (non-tiled) 8-bit GeoTIFF,
and one without any CRS.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

CELL = 256
GSD = 0.3
EPSG = 32610  # WGS 84 / UTM 10N (California)
ORIGIN = (500_000.0, 4_200_000.0)  # upper-left corner, metres


@dataclass(frozen=True)
class Planted:
    """A tile planted in a scene: its pixel box and its class."""

    x: int
    y: int
    label: str
    source: str
    size: int = CELL


@dataclass
class Mosaic:
    """A scene file and what was planted where."""

    path: Path
    width: int
    height: int
    kind: str
    planted: list[Planted] = field(default_factory=list)
    border: int = 0
    crs: str | None = f"EPSG:{EPSG}"

    def class_cover(self, x: int, y: int, w: int, h: int) -> dict[str, float]:
        """Fraction of the window ``(x, y, w, h)`` covered by planted tiles of each class."""
        out: dict[str, float] = {}
        for p in self.planted:
            ix = max(0, min(x + w, p.x + p.size) - max(x, p.x))
            iy = max(0, min(y + h, p.y + p.size) - max(y, p.y))
            if ix and iy:
                out[p.label] = out.get(p.label, 0.0) + ix * iy / (w * h)
        return out

    def save_layout(self, path: Path) -> None:
        path.write_text(json.dumps({"scene": str(self.path), "width": self.width, "height": self.height,
                                    "kind": self.kind, "crs": self.crs, "border": self.border,
                                    "planted": [p.__dict__ for p in self.planted]}))


def val_tiles(shared: Path, *, per_class: int | None = None) -> list[tuple[Path, str]]:
    """UC Merced val tiles (path, label) from ``shared/ucm_captions/val.jsonl``, optionally a few per class."""
    root = shared / "ucm_captions"
    rows = [json.loads(line) for line in (root / "val.jsonl").read_text().splitlines() if line.strip()]
    taken: dict[str, int] = {}
    out = []
    for r in rows:
        if per_class is not None and taken.get(r["label"], 0) >= per_class:
            continue
        taken[r["label"]] = taken.get(r["label"], 0) + 1
        out.append((root / r["image"], r["label"]))
    return out


def _tile(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if rgb.size != (CELL, CELL):
            rgb = rgb.resize((CELL, CELL), Image.Resampling.BICUBIC)
        return np.asarray(rgb).transpose(2, 0, 1)


def layout(tiles: Sequence[tuple[Path, str]], cols: int, *, seed: int = 0, border: int = 0) -> list[Planted]:
    """Tiles in a shuffled order on a ``cols``-wide grid; the last row is filled with repeats of the first."""
    order = list(tiles)
    random.Random(seed).shuffle(order)
    rows = -(-len(order) // cols)
    cells = [order[i % len(order)] for i in range(rows * cols)]
    return [Planted(x=border + (i % cols) * CELL, y=border + (i // cols) * CELL, label=label, source=str(path))
            for i, (path, label) in enumerate(cells)]


def _profile(kind: str, width: int, height: int, crs: str | None) -> dict[str, object]:
    from rasterio.transform import from_origin

    prof: dict[str, object] = {"driver": "GTiff", "width": width, "height": height}
    if crs is not None:
        prof.update(crs=crs, transform=from_origin(ORIGIN[0], ORIGIN[1], GSD, GSD))
    if kind == "tiled16":
        prof.update(count=4, dtype="uint16", tiled=True, blockxsize=256, blockysize=256, compress="deflate",
                    predictor=2, nodata=0)
    elif kind == "stripped":
        prof.update(count=3, dtype="uint8", tiled=False, compress="deflate")
    else:  # cog (written as a tiled GTiff, then copied to a COG) and nocrs
        prof.update(count=3, dtype="uint8", tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    return prof


def _as16(rgb: np.ndarray) -> np.ndarray:
    """An 8-bit tile as 12-bit-like sensor counts in B,G,R,NIR order (never 0: 0 is nodata)."""
    r, g, b = (rgb[i].astype(np.uint16) * 16 + 100 for i in range(3))
    nir = ((rgb.astype(np.uint32).sum(axis=0) // 3) * 16 + 100).astype(np.uint16)
    return np.stack([b, g, r, nir])


def build_mosaic(out: Path, tiles: Sequence[tuple[Path, str]], *, cols: int, kind: str = "cog", seed: int = 0,
                 border: int = 0) -> Mosaic:
    """Write a scene of ``tiles`` (kind: cog, tiled16, stripped or nocrs) and return its layout."""
    import warnings

    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.windows import Window

    planted = layout(tiles, cols, seed=seed, border=border)
    rows = -(-len(planted) // cols)
    width, height = cols * CELL + 2 * border, rows * CELL + 2 * border
    crs = None if kind == "nocrs" else f"EPSG:{EPSG}"
    target = out.with_suffix(".tmp.tif") if kind == "cog" else out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning for nocrs
        with rasterio.open(target, "w", **_profile(kind, width, height, crs)) as ds:  # type: ignore[arg-type]
            for p in planted:
                data = _tile(Path(p.source))
                ds.write(_as16(data) if kind == "tiled16" else data, window=Window(p.x, p.y, CELL, CELL))
        if kind == "cog":
            with rasterio.open(target) as src:
                rio_copy(src, out, driver="COG", COMPRESS="DEFLATE", OVERVIEW_RESAMPLING="AVERAGE",
                         BLOCKSIZE="256")
            target.unlink()
    return Mosaic(path=out, width=width, height=height, kind=kind, planted=planted, border=border, crs=crs)


def write_bomb(path: Path, side: int = 1_000_000) -> Path:
    """A tiny TIFF whose header claims ``side`` x ``side`` 8-bit pixels in one strip (a decompression bomb)."""
    import struct

    entries = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, side), (279, 4, 1, 64)]
    ifd_offset = 8 + 64
    head = struct.pack("<2sHI", b"II", 42, ifd_offset) + bytes(64)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHII", tag, typ, count, value) if typ == 4 else struct.pack("<HHIHH", tag, typ,
                                                                                           count, value, 0)
    path.write_bytes(head + ifd + struct.pack("<I", 0))
    return path


__all__ = ["CELL", "EPSG", "GSD", "ORIGIN", "Mosaic", "Planted", "build_mosaic", "layout", "val_tiles",
           "write_bomb"]

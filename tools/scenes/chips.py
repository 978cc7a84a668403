"""Chipping: the grid of windows over a scene, chip ids, and the self-contained chip URI.

A chip is a window of a scene, never a copy of its pixels. Its URI says everything a reader needs to turn
it into the RGB image a model sees: ``<scene path>#window=x,y,w,h&size=S&bands=3,2,1&stretch=...``.
Its id is a hash of the scene id and those parameters, so the same scene chipped the same way gives the
same ids, and re-ingesting adds nothing.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from urllib.parse import parse_qs

#: what separates a scene's path from its chip parameters in a chip URI
CHIP_MARK = "#window="


class ChipError(ValueError):
    """Chipping parameters or a chip URI that cannot be used (the message says why)."""


@dataclass(frozen=True)
class ChipParams:
    """How to cut a scene into chips.

    ``size``: the chip's side in output pixels (what the catalog records and the model reads). ``overlap``:
    the fraction of a chip shared with its neighbour (0 <= overlap < 1). ``gsd``: resample so that one
    output pixel covers this many metres (None: the scene's own resolution). ``bands``: 1-based bands shown
    as R, G, B (one band is repeated to grey; None: 1,2,3, or 1 for a single-band scene). ``stretch``:
    ``auto`` (none for 8-bit data, else a per-band percentile stretch), ``none`` or ``percentile``.
    ``max_nodata``: chips with a larger nodata fraction are skipped.
    """

    size: int = 256
    overlap: float = 0.5
    gsd: float | None = None
    bands: tuple[int, ...] | None = None
    stretch: str = "auto"
    percentiles: tuple[float, float] = (2.0, 98.0)
    max_nodata: float = 0.5

    def __post_init__(self) -> None:
        if not 16 <= self.size <= 4096:
            raise ChipError(f"chip size must be between 16 and 4096 pixels, got {self.size}")
        if not 0 <= self.overlap < 1:
            raise ChipError(f"overlap must be at least 0 and below 1 (a fraction of the chip), got {self.overlap}")
        if self.gsd is not None and not (math.isfinite(self.gsd) and self.gsd > 0):
            raise ChipError(f"gsd must be a positive number of metres per pixel, got {self.gsd}")
        if self.bands is not None and (len(self.bands) not in (1, 3) or min(self.bands) < 1):
            raise ChipError(f"bands must be one or three 1-based band numbers (e.g. 3,2,1), got {self.bands}")
        if self.stretch not in ("auto", "none", "percentile"):
            raise ChipError(f"stretch must be auto, none or percentile, got {self.stretch!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ChipError(f"percentiles must be 0 <= low < high <= 100, got {self.percentiles}")
        if not 0 <= self.max_nodata <= 1:
            raise ChipError(f"max_nodata must be a fraction between 0 and 1, got {self.max_nodata}")

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "overlap": self.overlap, "gsd": self.gsd,
                "bands": list(self.bands) if self.bands else None, "stretch": self.stretch,
                "percentiles": list(self.percentiles), "max_nodata": self.max_nodata}


def parse_bands(text: str | None) -> tuple[int, ...] | None:
    """``"3,2,1"`` -> ``(3, 2, 1)``; None or empty -> None."""
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ChipError(f"bands {text!r} are not comma-separated band numbers, e.g. 3,2,1") from None


def axis_starts(length: int, window: int, stride: int) -> list[int]:
    """Window starts along one axis: every ``stride``, and the last window shifted in so no strip is dropped."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


@dataclass(frozen=True)
class Grid:
    """The windows of one scene: window side and stride in scene pixels, and the starts along each axis."""

    window: int
    stride: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.xs) * len(self.ys)

    def windows(self) -> list[tuple[int, int, int, int, int, int]]:
        """``(row, col, x, y, w, h)`` of every window, row by row (windows are clipped to small scenes)."""
        w, h = min(self.window, self.width), min(self.window, self.height)
        return [(r, c, x, y, w, h) for r, y in enumerate(self.ys) for c, x in enumerate(self.xs)]


def make_grid(width: int, height: int, params: ChipParams, scene_gsd: float | None) -> Grid:
    """The chip grid of a ``width`` x ``height`` scene; with ``params.gsd`` a window spans ``size * gsd /
    scene_gsd`` scene pixels, resampled to ``size``."""
    window = params.size
    if params.gsd is not None:
        if scene_gsd is None:
            raise ChipError("--gsd needs a georeferenced scene (this one has no CRS, so its pixel size is unknown)")
        window = max(1, round(params.size * params.gsd / scene_gsd))
    stride = max(1, round(window * (1 - params.overlap)))
    return Grid(window, stride, tuple(axis_starts(width, window, stride)), tuple(axis_starts(height, window, stride)),
                width, height)


@dataclass(frozen=True)
class ChipRef:
    """What a chip URI names: the scene file, the window, the output size, the bands and the stretch."""

    path: str
    x: int
    y: int
    w: int
    h: int
    size: int
    bands: tuple[int, ...]
    stretch: str  # "none" or "lo:hi,lo:hi,..." per band


def chip_uri(path: str, x: int, y: int, w: int, h: int, *, size: int, bands: tuple[int, ...], stretch: str) -> str:
    """The self-contained URI of a chip."""
    return f"{path}{CHIP_MARK}{x},{y},{w},{h}&size={size}&bands={','.join(map(str, bands))}&stretch={stretch}"


def is_chip_uri(uri: str) -> bool:
    return CHIP_MARK in str(uri)


def scene_path_of(uri: str) -> str:
    """The scene file a chip URI reads from (the URI itself when it is a plain file)."""
    return str(uri).rpartition(CHIP_MARK)[0] if is_chip_uri(uri) else str(uri)


def parse_chip_uri(uri: str) -> ChipRef:
    """Read a chip URI back (raises :class:`ChipError` when it is malformed)."""
    path, mark, rest = str(uri).rpartition(CHIP_MARK)
    if not mark or not path:
        raise ChipError(f"{uri!r} is not a chip URI (<scene path>{CHIP_MARK}x,y,w,h&size=...)")
    window, _, query = rest.partition("&")
    fields = parse_qs(query, keep_blank_values=True)
    try:
        x, y, w, h = (int(v) for v in window.split(","))
        size = int(fields["size"][0])
        bands = tuple(int(v) for v in fields["bands"][0].split(","))
        stretch = fields["stretch"][0]
    except (KeyError, ValueError, IndexError):
        raise ChipError(f"malformed chip URI {uri!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or size <= 0:
        raise ChipError(f"chip URI {uri!r} has an empty or negative window")
    return ChipRef(path, x, y, w, h, size, bands, stretch)


def chip_id(scene_id: str, x: int, y: int, w: int, h: int, *, size: int, bands: tuple[int, ...],
            stretch: str) -> str:
    """A chip's catalog id: sha256 of its scene's id and how it was cut (stable across re-ingestion)."""
    key = f"chip:{scene_id}:{x},{y},{w},{h}:{size}:{','.join(map(str, bands))}:{stretch}"
    return hashlib.sha256(key.encode()).hexdigest()


__all__ = ["CHIP_MARK", "ChipError", "ChipParams", "ChipRef", "Grid", "axis_starts", "chip_id", "chip_uri",
           "is_chip_uri", "make_grid", "parse_bands", "parse_chip_uri", "scene_path_of"]

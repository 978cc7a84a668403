"""Decoding and validating image files: every file is fully decoded before the catalog accepts it."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from tools.scenes.chips import is_chip_uri

# Truncated files must fail loudly, never be padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"})
SUPPORTED_FORMATS: frozenset[str] = frozenset({"JPEG", "MPO", "PNG", "TIFF", "WEBP"})
# Pixel modes we can turn into the RGB the models see. Others (LAB, HSV, ...) are rejected with a reason.
SUPPORTED_MODES: frozenset[str] = frozenset({
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
    "I", "I;16", "I;16B", "I;16L", "I;16N", "F",
})
#: Default upper bound on width x height; bigger files are treated as decompression bombs.
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default warning threshold


@dataclass(frozen=True)
class ImageInfo:
    """What decoding a file told us about it."""

    sha256: str
    width: int
    height: int
    bands: int
    format: str
    mode: str
    bounds: list[float] | None = None
    crs: str | None = None


class ImageRejected(ValueError):
    """A file that cannot be accepted as an image; ``reason`` says why in words a user can act on."""

    def __init__(self, reason: str, sha256: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sha256 = sha256


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inspect_bytes(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Fully decode ``data`` and describe it, or raise :class:`ImageRejected` with the reason."""
    digest = sha256_bytes(data)
    if not data:
        raise ImageRejected("empty file (0 bytes)", digest)
    with warnings.catch_warnings():
        # Our own max_pixels check below replaces Pillow's bomb warning.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageRejected(f"decompression bomb: {exc}", digest) from None
        except UnidentifiedImageError:
            raise ImageRejected("not a recognised image format (cannot identify image data)", digest) from None
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a rejection reason
            raise ImageRejected(f"unreadable image header: {exc}", digest) from None
        with img:
            fmt = img.format or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise ImageRejected(
                    f"unsupported format {fmt} (supported: {', '.join(sorted(SUPPORTED_FORMATS))})", digest
                )
            width, height = img.size
            if width <= 0 or height <= 0:
                raise ImageRejected(f"invalid dimensions {width}x{height}", digest)
            if width * height > max_pixels:
                raise ImageRejected(
                    f"decompression bomb: {width}x{height} = {width * height:,} pixels exceeds the limit "
                    f"of {max_pixels:,} (raise max_pixels if this image is genuine)", digest
                )
            if img.mode not in SUPPORTED_MODES:
                raise ImageRejected(
                    f"unsupported pixel mode {img.mode!r} (cannot be converted to RGB)", digest
                )
            try:
                img.load()
            except OSError as exc:
                raise ImageRejected(f"truncated or corrupt image data: {exc}", digest) from None
            except Exception as exc:  # noqa: BLE001
                raise ImageRejected(f"image data failed to decode: {exc}", digest) from None
            bounds, crs = _geotiff_georeference(img) if fmt == "TIFF" else (None, None)
            return ImageInfo(
                sha256=digest, width=width, height=height, bands=len(img.getbands()),
                format=fmt, mode=img.mode, bounds=bounds, crs=crs,
            )


def inspect_file(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read and decode one file (see :func:`inspect_bytes`)."""
    return inspect_bytes(Path(path).read_bytes(), max_pixels=max_pixels)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any supported mode to 8-bit RGB; high bit-depth bands are stretched (2nd-98th percentile)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = np.percentile(arr, [2, 98]) if arr.size else (0.0, 1.0)
        scaled = np.clip((arr - lo) / max(float(hi - lo), 1e-6), 0, 1) * 255
        return Image.fromarray(scaled.astype(np.uint8), mode="L").convert("RGB")
    return img.convert("RGB")


def load_rgb(path: str | Path, *, min_size: int | None = None) -> Image.Image:
    """Open a catalogued image as RGB (the form every model consumes): a file, or a chip of a scene.

    A chip URI (``<scene>#window=...``, see :mod:`tools.scenes.chips`) reads that window of the scene with
    its bands and stretch; ``min_size`` then reads it at a reduced resolution (from the overviews when the
    scene has them) while both sides stay at least ``min_size``.

    ``min_size`` lets a JPEG decode at a reduced scale (1/2, 1/4, 1/8 in the DCT, much cheaper than a full
    decode and resize) as long as both sides stay at least ``min_size`` pixels: for a model that resizes to
    ``min_size`` anyway, the pixels it sees barely change.
    """
    if is_chip_uri(str(path)):
        from tools.scenes.read import read_chip

        return read_chip(str(path), min_size=min_size)
    with Image.open(path) as img:
        if min_size is not None and img.format == "JPEG":
            img.draft("RGB", (min_size, min_size))
        img.load()
        return to_rgb(img)


def _geotiff_georeference(img: Image.Image) -> tuple[list[float] | None, str | None]:
    """Bounds and CRS from GeoTIFF tags (tie point + pixel scale + GeoKey directory), when present."""
    tags = getattr(img, "tag_v2", None)
    if tags is None:
        return None, None
    scale = tags.get(33550)  # ModelPixelScaleTag
    tie = tags.get(33922)  # ModelTiepointTag: (i, j, k, x, y, z)
    if not scale or not tie or len(tie) < 6 or len(scale) < 2:
        return None, None
    try:
        i, j, _, x, y, _ = (float(v) for v in tie[:6])
        sx, sy = float(scale[0]), float(scale[1])
    except (TypeError, ValueError, struct.error):
        return None, None
    width, height = img.size
    minx = x - i * sx
    maxy = y + j * sy
    bounds = [minx, maxy - height * sy, minx + width * sx, maxy]
    crs = None
    keys = tags.get(34735)  # GeoKeyDirectoryTag: header (4 values) then 4 values per key
    if keys and len(keys) >= 4:
        for n in range(int(keys[3])):
            key_id, location, _, value = keys[4 + 4 * n: 8 + 4 * n]
            # ProjectedCSTypeGeoKey (3072) or GeographicTypeGeoKey (2048), stored inline (location 0).
            if key_id in (3072, 2048) and location == 0 and 1024 <= value < 32767:
                crs = f"EPSG:{value}"
                if key_id == 3072:
                    break
    return bounds, crs

"""Thumbnails and example images read safely: inside the data roots, unchanged since ingestion, bounded in memory.

:func:`read_checked` is how a catalogued file is read again after ingestion (a thumbnail, an example image
of a search): the path must resolve inside a data root (a file swapped for a symlink that leaves them is
refused), its bytes must hash to the id the catalog gave it (swapped content is refused), and its header
must stay within ``max_pixels`` before anything is decoded.

:func:`thumbnail_jpeg` serves a thumbnail: JPEGs decode at a reduced scale (draft mode); other formats
decode in full, but at most :data:`LARGE_DECODES` images above :data:`LARGE_PIXELS` decode at once, so
parallel requests of a huge PNG cannot multiply its memory. The result is cached (a ``MASTER_SIDE`` pixel
JPEG per image, with the file's size and mtime): later requests stat the file and never decode it again.
Chips of scenes (URIs with a ``#`` fragment) are read through :func:`tools.imageio.load_rgb`.
"""

from __future__ import annotations

import io
import json
import os
import threading
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tools.imageio import load_rgb, sha256_bytes, to_rgb
from tools.paths import check_allowed

#: the side of the cached thumbnail each requested size is made from (the largest size the API serves)
MASTER_SIDE = 1024
#: images with more pixels than this decode one (or a few) at a time
LARGE_PIXELS = 16_000_000
LARGE_DECODES = 1
_large = threading.BoundedSemaphore(LARGE_DECODES)
_per_image: dict[str, threading.Lock] = {}
_per_image_guard = threading.Lock()


class ThumbnailError(Exception):
    """A catalogued file cannot be shown (the message says why; the HTTP layer picks the status)."""


class ImageGoneError(ThumbnailError, LookupError):
    """The file is missing or unreadable now."""


class ImageChangedError(ThumbnailError):
    """The file's bytes are not the ones ingested (swapped or edited since)."""


class ImageTooLargeError(ThumbnailError):
    """The file's header claims more pixels than ``max_pixels`` (a decompression bomb)."""


def _name(uri: str) -> str:
    return Path(str(uri).split("#", 1)[0]).name


def read_checked(uri: str, image_id: str | None, *, roots: list[Path] | tuple[Path, ...],
                 max_pixels: int) -> tuple[bytes, Image.Image]:
    """The bytes of a catalogued file and its image (header read, pixels not yet decoded), after the checks
    of the module docstring. ``image_id`` None skips the content check. Raises :class:`ThumbnailError`s and
    :class:`tools.paths.PathNotAllowedError`."""
    real = check_allowed(str(uri).split("#", 1)[0], roots)
    try:
        data = real.read_bytes()
    except OSError as exc:
        raise ImageGoneError(f"the file of image {_name(uri)} can no longer be read ({exc.strerror or exc})") from None
    if image_id is not None and sha256_bytes(data) != image_id:
        raise ImageChangedError(f"the file of image {image_id[:12]} ({_name(uri)}) changed since it was ingested; "
                                "ingest it again")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
            raise ImageGoneError(f"the file of image {_name(uri)} is not a readable image ({exc})") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"image {_name(uri)} claims {width}x{height} pixels, more than the limit of "
                                 f"{max_pixels:,} (a decompression bomb); it is not decoded")
    return data, img


def decode(img: Image.Image, *, fit: int | None = None) -> Image.Image:
    """Decode an opened image as RGB; ``fit`` lets a JPEG decode at a reduced scale (at least ``fit`` px)."""
    if fit is not None and img.format == "JPEG":
        img.draft("RGB", (fit, fit))
    large = img.size[0] * img.size[1] > LARGE_PIXELS
    if large:
        _large.acquire()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                img.load()
            except (OSError, ValueError, SyntaxError) as exc:
                raise ImageGoneError(f"the image data cannot be decoded ({exc})") from None
        out = to_rgb(img)
        if fit is not None:
            out.thumbnail((fit, fit))
        return out
    finally:
        if large:
            _large.release()


def _lock_for(image_id: str) -> threading.Lock:
    with _per_image_guard:
        if len(_per_image) > 10_000:
            _per_image.clear()
        return _per_image.setdefault(image_id, threading.Lock())


def _cached(cache_dir: Path | None, image_id: str, stat: os.stat_result) -> Image.Image | None:
    if cache_dir is None:
        return None
    meta = cache_dir / image_id[:2] / f"{image_id}.json"
    try:
        known = json.loads(meta.read_text())
        if known.get("size") != stat.st_size or known.get("mtime_ns") != stat.st_mtime_ns:
            return None
        with Image.open(meta.with_suffix(".jpg")) as cached:
            cached.load()
            return cached.convert("RGB")
    except (OSError, ValueError):
        return None


def _store(cache_dir: Path | None, image_id: str, stat: os.stat_result, master: Image.Image) -> None:
    if cache_dir is None:
        return
    folder = cache_dir / image_id[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{image_id}.{os.getpid()}.{threading.get_ident()}.tmp"
        master.save(tmp, "JPEG", quality=90)
        tmp.replace(folder / f"{image_id}.jpg")
        (folder / f"{image_id}.json").write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))
    except OSError:
        pass  # a read-only cache: serve without caching


def _jpeg(img: Image.Image, size: int) -> bytes:
    img = img.copy()
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def thumbnail_jpeg(uri: str, image_id: str, size: int, *, roots: list[Path] | tuple[Path, ...], max_pixels: int,
                   cache_dir: Path | None = None) -> bytes:
    """A JPEG at most ``size`` pixels on a side of a catalogued image (see the module docstring)."""
    if "#" in str(uri):  # a chip of a scene: the scene module reads its window
        check_allowed(str(uri).split("#", 1)[0], roots)
        try:
            return _jpeg(load_rgb(uri, min_size=size), size)
        except OSError as exc:
            raise ImageGoneError(f"the scene of image {image_id[:12]} can no longer be read ({exc})") from None
    real = check_allowed(uri, roots)
    try:
        stat = real.stat()
    except OSError as exc:
        raise ImageGoneError(f"the file of image {_name(uri)} can no longer be read ({exc.strerror})") from None
    master = _cached(cache_dir, image_id, stat)
    if master is None:
        with _lock_for(image_id):  # parallel requests of one image decode it once
            master = _cached(cache_dir, image_id, stat)
            if master is None:
                _, img = read_checked(uri, image_id, roots=roots, max_pixels=max_pixels)
                master = decode(img, fit=MASTER_SIDE)
                _store(cache_dir, image_id, stat, master)
    return _jpeg(master, size)


__all__ = ["LARGE_PIXELS", "MASTER_SIDE", "ImageChangedError", "ImageGoneError", "ImageTooLargeError",
           "ThumbnailError", "decode", "read_checked", "thumbnail_jpeg"]

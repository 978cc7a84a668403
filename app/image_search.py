"""Search by an uploaded image: the bytes are checked as ingestion checks a file, then embedded and searched.

The upload is never written to disk or to the catalog. It must decode fully (empty, truncated, corrupt,
non-image and unsupported-mode data are refused with the reason, as in ``skyscout ingest``) and hold no more
than ``SKYSCOUT_MAX_PIXELS`` pixels (a decompression bomb otherwise); its vector comes from the active
index's model, so it shares the index's space, and it joins the query's texts and example images.
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from app.context import AppContext
from app.models import pil_image_encoder_of
from app.search import search
from tools.imageio import inspect_bytes, to_rgb
from tools.search import Query, SearchResult

if TYPE_CHECKING:
    from tools.models import LoadedModel


def decode_upload(data: bytes, *, max_pixels: int) -> Image.Image:
    """The uploaded bytes as an RGB image, after ingestion's checks (:func:`tools.imageio.inspect_bytes`:
    raises :class:`tools.imageio.ImageRejected` with the reason)."""
    inspect_bytes(data, max_pixels=max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked above against max_pixels
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return to_rgb(img).copy()


def search_by_upload(ctx: AppContext, data: bytes, query: Query) -> SearchResult:
    """Rank the active index for an uploaded image (plus the query's texts, example images and negatives)."""
    image = decode_upload(data, max_pixels=ctx.config.max_pixels)

    def vectors(loaded: LoadedModel) -> list[np.ndarray]:
        return [pil_image_encoder_of(loaded, ctx.device)([image])[0]]

    return search(ctx, query, examples=vectors)


__all__ = ["decode_upload", "search_by_upload"]

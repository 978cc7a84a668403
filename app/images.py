"""Naming an image: a full id, a short id prefix, or a file path inside the data roots all lead to its id."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from app.context import AppContext
from tools.paths import check_allowed

_HEX = re.compile(r"^[0-9a-f]+$")
#: shortest id prefix accepted (shorter ones would match too much to be useful)
MIN_PREFIX = 6


class AmbiguousImageError(LookupError):
    """A short id matches more than one image (the message lists them)."""


def resolve_image(ctx: AppContext, ref: str) -> str:
    """The catalog id of the image ``ref`` names: its id, an unambiguous id prefix, or its file path."""
    text = ref.strip()
    if _HEX.match(text.lower()) and len(text) >= MIN_PREFIX:
        return _by_prefix(ctx, text.lower())
    if "/" in text or "\\" in text or Path(text).suffix:
        return _by_path(ctx, text)
    raise LookupError(f"{ref!r} names no image: give an image id (or its first {MIN_PREFIX}+ characters) or the "
                      "path of an ingested file")


def _by_prefix(ctx: AppContext, prefix: str) -> str:
    found = ctx.catalog.ids_with_prefix(prefix, limit=6)
    if len(found) == 1:
        return found[0]
    if not found and len(prefix) == 64:
        raise LookupError(f"image {prefix} is not in the catalog; `skyscout search` shows ids of indexed images")
    if not found:
        raise LookupError(f"no image id starts with {prefix!r}; `skyscout search` shows ids of indexed images")
    shown = ", ".join(f[:16] for f in found[:5]) + (" ..." if len(found) > 5 else "")
    raise AmbiguousImageError(f"{prefix!r} matches several images ({shown}); give more characters")


def _by_path(ctx: AppContext, text: str) -> str:
    path = check_allowed(Path(text).expanduser(), ctx.config.roots)
    if not path.is_file():
        raise FileNotFoundError(f"image file {text} does not exist")
    with path.open("rb") as fh:
        image_id = hashlib.file_digest(fh, "sha256").hexdigest()
    if not ctx.catalog.has_image(image_id):
        raise LookupError(f"image file {text} is not in the catalog; ingest it first (`skyscout ingest`)")
    return image_id


__all__ = ["MIN_PREFIX", "AmbiguousImageError", "resolve_image"]

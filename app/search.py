"""Search use cases: one function answers every search (CLI, HTTP, the Query agent), plus explain and feedback.

A search runs against the active index with the model that built it, so query and image vectors share
one space; the model and the open index come from the context (loaded and opened once per process).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from app.context import AppContext
from app.indexing import open_active_index
from app.models import image_encoder_of, text_encoder_of
from tools.imageio import sha256_bytes
from tools.indexes import active_index
from tools.paths import check_allowed
from tools.search import Query, SearchResult, text_vector
from tools.search import search as search_index

_IMAGE_ID_RE = re.compile(r"^[0-9a-f]{64}$")


def search(ctx: AppContext, query: Query, *, store: str | None = None) -> SearchResult:
    """Rank the active index's images for ``query``; each hit is described from the catalog."""
    active = open_active_index(ctx, store)
    _, loaded = ctx.load_model(active.model)
    result = search_index(query, store=active.store, catalog=ctx.catalog,
                          encode_text=text_encoder_of(loaded, ctx.device),
                          encode_images=image_encoder_of(loaded, ctx.device))
    result.model = active.model
    return result


def example_image_id(ctx: AppContext, image: str) -> str:
    """The catalog id of an example image given as an id or as a file path inside the data roots."""
    if _IMAGE_ID_RE.match(image.lower()):
        return image.lower()
    path = check_allowed(Path(image).expanduser(), ctx.config.roots)
    if not path.is_file():
        raise FileNotFoundError(f"example image {image} does not exist")
    image_id = sha256_bytes(path.read_bytes())
    if not ctx.catalog.has_image(image_id):
        raise LookupError(f"example image {image} is not in the catalog; ingest it first")
    return image_id


def explain_hit(ctx: AppContext, image_id: str, query: str) -> dict[str, Any]:
    """Similarity of ``query`` to an indexed image, and the image's caption closest to the query."""
    active = open_active_index(ctx)
    found = active.store.get([image_id])
    if image_id not in found:
        raise LookupError(f"image {image_id} is not in the active index {active.name}")
    vector = np.asarray(found[image_id][0], dtype=np.float32)
    _, loaded = ctx.load_model(active.model)
    encode = text_encoder_of(loaded, ctx.device)
    q = text_vector(encode, query)
    record = ctx.catalog.get_image(image_id)
    captions = ctx.catalog.captions_of(image_id)
    best: tuple[str, float] | None = None
    if captions:
        sims = encode(captions) @ q
        i = int(np.argmax(sims))
        best = (captions[i], float(sims[i]))
    return {"image_id": image_id, "query": query, "score": float(vector @ q),
            "label": record.labels[0] if record and record.labels else None,
            "uri": record.uri if record else None,
            "closest_caption": best[0] if best else None, "caption_similarity": best[1] if best else None}


def record_feedback(ctx: AppContext, *, image_id: str, relevant: bool, query: str | None = None,
                    query_id: str | None = None) -> int:
    """Store a relevant / not relevant mark on a search result, with the model of the active index."""
    if not ctx.catalog.has_image(image_id):
        raise LookupError(f"image {image_id} is not in the catalog")
    try:
        model: str | None = str(active_index(ctx.catalog, ctx.store_kind())["model"])
    except LookupError:
        model = None
    return ctx.catalog.add_feedback(image_id=image_id, relevant=relevant, query=query, query_id=query_id,
                                    model=model)


__all__ = ["example_image_id", "explain_hit", "record_feedback", "search"]

"""Search use cases: one function answers every search (CLI, HTTP, the Query agent), plus explain and feedback.

A search runs against the active index with the model that built it, so query and image vectors share
one space; the model and the open index come from the context (loaded and opened once per process).
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import numpy as np

from app.context import AppContext
from app.images import resolve_image
from app.indexing import open_active_index
from app.models import image_encoder_of, text_encoder_of
from app.scenes import resolve_scene
from tools.indexes import active_index
from tools.search import Query, SearchResult, text_vector
from tools.search import search as search_index

#: metadata filter keys whose values are labels (matched without regard to case)
LABEL_KEYS = ("label", "labels")


def canonical_filters(ctx: AppContext, filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """``filters`` with label values spelled as the catalog spells them (``sealake`` -> ``SeaLake``)."""
    if not filters:
        return filters
    known = {label.lower(): label for label in ctx.catalog.label_counts()}
    out = dict(filters)
    for key in LABEL_KEYS:
        value = out.get(key)
        if isinstance(value, str):
            if value.lower() not in known:
                close = difflib.get_close_matches(value.lower(), list(known), n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(known[c] for c in close)}?" if close else ""
                raise LookupError(f"no image is labelled {value!r}{hint}")
            out[key] = known[value.lower()]
    return out


def resolved(ctx: AppContext, query: Query) -> Query:
    """``query`` with its example images named by id (from prefixes or paths) and its label filters canonical."""
    return dataclasses.replace(query, images=[resolve_image(ctx, i) for i in query.images],
                               negative_images=[resolve_image(ctx, i) for i in query.negative_images],
                               filter=canonical_filters(ctx, query.filter),
                               scenes=[resolve_scene(ctx, s) for s in query.scenes])


def search(ctx: AppContext, query: Query, *, store: str | None = None) -> SearchResult:
    """Rank the active index's images for ``query``; each hit is described from the catalog."""
    query = resolved(ctx, query)
    active = open_active_index(ctx, store)
    _, loaded = ctx.load_model(active.model)
    result = search_index(query, store=active.store, catalog=ctx.catalog,
                          encode_text=text_encoder_of(loaded, ctx.device),
                          encode_images=image_encoder_of(loaded, ctx.device))
    result.model = active.model
    return result


def explain_hit(ctx: AppContext, image_id: str, query: str) -> dict[str, Any]:
    """Similarity of ``query`` to an indexed image, and the image's caption closest to the query."""
    image_id = resolve_image(ctx, image_id)
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
    image_id = resolve_image(ctx, image_id)
    try:
        model: str | None = str(active_index(ctx.catalog, ctx.store_kind())["model"])
    except LookupError:
        model = None
    return ctx.catalog.add_feedback(image_id=image_id, relevant=relevant, query=query, query_id=query_id,
                                    model=model)


__all__ = ["LABEL_KEYS", "canonical_filters", "explain_hit", "record_feedback", "resolved", "search"]

"""Search use cases: one function answers every search (CLI, HTTP, the Query agent), plus explain and feedback.

A search runs against the active index with the model that built it, so query and image vectors share
one space; the model and the open index come from the context (loaded and opened once per process).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import hmac
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.context import AppContext
from app.images import resolve_image
from app.indexing import open_active_index
from app.models import ImageFileEncoder, pil_image_encoder_of
from app.scenes import resolve_scene
from tools.indexes import active_index
from tools.paths import check_allowed
from tools.search import Query, SearchResult, text_vector
from tools.search import search as search_index

if TYPE_CHECKING:
    from tools.models import LoadedModel

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


def search(ctx: AppContext, query: Query, *, store: str | None = None,
           examples: Sequence[np.ndarray] | Callable[[LoadedModel], Sequence[np.ndarray]] = ()) -> SearchResult:
    """Rank the active index's images for ``query``; each hit is described from the catalog.

    Query texts go through the model's shared query encoder (concurrent searches batched, recent texts
    cached); an example image that is not in the index is read again only through
    :func:`tools.thumbnails.read_checked` (inside the data roots, unchanged since ingestion). The result's
    ``query_id`` is signed, so feedback can only name a search this home answered. ``examples`` may be a
    callable that gets the index's loaded model and returns vectors of example images not in the catalog
    (an uploaded file: :mod:`app.image_search`).
    """
    query = resolved(ctx, query)
    active = open_active_index(ctx, store)
    ref, loaded = ctx.load_model(active.model)
    result = search_index(query, store=active.store, catalog=ctx.catalog,
                          encode_text=ctx.models.query_encoder(ref.load_spec),
                          encode_images=example_image_encoder(ctx, loaded),
                          examples=examples(loaded) if callable(examples) else examples)
    result.model = active.model
    result.query_id = sign_query_id(ctx, result.query_id)
    return result


def encode_query_texts(ctx: AppContext, query: Query, *, store: str | None = None) -> None:
    """Encode ``query``'s texts through the active model's shared query encoder, so that :func:`search` finds
    them cached. A server calls this outside its bound on concurrent searches: concurrent new texts then share
    one batched forward pass, while the rest of each search does not contend for the GIL (``service/api``)."""
    texts = [*query.texts, *query.negative_texts]
    if not texts:
        return
    active = open_active_index(ctx, store)
    encode = ctx.models.query_encoder(ctx.load_model(active.model)[0].load_spec)
    for text in texts:
        text_vector(encode, text, templates=query.templates)


def example_image_encoder(ctx: AppContext, loaded: LoadedModel) -> ImageFileEncoder:
    """Catalogued files -> unit rows, each file checked first (roots, content hash, size; see
    :func:`tools.thumbnails.read_checked`): a file swapped for a symlink out of the roots, or for other
    bytes, is refused, and an unreadable one is a clear error rather than a crash."""
    from tools.imageio import is_chip_uri, load_rgb, sha256_bytes
    from tools.thumbnails import ImageChangedError, ImageGoneError, decode, read_checked

    def read(uri: str) -> Any:
        if is_chip_uri(uri):
            check_allowed(uri.split("#", 1)[0], ctx.config.roots)
            try:
                return load_rgb(uri)
            except OSError as exc:
                raise ImageGoneError(f"the scene of an example image can no longer be read ({exc})") from None
        data, img = read_checked(uri, None, roots=ctx.config.roots, max_pixels=ctx.config.max_pixels)
        ids = {r["id"] for r in ctx.catalog.query("SELECT id FROM images WHERE uri = ? AND status = 'ok'", (uri,))}
        if sha256_bytes(data) not in ids:
            raise ImageChangedError(f"the file of an example image ({Path(uri).name}) changed since it was "
                                    "ingested; ingest it again")
        return decode(img)

    encode = pil_image_encoder_of(loaded, ctx.device)
    return lambda uris: encode([read(u) for u in uris])


def sign_query_id(ctx: AppContext, query_id: str) -> str:
    """``query_id`` with a signature of this home's key appended (``q-<random>-<signature>``)."""
    mac = hmac.new(ctx.secret("query-ids"), query_id.encode(), hashlib.sha256).hexdigest()[:12]
    return f"{query_id}-{mac}"


def is_signed_query_id(ctx: AppContext, query_id: str) -> bool:
    """Whether ``query_id`` came from a search of this home (:func:`sign_query_id`)."""
    base, sep, _ = query_id.rpartition("-")
    return bool(sep and base) and hmac.compare_digest(sign_query_id(ctx, base), query_id)


def explain_hit(ctx: AppContext, image_id: str, query: str) -> dict[str, Any]:
    """Similarity of ``query`` to an indexed image, and the image's caption closest to the query."""
    image_id = resolve_image(ctx, image_id)
    active = open_active_index(ctx)
    found = active.store.get([image_id])
    if image_id not in found:
        raise LookupError(f"image {image_id} is not in the active index {active.name}")
    vector = np.asarray(found[image_id][0], dtype=np.float32)
    ref, _ = ctx.load_model(active.model)
    encode = ctx.models.query_encoder(ref.load_spec)
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
    if query_id is not None and not is_signed_query_id(ctx, query_id):
        raise LookupError(f"unknown query id {query_id!r}: give the query_id a search of this SkyScout returned")
    try:
        model: str | None = str(active_index(ctx.catalog, ctx.store_kind())["model"])
    except LookupError:
        model = None
    return ctx.catalog.add_feedback(image_id=image_id, relevant=relevant, query=query, query_id=query_id,
                                    model=model)


__all__ = ["LABEL_KEYS", "canonical_filters", "encode_query_texts", "example_image_encoder", "explain_hit",
           "is_signed_query_id", "record_feedback", "resolved", "search", "sign_query_id"]

"""The Query agent's tools: text, image and combined queries against the active index.

A query is turned into one unit vector: positive terms (texts embedded through prompt templates and
averaged, and/or example images) minus weighted negative terms, renormalised. The store returns the
nearest images under an optional metadata filter; the catalog adds captions, labels and geo bounds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tools.catalog import Catalog
from tools.stores.base import Hit, VectorStore
from tools.stores.filters import bbox_filter
from tools.templates import REMOTE_SENSING_TEMPLATES

TextEncoder = Callable[[list[str]], np.ndarray]
ImageEncoder = Callable[[list[str]], np.ndarray]  # image file paths -> unit rows


class QueryError(ValueError):
    """A query that cannot be run as given (the message says what to change)."""


class ImageNotFoundError(LookupError):
    """An example image id that the catalog does not know."""


@dataclass
class Query:
    """What to look for. At least one positive text or image is required."""

    texts: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # image ids in the catalog
    negative_texts: list[str] = field(default_factory=list)
    negative_images: list[str] = field(default_factory=list)
    k: int = 10
    filter: dict[str, Any] | None = None
    min_score: float | None = None
    negative_weight: float = 0.5
    image_weight: float = 1.0
    templates: bool = True
    #: only chips inside this area: a GeoJSON Polygon / MultiPolygon in EPSG:4326 (see tools.geo)
    aoi: dict[str, Any] | None = None
    #: only chips of these scenes (scene ids)
    scenes: list[str] = field(default_factory=list)


@dataclass
class SearchHit:
    """One result, ready to show: where the tile is, how well it matches, what we know about it."""

    rank: int
    image_id: str
    score: float
    uri: str | None
    label: str | None
    labels: list[str]
    captions: list[str]
    source: str | None
    bounds: list[float] | None
    crs: str | None
    scene_id: str | None = None  # chips: the scene, the window (x, y, w, h) and the EPSG:4326 polygon
    window: list[int] | None = None
    geometry: dict[str, Any] | None = None


@dataclass
class SearchResult:
    """Hits plus what was asked; ``query_id`` lets feedback point back at this search."""

    query_id: str
    index: str
    query: dict[str, Any]
    hits: list[SearchHit]
    model: str | None = None  # the key of the model that built the index

    def to_dict(self) -> dict[str, Any]:
        return {"query_id": self.query_id, "index": self.index, "model": self.model, "query": self.query,
                "hits": [asdict(h) for h in self.hits]}


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    if n < 1e-8:
        raise QueryError("the positive and negative terms cancel out; weaken the negatives")
    return (v / n).astype(np.float32)


def text_vector(encode: TextEncoder, text: str, *, templates: bool = True) -> np.ndarray:
    """One text as a unit vector; with ``templates``, the mean over remote-sensing prompt frames."""
    prompts = [t.format(text) for t in REMOTE_SENSING_TEMPLATES] if templates else [text]
    return _unit(encode(prompts).mean(axis=0))


def image_vectors(image_ids: Sequence[str], *, store: VectorStore, catalog: Catalog,
                  encode_images: ImageEncoder | None) -> list[np.ndarray]:
    """Vectors of example images: from the index when they are in it, else encoded from the file."""
    found = store.get(list(image_ids))
    out = []
    for image_id in image_ids:
        if image_id in found:
            out.append(np.asarray(found[image_id][0], dtype=np.float32))
            continue
        rec = catalog.get_image(image_id)
        if rec is None or rec.status != "ok":
            raise ImageNotFoundError(
                f"image {image_id!r} is not in the catalog; ingest it first or give a text query")
        if encode_images is None:
            raise QueryError(f"image {image_id} is not indexed and no image encoder was given")
        out.append(encode_images([rec.uri])[0])
    return out


def query_vector(query: Query, *, encode_text: TextEncoder, store: VectorStore, catalog: Catalog,
                 encode_images: ImageEncoder | None = None, examples: Sequence[np.ndarray] = ()) -> np.ndarray:
    """Combine a query's terms into one unit vector (``examples``: vectors of example images that are not in
    the catalog, e.g. an uploaded file, counted like its example images)."""
    if not query.texts and not query.images and not len(examples):
        raise QueryError("a query needs at least one text or one example image")
    pos = [text_vector(encode_text, t, templates=query.templates) for t in query.texts]
    pos += [query.image_weight * _unit(np.asarray(v, dtype=np.float32)) for v in examples]
    pos += [query.image_weight * v for v in image_vectors(query.images, store=store, catalog=catalog,
                                                          encode_images=encode_images)]
    neg = [text_vector(encode_text, t, templates=query.templates) for t in query.negative_texts]
    neg += image_vectors(query.negative_images, store=store, catalog=catalog, encode_images=encode_images)
    vec = np.sum(pos, axis=0) / len(pos)
    if neg:
        vec = _unit(vec) - query.negative_weight * (np.sum(neg, axis=0) / len(neg))
    return _unit(vec)


def area_filter(query: Query) -> dict[str, Any] | None:
    """The store filter of a query: its metadata filter, its scenes, and its area's bounding box (chips keep
    their EPSG:4326 box as ``west``/``south``/``east``/``north``)."""
    parts = [query.filter] if query.filter else []
    if query.scenes:
        parts.append({"scene_id": {"$in": list(query.scenes)}})
    if query.aoi is not None:
        from tools.geo import bbox_of

        parts.append(bbox_filter(*bbox_of(query.aoi), fields=("west", "south", "east", "north")))
    if len(parts) > 1:
        return {"$and": parts}
    return parts[0] if parts else None


def _nearest(query: Query, vec: np.ndarray, store: VectorStore, catalog: Catalog, exclude: set[str]) -> list[Any]:
    """The ``k`` nearest hits under the query's filter; inside a polygon area, only chips whose footprint
    touches it (more candidates are fetched while the box lets too many through)."""
    flt = area_filter(query)
    want = query.k + len(exclude)
    if query.aoi is None:
        return [h for h in store.search(vec, k=want, filter=flt) if h.id not in exclude][: query.k]
    from tools.geo import aoi_from_geojson

    area = aoi_from_geojson(query.aoi, "area of interest")
    n = want
    while True:
        raw = [h for h in store.search(vec, k=n, filter=flt) if h.id not in exclude]
        shapes = catalog.chip_geometry([h.id for h in raw])
        inside = [h for h in raw if area.intersects(shapes.get(h.id, {}).get("footprint"))]
        if len(inside) >= query.k or len(raw) < n - len(exclude) or n >= 8000:
            return inside[: query.k]
        n *= 4


def search(query: Query, *, store: VectorStore, catalog: Catalog, encode_text: TextEncoder,
           encode_images: ImageEncoder | None = None, examples: Sequence[np.ndarray] = ()) -> SearchResult:
    """Run ``query`` against ``store`` and describe each hit from the catalog."""
    if query.k < 1 or query.k > 1000:
        raise QueryError(f"k must be between 1 and 1000, got {query.k}")
    vec = query_vector(query, encode_text=encode_text, store=store, catalog=catalog, encode_images=encode_images,
                       examples=examples)
    # Example images are not useful answers to "more like this": ask for a few extra and drop them.
    raw = _nearest(query, vec, store, catalog, set(query.images))
    if query.min_score is not None:
        raw = [h for h in raw if h.score >= query.min_score]
    return SearchResult(query_id=f"q-{uuid.uuid4().hex[:12]}", index=store.name, query=asdict(query),
                        hits=describe_hits(raw, catalog))


def describe_hits(raw: Sequence[Hit], catalog: Catalog) -> list[SearchHit]:
    """The store's hits, ranked in the given order, each described from the catalog (labels, captions, where)."""
    captions = catalog.captions_for([h.id for h in raw])
    hits = []
    for rank, h in enumerate(raw, start=1):
        rec = catalog.get_image(h.id)
        hits.append(SearchHit(
            rank=rank, image_id=h.id, score=round(float(h.score), 5),
            uri=rec.uri if rec else h.metadata.get("uri"),
            label=(rec.labels[0] if rec and rec.labels else h.metadata.get("label")) or None,
            labels=rec.labels if rec else [], captions=captions.get(h.id, [])[:5],
            source=rec.source if rec else h.metadata.get("source"),
            bounds=rec.bounds if rec else None, crs=rec.crs if rec else None,
            scene_id=rec.scene_id if rec else None, window=rec.window if rec else None,
            geometry=rec.footprint if rec else None,
        ))
    return hits


def precision_at_k(hits: Sequence[SearchHit], label: str, k: int = 10) -> float:
    """Share of the first ``k`` hits whose labels include ``label``."""
    top = list(hits)[:k]
    return sum(label in h.labels for h in top) / k if k else 0.0

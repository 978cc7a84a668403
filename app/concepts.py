"""Concept use cases: create, list, show, delete, label, rank (results), ask what to label next, score chips.

One module serves the CLI (``skyscout concept``), the HTTP routes (``/v1/concepts``) and the agents' concept
tools. A concept ranks the active index with what is known (:mod:`tools.concepts`): its query alone, the query
refined by Rocchio, or a logistic regression on the stored vectors of the marked images and of background
images sampled from the index. Marks are feedback rows (one per concept and image, the last one wins) and
judgments (:mod:`tools.judgments`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from app.context import AppContext
from app.images import resolve_image
from app.indexing import ActiveIndex, open_active_index
from app.scenes import resolve_scene
from app.search import example_image_encoder
from tools.concepts import (
    ConceptClassifier,
    Stage,
    choose_stage,
    fit_classifier,
    rocchio,
    sample_background,
    spread,
    stage_reason,
)
from tools.concepts import ask as least_sure
from tools.concepts.classifier import background_size
from tools.search import Query, SearchHit, area_filter, describe_hits, query_vector
from tools.stores.base import Hit

#: the nearest neighbours of the concept's vector (and of the classifier's direction) the classifier re-ranks
POOL = 500
_GET_CHUNK = 1000


def _clean(texts: Iterable[str], what: str) -> list[str]:
    out = [" ".join(str(t).split()) for t in texts]
    if any(not t for t in out):
        raise ValueError(f"a concept's {what} may not be empty strings")
    return out


def create_concept(ctx: AppContext, name: str, *, texts: Sequence[str] = (), image_ids: Sequence[str] = (),
                   negative_texts: Sequence[str] = ()) -> dict[str, Any]:
    """A new concept (names unique without regard to case); without texts or images its name is the query."""
    name = " ".join(name.split())
    if not name:
        raise ValueError("a concept needs a name, e.g. 'vineyards'")
    images = [resolve_image(ctx, i) for i in image_ids]
    return ctx.catalog.create_concept(name, texts=_clean(texts, "texts"), image_ids=images,
                                      negative_texts=_clean(negative_texts, "negative texts"))


def get_concept(ctx: AppContext, ref: str) -> dict[str, Any]:
    """A concept by id or name (case does not matter); LookupError names the known ones."""
    found = ctx.catalog.find_concept(ref)
    if found is None:
        known = ", ".join(c["name"] for c in ctx.catalog.list_concepts()) or "none yet"
        raise LookupError(f"no concept {ref!r}; known concepts: {known} (`skyscout concept create NAME`)")
    return found


def list_concepts(ctx: AppContext) -> list[dict[str, Any]]:
    return ctx.catalog.list_concepts()


def delete_concept(ctx: AppContext, ref: str) -> dict[str, Any]:
    """Delete a concept and its marks (marks a model was trained with stay, as that model's lineage)."""
    concept = get_concept(ctx, ref)
    return {"deleted": concept["id"], "name": concept["name"], **ctx.catalog.delete_concept(concept["id"])}


def _active_model(ctx: AppContext) -> str | None:
    try:
        return open_active_index(ctx).model
    except LookupError:
        return None


def label_concept(ctx: AppContext, ref: str, labels: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """Mark images relevant / not relevant for a concept; the last mark of an image wins. An image the catalog
    does not know is refused (nothing is recorded); one that is not in the active index is recorded, and
    ranks once the index holds it."""
    if not labels:
        raise ValueError("give at least one label: an image id and whether it is relevant")
    concept = get_concept(ctx, ref)
    resolved = [(resolve_image(ctx, image), bool(relevant)) for image, relevant in labels]
    ctx.catalog.label_concept(concept["id"], resolved, model=_active_model(ctx))
    return get_concept(ctx, concept["id"])


# -- ranking ------------------------------------------------------------------------------------------------


@dataclass
class Ranker:
    """How a concept ranks now: its stage, its (refined) query vector, its classifier when it has one."""

    concept: dict[str, Any]
    stage: Stage
    reason: str
    vector: np.ndarray
    classifier: ConceptClassifier | None
    marks: dict[str, bool]
    unindexed: list[str] = field(default_factory=list)  # marked images the active index does not hold

    def probabilities(self, vectors: np.ndarray) -> np.ndarray | None:
        """The classifier's probabilities of rows (None before the classifier stage)."""
        return self.classifier.probabilities(vectors) if self.classifier is not None else None


def _vectors(store: Any, ids: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), _GET_CHUNK):
        for key, (vec, _) in store.get(ids[start:start + _GET_CHUNK]).items():
            out[key] = np.asarray(vec, dtype=np.float32)
    return out


def _seed(concept_id: str) -> int:
    return int(hashlib.sha256(concept_id.encode()).hexdigest()[:8], 16)


def concept_query(concept: dict[str, Any]) -> Query:
    """The search a concept starts from: its texts (its name when it has neither texts nor images), example
    images and negative texts."""
    texts = list(concept["texts"]) or ([] if concept["image_ids"] else [concept["name"]])
    return Query(texts=texts, images=list(concept["image_ids"]), negative_texts=list(concept["negative_texts"]))


def ranker(ctx: AppContext, concept: dict[str, Any], active: ActiveIndex, *, stage: Stage | None = None) -> Ranker:
    """What ranks ``concept`` on the active index now; ``stage`` caps it (``text`` ignores the marks, ``rocchio``
    never fits the classifier; the simulated user of scripts/concepts_eval.py compares them)."""
    ref, loaded = ctx.load_model(active.model)
    qvec = query_vector(concept_query(concept), encode_text=ctx.models.query_encoder(ref.load_spec),
                        store=active.store, catalog=ctx.catalog, encode_images=example_image_encoder(ctx, loaded))
    marks = ctx.catalog.concept_marks(concept["id"])
    found = _vectors(active.store, [*marks, *concept["image_ids"]])
    pos = [found[i] for i, rel in marks.items() if rel and i in found]
    pos += [found[i] for i in concept["image_ids"] if i in found and i not in marks]
    neg = [found[i] for i, rel in marks.items() if not rel and i in found]
    unindexed = [i for i in marks if i not in found]
    auto = choose_stage(len(pos), len(neg))
    order = ("text", "rocchio", "classifier")
    chosen: Stage = auto if stage is None or order.index(stage) > order.index(auto) else stage
    reason = stage_reason(chosen, len(pos), len(neg))
    dim = qvec.shape[0]
    pos_arr, neg_arr = np.reshape(pos, (-1, dim)), np.reshape(neg, (-1, dim))
    if chosen == "text":
        return Ranker(concept, "text", reason, qvec, None, marks, unindexed)
    vector = rocchio(qvec, pos_arr, neg_arr)
    if chosen == "rocchio":
        return Ranker(concept, "rocchio", reason, vector, None, marks, unindexed)
    every = sorted(active.store.ids())
    picked = sample_background(every, set(marks) | set(concept["image_ids"]), background_size(len(pos), len(every)),
                               seed=_seed(concept["id"]))
    bg = _vectors(active.store, picked)
    clf = fit_classifier(pos_arr, neg_arr, np.reshape([bg[i] for i in picked if i in bg], (-1, dim)))
    return Ranker(concept, "classifier", reason, vector, clf, marks, unindexed)


def _candidates(store: Any, r: Ranker, flt: dict[str, Any] | None, want: int, pool: int) -> list[Hit]:
    """Nearest neighbours of the concept's vector (and, for the classifier, of its weight direction)."""
    hits = {h.id: h for h in store.search(r.vector, k=max(want, pool if r.classifier else want), filter=flt)}
    if r.classifier is not None:
        for h in store.search(r.classifier.direction, k=max(want, pool), filter=flt):
            hits.setdefault(h.id, h)
    return list(hits.values())


def _area(ctx: AppContext, scene: str | None, bbox: str | Sequence[float] | None) -> dict[str, Any] | None:
    from tools.geo import parse_bbox

    area: dict[str, Any] = {"aoi": parse_bbox(bbox).to_dict()["geometry"]} if bbox is not None else {}
    return area_filter(Query(texts=["-"], scenes=[resolve_scene(ctx, scene)] if scene else [], **area))


@dataclass
class ConceptResults:
    """A concept's ranked hits, the stage they came from and why, and each hit's probability (classifier)."""

    concept: dict[str, Any]
    stage: Stage
    reason: str
    hits: list[SearchHit]
    probabilities: list[float | None]
    index: str
    model: str
    unindexed_marks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "stage": self.stage, "reason": self.reason, "index": self.index,
                "model": self.model, "unindexed_marks": self.unindexed_marks,
                "hits": [{**asdict(h), "stage": self.stage, "probability": p}
                         for h, p in zip(self.hits, self.probabilities, strict=True)]}


def _ranked(r: Ranker, active: ActiveIndex, flt: dict[str, Any] | None, want: int, pool: int,
            exclude: set[str]) -> tuple[list[Hit], np.ndarray, list[float | None]]:
    """Candidates ranked by probability (classifier) or by score; each hit's score is its cosine similarity to
    the concept's (refined) vector."""
    raw = [h for h in _candidates(active.store, r, flt, want + len(exclude), pool) if h.id not in exclude]
    if not raw:
        return [], np.zeros((0, r.vector.shape[0]), dtype=np.float32), []
    found = _vectors(active.store, [h.id for h in raw])
    raw = [h for h in raw if h.id in found]
    vecs = np.stack([found[h.id] for h in raw]) if raw else np.zeros((0, r.vector.shape[0]), dtype=np.float32)
    scores = vecs @ r.vector
    probs = r.probabilities(vecs)
    order = np.lexsort((np.arange(len(raw)), -(probs if probs is not None else scores)))
    ranked = [Hit(raw[i].id, float(scores[i]), raw[i].metadata) for i in order]
    return ranked, vecs[order], [float(probs[i]) if probs is not None else None for i in order]


def concept_results(ctx: AppContext, ref: str, *, k: int = 20, scene: str | None = None,
                    bbox: str | Sequence[float] | None = None, stage: Stage | None = None, pool: int = POOL,
                    exclude_marked: bool = False) -> ConceptResults:
    """The concept's best ``k`` images (in a scene or a box, when given) at its current stage (``stage`` caps
    it). Scores are cosine similarities to the (refined) query, or the classifier's probabilities."""
    if not 1 <= k <= 10_000:
        raise ValueError(f"k must be between 1 and 10000, got {k}")
    concept = get_concept(ctx, ref)
    active = open_active_index(ctx)
    r = ranker(ctx, concept, active, stage=stage)
    exclude = set(r.marks) if exclude_marked else set()
    ranked, _, probs = _ranked(r, active, _area(ctx, scene, bbox), k, pool, exclude)
    return ConceptResults(concept, r.stage, r.reason, describe_hits(ranked[:k], ctx.catalog), probs[:k],
                          active.name, active.model, len(r.unindexed))


def concept_ranking(ctx: AppContext, ref: str, *, k: int, stage: Stage | None = None, pool: int = POOL,
                    exclude_marked: bool = True) -> tuple[Stage, list[str], list[float | None]]:
    """The concept's best ``k`` image ids (by default those not marked yet) with their probabilities, at its
    current stage (``stage`` caps it); undescribed, for evaluations that rank a whole pool."""
    concept = get_concept(ctx, ref)
    active = open_active_index(ctx)
    r = ranker(ctx, concept, active, stage=stage)
    ranked, _, probs = _ranked(r, active, None, k, pool, set(r.marks) if exclude_marked else set())
    return r.stage, [h.id for h in ranked[:k]], probs[:k]


def concept_ask(ctx: AppContext, ref: str, *, n: int = 5, scene: str | None = None,
                bbox: str | Sequence[float] | None = None, pool: int = POOL) -> dict[str, Any]:
    """The few unlabelled images to mark next, and why: those the classifier is least sure about, spread over
    the embedding space; before the classifier stage, the best unlabelled results, spread apart."""
    if not 1 <= n <= 100:
        raise ValueError(f"n must be between 1 and 100, got {n}")
    concept = get_concept(ctx, ref)
    active = open_active_index(ctx)
    r = ranker(ctx, concept, active)
    ranked, vecs, probs = _ranked(r, active, _area(ctx, scene, bbox), max(10 * n, 50), pool, set(r.marks))
    if r.classifier is not None:
        ids, facts = least_sure([h.id for h in ranked], vecs, np.asarray(probs, dtype=np.float64), n)
        why = (f"the classifier ({r.classifier.n_relevant} relevant, {r.classifier.n_not_relevant} not relevant, "
               f"{r.classifier.n_background} background images) is least sure about these: probabilities "
               f"{facts.get('p_min', 0):.2f} to {facts.get('p_max', 0):.2f}, picked from the "
               f"{int(facts.get('considered', 0))} least sure and spread apart")
    else:
        top = ranked[: max(5 * n, 20)]
        ids = [top[i].id for i in spread(vecs[: len(top)], n)]
        why = (f"{r.reason}; no classifier yet, so these are the best unlabelled results, spread apart: mark "
               "them to reach the classifier stage")
    by_id = {h.id: (h, p) for h, p in zip(ranked, probs, strict=True)}
    chosen = [by_id[i] for i in ids]
    hits = describe_hits([h for h, _ in chosen], ctx.catalog)
    return {"concept": concept, "stage": r.stage, "why": why, "index": active.name,
            "hits": [{**asdict(h), "stage": r.stage, "probability": p} for h, (_, p) in zip(hits, chosen, strict=True)]}


def concept_chip_scores(ctx: AppContext, ref: str, active: ActiveIndex, vectors: np.ndarray
                        ) -> tuple[Ranker, np.ndarray, np.ndarray | None]:
    """For detection: the concept's ranker, each row's score (cosine to its refined vector) and, at the
    classifier stage, each row's probability (the classifier's)."""
    r = ranker(ctx, get_concept(ctx, ref), active)
    scores = np.asarray(vectors, dtype=np.float32) @ r.vector
    return r, scores, r.probabilities(vectors)


__all__ = ["POOL", "ConceptResults", "Ranker", "concept_ask", "concept_chip_scores", "concept_query",
           "concept_ranking", "concept_results", "create_concept", "delete_concept", "get_concept", "label_concept",
           "list_concepts", "ranker"]

"""Detection use case: a query becomes scored chips with coordinates (GeoJSON), dissolved regions and heat maps.

One function serves ``skyscout detect``, ``POST /v1/detect`` and the Query agent's ``detect`` tool. It scores
*every* chip in scope (a scene, an area of interest, or all scenes) against the query with the model that
built the active index, using the chip vectors already in that index: nothing is embedded again, except the
chips' quadrants when the part check is asked for (:mod:`tools.detect.parts`). Each chip gets its cosine
``score`` and a ``probability`` (:mod:`tools.detect.probability`: the query against background land-cover
prompts at the model's temperature).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.context import AppContext
from app.indexing import open_active_index
from app.models import text_encoder_of
from app.scenes import resolve_scene
from tools.detect.features import Detection, chip_features, feature_collection, merge
from tools.detect.probability import DEFAULT_BACKGROUND, background_for, temperature_of
from tools.detect.scoring import Scored, local_maxima, score_chips, select
from tools.geo import AreaOfInterest, GeoError, aoi_from_geojson, parse_bbox
from tools.search import Query, query_vector, text_vector
from tools.templates import REMOTE_SENSING_TEMPLATES

_GET_CHUNK = 1000
MAX_PART_CHIPS = 20_000  # the part check embeds 4 quadrants per chip: 27 s for 625 chips on 2 cores (skyscout-tiny)


@dataclass
class DetectRequest:
    """What to find and where: a text (and texts to steer away from), a scene, a box or a polygon (EPSG:4326)."""

    text: str
    negative: list[str] = field(default_factory=list)
    scene: str | None = None  # id, id prefix or path
    bbox: str | list[float] | None = None  # W,S,E,N in degrees
    aoi: dict[str, Any] | None = None  # GeoJSON geometry / Feature / FeatureCollection, EPSG:4326
    top_k: int | None = None
    threshold: float | None = None
    merge: bool = False
    nms: bool = False  # keep only chips no better overlapping chip outranks (tools.detect.scoring.local_maxima)
    background: list[str] | None = None
    georeferenced: bool = False  # the caller needs coordinates (GeoJSON, a raster): refuse scenes without a CRS
    concept: str | None = None  # a concept (name or id): its ranking scores the chips (app.concepts)
    parts: bool = False  # temper each chip by its weakest quadrant (tools.detect.parts; embeds 4 per chip)


@dataclass
class DetectResult:
    """Scored and kept chips, the dissolved regions when asked, and what the scores mean."""

    query: str
    model: str
    index: str
    candidates: int
    unindexed: int
    detections: list[Detection]
    threshold: float | None
    top_k: int | None
    background: list[str]
    temperature: float
    merged: list[dict[str, Any]] | None = None
    area: dict[str, Any] | None = None
    scenes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    all_chips: list[Detection] = field(default_factory=list)  # every scored chip (for heat maps)
    stage: str | None = None  # with a concept: text | rocchio | classifier (what scored the chips)
    probability_from: str | None = None  # what the probabilities are, when not the background softmax

    def geojson(self) -> dict[str, Any]:
        """The RFC 7946 FeatureCollection: chip squares, or the merged regions when ``merge`` was asked."""
        features = self.merged if self.merged is not None else chip_features(
            self.detections, query=self.query, model=self.model)
        return feature_collection(features, query=self.query, model=self.model, index=self.index,
                                  threshold=self.threshold, top_k=self.top_k, chips_scored=self.candidates,
                                  probability=self.probability_from or f"softmax of the query against "
                                  f"{len(self.background)} background prompts at temperature {self.temperature:.3g}")

    def summary(self) -> dict[str, Any]:
        """Counts and the best detections, without geometry (for tables and agents)."""
        return {"query": self.query, "model": self.model, "index": self.index, "chips_scored": self.candidates,
                "unindexed": self.unindexed, "detections": len(self.detections),
                "regions": len(self.merged) if self.merged is not None else None, "threshold": self.threshold,
                "top_k": self.top_k, "scenes": self.scenes, "area": self.area, "warnings": self.warnings,
                "stage": self.stage, "best": [{"chip_id": d.chip_id, "scene_id": d.scene_id, "window": d.window,
                          "score": round(d.score, 4), "probability": round(d.probability, 4)}
                         for d in self.detections[:10]]}


def _area(req: DetectRequest) -> AreaOfInterest | None:
    if req.bbox is not None and req.aoi is not None:
        raise ValueError("give a bbox or an area of interest, not both")
    if req.bbox is not None:
        return parse_bbox(req.bbox)
    return aoi_from_geojson(req.aoi, "area of interest") if req.aoi is not None else None


def _chips_in_scope(ctx: AppContext, req: DetectRequest, area: AreaOfInterest | None,
                    warnings: list[str]) -> list[dict[str, Any]]:
    scene_ids = [resolve_scene(ctx, req.scene)] if req.scene else None
    rows = ctx.catalog.chip_rows(scene_ids=scene_ids, bbox=area.bbox if area else None)
    if area is not None:
        rows = [r for r in rows if area.intersects(r["footprint"])]
    if not rows:
        where = f"scene {req.scene}" if req.scene else (area.description if area else "the catalog")
        raise LookupError(f"no chips in {where}; ingest scenes first (`skyscout ingest SCENE.tif`), then "
                          "`skyscout index`")
    if req.georeferenced:
        bare = sorted({r["scene_id"] for r in rows if r["footprint"] is None})
        if bare and req.scene:
            scene = ctx.catalog.get_scene(bare[0])
            raise GeoError(f"scene {bare[0][:12]} ({scene.uri if scene else '?'}) has no CRS, so its chips have no "
                           "coordinates and cannot be written as GeoJSON or a georeferenced raster; its chips can "
                           "still be searched and detected without --out (pixel windows)")
        if bare:
            warnings.append(f"{len(bare)} scene(s) without a CRS left out (no coordinates): "
                            + ", ".join(b[:12] for b in bare))
            rows = [r for r in rows if r["footprint"] is not None]
    return rows


def _vectors(store: Any, ids: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), _GET_CHUNK):
        for key, (vec, _) in store.get(ids[start:start + _GET_CHUNK]).items():
            out[key] = np.asarray(vec, dtype=np.float32)
    return out


def detect(ctx: AppContext, req: DetectRequest, *, store: str | None = None) -> DetectResult:
    """Score every chip in scope for ``req.text`` (or ``req.concept``); keep those above the threshold (or the top
    k). A concept at its classifier stage gives the classifier's probabilities; before it, its refined query is
    scored like a text."""
    if req.concept and not req.text.strip():
        from app.concepts import get_concept

        req = dataclasses.replace(req, text=get_concept(ctx, req.concept)["name"])
    if not req.text.strip():
        raise ValueError("say what to detect, e.g. 'vineyards'")
    warnings: list[str] = []
    area = _area(req)
    rows = _chips_in_scope(ctx, req, area, warnings)
    active = open_active_index(ctx, store)
    _, loaded = ctx.load_model(active.model)
    found = _vectors(active.store, [r["id"] for r in rows])
    indexed = [r for r in rows if r["id"] in found]
    if not indexed:
        raise LookupError(f"none of the {len(rows)} chips in scope is in the active index {active.name}; run "
                          "`skyscout index`")
    if len(indexed) < len(rows):
        warnings.append(f"{len(rows) - len(indexed)} chip(s) in scope are not indexed yet; run `skyscout index`")
    prompts = list(req.background or ctx.config.detect_background or DEFAULT_BACKGROUND)
    encode = _cached_encoder(active.model, text_encoder_of(loaded, ctx.device),
                             warm=[req.text, *req.negative, *prompts])
    qvec = query_vector(Query(texts=[req.text], negative_texts=list(req.negative)), encode_text=encode,
                        store=active.store, catalog=ctx.catalog)
    bvecs = np.stack([text_vector(encode, p) for p in prompts])
    used = background_for(req.text, prompts, text_vector(encode, req.text), bvecs)
    temperature = temperature_of(loaded.model)
    vectors = np.stack([found[r["id"]] for r in indexed])
    stage, about = None, None
    if req.concept:
        qvec, stage, about, concept_scored = _concept_scores(ctx, req.concept, active, vectors)
    scored = score_chips(vectors, qvec, bvecs[used], temperature=temperature)
    if req.concept and concept_scored is not None:
        scored = concept_scored
    elif req.parts:
        scored = _part_checked(active.model, loaded, indexed, scored, qvec, bvecs[used], temperature)
        about = (f"the query against {len(used)} background prompts at temperature {temperature:.3g}, the chip's "
                 "log-odds averaged 2 : 1 with its weakest quadrant's (part check)")
    chips = _detections(indexed, scored)
    peaks = local_maxima(scored.logits, [r["scene_id"] for r in indexed],
                         np.array([r["window"] for r in indexed])) if req.nms else None
    kept = [chips[i] for i in select(scored, threshold=req.threshold, top_k=req.top_k, keep=peaks)]
    threshold = req.threshold if req.threshold is not None or req.top_k is not None else 0.5
    result = DetectResult(
        query=req.text, model=active.model, index=active.name, candidates=len(indexed),
        unindexed=len(rows) - len(indexed), detections=kept, threshold=threshold, top_k=req.top_k,
        background=[prompts[i] for i in used], temperature=temperature, area=area.to_dict() if area else None,
        scenes=sorted({r["scene_id"] for r in indexed}), warnings=warnings, all_chips=chips, stage=stage,
        probability_from=about)
    if req.merge:
        result.merged = merge(kept, query=req.text, model=active.model)
    return result


def _concept_scores(ctx: AppContext, ref: str, active: Any, vectors: np.ndarray
                    ) -> tuple[np.ndarray, str, str | None, Scored | None]:
    """A concept's refined query vector, its stage, and at the classifier stage what the probabilities are and
    the chips scored by the classifier (scores: cosine to the refined query)."""
    from app.concepts import concept_chip_scores

    ranker, cosines, probs = concept_chip_scores(ctx, ref, active, vectors)
    if probs is None or ranker.classifier is None:
        return ranker.vector, ranker.stage, None, None
    c = ranker.classifier
    about = (f"the concept {ranker.concept['name']!r}'s classifier: a logistic regression on {c.n_relevant} relevant "
             f"and {c.n_not_relevant} not relevant marks and {c.n_background} background images")
    logits = c.logits(vectors)
    return ranker.vector, ranker.stage, about, Scored(cosines.astype(np.float64), logits, probs)


class _VectorCache:
    """A bounded map from (model, key) to a vector, least recently used out first, shared by the requests of one
    process (thread-safe)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model_key: str, keys: list[str], compute: Callable[[list[str]], Any]) -> np.ndarray:
        """The vectors of ``keys`` stacked in order; ``compute`` gets the keys not cached (each once)."""
        with self._lock:
            got = {k: self._vectors[(model_key, k)] for k in keys if (model_key, k) in self._vectors}
            for k in got:
                self._vectors.move_to_end((model_key, k))
        missing = [k for k in dict.fromkeys(keys) if k not in got]
        if missing:
            vectors = compute(missing)
            with self._lock:
                for k, v in zip(missing, vectors, strict=True):
                    got[k] = self._vectors[(model_key, k)] = np.asarray(v, dtype=np.float32)
                while len(self._vectors) > self.limit:
                    self._vectors.popitem(last=False)
        return np.stack([got[k] for k in keys])


_PROMPTS = _VectorCache(8192)  # (model, prompt text) -> its vector


def _part_checked(model_key: str, loaded: Any, rows: list[dict[str, Any]], scored: Scored, qvec: np.ndarray,
                  bvecs: np.ndarray, temperature: float) -> Scored:
    """``scored`` with each chip's log-odds tempered by its weakest quadrant's (:mod:`tools.detect.parts`)."""
    from tools.detect.parts import combine, part_logits
    from tools.detect.probability import sigmoid

    if len(rows) > MAX_PART_CHIPS:
        raise ValueError(f"the part check embeds the four quadrants of every chip in scope, and {len(rows)} chips "
                         f"are more than {MAX_PART_CHIPS}; narrow the scope (--scene, --bbox) or leave out --parts")
    parts = _part_vectors(model_key, loaded, rows)
    logits = combine(scored.logits, part_logits(parts, qvec, bvecs, temperature=temperature))
    return Scored(scored.scores, logits, sigmoid(logits))


_PARTS = _VectorCache(MAX_PART_CHIPS)  # (model, chip id) -> its quadrants' vectors


def _part_vectors(model_key: str, loaded: Any, rows: list[dict[str, Any]]) -> np.ndarray:
    """``(len(rows), 4, dim)`` quadrant vectors of the chips, embedded once per model and process (they do not
    depend on the query, so the next query on the same scene reuses them)."""
    from tools.detect.parts import embed_parts
    from tools.embedding import input_size
    from tools.imageio import load_rgb
    from tools.models.encode import encode_images

    size = input_size(loaded.model)
    uri_of = {r["id"]: r["uri"] for r in rows}

    def embed(ids: list[str]) -> np.ndarray:
        return embed_parts([uri_of[i] for i in ids],
                           lambda uris: encode_images(loaded, [load_rgb(u, min_size=size) for u in uris]))

    return _PARTS.get(model_key, [r["id"] for r in rows], embed)


def _cached_encoder(model_key: str, encode: Callable[[list[str]], np.ndarray], *, warm: list[str]
                    ) -> Callable[[list[str]], np.ndarray]:
    """``encode`` with a per-process cache of prompt vectors (the background prompts are the same for every
    detection), and every prompt of ``warm`` texts encoded up front in one batch."""

    def cached(texts: list[str]) -> np.ndarray:
        return _PROMPTS.get(model_key, texts, encode)

    cached([tpl.format(t) for t in warm for tpl in REMOTE_SENSING_TEMPLATES])
    return cached


def _detections(rows: list[dict[str, Any]], scored: Scored) -> list[Detection]:
    return [Detection(chip_id=r["id"], scene_id=r["scene_id"], score=float(scored.scores[i]),
                      probability=float(scored.probabilities[i]), window=list(r["window"]), geometry=r["footprint"],
                      uri=r["uri"], logit=float(scored.logits[i])) for i, r in enumerate(rows)]


def export_geojson(ctx: AppContext, result: DetectResult, out: str | Path | None = None) -> Path:
    """Write the result's FeatureCollection: to ``out`` (inside a data root or SKYSCOUT_HOME), or by default
    to ``<SKYSCOUT_HOME>/exports/<query>-<time>.geojson``."""
    import json
    import re
    import time

    if out is None:
        slug = re.sub(r"[^a-z0-9]+", "-", result.query.lower()).strip("-")[:40] or "detections"
        target = ctx.config.home / "exports" / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}.geojson"
    else:
        target = Path(out).expanduser()
        home = ctx.config.home.expanduser().resolve()
        parent = target.parent.resolve()
        if not (parent == home or parent.is_relative_to(home)):
            from tools.paths import check_allowed

            check_allowed(parent, ctx.config.roots)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result.geojson()), encoding="utf-8")
    return target.resolve()


def write_rasters(ctx: AppContext, result: DetectResult, path: str | Path) -> list[dict[str, Any]]:
    """Write each scene's heat map of every scored chip as a COG: ``path`` for one scene, else
    ``<stem>_<scene id>.tif`` beside it."""
    from tools.detect.raster import write_score_cog

    target = Path(path)
    by_scene: dict[str, list[Detection]] = {}
    for d in result.all_chips:
        by_scene.setdefault(d.scene_id, []).append(d)
    written = []
    for scene_id, dets in sorted(by_scene.items()):
        scene = ctx.catalog.get_scene(scene_id)
        if scene is None:
            continue
        out = target if len(by_scene) == 1 else target.with_name(f"{target.stem}_{scene_id[:12]}{target.suffix}")
        written.append(write_score_cog(out, dets, width=scene.width, height=scene.height, crs=scene.crs,
                                       transform=scene.transform, tags={"query": result.query,
                                                                        "model": result.model,
                                                                        "scene_id": scene_id}))
    return written


__all__ = ["DetectRequest", "DetectResult", "detect", "export_geojson", "write_rasters"]

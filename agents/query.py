"""The Query agent: answer searches (text, example image, both, negative terms, filters) and explain hits.

Every search goes through :func:`app.search.search`, the same function the CLI and the HTTP API call: the
active index, with the model that built it. Results carry image ids, paths and scores, never vectors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from agents.concepts import TOOLS as CONCEPT_TOOLS
from agents.context import AgentContext
from agents.toolkit import ToolAgent, ToolOutput, ToolSpec
from app.detect import DetectRequest, detect, export_geojson
from app.export import export_hits
from app.images import resolve_image
from app.search import explain_hit, record_feedback, search
from prompts.agents import AGENT_SYSTEM_PROMPTS, DETECT_LINE, HIT_LINE, NO_HITS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.geo import parse_bbox
from tools.search import Query


class SearchArgs(BaseModel):
    """Arguments of ``search_images``."""

    query: str | None = Field(default=None, description="what to look for, in words")
    image: str | None = Field(default=None, description="an example image: a file path or a catalog image id")
    negative: list[str] = Field(default_factory=list, description="things the results should not show")
    k: int = Field(default=10, ge=1, le=1000, description="how many results")
    filters: dict[str, Any] | None = Field(default=None, description='metadata filter, e.g. {"label": "beach"}')
    min_score: float | None = Field(default=None, ge=-1, le=1)
    scene: str | None = Field(default=None, description="only chips of this scene (id, id prefix or path)")
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                     description="only chips touching W, S, E, N (degrees)")
    liked_from: str | None = Field(default=None, description="a query id: also search like the results marked "
                                   "relevant on that search, and away from those marked not relevant")


class DetectArgs(BaseModel):
    """Arguments of ``detect``."""

    query: str = Field(description="what to find, e.g. vineyards")
    negative: list[str] = Field(default_factory=list, description="things the detections should not show")
    scene: str | None = Field(default=None, description="only this scene (id, id prefix or path)")
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4,
                                     description="only chips touching W, S, E, N (degrees)")
    top_k: int | None = Field(default=None, ge=1, description="keep the best k chips")
    threshold: float | None = Field(default=None, ge=0, le=1, description="minimum probability (default 0.5)")
    merge: bool = Field(default=False, description="dissolve touching chips into polygons with their area")
    out: str | None = Field(default=None, description="where to write the GeoJSON (default: SKYSCOUT_HOME/exports)")
    concept: str | None = Field(default=None, description="score with a saved concept (name or id) instead")


class ExplainHitArgs(BaseModel):
    """Arguments of ``explain_hit``."""

    image_id: str = Field(description="the image id of a hit")
    query: str = Field(description="the text query it was found for")


class FeedbackArgs(BaseModel):
    """Arguments of ``record_feedback``."""

    image_id: str
    relevant: bool
    query: str | None = None
    query_id: str | None = None


class ExportArgs(BaseModel):
    """Arguments of ``export_results``."""

    hits: list[dict[str, Any]] = Field(description="the results to export: image_id and score of each")
    format: Literal["geojson", "json"] = "geojson"
    query: str | None = None
    query_id: str | None = None


def _why(hit: dict[str, Any]) -> str:
    parts = []
    if hit.get("label"):
        parts.append(f"label {hit['label']}")
    if hit.get("caption"):
        parts.append(f'"{hit["caption"]}"')
    return " (" + "; ".join(parts) + ")" if parts else ""


def _described(args: SearchArgs, images: list[str]) -> str:
    parts = (f"'{args.query}'" if args.query else "", f"image {images[0][:12]}" if images else "")
    described = " + ".join(p for p in parts if p)
    if args.negative:
        described += " without " + ", ".join(args.negative)
    if args.filters:
        described += " where " + ", ".join(f"{k}={v}" for k, v in args.filters.items())
    return described


def search_images(ctx: AgentContext, args: SearchArgs) -> ToolOutput:
    """Rank the active index's images for a text and/or an example image; describe each hit."""
    liked, disliked = _marked(ctx, args.liked_from)
    if not args.query and not args.image and not liked:
        raise ValueError("say what to look for (a text) or give an example image (a path or an image id)")
    images = [resolve_image(ctx.app, args.image)] if args.image else []
    area: dict[str, Any] = {"aoi": parse_bbox(args.bbox).to_dict()["geometry"]} if args.bbox else {}
    query = Query(texts=[args.query] if args.query else [], images=[*images, *liked], negative_images=disliked,
                  negative_texts=list(args.negative), k=args.k, filter=args.filters or None,
                  min_score=args.min_score, scenes=[args.scene] if args.scene else [], **area)
    result = search(ctx.app, query)
    hits = [{"rank": h.rank, "image_id": h.image_id, "uri": h.uri, "score": h.score, "label": h.label,
             "caption": h.captions[0] if h.captions else None, "bounds": h.bounds, "scene_id": h.scene_id,
             "geometry": h.geometry} for h in result.hits]
    lines = "".join(HIT_LINE.format(rank=h["rank"], name=Path(str(h["uri"] or h["image_id"])).name, score=h["score"],
                                    why=_why(h)) for h in hits) or NO_HITS
    data = {"query_id": result.query_id, "index": result.index, "model": result.model, "query": args.query,
            "image": images[0] if images else None, "negative": list(args.negative), "filters": args.filters,
            "k": args.k, "hits": hits}
    summary = SUMMARIES["search_images"].format(n=len(hits), described=_described(args, images),
                                                index=result.index, hits=lines)
    return ToolOutput(summary, data)


def _marked(ctx: AgentContext, query_id: str | None) -> tuple[list[str], list[str]]:
    """The images marked relevant and not relevant on the search ``query_id`` (none without one)."""
    if not query_id:
        return [], []
    marks = [r for r in ctx.app.catalog.feedback() if r["query_id"] == query_id and r.get("concept_id") is None]
    liked = [r["image_id"] for r in marks if r["relevant"]]
    if not liked:
        raise LookupError("none of the last search's results is marked relevant yet: say which ones are right "
                          "('the second one is right') first")
    return liked, [r["image_id"] for r in marks if not r["relevant"]]


def detect_tool(ctx: AgentContext, args: DetectArgs) -> ToolOutput:
    """Score every chip in scope for a query; write the detections (chip squares, or merged polygons) as
    GeoJSON and answer with how many there are and the best ones."""
    result = detect(ctx.app, DetectRequest(text=args.query, negative=list(args.negative), scene=args.scene,
                                           concept=args.concept,
                                           bbox=args.bbox, top_k=args.top_k, threshold=args.threshold,
                                           merge=args.merge, georeferenced=True))
    path = export_geojson(ctx.app, result, args.out)
    data = {**result.summary(), "out": str(path)}
    where = f"scene {args.scene}" if args.scene else (f"bbox {args.bbox}" if args.bbox else "every scene")
    kept = f"p >= {result.threshold}" if result.threshold is not None else f"top {result.top_k}"
    regions = f", dissolved into {len(result.merged)} region(s)" if result.merged is not None else ""
    best = "".join(DETECT_LINE.format(rank=i + 1, scene=d.scene_id[:12], window=",".join(map(str, d.window)),
                                      score=d.score, probability=d.probability)
                   for i, d in enumerate(result.detections[:5]))
    summary = SUMMARIES["detect"].format(n=len(result.detections), query=args.query, scored=result.candidates,
                                         where=where, kept=kept, regions=regions, out=path, best=best)
    return ToolOutput(summary, data)


def explain(ctx: AgentContext, args: ExplainHitArgs) -> ToolOutput:
    """Similarity of the query to the image, and the image's caption closest to the query."""
    data = explain_hit(ctx.app, args.image_id, args.query)
    label = f"; it is labelled {data['label']}" if data["label"] else ""
    best = data["closest_caption"]
    caption = (f'; its caption closest to the query is "{best}" (similarity {data["caption_similarity"]:.3f})'
               if best else "")
    return ToolOutput(SUMMARIES["explain_hit"].format(image_id=args.image_id[:12], score=data["score"],
                                                      query=args.query, label=label, caption=caption), data)


def feedback(ctx: AgentContext, args: FeedbackArgs) -> ToolOutput:
    """Store a relevant / not relevant judgement of one hit (the planner counts the negative ones)."""
    feedback_id = record_feedback(ctx.app, image_id=args.image_id, relevant=args.relevant, query=args.query,
                                  query_id=args.query_id)
    data = {"feedback_id": feedback_id, "image_id": args.image_id, "relevant": args.relevant, "query": args.query}
    verdict = "relevant" if args.relevant else "not relevant"
    return ToolOutput(SUMMARIES["record_feedback"].format(image_id=args.image_id[:12], verdict=verdict,
                                                          query=args.query or "", feedback_id=feedback_id), data)


def export_results(ctx: AgentContext, args: ExportArgs) -> ToolOutput:
    """Write the results a user is looking at to a file (GeoJSON with footprints, or JSON)."""
    data = export_hits(ctx.app, args.hits, fmt=args.format, query=args.query, query_id=args.query_id)
    return ToolOutput(SUMMARIES["export_results"].format(**data), data)


TOOLS = (
    ToolSpec("search_images", search_images, SearchArgs, TOOL_DESCRIPTIONS["search_images"]),
    ToolSpec("detect", detect_tool, DetectArgs, TOOL_DESCRIPTIONS["detect"]),
    ToolSpec("explain_hit", explain, ExplainHitArgs, TOOL_DESCRIPTIONS["explain_hit"]),
    ToolSpec("record_feedback", feedback, FeedbackArgs, TOOL_DESCRIPTIONS["record_feedback"]),
    ToolSpec("export_results", export_results, ExportArgs, TOOL_DESCRIPTIONS["export_results"]),
)
AGENT = ToolAgent("query", (*TOOLS, *CONCEPT_TOOLS), system_prompt=AGENT_SYSTEM_PROMPTS["query"])

__all__ = ["AGENT", "TOOLS", "DetectArgs", "ExplainHitArgs", "FeedbackArgs", "SearchArgs"]

"""The Query agent: answer searches (text, example image, both, negative terms, filters) and explain hits.

A search always runs against the active index (the ``active_index:<store>`` alias), with the text encoder
of the model that built that index, so query and image vectors share one space. Each hit is described from
the catalog (label, captions, bounds); ``explain_hit`` says which of the image's captions is closest to
the query. Results carry image ids, paths and scores, never vectors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agents.deps import AgentDeps
from agents.llm import ToolAgent, ToolOutput, agent_tool
from prompts.agents import AGENT_SYSTEM_PROMPTS, HIT_LINE, NO_HITS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.embedding import alias_name
from tools.imageio import sha256_bytes
from tools.paths import check_allowed
from tools.search import Query, search, text_vector

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from tools.stores.base import VectorStore

_IMAGE_ID_RE = re.compile(r"^[0-9a-f]{64}$")


class SearchArgs(BaseModel):
    """Arguments of ``search_images``."""

    query: str | None = Field(default=None, description="what to look for, in words")
    image: str | None = Field(default=None, description="an example image: a file path or a catalog image id")
    negative: list[str] = Field(default_factory=list, description="things the results should not show")
    k: int = Field(default=10, ge=1, le=1000, description="how many results")
    filters: dict[str, Any] | None = Field(default=None, description='metadata filter, e.g. {"label": "beach"}')
    min_score: float | None = Field(default=None, ge=-1, le=1)


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


def active_index(deps: AgentDeps) -> tuple[VectorStore, str]:
    """The active index's store and the key of the model that built it."""
    name = deps.catalog.get_alias(alias_name(deps.store_kind))
    info = deps.catalog.get_index(name) if name else None
    if not name or info is None or info["state"] != "complete":
        raise LookupError(
            f"there is no complete active {deps.store_kind} index to search; build one first "
            '(`skyscout ask "index the images"`)'
        )
    return deps.registry().open(name, int(info["dim"]), create=False), str(info["model"])


def _image_id(deps: AgentDeps, image: str) -> str:
    if _IMAGE_ID_RE.match(image.lower()):
        return image.lower()
    path = check_allowed(Path(image).expanduser(), deps.allowed_roots)
    if not path.is_file():
        raise FileNotFoundError(f"example image {image} does not exist")
    image_id = sha256_bytes(path.read_bytes())
    if not deps.catalog.has_image(image_id):
        raise LookupError(f"example image {image} is not in the catalog; ingest it first")
    return image_id


def _image_encoder(deps: AgentDeps, model_key: str) -> Any:
    from tools.evaluation import encode_image_files

    _, loaded = deps.load(model_key)

    def encode(paths: list[str]) -> np.ndarray:
        return encode_image_files(loaded.model, loaded.preprocess_val, paths, device=deps.device)

    return encode


def search_images(deps: AgentDeps, args: SearchArgs) -> ToolOutput:
    """Rank the active index's images for a text and/or an example image; describe each hit."""
    if not args.query and not args.image:
        raise ValueError("say what to look for (a text) or give an example image (a path or an image id)")
    store, model_key = active_index(deps)
    images = [_image_id(deps, args.image)] if args.image else []
    query = Query(
        texts=[args.query] if args.query else [],
        images=images,
        negative_texts=list(args.negative),
        k=args.k,
        filter=args.filters or None,
        min_score=args.min_score,
    )
    result = search(
        query,
        store=store,
        catalog=deps.catalog,
        encode_text=deps.text_encoder(model_key),
        encode_images=_image_encoder(deps, model_key),
    )
    hits: list[dict[str, Any]] = [
        {
            "rank": h.rank,
            "image_id": h.image_id,
            "uri": h.uri,
            "score": h.score,
            "label": h.label,
            "caption": h.captions[0] if h.captions else None,
            "bounds": h.bounds,
        }
        for h in result.hits
    ]
    described = " + ".join(
        p for p in (f"'{args.query}'" if args.query else "", f"image {images[0][:12]}" if images else "") if p
    )
    if args.negative:
        described += " without " + ", ".join(args.negative)
    if args.filters:
        described += " where " + ", ".join(f"{k}={v}" for k, v in args.filters.items())
    lines = (
        "".join(
            HIT_LINE.format(
                rank=h["rank"], name=Path(h["uri"] or h["image_id"]).name, score=h["score"], why=_why(h)
            )
            for h in hits
        )
        or NO_HITS
    )
    data = {
        "query_id": result.query_id,
        "index": result.index,
        "model": model_key,
        "query": args.query,
        "image": images[0] if images else None,
        "negative": list(args.negative),
        "filters": args.filters,
        "k": args.k,
        "hits": hits,
    }
    return ToolOutput(
        SUMMARIES["search_images"].format(n=len(hits), described=described, index=result.index, hits=lines),
        data,
    )


def _why(hit: dict[str, Any]) -> str:
    parts = []
    if hit.get("label"):
        parts.append(f"label {hit['label']}")
    if hit.get("caption"):
        parts.append(f'"{hit["caption"]}"')
    return " (" + "; ".join(parts) + ")" if parts else ""


def explain_hit(deps: AgentDeps, args: ExplainHitArgs) -> ToolOutput:
    """Similarity of the query to the image, and the image's caption closest to the query."""
    store, model_key = active_index(deps)
    found = store.get([args.image_id])
    if args.image_id not in found:
        raise LookupError(f"image {args.image_id} is not in the active index {store.name}")
    vector = np.asarray(found[args.image_id][0], dtype=np.float32)
    encode = deps.text_encoder(model_key)
    q = text_vector(encode, args.query)
    record = deps.catalog.get_image(args.image_id)
    captions = deps.catalog.captions_of(args.image_id)
    best: tuple[str, float] | None = None
    if captions:
        sims = encode(captions) @ q
        i = int(np.argmax(sims))
        best = (captions[i], float(sims[i]))
    data = {
        "image_id": args.image_id,
        "query": args.query,
        "score": float(vector @ q),
        "label": record.labels[0] if record and record.labels else None,
        "uri": record.uri if record else None,
        "closest_caption": best[0] if best else None,
        "caption_similarity": best[1] if best else None,
    }
    label = f"; it is labelled {data['label']}" if data["label"] else ""
    caption = f'; its caption closest to the query is "{best[0]}" (similarity {best[1]:.3f})' if best else ""
    return ToolOutput(
        SUMMARIES["explain_hit"].format(
            image_id=args.image_id[:12], score=data["score"], query=args.query, label=label, caption=caption
        ),
        data,
    )


def record_feedback(deps: AgentDeps, args: FeedbackArgs) -> ToolOutput:
    """Store a relevant / not relevant judgement of one hit (the planner counts the negative ones)."""
    if not deps.catalog.has_image(args.image_id):
        raise LookupError(f"image {args.image_id} is not in the catalog")
    model = (deps.catalog.get_index(deps.catalog.get_alias(alias_name(deps.store_kind)) or "") or {}).get(
        "model"
    )
    feedback_id = deps.catalog.add_feedback(
        image_id=args.image_id, relevant=args.relevant, query=args.query, query_id=args.query_id, model=model
    )
    data = {
        "feedback_id": feedback_id,
        "image_id": args.image_id,
        "relevant": args.relevant,
        "query": args.query,
    }
    verdict = "relevant" if args.relevant else "not relevant"
    return ToolOutput(
        SUMMARIES["record_feedback"].format(
            image_id=args.image_id[:12], verdict=verdict, query=args.query or "", feedback_id=feedback_id
        ),
        data,
    )


def query_tools(deps: AgentDeps) -> list[StructuredTool]:
    """The Query agent's tools, bound to ``deps``."""
    return [
        agent_tool(
            lambda a: search_images(deps, a),
            name="search_images",
            description=TOOL_DESCRIPTIONS["search_images"],
            args_schema=SearchArgs,
        ),
        agent_tool(
            lambda a: explain_hit(deps, a),
            name="explain_hit",
            description=TOOL_DESCRIPTIONS["explain_hit"],
            args_schema=ExplainHitArgs,
        ),
        agent_tool(
            lambda a: record_feedback(deps, a),
            name="record_feedback",
            description=TOOL_DESCRIPTIONS["record_feedback"],
            args_schema=FeedbackArgs,
        ),
    ]


def create_query_agent(*, deps: AgentDeps, llm: BaseChatModel | None = None) -> ToolAgent:
    """The Query agent over ``deps`` (models from ``deps.models``, indexes from ``deps.open_registry``)."""
    return ToolAgent("query", query_tools(deps), llm=llm, system_prompt=AGENT_SYSTEM_PROMPTS["query"])


__all__ = [
    "ExplainHitArgs",
    "FeedbackArgs",
    "SearchArgs",
    "active_index",
    "create_query_agent",
    "query_tools",
]

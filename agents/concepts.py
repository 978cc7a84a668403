"""The Query agent's concept tools, and the concept requests read before routing.

Tools: ``create_concept``, ``label_concept``, ``concept_results``, ``concept_ask``, ``remember_concept`` and
``list_concepts``, each over :mod:`app.concepts` (the same use cases the CLI and HTTP call). Requests read
deterministically (:func:`read_concept_request`): "remember these as vineyards" (the conversation's last search
becomes a concept), "more like the ones I liked" (a search from the marks given on the last one), "show concept
vineyards", "what should I label next for vineyards", "create a concept vineyards".
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.toolkit import ToolOutput, ToolSpec
from app.concepts import concept_ask, concept_results, create_concept, get_concept, label_concept, list_concepts
from prompts.concepts import CONCEPT_HIT_LINE, CONCEPT_SUMMARIES, CONCEPT_TOOL_DESCRIPTIONS
from tools.catalog import ConceptExistsError


class ConceptArgs(BaseModel):
    """Arguments of ``create_concept``."""

    name: str = Field(min_length=1, max_length=100, description="the concept's name, e.g. vineyards")
    texts: list[str] = Field(default_factory=list, description="query texts (default: the name)")
    images: list[str] = Field(default_factory=list, description="example images: ids or paths")
    negative: list[str] = Field(default_factory=list, description="texts the results should not show")


class LabelArgs(BaseModel):
    """Arguments of ``label_concept``."""

    concept: str = Field(description="the concept's name or id")
    relevant: list[str] = Field(default_factory=list, description="images that are the concept")
    not_relevant: list[str] = Field(default_factory=list, description="images that are not")


class ResultsArgs(BaseModel):
    """Arguments of ``concept_results`` and ``concept_ask``."""

    concept: str = Field(description="the concept's name or id")
    k: int = Field(default=10, ge=1, le=200, description="how many results (or images to ask about)")
    scene: str | None = Field(default=None, description="only chips of this scene")
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4, description="W, S, E, N degrees")


class RememberArgs(BaseModel):
    """Arguments of ``remember_concept``: the conversation's last search."""

    name: str = Field(min_length=1, max_length=100)
    query: str | None = None
    image: str | None = None
    negative: list[str] = Field(default_factory=list)
    query_id: str | None = None
    hits: list[str] = Field(default_factory=list, description="the image ids of the last search's hits")


class NoArgs(BaseModel):
    """No arguments."""


def _query_text(c: dict[str, Any]) -> str:
    return ", ".join(c["texts"]) or (f"{len(c['image_ids'])} example image(s)" if c["image_ids"] else c["name"])


def _hit_lines(hits: list[dict[str, Any]]) -> str:
    return "".join(CONCEPT_HIT_LINE.format(
        rank=i + 1, name=Path(str(h.get("uri") or h["image_id"])).name, score=h["score"],
        probability="" if h.get("probability") is None else f"  p {h['probability']:.2f}",
        why=f" (label {h['label']})" if h.get("label") else "") for i, h in enumerate(hits))


def _brief(hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: h.get(k) for k in ("rank", "image_id", "uri", "score", "probability", "stage", "label")}
            for h in hits]


def create(ctx: AgentContext, args: ConceptArgs) -> ToolOutput:
    c = create_concept(ctx.app, args.name, texts=args.texts, image_ids=args.images, negative_texts=args.negative)
    return ToolOutput(CONCEPT_SUMMARIES["create_concept"].format(name=c["name"], id=c["id"], query=_query_text(c)),
                      {"concept": c})


def label(ctx: AgentContext, args: LabelArgs) -> ToolOutput:
    c = label_concept(ctx.app, args.concept, [(i, True) for i in args.relevant] +
                      [(i, False) for i in args.not_relevant])
    return ToolOutput(CONCEPT_SUMMARIES["label_concept"].format(name=c["name"], **c["labels"]), {"concept": c})


def results(ctx: AgentContext, args: ResultsArgs) -> ToolOutput:
    doc = concept_results(ctx.app, args.concept, k=args.k, scene=args.scene, bbox=args.bbox).to_dict()
    hits = _brief(doc["hits"])
    summary = CONCEPT_SUMMARIES["concept_results"].format(n=len(hits), name=doc["concept"]["name"],
                                                          stage=doc["stage"], reason=doc["reason"],
                                                          hits=_hit_lines(hits))
    return ToolOutput(summary, {**doc, "hits": hits})


def ask(ctx: AgentContext, args: ResultsArgs) -> ToolOutput:
    doc = concept_ask(ctx.app, args.concept, n=min(args.k, 50), scene=args.scene, bbox=args.bbox)
    hits = _brief(doc["hits"])
    summary = CONCEPT_SUMMARIES["concept_ask"].format(name=doc["concept"]["name"], why=doc["why"],
                                                      hits=_hit_lines(hits))
    return ToolOutput(summary, {**doc, "hits": hits})


def remember(ctx: AgentContext, args: RememberArgs) -> ToolOutput:
    """The last search as a concept (a new one, or more marks on the one of that name): the user's marks on its
    results are kept; the results the user did not mark are labelled relevant ("these are vineyards")."""
    app = ctx.app
    try:
        concept, verb = create_concept(app, args.name, texts=[args.query] if args.query else [],
                                       image_ids=[args.image] if args.image else [],
                                       negative_texts=args.negative), "Saved"
    except ConceptExistsError:
        concept, verb = get_concept(app, args.name), "Added to"
    given = {r["image_id"]: bool(r["relevant"]) for r in app.catalog.feedback()
             if args.query_id and r["query_id"] == args.query_id and r.get("concept_id") is None}
    unmarked = [i for i in args.hits if i not in given]
    labels = [*given.items(), *((i, True) for i in unmarked)]
    if labels:
        concept = label_concept(app, concept["id"], labels)
    summary = CONCEPT_SUMMARIES["remember_concept"].format(
        verb=verb, name=concept["name"], query=args.query or args.image or "", marked=len(given), added=len(unmarked),
        **concept["labels"])
    return ToolOutput(summary, {"concept": concept, "kept_marks": len(given), "labelled_relevant": unmarked})


def listing(ctx: AgentContext, args: NoArgs) -> ToolOutput:
    docs = list_concepts(ctx.app)
    shown = "; ".join(f"{c['name']} ({c['labels']['relevant']} relevant, {c['labels']['not_relevant']} not)"
                      for c in docs) or "none yet"
    return ToolOutput(CONCEPT_SUMMARIES["list_concepts"].format(n=len(docs), concepts=shown), {"concepts": docs})


TOOLS = tuple(ToolSpec(name, fn, schema, CONCEPT_TOOL_DESCRIPTIONS[name]) for name, fn, schema in (
    ("create_concept", create, ConceptArgs), ("label_concept", label, LabelArgs),
    ("concept_results", results, ResultsArgs), ("concept_ask", ask, ResultsArgs),
    ("remember_concept", remember, RememberArgs), ("list_concepts", listing, NoArgs)))
#: the concept tools a ``read`` caller may use: all of them (a concept and its marks are feedback)
READ_CONCEPT_TOOLS = frozenset(t.name for t in TOOLS)

# -- requests read before routing -----------------------------------------------------------------------------

_NAME = r"[\"']?(?P<name>[\w][\w .'-]*?)[\"']?"
_REMEMBER = re.compile(rf"^(?:please\s+)?(?:remember|save|keep|store)\s+(?:these|them|those|this|the\s+results|"
                       rf"these\s+results)\s+as\s+(?!(?:a\s+)?(?:geo\s?json|json|file)\b)(?:a\s+|the\s+|my\s+)?"
                       rf"(?:concept\s+)?{_NAME}$", re.IGNORECASE)  # "save these as geojson" is an export
_LIKED = re.compile(r"^(?:show\s+me\s+|find\s+|search\s+(?:for\s+)?|give\s+me\s+)?(?:some\s+)?more\s+(?:like|of)\s+"
                    r"(?:the\s+ones?|those|these|what)\s+i\s+(?:liked|marked(?:\s+(?:as\s+)?(?:relevant|right|good))?|"
                    r"said\s+(?:were|was)\s+(?:right|relevant|good))$", re.IGNORECASE)
_SHOW = re.compile(rf"^(?:show|find|search|rank|run|list)\s+(?:me\s+)?(?:the\s+)?(?:results\s+(?:of|for)\s+)?"
                   rf"(?:my\s+)?concept\s+{_NAME}$", re.IGNORECASE)
_ASK = re.compile(rf"^(?:what|which\s+(?:images?|tiles?|ones?))\s+(?:should|shall|do)\s+i\s+(?:label|mark)\s+next"
                  rf"(?:\s+for\s+(?:the\s+)?(?:concept\s+)?{_NAME})?$", re.IGNORECASE)
_CREATE = re.compile(rf"^(?:create|make|start|add)\s+(?:a\s+)?(?:new\s+)?concept\s+{_NAME}"
                     rf"(?:\s+(?:for|from|of|as)\s+[\"']?(?P<query>[^\"']+?)[\"']?)?$", re.IGNORECASE)
_LIST = re.compile(r"^(?:list|show)\s+(?:me\s+)?(?:all\s+)?(?:my\s+|the\s+)?concepts$", re.IGNORECASE)


def _concept(action: str, text: str, **args: Any) -> list[dict[str, Any]]:
    return [{"intent": "concept", "text": text, "args": {"action": action, **args}}]


def read_concept_request(request: str, last: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The concept command a request asks for (None: not a concept request). "remember these as ..." and "more
    like the ones I liked" need the conversation's last search ``last`` (LookupError without one)."""
    text = request.strip().rstrip(".!?")
    if m := _REMEMBER.match(text):
        if not last:
            raise LookupError("there is no search in this conversation to remember; search first, e.g. "
                              "'find vineyards'")
        return _concept("remember_concept", text, name=m.group("name").strip(), query=last.get("query"),
                        image=last.get("image"), negative=last.get("negative") or [], query_id=last.get("query_id"),
                        hits=[h["image_id"] for h in last.get("hits") or []])
    if _LIKED.match(text):
        if not last or not last.get("query_id"):
            raise LookupError("there is no search in this conversation whose results you marked; search, mark "
                              "results ('the second one is right'), then ask for more like them")
        args = {k: last.get(k) for k in ("query", "negative", "filters", "k")}
        return [{"intent": "search", "text": text, "args": {**{k: v for k, v in args.items() if v},
                                                            "liked_from": last["query_id"]}}]
    if m := _SHOW.match(text):
        return _concept("concept_results", text, concept=m.group("name").strip())
    if m := _ASK.match(text):
        if not m.group("name"):
            raise LookupError("say which concept, e.g. 'what should I label next for vineyards'")
        return _concept("concept_ask", text, concept=m.group("name").strip(), k=5)
    if m := _CREATE.match(text):
        query = (m.group("query") or "").strip()
        return _concept("create_concept", text, name=m.group("name").strip(), texts=[query] if query else [])
    if _LIST.match(text):
        return _concept("list_concepts", text)
    return None


__all__ = ["READ_CONCEPT_TOOLS", "TOOLS", "read_concept_request"]

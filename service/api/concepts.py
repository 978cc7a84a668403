"""Concept routes: ``/v1/concepts`` (create, list), ``/v1/concepts/{id}`` (show, delete), ``.../labels``,
``.../results`` and ``.../ask``.

Scopes: reading (list, show, results, ask) needs a ``read`` token. Creating a concept and labelling its
images need only ``read`` too: a concept is a saved search and its marks are feedback, which a ``read`` token
may give (they start no work and change no model; the planner decides what to do with them). Deleting a
concept needs ``operate``: it takes its marks out of the judgments others' evaluations rest on.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Receive, Scope, Send

from app.concepts import concept_ask, concept_results, create_concept, delete_concept, get_concept, label_concept
from app.concepts import list_concepts as all_concepts
from service.api.deps import AUTH, OPERATE, App, Redact
from service.api.schemas import ERROR_RESPONSES, ImageId
from tools.catalog import ConceptExistsError
from tools.search import SearchHit


class _SharedPathRoute(APIRoute):
    """A route whose 405 answer lists every method of its path (``/v1/concepts`` answers GET and POST; Starlette
    alone would name only the methods of the first route that matched the path)."""

    methods_of_path: dict[str, set[str]] = {}

    def __init__(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.methods_of_path.setdefault(self.path_format, set()).update(self.methods or ())

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in (self.methods or ()):
            allowed = ", ".join(sorted(self.methods_of_path.get(self.path_format, self.methods or ())))
            raise HTTPException(405, "Method Not Allowed", headers={"Allow": allowed})
        await super().handle(scope, receive, send)


router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["concepts"],
                   route_class=_SharedPathRoute)

Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
ConceptId = Annotated[str, Field(min_length=1, max_length=100)]


class ConceptBody(BaseModel):
    """A new concept: a unique name (case does not count), its query texts, example images and negatives.
    Without texts and images the name is the query."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100, pattern=r"\S")
    texts: list[Text] = Field(default_factory=list, max_length=20)
    image_ids: list[ImageId] = Field(default_factory=list, max_length=50)
    negative_texts: list[Text] = Field(default_factory=list, max_length=20)


class LabelCounts(BaseModel):
    relevant: int
    not_relevant: int


class Concept(BaseModel):
    """A concept as every concept route returns it."""

    id: str
    name: str
    texts: list[str]
    image_ids: list[str]
    negative_texts: list[str]
    labels: LabelCounts
    created_at: float
    updated_at: float


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_id: ImageId
    relevant: bool


class LabelList(BaseModel):
    """Several marks at once; the last mark of an image wins."""

    model_config = ConfigDict(extra="forbid")
    labels: list[Label] = Field(..., min_length=1, max_length=500)


def _pairs(body: Label | LabelList) -> list[tuple[str, bool]]:
    marks = body.labels if isinstance(body, LabelList) else [body]
    return [(mark.image_id, mark.relevant) for mark in marks]


@dataclasses.dataclass
class ConceptHit(SearchHit):
    """A search hit (as ``/v1/search`` returns it) with the stage that ranked it and the classifier's
    probability (None before the classifier stage)."""

    thumbnail: str = ""
    stage: str = ""
    probability: float | None = None


class ResultsResponse(BaseModel):
    concept: Concept
    stage: str = Field(description="text | rocchio | classifier: what ranked these hits")
    reason: str
    index: str
    unindexed_marks: int = Field(description="marked images the active index does not hold (they count once "
                                             "it does)")
    hits: list[ConceptHit]


class AskResponse(BaseModel):
    concept: Concept
    stage: str
    why: str
    hits: list[ConceptHit]


def _hits(hits: list[dict[str, Any]], redact: Redact) -> list[ConceptHit]:
    return [ConceptHit(**{**h, "uri": redact.path(h["uri"]), "thumbnail": f"/v1/images/{h['image_id']}/thumbnail"})
            for h in hits]


@router.post("/concepts", response_model=Concept, status_code=201)
def create_route(body: ConceptBody, app: App) -> dict[str, Any]:
    """409 when a concept of that name (any case) exists."""
    try:
        return create_concept(app, body.name, texts=body.texts, image_ids=body.image_ids,
                              negative_texts=body.negative_texts)
    except ConceptExistsError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/concepts", response_model=list[Concept])
def list_route(app: App) -> list[dict[str, Any]]:
    return all_concepts(app)


@router.get("/concepts/{concept_id}", response_model=Concept)
def show_route(concept_id: ConceptId, app: App) -> dict[str, Any]:
    return get_concept(app, concept_id)


@router.delete("/concepts/{concept_id}", dependencies=OPERATE)
def delete_route(concept_id: ConceptId, app: App) -> dict[str, Any]:
    """Deletes the concept and its marks; marks a model was trained with stay as its lineage (operate)."""
    return delete_concept(app, concept_id)


@router.post("/concepts/{concept_id}/labels", response_model=Concept)
def labels_route(concept_id: ConceptId, body: Label | LabelList, app: App) -> dict[str, Any]:
    """Marks images relevant / not relevant: one mark (``image_id``, ``relevant``) or ``labels``, a list of them;
    404 for an image the catalog does not know (nothing is
    recorded then)."""
    return label_concept(app, concept_id, _pairs(body))


@router.get("/concepts/{concept_id}/results", response_model=ResultsResponse)
def results_route(concept_id: ConceptId, app: App, redact: Redact, k: Annotated[int, Query(ge=1, le=500)] = 20,
                  scene: Annotated[str | None, Query(min_length=6, max_length=64, pattern=r"^[0-9a-f]+$")] = None,
                  bbox: Annotated[str | None, Query(max_length=200, description="W,S,E,N in degrees")] = None,
                  ) -> ResultsResponse:
    result = concept_results(app, concept_id, k=k, scene=scene, bbox=bbox).to_dict()
    return ResultsResponse(**{**result, "hits": _hits(result["hits"], redact)})


@router.get("/concepts/{concept_id}/ask", response_model=AskResponse)
def ask_route(concept_id: ConceptId, app: App, redact: Redact, n: Annotated[int, Query(ge=1, le=50)] = 5,
              scene: Annotated[str | None, Query(min_length=6, max_length=64, pattern=r"^[0-9a-f]+$")] = None,
              bbox: Annotated[str | None, Query(max_length=200)] = None) -> AskResponse:
    """The unlabelled images the classifier is least sure about, spread apart, for the user to mark next."""
    doc = concept_ask(app, concept_id, n=n, scene=scene, bbox=bbox)
    return AskResponse(concept=doc["concept"], stage=doc["stage"], why=doc["why"], hits=_hits(doc["hits"], redact))

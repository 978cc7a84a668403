"""Judgments: every relevant / not relevant mark a user gave (on a search result or a concept's image), read as
an evaluation set and as training data.

A mark on a search result is judged by its query text; a mark on a concept by the concept (its texts,
example images and negatives; its name is the text when it has none). Marks are grouped by that text
(folded to lower case): a search for "vineyards" and the concept "Vineyards" judge the same query, and when two
marks of one group name the same image the newer one wins (contradictions resolve to the last word, and
are counted once). Marks without a query text (given by query id only) and marks of deleted concepts are
left out, and counted.

Held-out data stays held out: a mark on an image outside a dataset version's train split is *held back*:
it judges models and never trains them. Marks on train images become training data
(:func:`training_feedback`): relevant ones are image-text pairs (source ``feedback``), not relevant ones
hard negatives, batched with a positive of the same text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.catalog import Catalog


def text_key(text: str) -> str:
    """How marks' texts are grouped: spaces collapsed, case folded."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class JudgedQuery:
    """What a group of judgments is scored with: texts, example images and negatives."""

    key: str
    label: str
    texts: tuple[str, ...]
    image_ids: tuple[str, ...] = ()
    negative_texts: tuple[str, ...] = ()
    concept_id: str | None = None


@dataclass(frozen=True)
class Judgment:
    """One mark read as a judgment (the newest of its group and image)."""

    mark_id: int
    key: str
    image_id: str
    relevant: bool
    created_at: float
    used_in: str | None = None
    concept_id: str | None = None


@dataclass
class JudgmentSet:
    """Judgments by query, and what was left out."""

    queries: dict[str, JudgedQuery] = field(default_factory=dict)
    judgments: list[Judgment] = field(default_factory=list)
    without_text: int = 0
    deleted_concept: int = 0
    superseded: int = 0  # older marks of the same query and image (the newest wins)

    def by_query(self) -> dict[str, list[Judgment]]:
        out: dict[str, list[Judgment]] = {}
        for j in self.judgments:
            out.setdefault(j.key, []).append(j)
        return out

    def only(self, keep: Iterable[Judgment]) -> JudgmentSet:
        """The same set restricted to ``keep``."""
        kept = list(keep)
        keys = {j.key for j in kept}
        return JudgmentSet({k: q for k, q in self.queries.items() if k in keys}, kept, self.without_text,
                           self.deleted_concept, self.superseded)

    def held_back(self, train_ids: set[str]) -> JudgmentSet:
        """Judgments on images outside ``train_ids`` (never trained on: fit to judge a model)."""
        return self.only(j for j in self.judgments if j.image_id not in train_ids)

    def fingerprint(self) -> str:
        """Identifies the set (mark, image, verdict): two evaluations on the same fingerprint are comparable."""
        rows = sorted((j.key, j.image_id, j.relevant) for j in self.judgments)
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]

    def counts(self) -> dict[str, int]:
        return {"judgments": len(self.judgments), "queries": len(self.by_query()),
                "relevant": sum(j.relevant for j in self.judgments),
                "not_relevant": sum(not j.relevant for j in self.judgments), "left_out_without_text":
                self.without_text, "left_out_deleted_concept": self.deleted_concept, "superseded": self.superseded}


def _query_of(concept: dict[str, Any]) -> JudgedQuery:
    texts = tuple(concept["texts"]) or (() if concept["image_ids"] else (concept["name"],))
    return JudgedQuery(key=text_key(concept["name"]), label=concept["name"], texts=texts,
                       image_ids=tuple(concept["image_ids"]), negative_texts=tuple(concept["negative_texts"]),
                       concept_id=concept["id"])


def read_judgments(catalog: Catalog, *, only_unused: bool = False) -> JudgmentSet:
    """Every mark of the catalog as judgments (see the module docstring)."""
    concepts = {c["id"]: c for c in catalog.list_concepts()}
    out = JudgmentSet()
    for c in concepts.values():
        out.queries[text_key(c["name"])] = _query_of(c)
    newest: dict[tuple[str, str], Judgment] = {}
    for row in catalog.feedback(unused_only=only_unused):
        concept = row.get("concept_id")
        if concept is not None and concept not in concepts:
            out.deleted_concept += 1
            continue
        text = concepts[concept]["name"] if concept is not None else (row.get("query") or "").strip()
        if not text:
            out.without_text += 1
            continue
        key = text_key(text)
        out.queries.setdefault(key, JudgedQuery(key=key, label=text, texts=(text,)))
        j = Judgment(mark_id=int(row["id"]), key=key, image_id=row["image_id"], relevant=bool(row["relevant"]),
                     created_at=float(row["created_at"]), used_in=row.get("used_in"), concept_id=concept)
        seen = newest.get((key, j.image_id))
        if seen is not None:
            out.superseded += 1
            if (seen.created_at, seen.mark_id) > (j.created_at, j.mark_id):
                continue
        newest[(key, j.image_id)] = j
    out.judgments = sorted(newest.values(), key=lambda j: j.mark_id)
    out.queries = {k: q for k, q in out.queries.items() if any(j.key == k for j in out.judgments)}
    return out


# -- training data from marks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingFeedback:
    """What marks give a dataset version: image-text pairs, hard negatives, and the marks behind them."""

    pairs: list[tuple[str, str]]  # (image id, text): a relevant mark
    hard_negatives: list[tuple[str, str]]  # (image id, text): a not relevant mark
    marks: list[int]

    def to_params(self) -> dict[str, Any]:
        return {"pairs": [list(p) for p in self.pairs], "hard_negatives": [list(h) for h in self.hard_negatives],
                "marks": self.marks}

    @staticmethod
    def from_params(params: dict[str, Any] | None) -> TrainingFeedback:
        p = params or {}
        return TrainingFeedback([(a, b) for a, b in p.get("pairs", [])],
                                [(a, b) for a, b in p.get("hard_negatives", [])], list(p.get("marks", [])))


def training_feedback(found: JudgmentSet, train_ids: set[str]) -> TrainingFeedback:
    """The marks on ``train_ids`` as pairs (relevant) and hard negatives (not relevant), in mark order; the
    text of each is the query's label (the query, or the concept's name)."""
    pairs: list[tuple[str, str]] = []
    negatives: list[tuple[str, str]] = []
    marks: list[int] = []
    for j in found.judgments:
        if j.image_id not in train_ids:
            continue
        text = found.queries[j.key].label
        (pairs if j.relevant else negatives).append((j.image_id, text))
        marks.append(j.mark_id)
    return TrainingFeedback(pairs, negatives, sorted(marks))


def sync_feedback_captions(catalog: Catalog, pairs: Sequence[tuple[str, str]], scope: set[str]) -> dict[str, int]:
    """Make the ``feedback`` captions of the images in ``scope`` exactly ``pairs`` (written for new relevant
    marks, deleted for marks taken back or turned not relevant). Returns how many were added and removed."""
    wanted = {(img, text.strip()) for img, text in pairs if text.strip() and img in scope}
    have = {(r["image_id"], r["text"]) for r in catalog.query(
        "SELECT image_id, text FROM captions WHERE source = 'feedback'") if r["image_id"] in scope}
    added = catalog.add_captions((img, text, "feedback", "mark") for img, text in sorted(wanted - have))
    gone = sorted(have - wanted)
    if gone:
        with catalog.transaction() as conn:
            conn.executemany("DELETE FROM captions WHERE source = 'feedback' AND image_id = ? AND text = ?", gone)
    return {"added": added, "removed": len(gone)}


__all__ = ["JudgedQuery", "Judgment", "JudgmentSet", "TrainingFeedback", "read_judgments", "sync_feedback_captions",
           "text_key", "training_feedback"]

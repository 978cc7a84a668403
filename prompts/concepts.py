"""Texts of the concept tools: what a chat model reads to choose them, and the one-line answers they give."""

from __future__ import annotations

from typing import Final

CONCEPT_TOOL_DESCRIPTIONS: Final[dict[str, str]] = {
    "create_concept": "Save a search as a named concept (query texts, example images, negative texts) that the "
    "user refines by marking images relevant or not relevant.",
    "label_concept": "Mark images relevant or not relevant for a concept (by name or id); the last mark of an "
    "image wins.",
    "concept_results": "Rank the active index for a concept with what is known: its query alone, the query "
    "refined by the user's marks (Rocchio), or a classifier trained on them. Says which.",
    "concept_ask": "The few unlabelled images a concept's classifier is least sure about, spread apart: what the "
    "user should mark next.",
    "remember_concept": "Save the conversation's last search as a concept: its query, the marks given on its "
    "results, and the results the user did not mark as relevant examples.",
    "list_concepts": "List the saved concepts with how many images are marked relevant and not relevant.",
}

CONCEPT_SUMMARIES: Final[dict[str, str]] = {
    "create_concept": "Saved concept {name} ({id}): {query}.",
    "label_concept": "Concept {name}: {relevant} relevant, {not_relevant} not relevant marks.",
    "concept_results": "Top {n} for concept {name} (stage {stage}: {reason}):{hits}",
    "concept_ask": "Mark these next for concept {name}: {why}:{hits}",
    "remember_concept": "{verb} concept {name} from the last search '{query}': {marked} of your marks kept, {added} "
    "unmarked results labelled relevant; now {relevant} relevant, {not_relevant} not relevant.",
    "list_concepts": "{n} concept(s): {concepts}",
}

#: one line per concept hit
CONCEPT_HIT_LINE: Final[str] = "\n  {rank}. {name}  score {score:.3f}{probability}{why}"

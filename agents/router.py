"""The offline intent router's public module: a re-export of :mod:`agents.routing` (see there for how it works)."""

from __future__ import annotations

from agents.routing.args import CAPTIONERS, KNOWN_DATASETS, extract_args
from agents.routing.paths import CHECKPOINT_EXTS, IMAGE_EXTS, MANIFEST_EXTS
from agents.routing.router import (
    DEFAULT_K,
    DEFAULT_MARGIN,
    DEFAULT_THRESHOLD,
    UNKNOWN,
    IntentRouter,
    IntentScores,
    PlanStep,
    RoutedRequest,
    TextEncoder,
    default_router,
)
from agents.routing.text import COMMAND_VERBS, QUESTION_CUES, TypoFixer, embedding_text, question_cue, split_clauses

__all__ = [
    "CAPTIONERS",
    "CHECKPOINT_EXTS",
    "COMMAND_VERBS",
    "DEFAULT_K",
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "IMAGE_EXTS",
    "KNOWN_DATASETS",
    "MANIFEST_EXTS",
    "QUESTION_CUES",
    "UNKNOWN",
    "IntentRouter",
    "IntentScores",
    "PlanStep",
    "RoutedRequest",
    "TextEncoder",
    "TypoFixer",
    "default_router",
    "embedding_text",
    "extract_args",
    "question_cue",
    "split_clauses",
]

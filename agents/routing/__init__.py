"""The offline intent router: MiniLM nearest examples pick a command's intent, explicit rules read its slots.

Without an LLM, SkyScout still understands chat commands. The router embeds the utterance with a sentence
encoder (the pretrained all-MiniLM-L6-v2 by default), compares it by cosine similarity with the labelled
examples in :mod:`prompts.intents`, and scores each intent by the mean similarity of its ``k`` nearest
examples (a per-class k-NN). It accepts the best intent only when that score reaches ``threshold`` and
beats the runner-up by ``margin``; otherwise it answers ``unknown``, says what it did not understand and
suggests commands, rather than guessing. Slots (paths, ``k``, filters, the query text, negative terms,
an example image, captioner and model names, epochs, datasets) are read with explicit rules.

Two small rule layers help the embeddings where they are weak. A misspelt leading command word is
corrected ("serach" -> "search") when it is one typo from a command word and not a real word of the
MiniLM vocabulary. And a few question openings narrow the candidates, because mean pooling lets the
content words outweigh them: "why ..." may only be ``explain`` (or out of scope), "how many ..." only
``status``; the examples still decide between those and ``unknown``, and the threshold still applies.

A request may hold several commands ("ingest X, train a model and find beaches"): it is split on clause
boundaries (``;``, ``then`` before a command word, and ``,``/``and`` where both sides start with a command
verb), each clause is routed on its own, and the result carries the plan of steps. The top-level
``intent`` and ``args`` are those of the first step (the one to run first); ``confidence`` is the lowest
step confidence; the request counts as ``understood`` only when every step is.

Modules: :mod:`~agents.routing.paths` (finding paths and their kind), :mod:`~agents.routing.text`
(clauses, the typo fixer, question cues, the encoder's text), :mod:`~agents.routing.args` and
:mod:`~agents.routing.search` (slots per intent), :mod:`~agents.routing.router` (the classifier).
It imports only :mod:`prompts` and :mod:`tools`.
"""

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

"""The intent classifier: MiniLM nearest examples per intent, a threshold and a margin, and the routed plan."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from agents.routing.args import extract_args
from agents.routing.text import CUE_ONLY_INTENTS, TypoFixer, embedding_text, question_cue, split_clauses
from prompts.intents import (
    AMBIGUOUS_TEMPLATE,
    INTENT_EXAMPLES,
    INTENTS,
    NOT_UNDERSTOOD_TEMPLATE,
    OUT_OF_SCOPE_TEMPLATE,
    PARTLY_UNDERSTOOD_TEMPLATE,
    SUGGESTED_COMMANDS,
)

#: a text encoder: a batch of texts in, one L2-normalised row per text out
TextEncoder = Callable[[list[str]], np.ndarray]

UNKNOWN = "unknown"

#: default decision rule, chosen by 5-fold cross-validation on the labelled examples (not on the test
#: corpus); the margin turns near-ties into "please rephrase" rather than a coin flip
DEFAULT_THRESHOLD = 0.30
DEFAULT_MARGIN = 0.01
DEFAULT_K = 3


class PlanStep(BaseModel):
    """One command of a (possibly multi-step) request: its intent, its slots and the clause it came from."""

    intent: str
    args: dict[str, Any] = Field(default_factory=dict)
    text: str
    confidence: float = 0.0
    understood: bool = True


class RoutedRequest(BaseModel):
    """What the router made of an utterance; ``intent``/``args`` are those of the first step of ``plan``."""

    intent: str
    confidence: float
    args: dict[str, Any] = Field(default_factory=dict)
    plan: list[PlanStep] = Field(default_factory=list)
    understood: bool
    message: str | None = None


@dataclass(frozen=True)
class IntentScores:
    """Per-intent scores of one clause, best first (only the candidates a question cue allows)."""

    ranked: list[tuple[str, float]]
    cue: frozenset[str] | None = None

    @property
    def best(self) -> tuple[str, float]:
        return self.ranked[0]

    @property
    def runner_up(self) -> tuple[str, float]:
        return self.ranked[1] if len(self.ranked) > 1 else (UNKNOWN, 0.0)


def _check_examples(examples: Mapping[str, Sequence[str]]) -> None:
    """Raise ValueError unless every intent in ``examples`` is known and has at least one example."""
    unknown_intents = sorted(set(examples) - set(INTENTS))
    if unknown_intents:
        raise ValueError(f"examples name intents {unknown_intents}; valid intents are {list(INTENTS)}")
    empty = [name for name, texts in examples.items() if not texts]
    if empty or not examples:
        raise ValueError(f"every intent in examples needs at least one example; empty: {empty}")


class IntentRouter:
    """Routes chat commands to intents by the nearest labelled examples, and extracts their slots.

    ``encoder`` maps a list of texts to L2-normalised rows (``tools.text_encoder.load_text_encoder()``
    when omitted, loaded on first use). An intent's score for an utterance is the mean cosine similarity
    of its ``k`` most similar examples; the best intent is accepted when its score is at least
    ``threshold`` and exceeds the runner-up's by at least ``margin``. ``examples`` maps intent -> example
    utterances (default: :data:`prompts.intents.INTENT_EXAMPLES`). The example embeddings are computed
    once per router, on first use.

    ``dictionary`` is the word list the typo fixer trusts (see :class:`TypoFixer`); by default the MiniLM
    vocabulary when its package is installed, else none, and then no typo is corrected.
    """

    def __init__(
        self,
        encoder: TextEncoder | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        k: int = DEFAULT_K,
        examples: Mapping[str, Sequence[str]] | None = None,
        dictionary: Collection[str] | None = None,
    ) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        examples = INTENT_EXAMPLES if examples is None else examples
        _check_examples(examples)
        self._encoder = encoder
        self.threshold = threshold
        self.margin = margin
        self.k = k
        self.examples: dict[str, tuple[str, ...]] = {name: tuple(texts) for name, texts in examples.items()}
        self._labels = [name for name, texts in self.examples.items() for _ in texts]
        self._example_matrix: np.ndarray | None = None
        self.fixer = TypoFixer(_default_dictionary() if dictionary is None else dictionary)

    # -- encoding -------------------------------------------------------------------------------------

    @property
    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            from tools.text_encoder import load_text_encoder

            self._encoder = load_text_encoder()
        return self._encoder

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.encoder(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(
                f"the encoder returned shape {vectors.shape} for {len(texts)} texts; expected (n, dim)"
            )
        # Normalise again: cheap, and it makes an encoder that forgot to normalise harmless.
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.clip(norms, 1e-12, None)

    @property
    def example_matrix(self) -> np.ndarray:
        """The embeddings of all examples (rows in the order of ``self._labels``), computed once."""
        if self._example_matrix is None:
            texts = [embedding_text(t) for texts in self.examples.values() for t in texts]
            self._example_matrix = self._encode(texts)
        return self._example_matrix

    # -- scoring ----------------------------------------------------------------------------------------

    def _score_rows(self, sims: np.ndarray, cues: Sequence[frozenset[str] | None]) -> list[IntentScores]:
        """Per-class k-NN: an intent scores the mean similarity of its k nearest examples."""
        out: list[IntentScores] = []
        labels = np.asarray(self._labels)
        names = list(self.examples)
        for row, cue in zip(sims, cues, strict=True):
            scores: list[tuple[str, float]] = []
            allowed = ([n for n in names if n in cue or n == UNKNOWN] if cue
                       else [n for n in names if n not in CUE_ONLY_INTENTS])
            for name in allowed or names:
                col = row[labels == name]
                k = min(self.k, col.size)
                top = np.partition(col, col.size - k)[col.size - k :]
                scores.append((name, float(top.mean())))
            scores.sort(key=lambda t: t[1], reverse=True)
            out.append(IntentScores(scores, cue))
        return out

    def score(self, texts: Sequence[str]) -> list[IntentScores]:
        """Intent scores for each text taken as one clause (no splitting); for diagnostics and tuning."""
        fixed = [self.fixer.fix_leading(t.strip()) for t in texts]
        return self._score_fixed(fixed)

    def _score_fixed(self, clauses: list[str]) -> list[IntentScores]:
        queries = self._encode([embedding_text(c) for c in clauses])
        return self._score_rows(queries @ self.example_matrix.T, [question_cue(c) for c in clauses])

    # -- routing ------------------------------------------------------------------------------------------

    def route(self, text: str) -> RoutedRequest:
        """Route one utterance (possibly several commands) to a :class:`RoutedRequest`."""
        return self.route_many([text])[0]

    def route_many(self, texts: Sequence[str]) -> list[RoutedRequest]:
        """Route many utterances, encoding all their clauses in one batch."""
        if isinstance(texts, str):
            raise TypeError("route_many() takes a sequence of utterances; use route() for a single one")
        clauses_per_text = [split_clauses(t, self.fixer) if t.strip() else [] for t in texts]
        flat = [c for clauses in clauses_per_text for c in clauses]
        fixed = [self.fixer.fix_leading(c) for c in flat]
        scores = self._score_fixed(fixed) if flat else []
        results: list[RoutedRequest] = []
        i = 0
        for text, clauses in zip(texts, clauses_per_text, strict=True):
            span = range(i, i + len(clauses))
            decided = [self._step(flat[j], fixed[j], scores[j]) for j in span]
            i += len(clauses)
            results.append(_request(text, decided))
        return results

    def _rejection(self, clause: str, scores: IntentScores) -> str | None:
        """Why a clause is not accepted (too weak, out of scope, or a near-tie), or None when it is."""
        (best, score), (runner, runner_score) = scores.best, scores.runner_up
        suggestions = "; ".join(SUGGESTED_COMMANDS)
        if score < self.threshold:
            return NOT_UNDERSTOOD_TEMPLATE.format(text=clause, best=best, score=score, suggestions=suggestions)
        if best == UNKNOWN:
            return OUT_OF_SCOPE_TEMPLATE.format(text=clause, suggestions=suggestions)
        if score - runner_score < self.margin:
            return AMBIGUOUS_TEMPLATE.format(
                text=clause,
                first=best,
                second=runner,
                score=score,
                runner_up=runner_score,
                suggestions=suggestions,
            )
        return None

    def _step(self, clause: str, fixed: str, scores: IntentScores) -> tuple[PlanStep, str | None]:
        """Decide one clause: the accepted intent and its slots, or ``unknown`` and why."""
        best, score = scores.best
        message = self._rejection(clause, scores)
        if message is not None:
            # How sure we are that it is *not* a command we know: the out-of-scope score, or nothing.
            confidence = score if best == UNKNOWN and score >= self.threshold else 0.0
            step = PlanStep(intent=UNKNOWN, text=clause, confidence=round(confidence, 4), understood=False)
            return step, message
        step = PlanStep(
            intent=best,
            args=extract_args(best, fixed),
            text=clause,
            confidence=round(min(max(score, 0.0), 1.0), 4),
        )
        return step, None


def _request(text: str, decided: list[tuple[PlanStep, str | None]]) -> RoutedRequest:
    """The routed request of an utterance from its decided clauses (the plan), with what was not understood."""
    if not decided:
        suggestions = "; ".join(SUGGESTED_COMMANDS)
        empty = NOT_UNDERSTOOD_TEMPLATE.format(text=text, best="nothing", score=0.0, suggestions=suggestions)
        return RoutedRequest(intent=UNKNOWN, confidence=0.0, understood=False, message=empty)
    steps = [step for step, _ in decided]
    misses = [(step, msg) for step, msg in decided if msg is not None]
    message: str | None = None
    if misses and len(steps) > 1:
        message = PARTLY_UNDERSTOOD_TEMPLATE.format(steps=", ".join(repr(s.text) for s, _ in misses))
        message += " " + " ".join(msg for _, msg in misses if msg)
    elif misses:
        message = misses[0][1]
    first = steps[0]
    return RoutedRequest(
        intent=first.intent,
        confidence=min(s.confidence for s in steps),
        args=dict(first.args),
        plan=steps,
        understood=not misses,
        message=message,
    )


def _default_dictionary() -> frozenset[str]:
    from tools.text_encoder import TextEncoderUnavailableError, minilm_vocabulary

    try:
        return minilm_vocabulary()
    except TextEncoderUnavailableError:
        return frozenset()


def default_router(*, threshold: float = DEFAULT_THRESHOLD, margin: float = DEFAULT_MARGIN) -> IntentRouter:
    """An :class:`IntentRouter` over the pretrained MiniLM encoder and the examples in ``prompts.intents``."""
    from tools.text_encoder import load_text_encoder

    return IntentRouter(load_text_encoder(), threshold=threshold, margin=margin)

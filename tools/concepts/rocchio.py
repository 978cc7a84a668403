"""Which ranking stage a concept is at, and the Rocchio refinement of its query vector."""

from __future__ import annotations

from typing import Literal

import numpy as np

Stage = Literal["text", "rocchio", "classifier"]

#: marks of each kind (example images count as relevant) before the classifier ranks a concept
MIN_CLASSIFIER_POSITIVES = 3
MIN_CLASSIFIER_NEGATIVES = 3


def choose_stage(n_relevant: int, n_not_relevant: int, *, min_positives: int = MIN_CLASSIFIER_POSITIVES,
                 min_negatives: int = MIN_CLASSIFIER_NEGATIVES) -> Stage:
    """``text`` without marks, ``classifier`` with enough of both kinds, ``rocchio`` in between."""
    if n_relevant >= min_positives and n_not_relevant >= min_negatives:
        return "classifier"
    return "rocchio" if n_relevant or n_not_relevant else "text"


def stage_reason(stage: Stage, n_relevant: int, n_not_relevant: int) -> str:
    """One line saying why a concept ranks at ``stage``."""
    marks = f"{n_relevant} relevant and {n_not_relevant} not relevant mark(s)"
    if stage == "text":
        return "no marks yet: the query alone"
    if stage == "rocchio":
        return (f"{marks}: the query moved towards the relevant images and away from the others (Rocchio); the "
                f"classifier needs {MIN_CLASSIFIER_POSITIVES} of each kind")
    return f"{marks}: a logistic regression on the stored embeddings, with background images from the index"


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 1e-8 else v.astype(np.float32)


def rocchio(query: np.ndarray | None, positives: np.ndarray, negatives: np.ndarray, *, alpha: float = 1.0,
            beta: float = 2.0, gamma: float = 1.0) -> np.ndarray:
    """``alpha q + beta mean(positives) - gamma mean(negatives)``, renormalised.

    ``query`` is the concept's unit query vector (or None: the marks alone, as GeoVibes refines a search:
    2 mean(positives) - mean(negatives)); ``positives`` and ``negatives`` are ``(n, dim)`` unit rows, either
    possibly empty. Raises ValueError when nothing is left to search with.
    """
    dim = query.shape[-1] if query is not None else (positives.shape[-1] if len(positives) else negatives.shape[-1])
    vec = np.zeros(dim, dtype=np.float64)
    if query is not None:
        vec += alpha * np.asarray(query, dtype=np.float64)
    if len(positives):
        vec += beta * np.asarray(positives, dtype=np.float64).mean(axis=0)
    if len(negatives):
        vec -= gamma * np.asarray(negatives, dtype=np.float64).mean(axis=0)
    if float(np.linalg.norm(vec)) < 1e-8:
        raise ValueError("the concept's query and its marks cancel out: add a text or a relevant mark")
    return _unit(vec)


__all__ = ["MIN_CLASSIFIER_NEGATIVES", "MIN_CLASSIFIER_POSITIVES", "Stage", "choose_stage", "rocchio",
           "stage_reason"]

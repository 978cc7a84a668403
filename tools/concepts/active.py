"""Active learning for concepts: the unlabelled images the classifier is least sure about, spread apart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: of the least sure candidates, how many per image asked for are considered before spreading them out
UNCERTAIN_POOL_FACTOR = 5


def spread(vectors: np.ndarray, n: int, *, first: int = 0) -> list[int]:
    """Greedy max-min selection of ``n`` row indexes: start at ``first``, then each time the row farthest (in
    cosine distance) from every row picked so far. Deterministic (ties: the lower index)."""
    m = len(vectors)
    if m == 0 or n <= 0:
        return []
    x = np.asarray(vectors, dtype=np.float64)
    picked = [min(max(first, 0), m - 1)]
    nearest = 1.0 - x @ x[picked[0]]
    while len(picked) < min(n, m):
        nearest[picked] = -np.inf
        nxt = int(np.argmax(nearest))
        picked.append(nxt)
        nearest = np.minimum(nearest, 1.0 - x @ x[nxt])
    return picked


def ask(ids: Sequence[str], vectors: np.ndarray, probabilities: np.ndarray, n: int, *,
        pool_factor: int = UNCERTAIN_POOL_FACTOR) -> tuple[list[str], dict[str, float]]:
    """The ``n`` images to mark next: of the ``n * pool_factor`` whose probability is nearest 0.5, a spread-out
    selection starting from the least sure. Returns their ids (least sure first) and what the choice rests on
    (the probability range of the chosen ones, their smallest pairwise cosine distance)."""
    if not len(ids) or n <= 0:
        return [], {}
    probs = np.asarray(probabilities, dtype=np.float64)
    margin = np.abs(probs - 0.5)
    order = np.argsort(margin, kind="stable")[: max(n, n * pool_factor)]
    chosen = [int(order[i]) for i in spread(np.asarray(vectors)[order], n)]
    chosen.sort(key=lambda i: (margin[i], i))
    x = np.asarray(vectors, dtype=np.float64)[chosen]
    dist = 1.0 - x @ x.T
    np.fill_diagonal(dist, np.inf)
    facts = {"p_min": float(probs[chosen].min()), "p_max": float(probs[chosen].max()),
             "considered": float(len(order)),
             "min_distance": float(dist.min()) if len(chosen) > 1 else float("nan")}
    return [ids[i] for i in chosen], facts


__all__ = ["UNCERTAIN_POOL_FACTOR", "ask", "spread"]

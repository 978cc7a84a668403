"""A concept's linear classifier: class-balanced logistic regression on stored embeddings, background negatives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: background images sampled from the index per relevant mark (at least :data:`MIN_BACKGROUND`)
BACKGROUND_PER_POSITIVE = 10
MIN_BACKGROUND = 100
#: a background image weighs this much against a mark (it is only probably not relevant)
BACKGROUND_WEIGHT = 0.5
#: inverse regularisation of the logistic regression (unit-norm features: logits need room to grow)
DEFAULT_C = 10.0


@dataclass(frozen=True)
class ConceptClassifier:
    """``p(relevant | x) = sigmoid(w . x + b)`` for unit embeddings ``x``; what it was fitted on."""

    weights: np.ndarray
    bias: float
    n_relevant: int
    n_not_relevant: int
    n_background: int

    def logits(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, dtype=np.float64) @ self.weights.astype(np.float64) + self.bias

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """The probability of each row being relevant."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(vectors), -60, 60)))

    @property
    def direction(self) -> np.ndarray:
        """The unit weight vector: ranking by it is ranking by probability (a nearest-neighbour query)."""
        w = self.weights.astype(np.float32)
        return w / max(float(np.linalg.norm(w)), 1e-12)


def sample_background(ids: Sequence[str], exclude: set[str], n: int, *, seed: int = 0) -> list[str]:
    """``n`` ids drawn without replacement from ``ids`` (sorted first, so the draw depends only on the set),
    leaving out ``exclude``."""
    pool = sorted(i for i in set(ids) if i not in exclude)
    if len(pool) <= n:
        return pool
    rng = np.random.default_rng(seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False).tolist())]


def background_size(n_relevant: int, available: int) -> int:
    """How many background negatives a fit with ``n_relevant`` positives samples."""
    return min(available, max(MIN_BACKGROUND, BACKGROUND_PER_POSITIVE * n_relevant))


def fit_classifier(positives: np.ndarray, negatives: np.ndarray, background: np.ndarray | None = None, *,
                   c: float = DEFAULT_C, background_weight: float = BACKGROUND_WEIGHT, seed: int = 0
                   ) -> ConceptClassifier:
    """Fit a class-balanced logistic regression: relevant marks (and example images) against not relevant
    marks and background rows (weighted ``background_weight``). Needs at least one positive and one
    negative row (a mark or a background image)."""
    from sklearn.linear_model import LogisticRegression

    n_bg = 0 if background is None else len(background)
    if not len(positives) or not (len(negatives) + n_bg):
        raise ValueError("a classifier needs relevant images and not relevant (or background) images")
    dim = np.asarray(positives).shape[-1]
    pos = np.asarray(positives, dtype=np.float64).reshape(-1, dim)
    neg = np.asarray(negatives, dtype=np.float64).reshape(-1, dim)
    bg = np.asarray(background if background is not None else np.zeros((0, dim)), dtype=np.float64).reshape(-1, dim)
    x = np.concatenate([pos, neg, bg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg) + len(bg))])
    weight = np.concatenate([np.ones(len(pos) + len(neg)), np.full(len(bg), background_weight)])
    # class-balanced: each class carries the same total weight, whatever its count
    for label in (0.0, 1.0):
        weight[y == label] *= len(y) / (2.0 * weight[y == label].sum())
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(x, y, sample_weight=weight)
    return ConceptClassifier(weights=model.coef_[0].astype(np.float32), bias=float(model.intercept_[0]),
                             n_relevant=len(pos), n_not_relevant=len(neg), n_background=len(bg))


__all__ = ["BACKGROUND_PER_POSITIVE", "BACKGROUND_WEIGHT", "DEFAULT_C", "MIN_BACKGROUND", "ConceptClassifier",
           "background_size", "fit_classifier", "sample_background"]

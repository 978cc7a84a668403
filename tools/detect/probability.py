"""From a cosine to a probability: the query against background land-cover prompts, and Platt calibration.

A raw cosine says how close a chip is to a query, not how likely the chip shows it: its scale depends on
the model, the query and the imagery. SkyScout's default ``probability`` is a softmax of the chip's
similarity to the query against its similarities to a set of background prompts (what most of the Earth
looks like), at the model's own temperature (CLIP's learned logit scale)::

    p(query | chip) = exp(t * s_q) / (exp(t * s_q) + sum_b exp(t * s_b))

``p >= 0.5`` means the chip is closer to the query than to all the background classes together. Prompts
that name the query itself are dropped from the background. When labelled images are available, a
logistic (Platt) fit of the label on the softmax logit replaces the softmax's own scale
(:func:`fit_platt`), so that 0.5 is where a labelled chip becomes more likely positive than not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: background land-cover prompts (configurable: SKYSCOUT_DETECT_BACKGROUND, or per request)
DEFAULT_BACKGROUND: tuple[str, ...] = (
    "farmland", "forest", "grassland", "bare soil", "a river", "a lake", "the sea", "a road", "buildings",
    "a residential area", "a parking lot", "an industrial area", "trees", "a beach", "desert", "snow",
    "a highway", "a city",
)
#: a background prompt this similar to the query (cosine of their text vectors) names the same thing
SAME_CONCEPT_COSINE = 0.95
_ARTICLES = re.compile(r"\b(?:a|an|the|some)\b")


def _words(text: str) -> str:
    t = _ARTICLES.sub(" ", text.lower())
    t = re.sub(r"[^a-z0-9 ]+", " ", t)
    return " ".join(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in t.split())


def background_for(query: str, background: Sequence[str], query_vec: np.ndarray | None = None,
                   background_vecs: np.ndarray | None = None) -> list[int]:
    """Indexes of the background prompts kept for ``query``: those that do not name it (same words, one
    containing the other, or text vectors nearly identical)."""
    q = _words(query)
    keep = []
    for i, b in enumerate(background):
        w = _words(b)
        if w and q and (w == q or f" {w} " in f" {q} " or f" {q} " in f" {w} "):
            continue
        if query_vec is not None and background_vecs is not None and float(background_vecs[i] @ query_vec) >= \
                SAME_CONCEPT_COSINE:
            continue
        keep.append(i)
    return keep


def temperature_of(model: object, default: float = 100.0) -> float:
    """The model's softmax temperature: ``exp(logit_scale)`` (clamped to 1..100), else ``default``."""
    scale = getattr(model, "logit_scale", None)
    try:
        value = float(np.exp(float(scale.detach().float().reshape(-1)[0]))) if scale is not None else default
    except (AttributeError, TypeError, ValueError):
        value = default
    return float(min(100.0, max(1.0, value)))


def softmax_logit(scores: np.ndarray, background_scores: np.ndarray, temperature: float) -> np.ndarray:
    """``t * s_q - logsumexp(t * s_b)`` per chip: the log-odds of the query against the background."""
    if background_scores.size == 0:
        return temperature * scores
    z = temperature * background_scores
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return temperature * scores - lse


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@dataclass(frozen=True)
class Platt:
    """``p = sigmoid(a * logit + b)``, fitted on labelled chips or images."""

    a: float
    b: float
    n_pos: int
    n_neg: int

    def __call__(self, logit: np.ndarray) -> np.ndarray:
        return sigmoid(self.a * logit + self.b)


def fit_platt(logit: np.ndarray, positive: np.ndarray, *, iters: int = 200) -> Platt:
    """Logistic regression of ``positive`` on ``logit`` (Newton steps, Platt's smoothed targets)."""
    y = positive.astype(np.float64)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("calibration needs labelled positives and negatives")
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = np.stack([logit.astype(np.float64), np.ones_like(y)], axis=1)
    w = np.zeros(2)
    for _ in range(iters):
        p = sigmoid(x @ w)
        grad = x.T @ (p - t)
        hess = x.T @ (x * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return Platt(float(w[0]), float(w[1]), n_pos, n_neg)


__all__ = ["DEFAULT_BACKGROUND", "SAME_CONCEPT_COSINE", "Platt", "background_for", "fit_platt", "sigmoid",
           "softmax_logit", "temperature_of"]

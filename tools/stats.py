"""How sure a comparison of two models is: a paired difference on the same images with its interval.

Both models are scored per image on the same held-out images; the difference of their means gets a
percentile bootstrap interval (``scipy.stats.bootstrap`` over the per-image differences) and, for a
right/wrong score such as zero-shot top-1, McNemar's exact test on the images where they disagree
(``scipy.stats.binomtest``). A difference whose interval reaches zero (or the promotion margin) is not
evidence that one model is better.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    """Candidate minus reference on ``n`` shared images: the mean difference and its interval."""

    n: int
    delta: float
    low: float
    high: float
    confidence: float
    p_value: float | None = None  # McNemar's exact test, for right/wrong scores
    test: str = "bootstrap"

    def significant_above(self, margin: float = 0.0) -> bool:
        """Whether the whole interval lies above ``margin``."""
        return self.low > margin

    def describe(self) -> str:
        p = f", McNemar p={self.p_value:.3f}" if self.p_value is not None else ""
        return (f"{self.delta:+.4f} ({self.confidence:.0%} interval {self.low:+.4f} to {self.high:+.4f}, "
                f"{self.n} images{p})")

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def paired_difference(candidate: Mapping[str, float], reference: Mapping[str, float], *, confidence: float = 0.95,
                      resamples: int = 2000, seed: int = 0) -> PairedDifference | None:
    """The paired difference on the images both were scored on; None when they share fewer than two."""
    shared = sorted(set(candidate) & set(reference))
    if len(shared) < 2:
        return None
    diff = np.array([candidate[i] - reference[i] for i in shared], dtype=np.float64)
    delta = float(diff.mean())
    if np.all(diff == diff[0]):
        low = high = delta  # no spread: every resample gives the same mean
    else:
        from scipy.stats import bootstrap

        ci = bootstrap((diff,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
                       random_state=np.random.default_rng(seed)).confidence_interval
        low, high = float(ci.low), float(ci.high)
    binary = all(candidate[i] in (0, 1) and reference[i] in (0, 1) for i in shared)
    p_value = _mcnemar(diff) if binary else None
    return PairedDifference(len(shared), delta, low, high, confidence, p_value,
                            "bootstrap + McNemar" if binary else "bootstrap")


def _mcnemar(diff: np.ndarray) -> float:
    """Exact McNemar: of the images where the two disagree, is one side right more often than chance?"""
    from scipy.stats import binomtest

    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5).pvalue)





def top_confusions(confusion: Mapping[str, Any], n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` most frequent mistakes of a confusion matrix (``{"classes", "matrix"}``, rows = true class):
    ``[{"true": ..., "predicted": ..., "count": ..., "share": ...}]``, share of that true class's images."""
    classes, matrix = list(confusion.get("classes") or []), np.asarray(confusion.get("matrix") or [], dtype=np.int64)
    if matrix.ndim != 2 or not matrix.size:
        return []
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:n]
    rows = matrix.sum(axis=1)
    out = []
    for flat in order:
        t, p = divmod(int(flat), matrix.shape[1])
        if off[t, p] == 0:
            break
        out.append({"true": classes[t], "predicted": classes[p], "count": int(off[t, p]),
                    "share": round(float(off[t, p] / rows[t]), 4)})
    return out

__all__ = ["PairedDifference", "paired_difference", "top_confusions"]

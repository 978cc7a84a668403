"""Label-free transductive zero-shot classification: refine a CLIP model's class assignment over a collection.

Zero-shot classification scores every image alone against the class prompts. A user's collection carries
more than that: images of one class lie close together in the model's embedding space. Transductive methods
for vision-language models use that structure without any label (TransCLIP, Zanella et al. 2024, reports
several points over zero-shot for many CLIPs; label-free transductive inference for remote-sensing CLIPs
reports about +10 points on average). This module is SkyScout's version, built on embeddings only, so it
works for any open_clip model (``skyscout-tiny``, SkyCLIP, RemoteCLIP):

1. the *text prior*: the zero-shot class probabilities, ``softmax(scale * cos(image, prompt))``;
2. *class centres* in image space: the mean of the images weighted by their current class probabilities
   (each centre starts from its prompt's direction, so a class no image favours keeps a centre);
3. *neighbours*: each image's ``neighbours`` nearest images (cosine), whose assignments it leans towards.

Each round a probability is the text prior times the likeness to each class centre, then mixed with the
neighbours' probabilities (``smoothing``). The prior is never dropped, so a class stays tied to its words;
no label is read. The defaults were fixed before any run on real data; ``scripts/transductive_eval.py``
compares them with the setting a grid search picks on a train split (docs/models.md has the figures).
"""

from __future__ import annotations

import numpy as np

from tools.evaluation import l2_normalize


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def neighbour_graph(features: np.ndarray, k: int, *, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by cosine (``(n, k)`` indices) and their weights (non-negative
    cosines, each row summing to 1). Computed ``chunk`` rows at a time, so memory is ``chunk x n``."""
    n = features.shape[0]
    k = min(k, n - 1)
    idx = np.zeros((n, max(k, 0)), dtype=np.int64)
    w = np.zeros((n, max(k, 0)), dtype=np.float32)
    if k <= 0:
        return idx, w
    for start in range(0, n, chunk):
        sims = features[start:start + chunk] @ features.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # not its own neighbour
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        idx[start:start + chunk] = top
        w[start:start + chunk] = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None)
    totals = w.sum(axis=1, keepdims=True)
    w = np.where(totals > 0, w / np.where(totals > 0, totals, 1.0), 1.0 / k)
    return idx, w


def transductive_probabilities(
    image_features: np.ndarray, classifier: np.ndarray, *, scale: float = 100.0, centre_scale: float = 20.0,
    neighbours: int = 10, smoothing: float = 0.5, iterations: int = 10,
) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` for a collection of image embeddings ``(n, dim)`` and a
    zero-shot ``classifier`` ``(n_classes, dim)`` (prompt embeddings), refined without labels.

    ``scale`` is the text prior's logit scale (CLIP's is 100), ``centre_scale`` how sharply an image is drawn
    to the nearest class centre, ``smoothing`` the weight of the neighbours' probabilities (0 turns it off),
    ``iterations`` the rounds of the loop above. ``iterations=0`` returns the zero-shot probabilities.
    """
    x = l2_normalize(np.asarray(image_features, dtype=np.float32))
    text = l2_normalize(np.asarray(classifier, dtype=np.float32))
    if x.ndim != 2 or text.ndim != 2 or x.shape[1] != text.shape[1]:
        raise ValueError(f"features {x.shape} and classifier {text.shape} must be (n, dim) and (classes, dim)")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    log_prior = np.log(_softmax(scale * (x @ text.T)) + 1e-12)
    z = np.exp(log_prior)
    if x.shape[0] == 0:
        return z
    idx, w = neighbour_graph(x, neighbours) if smoothing > 0 else (None, None)
    for _ in range(iterations):
        centres = l2_normalize(z.T @ x + text)  # the prompt keeps a centre for a class no image favours yet
        z = _softmax(log_prior + centre_scale * (x @ centres.T))
        if idx is not None and w is not None and idx.shape[1]:
            z = (1.0 - smoothing) * z + smoothing * np.einsum("nk,nkc->nc", w, z[idx])
    return z


__all__ = ["neighbour_graph", "transductive_probabilities"]

"""Zero-shot classification and image-text retrieval metrics for CLIP-style embeddings.

The metric functions are pure functions on numpy arrays (features in, a dict of floats out), so they can
be checked against naive reference implementations and reused for any model. Two small adapters turn an
open_clip-style model (``encode_image``/``encode_text``) into those arrays.

Ties in a ranking are counted against the model: a relevant item ranks behind every irrelevant item with
the same score, so a collapsed model (all scores equal) scores 0, never 100%.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from tools.imageio import load_rgb

__all__ = [
    "TextEncoder",
    "class_aware_retrieval_metrics",
    "encode_image_files",
    "judged_ranking_metrics",
    "l2_normalize",
    "recall_at_k",
    "retrieval_metrics",
    "text_encoder",
    "zero_shot_accuracy",
    "zero_shot_classifier",
]

TextEncoder = Callable[[list[str]], np.ndarray]
"""Texts in, one embedding row per text out (``(len(texts), dim)``)."""

_CHUNK = 1024  # query rows scored at a time: bounds memory at _CHUNK x n_candidates


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """``x`` divided by its L2 norm along ``axis`` (float32; zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, eps)


# -- zero-shot classification -------------------------------------------------------------------------


def zero_shot_classifier(encode_texts: TextEncoder, classnames: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """One unit vector per class: the renormalised mean of its normalised prompt embeddings.

    Every template must contain ``{}``, which is replaced by the class name (see
    ``tools/templates.py`` for remote-sensing templates). Returns ``(n_classes, dim)`` float32.
    """
    if not classnames:
        raise ValueError("classnames is empty")
    if not templates:
        raise ValueError("templates is empty; pass e.g. tools.templates.REMOTE_SENSING_TEMPLATES")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"every template needs a '{{}}' placeholder for the class name; missing in: {bad}")
    texts = [t.format(c) for c in classnames for t in templates]
    emb = np.asarray(encode_texts(texts), dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(f"encode_texts returned shape {emb.shape} for {len(texts)} texts; expected (n, dim)")
    per_prompt = l2_normalize(emb).reshape(len(classnames), len(templates), -1)
    return l2_normalize(per_prompt.mean(axis=1))


def _ranks_of(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """0-based rank of the best relevant candidate per query row; ties count against it; -1: none relevant.

    The rank is the number of irrelevant candidates scoring at least as high as the best relevant one.
    """
    best = np.where(relevant, scores, -np.inf).max(axis=1)
    ranks = ((scores >= best[:, None]) & ~relevant).sum(axis=1)
    return np.where(relevant.any(axis=1), ranks, -1)


def _best_relevant_ranks(
    queries: np.ndarray, candidates: np.ndarray, relevant_of: Callable[[slice], np.ndarray]
) -> np.ndarray:
    """:func:`_ranks_of` over ``queries @ candidates.T`` in chunks of rows (bounded memory)."""
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), _CHUNK):
        rows = slice(start, start + _CHUNK)
        out[rows] = _ranks_of(queries[rows] @ candidates.T, relevant_of(rows))
    return out


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Fraction of queries (rank >= 0) whose best relevant candidate is in the top ``k``."""
    valid = ranks >= 0
    if not valid.any():
        return float("nan")
    return float((ranks[valid] < k).mean())


def zero_shot_accuracy(
    image_features: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    classifier: np.ndarray,
    *,
    classnames: Sequence[str] | None = None,
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 accuracy of a zero-shot classifier, per-class top-1 and its mean.

    ``image_features`` is ``(n, dim)``, ``labels`` the true class index of each image, ``classifier`` the
    ``(n_classes, dim)`` output of :func:`zero_shot_classifier`. ``per_class`` maps class name (or index
    as a string) to top-1 accuracy, for the classes that have images. Top-5 is top-``n_classes`` when
    there are fewer than five classes. ``scores`` ``(n, n_classes)`` replaces the cosines as what ranks the
    classes (e.g. :func:`tools.transductive.transductive_probabilities`).
    """
    feats = l2_normalize(image_features)
    labels_arr = np.asarray(labels, dtype=np.int64)
    clf = np.asarray(classifier, dtype=np.float32)
    n_classes = clf.shape[0]
    if feats.shape[0] != labels_arr.shape[0]:
        raise ValueError(f"{feats.shape[0]} image features but {labels_arr.shape[0]} labels")
    if labels_arr.size and (labels_arr.min() < 0 or labels_arr.max() >= n_classes):
        lo, hi = labels_arr.min(), labels_arr.max()
        raise ValueError(f"labels must be in [0, {n_classes}); got min {lo}, max {hi}")
    if classnames is not None and len(classnames) != n_classes:
        raise ValueError(f"{len(classnames)} classnames for a classifier with {n_classes} classes")
    names = list(classnames) if classnames is not None else [str(i) for i in range(n_classes)]
    onehot = np.zeros((len(labels_arr), n_classes), dtype=bool)
    onehot[np.arange(len(labels_arr)), labels_arr] = True
    if scores is None:
        ranks = _best_relevant_ranks(feats, clf, lambda rows: onehot[rows])
        predicted = (feats @ clf.T).argmax(axis=1) if len(labels_arr) else np.zeros(0, dtype=np.int64)
    else:
        if scores.shape != (len(labels_arr), n_classes):
            raise ValueError(f"scores {scores.shape} must be (images, classes) = {(len(labels_arr), n_classes)}")
        ranks = _ranks_of(scores, onehot)
        predicted = scores.argmax(axis=1) if len(labels_arr) else np.zeros(0, dtype=np.int64)
    top1 = ranks < 1
    per_class = {names[c]: float(top1[labels_arr == c].mean()) for c in range(n_classes) if (labels_arr == c).any()}
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels_arr, predicted), 1)
    return {
        "top1": recall_at_k(ranks, 1),
        "top5": recall_at_k(ranks, min(5, n_classes)),
        "mean_per_class": float(np.mean(list(per_class.values()))) if per_class else float("nan"),
        "per_class": per_class,
        "n": int(len(labels_arr)),
        "correct": [int(c) for c in top1],  # per image, in input order: what paired comparisons use
        "confusion": {"classes": names, "matrix": confusion.tolist()},  # rows: true class, columns: predicted
    }


# -- retrieval ----------------------------------------------------------------------------------------


def _per_image_recall(t2i_ranks: np.ndarray, i2t_ranks: np.ndarray, owner: np.ndarray, n_images: int,
                      ks: Sequence[int]) -> list[float | None]:
    """Each image's share of the mean recall: its image->text hits at each k, and the text->image hits of its
    own captions (averaged over them); the mean over images equals ``mean_recall`` when every image has as
    many captions. Images without captions are None."""
    out: list[float | None] = []
    for i in range(n_images):
        own = t2i_ranks[owner == i]
        own = own[own >= 0]
        if i2t_ranks[i] < 0 or not own.size:
            out.append(None)
            continue
        hits = [float(i2t_ranks[i] < k) for k in ks] + [float((own < k).mean()) for k in ks]
        out.append(float(np.mean(hits)))
    return out


def _retrieval_dict(t2i_ranks: np.ndarray, i2t_ranks: np.ndarray, ks: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ks:
        out[f"text_to_image_R@{k}"] = recall_at_k(t2i_ranks, k)
    for k in ks:
        out[f"image_to_text_R@{k}"] = recall_at_k(i2t_ranks, k)
    out["mean_recall"] = float(np.mean([v for v in out.values()]))
    out["n_texts"] = int((t2i_ranks >= 0).sum())
    out["n_images"] = int((i2t_ranks >= 0).sum())
    return out


def retrieval_metrics(
    image_features: np.ndarray,
    text_features: np.ndarray,
    text_to_image: Sequence[int] | np.ndarray,
    *,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Text->image and image->text recall@k, and their mean ("mean recall", mR).

    ``text_to_image[t]`` is the index of the image caption ``t`` describes; an image may have several
    captions. Text->image: a hit if the caption's image is in the top ``k`` images. Image->text: a hit if
    any of the image's captions is in the top ``k`` texts; images without captions are left out
    (``n_images`` counts the rest).
    """
    img = l2_normalize(image_features)
    txt = l2_normalize(text_features)
    owner = np.asarray(text_to_image, dtype=np.int64)
    if owner.shape != (txt.shape[0],):
        raise ValueError(f"text_to_image has {owner.shape[0]} entries for {txt.shape[0]} texts")
    if owner.size and (owner.min() < 0 or owner.max() >= img.shape[0]):
        raise ValueError(f"text_to_image must index the {img.shape[0]} images")
    image_ids = np.arange(img.shape[0])
    t2i = _best_relevant_ranks(txt, img, lambda rows: owner[rows, None] == image_ids[None, :])
    i2t = _best_relevant_ranks(img, txt, lambda rows: image_ids[rows, None] == owner[None, :])
    return {**_retrieval_dict(t2i, i2t, ks), "per_image": _per_image_recall(t2i, i2t, owner, img.shape[0], ks)}


def class_aware_retrieval_metrics(
    image_features: np.ndarray,
    text_features: np.ndarray,
    image_labels: Sequence[Any] | np.ndarray,
    text_labels: Sequence[Any] | np.ndarray,
    *,
    ks: Sequence[int] = (1, 5, 10),
    text_to_image: Sequence[int] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Retrieval recall@k where any image (or text) of the query's class counts as a hit.

    For datasets such as UCM-captions whose captions repeat across images of a class. Labels may be ints
    or strings; queries whose class has no candidate on the other side are left out. With
    ``text_to_image`` (which image each text describes) the result also has each image's ``per_image``
    share of the mean recall.
    """
    img = l2_normalize(image_features)
    txt = l2_normalize(text_features)
    ilab = np.asarray(image_labels)
    tlab = np.asarray(text_labels)
    if ilab.shape != (img.shape[0],) or tlab.shape != (txt.shape[0],):
        raise ValueError(
            f"need one label per image and per text: {ilab.shape} labels for {img.shape[0]} images, "
            f"{tlab.shape} for {txt.shape[0]} texts"
        )
    t2i = _best_relevant_ranks(txt, img, lambda rows: tlab[rows, None] == ilab[None, :])
    i2t = _best_relevant_ranks(img, txt, lambda rows: ilab[rows, None] == tlab[None, :])
    out = _retrieval_dict(t2i, i2t, ks)
    if text_to_image is not None:
        out["per_image"] = _per_image_recall(t2i, i2t, np.asarray(text_to_image), img.shape[0], ks)
    return out


# -- judged ranking (marks users gave) ------------------------------------------------------------------


def judged_ranking_metrics(scores: Sequence[float] | np.ndarray, relevant: Sequence[bool] | np.ndarray, *,
                           k: int = 10) -> dict[str, Any]:
    """Precision@k, average precision and nDCG@k of one query's ranking of its *judged* images only.

    ``scores[i]`` is the model's score of judged image ``i``, ``relevant[i]`` the user's mark. Images are
    ranked by score, ties counted against the relevant ones (a relevant image ranks behind every not
    relevant one with the same score). Precision@k is over the first ``min(k, n)`` judged images; AP and
    nDCG are None when no image was judged relevant (there is nothing to find), precision too when none was
    judged at all. ``n`` and ``n_relevant`` say how many judgments back the numbers.
    """
    s = np.asarray(scores, dtype=np.float64)
    rel = np.asarray(relevant, dtype=bool)
    if s.shape != rel.shape or s.ndim != 1:
        raise ValueError(f"{s.shape} scores for {rel.shape} judgments; give one score per judged image")
    n, n_rel = int(len(s)), int(rel.sum())
    order = np.lexsort((rel, -s))  # by score, high first; on ties the not relevant (False) first
    ranked = rel[order]
    top = min(k, n)
    out: dict[str, Any] = {"n": n, "n_relevant": n_rel, "k": k,
                           f"precision@{k}": float(ranked[:top].mean()) if top else None}
    if not n_rel:
        return {**out, "average_precision": None, f"ndcg@{k}": None}
    hits = np.flatnonzero(ranked)
    out["average_precision"] = float(np.mean((np.arange(len(hits)) + 1) / (hits + 1)))
    gains = 1.0 / np.log2(np.arange(top) + 2)
    ideal = gains[: min(k, n_rel)].sum()
    out[f"ndcg@{k}"] = float((ranked[:top] * gains).sum() / ideal)
    return out


# -- adapters from a model to features ----------------------------------------------------------------

_locks_guard = threading.Lock()
_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()


def _model_lock(model: Any) -> threading.Lock:
    """One lock per model object, shared by every encoder over it."""
    with _locks_guard:
        return _locks.setdefault(model, threading.Lock())


def _trimmable_pad_id(model: Any) -> int | None:
    """The pad token id of a Hugging Face text tower that masks its padding (open_clip's ``HFTextEncoder``);
    None for towers whose positions are fixed (open_clip's own text transformer)."""
    tower = getattr(model, "text", None)
    pad = getattr(getattr(tower, "config", None), "pad_token_id", None)
    return int(pad) if type(tower).__name__ == "HFTextEncoder" and isinstance(pad, int) else None


def text_encoder(
    model: Any,
    tokenizer: Callable[[list[str]], torch.Tensor],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 256,
) -> TextEncoder:
    """A :data:`TextEncoder` over an open_clip-style model: normalised ``encode_text`` rows as float32.

    Thread-safe: calls on one model take turns (the model's train/eval mode is switched for the call). A
    Hugging Face text tower gets its tokens without the trailing padding columns (the tokenizer pads to the
    context length; the tower masks padding, so the rows are the same, several times faster for short texts).
    """
    pad = _trimmable_pad_id(model)
    lock = _model_lock(model)

    def encode(texts: list[str]) -> np.ndarray:
        rows: list[np.ndarray] = []
        with lock:
            was_training = model.training
            model.eval()
            try:
                with torch.inference_mode():
                    for start in range(0, len(texts), batch_size):
                        tokens = tokenizer(list(texts[start : start + batch_size]))
                        if pad is not None:
                            used = (tokens != pad).any(dim=0).nonzero()
                            tokens = tokens[:, : int(used.max()) + 1] if len(used) else tokens
                        rows.append(model.encode_text(tokens.to(device), normalize=True).float().cpu().numpy())
            finally:
                model.train(was_training)
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    return encode


class _ImageFiles(torch.utils.data.Dataset[torch.Tensor]):
    def __init__(self, paths: Sequence[str], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(load_rgb(self.paths[i]))  # a file or a chip of a scene


def encode_image_files(
    model: Any,
    transform: Callable[[Image.Image], torch.Tensor],
    paths: Sequence[str],
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
) -> np.ndarray:
    """Normalised ``encode_image`` features of image files (decoded with PIL as RGB), ``(n, dim)`` float32."""
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, transform), batch_size=batch_size, num_workers=num_workers, shuffle=False
    )
    was_training = model.training
    model.eval()
    rows: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for images in loader:
                rows.append(model.encode_image(images.to(device), normalize=True).float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

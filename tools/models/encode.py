"""Batch encoding of images and texts into L2-normalised float32 embeddings (numpy arrays)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image

from tools.models.loading import LoadedModel


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run in eval mode, restoring the previous mode afterwards (a trainer may share the model)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _normalised(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return features.cpu().numpy().astype(np.float32, copy=False)


def _clip(loaded: LoadedModel) -> Any:
    """The model, typed loosely: open_clip's CLIP classes are not annotated for ``encode_*``."""
    return loaded.model


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def encode_images(
    loaded: LoadedModel,
    images: Sequence[Image.Image] | torch.Tensor,
    batch_size: int = 64,
) -> np.ndarray:
    """Embed images: PIL images (transformed with ``preprocess_val``) or an already preprocessed
    ``(N, 3, H, W)`` tensor. Returns an ``(N, embed_dim)`` float32 array with unit-length rows.
    """
    _check_batch_size(batch_size)
    if isinstance(images, torch.Tensor) and images.ndim != 4:
        raise ValueError(f"an image tensor batch must be (N, 3, H, W), got shape {tuple(images.shape)}")
    n = len(images)
    if n == 0:
        return np.zeros((0, loaded.embed_dim), dtype=np.float32)
    device = loaded.device
    dtype = next(loaded.model.parameters()).dtype
    out: list[np.ndarray] = []
    with _eval_mode(loaded.model), torch.inference_mode():
        for start in range(0, n, batch_size):
            if isinstance(images, torch.Tensor):
                batch = images[start : start + batch_size]
            else:
                batch = torch.stack([loaded.preprocess_val(im) for im in images[start : start + batch_size]])
            features = _clip(loaded).encode_image(batch.to(device=device, dtype=dtype))
            out.append(_normalised(features))
    return np.concatenate(out, axis=0)


def encode_texts(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """Embed texts with the model's tokenizer. Returns an ``(N, embed_dim)`` float32 array, unit rows."""
    _check_batch_size(batch_size)
    if isinstance(texts, str):
        raise TypeError("encode_texts takes a sequence of strings; wrap a single text in a list")
    texts = list(texts)
    if not texts:
        return np.zeros((0, loaded.embed_dim), dtype=np.float32)
    device = loaded.device
    out: list[np.ndarray] = []
    with _eval_mode(loaded.model), torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            tokens = loaded.tokenizer(texts[start : start + batch_size]).to(device)
            out.append(_normalised(_clip(loaded).encode_text(tokens)))
    return np.concatenate(out, axis=0)

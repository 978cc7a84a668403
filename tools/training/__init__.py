"""Contrastive fine-tuning of open_clip-style image-text models, resumable to the exact bit on CPU.

:func:`train` runs the loop: open_clip's own ``ClipLoss`` (or its ``SigLipLoss``, ``loss="siglip"``), AdamW
(no weight decay on biases, norms, embeddings of rank < 2 and ``logit_scale``, as open_clip does), the pure
:func:`~tools.schedule.cosine_lr` schedule with linear warmup, gradient clipping, gradient accumulation, AMP
on CUDA (bf16 autocast, or fp16 autocast with a ``GradScaler``), an optional frozen tower, an optional
exponential moving average of the weights (``ema_decay``), and optional WiSE-FT weight averaging.

Batches keep alike captions apart (``batch_order="spread_captions"``, the default): before the first
step, the images are clustered by their captions' embeddings (k-means, as many clusters as the batch is
large, no labels read) and each batch takes one image from each of the clusters with the most images
left. Repeated captions, as in UCM-captions where a scene type's images share their sentences, would
otherwise be each other's negatives in the contrastive loss.

Reproducibility is designed in rather than hoped for. Nothing in the data pipeline reads a global random
state: the order of an epoch is a permutation drawn from ``(seed, epoch)``, and the caption chosen for an
image and its augmentation are drawn from a seed derived from ``(seed, epoch, index)``. A sample is
therefore the same whichever worker decodes it, with any ``num_workers``, and a run resumed from a
checkpoint in the middle of an epoch sees exactly the batches the uninterrupted run would have seen. The
checkpoint (``checkpoint-latest.pt``, replaced atomically) holds model, optimizer, GradScaler, step,
epoch, position in the epoch, the caption clusters, the weight average, and the Python/NumPy/torch RNG
states, so a run killed at any moment and resumed ends with the same weights as one never interrupted
(on CPU, with the same thread count).

Modules: :mod:`~tools.training.config` (config, items, results, file names), :mod:`~tools.training.data`
(seeds, epoch order, caption clusters, dataset, sampler, collate), :mod:`~tools.training.optim` (frozen
towers, AdamW groups, one optimizer step with gradient accumulation), :mod:`~tools.training.averaging`
(EMA, WiSE-FT), :mod:`~tools.training.state` (checkpoints, RNG states, resumability) and
:mod:`~tools.training.loop` (:func:`train`).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tools.training.config import (
    CHECKPOINT_NAME,
    FINAL_MODEL_NAME,
    LOG_NAME,
    WISE_START_NAME,
    AugmentConfig,
    StepInfo,
    TrainConfig,
    TrainItem,
    TrainResult,
)

if TYPE_CHECKING:
    from tools.training.averaging import wise_ft
    from tools.training.data import caption_clusters, kmeans_cosine, sample_seed, spread_order
    from tools.training.loop import train
    from tools.training.optim import build_optimizer, freeze_tower
    from tools.training.state import load_train_state

#: the torch-heavy parts, imported on first use, so that reading a config (e.g. to build the CLI's
#: options) does not load torch
_LAZY = {"wise_ft": "averaging", "caption_clusters": "data", "kmeans_cosine": "data", "sample_seed": "data",
         "spread_order": "data", "train": "loop", "build_optimizer": "optim", "freeze_tower": "optim",
         "load_train_state": "state"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"tools.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tools.training' has no attribute {name!r}")


__all__ = [
    "CHECKPOINT_NAME",
    "AugmentConfig",
    "FINAL_MODEL_NAME",
    "LOG_NAME",
    "WISE_START_NAME",
    "StepInfo",
    "TrainConfig",
    "TrainItem",
    "TrainResult",
    "build_optimizer",
    "caption_clusters",
    "freeze_tower",
    "kmeans_cosine",
    "load_train_state",
    "sample_seed",
    "spread_order",
    "train",
    "wise_ft",
]

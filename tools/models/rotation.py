"""Rotation-invariant image embeddings for overhead imagery.

A nadir tile has no "up": a harbour rotated by 90 degrees is still a harbour, and search should find it
either way. Training already shows each image at a random multiple of 90 degrees (:mod:`tools.augment`);
at inference, a pooled tower embeds the four rotations of each input in one batch and averages them, so
its embedding is exactly invariant to those rotations (group averaging over C4). In training mode the
tower is unchanged, so training pays nothing for it; an embedding costs four forward passes.

Measured on UC Merced val with a skyscout-tiny trained 40 epochs (16 classes, class-name prompts):
zero-shot top-1 0.662 without pooling, 0.713 with it (README, "Measured here").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["RotationPooling", "pool_rotations"]

_CLASSES: dict[type, type] = {}


class RotationPooling(nn.Module):
    """Mixin placed before an image tower's class: eval-mode forward averages over the four rotations."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.training or args or kwargs:
            return super().forward(x, *args, **kwargs)
        n = x.shape[0]
        rotated = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
        out = super().forward(rotated)
        return out.reshape(4, n, *out.shape[1:]).mean(dim=0)


def pool_rotations(tower: nn.Module) -> nn.Module:
    """Make ``tower`` rotation-pooled in place (its class gains :class:`RotationPooling`); returns it.

    The parameters, their names and the state dict do not change, so checkpoints load either way.
    """
    if isinstance(tower, RotationPooling):
        return tower
    base = type(tower)
    if base not in _CLASSES:
        _CLASSES[base] = type(f"RotationPooled{base.__name__}", (RotationPooling, base), {})
    tower.__class__ = _CLASSES[base]
    return tower

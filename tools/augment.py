"""SkyScript-style training augmentations, composed in front of a CLIP model's own normalisation.

Overhead imagery has no "up": SkyScript fine-tunes with random 90-degree rotations, colour jitter and
random resized crops. :func:`build_train_transform` builds that pipeline (PIL image in, normalised tensor
out) for any image size and normalisation; :func:`train_transform_like` reads size, mean and std from a
model's evaluation transform (open_clip's ``preprocess_val``), so training and evaluation agree.

All randomness is drawn from torch's global CPU generator, so seeding it around one call (as
:mod:`tools.training` does per sample) makes a sample's augmentation reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from tools.training.config import AugmentConfig, Interpolation

__all__ = [
    "AugmentConfig",
    "RandomRotate90",
    "build_train_transform",
    "normalization_of",
    "train_transform_like",
]



class RandomRotate90(torch.nn.Module):
    """Rotate by a uniformly chosen multiple of 90 degrees (0, 90, 180 or 270); PIL images or tensors."""

    _PIL_OPS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)

    def forward(self, img: Any) -> Any:
        k = int(torch.randint(0, 4, (1,)).item())
        if isinstance(img, Image.Image):
            op = self._PIL_OPS[k]
            return img if op is None else img.transpose(op)
        return torch.rot90(img, k, dims=(-2, -1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _ToRGB:
    """Convert any PIL image (L, P, RGBA, I;16 ...) to 3-channel RGB."""

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.mode == "RGB" else img.convert("RGB")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _pair(image_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


def build_train_transform(
    image_size: int | Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    rotate90: bool = True,
    hflip: bool = False,
    color_jitter: float = 0.4,
    color_jitter_p: float = 0.8,
    hue: float = 0.0,
    scale: tuple[float, float] = (0.5, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    interpolation: Interpolation = "bicubic",
) -> Callable[[Image.Image], torch.Tensor]:
    """Training transform: RGB -> random resized crop -> rot90 -> (flip) -> colour jitter -> normalise.

    The crop comes first so that the later, per-pixel steps work on the small output image.
    ``color_jitter`` is the strength for brightness, contrast and saturation, applied with probability
    ``color_jitter_p``; ``hue`` stays 0 by default because a hue shift turns water into vegetation.
    ``mean``/``std`` must be the model's own normalisation.
    """
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    if color_jitter < 0 or not 0.0 <= color_jitter_p <= 1.0:
        raise ValueError(
            f"color_jitter must be >= 0 and color_jitter_p in [0, 1], got {color_jitter}, {color_jitter_p}"
        )
    mode = InterpolationMode.BICUBIC if interpolation == "bicubic" else InterpolationMode.BILINEAR
    steps: list[Callable[[Any], Any]] = [
        _ToRGB(),
        T.RandomResizedCrop(_pair(image_size), scale=scale, ratio=ratio, interpolation=mode, antialias=True),
    ]
    if rotate90:
        steps.append(RandomRotate90())
    if hflip:
        steps.append(T.RandomHorizontalFlip())
    if (color_jitter > 0 or hue > 0) and color_jitter_p > 0:
        cj = color_jitter
        jitter = T.ColorJitter(brightness=cj, contrast=cj, saturation=cj, hue=hue)
        steps.append(T.RandomApply([jitter], p=color_jitter_p))
    steps += [T.ToTensor(), T.Normalize(mean=tuple(mean), std=tuple(std))]
    return T.Compose(steps)


def normalization_of(preprocess: Any) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...]]:
    """``(image_size, mean, std)`` of a torchvision ``Compose`` such as open_clip's ``preprocess_val``.

    The size is the last fixed output size found (``CenterCrop``/``Resize``/``RandomResizedCrop``).
    """
    steps = getattr(preprocess, "transforms", None)
    if steps is None:
        raise TypeError(
            f"expected a torchvision Compose (with .transforms), got {type(preprocess).__name__}; "
            "call build_train_transform(image_size, mean, std) instead"
        )
    size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    for step in steps:
        if isinstance(step, T.Normalize):
            mean, std = tuple(float(x) for x in step.mean), tuple(float(x) for x in step.std)
        elif isinstance(step, T.CenterCrop | T.RandomResizedCrop):
            size = _pair(step.size)
        elif isinstance(step, T.Resize) and isinstance(step.size, Sequence) and len(step.size) == 2:
            size = _pair(step.size)
        elif isinstance(step, T.Resize) and isinstance(step.size, int) and size is None:
            size = _pair(step.size)
    if size is None or mean is None or std is None:
        raise ValueError(
            f"could not find image size and Normalize in {preprocess!r}; "
            "call build_train_transform(image_size, mean, std) directly instead"
        )
    return size, mean, std


def train_transform_like(
    preprocess_val: Any, config: AugmentConfig | None = None
) -> Callable[[Image.Image], torch.Tensor]:
    """The training transform for a model, taking size and normalisation from its evaluation transform."""
    size, mean, std = normalization_of(preprocess_val)
    return build_train_transform(size, mean, std, **(config or AugmentConfig()).transform_kwargs())

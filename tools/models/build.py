"""Building open_clip architectures for SkyScout: the model record, quiet seeded construction, finishing.

:func:`create_model` builds an architecture on the CPU with a seeded initialisation (registering
``skyscout-tiny`` or a config carried by a checkpoint first); :func:`finish_model` moves it to its device
in eval mode and wraps it with its transforms and tokenizer as a :class:`LoadedModel`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tools.models.checkpoint import RawCheckpoint
from tools.models.errors import UnknownModelError
from tools.models.lite0 import load_lite0_trunk
from tools.models.rotation import pool_rotations
from tools.models.tiny import (
    BUILT_ARCHS,
    PACKAGE_PREFIX,
    package_dir,
    raw_built_config,
    register_built_config,
    register_config,
    resolve_config,
    skyscout_options,
)

#: sub-folder of the model cache holding the generated open_clip configs
CONFIG_SUBDIR = "configs"
_QUIET_MESSAGES = ("No pretrained weights loaded for model", "initialized partially")


@dataclass
class LoadedModel:
    """A model ready for encoding or training, with its transforms and tokenizer."""

    name: str  # the spec it was loaded from, e.g. "skyscout-tiny" or "path:/x.pt"
    arch: str  # open_clip architecture name
    model: torch.nn.Module  # open_clip CLIP / CustomTextCLIP, in eval mode
    preprocess_train: Callable[..., Any]  # PIL -> tensor (open_clip's train transform)
    preprocess_val: Callable[..., Any]  # PIL -> tensor
    tokenizer: Callable[..., torch.Tensor]  # list[str] -> LongTensor
    embed_dim: int
    image_size: int
    #: tokens per text (texts are padded/truncated to it)
    context_length: int = 77
    #: where the weights came from: a file path, "built" (skyscout-tiny fresh init) or "random"
    weights: str = "random"
    #: the checkpoint's top-level fields (epoch, name, extra, ...), empty for built models
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        """The device the model's parameters are on."""
        return next(self.model.parameters()).device


class _DropOpenClipNoise(logging.Filter):
    """Hide open_clip's 'no pretrained weights' warnings: we load the weights ourselves right after."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(m in message for m in _QUIET_MESSAGES)


@contextlib.contextmanager
def quiet_model_build() -> Iterator[None]:
    import transformers

    root = logging.getLogger()
    noise = _DropOpenClipNoise()
    root.addFilter(noise)
    verbosity = transformers.logging.get_verbosity()
    progress_bars = transformers.utils.logging.is_progress_bar_enabled()
    # the MiniLM load report lists the unused BERT pooler, expected since the tower mean-pools
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if progress_bars:
            transformers.utils.logging.enable_progress_bar()
        transformers.logging.set_verbosity(verbosity)
        root.removeFilter(noise)


def ensure_arch(arch: str, cache_dir: Path, checkpoint: RawCheckpoint | None = None) -> dict[str, Any]:
    """Make open_clip know ``arch``: register a built one (skyscout-tiny, skyscout-small), or a custom config
    carried by a checkpoint.

    Returns the config's SkyScout-only options (rotation pooling, input normalisation, image-tower weights),
    which open_clip does not see.
    """
    import open_clip

    if arch in BUILT_ARCHS:
        register_built_config(arch, cache_dir / CONFIG_SUBDIR)
        return skyscout_options(raw_built_config(arch))
    if arch in open_clip.list_models():
        return {}
    carried = checkpoint.meta.get("model_config") if checkpoint is not None else None
    if isinstance(carried, Mapping) and {"embed_dim", "vision_cfg", "text_cfg"} <= set(carried):
        register_config(arch, resolve_config(dict(carried)), cache_dir / CONFIG_SUBDIR)
        return skyscout_options(dict(carried))
    raise UnknownModelError(
        f"open_clip has no architecture {arch!r} and the checkpoint carries no model config for it. Use an "
        f"architecture from open_clip.list_models() (e.g. ViT-B-32, ViT-L-14-quickgelu) or one of {BUILT_ARCHS}."
    )


def create_model(
    arch: str,
    *,
    cache_dir: Path,
    seed: int,
    pretrained_text: bool,
    force_quick_gelu: bool = False,
    preprocess: Mapping[str, Any] | None = None,
    checkpoint: RawCheckpoint | None = None,
) -> tuple[nn.Module, Callable[..., Any], Callable[..., Any]]:
    """Build ``arch`` on the CPU with a seeded init (the global RNG is left as it was).

    ``pretrained_text`` also loads the image-tower weights a built config names (``skyscout-small``'s
    ImageNet EfficientNet-Lite0); a config's ``image_mean``/``image_std`` options are its normalisation.
    """
    import open_clip

    options = ensure_arch(arch, cache_dir, checkpoint)
    pp = {"mean": options.get("image_mean"), "std": options.get("image_std"), **(preprocess or {})}
    with torch.random.fork_rng(devices=[]), quiet_model_build():
        torch.manual_seed(seed)
        model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
            arch,
            pretrained=None,
            device="cpu",
            pretrained_text=pretrained_text,
            force_quick_gelu=force_quick_gelu,
            image_mean=pp.get("mean"),
            image_std=pp.get("std"),
            image_interpolation=pp.get("interpolation"),
            image_resize_mode=pp.get("resize_mode"),
        )
    weights = options.get("image_weights")
    if pretrained_text and isinstance(weights, str) and weights.startswith(PACKAGE_PREFIX):
        folder, _, name = weights.rpartition("/")
        load_lite0_trunk(model.visual.trunk, package_dir(folder) / name)
    if options.get("rotation_pooling"):
        pool_rotations(model.visual)
    return model, preprocess_train, preprocess_val


def finish_model(
    *,
    name: str,
    arch: str,
    model: nn.Module,
    preprocess_train: Callable[..., Any],
    preprocess_val: Callable[..., Any],
    device: str | torch.device,
    weights: str,
    meta: dict[str, Any] | None = None,
) -> LoadedModel:
    import open_clip

    model = model.to(device).eval()
    cfg = open_clip.get_model_config(arch) or {}
    size = open_clip.get_model_preprocess_cfg(model).get(
        "size", cfg.get("vision_cfg", {}).get("image_size", 224)
    )
    image_size = int(size[0] if isinstance(size, list | tuple) else size)
    tokenizer = open_clip.get_tokenizer(arch)
    context_length = int(
        getattr(tokenizer, "context_length", None) or cfg.get("text_cfg", {}).get("context_length", 77)
    )
    return LoadedModel(
        name=name,
        arch=arch,
        model=model,
        preprocess_train=preprocess_train,
        preprocess_val=preprocess_val,
        tokenizer=tokenizer,
        embed_dim=int(cfg["embed_dim"]),
        image_size=image_size,
        context_length=context_length,
        weights=weights,
        meta=meta or {},
    )

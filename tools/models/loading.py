"""Turning a model spec into a ready model: build the open_clip architecture, fetch and load weights strictly.

``load_model("skyscout-small", cache_dir=...)`` builds the offline default (pretrained MiniLM text tower,
ImageNet EfficientNet-Lite0 image tower from an installed package); ``skyscout-tiny`` the same with a seeded
random ResNet-18 image tower. A preset name or ``openclip:ARCH/TAG`` finds its weight file in the cache
(downloading it when allowed), and ``path:FILE`` reads a local checkpoint: SkyScout's own format (which
names its architecture), an open_clip training checkpoint, a zip in SkyScript's layout, or a bare
state_dict; when the file names no architecture it is inferred from the tensor shapes
(:mod:`tools.models.infer`), or given as ``path:FILE#ARCH``. :func:`save_checkpoint` writes SkyScout's format.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tools.models.build import CONFIG_SUBDIR, LoadedModel, create_model, finish_model
from tools.models.checkpoint import RawCheckpoint, load_state_dict_strict, read_checkpoint
from tools.models.errors import ModelNotAvailableError
from tools.models.fetch import EXTRACTED_SUBDIR, extract_user_zip, fetch_weights, resolve_preset_weights
from tools.models.infer import infer_arch
from tools.models.registry import (
    ModelSpec,
    arch_config,
    openclip_tag_config,
    openclip_weight_candidates,
    parse_spec,
)
from tools.models.saving import save_checkpoint
from tools.models.tiny import TINY_ARCH, init_text_projection_identity

__all__ = [
    "CONFIG_SUBDIR",
    "EXTRACTED_SUBDIR",
    "LoadedModel",
    "build_local",
    "load_model",
    "resolve_preset_weights",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


def _load_into(
    spec: ModelSpec,
    arch: str,
    raw: RawCheckpoint,
    *,
    cache_dir: Path,
    device: str | torch.device,
    seed: int,
    force_quick_gelu: bool = False,
    preprocess: Mapping[str, Any] | None = None,
) -> LoadedModel:
    model, pt, pv = create_model(
        arch,
        cache_dir=cache_dir,
        seed=seed,
        pretrained_text=False,  # every tensor comes from the checkpoint
        force_quick_gelu=force_quick_gelu,
        preprocess=preprocess,
        checkpoint=raw,
    )
    load_state_dict_strict(model, raw.state_dict, source=str(raw.path), arch=arch)
    return finish_model(
        name=spec.text,
        arch=arch,
        model=model,
        preprocess_train=pt,
        preprocess_val=pv,
        device=device,
        weights=str(raw.path),
        meta=raw.meta,
    )


def build_local(
    *, cache_dir: Path, device: str | torch.device = "cpu", seed: int = 0, name: str | None = None,
    arch: str = TINY_ARCH,
) -> LoadedModel:
    """A fresh built model (``skyscout-tiny``, ``skyscout-small``): pretrained MiniLM text tower (identity
    projection); the image tower seeded, or with the ImageNet weights its config names."""
    model, pt, pv = create_model(arch, cache_dir=cache_dir, seed=seed, pretrained_text=True)
    init_text_projection_identity(model)
    return finish_model(
        name=name or arch,
        arch=arch,
        model=model,
        preprocess_train=pt,
        preprocess_val=pv,
        device=device,
        weights="built",
    )


def _load_openclip(
    parsed: ModelSpec,
    *,
    cache_dir: Path,
    device: str | torch.device,
    seed: int,
    allow_download: bool | None,
    progress: bool,
) -> LoadedModel:
    """``openclip:ARCH`` (seeded random weights) or ``openclip:ARCH/TAG`` (the tag's weight file)."""
    assert parsed.arch is not None
    if parsed.tag is None:  # random init of a known architecture (tests, benchmarks)
        model, pt, pv = create_model(parsed.arch, cache_dir=cache_dir, seed=seed, pretrained_text=False)
        return finish_model(
            name=parsed.text,
            arch=parsed.arch,
            model=model,
            preprocess_train=pt,
            preprocess_val=pv,
            device=device,
            weights="random",
        )
    targets = openclip_weight_candidates(parsed.arch, parsed.tag, cache_dir)
    tag_cfg = openclip_tag_config(parsed.arch, parsed.tag)
    path = fetch_weights(
        f"open_clip {parsed.arch}/{parsed.tag}",
        targets,
        sha256=None,
        allow_download=allow_download,
        progress=progress,
    )
    quick_gelu = bool(tag_cfg.get("quick_gelu")) and not (arch_config(parsed.arch) or {}).get("quick_gelu")
    return _load_into(
        parsed,
        parsed.arch,
        read_checkpoint(path),
        cache_dir=cache_dir,
        device=device,
        seed=seed,
        force_quick_gelu=quick_gelu,
        preprocess={k: tag_cfg[k] for k in _PREPROCESS_KEYS if k in tag_cfg},
    )


def _load_path(parsed: ModelSpec, *, cache_dir: Path, device: str | torch.device, seed: int) -> LoadedModel:
    """``path:FILE`` (``path:FILE#ARCH``): the architecture is the spec's, else the file's, else inferred."""
    assert parsed.path is not None
    path = parsed.path
    if not path.is_file():
        raise ModelNotAvailableError(
            f"Checkpoint {path} (from spec {parsed.text!r}) does not exist.", expected_path=str(path)
        )
    if path.suffix.lower() == ".zip":
        path = extract_user_zip(path, cache_dir)
    raw = read_checkpoint(path)
    stored_arch = raw.meta.get("arch") if raw.is_skyscout else None
    if stored_arch is not None and parsed.arch is not None and parsed.arch != stored_arch:
        log.warning("%s says its arch is %r; loading it as %r as requested", path, stored_arch, parsed.arch)
    chosen = parsed.arch or stored_arch
    if chosen is None:
        openai = raw.meta.get("format") == "torchscript"
        chosen = infer_arch(raw.state_dict, source=path, spec_file=parsed.path, openai_archive=openai)
    return _load_into(parsed, str(chosen), raw, cache_dir=cache_dir, device=device, seed=seed)


def load_model(
    spec: str,
    *,
    cache_dir: Path,
    device: str | torch.device = "cpu",
    seed: int = 0,
    arch: str | None = None,
    allow_download: bool | None = None,
    progress: bool = True,
) -> LoadedModel:
    """Load a model from a spec: a preset name, ``openclip:ARCH/TAG`` or ``path:FILE`` (``path:FILE#ARCH``).

    ``cache_dir`` holds downloaded weights (and the generated open_clip configs). ``seed`` fixes every
    random initialisation (skyscout-tiny's image tower; ``openclip:ARCH`` without a tag). ``arch`` names
    the architecture of a checkpoint given with ``path:``; without it (and without ``#ARCH``) a checkpoint
    that names none gets the one its tensor shapes imply, or :class:`UnknownModelError` listing the
    candidates when shapes cannot decide (:mod:`tools.models.infer`). Downloads happen only when
    ``allow_download`` is true, or when it is None and neither SKYSCOUT_OFFLINE nor HF_HUB_OFFLINE is set;
    otherwise a missing file raises :class:`ModelNotAvailableError` naming the file and where to put it.
    A checkpoint that does not fit its architecture raises :class:`CheckpointMismatchError`.
    """
    parsed = parse_spec(spec, arch=arch)
    cache_dir = Path(cache_dir).expanduser()
    if parsed.kind == "openclip":
        return _load_openclip(
            parsed, cache_dir=cache_dir, device=device, seed=seed, allow_download=allow_download, progress=progress
        )
    if parsed.kind == "path":
        return _load_path(parsed, cache_dir=cache_dir, device=device, seed=seed)
    assert parsed.preset is not None
    preset = parsed.preset
    if preset.weights == "built":
        return build_local(cache_dir=cache_dir, device=device, seed=seed, name=parsed.text, arch=preset.arch)
    path = resolve_preset_weights(preset, cache_dir, allow_download=allow_download, progress=progress)
    return _load_into(parsed, preset.arch, read_checkpoint(path), cache_dir=cache_dir, device=device, seed=seed)

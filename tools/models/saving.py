"""Writing SkyScout's own checkpoint format (it names its architecture and carries its model config)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tools.models.build import LoadedModel
from tools.models.checkpoint import SKYSCOUT_FORMAT, SKYSCOUT_FORMAT_VERSION
from tools.models.registry import arch_config


def _check_plain(value: Any, where: str) -> None:
    """Refuse values that ``torch.load(weights_only=True)`` could not read back."""
    # exact types: subclasses such as torch's TorchVersion (a str) do not unpickle with weights_only=True
    if value is None or type(value) in (str, int, float, bool) or isinstance(value, torch.Tensor):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str keys")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoint metadata may hold only str, int, float, bool, "
        "None, tensors, and lists/dicts of them (so that it loads with weights_only=True)"
    )


def _unwrap(model: nn.Module) -> nn.Module:
    if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
        model = model.module
    orig = getattr(model, "_orig_mod", None)  # torch.compile wrapper
    return orig if isinstance(orig, nn.Module) else model


def save_checkpoint(
    path: Path,
    loaded: LoadedModel | nn.Module,
    *,
    arch: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write SkyScout's checkpoint format, reloadable with ``load_model("path:<path>")``.

    The file is a dict: ``format``, ``format_version``, ``arch``, ``model_config`` (the open_clip config,
    with skyscout-tiny's MiniLM folder left as its ``pkg:`` reference), ``embed_dim``, ``state_dict``
    (CPU tensors, no ``module.`` prefix), versions, ``saved_at``, ``source`` and ``extra`` (plain values
    only). ``arch`` defaults to ``loaded.arch``; it is required for a bare module. The write is atomic.
    """
    import open_clip

    if isinstance(loaded, LoadedModel):
        if arch is not None and arch != loaded.arch:
            raise ValueError(f"arch={arch!r} differs from the loaded model's arch {loaded.arch!r}")
        arch, module, source = loaded.arch, loaded.model, loaded.name
    else:
        if arch is None:
            raise ValueError("save_checkpoint needs arch=... when given a bare module")
        module, source = loaded, None
    module = _unwrap(module)
    extra = dict(extra or {})
    _check_plain(extra, "extra")
    config = arch_config(arch)
    payload: dict[str, Any] = {
        "format": SKYSCOUT_FORMAT,
        "format_version": SKYSCOUT_FORMAT_VERSION,
        "arch": arch,
        "model_config": config,
        "embed_dim": config.get("embed_dim") if config else None,
        "state_dict": {k: v.detach().to("cpu") for k, v in module.state_dict().items()},
        "open_clip_version": str(open_clip.__version__),
        "torch_version": str(torch.__version__),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source,
        "extra": extra,
    }
    _check_plain({k: v for k, v in payload.items() if k != "state_dict"}, "checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)

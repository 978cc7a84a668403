"""The model layer: named presets, strict checkpoint loading, the offline ``skyscout-tiny`` model, encoding.

Nothing is built at import; :func:`load_model` does the work when called::

    loaded = load_model("skyscout-tiny", cache_dir=Path(".skyscout/models"))
    vectors = encode_texts(loaded, ["solar farm", "vineyard"])
"""

from __future__ import annotations

from tools.models.checkpoint import CheckpointFormatError
from tools.models.download import ChecksumError, DownloadError
from tools.models.encode import encode_images, encode_texts
from tools.models.errors import CheckpointMismatchError, ModelNotAvailableError, UnknownModelError
from tools.models.loading import LoadedModel, load_model, save_checkpoint
from tools.models.registry import PRESETS, Preset, list_presets, parse_spec
from tools.models.tiny import SMALL_ARCH, TINY_ARCH

__all__ = [
    "PRESETS",
    "SMALL_ARCH",
    "TINY_ARCH",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "ChecksumError",
    "DownloadError",
    "LoadedModel",
    "ModelNotAvailableError",
    "Preset",
    "UnknownModelError",
    "encode_images",
    "encode_texts",
    "list_presets",
    "load_model",
    "parse_spec",
    "save_checkpoint",
]

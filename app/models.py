"""Models and captioners loaded once per process, and the one rule that names a model in the catalog.

A model spec (``active``, ``mv-...``, a preset, ``openclip:ARCH/TAG``, ``path:FILE``) resolves to a
:class:`~tools.modelops.ModelRef`; its ``key`` (the version id, else the load spec) is what evaluations and
indexes are recorded under, everywhere. :class:`ModelCache` keeps the most recently used models loaded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tools.catalog import Catalog
from tools.modelref import ModelRef, resolve_model

if TYPE_CHECKING:
    from tools.captioning.base import Captioner
    from tools.models import LoadedModel

TextEncoder = Callable[[list[str]], np.ndarray]
ImageFileEncoder = Callable[[list[str]], np.ndarray]


class ModelCache:
    """Loads each model spec once per process and keeps the most recent ``max_models`` (thread-safe).

    ``loader`` is :func:`tools.models.load_model` unless a caller injects another; keys are load specs
    (``skyscout-tiny``, ``path:/.../model.pt``), so a model version and its checkpoint path share one entry.
    Captioners are cached the same way, by name.
    """

    def __init__(
        self,
        *,
        cache_dir: Path,
        device: str = "cpu",
        max_models: int = 2,
        loader: Callable[..., LoadedModel] | None = None,
        make_captioner: Callable[[str], Captioner] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.device = device
        self.max_models = max(1, max_models)
        self._loader = loader
        self._make_captioner = make_captioner
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._captioners: dict[str, Captioner] = {}
        self._query_encoders: dict[str, tuple[LoadedModel, TextEncoder]] = {}
        self._lock = threading.Lock()

    def model(self, load_spec: str) -> LoadedModel:
        """The loaded model for ``load_spec`` (loaded now if it is not cached)."""
        with self._lock:
            if load_spec in self._models:
                self._models.move_to_end(load_spec)
                return self._models[load_spec]
            loader = self._loader
            if loader is None:
                from tools.models import load_model

                loader = load_model
            loaded = loader(load_spec, cache_dir=self.cache_dir, device=self.device, progress=False)
            self._models[load_spec] = loaded
            while len(self._models) > self.max_models:
                evicted, _ = self._models.popitem(last=False)
                self._query_encoders.pop(evicted, None)
            return loaded

    def query_encoder(self, load_spec: str) -> TextEncoder:
        """The search queries' text encoder of a model: concurrent searches share one forward pass, recent
        texts are cached (:class:`tools.text_batching.BatchingTextEncoder`); built once per loaded model."""
        from tools.text_batching import BatchingTextEncoder

        loaded = self.model(load_spec)
        with self._lock:
            known = self._query_encoders.get(load_spec)
            if known is None or known[0] is not loaded:
                known = (loaded, BatchingTextEncoder(text_encoder_of(loaded, self.device)))
                self._query_encoders[load_spec] = known
            return known[1]

    def captioner(self, name: str) -> Captioner:
        """The captioner called ``name`` (built now if it is not cached)."""
        with self._lock:
            if name not in self._captioners:
                if self._make_captioner is not None:
                    self._captioners[name] = self._make_captioner(name)
                else:
                    from tools.captioning.factory import create_captioner

                    self._captioners[name] = create_captioner(name, device=self.device)
            return self._captioners[name]

    def forget(self, load_spec: str) -> None:
        """Drop one cached model (e.g. after its checkpoint file was replaced)."""
        with self._lock:
            self._models.pop(load_spec, None)
            self._query_encoders.pop(load_spec, None)

    def __contains__(self, load_spec: object) -> bool:
        return load_spec in self._models


def load(catalog: Catalog, models: ModelCache, spec: str | None) -> tuple[ModelRef, LoadedModel]:
    """Resolve ``spec`` against the catalog and load it through the cache."""
    ref = resolve_model(catalog, spec)
    return ref, models.model(ref.load_spec)


def text_encoder_of(loaded: LoadedModel, device: str) -> TextEncoder:
    """Texts -> unit rows, with the model's own tokenizer and text tower."""
    from tools.evaluation import text_encoder

    return text_encoder(loaded.model, loaded.tokenizer, device=device)


def pil_image_encoder_of(loaded: LoadedModel, device: str) -> Callable[[list[Any]], np.ndarray]:
    """Decoded images (PIL) -> unit rows, with the model's evaluation transform and image tower."""
    import torch

    def encode(images: list[Any]) -> np.ndarray:
        if not images:
            return np.zeros((0, loaded.embed_dim), dtype=np.float32)
        pixels = torch.stack([loaded.preprocess_val(im) for im in images]).to(device)
        model: Any = loaded.model  # open_clip-style: encode_image(normalize=)
        with torch.inference_mode():
            rows: np.ndarray = model.encode_image(pixels, normalize=True).float().cpu().numpy()
        return rows

    return encode


def image_encoder_of(loaded: LoadedModel, device: str) -> ImageFileEncoder:
    """Image files -> unit rows, with the model's evaluation transform and image tower."""
    from tools.evaluation import encode_image_files

    def encode(paths: list[str]) -> np.ndarray:
        return encode_image_files(loaded.model, loaded.preprocess_val, paths, device=device)

    return encode


__all__ = ["ImageFileEncoder", "ModelCache", "ModelRef", "TextEncoder", "image_encoder_of", "load",
           "pil_image_encoder_of", "text_encoder_of"]

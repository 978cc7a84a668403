"""Wiring of real dependencies from settings: the one place that builds catalogs, models and stores."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from service.settings import Settings, load_settings
from tools.catalog import Catalog


@dataclass
class AppContext:
    """Lazily built dependencies shared by the CLI, the HTTP service and the agents.

    Models are loaded once per process and spec (``model``), never at import time.
    """

    settings: Settings = field(default_factory=load_settings)
    _models: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.settings.catalog_path)

    @cached_property
    def device(self) -> str:
        from tools.modelops import pick_device

        return pick_device(self.settings.device)

    def registry(self, kind: str | None = None) -> Any:
        """The index registry of a vector store backend (default: ``SKYSCOUT_STORE``)."""
        from tools.stores.factory import index_registry

        kind = kind or self.settings.store
        if kind == "lancedb":
            return index_registry("lancedb", path=self.settings.indexes_dir / "lancedb")
        s = self.settings
        return index_registry(kind, endpoint=s.astra_endpoint, token=s.astra_token,  # type: ignore[arg-type]
                              keyspace=s.astra_keyspace)

    def model(self, spec: str | None = None) -> tuple[Any, Any]:
        """(resolved spec, loaded model) for ``spec`` (default ``active``), cached per process."""
        from tools.modelops import load_resolved, resolve_model

        resolved = resolve_model(self.catalog, spec)
        with self._lock:
            if resolved.load_spec not in self._models:
                self._models[resolved.load_spec] = load_resolved(
                    self.catalog, spec, cache_dir=self.settings.cache_dir, device=self.device)[1]
            return resolved, self._models[resolved.load_spec]

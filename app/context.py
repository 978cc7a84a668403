"""The application context: the catalog, models and vector-store registries a process builds once.

Every way in (CLI command, HTTP route, agent tool) receives one :class:`AppContext` and calls the use
cases with it. Nothing here reads environment variables: ``service/context.py`` turns settings into an
:class:`~app.config.AppConfig`. Heavy things are built on first use and kept: the catalog connection, the
LanceDB connection (one registry per store kind), opened indexes, loaded models.
"""

from __future__ import annotations

import os
import secrets
import threading
from functools import cached_property
from typing import TYPE_CHECKING

from app.config import AppConfig
from app.models import ModelCache, ModelRef, load
from tools.catalog import Catalog
from tools.stores.base import IndexRegistry, StoreKind, VectorStore

if TYPE_CHECKING:
    from tools.models import LoadedModel


class AppContext:
    """What the use cases share within one process (thread-safe; build one per process)."""

    def __init__(self, config: AppConfig, *, catalog: Catalog | None = None,
                 models: ModelCache | None = None) -> None:
        self.config = config
        if catalog is not None:
            self.__dict__["catalog"] = catalog
        if models is not None:
            self.__dict__["models"] = models
        self._registries: dict[str, IndexRegistry] = {}
        self._stores: dict[tuple[str, str], VectorStore] = {}
        self._secrets: dict[str, bytes] = {}
        self._lock = threading.Lock()

    @cached_property
    def catalog(self) -> Catalog:
        """The catalog, opened once; jobs whose process died are marked abandoned now (any command's start)."""
        catalog = Catalog(self.config.catalog_path, guard_dirs=(self.config.models_dir, self.config.indexes_dir))
        catalog.reconcile_jobs()
        return catalog

    def secret(self, name: str) -> bytes:
        """A random key of this home (``<home>/secrets/<name>``, made on first use, readable by its owner only)."""
        with self._lock:
            if name not in self._secrets:
                path = self.config.home / "secrets" / name
                if not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fd = os.open(path.with_suffix(f".{os.getpid()}.tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(secrets.token_bytes(32))
                    path.with_suffix(f".{os.getpid()}.tmp").replace(path)
                self._secrets[name] = path.read_bytes()
            return self._secrets[name]

    @cached_property
    def device(self) -> str:
        from tools.modelops import pick_device

        return pick_device(self.config.device)

    @cached_property
    def models(self) -> ModelCache:
        return ModelCache(cache_dir=self.config.cache_dir, device=self.device, max_models=self.config.max_models)

    def load_model(self, spec: str | None) -> tuple[ModelRef, LoadedModel]:
        """(reference, loaded model) for ``spec`` (``active`` by default), loaded once per process."""
        return load(self.catalog, self.models, spec)

    def store_kind(self, kind: str | None = None) -> StoreKind:
        from tools.stores.base import STORE_KINDS

        chosen = kind or self.config.store
        if chosen not in STORE_KINDS:
            raise ValueError(f"unknown vector store {chosen!r}; choose from {', '.join(STORE_KINDS)}")
        return chosen  # type: ignore[return-value]

    def registry(self, kind: str | None = None) -> IndexRegistry:
        """The index registry of a store backend (default: the configured one), opened once."""
        store_kind = self.store_kind(kind)
        with self._lock:
            if store_kind not in self._registries:
                self._registries[store_kind] = self._open_registry(store_kind)
            return self._registries[store_kind]

    def _open_registry(self, kind: StoreKind) -> IndexRegistry:
        from tools.stores.factory import index_registry

        if kind == "lancedb":
            return index_registry("lancedb", path=self.config.indexes_dir / "lancedb")
        astra = self.config.astra
        return index_registry(kind, endpoint=astra.endpoint, token=astra.token, keyspace=astra.keyspace,
                              concurrency=astra.concurrency, chunk_size=astra.chunk_size, max_retries=astra.max_retries)

    def open_index(self, name: str, dim: int, kind: str | None = None) -> VectorStore:
        """An existing index, opened once per process and kept (searches reuse the open table)."""
        registry = self.registry(kind)
        key = (registry.kind, name)
        with self._lock:
            store = self._stores.get(key)
        if store is None:
            store = registry.open(name, dim, create=False)
            with self._lock:
                store = self._stores.setdefault(key, store)
        return store

    def forget_index(self, name: str, kind: str | None = None) -> None:
        """Drop an opened index from the cache (after it was rebuilt or dropped)."""
        with self._lock:
            self._stores.pop((self.store_kind(kind), name), None)


__all__ = ["AppContext"]

"""Pick a vector store backend by name, importing it only when used; open, list and drop named indexes.

One index (a LanceDB table or an Astra DB collection) holds the vectors of one model version; the
alias naming the active one lives in the catalog, not here. ``lancedb`` needs ``path`` (a directory);
``astra`` takes ``endpoint`` / ``token`` / ``keyspace`` (else the ``ASTRA_DB_*`` environment variables)
and optionally ``environment``. Other keyword options go to the backend's store (see
:class:`~tools.stores.lance.LanceStore` and :class:`~tools.stores.astra.AstraStore`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.stores.base import STORE_KINDS, IndexInfo, IndexRegistry, StoreKind, VectorStore


def index_registry(
    kind: StoreKind,
    *,
    path: str | Path | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    keyspace: str | None = None,
    environment: str | None = None,
    **options: Any,
) -> IndexRegistry:
    """The registry of named indexes of one backend (``lancedb`` or ``astra``)."""
    match kind:
        case "lancedb":
            if path is None:
                raise ValueError("the 'lancedb' store needs path= (the directory that holds its tables)")
            from tools.stores.lance import LanceIndexes

            return LanceIndexes(path, **options)
        case "astra":
            from tools.stores.astra import AstraIndexes

            return AstraIndexes(endpoint, token, keyspace, environment=environment, **options)
        case _:
            valid = ", ".join(repr(k) for k in STORE_KINDS)
            raise ValueError(f"unknown vector store kind {kind!r}; valid kinds: {valid}")


def open_index(kind: StoreKind, name: str, dim: int, *, create: bool = True, **settings: Any) -> VectorStore:
    """Open index ``name`` of backend ``kind`` (created when missing unless ``create=False``).

    ``settings`` are :func:`index_registry`'s keyword arguments (``path`` or Astra settings, options).
    """
    return index_registry(kind, **settings).open(name, dim, create=create)


def open_store(kind: StoreKind, *, name: str, dim: int, create: bool = True, **settings: Any) -> VectorStore:
    """Same as :func:`open_index`, keyword-only: ``open_store("lancedb", name=..., dim=512, path=...)``."""
    return open_index(kind, name, dim, create=create, **settings)


def list_indexes(kind: StoreKind, **settings: Any) -> list[IndexInfo]:
    """The vector indexes of backend ``kind``."""
    return index_registry(kind, **settings).list()


def drop_index(kind: StoreKind, name: str, **settings: Any) -> bool:
    """Delete index ``name`` and its vectors; returns whether it existed."""
    return index_registry(kind, **settings).drop(name)

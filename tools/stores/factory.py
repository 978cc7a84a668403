"""Pick a vector store backend by name, importing it only when used: its registry opens, lists and drops indexes.

One index (a LanceDB table or an Astra DB collection) holds the vectors of one model version; the
alias naming the active one lives in the catalog, not here. ``lancedb`` needs ``path`` (a directory);
``astra`` takes ``endpoint`` / ``token`` / ``keyspace`` (else the ``ASTRA_DB_*`` environment variables)
and optionally ``environment``. Other keyword options go to the backend's store (see
:class:`~tools.stores.lance.LanceStore` and :class:`~tools.stores.astra.AstraStore`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.stores.base import STORE_KINDS, IndexRegistry, StoreKind


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

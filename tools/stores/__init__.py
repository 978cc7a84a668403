"""Vector stores for image embeddings: one interface, LanceDB (local) and Astra DB backends, LangChain glue.

Backends load lazily: importing this package imports neither lancedb nor astrapy.

    from tools.stores import index_registry, bbox_filter
    store = index_registry("lancedb", path=".skyscout/index").open("tiles_skyclip_v1", 512)
    store.upsert(ids, vectors, metadata)
    hits = store.search(query_vector, k=10, filter={"label": "beach", **bbox_filter(2.0, 41.0, 2.5, 41.5)})
"""

from __future__ import annotations

from tools.stores.base import (
    STORE_KINDS,
    DimensionMismatchError,
    Hit,
    IndexInfo,
    IndexNotFoundError,
    IndexRegistry,
    MissingCredentialsError,
    StoreError,
    StoreKind,
    VectorStore,
    index_name_for_model,
    validate_index_name,
)
from tools.stores.factory import index_registry
from tools.stores.filters import FilterError, bbox_filter, matches, parse_filter

__all__ = [
    "STORE_KINDS",
    "DimensionMismatchError",
    "FilterError",
    "Hit",
    "IndexInfo",
    "IndexNotFoundError",
    "IndexRegistry",
    "MissingCredentialsError",
    "StoreError",
    "StoreKind",
    "VectorStore",
    "bbox_filter",
    "index_name_for_model",
    "index_registry",
    "matches",
    "parse_filter",
    "validate_index_name",
]

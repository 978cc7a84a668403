"""LanceDB backend: one table per index in a local directory, exact search while small, ANN index on demand.

A table has an ``id`` string column, a ``vector`` column (fixed-size list of float32) and one typed column
per metadata key (:mod:`tools.stores.lance_rows`), so every key can be filtered on in SQL. Upserts are
``merge_insert`` on ``id``: writing an id again replaces its row, never duplicates it. Search ranks by
cosine similarity, which for unit vectors is their dot product (``_distance = 1 - cos``).

Below ``ann_threshold`` rows a search scans every vector (exact); :meth:`LanceStore.build_ann_index`
trains an IVF_SQ, IVF_PQ or IVF_HNSW_SQ index, after which searches probe ``nprobes`` partitions and
re-rank ``refine_factor * k`` candidates on the exact vectors (:mod:`tools.stores.lance_ann`, which also
says why :meth:`LanceStore.optimize` rebuilds the index rather than letting LanceDB update it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tools.stores.base import (
    DimensionMismatchError,
    Hit,
    IndexInfo,
    IndexNotFoundError,
    StoreError,
    as_query_vector,
    chunked,
    prepare_batch,
    validate_index_name,
)
from tools.stores.filters import FieldType, sql_column, sql_literal, to_lance_sql
from tools.stores.lance_ann import (
    ANN_INDEX_TYPES,
    DEFAULT_ANN_THRESHOLD,
    DEFAULT_REFINE_FACTOR,
    DEFAULT_SCALAR_INDEX_FIELDS,
    AnnIndexReport,
    AnnIndexType,
    LanceAnnMixin,
)
from tools.stores.lance_memory import MemoryCopy
from tools.stores.lance_rows import ID_COLUMN as _ID
from tools.stores.lance_rows import METRIC as _METRIC
from tools.stores.lance_rows import VECTOR_COLUMN as _VECTOR
from tools.stores.lance_rows import arrow_batch, ensure_columns, metadata_of
from tools.stores.lance_rows import metadata_fields as schema_fields

__all__ = [
    "ANN_INDEX_TYPES",
    "DEFAULT_ANN_THRESHOLD",
    "DEFAULT_REFINE_FACTOR",
    "DEFAULT_SCALAR_INDEX_FIELDS",
    "AnnIndexReport",
    "AnnIndexType",
    "LanceIndexes",
    "LanceStore",
]

_ID_CHUNK = 1000
#: how long a store trusts the table schema it read (LanceDB's readers see other writers' versions within 5 s too)
FIELDS_TTL_S = 5.0


class LanceStore(LanceAnnMixin):
    """One LanceDB table as a :class:`~tools.stores.base.VectorStore`. Open it with :class:`LanceIndexes`."""

    kind = "lancedb"

    def __init__(
        self,
        table: Any,
        *,
        dim: int,
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        nprobes: int = 20,
        refine_factor: int | None = None,
        ef: int = 64,
    ) -> None:
        self._table = table
        self.name: str = table.name
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        self.ef = ef
        self._lock = threading.Lock()
        self._ann_type: str | None = None
        self._fields: tuple[float, dict[str, FieldType]] | None = None
        self._memory = MemoryCopy(lambda: int(self._table.version), self._table.count_rows, self._all_rows)
        self.refresh()

    def __repr__(self) -> str:
        return f"LanceStore(name={self.name!r}, dim={self.dim}, ann={self._ann_type})"

    # -- schema ------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the table's indexes (after another process built one)."""
        self._ann_type = None
        self._fields = None
        self._memory.drop()
        for idx in self._table.list_indices():
            if _VECTOR in list(idx.columns):
                # LanceDB reports "IvfSq", "IvfHnswSq", ...: name them as build_ann_index does
                self._ann_type = re.sub(r"(?<!^)(?=[A-Z])", "_", str(idx.index_type)).upper()

    @property
    def ann_index_type(self) -> str | None:
        """The vector index type (e.g. ``IVF_PQ``), or None while searches are exact."""
        return self._ann_type

    def metadata_fields(self) -> dict[str, FieldType]:
        """The metadata columns and how each is typed (re-read at most every :data:`FIELDS_TTL_S` seconds, and
        after each upsert here: reading the schema is a round trip through LanceDB's event loop)."""
        cached = self._fields
        now = time.monotonic()
        if cached is None or now - cached[0] > FIELDS_TTL_S:
            cached = self._fields = (now, schema_fields(self._table.schema))
        return cached[1]

    # -- the VectorStore interface -----------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]) -> int:
        ids, v, metas = prepare_batch(ids, vectors, metadata, self.dim)
        if not ids:
            return 0
        with self._lock:
            ensure_columns(self._table, metas, self.name)
            self._fields = None
            self._memory.drop()
            batch = arrow_batch(self._table.schema, ids, v, metas, self.dim)
            if self._table.count_rows() == 0:
                # nothing to match against: a plain append is the same upsert, and much faster
                self._table.add(batch)
            else:
                (self._table.merge_insert(_ID).when_matched_update_all().when_not_matched_insert_all().execute(batch))
            self._memory.drop()
        return len(ids)

    def search(
        self,
        vector: np.ndarray,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        *,
        exact: bool = False,
        nprobes: int | None = None,
        refine_factor: int | None = None,
        ef: int | None = None,
    ) -> list[Hit]:
        """Nearest ids by cosine similarity; ``exact=True`` skips the ANN index (flat scan).

        ``nprobes`` / ``refine_factor`` (IVF) and ``ef`` (HNSW) override the store's defaults. An unfiltered
        search of a small table without an ANN index is answered from an in-memory copy
        (:mod:`tools.stores.lance_memory`): the same exact ranking, without LanceDB's per-query cost.
        """
        q = as_query_vector(vector, self.dim)
        if k <= 0:
            return []
        fields = self.metadata_fields()
        where = to_lance_sql(filter, fields)
        if where is None and self._ann_type is None:
            snapshot = self._memory.current()
            if snapshot is not None:
                return snapshot.search(q, k)
        query = self._table.search(q, vector_column_name=_VECTOR).distance_type(_METRIC).limit(k)
        if where is not None:
            query = query.where(where, prefilter=True)
        query = query.select([_ID, *fields, "_distance"])
        if exact or self._ann_type is None:
            query = query.bypass_vector_index()
        else:
            query = query.nprobes(nprobes or self.nprobes)
            rf = refine_factor if refine_factor is not None else self.refine_factor
            if rf is None:
                rf = DEFAULT_REFINE_FACTOR.get(self._ann_type, 0)
            if rf:
                query = query.refine_factor(rf)
            if "HNSW" in self._ann_type:
                query = query.ef(max(ef or self.ef, k))
        table = query.to_arrow()
        return [
            Hit(id=row[_ID], score=1.0 - float(row["_distance"]), metadata=metadata_of(row, fields))
            for row in table.to_pylist()
        ]

    def _all_rows(self) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
        """Every row: ids, vectors (n, dim) and metadata (what the in-memory copy holds)."""
        fields = self.metadata_fields()
        table = self._table.search().select([_ID, _VECTOR, *fields]).limit(None).to_arrow()
        vecs = table.column(_VECTOR).combine_chunks().values.to_numpy(zero_copy_only=False)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32).reshape(-1, self.dim)
        rows = table.drop_columns([_VECTOR]).to_pylist()
        return [r[_ID] for r in rows], vecs, [metadata_of(r, fields) for r in rows]

    def _id_in(self, ids: Sequence[str]) -> str:
        return f"{sql_column(_ID)} IN ({', '.join(sql_literal(i) for i in ids)})"

    def get(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        if not ids:
            return out
        fields = self.metadata_fields()
        for chunk in chunked(list(dict.fromkeys(ids)), _ID_CHUNK):
            table = (
                self._table.search()
                .where(self._id_in(chunk))
                .select([_ID, _VECTOR, *fields])
                .limit(len(chunk))
                .to_arrow()
            )
            vecs = table.column(_VECTOR).combine_chunks().values.to_numpy(zero_copy_only=False)
            vecs = vecs.astype(np.float32, copy=False).reshape(-1, self.dim)
            for n, row in enumerate(table.drop_columns([_VECTOR]).to_pylist()):
                out[row[_ID]] = (vecs[n].copy(), metadata_of(row, fields))
        return out

    def delete(self, ids: Sequence[str]) -> int:
        deleted = 0
        with self._lock:
            self._memory.drop()
            for chunk in chunked(list(dict.fromkeys(ids)), _ID_CHUNK):
                result = self._table.delete(self._id_in(chunk))
                deleted += int(getattr(result, "num_deleted_rows", 0) or 0)
            self._memory.drop()
        return deleted

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        where = to_lance_sql(filter, self.metadata_fields())
        return int(self._table.count_rows(where) if where is not None else self._table.count_rows())

    def ids(self) -> set[str]:
        table = self._table.search().select([_ID]).limit(None).to_arrow()
        return set(table.column(_ID).to_pylist())


class LanceIndexes:
    """The indexes (tables) of one LanceDB directory: open/create, list, drop.

    ``read_consistency_interval`` is how stale a reader may be when another process writes the same
    table (LanceDB re-checks the table version at most that often); ``store_options`` go to
    :class:`LanceStore` (``ann_threshold``, ``nprobes``, ``refine_factor``, ``ef``).
    """

    kind = "lancedb"

    def __init__(
        self,
        path: str | Path,
        *,
        read_consistency_interval: timedelta | None = timedelta(seconds=5),
        **store_options: Any,
    ) -> None:
        import lancedb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._db = lancedb.connect(str(self.path), read_consistency_interval=read_consistency_interval)
        self._store_options = store_options

    def __repr__(self) -> str:
        return f"LanceIndexes(path={str(self.path)!r})"

    def _names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            page = self._db.list_tables(page_token=token)
            names.extend(page.tables)
            token = page.page_token
            if not token:
                return names

    def exists(self, name: str) -> bool:
        return name in self._names()

    def open(self, name: str, dim: int, *, create: bool = True) -> LanceStore:
        validate_index_name(name)
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        if self.exists(name):
            table = self._db.open_table(name)
            vec = table.schema.field(_VECTOR) if _VECTOR in table.schema.names else None
            if vec is None or not pa.types.is_fixed_size_list(vec.type):
                raise StoreError(f"table {name!r} in {self.path} is not a SkyScout vector index")
            if vec.type.list_size != dim:
                raise DimensionMismatchError(
                    f"index {name!r} in {self.path} holds {vec.type.list_size}-d vectors, not {dim}-d: "
                    "use one index per model version (index_name_for_model)"
                )
        elif not create:
            raise IndexNotFoundError(f"no index {name!r} in {self.path}; existing: {sorted(self._names())}")
        else:
            schema = pa.schema(
                [
                    pa.field(_ID, pa.string(), nullable=False),
                    pa.field(_VECTOR, pa.list_(pa.float32(), dim), nullable=False),
                ],
                metadata={"skyscout.metric": _METRIC},
            )
            table = self._db.create_table(name, schema=schema, exist_ok=True)
        return LanceStore(table, dim=dim, **self._store_options)

    def list(self) -> list[IndexInfo]:
        out: list[IndexInfo] = []
        for name in sorted(self._names()):
            schema = self._db.open_table(name).schema
            if _VECTOR in schema.names and pa.types.is_fixed_size_list(schema.field(_VECTOR).type):
                out.append(
                    IndexInfo(name=name, dim=schema.field(_VECTOR).type.list_size, kind=self.kind, metric=_METRIC)
                )
        return out

    def drop(self, name: str) -> bool:
        validate_index_name(name)
        if not self.exists(name):
            return False
        self._db.drop_table(name)
        return True

"""LanceDB backend: one table per index in a local directory, exact search while small, ANN index on demand.

A table has an ``id`` string column, a ``vector`` column (fixed-size list of float32) and one typed column
per metadata key (str, int64, float64, bool or list<str>), added the first time a key appears, so every
key can be filtered on in SQL. Upserts are ``merge_insert`` on ``id``: writing an id again replaces its
row, never duplicates it. Search ranks by cosine similarity, which for unit vectors is their dot
product (``_distance = 1 - cos``).

Below ``ann_threshold`` rows a search scans every vector (exact); :meth:`LanceStore.build_ann_index`
(run as a job by the caller once a table is large) trains an IVF_SQ (default), IVF_PQ or IVF_HNSW_SQ
index, after which searches probe ``nprobes`` partitions and re-rank ``refine_factor * k`` candidates
on the exact vectors. IVF_SQ (IVF partitions, vectors quantized to 8 bits per dimension) is the default
because on 512-d CLIP-like data it reaches recall@10 >= 0.95 with little re-ranking and builds in a
fraction of IVF_PQ's time; IVF_PQ is 8x smaller on disk (64-byte codes) but needs deep re-ranking.
Rows added after the index was built are still found (LanceDB scans them flat);
:meth:`LanceStore.optimize` compacts the table and then rebuilds the vector index from scratch. It does
not let LanceDB update the index in place: with lancedb 0.40 that was measured (bench_lancedb, 1M
vectors) to cut IVF_SQ recall@10 from 0.96 to 0.76 and make searches 15x slower.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from tools.stores.base import (
    DimensionMismatchError,
    Hit,
    IndexInfo,
    IndexNotFoundError,
    MetadataValue,
    StoreError,
    as_query_vector,
    chunked,
    prepare_batch,
    validate_index_name,
)
from tools.stores.filters import FieldType, sql_column, sql_literal, to_lance_sql

logger = logging.getLogger(__name__)

AnnIndexType = Literal["IVF_SQ", "IVF_PQ", "IVF_HNSW_SQ"]
ANN_INDEX_TYPES: tuple[str, ...] = ("IVF_SQ", "IVF_PQ", "IVF_HNSW_SQ")
#: Re-ranking depth (``refine_factor``) per index type when none is given: what bench_lancedb found
#: to reach recall@10 >= 0.95 (8-bit scalar quantization needs little; 64-byte PQ codes need a lot).
DEFAULT_REFINE_FACTOR: dict[str, int] = {"IVF_SQ": 2, "IVF_PQ": 40, "IVF_HNSW_SQ": 5}
#: Below this many rows, exact search is fast enough and an ANN index is not worth building.
DEFAULT_ANN_THRESHOLD = 100_000
#: Metadata columns worth a scalar index once the table is large (filtered on by the query agent).
DEFAULT_SCALAR_INDEX_FIELDS: tuple[str, ...] = ("label", "source", "dataset", "minx", "miny", "maxx", "maxy")
_ID, _VECTOR = "id", "vector"
#: Cosine, not dot: the same scores on unit vectors (``_distance = 1 - cos``), but LanceDB trains IVF
#: partitions for it with spherical k-means, which bench_lancedb found better balanced (about 2x faster
#: searches at the same recall than with "dot").
_METRIC: Literal["cosine"] = "cosine"
_ID_CHUNK = 1000

_ARROW_TYPES: dict[FieldType, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "list": pa.list_(pa.string()),
}


def _field_type(dtype: pa.DataType) -> FieldType | None:
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "str"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_floating(dtype):
        return "float"
    if (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)) and pa.types.is_string(dtype.value_type):
        return "list"
    return None


def _value_type(value: MetadataValue) -> FieldType:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "list"


def _fits(ftype: FieldType, value: MetadataValue) -> bool:
    vtype = _value_type(value)
    return vtype == ftype or (ftype == "float" and vtype == "int")


@dataclass(frozen=True)
class AnnIndexReport:
    """What :meth:`LanceStore.build_ann_index` did."""

    built: bool
    rows: int
    index_type: str | None = None
    seconds: float = 0.0
    reason: str = ""
    params: dict[str, Any] | None = None


class LanceStore:
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
        self.refresh()

    def __repr__(self) -> str:
        return f"LanceStore(name={self.name!r}, dim={self.dim}, ann={self._ann_type})"

    # -- schema ------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the table's indexes (after another process built one)."""
        self._ann_type = None
        for idx in self._table.list_indices():
            if _VECTOR in list(idx.columns):
                # LanceDB reports "IvfSq", "IvfHnswSq", ...: name them as build_ann_index does
                self._ann_type = re.sub(r"(?<!^)(?=[A-Z])", "_", str(idx.index_type)).upper()

    @property
    def ann_index_type(self) -> str | None:
        """The vector index type (e.g. ``IVF_PQ``), or None while searches are exact."""
        return self._ann_type

    def metadata_fields(self) -> dict[str, FieldType]:
        """The metadata columns and how each is typed."""
        out: dict[str, FieldType] = {}
        for f in self._table.schema:
            if f.name in (_ID, _VECTOR):
                continue
            ftype = _field_type(f.type)
            if ftype is not None:
                out[f.name] = ftype
        return out

    def _ensure_columns(self, metas: Sequence[Mapping[str, MetadataValue]]) -> dict[str, FieldType]:
        fields = self.metadata_fields()
        new: dict[str, FieldType] = {}
        for meta in metas:
            for key, value in meta.items():
                ftype = fields.get(key)
                if ftype is not None:
                    if not _fits(ftype, value):
                        raise ValueError(
                            f"metadata {key!r} is stored as {ftype} in index {self.name!r}; got {value!r} "
                            f"({_value_type(value)})"
                        )
                    continue
                vtype = _value_type(value)
                seen = new.get(key)
                if seen is None or seen == vtype:
                    new[key] = vtype
                elif {seen, vtype} == {"int", "float"}:
                    new[key] = "float"
                else:
                    raise ValueError(f"metadata {key!r} has values of two types in one batch: {seen}, {vtype}")
        if new:
            self._table.add_columns([pa.field(k, _ARROW_TYPES[t], nullable=True) for k, t in sorted(new.items())])
            fields.update(new)
        return fields

    def _arrow_batch(
        self, ids: Sequence[str], vectors: np.ndarray, metas: Sequence[Mapping[str, MetadataValue]]
    ) -> pa.Table:
        schema: pa.Schema = self._table.schema
        columns: list[pa.Array] = []
        for f in schema:
            if f.name == _ID:
                columns.append(pa.array(list(ids), type=f.type))
            elif f.name == _VECTOR:
                flat = pa.array(vectors.reshape(-1), type=pa.float32())
                columns.append(pa.FixedSizeListArray.from_arrays(flat, self.dim))
            else:
                values = [m.get(f.name) for m in metas]
                if _field_type(f.type) == "float":
                    values = [float(v) if v is not None else None for v in values]  # type: ignore[arg-type]
                columns.append(pa.array(values, type=f.type))
        return pa.Table.from_arrays(columns, schema=schema)

    # -- the VectorStore interface -----------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]) -> int:
        ids, v, metas = prepare_batch(ids, vectors, metadata, self.dim)
        if not ids:
            return 0
        with self._lock:
            self._ensure_columns(metas)
            batch = self._arrow_batch(ids, v, metas)
            if self._table.count_rows() == 0:
                # nothing to match against: a plain append is the same upsert, and much faster
                self._table.add(batch)
            else:
                (self._table.merge_insert(_ID).when_matched_update_all().when_not_matched_insert_all().execute(batch))
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

        ``nprobes`` / ``refine_factor`` (IVF) and ``ef`` (HNSW) override the store's defaults.
        """
        q = as_query_vector(vector, self.dim)
        if k <= 0:
            return []
        fields = self.metadata_fields()
        where = to_lance_sql(filter, fields)
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
            Hit(id=row[_ID], score=1.0 - float(row["_distance"]), metadata=self._metadata_of(row, fields))
            for row in table.to_pylist()
        ]

    @staticmethod
    def _metadata_of(row: Mapping[str, Any], fields: Mapping[str, FieldType]) -> dict[str, Any]:
        return {k: row[k] for k in fields if row.get(k) is not None}

    def _id_in(self, ids: Sequence[str]) -> str:
        return f"{sql_column(_ID)} IN ({', '.join(sql_literal(i) for i in ids)})"

    def get(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
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
                out[row[_ID]] = (vecs[n].copy(), self._metadata_of(row, fields))
        return out

    def delete(self, ids: Sequence[str]) -> int:
        deleted = 0
        with self._lock:
            for chunk in chunked(list(dict.fromkeys(ids)), _ID_CHUNK):
                result = self._table.delete(self._id_in(chunk))
                deleted += int(getattr(result, "num_deleted_rows", 0) or 0)
        return deleted

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        where = to_lance_sql(filter, self.metadata_fields())
        return int(self._table.count_rows(where) if where is not None else self._table.count_rows())

    def ids(self) -> set[str]:
        table = self._table.search().select([_ID]).limit(None).to_arrow()
        return set(table.column(_ID).to_pylist())

    # -- indexes and maintenance -------------------------------------------------------------------

    def build_ann_index(
        self,
        *,
        index_type: AnnIndexType = "IVF_SQ",
        force: bool = False,
        num_partitions: int | None = None,
        num_sub_vectors: int | None = None,
        m: int = 20,
        ef_construction: int = 150,
        sample_rate: int = 256,
        max_iterations: int = 50,
        scalar_fields: Sequence[str] | None = DEFAULT_SCALAR_INDEX_FIELDS,
    ) -> AnnIndexReport:
        """Train an approximate vector index (replacing any previous one) once the table is large enough.

        Does nothing (``built=False``) below ``ann_threshold`` rows unless ``force``. IVF_SQ and IVF_PQ:
        about sqrt(rows) partitions (PQ: ``dim / 8`` sub-vectors); IVF_HNSW_SQ: one HNSW graph per
        partition (fewer, bigger partitions). ``scalar_fields`` also get scalar indexes (BTree for
        numbers, Bitmap for strings and booleans, LabelList for lists) to speed up filtered search.
        """
        from lancedb.index import HnswSq, IvfPq, IvfSq

        if index_type not in ANN_INDEX_TYPES:
            raise ValueError(f"unknown ANN index type {index_type!r}; valid: {', '.join(ANN_INDEX_TYPES)}")
        rows = self.count()
        if rows < self.ann_threshold and not force:
            return AnnIndexReport(
                built=False,
                rows=rows,
                reason=f"{rows} rows < ann_threshold {self.ann_threshold}: exact search",
            )
        if rows < 256:
            return AnnIndexReport(built=False, rows=rows, reason=f"{rows} rows are too few to train an index")
        params: dict[str, Any]
        config: Any
        if index_type == "IVF_SQ":
            parts = num_partitions or max(1, min(4096, int(round(rows**0.5))))
            params = {"num_partitions": parts}
            config = IvfSq(
                distance_type=_METRIC,
                num_partitions=parts,
                sample_rate=sample_rate,
                max_iterations=max_iterations,
            )
        elif index_type == "IVF_PQ":
            parts = num_partitions or max(1, min(4096, int(round(rows**0.5))))
            subs = num_sub_vectors or max(1, self.dim // 8)
            if self.dim % subs:
                raise ValueError(f"num_sub_vectors={subs} must divide the dimension {self.dim}")
            params = {"num_partitions": parts, "num_sub_vectors": subs}
            config = IvfPq(
                distance_type=_METRIC,
                num_partitions=parts,
                num_sub_vectors=subs,
                sample_rate=sample_rate,
                max_iterations=max_iterations,
            )
        else:
            parts = num_partitions or max(1, rows // 250_000)
            params = {"num_partitions": parts, "m": m, "ef_construction": ef_construction}
            config = HnswSq(
                distance_type=_METRIC,
                num_partitions=parts,
                m=m,
                ef_construction=ef_construction,
                sample_rate=sample_rate,
                max_iterations=max_iterations,
            )
        start = time.perf_counter()
        with self._lock:
            self._table.create_index(_VECTOR, config=config, replace=True)
            if scalar_fields:
                self.build_scalar_indexes(scalar_fields)
        seconds = time.perf_counter() - start
        self.refresh()
        logger.info("built %s on %s (%d rows) in %.1fs", index_type, self.name, rows, seconds)
        return AnnIndexReport(built=True, rows=rows, index_type=index_type, seconds=seconds, params=params)

    def build_scalar_indexes(self, fields: Sequence[str]) -> list[str]:
        """Scalar indexes on the given metadata columns that exist; returns the columns indexed."""
        from lancedb.index import Bitmap, BTree, LabelList

        types = self.metadata_fields()
        done: list[str] = []
        for name in fields:
            ftype = types.get(name)
            if ftype is None:
                continue
            config = LabelList() if ftype == "list" else BTree() if ftype in ("int", "float") else Bitmap()
            self._table.create_index(name, config=config, replace=True)
            done.append(name)
        return done

    def unindexed_rows(self) -> int:
        """Rows written since the vector index was built (searched exactly); 0 without an index."""
        for idx in self._table.list_indices():
            if _VECTOR in list(idx.columns):
                return int(getattr(idx, "num_unindexed_rows", 0) or 0)
        return 0

    def optimize(
        self, *, cleanup_older_than: timedelta | None = None, rebuild_ann: bool = True
    ) -> AnnIndexReport | None:
        """Compact small fragments (each upsert adds some), drop old versions, rebuild the vector index.

        LanceDB keeps old table versions (7 days by default); ``cleanup_older_than=timedelta(0)`` frees
        their disk space now (readers holding an old version must re-open). LanceDB's compaction also
        updates the vector index in place, which degrades IVF indexes (see the module docstring), so
        when one exists it is rebuilt afterwards with the same type (default parameters for the current
        size); ``rebuild_ann=False`` skips that and leaves a degraded index until the next build.
        """
        index_type = self._ann_type
        with self._lock:
            self._table.optimize(cleanup_older_than=cleanup_older_than)
        if index_type in ANN_INDEX_TYPES and rebuild_ann:
            return self.build_ann_index(index_type=index_type, force=True, scalar_fields=None)  # type: ignore[arg-type]
        self.refresh()
        return None

    def stats(self) -> dict[str, Any]:
        """Rows, bytes on disk, fragments and indexes, as LanceDB reports them."""
        return dict(self._table.stats())


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

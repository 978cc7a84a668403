"""ANN indexes of a LanceDB store: train IVF_SQ / IVF_PQ / IVF_HNSW_SQ on demand, scalar indexes, compaction.

Below ``ann_threshold`` rows a search scans every vector (exact); :meth:`LanceAnnMixin.build_ann_index`
(run as a job by the caller once a table is large) trains an IVF_SQ (default), IVF_PQ or IVF_HNSW_SQ
index, after which searches probe ``nprobes`` partitions and re-rank ``refine_factor * k`` candidates
on the exact vectors. IVF_SQ (IVF partitions, vectors quantized to 8 bits per dimension) is the default
because on 512-d CLIP-like data it reaches recall@10 >= 0.95 with little re-ranking and builds in a
fraction of IVF_PQ's time; IVF_PQ is 8x smaller on disk (64-byte codes) but needs deep re-ranking.
Rows added after the index was built are still found (LanceDB scans them flat);
:meth:`LanceAnnMixin.optimize` compacts the table and then rebuilds the vector index from scratch. It
does not let LanceDB update the index in place: with lancedb 0.40 that was measured (bench_lancedb, 1M
vectors) to cut IVF_SQ recall@10 from 0.96 to 0.76 and make searches 15x slower.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from tools.stores.filters import FieldType
from tools.stores.lance_rows import METRIC, VECTOR_COLUMN

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


@dataclass(frozen=True)
class AnnIndexReport:
    """What :meth:`LanceAnnMixin.build_ann_index` did."""

    built: bool
    rows: int
    index_type: str | None = None
    seconds: float = 0.0
    reason: str = ""
    params: dict[str, Any] | None = None


def _ivf_partitions(rows: int) -> int:
    return max(1, min(4096, int(round(rows**0.5))))


def ann_index_config(
    index_type: str,
    *,
    rows: int,
    dim: int,
    num_partitions: int | None,
    num_sub_vectors: int | None,
    m: int,
    ef_construction: int,
    sample_rate: int,
    max_iterations: int,
) -> tuple[Any, dict[str, Any]]:
    """LanceDB's index config for ``index_type`` on ``rows`` vectors of ``dim``, and the parameters chosen."""
    from lancedb.index import HnswSq, IvfPq, IvfSq

    if index_type == "IVF_SQ":
        parts = num_partitions or _ivf_partitions(rows)
        config: Any = IvfSq(
            distance_type=METRIC, num_partitions=parts, sample_rate=sample_rate, max_iterations=max_iterations
        )
        return config, {"num_partitions": parts}
    if index_type == "IVF_PQ":
        parts = num_partitions or _ivf_partitions(rows)
        subs = num_sub_vectors or max(1, dim // 8)
        if dim % subs:
            raise ValueError(f"num_sub_vectors={subs} must divide the dimension {dim}")
        config = IvfPq(
            distance_type=METRIC,
            num_partitions=parts,
            num_sub_vectors=subs,
            sample_rate=sample_rate,
            max_iterations=max_iterations,
        )
        return config, {"num_partitions": parts, "num_sub_vectors": subs}
    parts = num_partitions or max(1, rows // 250_000)
    config = HnswSq(
        distance_type=METRIC,
        num_partitions=parts,
        m=m,
        ef_construction=ef_construction,
        sample_rate=sample_rate,
        max_iterations=max_iterations,
    )
    return config, {"num_partitions": parts, "m": m, "ef_construction": ef_construction}


class LanceAnnMixin:
    """The ANN-index and maintenance methods of :class:`~tools.stores.lance.LanceStore`."""

    _table: Any
    _lock: threading.Lock
    _ann_type: str | None
    name: str
    dim: int
    ann_threshold: int

    if TYPE_CHECKING:

        def count(self, filter: Mapping[str, Any] | None = None) -> int: ...

        def refresh(self) -> None: ...

        def metadata_fields(self) -> dict[str, FieldType]: ...

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
        config, params = ann_index_config(
            index_type,
            rows=rows,
            dim=self.dim,
            num_partitions=num_partitions,
            num_sub_vectors=num_sub_vectors,
            m=m,
            ef_construction=ef_construction,
            sample_rate=sample_rate,
            max_iterations=max_iterations,
        )
        start = time.perf_counter()
        with self._lock:
            self._table.create_index(VECTOR_COLUMN, config=config, replace=True)
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
            if VECTOR_COLUMN in list(idx.columns):
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

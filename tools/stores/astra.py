"""Astra DB backend: one collection per index, written in bulk with astrapy, searched via langchain-astradb.

Documents use the layout of LangChain's ``AstraDBVectorStore`` (``_id``, ``content``, ``metadata``,
``$vector``), so the same collection also works as a native LangChain vector store
(:meth:`AstraStore.langchain_vectorstore`). Collections are created with the ``dot_product`` metric
(vectors are unit length, so dot = cosine), ``metadata.*`` indexed for filtering, and no lexical or
rerank service. Astra reports similarity as ``(1 + dot) / 2``; :class:`~tools.stores.base.Hit` scores
are converted back to the cosine.

Upserts are idempotent without a read first: each chunk of at most 100 documents goes out as an
unordered ``insertMany`` (new ids, the common case when indexing a new model version, cost one request
per chunk); the ids the API reports as ``DOCUMENT_ALREADY_EXISTS`` are then replaced one by one with
``findOneAndReplace(upsert=true)``. Re-running a job, or retrying a chunk whose first attempt was
partly written, converges to the same documents and never duplicates one. (Delete-then-insert would
leave a window where readers miss the document, and lose it if the process died in between.) Chunks run
concurrently; timeouts, HTTP 429/5xx and connection errors are retried with exponential backoff.

Connection settings come from explicit arguments, else the standard environment variables
``ASTRA_DB_API_ENDPOINT``, ``ASTRA_DB_APPLICATION_TOKEN`` and ``ASTRA_DB_KEYSPACE``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from langchain_core.embeddings import Embeddings

from tools.stores.astra_client import (
    CONTENT_FIELD,
    DEFAULT_KEYSPACE,
    ENDPOINT_ENV,
    KEYSPACE_ENV,
    MAX_IN_VALUES,
    MAX_INSERT_CHUNK,
    MAX_SEARCH_K,
    MAX_SERVER_COUNT,
    TOKEN_ENV,
    AstraSettings,
    classify_insert_failures,
    is_transient,
)
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
from tools.stores.filters import to_astra_filter

if TYPE_CHECKING:
    from astrapy import Collection, Database
    from langchain_astradb import AstraDBVectorStore

__all__ = [
    "CONTENT_FIELD",
    "DEFAULT_KEYSPACE",
    "ENDPOINT_ENV",
    "KEYSPACE_ENV",
    "MAX_INSERT_CHUNK",
    "MAX_IN_VALUES",
    "MAX_SEARCH_K",
    "MAX_SERVER_COUNT",
    "TOKEN_ENV",
    "AstraIndexes",
    "AstraSettings",
    "AstraStore",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class _VectorsOnly(Embeddings):
    """Stands in for a text encoder where the store only ever receives vectors (LangChain needs one)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def _refuse(self) -> list[float]:
        raise StoreError(
            "this Astra store was opened without a text encoder, so it cannot embed text; search it with "
            "vectors, or pass embeddings= (a LangChain Embeddings such as TextEncoderEmbeddings)"
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._refuse() for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._refuse()


class AstraStore:
    """One Astra DB collection as a :class:`~tools.stores.base.VectorStore` (open it with AstraIndexes)."""

    kind = "astra"

    def __init__(
        self,
        collection: Collection,
        *,
        settings: AstraSettings,
        dim: int,
        embeddings: Embeddings | None = None,
        concurrency: int = 8,
        chunk_size: int = MAX_INSERT_CHUNK,
        max_retries: int = 5,
        retry_base_delay_s: float = 0.5,
        content_key: str = "uri",
    ) -> None:
        if not 1 <= chunk_size <= MAX_INSERT_CHUNK:
            raise ValueError(f"chunk_size must be 1..{MAX_INSERT_CHUNK} (the Data API limit), got {chunk_size}")
        self._coll = collection
        self.settings = settings
        self.name: str = collection.name
        self.dim = dim
        self.embeddings = embeddings
        self.concurrency = max(1, concurrency)
        self.chunk_size = chunk_size
        self.max_retries = max_retries
        self.retry_base_delay_s = retry_base_delay_s
        self.content_key = content_key
        self._lc: AstraDBVectorStore | None = None
        self._lc_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AstraStore(name={self.name!r}, dim={self.dim}, endpoint={self.settings.endpoint!r})"

    # -- plumbing ----------------------------------------------------------------------------------

    def _retry(self, what: str, fn: Callable[[], _T]) -> _T:
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                attempt += 1
                if not is_transient(exc) or attempt > self.max_retries:
                    raise
                delay = self.retry_base_delay_s * 2 ** (attempt - 1) * (0.5 + random.random())
                logger.warning("%s on %s failed (%s); retry %d in %.2fs", what, self.name, exc, attempt, delay)
                time.sleep(delay)

    def _map(self, fn: Callable[[Any], _T], items: Iterable[Any]) -> list[_T]:
        items = list(items)
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def _document(self, doc_id: str, vector: np.ndarray, metadata: dict[str, MetadataValue]) -> dict[str, Any]:
        from astrapy.data_types import DataAPIVector

        content = metadata.get(self.content_key)
        return {
            "_id": doc_id,
            CONTENT_FIELD: content if isinstance(content, str) else doc_id,
            "metadata": metadata,
            "$vector": DataAPIVector(vector.tolist()),
        }

    def langchain_vectorstore(self, embeddings: Embeddings | None = None) -> AstraDBVectorStore:
        """A native LangChain ``AstraDBVectorStore`` on this collection (settings read from the collection).

        With no ``embeddings`` it can search by vector only (text methods raise a clear error).
        """
        from langchain_astradb import AstraDBVectorStore
        from langchain_astradb.utils.astradb import HybridSearchMode

        s = self.settings
        return AstraDBVectorStore(
            collection_name=self.name,
            embedding=embeddings or self.embeddings or _VectorsOnly(self.dim),
            token=s.token,
            api_endpoint=s.endpoint,
            environment=s.environment,
            namespace=s.keyspace,
            autodetect_collection=True,
            content_field=CONTENT_FIELD,
            hybrid_search=HybridSearchMode.OFF,
            ext_callers=[("skyscout", None)],
        )

    def _langchain(self) -> AstraDBVectorStore:
        with self._lc_lock:
            if self._lc is None:
                self._lc = self._retry("open", self.langchain_vectorstore)
            return self._lc

    # -- writes ------------------------------------------------------------------------------------

    def _insert_chunk(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert one chunk; returns the documents whose id already existed (to be replaced)."""
        from astrapy.exceptions import CollectionInsertManyException

        pending = docs
        existing: list[dict[str, Any]] = []
        attempt = 0
        while pending:
            try:
                self._coll.insert_many(pending, ordered=False, chunk_size=len(pending), concurrency=1)
                return existing
            except CollectionInsertManyException as exc:
                already, retry, fatal = classify_insert_failures(pending, exc)
                if fatal:
                    raise StoreError(f"insertMany into {self.name!r} failed: {fatal[0]}") from exc
                existing.extend(already)
                pending = [d for d in pending if d["_id"] in retry]
                if not pending:
                    break
                attempt += 1
                if attempt > self.max_retries:
                    raise StoreError(f"insertMany into {self.name!r} kept failing after {attempt} tries") from exc
            except Exception as exc:
                attempt += 1
                if not is_transient(exc) or attempt > self.max_retries:
                    raise
                logger.warning("insertMany on %s failed (%s); retry %d", self.name, exc, attempt)
            time.sleep(self.retry_base_delay_s * 2 ** (attempt - 1) * (0.5 + random.random()))
        return existing

    def _replace(self, doc: dict[str, Any]) -> None:
        self._retry("replace", lambda: self._coll.replace_one({"_id": doc["_id"]}, doc, upsert=True))

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]) -> int:
        ids, v, metas = prepare_batch(ids, vectors, metadata, self.dim)
        if not ids:
            return 0
        docs = [self._document(i, v[n], metas[n]) for n, i in enumerate(ids)]
        existing = [d for chunk in self._map(self._insert_chunk, chunked(docs, self.chunk_size)) for d in chunk]
        if existing:
            logger.info("%s: replacing %d existing documents", self.name, len(existing))
            self._map(self._replace, existing)
        return len(ids)

    def delete(self, ids: Sequence[str]) -> int:
        def delete_chunk(chunk: Sequence[str]) -> int:
            flt = {"_id": {"$in": list(chunk)}}
            return int(self._retry("delete", lambda: self._coll.delete_many(flt)).deleted_count)

        return sum(self._map(delete_chunk, chunked(list(dict.fromkeys(ids)), MAX_IN_VALUES)))

    # -- reads -------------------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int = 10, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        q = as_query_vector(vector, self.dim)
        if k <= 0:
            return []
        if k > MAX_SEARCH_K:
            raise ValueError(f"k={k}: Astra DB returns at most {MAX_SEARCH_K} results per vector search")
        flt = to_astra_filter(filter, prefix="") or None
        found = self._retry(
            "search",
            lambda: self._langchain().similarity_search_with_score_id_by_vector(embedding=q.tolist(), k=k, filter=flt),
        )
        return [Hit(id=doc_id, score=2.0 * float(sim) - 1.0, metadata=dict(doc.metadata)) for doc, sim, doc_id in found]

    def get(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        def get_chunk(chunk: Sequence[str]) -> list[dict[str, Any]]:
            projection = {"_id": True, "metadata": True, "$vector": True}
            return self._retry(
                "get", lambda: list(self._coll.find({"_id": {"$in": list(chunk)}}, projection=projection))
            )

        out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
        for docs in self._map(get_chunk, chunked(list(dict.fromkeys(ids)), MAX_IN_VALUES)):
            for doc in docs:
                vec = np.asarray(list(doc.get("$vector") or []), dtype=np.float32)
                out[str(doc["_id"])] = (vec, dict(doc.get("metadata") or {}))
        return out

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        from astrapy.exceptions import TooManyDocumentsToCountException

        flt = to_astra_filter(filter)
        try:
            return int(self._retry("count", lambda: self._coll.count_documents(flt, upper_bound=MAX_SERVER_COUNT)))
        except TooManyDocumentsToCountException:
            logger.info("%s: more than %d matches, counting by paging ids", self.name, MAX_SERVER_COUNT)
            return sum(1 for _ in self._iter_ids(flt))

    def _iter_ids(self, flt: dict[str, Any]) -> Iterable[str]:
        cursor = self._coll.find(flt, projection={"_id": True})
        return (str(doc["_id"]) for doc in cursor)

    def ids(self) -> set[str]:
        return self._retry("ids", lambda: set(self._iter_ids({})))


class AstraIndexes:
    """The indexes (vector collections) of one Astra DB keyspace: open/create, list, drop.

    ``store_options`` go to :class:`AstraStore` (``embeddings``, ``concurrency``, ``chunk_size``,
    ``max_retries``, ``retry_base_delay_s``, ``content_key``). Astra DB caps the number of collections
    per database (a few tens at most): drop index versions that are no longer aliased.
    """

    kind = "astra"

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | None = None,
        keyspace: str | None = None,
        *,
        environment: str | None = None,
        request_timeout_ms: int = 30_000,
        **store_options: Any,
    ) -> None:
        from astrapy import DataAPIClient
        from astrapy.api_options import APIOptions, SerdesOptions, TimeoutOptions

        self.settings = AstraSettings.resolve(endpoint, token, keyspace, environment)
        options = APIOptions(
            callers=[("skyscout", None)],
            serdes_options=SerdesOptions(custom_datatypes_in_reading=False),
            timeout_options=TimeoutOptions(request_timeout_ms=request_timeout_ms),
        )
        client = DataAPIClient(environment=self.settings.environment, api_options=options)
        self._db: Database = client.get_database(
            self.settings.endpoint, token=self.settings.token, keyspace=self.settings.keyspace
        )
        self._store_options = store_options

    def __repr__(self) -> str:
        s = self.settings
        return f"AstraIndexes(endpoint={s.endpoint!r}, keyspace={s.keyspace!r}, environment={s.environment!r})"

    def _descriptors(self) -> dict[str, Any]:
        return {d.name: d for d in self._db.list_collections()}

    def exists(self, name: str) -> bool:
        return name in self._db.list_collection_names()

    def open(self, name: str, dim: int, *, create: bool = True) -> AstraStore:
        validate_index_name(name)
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        descriptor = self._descriptors().get(name)
        where = f"keyspace {self.settings.keyspace!r} at {self.settings.endpoint}"
        if descriptor is not None:
            vector = descriptor.definition.vector
            if vector is None or vector.dimension is None:
                raise StoreError(f"collection {name!r} in {where} is not a vector collection")
            if vector.dimension != dim:
                raise DimensionMismatchError(
                    f"collection {name!r} in {where} holds {vector.dimension}-d vectors, not {dim}-d: "
                    "use one index per model version (index_name_for_model)"
                )
            if vector.metric not in (None, "dot_product", "cosine"):
                raise DimensionMismatchError(
                    f"collection {name!r} in {where} uses the {vector.metric} metric; "
                    "SkyScout needs dot_product (or cosine)"
                )
            collection = self._db.get_collection(name)
        elif not create:
            raise IndexNotFoundError(f"no collection {name!r} in {where}; existing: {sorted(self._descriptors())}")
        else:
            definition = {
                "vector": {"dimension": dim, "metric": "dot_product"},
                "indexing": {"allow": ["metadata"]},
                "lexical": {"enabled": False},
                "rerank": {"enabled": False},
            }
            collection = self._db.create_collection(name, definition=definition)
        return AstraStore(collection, settings=self.settings, dim=dim, **self._store_options)

    def list(self) -> list[IndexInfo]:
        out = []
        for name, d in sorted(self._descriptors().items()):
            vector = d.definition.vector
            if vector is not None and vector.dimension:
                out.append(IndexInfo(name=name, dim=vector.dimension, kind=self.kind, metric=vector.metric or ""))
        return out

    def drop(self, name: str) -> bool:
        validate_index_name(name)
        if not self.exists(name):
            return False
        self._db.drop_collection(name)
        return True

"""LangChain glue: a text ``Embeddings`` over any CLIP text encoder, and a ``VectorStore`` over any store.

:class:`TextEncoderEmbeddings` wraps a callable ``texts -> (n, dim) array`` (the CLIP text tower, or a
deterministic function in tests) and L2-normalises its output, so text queries land in the image
embedding space. :class:`SkyScoutVectorStore` presents a :class:`~tools.stores.base.VectorStore`
(LanceDB or Astra DB) as a LangChain vector store, so ``as_retriever()`` and the rest of LangChain work
on the image index. Found documents carry the image id as ``Document.id``, the metadata (plus ``score``,
the cosine similarity), and as ``page_content`` the metadata value under ``content_key`` (the tile's
``uri`` by default) or else the id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore as LangChainVectorStore

from tools.stores.base import Hit, VectorStore

TextEncoder = Callable[[list[str]], np.ndarray]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero) as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


class TextEncoderEmbeddings(Embeddings):
    """LangChain embeddings from a text encoder callable (``list[str] -> (n, dim)`` array), normalised.

    ``batch_size`` bounds how many texts go to the encoder at once.
    """

    def __init__(self, encode: TextEncoder, *, batch_size: int = 64, normalise: bool = True) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.encode = encode
        self.batch_size = batch_size
        self.normalise = normalise

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """The embeddings as one (n, dim) float32 array."""
        texts = list(texts)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            out = np.asarray(self.encode(batch), dtype=np.float32)
            if out.ndim != 2 or out.shape[0] != len(batch):
                raise ValueError(f"text encoder returned shape {out.shape} for {len(batch)} texts; want (n, dim)")
            parts.append(out)
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        arr = np.concatenate(parts)
        return l2_normalise(arr) if self.normalise else arr

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [row.tolist() for row in self.embed_array(texts)]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()


def text_id(text: str) -> str:
    """The id :meth:`SkyScoutVectorStore.add_texts` gives a text without one: its sha256 hex digest."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SkyScoutVectorStore(LangChainVectorStore):
    """A LangChain vector store over a SkyScout store; filters use the shared filter language."""

    def __init__(self, store: VectorStore, embedding: Embeddings | None = None, *, content_key: str = "uri") -> None:
        self.store = store
        self.embedding = embedding
        self.content_key = content_key

    def __repr__(self) -> str:
        return f"SkyScoutVectorStore(store={self.store!r})"

    @property
    def embeddings(self) -> Embeddings | None:
        return self.embedding

    def _require_embedding(self) -> Embeddings:
        if self.embedding is None:
            raise ValueError(
                "this vector store has no embeddings: pass embedding=TextEncoderEmbeddings(encoder) to "
                "search or add by text, or use the *_by_vector methods"
            )
        return self.embedding

    def _document(self, hit_id: str, metadata: Mapping[str, Any], score: float | None = None) -> Document:
        content = metadata.get(self.content_key)
        meta = dict(metadata)
        if score is not None:
            meta["score"] = score
        return Document(id=hit_id, page_content=content if isinstance(content, str) else hit_id, metadata=meta)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # cosine similarity in [-1, 1] -> relevance in [0, 1] (clipped: float error can reach 1 + 1e-7)
        return lambda score: min(1.0, max(0.0, (1.0 + score) / 2.0))

    # -- writes ------------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed ``texts`` and upsert them; each text is kept under ``content_key`` in its metadata."""
        texts = list(texts)
        if not texts:
            return []
        vectors = np.asarray(self._require_embedding().embed_documents(texts), dtype=np.float32)
        ids = list(ids) if ids is not None else [text_id(t) for t in texts]
        metas = [dict(m) for m in metadatas] if metadatas is not None else [{} for _ in texts]
        for text, meta in zip(texts, metas, strict=True):
            meta.setdefault(self.content_key, text)
        self.store.upsert(ids, l2_normalise(vectors), metas)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if ids is None:
            raise ValueError("delete needs ids (deleting a whole index is drop_index)")
        self.store.delete(ids)
        return True

    # -- reads -------------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        found = self.store.get(ids)
        return [self._document(i, found[i][1]) for i in ids if i in found]

    def _hits(self, embedding: Sequence[float], k: int, filter: Mapping[str, Any] | None) -> list[Hit]:
        return self.store.search(np.asarray(embedding, dtype=np.float32), k=k, filter=filter)

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return [(self._document(h.id, h.metadata, h.score), h.score) for h in self._hits(embedding, k, filter)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, filter)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        vector = self._require_embedding().embed_query(query)
        return self.similarity_search_with_score_by_vector(vector, k, filter)

    def similarity_search(
        self, query: str, k: int = 4, filter: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter)]

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        store: VectorStore | None = None,
        **kwargs: Any,
    ) -> SkyScoutVectorStore:
        """Add ``texts`` to ``store`` (required: open one with ``index_registry(...).open``) and wrap it."""
        if store is None:
            raise ValueError("SkyScoutVectorStore.from_texts needs store=index_registry(...).open(...)")
        vs = cls(store, embedding, **kwargs)
        vs.add_texts(texts, metadatas, ids=ids)
        return vs


def as_langchain(
    store: VectorStore, embeddings: Embeddings | TextEncoder | None = None, *, content_key: str = "uri"
) -> SkyScoutVectorStore:
    """``store`` as a LangChain vector store; ``embeddings`` may also be a bare text encoder callable."""
    if embeddings is not None and not isinstance(embeddings, Embeddings):
        embeddings = TextEncoderEmbeddings(embeddings)
    return SkyScoutVectorStore(store, embeddings, content_key=content_key)

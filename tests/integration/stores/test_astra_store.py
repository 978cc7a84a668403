"""Astra DB specifics via the Data API stand-in: chunked bulk writes, retries, limits, native LangChain."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from tests.integration.stores.conftest import (
    DIM,
    STANDIN_TOKEN,
    deterministic_text_encoder,
    image_id,
    unit_vectors,
)
from tests.support.astra_standin import DataAPIStandIn
from tools.stores import StoreError
from tools.stores.astra import AstraIndexes, AstraStore
from tools.stores.langchain_adapter import TextEncoderEmbeddings


@pytest.fixture
def indexes(standin: DataAPIStandIn) -> AstraIndexes:
    return AstraIndexes(standin.endpoint, STANDIN_TOKEN, retry_base_delay_s=0.01, concurrency=4)


@pytest.fixture
def astra(indexes: AstraIndexes) -> Iterator[AstraStore]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield indexes.open(name, DIM)
    indexes.drop(name)


def n_docs(server: DataAPIStandIn, command: str, collection: str) -> list[int]:
    return [n for path, cmd, n in server.commands(command) if path.endswith("/" + collection)]


def test_bulk_upsert_is_chunked_and_idempotent(astra: AstraStore, standin: DataAPIStandIn) -> None:
    ids = [image_id(i) for i in range(250)]
    vecs = unit_vectors(250)
    assert astra.upsert(ids, vecs, [{"n": i} for i in range(250)]) == 250
    sizes = n_docs(standin, "insertMany", astra.name)
    assert sorted(sizes) == [50, 100, 100]
    assert all(n <= 100 for n in sizes)
    # re-running the same job: every document already exists and is replaced, none duplicated
    assert astra.upsert(ids[:120], vecs[:120], [{"n": -i} for i in range(120)]) == 120
    assert astra.count() == 250
    assert len(n_docs(standin, "findOneAndReplace", astra.name)) == 120
    assert astra.get([ids[7]])[ids[7]][1] == {"n": -7}
    # a mixed batch: only the existing ids take the replace path
    before = len(n_docs(standin, "findOneAndReplace", astra.name))
    more = [image_id(i) for i in range(240, 260)]
    astra.upsert(more, unit_vectors(20, seed=5), [{} for _ in more])
    assert len(n_docs(standin, "findOneAndReplace", astra.name)) - before == 10
    assert astra.count() == 260


def test_transient_failures_are_retried(astra: AstraStore, standin: DataAPIStandIn) -> None:
    standin.fail_next(2, status=503, commands=("insertMany",))
    standin.fail_next(1, status=429, commands=("find",))
    ids = [image_id(i) for i in range(30)]
    assert astra.upsert(ids, unit_vectors(30), [{} for _ in ids]) == 30
    assert n_docs(standin, "insertMany", astra.name) == [30, 30, 30]  # two 503s, then success
    assert astra.count() == 30
    assert len(astra.search(unit_vectors(1)[0], k=5)) == 5
    # a server-side failure reported in an HTTP 200 answer is retried too
    standin.fail_next(1, status=200, commands=("insertMany",))
    standin.fail_next(1, status=200, commands=("find",))
    more = [image_id(i) for i in range(30, 40)]
    assert astra.upsert(more, unit_vectors(10, seed=2), [{} for _ in more]) == 10
    assert len(astra.search(unit_vectors(1)[0], k=5)) == 5
    assert astra.count() == 40


def test_permanent_failures_are_raised(astra: AstraStore, standin: DataAPIStandIn) -> None:
    from astrapy.exceptions import DataAPIHttpException

    standin.fail_next(1, status=400, commands=("insertMany",))
    with pytest.raises(DataAPIHttpException):
        astra.upsert(["a"], unit_vectors(1), [{}])
    standin.fail_next(10, status=503, commands=("countDocuments",))
    with pytest.raises(DataAPIHttpException):
        astra.count()
    standin._failures.clear()


def test_server_side_document_errors_are_reported(astra: AstraStore) -> None:
    # a vector of the wrong size slips past the client only if someone bypasses prepare_batch
    doc = astra._document("bad", unit_vectors(1, dim=DIM + 1)[0], {})
    with pytest.raises(StoreError, match="VECTOR_SIZE_MISMATCH"):
        astra._insert_chunk([doc])


def test_count_beyond_the_server_limit(indexes: AstraIndexes) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    store = indexes.open(name, 4)
    x = np.random.default_rng(1).standard_normal((1100, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    store.upsert([f"i{n}" for n in range(1100)], x, [{"even": n % 2 == 0} for n in range(1100)])
    assert store.count() == 1100  # countDocuments stops at 1000; the store pages the ids instead
    assert store.count({"even": True}) == 550
    assert len(store.ids()) == 1100
    indexes.drop(name)


def test_search_limit(astra: AstraStore) -> None:
    with pytest.raises(ValueError, match="at most 1000"):
        astra.search(unit_vectors(1)[0], k=1001)


def test_native_langchain_vectorstore_reads_the_same_collection(astra: AstraStore) -> None:
    embeddings = TextEncoderEmbeddings(deterministic_text_encoder(DIM))
    texts = ["sandy beach", "pine forest", "fishing harbor"]
    vectors = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
    astra.upsert(["b", "f", "h"], vectors, [{"uri": t, "label": t.split()[-1]} for t in texts])

    native = astra.langchain_vectorstore(embeddings)
    docs = native.similarity_search("pine forest", k=1)
    assert docs[0].page_content == "pine forest" and docs[0].metadata["label"] == "forest"
    retriever = native.as_retriever(search_kwargs={"k": 2, "filter": {"label": {"$ne": "forest"}}})
    assert {d.id for d in retriever.invoke("pine forest")} == {"b", "h"}
    # documents written by LangChain are visible to the store
    native.add_texts(["vineyard rows"], metadatas=[{"label": "rows"}], ids=["v"])
    assert astra.count() == 4 and astra.get(["v"])["v"][1] == {"label": "rows"}

    vectors_only = astra.langchain_vectorstore()
    assert vectors_only.similarity_search_by_vector(vectors[2].tolist(), k=1)[0].id == "h"
    with pytest.raises(StoreError, match="without a text encoder"):
        vectors_only.similarity_search("text")


def test_astra_environment_paths(standin: DataAPIStandIn) -> None:
    # "prod" talks to /api/json/v1/... (astrapy accepts a non-Astra endpoint with only a log line)
    prod = AstraIndexes(standin.endpoint, STANDIN_TOKEN, environment="prod")
    name = f"t_{uuid.uuid4().hex[:12]}"
    store = prod.open(name, DIM)
    store.upsert(["a"], unit_vectors(1), [{}])
    assert store.search(unit_vectors(1)[0], k=1)[0].id == "a"
    assert any(path == f"/api/json/v1/default_keyspace/{name}" for path, _, _ in standin.log)
    prod.drop(name)


def test_wrong_token_and_unknown_keyspace_fail_clearly(standin: DataAPIStandIn) -> None:
    from astrapy.exceptions import DataAPIHttpException, DataAPIResponseException

    with pytest.raises(DataAPIHttpException, match="401"):
        AstraIndexes(standin.endpoint, "wrong-token").list()
    with pytest.raises(DataAPIResponseException, match="KEYSPACE_DOES_NOT_EXIST"):
        AstraIndexes(standin.endpoint, STANDIN_TOKEN, "no_such_keyspace").list()

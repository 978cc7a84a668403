"""The contract every vector store keeps, run against each backend (LanceDB, Astra via the stand-in, ...).

Results are checked against naive references: numpy brute force for search, the Python evaluator
``tools.stores.filters.matches`` for filters.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.integration.stores.conftest import DIM, deterministic_text_encoder, image_id, unit_vectors
from tools.stores import DimensionMismatchError, IndexNotFoundError, bbox_filter, matches
from tools.stores.base import IndexRegistry, VectorStore
from tools.stores.langchain_adapter import SkyScoutVectorStore, TextEncoderEmbeddings, as_langchain

LABELS = ["beach", "forest", "harbor", 'it\'s a "quote"', "vineyard"]


def tile_metadata(n: int, rng: random.Random) -> dict[str, Any]:
    minx, miny = rng.uniform(-10, 10), rng.uniform(40, 50)
    meta: dict[str, Any] = {
        "label": LABELS[n % len(LABELS)],
        "source": rng.choice(["ucm", "eurosat"]),
        "year": rng.choice([2019, 2020, 2021]),
        "cloud": round(rng.random(), 3),
        "minx": minx,
        "miny": miny,
        "maxx": minx + 0.5,
        "maxy": miny + 0.5,
        "uri": f"/data/tiles/{n}.png",
    }
    if n % 3:
        meta["tags"] = rng.sample(["sand", "sea", "trees", "boats", "rows"], k=rng.randint(0, 3))
    if n % 4 == 0:
        meta["verified"] = n % 8 == 0
    return meta


@pytest.fixture
def filled(store: Any) -> tuple[Any, list[str], np.ndarray, list[dict[str, Any]]]:
    rng = random.Random(7)
    n = 120
    ids = [image_id(i) for i in range(n)]
    vectors = unit_vectors(n)
    metas = [tile_metadata(i, rng) for i in range(n)]
    assert store.upsert(ids, vectors, metas) == n
    return store, ids, vectors, metas


def test_upsert_count_and_idempotence(filled: Any) -> None:
    store, ids, vectors, metas = filled
    assert isinstance(store, VectorStore)
    assert store.count() == len(ids)
    assert store.ids() == set(ids)
    # the same ids again (a re-run of the indexing job): replaced, never duplicated
    changed = [{**m, "label": "changed"} for m in metas[:30]]
    assert store.upsert(ids[:30], vectors[:30], changed) == 30
    assert store.upsert(ids, vectors, metas[:30] + metas[30:]) == len(ids)
    assert store.upsert(ids[:30], vectors[:30], changed) == 30
    assert store.count() == len(ids)
    assert store.count({"label": "changed"}) == 30
    got = store.get([ids[0]])
    assert got[ids[0]][1] == changed[0]


def test_upsert_replaces_metadata_keys_and_vector(filled: Any) -> None:
    store, ids, vectors, _ = filled
    new_vec = unit_vectors(1, seed=99)
    store.upsert([ids[5]], new_vec, [{"label": "solo"}])
    vec, meta = store.get([ids[5]])[ids[5]]
    assert meta == {"label": "solo"}  # keys not given again are gone: a replace, not a merge
    np.testing.assert_allclose(vec, new_vec[0], rtol=0, atol=1e-7)


def test_duplicate_ids_in_one_call_keep_the_last(store: Any) -> None:
    vecs = unit_vectors(3)
    assert store.upsert(["a", "b", "a"], vecs, [{"label": "first"}, {"label": "b"}, {"label": "last"}]) == 2
    assert store.count() == 2
    vec, meta = store.get(["a"])["a"]
    assert meta == {"label": "last"}
    np.testing.assert_allclose(vec, vecs[2], atol=1e-7)


def test_search_matches_numpy_exact(filled: Any) -> None:
    store, ids, vectors, _ = filled
    queries = unit_vectors(5, seed=3)
    for q in queries:
        scores = vectors @ q
        order = np.argsort(-scores)[:10]
        hits = store.search(q, k=10)
        assert [h.id for h in hits] == [ids[i] for i in order]
        np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-5)
        assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_search_returns_metadata_and_handles_k(filled: Any) -> None:
    store, ids, vectors, metas = filled
    hits = store.search(vectors[17], k=1)
    assert hits[0].id == ids[17]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].metadata == metas[17]
    assert len(store.search(vectors[0], k=500)) == len(ids)
    assert store.search(vectors[0], k=0) == []
    with pytest.raises(ValueError, match="shape"):
        store.search(np.ones(DIM + 1, dtype=np.float32), k=3)


FILTERS: list[dict[str, Any]] = [
    {"label": "beach"},
    {"label": 'it\'s a "quote"'},
    {"label": {"$in": ["beach", "harbor"]}},
    {"label": {"$nin": ["beach", "harbor"]}},
    {"label": {"$ne": "forest"}},
    {"label": "beach", "source": "ucm"},
    {"$or": [{"label": "beach"}, {"tags": "boats"}]},
    {"tags": "sea"},
    {"tags": {"$in": ["rows", "boats"]}},
    {"tags": {"$ne": "sea"}},
    {"year": {"$gte": 2020}},
    {"year": 2020},
    {"year": 2020.0},
    {"year": "2020"},
    {"cloud": {"$lt": 0.25}},
    {"cloud": {"$gt": 0.25, "$lte": 0.75}},
    {"verified": True},
    {"verified": {"$ne": True}},
    {"never_written": "x"},
    {"never_written": {"$ne": "x"}},
    {"$and": [{"year": {"$in": [2019, 2021]}}, {"$or": [{"source": "eurosat"}, {"cloud": {"$gte": 0.9}}]}]},
    bbox_filter(-2.0, 44.0, 3.0, 47.0),
    {"label": {"$in": ["forest"]}, **bbox_filter(0.0, 40.0, 10.0, 45.0)},
]


@pytest.mark.parametrize("flt", FILTERS, ids=[str(f)[:60] for f in FILTERS])
def test_filters_agree_with_reference(filled: Any, flt: dict[str, Any]) -> None:
    store, ids, vectors, metas = filled
    expected = {i for i, m in zip(ids, metas, strict=True) if matches(flt, m)}
    assert store.count(flt) == len(expected)
    q = vectors[0]
    hits = store.search(q, k=len(ids), filter=flt)
    assert {h.id for h in hits} == expected
    # filtered top-k = exact top-k among the matching rows
    allowed = np.array([i in expected for i in ids])
    scores = np.where(allowed, vectors @ q, -np.inf)
    top = [ids[i] for i in np.argsort(-scores)[: min(5, len(expected))]]
    assert [h.id for h in store.search(q, k=5, filter=flt)] == top


def test_random_filters_agree_with_reference(filled: Any) -> None:
    store, ids, _, metas = filled
    rng = random.Random(11)

    def leaf() -> dict[str, Any]:
        field = rng.choice(["label", "source", "year", "cloud", "tags", "verified"])
        values: dict[str, list[Any]] = {
            "label": LABELS,
            "source": ["ucm", "eurosat", "other"],
            "year": [2019, 2020, 2021, 2022],
            "cloud": [0.1, 0.5, 0.9],
            "tags": ["sand", "sea", "trees", "boats", "rows"],
            "verified": [True, False],
        }
        vals = values[field]
        if field in ("year", "cloud") and rng.random() < 0.6:
            return {field: {rng.choice(["$gt", "$gte", "$lt", "$lte"]): rng.choice(vals)}}
        op = rng.choice(["eq", "$ne", "$in", "$nin"])
        if op == "eq":
            return {field: rng.choice(vals)}
        if op == "$ne":
            return {field: {"$ne": rng.choice(vals)}}
        return {field: {op: rng.sample(vals, k=rng.randint(1, 2))}}

    for _ in range(15):
        flt = {rng.choice(["$and", "$or"]): [leaf() for _ in range(rng.randint(1, 3))]}
        expected = sum(matches(flt, m) for m in metas)
        assert store.count(flt) == expected, flt


def test_get(filled: Any) -> None:
    store, ids, vectors, metas = filled
    got = store.get([ids[3], "missing", ids[8]])
    assert set(got) == {ids[3], ids[8]}
    vec, meta = got[ids[3]]
    assert vec.dtype == np.float32 and vec.shape == (DIM,)
    np.testing.assert_array_equal(vec, vectors[3])
    assert meta == metas[3]
    assert store.get([]) == {}


def test_delete(filled: Any) -> None:
    store, ids, _, _ = filled
    assert store.delete([ids[0], ids[1], "missing"]) == 2
    assert store.count() == len(ids) - 2
    assert store.get([ids[0]]) == {}
    assert store.delete([ids[0]]) == 0
    assert ids[0] not in store.ids()
    many = ids[2:]
    assert store.delete(many) == len(many)
    assert store.count() == 0


def test_rejects_invalid_input(store: Any) -> None:
    vec = unit_vectors(1)
    with pytest.raises(ValueError, match="normalised"):
        store.upsert(["x"], vec * 2, [{}])
    with pytest.raises(ValueError, match="shape"):
        store.upsert(["x"], unit_vectors(1, dim=DIM + 1), [{}])
    with pytest.raises(ValueError, match="metadata"):
        store.upsert(["x"], vec, [{"label": None}])
    with pytest.raises(ValueError, match="reserved"):
        store.upsert(["x"], vec, [{"vector": "no"}])
    with pytest.raises(ValueError, match="invalid metadata key"):
        store.upsert(["x"], vec, [{"bounds.minx": 1.0}])
    assert store.count() == 0


def test_registry_open_list_drop(registry: IndexRegistry, new_name: Callable[[], str]) -> None:
    assert isinstance(registry, IndexRegistry)
    name = new_name()
    with pytest.raises(IndexNotFoundError):
        registry.open(name, DIM, create=False)
    s = registry.open(name, DIM)
    s.upsert(["a"], unit_vectors(1), [{"label": "x"}])
    again = registry.open(name, DIM, create=False)
    assert again.count() == 1
    assert registry.exists(name)
    info = {i.name: i for i in registry.list()}[name]
    assert info.dim == DIM
    with pytest.raises(DimensionMismatchError):
        registry.open(name, DIM * 2)
    assert registry.drop(name) is True
    assert registry.drop(name) is False
    assert not registry.exists(name)


def test_langchain_adapter_and_retriever(store: Any) -> None:
    embeddings = TextEncoderEmbeddings(deterministic_text_encoder(DIM))
    vs = SkyScoutVectorStore(store, embeddings)
    texts = ["sandy beach with umbrellas", "dense pine forest", "harbor with fishing boats", "vineyard rows"]
    metas = [{"label": t.split()[-1], "source": "captions"} for t in texts]
    ids = vs.add_texts(texts, metas)
    assert len(set(ids)) == 4 and store.count() == 4

    docs = vs.similarity_search("beach umbrellas", k=2)
    assert docs[0].page_content == "sandy beach with umbrellas"
    assert docs[0].id == ids[0]
    assert docs[0].metadata["label"] == "umbrellas"
    assert -1.0 <= docs[0].metadata["score"] <= 1.0

    scored = vs.similarity_search_with_score("fishing boats", k=4, filter={"label": {"$ne": "boats"}})
    assert len(scored) == 3 and all(d.metadata["label"] != "boats" for d, _ in scored)
    assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)

    retriever = vs.as_retriever(search_kwargs={"k": 1})
    found = retriever.invoke("pine forest")
    assert [d.page_content for d in found] == ["dense pine forest"]
    filtered = vs.as_retriever(search_kwargs={"k": 4, "filter": {"label": {"$in": ["rows", "forest"]}}})
    assert {d.page_content for d in filtered.invoke("anything")} == {"vineyard rows", "dense pine forest"}
    threshold = vs.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99})
    assert [d.page_content for d in threshold.invoke("vineyard rows")] == ["vineyard rows"]

    assert [d.page_content for d in vs.get_by_ids([ids[2], "nope"])] == ["harbor with fishing boats"]
    vs.delete([ids[2]])
    assert store.count() == 3

    # a bare callable is wrapped; vectors from image embeddings search the same way
    vs2 = as_langchain(store, deterministic_text_encoder(DIM))
    assert vs2.similarity_search_by_vector(embeddings.embed_query("vineyard rows"), k=1)[0].id == ids[3]


def test_langchain_adapter_without_embeddings(filled: Any) -> None:
    store, ids, vectors, metas = filled
    vs = as_langchain(store)
    doc = vs.similarity_search_by_vector(vectors[4].tolist(), k=1)[0]
    assert doc.id == ids[4] and doc.page_content == metas[4]["uri"]
    with pytest.raises(ValueError, match="no embeddings"):
        vs.similarity_search("text", k=1)

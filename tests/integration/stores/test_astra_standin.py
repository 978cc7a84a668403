"""The Data API stand-in behaves as documented for what astrapy sends (limits, shapes, similarity)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from astrapy import DataAPIClient
from astrapy.exceptions import (
    CollectionInsertManyException,
    DataAPIResponseException,
    TooManyDocumentsToCountException,
)

from tests.integration.stores.conftest import STANDIN_TOKEN
from tests.support.astra_standin import DataAPIStandIn


@pytest.fixture
def coll(standin: DataAPIStandIn) -> Iterator[Any]:
    db = DataAPIClient(environment="other").get_database(
        standin.endpoint, token=STANDIN_TOKEN, keyspace="default_keyspace"
    )
    name = f"s_{uuid.uuid4().hex[:12]}"
    collection = db.create_collection(
        name,
        definition={"vector": {"dimension": 3, "metric": "dot_product"}, "indexing": {"allow": ["metadata"]}},
    )
    yield collection
    db.drop_collection(name)


def unit(v: list[float]) -> list[float]:
    a = np.asarray(v, dtype=np.float64)
    return (a / np.linalg.norm(a)).tolist()


def test_insert_many_limit_and_duplicates(coll: Any) -> None:
    with pytest.raises(CollectionInsertManyException) as err:
        coll.insert_many([{"_id": str(i)} for i in range(101)], chunk_size=101)
    assert "over the max limit (101 vs 100)" in str(err.value.exceptions[0])
    assert coll.count_documents({}, upper_bound=10) == 0
    coll.insert_many([{"_id": "a"}, {"_id": "b"}])
    with pytest.raises(CollectionInsertManyException) as err:
        coll.insert_many([{"_id": "a"}, {"_id": "c"}], ordered=False)
    assert err.value.inserted_ids == ["c"]
    cause = err.value.exceptions[0]
    assert isinstance(cause, DataAPIResponseException)
    assert cause.error_descriptors[0].error_code == "DOCUMENT_ALREADY_EXISTS"
    with pytest.raises(CollectionInsertManyException) as err:
        coll.insert_many([{"_id": "b"}, {"_id": "d"}], ordered=True)
    assert err.value.inserted_ids == []  # ordered: stops at the first failure
    assert coll.count_documents({}, upper_bound=10) == 3


def test_vector_search_similarity_and_limits(coll: Any) -> None:
    vecs = {"x": unit([1, 0, 0]), "xy": unit([1, 1, 0]), "y": unit([0, 1, 0]), "neg": unit([-1, 0, 0])}
    coll.insert_many([{"_id": k, "$vector": v, "metadata": {"k": k}} for k, v in vecs.items()])
    q = unit([1, 0.2, 0])
    found = coll.find({}, sort={"$vector": q}, limit=10, include_similarity=True).to_list()
    dots = {k: float(np.dot(v, q)) for k, v in vecs.items()}
    assert [d["_id"] for d in found] == sorted(dots, key=lambda k: -dots[k])
    for d in found:
        assert d["$similarity"] == pytest.approx((1 + dots[d["_id"]]) / 2, abs=1e-6)
        assert "$vector" not in d  # not returned unless projected
    with pytest.raises(DataAPIResponseException, match="should not be greater than 1000"):
        coll.find({}, sort={"$vector": q}, limit=1001).to_list()
    one = coll.find_one({}, sort={"$vector": q}, projection={"$vector": True}, include_similarity=True)
    assert one["_id"] == "x" and one["$vector"] == pytest.approx(vecs["x"], abs=1e-6)
    with pytest.raises(DataAPIResponseException, match="VECTOR_SIZE_MISMATCH"):
        coll.find({}, sort={"$vector": [1.0, 0.0]}).to_list()


def test_pages_counts_and_deletes(coll: Any) -> None:
    coll.insert_many([{"_id": f"d{i:03d}", "metadata": {"n": i}} for i in range(45)])
    assert len(coll.find({}, projection={"_id": True}).to_list()) == 45  # 3 pages of 20
    assert coll.count_documents({"metadata.n": {"$lt": 10}}, upper_bound=100) == 10
    with pytest.raises(TooManyDocumentsToCountException):
        coll.count_documents({}, upper_bound=5)
    # deleteMany removes at most 20 per call; astrapy follows moreData
    assert coll.delete_many({"metadata.n": {"$gte": 0}}).deleted_count == 45
    assert coll.count_documents({}, upper_bound=10) == 0


def test_filter_operators(coll: Any) -> None:
    docs = [
        {"_id": "1", "metadata": {"label": "beach", "tags": ["sand", "sea"], "y": 2020}},
        {"_id": "2", "metadata": {"label": "forest", "tags": ["trees"], "y": 2021}},
        {"_id": "3", "metadata": {"label": "harbor", "y": 2022.5}},
    ]
    coll.insert_many(docs)

    def ids(flt: dict[str, Any]) -> list[str]:
        return sorted(d["_id"] for d in coll.find(flt, projection={"_id": True}))

    assert ids({"metadata.tags": "sea"}) == ["1"]
    assert ids({"metadata.tags": {"$ne": "sea"}}) == ["2", "3"]
    assert ids({"metadata.label": {"$in": ["beach", "harbor"]}}) == ["1", "3"]
    assert ids({"metadata.label": {"$nin": ["beach"]}}) == ["2", "3"]
    assert ids({"metadata.y": {"$gt": 2020, "$lte": 2022.5}}) == ["2", "3"]
    assert ids({"$or": [{"metadata.y": 2020}, {"metadata.label": "harbor"}]}) == ["1", "3"]
    assert ids({"$and": [{"metadata.y": {"$gte": 2021}}, {"$not": {"metadata.label": "forest"}}]}) == ["3"]
    assert ids({"metadata.tags": {"$exists": False}}) == ["3"]
    assert ids({"metadata.y": "2020"}) == []
    with pytest.raises(DataAPIResponseException, match="UNINDEXED_FILTER_PATH"):
        ids({"content": "x"})
    with pytest.raises(DataAPIResponseException, match="at most 100 values"):
        ids({"_id": {"$in": [str(i) for i in range(101)]}})


def test_binary_vectors_and_replace(coll: Any) -> None:
    from astrapy.data_types import DataAPIVector

    coll.insert_one({"_id": "v", "$vector": DataAPIVector([0.0, 0.6, 0.8])})  # sent as $binary
    got = coll.find_one({"_id": "v"}, projection={"$vector": True})
    assert got["$vector"] == pytest.approx([0.0, 0.6, 0.8], abs=1e-7)
    res = coll.replace_one({"_id": "v"}, {"metadata": {"a": 1}, "$vector": [1.0, 0.0, 0.0]})
    assert res.update_info["n"] == 1
    assert coll.find_one({"_id": "v"}, projection={"*": True})["metadata"] == {"a": 1}
    res = coll.replace_one({"_id": "new"}, {"metadata": {}}, upsert=True)
    assert res.update_info["upserted"] == "new"


def test_collection_admin(standin: DataAPIStandIn) -> None:
    db = DataAPIClient(environment="other").get_database(
        standin.endpoint, token=STANDIN_TOKEN, keyspace="default_keyspace"
    )
    name = f"s_{uuid.uuid4().hex[:12]}"
    db.create_collection(name, definition={"vector": {"dimension": 8, "metric": "dot_product"}})
    db.create_collection(name, definition={"vector": {"dimension": 8, "metric": "dot_product"}})  # same: fine
    with pytest.raises(DataAPIResponseException, match="EXISTING_COLLECTION_DIFFERENT_SETTINGS"):
        db.create_collection(name, definition={"vector": {"dimension": 9, "metric": "dot_product"}})
    with pytest.raises(DataAPIResponseException, match="too big"):
        db.create_collection(name + "x", definition={"vector": {"dimension": 4097}})
    vector = {d.name: d for d in db.list_collections()}[name].definition.vector
    assert vector is not None and vector.dimension == 8 and vector.metric == "dot_product"
    db.drop_collection(name)
    assert name not in db.list_collection_names()
    with pytest.raises(DataAPIResponseException, match="COLLECTION_NOT_EXIST"):
        db.get_collection(name).find_one({})

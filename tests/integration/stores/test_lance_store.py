"""LanceDB specifics: ANN index thresholds and builds, rows added after indexing, schema growth, reopen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.integration.stores.conftest import unit_vectors
from tools.stores.lance import LanceIndexes, LanceStore

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((8, DIM))
    x = centres[rng.integers(0, 8, n)] + 0.3 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def lance(tmp_path: Path) -> LanceStore:
    return LanceIndexes(tmp_path, ann_threshold=1000).open("tiles", DIM)


def test_ann_index_is_built_only_above_the_threshold(lance: LanceStore) -> None:
    x = clustered(600)
    lance.upsert([f"i{n}" for n in range(600)], x, [{"label": f"c{n % 3}"} for n in range(600)])
    report = lance.build_ann_index()
    assert not report.built and "ann_threshold" in report.reason and lance.ann_index_type is None
    report = lance.build_ann_index(force=True, num_partitions=4)
    assert report.built and report.index_type == "IVF_SQ" and report.params == {"num_partitions": 4}
    assert lance.ann_index_type == "IVF_SQ"


@pytest.mark.parametrize("index_type", ["IVF_SQ", "IVF_PQ"])
def test_ann_search_finds_neighbours_and_new_rows(lance: LanceStore, index_type: str) -> None:
    n = 1200
    x = clustered(n)
    ids = [f"i{k}" for k in range(n)]
    lance.upsert(ids, x, [{"label": f"c{k % 3}", "minx": float(k)} for k in range(n)])
    report = lance.build_ann_index(index_type=index_type, num_partitions=4)  # type: ignore[arg-type]
    assert report.built and lance.ann_index_type == index_type
    q = x[:20]
    recall = []
    for row, qv in enumerate(q):
        truth = set(np.argsort(-(x @ qv))[:10])
        hits = lance.search(qv, k=10, nprobes=4, refine_factor=20)
        recall.append(len({int(h.id[1:]) for h in hits} & truth) / 10)
        assert hits[0].id == ids[row]
    assert np.mean(recall) >= 0.9
    # filtered ANN search returns only matching rows
    hits = lance.search(q[0], k=10, filter={"label": "c1", "minx": {"$lt": 600}})
    assert hits and all(h.metadata["label"] == "c1" and h.metadata["minx"] < 600 for h in hits)
    # rows written after the index was built are found before and after optimize() (which rebuilds it)
    fresh = unit_vectors(1, dim=DIM, seed=42)
    lance.upsert(["fresh"], fresh, [{"label": "new"}])
    assert lance.unindexed_rows() == 1
    assert lance.search(fresh[0], k=1)[0].id == "fresh"
    rebuilt = lance.optimize()
    assert rebuilt is not None and rebuilt.built and lance.ann_index_type == index_type
    assert lance.unindexed_rows() == 0
    assert lance.search(fresh[0], k=1)[0].id == "fresh"
    assert lance.count() == n + 1
    exact = lance.search(q[3], k=10, exact=True)
    assert [h.id for h in exact] == [ids[i] for i in np.argsort(-(x @ q[3]))[:10]]


def test_metadata_columns_grow_and_types_are_enforced(lance: LanceStore) -> None:
    v = unit_vectors(3, dim=DIM)
    lance.upsert(["a"], v[:1], [{"label": "x"}])
    lance.upsert(["b"], v[1:2], [{"label": "y", "year": 2020, "cloud": 1}])
    assert lance.metadata_fields() == {"label": "str", "year": "int", "cloud": "int"}
    lance.upsert(["c"], v[2:3], [{"score_x": 0.5, "tags": ["a"]}])
    assert lance.get(["a"])["a"][1] == {"label": "x"}
    with pytest.raises(ValueError, match="stored as int"):
        lance.upsert(["d"], v[:1], [{"year": 2020.5}])
    with pytest.raises(ValueError, match="two types"):
        lance.upsert(["d", "e"], v[:2], [{"new": "x"}, {"new": 1}])
    lance.upsert(["d", "e"], v[:2], [{"mixed": 1}, {"mixed": 2.5}])  # int + float in one batch: float
    assert lance.metadata_fields()["mixed"] == "float"
    assert lance.get(["d"])["d"][1] == {"mixed": 1.0}


def test_reopen_sees_data_and_index(tmp_path: Path) -> None:
    reg = LanceIndexes(tmp_path)
    store = reg.open("tiles", DIM)
    x = clustered(300)
    store.upsert([f"i{k}" for k in range(300)], x, [{} for _ in range(300)])
    store.build_ann_index(force=True, num_partitions=2)
    again = LanceIndexes(tmp_path).open("tiles", DIM, create=False)
    assert again.count() == 300 and again.ann_index_type == "IVF_SQ"
    assert again.search(x[5], k=1)[0].id == "i5"
    assert repr(again).startswith("LanceStore(name='tiles'")

"""Above its exact-search threshold, a LanceDB index gets an approximate index, built and recorded as a job."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.catalog import Catalog
from tools.embedding import ensure_ann_index
from tools.stores.factory import index_registry


def test_ann_index_is_built_once_past_the_threshold(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.db")
    store = index_registry("lancedb", path=tmp_path / "idx", ann_threshold=300).open("tiles_x", 16)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(400, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"{i:064x}" for i in range(400)]
    store.upsert(ids[:200], vecs[:200], [{"label": "a"}] * 200)
    assert ensure_ann_index(cat, store) is None  # below the threshold: exact search, no job
    store.upsert(ids[200:], vecs[200:], [{"label": "b"}] * 200)
    doc = ensure_ann_index(cat, store)
    assert doc is not None and doc["built"] and doc["rows"] == 400
    job = cat.list_jobs(kind="ann_index")[0]
    assert job.state == "succeeded" and job.result and job.result["built"]
    assert ensure_ann_index(cat, store) is None  # nothing new since: not rebuilt
    hits = store.search(vecs[7], k=1)
    assert hits[0].id == ids[7]

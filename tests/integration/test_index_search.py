"""Indexing and search on the bundled UC Merced sample with the real skyscout-tiny model and LanceDB.

Covers: resume after SIGKILL (exactly one vector per image), searches that keep working while another
model's index is built beside the active one (blue-green alias switch), filters and combined queries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tools.catalog import Catalog
from tools.embedding import build_index
from tools.evaluation import text_encoder
from tools.indexes import active_index, alias_name
from tools.ingest import ingest_manifest
from tools.models import load_model
from tools.paths import resolve_roots
from tools.search import Query, QueryError, search
from tools.stores.factory import index_registry

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "data" / "ucm_sample"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return load_model("skyscout-tiny", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    cat = Catalog(tmp_path / "home" / "catalog.db")
    ingest_manifest(cat, SAMPLE / "val.jsonl", allowed_roots=resolve_roots([PROJECT]), progress=False)
    return cat


def test_index_then_search_with_filters_and_negatives(tiny, catalog: Catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry = index_registry("lancedb", path=tmp_path / "idx")
    report = build_index(catalog, registry, model_key="skyscout-tiny", model=tiny.model,
                         transform=tiny.preprocess_val, dim=tiny.embed_dim, num_workers=0, progress=False)
    assert report.count == report.images == catalog.count_images() == 80
    assert report.activated and catalog.get_alias(alias_name("lancedb")) == report.index
    store = registry.open(report.index, tiny.embed_dim, create=False)
    enc = text_encoder(tiny.model, tiny.tokenizer)

    res = search(Query(texts=["harbor"], k=5, filter={"label": "harbor"}), store=store, catalog=catalog,
                 encode_text=enc)
    assert len(res.hits) == 5 and all(h.label == "harbor" for h in res.hits)
    assert all(h.captions and h.uri and Path(h.uri).is_file() for h in res.hits)
    scores = [h.score for h in res.hits]
    assert scores == sorted(scores, reverse=True)

    example = res.hits[0].image_id
    more = search(Query(images=[example], k=3), store=store, catalog=catalog, encode_text=enc)
    assert example not in [h.image_id for h in more.hits] and len(more.hits) == 3

    plain = search(Query(texts=["beach"], k=80), store=store, catalog=catalog, encode_text=enc)
    steered = search(Query(texts=["beach"], negative_texts=["a river"], negative_weight=0.9, k=80), store=store,
                     catalog=catalog, encode_text=enc)

    def river_scores(hits: list) -> float:  # type: ignore[type-arg]
        return sum(h.score for h in hits if h.label == "river")

    # Steering away from "river" lowers river tiles' similarity to the query relative to the plain one.
    assert [h.image_id for h in plain.hits] != [h.image_id for h in steered.hits]
    assert river_scores(steered.hits) < river_scores(plain.hits)
    with pytest.raises(QueryError):
        search(Query(k=3), store=store, catalog=catalog, encode_text=enc)


def test_worker_process_reader_matches_threaded_reader(tiny, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    """The DataLoader reader (forkserver workers, preloaded modules) yields the same pixels as the threaded one."""
    import numpy as np

    from tools.embedding import dataloader_reader, model_embedder, run_pipeline

    records = list(catalog.iter_images())[:24]
    embed = model_embedder(tiny.model)
    vectors: dict[int, dict[str, np.ndarray]] = {}
    for workers in (0, 2):
        got: dict[str, np.ndarray] = {}

        def write(ids: list[str], v: np.ndarray, got: dict[str, np.ndarray] = got) -> int:
            got.update(zip(ids, v, strict=True))
            return len(ids)

        reader = dataloader_reader(tiny.preprocess_val, batch_size=10, num_workers=workers)
        assert run_pipeline(records, reader=reader, embedder=embed, writer=write) == 24
        vectors[workers] = got
    assert vectors[0].keys() == vectors[2].keys() == {r.id for r in records}
    for image_id, v in vectors[0].items():
        np.testing.assert_allclose(vectors[2][image_id], v, atol=1e-5)


def test_searches_keep_working_while_a_new_index_is_built(tiny, catalog: Catalog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    registry = index_registry("lancedb", path=tmp_path / "idx")
    first = build_index(catalog, registry, model_key="skyscout-tiny", model=tiny.model,
                        transform=tiny.preprocess_val, dim=tiny.embed_dim, num_workers=0, progress=False)
    enc = text_encoder(tiny.model, tiny.tokenizer)
    stop = threading.Event()
    seen: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def query_loop() -> None:
        while not stop.is_set():
            try:
                rec = active_index(catalog, "lancedb")
                store = registry.open(rec["name"], rec["dim"], create=False)
                res = search(Query(texts=["river"], k=10), store=store, catalog=catalog, encode_text=enc)
                seen.append((rec["name"], len(res.hits)))
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    t = threading.Thread(target=query_loop)
    t.start()
    time.sleep(0.5)
    # A second "model version" (same weights, another key) is indexed beside the active one.
    second = build_index(catalog, registry, model_key="mv-second", model=tiny.model,
                         transform=tiny.preprocess_val, dim=tiny.embed_dim, batch_size=8, num_workers=0,
                         progress=False)
    time.sleep(0.5)
    stop.set()
    t.join()
    assert not errors, errors
    names = [n for n, _ in seen]
    assert all(k == 10 for _, k in seen), "a search saw a partial index"
    assert first.index in names and second.index in names
    assert names.index(second.index) > max(i for i, n in enumerate(names) if n == first.index)
    assert registry.exists(first.index), "the previous index must stay until someone drops it"


KILL_SCRIPT = """
import sys, time
from pathlib import Path
from tools.catalog import Catalog
from tools.embedding import build_index
from tools.models import load_model
from tools.stores.factory import index_registry
home = Path(sys.argv[1])
tiny = load_model("skyscout-tiny", cache_dir=home / "cache")
cat = Catalog(home / "catalog.db")
registry = index_registry("lancedb", path=home / "idx")
embed_slowly = None
if len(sys.argv) > 2:
    from tools.embedding import model_embedder
    fast = model_embedder(tiny.model)
    def embed_slowly(pixels):
        time.sleep(0.3)  # leave the test time to kill us mid-run
        return fast(pixels)
r = build_index(cat, registry, model_key="skyscout-tiny", model=tiny.model, transform=tiny.preprocess_val,
                dim=tiny.embed_dim, batch_size=4, num_workers=0, progress=False, embedder=embed_slowly)
print("DONE", r.embedded, r.skipped_existing, r.count)
"""


def test_index_killed_and_restarted_has_each_image_once(catalog: Catalog, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(home), "slow"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline:
        jobs = [j for j in catalog.list_jobs(kind="index") if j.done >= 12]
        if jobs:
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = catalog.list_jobs(kind="index")[0]
    assert interrupted.state == "running" and 12 <= interrupted.done < 80  # killed mid-run, not finished
    out = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(home)], env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    _, embedded, skipped, count = out.split()[-4:]
    assert int(skipped) >= 12 and int(embedded) + int(skipped) == 80 and int(count) == 80
    store = index_registry("lancedb", path=home / "idx").open("tiles_skyscout_tiny", 384, create=False)
    assert store.ids() == catalog.image_ids() and store.count() == 80

"""What search under load rests on: concurrent texts share one forward pass, the same rows come back, the text
tower gets no padding columns, and a small LanceDB table answers unfiltered searches from memory exactly."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from tools.stores.lance import LanceIndexes
from tools.text_batching import BatchingTextEncoder


def _slow_encoder(calls: list[list[str]]):  # type: ignore[no-untyped-def]
    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        time.sleep(0.05)
        rows = np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    return encode


def test_concurrent_callers_share_forward_passes_and_get_their_own_rows() -> None:
    calls: list[list[str]] = []
    encode = _slow_encoder(calls)
    batching = BatchingTextEncoder(encode, cache_size=0)
    out: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: out.__setitem__(i, batching([f"query {i}", "shared"])))
               for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) < 16 and sum(len(c) for c in calls) < 32  # batched, and "shared" encoded once a pass
    for i in range(16):
        np.testing.assert_allclose(out[i], encode([f"query {i}", "shared"]))


def test_recent_texts_come_from_the_cache_and_errors_reach_every_caller() -> None:
    calls: list[list[str]] = []
    batching = BatchingTextEncoder(_slow_encoder(calls), cache_size=8)
    first = batching(["beach", "harbor"])
    assert np.array_equal(batching(["harbor", "beach"]), first[::-1]) and len(calls) == 1

    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("the model is gone")

    failing = BatchingTextEncoder(broken)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            failing(["x"])
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4


def test_the_text_tower_gets_no_padding_columns_and_the_same_rows(tmp_path: Path) -> None:
    import torch

    from tools.evaluation import text_encoder
    from tools.models import load_model

    loaded = load_model("skyscout-tiny", cache_dir=tmp_path, device="cpu")
    seen: list[int] = []
    model = loaded.model
    original = model.encode_text

    def spy(tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        seen.append(tokens.shape[1])
        return original(tokens, normalize=normalize)

    model.encode_text = spy
    rows = text_encoder(model, loaded.tokenizer)(["a satellite photo of a beach.", "harbor"])
    full = original(loaded.tokenizer(["a satellite photo of a beach.", "harbor"]), normalize=True).detach().numpy()
    assert seen and seen[0] < loaded.tokenizer(["x"]).shape[1]
    np.testing.assert_allclose(rows, full, atol=1e-5)


def test_a_small_lance_table_answers_unfiltered_searches_from_memory_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = LanceIndexes(tmp_path).open("t", 16)
    ids = [f"id{i:03d}" for i in range(300)]
    store.upsert(ids, vectors, [{"label": f"c{i % 3}"} for i in range(300)])
    q = vectors[7]
    memory = store.search(q, k=5)
    exact = store.search(q, k=5, filter={"label": "c1"})  # filtered: LanceDB itself
    order = np.argsort(-(vectors @ q))[:5]
    assert [h.id for h in memory] == [ids[i] for i in order] and memory[0].metadata == {"label": "c1"}
    assert all(h.metadata["label"] == "c1" for h in exact)
    store.upsert(["new"], q[None, :], [{"label": "c0"}])  # a local write is seen at once
    assert store.search(q, k=1)[0].id in {"new", "id007"} and store.count() == 301
    store.delete(["new", "id007"])
    assert {h.id for h in store.search(q, k=3)}.isdisjoint({"new", "id007"})

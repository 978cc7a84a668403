"""Batch validation, index names, the factory's dispatch, Astra settings and the text embeddings wrapper."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools.stores import (
    MissingCredentialsError,
    index_name_for_model,
    index_registry,
    validate_index_name,
)
from tools.stores.base import prepare_batch
from tools.stores.langchain_adapter import TextEncoderEmbeddings, l2_normalise


def unit(n: int, dim: int = 4) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_prepare_batch_validates_and_dedupes() -> None:
    ids, vecs, metas = prepare_batch(["a", "b", "a"], unit(3).astype(np.float64), [{"n": 1}, {}, {"n": 3}], 4)
    assert ids == ["b", "a"] and metas == [{}, {"n": 3}]
    assert vecs.dtype == np.float32 and vecs.flags.c_contiguous
    np.testing.assert_array_equal(vecs[1], unit(3)[2])
    assert prepare_batch([], np.zeros((0, 4), np.float32), [], 4)[0] == []
    _, _, m = prepare_batch(["a"], unit(1), [{"n": np.int64(3), "x": np.float32(0.5), "t": ("a", "b")}], 4)
    assert m == [{"n": 3, "x": 0.5, "t": ["a", "b"]}] and type(m[0]["n"]) is int


@pytest.mark.parametrize(
    ("ids", "vectors", "metadata", "message"),
    [
        (["a"], unit(1, 5), [{}], "shape"),
        (["a", "b"], unit(1), [{}, {}], "2 ids but 1 vectors"),
        (["a"], unit(1), [{}, {}], "1 ids but 2 metadata"),
        ([""], unit(1), [{}], "invalid id"),
        (["a"], unit(1) * 1.1, [{}], "not L2-normalised"),
        (["a"], np.full((1, 4), np.nan, np.float32), [{}], "NaN"),
        (["a"], unit(1), [{"k": None}], "unsupported value None"),
        (["a"], unit(1), [{"k": {"nested": 1}}], "unsupported value"),
        (["a"], unit(1), [{"k": [1, 2]}], "unsupported value"),
        (["a"], unit(1), [{"k": 2**70}], "64 bits"),
        (["a"], unit(1), [{"k": float("inf")}], "finite"),
        (["a"], unit(1), [{"$k": 1}], "invalid metadata key"),
        (["a"], unit(1), [{"id": "x"}], "reserved"),
    ],
)
def test_prepare_batch_rejects(ids: list[str], vectors: np.ndarray, metadata: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        prepare_batch(ids, vectors, metadata, 4)


def test_index_names() -> None:
    assert index_name_for_model("skyclip-vit-b32@v3") == "tiles_skyclip_vit_b32_v3"
    long_a = index_name_for_model("x" * 100 + "a")
    long_b = index_name_for_model("x" * 100 + "b")
    assert len(long_a) <= 48 and long_a != long_b
    assert validate_index_name(long_a) == long_a
    for bad in ["", "1abc", "a-b", "a" * 49, "a.b"]:
        with pytest.raises(ValueError, match="invalid index name"):
            validate_index_name(bad)


def test_factory_rejects_unknown_kind_listing_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown vector store kind 'faiss'; valid kinds: 'lancedb', 'astra'"):
        index_registry("faiss")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs path="):
        index_registry("lancedb")


def test_factory_opens_lancedb(tmp_path: Path) -> None:
    registry = index_registry("lancedb", path=tmp_path, ann_threshold=10)
    store = registry.open("tiles_v1", 4)
    store.upsert(["a"], unit(1), [{"label": "x"}])
    assert [i.name for i in index_registry("lancedb", path=tmp_path).list()] == ["tiles_v1"]
    assert store.ann_threshold == 10  # type: ignore[attr-defined]
    assert registry.drop("tiles_v1") and not registry.exists("tiles_v1")


ASTRA_VARS = ("ASTRA_DB_API_ENDPOINT", "ASTRA_DB_APPLICATION_TOKEN", "ASTRA_DB_KEYSPACE")


def test_astra_missing_credentials_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ASTRA_VARS:
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingCredentialsError) as err:
        index_registry("astra")
    assert "ASTRA_DB_API_ENDPOINT" in str(err.value) and "ASTRA_DB_APPLICATION_TOKEN" in str(err.value)
    monkeypatch.setenv("ASTRA_DB_API_ENDPOINT", "https://x.example")
    with pytest.raises(MissingCredentialsError, match="ASTRA_DB_APPLICATION_TOKEN") as err2:
        index_registry("astra")
    assert "ASTRA_DB_API_ENDPOINT" not in str(err2.value)


def test_astra_settings_resolution() -> None:
    from tools.stores.astra import AstraSettings

    astra_endpoint = "https://01234567-89ab-cdef-0123-456789abcdef-us-east1.apps.astra.datastax.com"
    s = AstraSettings.resolve(env={"ASTRA_DB_API_ENDPOINT": astra_endpoint, "ASTRA_DB_APPLICATION_TOKEN": "AstraCS:x"})
    assert (s.environment, s.keyspace, s.token) == ("prod", "default_keyspace", "AstraCS:x")
    assert "AstraCS" not in repr(s)
    s = AstraSettings.resolve(
        "http://127.0.0.1:8181/",
        "tok",
        env={"ASTRA_DB_KEYSPACE": "images", "ASTRA_DB_APPLICATION_TOKEN": "other"},
    )
    assert (s.endpoint, s.token, s.keyspace, s.environment) == (
        "http://127.0.0.1:8181",
        "tok",
        "images",
        "other",
    )
    assert AstraSettings.resolve("http://h:1", "t", "ks", "hcd", env={}).environment == "hcd"


def test_importing_the_package_loads_no_backend() -> None:
    code = (
        "import sys, tools.stores; "
        "print(sorted(m for m in ('lancedb', 'astrapy', 'langchain_astradb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert out.stdout.strip() == "[]"


def test_text_encoder_embeddings_normalise_and_batch() -> None:
    calls: list[int] = []

    def encoder(texts: list[str]) -> np.ndarray:
        """A deterministic fake encoder: text length and word count."""
        calls.append(len(texts))
        return np.array([[len(t), len(t.split()), 1.0] for t in texts], dtype=np.float64)

    emb = TextEncoderEmbeddings(encoder, batch_size=2)
    docs = emb.embed_documents(["a b", "ccc", "dd ee ff"])
    assert calls == [2, 1]
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0)
    assert emb.embed_query("ccc") == pytest.approx(docs[1])
    assert emb.embed_documents([]) == []
    bad = TextEncoderEmbeddings(lambda texts: np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        bad.embed_query("x")
    assert np.array_equal(l2_normalise(np.zeros((1, 3))), np.zeros((1, 3), np.float32))

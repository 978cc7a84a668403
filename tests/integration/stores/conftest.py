"""Fixtures for the store contract suite: every backend behind one parametrised ``store`` fixture.

Backends: LanceDB in a temp dir; Astra DB through the local Data API stand-in (real astrapy and
langchain-astradb over HTTP); real Astra DB when ``ASTRA_DB_API_ENDPOINT`` and
``ASTRA_DB_APPLICATION_TOKEN`` are set (skipped otherwise, saying so).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.astra_standin import DataAPIStandIn, running_standin
from tools.stores.base import IndexRegistry

DIM = 16
STANDIN_TOKEN = "AstraCS:stand-in-test-token"
LIVE_ASTRA = bool(os.environ.get("ASTRA_DB_API_ENDPOINT") and os.environ.get("ASTRA_DB_APPLICATION_TOKEN"))
LIVE_SKIP_REASON = "real Astra DB tests need ASTRA_DB_API_ENDPOINT and ASTRA_DB_APPLICATION_TOKEN"
BACKENDS = [
    "lancedb",
    "astra-standin",
    pytest.param("astra-live", marks=pytest.mark.skipif(not LIVE_ASTRA, reason=LIVE_SKIP_REASON)),
]


def deterministic_text_encoder(dim: int = DIM) -> Callable[[list[str]], np.ndarray]:
    """A fake CLIP text tower for tests: a fixed bag of hashed words (same text, same vector; shared
    words, similar vectors). Deterministic across runs and machines; not normalised on purpose."""

    def encode(texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                digest = hashlib.sha256(word.encode()).digest()
                seed = int.from_bytes(digest[:8], "little")
                out[row] += np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
            if not text.split():
                out[row, 0] = 1.0
        return out

    return encode


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def image_id(n: int) -> str:
    return hashlib.sha256(f"image-{n}".encode()).hexdigest()


@pytest.fixture(scope="session")
def standin() -> Iterator[DataAPIStandIn]:
    """One Data API stand-in per test session (tests use their own collections)."""
    with running_standin(token=STANDIN_TOKEN) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def registry(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[IndexRegistry]:
    """The index registry of one backend; Astra collections created by the test are dropped after."""
    if backend == "lancedb":
        from tools.stores.lance import LanceIndexes

        yield LanceIndexes(tmp_path / "lance")
        return
    from tools.stores.astra import AstraIndexes

    reg: AstraIndexes
    if backend == "astra-standin":
        server: DataAPIStandIn = request.getfixturevalue("standin")
        reg = AstraIndexes(server.endpoint, STANDIN_TOKEN, retry_base_delay_s=0.01)
    else:
        reg = AstraIndexes()
    before = {info.name for info in reg.list()}
    yield reg
    for info in reg.list():
        if info.name not in before and info.name.startswith("t_"):
            reg.drop(info.name)


@pytest.fixture
def new_name() -> Callable[[], str]:
    """Fresh index names (unique per call, valid for both backends)."""
    return lambda: f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(registry: IndexRegistry, new_name: Callable[[], str]) -> Any:
    """An empty index of dimension DIM in the backend under test."""
    return registry.open(new_name(), DIM)

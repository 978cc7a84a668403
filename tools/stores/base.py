"""The vector store interface shared by every backend: hits, the protocol, index info, errors, validation.

A *store* is one named index (a LanceDB table or an Astra DB collection) holding one L2-normalised
float32 vector per image id (the sha256 of the image bytes) plus a flat metadata dict. Scores are cosine
similarities (dot products of unit vectors), highest first. Every backend validates its input the same
way, through :func:`prepare_batch`, so that the contract tests hold for all of them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

StoreKind = Literal["lancedb", "astra"]
STORE_KINDS: tuple[str, ...] = ("lancedb", "astra")

#: A metadata value: what both backends can store, filter on and give back unchanged.
MetadataValue = str | int | float | bool | list[str]

#: Index (table / collection) names: Astra DB's rule, which LanceDB also accepts.
INDEX_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
#: Metadata keys: plain identifiers, usable as SQL column names and Data API field names.
METADATA_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
#: Keys the backends (and the LangChain adapter, which adds "score" to found documents) use themselves.
RESERVED_METADATA_KEYS = frozenset({"id", "vector", "score", "_id", "_distance", "_rowid"})
#: How far from 1 a vector's norm may be before it is refused as "not normalised".
NORM_TOLERANCE = 1e-2
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class StoreError(RuntimeError):
    """A vector store operation failed (the message says which store and what to do)."""


class MissingCredentialsError(StoreError, ValueError):
    """A remote store was opened without its endpoint or token."""


class IndexNotFoundError(StoreError, LookupError):
    """The named index (table / collection) does not exist and ``create`` was false."""


class DimensionMismatchError(StoreError, ValueError):
    """An index exists with another vector dimension (or metric) than the one asked for."""


@dataclass(frozen=True)
class Hit:
    """One search result: the image id, its cosine similarity to the query, and its metadata."""

    id: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexInfo:
    """A named index as a registry lists it."""

    name: str
    dim: int
    kind: str
    metric: str = "dot"


@runtime_checkable
class VectorStore(Protocol):
    """One index of image vectors with metadata: upsert, search, get, delete, count, ids."""

    #: table / collection name
    name: str
    #: vector dimension
    dim: int

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]]) -> int:
        """Insert or replace one vector + metadata per id; returns how many distinct ids were written."""
        ...

    def search(self, vector: np.ndarray, k: int = 10, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        """The ``k`` ids nearest to ``vector`` among those matching ``filter`` (cosine, descending)."""
        ...

    def get(self, ids: Sequence[str]) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
        """Vector and metadata of each id that exists (missing ids are left out)."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Delete these ids; returns how many existed."""
        ...

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        """How many vectors match ``filter`` (all of them when None)."""
        ...

    def ids(self) -> set[str]:
        """Every id in the index (to resume or verify an indexing job)."""
        ...


@runtime_checkable
class IndexRegistry(Protocol):
    """Creates, opens, lists and drops the named indexes of one backend (one per model version)."""

    kind: str

    def open(self, name: str, dim: int, *, create: bool = True) -> VectorStore:
        """Open index ``name`` (creating it when missing and ``create``); checks its dimension."""
        ...

    def list(self) -> list[IndexInfo]:
        """All vector indexes of this backend."""
        ...

    def exists(self, name: str) -> bool:
        """Whether index ``name`` exists."""
        ...

    def drop(self, name: str) -> bool:
        """Delete index ``name`` and its vectors; returns whether it existed."""
        ...


# -- validation ------------------------------------------------------------------------------------


def validate_index_name(name: str) -> str:
    """Return ``name`` if it is a valid index name, else raise ValueError saying the rule."""
    if not isinstance(name, str) or not INDEX_NAME_RE.match(name):
        raise ValueError(
            f"invalid index name {name!r}: use 1-48 characters, letters, digits and '_', starting with a "
            "letter (Astra DB collection rules); index_name_for_model() builds one from a model version"
        )
    return name


def index_name_for_model(model_version: str, *, prefix: str = "tiles") -> str:
    """A valid, stable index name for one model version, e.g. ``tiles_skyclip_vit_b32_v3``.

    Characters other than letters and digits become ``_``; names longer than 48 characters are cut and
    end with 8 hex digits of the version's sha256, so two long versions never share an index.
    """
    slug = re.sub(r"[^A-Za-z0-9]+", "_", model_version).strip("_").lower() or "model"
    name = f"{prefix}_{slug}"
    if len(name) > 48:
        digest = hashlib.sha256(model_version.encode()).hexdigest()[:8]
        name = f"{name[:39].rstrip('_')}_{digest}"
    return validate_index_name(name)


def _check_value(key: str, value: Any) -> MetadataValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"metadata {key!r}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"metadata {key!r}: {value} is not a finite number")
        return value
    if isinstance(value, np.generic):
        return _check_value(key, value.item())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(
        f"metadata {key!r}: unsupported value {value!r} ({type(value).__name__}); values must be str, int, "
        "float, bool or a list of str (None: leave the key out)"
    )


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
    """A validated copy of one metadata dict (flat; identifier keys; str/int/float/bool/list[str] values)."""
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a dict, got {type(metadata).__name__}")
    out: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not METADATA_KEY_RE.match(key):
            raise ValueError(f"invalid metadata key {key!r}: use letters, digits and '_' (no dots, no '$')")
        if key in RESERVED_METADATA_KEYS:
            raise ValueError(f"metadata key {key!r} is reserved by the vector stores; rename it")
        out[key] = _check_value(key, value)
    return out


def as_query_vector(vector: np.ndarray | Sequence[float], dim: int) -> np.ndarray:
    """A query vector as a 1-D float32 array of length ``dim`` (a (1, dim) array is accepted)."""
    v = np.asarray(vector, dtype=np.float32)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.shape != (dim,):
        raise ValueError(f"query vector has shape {v.shape}, expected ({dim},)")
    if not np.all(np.isfinite(v)):
        raise ValueError("query vector contains NaN or infinite values")
    return v


def prepare_batch(
    ids: Sequence[str],
    vectors: np.ndarray,
    metadata: Sequence[Mapping[str, Any]] | None,
    dim: int,
) -> tuple[list[str], np.ndarray, list[dict[str, MetadataValue]]]:
    """Validate an upsert batch; a repeated id keeps its last row (so one call never duplicates).

    Returns the ids, an (n, dim) C-contiguous float32 array, and the checked metadata dicts.
    """
    ids = list(ids)
    v = np.asarray(vectors)
    if v.ndim == 1 and len(ids) == 1:
        v = v[None, :]
    if v.ndim != 2 or v.shape[1] != dim:
        raise ValueError(f"vectors have shape {v.shape}, expected (n, {dim})")
    if v.shape[0] != len(ids):
        raise ValueError(f"{len(ids)} ids but {v.shape[0]} vectors")
    metas = [{} for _ in ids] if metadata is None else list(metadata)
    if len(metas) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(metas)} metadata dicts")
    for i in ids:
        if not isinstance(i, str) or not i or len(i) > 512:
            raise ValueError(f"invalid id {i!r}: ids are non-empty strings (image sha256 hex digests)")
    v = np.ascontiguousarray(v, dtype=np.float32)
    if not np.all(np.isfinite(v)):
        raise ValueError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(v, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"{bad.size} vector(s) are not L2-normalised (e.g. id {ids[bad[0]]!r} has norm "
            f"{norms[bad[0]]:.4f}); divide each by its norm first"
        )
    checked = [check_metadata(m) for m in metas]
    if len(set(ids)) != len(ids):
        last = {i: n for n, i in enumerate(ids)}
        keep = sorted(last.values())
        ids = [ids[n] for n in keep]
        v = v[keep]
        checked = [checked[n] for n in keep]
    return ids, v, checked


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]

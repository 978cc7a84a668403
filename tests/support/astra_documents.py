"""The documents side of the Data API stand-in (tests only): its limits and errors, filters, projections,
sorts and similarities, and one collection's documents and vectors.

:mod:`tests.support.astra_standin` is the HTTP server and :mod:`tests.support.astra_commands` the
collection commands built on these; the module docstring of the former says what the stand-in covers.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_INSERT_MANY = 100
MAX_VECTOR_SEARCH_LIMIT = 1000
PAGE_SIZE = 20
MAX_DELETE_MANY = 20
MAX_COUNT = 1000
MAX_IN_VALUES = 100
MAX_VECTOR_DIMENSION = 4096
METRICS = ("cosine", "euclidean", "dot_product")
SPECIAL_FIELDS = ("$vector", "$vectorize", "$lexical")


class APIError(Exception):
    """A Data API error, answered as HTTP 200 with an ``errors`` list (as the real API does)."""

    def __init__(self, code: str, message: str, *, family: str = "REQUEST", scope: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.family = family
        self.scope = scope

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "family": self.family,
            "scope": self.scope,
            "errorCode": self.code,
            "title": self.code.replace("_", " ").capitalize(),
            "message": self.message,
        }


_MISSING = object()


# -- values, paths and filters -----------------------------------------------------------------------


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _resolve(doc: Any, path: str) -> Any:
    cur = doc
    for seg in path.split("."):
        if isinstance(cur, dict):
            cur = cur.get(seg, _MISSING)
        elif isinstance(cur, list) and seg.isdigit():
            idx = int(seg)
            cur = cur[idx] if idx < len(cur) else _MISSING
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def _eq(value: Any, literal: Any) -> bool:
    if value is _MISSING:
        return False
    if isinstance(value, list) and not isinstance(literal, list):
        return any(json_equal(v, literal) for v in value)
    return json_equal(value, literal)


def _cmp(value: Any, literal: Any, op: str) -> bool:
    if value is _MISSING:
        return False
    if isinstance(value, list):
        return any(_cmp(v, literal, op) for v in value)
    if not ((_is_num(value) and _is_num(literal)) or (isinstance(value, str) and isinstance(literal, str))):
        return False
    return {
        "$gt": value > literal,
        "$gte": value >= literal,
        "$lt": value < literal,
        "$lte": value <= literal,
    }[op]


def _check_in_list(op: str, values: Any) -> list[Any]:
    if not isinstance(values, list):
        raise APIError("INVALID_FILTER_EXPRESSION", f"'{op}' operator must have array value")
    if len(values) > MAX_IN_VALUES:
        raise APIError(
            "COMMAND_FIELD_INVALID",
            f"Request invalid: '{op}' operator can take at most {MAX_IN_VALUES} values, got {len(values)}",
        )
    return values


def _match_condition(value: Any, cond: Any) -> bool:
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return _eq(value, cond)
    for op, operand in cond.items():
        if op == "$eq":
            ok = _eq(value, operand)
        elif op == "$ne":
            ok = not _eq(value, operand)
        elif op == "$in":
            ok = any(_eq(value, v) for v in _check_in_list(op, operand))
        elif op == "$nin":
            ok = not any(_eq(value, v) for v in _check_in_list(op, operand))
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            ok = _cmp(value, operand, op)
        elif op == "$exists":
            ok = (value is not _MISSING) == bool(operand)
        elif op == "$size":
            ok = isinstance(value, list) and len(value) == operand
        elif op == "$all":
            ok = isinstance(value, list) and all(any(json_equal(v, x) for v in value) for x in operand)
        else:
            raise APIError("UNSUPPORTED_FILTER_OPERATION", f"Unsupported filter operator '{op}'")
        if not ok:
            return False
    return True


def _filter_paths(flt: dict[str, Any]) -> Iterator[str]:
    for key, value in flt.items():
        if key in ("$and", "$or"):
            for sub in value:
                yield from _filter_paths(sub)
        elif key == "$not":
            yield from _filter_paths(value)
        else:
            yield key


def matches(doc: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches(doc, sub) for sub in cond):
                return False
        elif key == "$or":
            if not any(matches(doc, sub) for sub in cond):
                return False
        elif key == "$not":
            if matches(doc, cond):
                return False
        elif key.startswith("$"):
            raise APIError("UNSUPPORTED_FILTER_OPERATION", f"Unsupported filter operator '{key}'")
        elif not _match_condition(_resolve(doc, key), cond):
            return False
    return True


def project(doc: dict[str, Any], projection: dict[str, Any] | None) -> dict[str, Any]:
    """Apply a projection; ``$vector`` / ``$vectorize`` are left out unless asked for, as on Astra."""
    if projection and projection.get("*") in (True, 1):
        return dict(doc)
    specs = {k: v for k, v in (projection or {}).items() if k != "*"}
    include = {k for k, v in specs.items() if v in (True, 1)}
    exclude = {k for k, v in specs.items() if v in (False, 0)}
    if include - {"_id"}:
        out: dict[str, Any] = {}
        if "_id" not in exclude and "_id" in doc:
            out["_id"] = doc["_id"]
        for path in include:
            value = _resolve(doc, path)
            if value is _MISSING:
                continue
            target = out
            parts = path.split(".")
            for seg in parts[:-1]:
                target = target.setdefault(seg, {})
            target[parts[-1]] = value
        return out
    out = {k: v for k, v in doc.items() if k not in exclude and not (k in SPECIAL_FIELDS and k not in include)}
    return out


# -- collections -------------------------------------------------------------------------------------


@dataclass
class Collection:
    name: str
    options: dict[str, Any]
    docs: dict[Any, dict[str, Any]] = field(default_factory=dict)
    vectors: dict[Any, np.ndarray] = field(default_factory=dict)

    @property
    def dimension(self) -> int | None:
        vec = self.options.get("vector") or {}
        return vec.get("dimension")

    @property
    def metric(self) -> str:
        return str((self.options.get("vector") or {}).get("metric", "cosine"))

    def indexed(self, path: str) -> bool:
        if path == "_id":
            return True
        indexing = self.options.get("indexing") or {}

        def covered(rules: list[str]) -> bool:
            return any(r == "*" or path == r or path.startswith(r + ".") for r in rules)

        if "allow" in indexing:
            return covered(indexing["allow"])
        if "deny" in indexing:
            return not covered(indexing["deny"])
        return True

    def check_filter(self, flt: Any) -> dict[str, Any]:
        if flt is None:
            return {}
        if not isinstance(flt, dict):
            raise APIError("INVALID_FILTER_EXPRESSION", "Filter must be a JSON object")
        for path in _filter_paths(flt):
            if path in SPECIAL_FIELDS:
                raise APIError("INVALID_FILTER_EXPRESSION", f"Cannot filter on '{path}' field")
            if not self.indexed(path):
                raise APIError(
                    "UNINDEXED_FILTER_PATH",
                    f"The filter path ('{path}') is not indexed",
                )
        return flt

    def record(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A stored document as the API gives it back (vector as a list of floats)."""
        out = dict(doc)
        if doc["_id"] in self.vectors:
            out["$vector"] = self.vectors[doc["_id"]].astype(float).tolist()
        return out


def already_exists(doc_id: Any) -> str:
    return f"Failed to insert document with _id {doc_id!r}: Document already exists with the given _id"


def decode_vector(raw: Any) -> np.ndarray:
    if isinstance(raw, dict) and set(raw) == {"$binary"}:
        blob = base64.b64decode(raw["$binary"])
        if len(blob) % 4:
            raise APIError("INVALID_VECTOR", "Binary vector must be a multiple of 4 bytes (float32)")
        return np.frombuffer(blob, dtype=">f4").astype(np.float32)
    if isinstance(raw, list) and raw and all(_is_num(v) for v in raw):
        return np.asarray(raw, dtype=np.float32)
    raise APIError("SHRED_BAD_VECTOR_VALUE", "Bad $vector value: needs to be a non-empty array of numbers or $binary")


def similarities(mat: np.ndarray, q: np.ndarray, metric: str | None) -> np.ndarray:
    """The Data API's similarity of each row of ``mat`` to ``q``: (1 + dot) / 2, (1 + cos) / 2, or 1 / (1 + d^2)."""
    if metric == "dot_product":
        return (1.0 + mat @ q) / 2.0
    if metric == "cosine":
        denom = np.linalg.norm(mat, axis=1) * np.linalg.norm(q)
        return (1.0 + (mat @ q) / np.where(denom == 0, 1.0, denom)) / 2.0
    return 1.0 / (1.0 + np.sum((mat - q) ** 2, axis=1))


def sort_select(
    docs: list[dict[str, Any]], sort: dict[str, Any], options: dict[str, Any], max_limit: int | None
) -> list[dict[str, Any]]:
    """Documents sorted by field values (missing and null first), then skipped and limited."""
    for key, direction in reversed(list(sort.items())):
        if direction not in (1, -1):
            raise APIError("INVALID_SORT_CLAUSE", f"Sort direction for '{key}' must be 1 or -1")

        def sort_key(d: dict[str, Any], key: str = key) -> tuple[int, Any]:
            v = _resolve(d, key)
            return (0, "") if v is _MISSING or v is None else (1, v if _is_num(v) or isinstance(v, str) else str(v))

        docs.sort(key=sort_key, reverse=direction == -1)
    skip = options.get("skip") or 0
    if skip and not sort:
        raise APIError("COMMAND_FIELD_INVALID", "skip options should be used with sort clause")
    docs = docs[skip:]
    limit = options.get("limit")
    if limit:
        docs = docs[:limit]
    if max_limit is not None:
        docs = docs[:max_limit]
    return docs

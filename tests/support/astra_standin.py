"""A local stand-in for the Astra DB Data API (JSON over HTTP), for tests only.

What it is: a small in-memory HTTP server that answers the Data API commands the real ``astrapy`` and
``langchain-astradb`` clients send, at the same URL paths (``/api/json/v1/{keyspace}[/{collection}]``
for the Astra environments, ``/v1/{keyspace}[/{collection}]`` for ``environment="other"``/HCD/DSE), with
the documented response shapes, error codes and limits, so that those libraries run unchanged against
it:

- keyspace commands: ``createCollection``, ``findCollections`` (with ``explain``), ``deleteCollection``;
- collection commands: ``insertOne``, ``insertMany`` (ordered / unordered, ``returnDocumentResponses``,
  at most 100 documents), ``find`` (filter, projection, vector sort with ``includeSimilarity`` /
  ``includeSortVector``, at most 1000 results for a vector sort, pages of 20 with ``nextPageState``
  otherwise), ``findOne``, ``findOneAndReplace`` (``upsert``), ``deleteOne``, ``deleteMany`` (at most 20
  per call, then ``moreData``), ``countDocuments`` (counts up to 1000, then ``moreData``),
  ``estimatedDocumentCount``;
- filters: implicit ``$eq`` (array-aware), ``$eq $ne $in $nin $gt $gte $lt $lte $exists``, ``$and $or
  $not``, dotted paths, at most 100 values per ``$in``; filtering on a path the collection does not
  index is refused, as on Astra;
- vectors as JSON arrays or ``{"$binary": <base64 big-endian float32>}``, up to 4096 dimensions;
  similarity as Astra reports it: ``(1 + dot) / 2`` for ``dot_product``, ``(1 + cos) / 2`` for ``cosine``,
  ``1 / (1 + d^2)`` for ``euclidean``;
- a ``Token`` header is required (and must equal ``token`` when one is configured).

What it is not: a database. No persistence, no ANN index (vector sorts are exact), no update operators
(``updateOne`` and friends answer an error), no tables, no vectorize / lexical / rerank services, no
admin (DevOps) API. Use it to test client code; run the same tests against real Astra DB for the rest.

Tests can also make the next requests fail (:meth:`DataAPIStandIn.fail_next`) to exercise retries, and
read :attr:`DataAPIStandIn.log` to see which commands were sent.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

_PATH_RE = re.compile(r"^/(?:api/json/)?v1/([A-Za-z][A-Za-z0-9_]{0,47})(?:/([^/?]+))?/?(?:\?.*)?$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_SPECIAL_FIELDS = ("$vector", "$vectorize", "$lexical")


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


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
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
        return any(_json_equal(v, literal) for v in value)
    return _json_equal(value, literal)


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
            ok = isinstance(value, list) and all(any(_json_equal(v, x) for v in value) for x in operand)
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


def _matches(doc: dict[str, Any], flt: dict[str, Any]) -> bool:
    for key, cond in flt.items():
        if key == "$and":
            if not all(_matches(doc, sub) for sub in cond):
                return False
        elif key == "$or":
            if not any(_matches(doc, sub) for sub in cond):
                return False
        elif key == "$not":
            if _matches(doc, cond):
                return False
        elif key.startswith("$"):
            raise APIError("UNSUPPORTED_FILTER_OPERATION", f"Unsupported filter operator '{key}'")
        elif not _match_condition(_resolve(doc, key), cond):
            return False
    return True


def _project(doc: dict[str, Any], projection: dict[str, Any] | None) -> dict[str, Any]:
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
    out = {k: v for k, v in doc.items() if k not in exclude and not (k in _SPECIAL_FIELDS and k not in include)}
    return out


# -- collections -------------------------------------------------------------------------------------


@dataclass
class _Collection:
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
            if path in _SPECIAL_FIELDS:
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


def _already_exists(doc_id: Any) -> str:
    return f"Failed to insert document with _id {doc_id!r}: Document already exists with the given _id"


def _decode_vector(raw: Any) -> np.ndarray:
    if isinstance(raw, dict) and set(raw) == {"$binary"}:
        blob = base64.b64decode(raw["$binary"])
        if len(blob) % 4:
            raise APIError("INVALID_VECTOR", "Binary vector must be a multiple of 4 bytes (float32)")
        return np.frombuffer(blob, dtype=">f4").astype(np.float32)
    if isinstance(raw, list) and raw and all(_is_num(v) for v in raw):
        return np.asarray(raw, dtype=np.float32)
    raise APIError("SHRED_BAD_VECTOR_VALUE", "Bad $vector value: needs to be a non-empty array of numbers or $binary")


def _similarities(mat: np.ndarray, q: np.ndarray, metric: str | None) -> np.ndarray:
    """The Data API's similarity of each row of ``mat`` to ``q``: (1 + dot) / 2, (1 + cos) / 2, or 1 / (1 + d^2)."""
    if metric == "dot_product":
        return (1.0 + mat @ q) / 2.0
    if metric == "cosine":
        denom = np.linalg.norm(mat, axis=1) * np.linalg.norm(q)
        return (1.0 + (mat @ q) / np.where(denom == 0, 1.0, denom)) / 2.0
    return 1.0 / (1.0 + np.sum((mat - q) ** 2, axis=1))


def _sort_select(
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

class DataAPIStandIn:
    """The server: ``start()`` it (a free port on 127.0.0.1, a background thread), ``stop()`` it after."""

    def __init__(self, *, token: str | None = None, keyspaces: tuple[str, ...] = ("default_keyspace",)) -> None:
        self.token = token
        self.keyspaces: dict[str, dict[str, _Collection]] = {ks: {} for ks in keyspaces}
        self.log: list[tuple[str, str, int]] = []
        self._lock = threading.RLock()
        self._failures: list[tuple[int, set[str] | None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("the Data API stand-in is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> str:
        standin = self

        class Handler(_Handler):
            server_standin = standin

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="astra-standin", daemon=True)
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> DataAPIStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------------

    def fail_next(self, count: int, *, status: int = 503, commands: tuple[str, ...] | None = None) -> None:
        """Answer the next ``count`` requests (of these commands, if given) with HTTP ``status``."""
        with self._lock:
            self._failures.extend([(status, set(commands) if commands else None)] * count)

    def _take_failure(self, command: str) -> int | None:
        with self._lock:
            for n, (status, commands) in enumerate(self._failures):
                if commands is None or command in commands:
                    del self._failures[n]
                    return status
        return None

    def commands(self, name: str | None = None) -> list[tuple[str, str, int]]:
        """The logged requests (path, command, number of documents), optionally of one command."""
        with self._lock:
            return [entry for entry in self.log if name is None or entry[1] == name]

    # -- dispatch ----------------------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        match = _PATH_RE.match(path)
        if match is None:
            return 404, {"errors": [APIError("NOT_FOUND", f"Unknown path {path}").as_dict()]}
        token = headers.get("token")
        if not token or (self.token is not None and token != self.token):
            err = APIError("UNAUTHENTICATED_REQUEST", "Role unauthorized for operation: invalid token")
            return 401, {"errors": [err.as_dict()]}
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return 400, {"errors": [APIError("INVALID_REQUEST_NOT_JSON", "Request body is not JSON").as_dict()]}
        if not isinstance(payload, dict) or len(payload) != 1:
            err = APIError("INVALID_REQUEST_STRUCTURE", "Request must hold exactly one command")
            return 200, {"errors": [err.as_dict()]}
        ((command, args),) = payload.items()
        keyspace, collection = match.group(1), match.group(2)
        n_docs = len((args or {}).get("documents") or []) if isinstance(args, dict) else 0
        with self._lock:
            self.log.append((path, command, n_docs))
        failure = self._take_failure(command)
        if failure is not None:
            err = APIError("SERVER_UNAVAILABLE", "Injected failure (stand-in)", family="SERVER")
            return failure, {"errors": [err.as_dict()]}
        try:
            with self._lock:
                if keyspace not in self.keyspaces:
                    raise APIError("KEYSPACE_DOES_NOT_EXIST", f"Unknown keyspace '{keyspace}'")
                if collection is None:
                    return 200, self._keyspace_command(keyspace, command, args or {})
                coll = self.keyspaces[keyspace].get(collection)
                if coll is None:
                    raise APIError("COLLECTION_NOT_EXIST", f"Collection does not exist, collection name: {collection}")
                return 200, self._collection_command(coll, command, args or {})
        except APIError as err:
            return 200, {"errors": [err.as_dict()]}

    # -- keyspace commands -------------------------------------------------------------------------

    def _keyspace_command(self, keyspace: str, command: str, args: dict[str, Any]) -> dict[str, Any]:
        colls = self.keyspaces[keyspace]
        if command == "createCollection":
            name = args.get("name")
            if not isinstance(name, str) or not _NAME_RE.match(name):
                raise APIError("INVALID_COLLECTION_NAME", f"Invalid collection name '{name}'")
            options = self._normalize_options(args.get("options") or {})
            existing = colls.get(name)
            if existing is not None:
                if existing.options != options:
                    raise APIError(
                        "EXISTING_COLLECTION_DIFFERENT_SETTINGS",
                        f"Collection '{name}' already exists but with settings different from the ones "
                        "passed with 'createCollection' command",
                    )
            else:
                colls[name] = _Collection(name=name, options=options)
            return {"status": {"ok": 1}}
        if command == "findCollections":
            explain = bool((args.get("options") or {}).get("explain"))
            items: list[Any] = [{"name": c.name, "options": c.options} if explain else c.name for c in colls.values()]
            return {"status": {"collections": items}}
        if command == "deleteCollection":
            colls.pop(str(args.get("name")), None)
            return {"status": {"ok": 1}}
        raise APIError("COMMAND_UNKNOWN", f"Provided command unknown: '{command}' (keyspace command)")

    @staticmethod
    def _normalize_options(options: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        vector = options.get("vector")
        if vector:
            dim = vector.get("dimension")
            if not isinstance(dim, int) or dim <= 0:
                raise APIError("INVALID_CREATE_COLLECTION_OPTIONS", "'vector.dimension' must be a positive integer")
            if dim > MAX_VECTOR_DIMENSION:
                raise APIError(
                    "VECTOR_SEARCH_TOO_BIG_VALUE",
                    f"Vector embedding property '$vector' length too big: {dim} (max {MAX_VECTOR_DIMENSION})",
                )
            metric = vector.get("metric") or "cosine"
            if metric not in METRICS:
                raise APIError("VECTOR_SEARCH_INVALID_FUNCTION_NAME", f"Invalid vector search function name: {metric}")
            out["vector"] = {
                "dimension": dim,
                "metric": metric,
                "sourceModel": vector.get("sourceModel", "other"),
            }
        if options.get("indexing"):
            indexing = options["indexing"]
            if not isinstance(indexing, dict) or len(indexing) != 1 or not set(indexing) <= {"allow", "deny"}:
                raise APIError("INVALID_INDEXING_DEFINITION", "Invalid indexing definition")
            out["indexing"] = indexing
        for key in ("lexical", "rerank"):
            setting = options.get(key)
            out[key] = (
                {"enabled": bool(setting.get("enabled", True))} if isinstance(setting, dict) else {"enabled": False}
            )
            if out[key]["enabled"]:
                raise APIError("FEATURE_NOT_AVAILABLE_IN_STANDIN", f"'{key}' is not available in the Data API stand-in")
        if options.get("defaultId"):
            out["defaultId"] = options["defaultId"]
        return out

    # -- collection commands -----------------------------------------------------------------------

    def _collection_command(self, coll: _Collection, command: str, args: dict[str, Any]) -> dict[str, Any]:
        handler = {
            "insertOne": self._insert_one,
            "insertMany": self._insert_many,
            "find": self._find,
            "findOne": self._find_one,
            "findOneAndReplace": self._find_one_and_replace,
            "deleteOne": self._delete_one,
            "deleteMany": self._delete_many,
            "countDocuments": self._count,
            "estimatedDocumentCount": lambda c, a: {"status": {"count": len(c.docs)}},
        }.get(command)
        if handler is None:
            raise APIError(
                "COMMAND_UNKNOWN",
                f"Provided command unknown: '{command}' (not implemented by the Data API stand-in)",
            )
        return handler(coll, args)

    def _prepare_doc(self, coll: _Collection, raw: Any) -> tuple[dict[str, Any], np.ndarray | None]:
        if not isinstance(raw, dict):
            raise APIError("SHRED_BAD_DOCUMENT_TYPE", "Bad document type to shred: document must be a JSON object")
        doc = dict(raw)
        doc.setdefault("_id", str(uuid.uuid4()))
        for key in doc:
            if key.startswith("$") and key not in _SPECIAL_FIELDS:
                raise APIError("SHRED_DOC_KEY_NAME_VIOLATION", f"Document field name invalid: '{key}'")
        if "$vectorize" in doc:
            raise APIError("VECTORIZE_FEATURE_NOT_AVAILABLE", "Vectorize is not available in the stand-in")
        vector = None
        if "$vector" in doc:
            raw_vector = doc.pop("$vector")
            if raw_vector is not None:
                if coll.dimension is None:
                    raise APIError("VECTOR_SEARCH_NOT_SUPPORTED", "Vector search is not enabled for the collection")
                vector = _decode_vector(raw_vector)
                if vector.shape[0] != coll.dimension:
                    raise APIError(
                        "VECTOR_SIZE_MISMATCH",
                        "Length of vector parameter different from declared '$vector' dimension: "
                        f"{vector.shape[0]} vs {coll.dimension}",
                    )
        return doc, vector

    def _store(self, coll: _Collection, doc: dict[str, Any], vector: np.ndarray | None) -> None:
        coll.docs[doc["_id"]] = doc
        if vector is None:
            coll.vectors.pop(doc["_id"], None)
        else:
            coll.vectors[doc["_id"]] = vector

    def _insert_one(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        doc, vector = self._prepare_doc(coll, args.get("document"))
        if doc["_id"] in coll.docs:
            raise APIError(
                "DOCUMENT_ALREADY_EXISTS",
                _already_exists(doc["_id"]),
            )
        self._store(coll, doc, vector)
        return {"status": {"insertedIds": [doc["_id"]]}}

    def _insert_many(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        documents = args.get("documents")
        options = args.get("options") or {}
        if not isinstance(documents, list) or not documents:
            raise APIError(
                "COMMAND_FIELD_INVALID",
                "Request invalid, the field postCommand.command.documents not valid: must not be empty.",
            )
        if len(documents) > MAX_INSERT_MANY:
            raise APIError(
                "COMMAND_FIELD_INVALID",
                "Request invalid, the field postCommand.command.documents not valid: amount of documents to "
                f"insert is over the max limit ({len(documents)} vs {MAX_INSERT_MANY}).",
            )
        ordered = bool(options.get("ordered", False))
        responses: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        inserted: list[Any] = []
        failed = False
        for raw in documents:
            doc_id = raw.get("_id") if isinstance(raw, dict) else None
            if failed and ordered:
                responses.append({"_id": doc_id, "status": "SKIPPED"})
                continue
            try:
                doc, vector = self._prepare_doc(coll, raw)
                doc_id = doc["_id"]
                if doc_id in coll.docs:
                    raise APIError(
                        "DOCUMENT_ALREADY_EXISTS",
                        _already_exists(doc_id),
                        scope="DOCUMENT",
                    )
                self._store(coll, doc, vector)
                inserted.append(doc_id)
                responses.append({"_id": doc_id, "status": "OK"})
            except APIError as err:
                failed = True
                desc = {k: v for k, v in err.as_dict().items() if k != "id"}
                if desc not in errors:
                    errors.append(desc)
                responses.append({"_id": doc_id, "status": "ERROR", "errorsIdx": errors.index(desc)})
        status = (
            {"documentResponses": responses} if options.get("returnDocumentResponses") else {"insertedIds": inserted}
        )
        out: dict[str, Any] = {"status": status}
        if errors:
            out["errors"] = [{**e, "id": str(uuid.uuid4())} for e in errors]
        return out

    def _select(
        self, coll: _Collection, args: dict[str, Any], *, max_limit: int | None = None
    ) -> tuple[list[dict[str, Any]], list[float] | None, np.ndarray | None]:
        """Matching documents in result order, their similarities (vector sort) and the sort vector."""
        flt = coll.check_filter(args.get("filter"))
        sort = args.get("sort") or {}
        options = args.get("options") or {}
        docs = [d for d in coll.docs.values() if _matches(d, flt)]
        if "$vectorize" in sort or "$hybrid" in sort or "$lexical" in sort:
            raise APIError("FEATURE_NOT_AVAILABLE_IN_STANDIN", "Only $vector sorts are implemented by the stand-in")
        if "$vector" in sort:
            return self._vector_select(coll, docs, sort, options)
        return _sort_select(docs, sort, options, max_limit), None, None

    @staticmethod
    def _vector_select(
        coll: _Collection, docs: list[dict[str, Any]], sort: dict[str, Any], options: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], list[float], np.ndarray]:
        """A ``$vector`` sort: the nearest documents with their similarities, as the Data API scores them."""
        if len(sort) != 1:
            raise APIError("INVALID_SORT_CLAUSE", "Vector sort cannot be combined with other sort fields")
        if coll.dimension is None:
            raise APIError("VECTOR_SEARCH_NOT_SUPPORTED", "Vector search is not enabled for the collection")
        limit = options.get("limit")
        if limit is not None and limit > MAX_VECTOR_SEARCH_LIMIT:
            raise APIError(
                "COMMAND_FIELD_INVALID",
                "Request invalid, the field postCommand.command.options.limit not valid: limit options "
                f"should not be greater than {MAX_VECTOR_SEARCH_LIMIT} for vector search.",
            )
        if options.get("skip"):
            raise APIError("COMMAND_FIELD_INVALID", "skip options should not be used with vector search")
        query = _decode_vector(sort["$vector"])
        if query.shape[0] != coll.dimension:
            raise APIError(
                "VECTOR_SIZE_MISMATCH",
                "Length of vector parameter different from declared '$vector' dimension: "
                f"{query.shape[0]} vs {coll.dimension}",
            )
        docs = [d for d in docs if d["_id"] in coll.vectors]
        if not docs:
            return [], [], query
        mat = np.stack([coll.vectors[d["_id"]] for d in docs]).astype(np.float64)
        sims = _similarities(mat, query.astype(np.float64), coll.metric)
        order = np.argsort(-sims, kind="stable")[: min(limit or MAX_VECTOR_SEARCH_LIMIT, MAX_VECTOR_SEARCH_LIMIT)]
        return [docs[i] for i in order], [float(sims[i]) for i in order], query

    def _render(
        self, coll: _Collection, doc: dict[str, Any], projection: Any, similarity: float | None
    ) -> dict[str, Any]:
        out = _project(coll.record(doc), projection if isinstance(projection, dict) else None)
        if similarity is not None:
            out["$similarity"] = similarity
        return out

    def _find(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        options = args.get("options") or {}
        page_state = options.get("pageState")
        if page_state and "$vector" in (args.get("sort") or {}):
            raise APIError("COMMAND_FIELD_INVALID", "pageState is not supported with vector search")
        docs, sims, query = self._select(coll, args)
        status: dict[str, Any] = {}
        if options.get("includeSortVector"):
            status["sortVector"] = query.astype(float).tolist() if query is not None else None
        if sims is not None:
            include = bool(options.get("includeSimilarity"))
            rendered = [
                self._render(coll, d, args.get("projection"), s if include else None)
                for d, s in zip(docs, sims, strict=True)
            ]
            out: dict[str, Any] = {"data": {"documents": rendered, "nextPageState": None}}
        else:
            start = 0
            if page_state:
                try:
                    start = int(base64.b64decode(page_state).decode())
                except ValueError as exc:
                    raise APIError("INVALID_PAGE_STATE", "Invalid pageState") from exc
            page = docs[start : start + PAGE_SIZE]
            nxt = start + PAGE_SIZE
            state = base64.b64encode(str(nxt).encode()).decode() if nxt < len(docs) else None
            rendered = [self._render(coll, d, args.get("projection"), None) for d in page]
            out = {"data": {"documents": rendered, "nextPageState": state}}
        if status:
            out["status"] = status
        return out

    def _find_one(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        options = args.get("options") or {}
        docs, sims, query = self._select(coll, {**args, "options": {**options, "limit": 1}})
        doc = None
        if docs:
            sim = sims[0] if sims is not None and options.get("includeSimilarity") else None
            doc = self._render(coll, docs[0], args.get("projection"), sim)
        out: dict[str, Any] = {"data": {"document": doc}}
        if options.get("includeSortVector") and query is not None:
            out["status"] = {"sortVector": query.astype(float).tolist()}
        return out

    def _find_one_and_replace(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        options = args.get("options") or {}
        replacement = args.get("replacement")
        if not isinstance(replacement, dict):
            raise APIError("COMMAND_FIELD_INVALID", "'replacement' must be a JSON object")
        docs, _, _ = self._select(
            coll, {"filter": args.get("filter"), "sort": args.get("sort"), "options": {"limit": 1}}
        )
        return_after = options.get("returnDocument", "before") == "after"
        projection = args.get("projection")
        if docs:
            before = docs[0]
            if "_id" in replacement and not _json_equal(replacement["_id"], before["_id"]):
                raise APIError(
                    "DOCUMENT_REPLACE_DIFFERENT_DOCID",
                    "The replace document and document resolved using filter have different _ids",
                )
            old = self._render(coll, before, projection, None)
            doc, vector = self._prepare_doc(coll, {**replacement, "_id": before["_id"]})
            self._store(coll, doc, vector)
            shown = self._render(coll, doc, projection, None) if return_after else old
            return {"data": {"document": shown}, "status": {"matchedCount": 1, "modifiedCount": 1}}
        if not options.get("upsert"):
            return {"data": {"document": None}, "status": {"matchedCount": 0, "modifiedCount": 0}}
        flt = args.get("filter") or {}
        new_id = replacement.get("_id", flt.get("_id") if not isinstance(flt.get("_id"), dict) else None)
        doc, vector = self._prepare_doc(coll, {**replacement, **({"_id": new_id} if new_id is not None else {})})
        self._store(coll, doc, vector)
        upserted = self._render(coll, doc, projection, None) if return_after else None
        return {
            "data": {"document": upserted},
            "status": {"matchedCount": 0, "modifiedCount": 0, "upsertedId": doc["_id"]},
        }

    def _delete_one(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        docs, _, _ = self._select(
            coll, {"filter": args.get("filter"), "sort": args.get("sort"), "options": {"limit": 1}}
        )
        for d in docs:
            coll.docs.pop(d["_id"], None)
            coll.vectors.pop(d["_id"], None)
        return {"status": {"deletedCount": len(docs)}}

    def _delete_many(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        flt = coll.check_filter(args.get("filter"))
        if not flt:
            coll.docs.clear()
            coll.vectors.clear()
            return {"status": {"deletedCount": -1}}
        matching = [d["_id"] for d in coll.docs.values() if _matches(d, flt)]
        for doc_id in matching[:MAX_DELETE_MANY]:
            coll.docs.pop(doc_id, None)
            coll.vectors.pop(doc_id, None)
        status: dict[str, Any] = {"deletedCount": min(len(matching), MAX_DELETE_MANY)}
        if len(matching) > MAX_DELETE_MANY:
            status["moreData"] = True
        return {"status": status}

    def _count(self, coll: _Collection, args: dict[str, Any]) -> dict[str, Any]:
        flt = coll.check_filter(args.get("filter"))
        n = sum(1 for d in coll.docs.values() if _matches(d, flt))
        if n > MAX_COUNT:
            return {"status": {"count": MAX_COUNT, "moreData": True}}
        return {"status": {"count": n}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_standin: DataAPIStandIn
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, allow_nan=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, reply = self.server_standin.handle(self.path, headers, body)
        except Exception as exc:  # a bug in the stand-in: answer like a server error, keep serving
            err = APIError("SERVER_UNHANDLED_ERROR", f"Server failed: {type(exc).__name__}: {exc}", family="SERVER")
            status, reply = 500, {"errors": [err.as_dict()]}
        self._reply(status, reply)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(405, {"errors": [APIError("METHOD_NOT_ALLOWED", "Use POST").as_dict()]})


@contextmanager
def running_standin(**kwargs: Any) -> Iterator[DataAPIStandIn]:
    """A started stand-in for the duration of a ``with`` block (what the pytest fixtures use)."""
    server = DataAPIStandIn(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


__all__ = ["APIError", "DataAPIStandIn", "running_standin"]

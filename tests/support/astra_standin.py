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

This module is the HTTP server and the keyspace commands; :mod:`tests.support.astra_commands` holds the
collection commands and :mod:`tests.support.astra_documents` the filters, projections and limits.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.astra_commands import collection_command
from tests.support.astra_documents import MAX_VECTOR_DIMENSION, METRICS, APIError, Collection

_PATH_RE = re.compile(r"^/(?:api/json/)?v1/([A-Za-z][A-Za-z0-9_]{0,47})(?:/([^/?]+))?/?(?:\?.*)?$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


class DataAPIStandIn:
    """The server: ``start()`` it (a free port on 127.0.0.1, a background thread), ``stop()`` it after."""

    def __init__(self, *, token: str | None = None, keyspaces: tuple[str, ...] = ("default_keyspace",)) -> None:
        self.token = token
        self.keyspaces: dict[str, dict[str, Collection]] = {ks: {} for ks in keyspaces}
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
                return 200, collection_command(coll, command, args or {})
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
                colls[name] = Collection(name=name, options=options)
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

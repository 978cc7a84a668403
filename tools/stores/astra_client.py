"""Reaching the Data API: connection settings (arguments, else ``ASTRA_DB_*`` variables) and what to retry.

Timeouts, connection failures, HTTP 408/429/5xx and server-side Data API errors are transient;
:func:`classify_insert_failures` sorts the per-document outcome of a failed unordered ``insertMany`` into
documents that already exist (to be replaced), ids worth another try, and fatal errors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.stores.base import MissingCredentialsError

ENDPOINT_ENV = "ASTRA_DB_API_ENDPOINT"
TOKEN_ENV = "ASTRA_DB_APPLICATION_TOKEN"
KEYSPACE_ENV = "ASTRA_DB_KEYSPACE"
DEFAULT_KEYSPACE = "default_keyspace"
#: Data API limits: documents per insertMany, results per vector search, values per $in.
MAX_INSERT_CHUNK = 100
MAX_SEARCH_K = 1000
MAX_IN_VALUES = 100
#: countDocuments counts at most this many; beyond it the store counts by paging ids (slow, exact).
MAX_SERVER_COUNT = 1000
CONTENT_FIELD = "content"
#: Data API error codes (in HTTP 200 responses) that a retry can cure.
_TRANSIENT_ERROR_CODES = frozenset(
    {
        "SERVER_TIMEOUT",
        "SERVER_READ_FAILED",
        "SERVER_UNAVAILABLE",
        "SERVER_COORDINATOR_FAILURE",
        "SERVER_NO_NODE_AVAILABLE",
    }
)


@dataclass(frozen=True)
class AstraSettings:
    """Where an Astra DB (or any Data API) database is and how to authenticate; token kept out of repr."""

    endpoint: str
    token: str = field(repr=False)
    keyspace: str = DEFAULT_KEYSPACE
    environment: str = "prod"

    @classmethod
    def resolve(
        cls,
        endpoint: str | None = None,
        token: str | None = None,
        keyspace: str | None = None,
        environment: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
    ) -> AstraSettings:
        """Explicit arguments first, then the standard environment variables; a clear error if missing.

        ``environment`` defaults to what the endpoint says: an ``*.apps.astra*.datastax.com`` endpoint is
        Astra DB (``prod``/``dev``/``test``), anything else a self-hosted Data API (``other``).
        """
        environ = os.environ if env is None else env
        endpoint = endpoint or environ.get(ENDPOINT_ENV) or None
        token = token or environ.get(TOKEN_ENV) or None
        missing = []
        if not endpoint:
            missing.append(f"the API endpoint (pass endpoint=... or set {ENDPOINT_ENV})")
        if not token:
            missing.append(f"the application token (pass token=... or set {TOKEN_ENV})")
        if missing:
            raise MissingCredentialsError(
                "Astra DB is not configured: missing " + " and ".join(missing) + ". Both are on the database's "
                "page in the Astra portal (Generate Token); or use the local 'lancedb' store instead."
            )
        assert endpoint is not None and token is not None
        keyspace = keyspace or environ.get(KEYSPACE_ENV, "").strip() or DEFAULT_KEYSPACE
        if environment is None:
            from astrapy.admin import parse_api_endpoint

            parsed = parse_api_endpoint(endpoint)
            environment = parsed.environment if parsed is not None else "other"
        return cls(endpoint=endpoint.rstrip("/"), token=token, keyspace=keyspace, environment=environment)


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying: timeouts, connection failures, HTTP 408/429/5xx."""
    import httpx
    from astrapy.exceptions import DataAPIHttpException, DataAPIResponseException, DataAPITimeoutException

    if isinstance(exc, DataAPITimeoutException | httpx.TimeoutException | httpx.TransportError):
        return True
    if isinstance(exc, DataAPIHttpException | httpx.HTTPStatusError):
        status = exc.response.status_code if exc.response is not None else 0
        return status in (408, 429) or status >= 500
    if isinstance(exc, DataAPIResponseException) and exc.error_descriptors:
        # an HTTP 200 reporting a server-side failure (timeout, unavailable replica): worth another try
        return all(
            d.family == "SERVER" or (d.error_code or "") in _TRANSIENT_ERROR_CODES for d in exc.error_descriptors
        )
    return False


def classify_insert_failures(
    docs: Sequence[dict[str, Any]], exc: Any
) -> tuple[list[dict[str, Any]], set[str], list[str]]:
    """Split an insertMany failure into (documents that already exist, ids to retry, fatal messages)."""
    by_id = {d["_id"]: d for d in docs}
    existing: list[dict[str, Any]] = []
    retry: set[str] = set()
    fatal: list[str] = []
    for sub in exc.exceptions:
        raw = getattr(sub, "raw_response", None)
        if raw is None:  # an HTTP-level failure of the whole request
            if is_transient(sub):
                retry.update(i for i in by_id if i not in set(exc.inserted_ids))
            else:
                fatal.append(str(sub))
            continue
        errors = raw.get("errors") or []
        for resp in (raw.get("status") or {}).get("documentResponses") or []:
            if resp.get("status") == "OK":
                continue
            doc_id = resp.get("_id")
            err = errors[resp["errorsIdx"]] if resp.get("errorsIdx") is not None else {}
            code = err.get("errorCode")
            if resp.get("status") == "SKIPPED":
                retry.add(doc_id)
            elif code == "DOCUMENT_ALREADY_EXISTS" and doc_id in by_id:
                existing.append(by_id[doc_id])
            elif err.get("family") == "SERVER" or code in _TRANSIENT_ERROR_CODES:
                retry.add(doc_id)
            else:
                fatal.append(f"{code}: {err.get('message')} (_id {doc_id!r})")
        if not (raw.get("status") or {}).get("documentResponses") and errors:
            if all(e.get("family") == "SERVER" or e.get("errorCode") in _TRANSIENT_ERROR_CODES for e in errors):
                retry.update(i for i in by_id if i not in set(exc.inserted_ids))
            else:
                fatal.extend(f"{e.get('errorCode')}: {e.get('message')}" for e in errors)
    return existing, retry, fatal

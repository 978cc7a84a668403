"""Error bodies: every error is ``{"error": ...}`` (a request id for unexpected ones), never a stack trace."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


def _replying(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=status)

    return handler


def install_error_handlers(app: FastAPI, *, max_body_bytes: int) -> None:
    from tools.indexes import NoIndexError
    from tools.search import QueryError

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = f"request body larger than {max_body_bytes} bytes" if exc.status_code == 413 else str(exc.detail)
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    # Errors our tools raise on purpose carry a message for the caller (Starlette matches the closest class).
    for exc_class, status in ((QueryError, 400), (NoIndexError, 409), (LookupError, 404), (ValueError, 400)):
        app.add_exception_handler(exc_class, _replying(status))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.error("request %s failed", request_id, exc_info=exc)
        return JSONResponse({"error": "internal error", "request_id": request_id}, status_code=500)

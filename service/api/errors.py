"""Error bodies: every error is ``{"error": ...}`` (a request id for unexpected ones, ``details`` for invalid
requests), never a stack trace, and never a server path (:mod:`service.api.redact`).

FastAPI's ``max_body_size`` answers a declared ``Content-Length`` over the limit itself, with a plain-text
"Content Too Large", before any handler runs; :class:`JsonBodyLimit` (wrapped around the whole application by
:class:`SkyScoutAPI`) turns only that answer into the same JSON body. FastAPI keeps doing the limiting.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


def _redacted(request: Request, text: str) -> str:
    from service.api.deps import redactor_of

    try:
        return redactor_of(request).text(text)
    except AttributeError:  # before the lifespan built the services
        return text


def _replying(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": _redacted(request, str(exc) or type(exc).__name__)}, status_code=status)

    return handler


def too_large(max_body_bytes: int) -> str:
    return f"request body larger than {max_body_bytes} bytes"


def install_error_handlers(app: FastAPI, *, max_body_bytes: int) -> None:
    from graph.runner import ThreadBusyError
    from tools.catalog import CatalogError
    from tools.indexes import NoIndexError
    from tools.paths import PathNotAllowedError
    from tools.search import QueryError
    from tools.thumbnails import ImageChangedError, ImageTooLargeError

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = too_large(max_body_bytes) if exc.status_code == 413 else _redacted(request, str(exc.detail))
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{k: e[k] for k in ("loc", "msg", "type") if k in e} for e in exc.errors()]
        summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'][1:]) or 'body'}: {d['msg']}" for d in details)
        return JSONResponse({"error": f"invalid request: {summary}", "details": jsonable_encoder(details)},
                            status_code=422)

    @app.exception_handler(PathNotAllowedError)
    async def outside_roots(_: Request, exc: PathNotAllowedError) -> JSONResponse:
        # its message names where a symlink leads: not for an HTTP caller
        return JSONResponse({"error": "a file this request needs lies outside the configured data roots (or a "
                                      "symlink there leads out of them)"}, status_code=403)

    # Errors our tools raise on purpose carry a message for the caller (Starlette matches the closest class).
    for exc_class, status in ((QueryError, 400), (NoIndexError, 409), (ThreadBusyError, 409),
                              (ImageChangedError, 409), (ImageTooLargeError, 422), (PermissionError, 403),
                              (CatalogError, 503), (LookupError, 404), (ValueError, 400)):
        app.add_exception_handler(exc_class, _replying(status))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex[:12]
        log.error("request %s failed", request_id, exc_info=exc)
        return JSONResponse({"error": "internal error", "request_id": request_id}, status_code=500)


class JsonBodyLimit:
    """Rewrites the plain-text 413 that the body limit answers (before any handler) as ``{"error": ...}``."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.body = json.dumps({"error": too_large(max_body_bytes)}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_json(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 413:
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/plain"):
                    replaced = True
                    await send({"type": "http.response.start", "status": 413, "headers": [
                        (b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]})
                    await send({"type": "http.response.body", "body": self.body, "more_body": False})
                    return
            if replaced:
                return  # the plain-text body is dropped
            await send(message)

        await self.app(scope, receive, send_json)


class SkyScoutAPI(FastAPI):
    """FastAPI with :class:`JsonBodyLimit` outside its middleware (where the body limit answers)."""

    def build_middleware_stack(self) -> ASGIApp:
        return JsonBodyLimit(super().build_middleware_stack(), int(self.max_body_size or 0))


__all__ = ["JsonBodyLimit", "SkyScoutAPI", "install_error_handlers", "too_large"]

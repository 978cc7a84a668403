"""What routes depend on: the process's services, the bearer-token check, and the token's scope.

Tokens come from ``SKYSCOUT_API_TOKENS``: ``read:TOKEN`` may search, read status, jobs and thumbnails, give
feedback and chat (a chat that searches and explains), and create, read and label concepts (a saved search and
its marks are feedback); ``operate:TOKEN`` (or a bare ``TOKEN``) may also start work: chat actions that write,
``/v1/improve``, cancelling jobs, and delete concepts (their marks are judgments evaluations rest on).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.context import AppContext
from service.api.redact import Redactor
from service.context import Services

_bearer = HTTPBearer(auto_error=False)
_RANK = {"read": 0, "operate": 1}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# Dependencies are coroutines on purpose: they do not block, and FastAPI runs a plain function dependency in
# the thread pool, one hop per dependency and request (measured under 16 concurrent clients in bench_search).


async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_app(request: Request) -> AppContext:
    return services_of(request).app


def redactor_of(request: Request) -> Redactor:
    """What shows server paths to an HTTP caller (relative to their data root), built once per app."""
    redactor: Redactor | None = getattr(request.app.state, "redactor", None)
    if redactor is None:
        config = services_of(request).app.config
        redactor = request.app.state.redactor = Redactor(config.roots, config.home)
    return redactor


async def get_redactor(request: Request) -> Redactor:
    return redactor_of(request)


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's scope; 401 without a bearer token, 403 with one that matches none of the configured ones."""
    pairs = services_of(request).settings.token_scopes
    if not pairs:
        request.state.scope = "operate"  # `serve` refuses to listen beyond loopback without tokens
        return "operate"
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    given = credentials.credentials.encode()
    # Compare against every token so the time taken does not reveal which one nearly matched.
    scope: str | None = None
    for token, token_scope in pairs:
        if hmac.compare_digest(given, token.encode()) and (scope is None or _RANK[token_scope] > _RANK[scope]):
            scope = token_scope
    if scope is None:
        raise HTTPException(403, "invalid token")
    request.state.scope = scope
    return scope


async def require_operate(scope: Annotated[str, Depends(require_token)]) -> None:
    """403 unless the token may start work."""
    if scope != "operate":
        raise HTTPException(403, "this token may only read (search, status, jobs, thumbnails, feedback, chat that "
                                 "searches); starting or stopping work needs an operate token")


App = Annotated[AppContext, Depends(get_app)]
ServicesDep = Annotated[Services, Depends(get_services)]
Scope = Annotated[str, Depends(require_token)]
Redact = Annotated[Redactor, Depends(get_redactor)]
AUTH = [Depends(require_token)]
OPERATE = [Depends(require_operate)]

"""What routes depend on: the process's services, and the bearer-token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.context import AppContext
from service.context import Services

_bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_app(request: Request) -> AppContext:
    return get_services(request).app


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 without a bearer token, 403 with one that matches none of the configured tokens."""
    tokens = get_services(request).settings.tokens
    if not tokens:
        return  # `serve` refuses to listen beyond loopback without tokens
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    given = credentials.credentials.encode()
    # Compare against every token so the time taken does not reveal which one nearly matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given, token.encode())
    if not matched:
        raise HTTPException(403, "invalid token")


App = Annotated[AppContext, Depends(get_app)]
ServicesDep = Annotated[Services, Depends(get_services)]
AUTH = [Depends(require_token)]

"""The HTTP API (FastAPI): search, feedback, status, jobs, thumbnails, chat with the agents, improvement, and the
web app at ``/`` (:mod:`service.api.web`; map tiles, search by upload and the status panel's routes are
``tiles``, ``upload`` and ``inventory``).

``create_app`` assembles the routers (``search``, ``ops``, ``agents``, ``concepts``, ...) over one
:class:`Services` per process, built in the app's lifespan (never at import); the improvement loop of
``SKYSCOUT_IMPROVE_EVERY`` runs inside it on the same services. Every route but ``/healthz`` (``/openapi.json`` and
``/docs`` too) needs a bearer token from ``SKYSCOUT_API_TOKENS`` (compared in constant time): 401 without one, 403
with a wrong one; a ``read:`` token may not start work (:mod:`service.api.deps`). Bodies larger than
``SKYSCOUT_MAX_BODY_BYTES`` get 413 (FastAPI's ``max_body_size``); every error is ``{"error": ...}`` without a
stack trace or server path.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from service.api import agents, concepts, inventory, ops, scenes, search, tiles, upload, web
from service.api.errors import SkyScoutAPI, install_error_handlers
from service.context import Services
from service.settings import Settings, load_settings

if TYPE_CHECKING:
    from service.scheduler import ImprovementLoop

log = logging.getLogger(__name__)


def _warm(services: Services) -> None:
    """Load the active index's model now, so the first search is fast."""
    from app.indexing import open_active_index

    try:
        services.app.load_model(open_active_index(services.app).model)
    except LookupError:
        log.info("no active index yet; searches will answer 409 until one is built")


def create_app(settings: Settings | None = None, *, services: Services | None = None, warm: bool = True) -> FastAPI:
    """Build the API over ``services`` (default: built from ``settings`` in the lifespan)."""
    settings = services.settings if services is not None else settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = services or Services(settings)
        app.state.services = built
        _ = built.app.catalog
        if warm:
            _warm(built)
        loop = _start_loop(built)
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()

    app = SkyScoutAPI(title="SkyScout", version="0.1.0", lifespan=lifespan, max_body_size=settings.max_body_bytes,
                      description="Zero-shot search in satellite imagery, run by agents.", docs_url=None,
                      redoc_url=None, openapi_url=None)  # the description needs a token too: ops.described
    install_error_handlers(app, max_body_bytes=settings.max_body_bytes)
    for router in (ops.public, ops.described, web.router, ops.router, upload.router, search.router, agents.router,
                   tiles.router, scenes.router, inventory.router, concepts.router):
        app.include_router(router)
    app.add_middleware(web.ServerTiming)
    web.mount_web(app)  # the web app at / (after the routes, which match first)
    return app


def _start_loop(services: Services) -> ImprovementLoop | None:
    """The improvement loop inside ``serve`` (``SKYSCOUT_IMPROVE_EVERY``), on the same services."""
    every = services.settings.improve_every
    if not every:
        return None
    from service.scheduler import ImprovementLoop, improvement_tick, parse_interval

    loop = ImprovementLoop(lambda: improvement_tick(services), interval=parse_interval(every),
                           lock_path=services.settings.home / "improve.lock")
    loop.start_in_background()
    return loop


__all__ = ["create_app"]

"""The web app and the API's own pages, served offline from the package.

``/`` is the analyst's app (:file:`service/web`: HTML, CSS, JavaScript modules under ``/js``, Leaflet
under ``/vendor``, served by ``StaticFiles``): the files are public and hold no data; every call the page
makes to ``/v1`` carries the bearer token the user typed once (kept in the tab's ``sessionStorage``).
``/docs`` (with a token) and ``/docs.html`` (public: it asks for the token, or takes the app's) show
Swagger UI from the assets that the ``fastapi-offline`` package ships, so the API's description loads
without a CDN; ``/openapi.json`` still needs a token. Every answer carries a ``Server-Timing`` header with
the server's own time (the page's time-to-first-result measure sets it beside the browser's).
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.deps import AUTH

WEB = Path(__file__).resolve().parents[1] / "web"
#: where Swagger UI's files are served from (public: they are the same for everyone)
SWAGGER_PATH = "/swagger"

router = APIRouter(dependencies=AUTH, include_in_schema=False)
#: the app's own pages, public (GET only: any other method gets 405 with ``Allow: GET``)
pages = APIRouter(include_in_schema=False)
#: the folders served as they are (public); each under its own prefix, so that a path of the API never falls
#: into a static mount (a mount at ``/`` would answer a wrong method on an API path with its own 405)
ASSET_DIRS = ("js", "vendor")


@pages.get("/")
def index_page() -> FileResponse:
    return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})


@pages.get("/app.css")
def stylesheet() -> FileResponse:
    return FileResponse(WEB / "app.css", headers={"Cache-Control": "no-cache"})


@pages.get("/docs.html")
def docs_page() -> FileResponse:
    """Swagger UI's page without a token: it holds no data, and asks for the token it loads the API with."""
    return FileResponse(WEB / "docs.html", headers={"Cache-Control": "no-cache"})


def swagger_assets() -> Path:
    """The folder of Swagger UI's files inside the ``fastapi-offline`` package."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@router.get("/docs")
def docs_route() -> HTMLResponse:
    """Swagger UI over ``/openapi.json``, from local assets (the page asks for the token it calls with)."""
    return HTMLResponse((WEB / "docs.html").read_text())


class ServerTiming:
    """Adds ``Server-Timing: app;dur=<ms>`` (time until the response starts) to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"server-timing", f"app;dur={ms:.1f}".encode())]
            await send(message)

        await self.app(scope, receive, timed)


def mount_web(app: FastAPI) -> None:
    """The app's pages at ``/``, its scripts and vendored files (``/js``, ``/vendor``) and Swagger UI's
    files (``/swagger``), all public and served by ``StaticFiles``."""
    app.include_router(pages)
    for name in ASSET_DIRS:
        app.mount(f"/{name}", StaticFiles(directory=WEB / name), name=f"web-{name}")
    app.mount(SWAGGER_PATH, StaticFiles(directory=swagger_assets()), name="swagger")


__all__ = ["WEB", "ServerTiming", "mount_web", "pages", "router", "swagger_assets"]

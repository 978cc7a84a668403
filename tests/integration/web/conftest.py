"""A real ``skyscout serve`` (uvicorn in a thread) for the web app's browser tests, and Debian's chromium under
Playwright: the bundled sample's 80 val tiles plus a small georeferenced scene (a 1,024 px COG of 16 UC Merced
tiles in UTM, cut into 16 chips), indexed by skyscout-tiny, with approval required before an index rebuild.

The browser is the system's ``/usr/bin/chromium`` (Playwright's own download is never used); the tests are
skipped, with the reason, when it or Playwright is missing. Every request the page makes to another host is
refused and recorded: the app must work offline.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[3]
OUT = PROJECT / "out"
TOKEN = "web-token-0123456789"
CHROMIUM = os.environ.get("SKYSCOUT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def _skip_reason() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"chromium is not installed ({CHROMIUM}); .ci/run installs Debian's chromium"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


@dataclass
class Live:
    url: str
    home: Path
    scene_id: str
    settings: Any
    console_errors: list[str] = field(default_factory=list)
    offsite: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def _scene_tiles() -> list[tuple[Path, str]]:
    root = PROJECT / "data" / "ucm_sample" / "images"
    return [(sorted((root / d.name).glob("*.jpg"))[-1], d.name) for d in sorted(root.iterdir()) if d.is_dir()][:16]


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)

    from app.data import ingest
    from app.indexing import build_index
    from app.scenes import scene_options
    from service.api import create_app
    from service.context import Services
    from service.settings import Settings
    from tests.support.live import serving
    from tests.support.mosaics import build_mosaic
    from tools.ingest import ingest_manifest

    root = tmp_path_factory.mktemp("web")
    (root / "scenes").mkdir()
    build_mosaic(root / "scenes" / "ucm-mosaic.tif", _scene_tiles(), cols=4, kind="cog")
    settings = Settings(home=root / "home", data_roots=f"{PROJECT / 'data'}:{root}", api_tokens=f"read:other,{TOKEN}",
                        policy={"require_approval": True, "approval_actions": ["build_index"]})
    ctx = Services(settings).app
    ingest_manifest(ctx.catalog, PROJECT / "data" / "ucm_sample" / "val.jsonl", allowed_roots=settings.roots,
                    progress=False)
    ingest(ctx, root / "scenes", scenes=scene_options(ctx, overlap=0.0))
    report = build_index(ctx, model="skyscout-tiny", num_workers=0)
    assert report.activated and report.count == ctx.catalog.count_images("ok") == 80 + 16
    scene_id = ctx.catalog.list_scenes()[0].id
    with serving(create_app(settings)) as url:
        yield Live(url=url, home=settings.home, scene_id=scene_id, settings=settings)


@pytest.fixture(scope="package")
def browser(live: Live) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="package")
def page(browser: Any, live: Live) -> Iterator[Any]:
    """One tab for the whole story (the token is asked once and kept for the tab)."""
    OUT.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1500, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(30_000)

    def guard(route: Any) -> None:
        url = route.request.url
        live.urls.append(url)
        if url.startswith(live.url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            live.offsite.append(url)
            route.abort()

    tab.route("**/*", guard)
    tab.on("console", lambda m: live.console_errors.append(f"{m.text} ({m.location.get('url')})")
           if m.type == "error" else None)
    tab.on("pageerror", lambda e: live.console_errors.append(f"page error: {e}"))
    yield tab
    context.close()


def shot(page: Any, name: str) -> Path:
    path = OUT / f"webapp-{name}.png"
    page.screenshot(path=str(path))
    return path

"""A real uvicorn server on 127.0.0.1 over a catalog with the bundled sample indexed by skyscout-tiny."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.api import create_app
from service.settings import Settings
from tests.support.live import serving

PROJECT = Path(__file__).resolve().parents[3]
TOKEN = "test-token-0123456789"


@dataclass
class LiveServer:
    url: str
    settings: Settings

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from app.indexing import build_index
    from service.context import Services
    from tools.ingest import ingest_manifest

    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, data_roots=str(PROJECT / "data"), api_tokens=f"other-token,{TOKEN}",
                        max_body_bytes=4096)
    ctx = Services(settings).app
    ingest_manifest(ctx.catalog, PROJECT / "data" / "ucm_sample" / "val.jsonl", allowed_roots=settings.roots,
                    progress=False)
    build_index(ctx, model="skyscout-tiny", num_workers=0)
    with serving(create_app(settings)) as url:
        yield LiveServer(url=url, settings=settings)

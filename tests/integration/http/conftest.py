"""A real uvicorn server on 127.0.0.1 over a catalog with the bundled sample indexed by skyscout-tiny."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from service.api import create_app
from service.settings import Settings

PROJECT = Path(__file__).resolve().parents[3]
TOKEN = "test-token-0123456789"


@dataclass
class LiveServer:
    url: str
    settings: Settings

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = _free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not srv.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.1)
    yield LiveServer(url=f"http://127.0.0.1:{port}", settings=settings)
    srv.should_exit = True
    thread.join(timeout=30)

"""The ``serve`` command: the HTTP API under uvicorn (with the improvement loop when one is configured)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import threading
from pathlib import Path
from typing import Any

from service.settings import load_settings


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", help="run the HTTP API (FastAPI under uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-warm", action="store_true", help="load models on the first request, not at start-up")
    p.set_defaults(handler=cmd_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.api import create_app

    settings = load_settings()
    if not settings.tokens and not is_loopback(args.host):
        raise PermissionError(
            f"refusing to serve on {args.host} without SKYSCOUT_API_TOKENS: set one or more bearer tokens "
            "(comma-separated), or listen on 127.0.0.1"
        )
    import torch

    torch.set_num_threads(settings.serve_threads)
    config = uvicorn.Config(create_app(settings, warm=not args.no_warm), host=args.host, port=args.port,
                            log_level="info")
    _Server(config, catalog_path=settings.home / "catalog.db").run()
    return 0


def cancel_own_jobs(catalog_path: Path) -> list[str]:
    """Ask the jobs this process runs to stop at their next batch (the server is shutting down)."""
    from tools.catalog import Catalog

    catalog = Catalog(catalog_path)
    cancelled = []
    for job in catalog.list_jobs(state="running", limit=1000):
        if job.owner_pid == os.getpid():
            catalog.request_cancel(job.id)
            cancelled.append(job.id)
    catalog.close()
    return cancelled


class _Server:
    """uvicorn's server, which on SIGTERM / Ctrl-C also asks this process's running jobs (a training a chat
    started) to stop at their next batch, so that shutting down does not wait for them, and they end
    ``cancelled`` (resumable) rather than ``running``."""

    def __init__(self, config: Any, *, catalog_path: Path) -> None:
        import uvicorn

        catalog = catalog_path

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: Any) -> None:
                threading.Thread(target=cancel_own_jobs, args=(catalog,), daemon=True).start()
                super().handle_exit(sig, frame)

        self.server = Server(config)

    def run(self) -> None:
        self.server.run()

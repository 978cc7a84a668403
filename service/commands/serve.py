"""The ``serve`` command: the HTTP API under uvicorn (with the improvement loop when one is configured)."""

from __future__ import annotations

import argparse
import ipaddress

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
    uvicorn.run(create_app(settings, warm=not args.no_warm), host=args.host, port=args.port, log_level="info")
    return 0

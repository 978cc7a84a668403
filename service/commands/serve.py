"""The ``serve`` command: the HTTP API under uvicorn."""

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

    from service.app import create_app

    settings = load_settings()
    if not settings.tokens and not is_loopback(args.host):
        raise PermissionError(
            f"refusing to serve on {args.host} without SKYSCOUT_API_TOKENS: set one or more bearer tokens "
            "(comma-separated), or listen on 127.0.0.1"
        )
    app = create_app(settings, warm=not args.no_warm)
    loop = None
    if settings.improve_every:
        from service.context import AppContext
        from service.scheduler import ImprovementLoop, improvement_tick, parse_interval

        ctx = AppContext(settings=settings)
        loop = ImprovementLoop(lambda: improvement_tick(ctx), interval=parse_interval(settings.improve_every),
                               lock_path=settings.home / "improve.lock")
        loop.start_in_background()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    finally:
        if loop is not None:
            loop.stop()
    return 0

"""Agent routes: ``POST /v1/chat`` (a request through the agent graph, optionally streamed as server-sent
events) and ``POST /v1/improve`` (one improvement tick now)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.sse import EventSourceResponse, ServerSentEvent

from service.api.deps import AUTH, ServicesDep
from service.api.schemas import ERROR_RESPONSES, ChatRequest

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["agents"])


@router.post("/chat")
def chat_route(body: ChatRequest, services: ServicesDep) -> dict[str, Any]:
    """Run a request on a thread (or continue the thread's unfinished one); the whole outcome at the end."""
    return services.runner().run(body.message, thread_id=body.thread_id).to_dict()


@router.post("/chat/stream", response_class=EventSourceResponse)
def chat_stream_route(body: ChatRequest, services: ServicesDep) -> Iterator[ServerSentEvent]:
    """The same run as server-sent events: ``started`` when a step starts, ``progress`` while a long step runs,
    ``step`` per node as it finishes (only what it adds), then ``done`` with the outcome (or ``error``).
    FastAPI adds keep-alive pings."""
    runner = services.runner()
    try:
        for mode, chunk in runner.stream(body.message, thread_id=body.thread_id):
            if mode == "custom":
                kind = "started" if "started" in chunk else "progress"
                yield ServerSentEvent(event=kind, data=chunk.get(kind, chunk))
                continue
            for node, change in chunk.items():
                yield ServerSentEvent(event="step", data={"node": node, "update": change})
        yield ServerSentEvent(event="done", data=runner.outcome(body.thread_id).to_dict())
    except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band, no trace
        log.error("chat stream on thread %s failed", body.thread_id, exc_info=exc)
        yield ServerSentEvent(event="error", data={"error": str(exc) if isinstance(exc, ValueError) else
                                                    "internal error"})


@router.post("/improve")
def improve_route(services: ServicesDep) -> dict[str, Any]:
    """One improvement tick now (watched folders, then a planner round); 409 while another one runs."""
    from service.scheduler import TickBusy, improvement_tick, tick_lock

    try:
        with tick_lock(services.settings.home / "improve.lock"):
            return improvement_tick(services)
    except TickBusy as exc:
        raise HTTPException(409, str(exc)) from None

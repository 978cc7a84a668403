"""Agent routes: ``POST /v1/chat`` (a request through the agent graph, optionally streamed as server-sent
events) and ``POST /v1/improve`` (one improvement tick now, operate tokens only).

A chat runs with the token's scope: a ``read`` token's chat may search, explain and give feedback, and every
step that would write or start work is refused with the reason. A client that goes away before its chat
ends cancels the jobs the chat started (they stop at their next batch and can be resumed). Two requests at
once on one thread: the second gets 409.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterator
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from service.api.deps import AUTH, OPERATE, Redact, Scope, ServicesDep
from service.api.schemas import ERROR_RESPONSES, ChatRequest

log = logging.getLogger(__name__)
T = TypeVar("T")
router = APIRouter(prefix="/v1", dependencies=AUTH, responses=ERROR_RESPONSES, tags=["agents"])
#: how often a running chat checks whether its client is still there
DISCONNECT_POLL_S = 1.0


@router.post("/chat")
async def chat_route(body: ChatRequest, request: Request, services: ServicesDep, scope: Scope,
                     redact: Redact) -> dict[str, Any]:
    """Run a request on a thread (or continue the thread's unfinished one; ``approve`` answers the approval
    it waits for); the whole outcome at the end."""
    runner = services.runner()
    context = services.agents.scoped(scope)  # type: ignore[arg-type]
    run = asyncio.ensure_future(run_in_threadpool(runner.run, body.message, thread_id=body.thread_id,
                                                  approve=body.approve, context=context))
    while not run.done():
        await asyncio.wait({run}, timeout=DISCONNECT_POLL_S)
        if not run.done() and await request.is_disconnected():
            cancelled = await run_in_threadpool(runner.cancel_jobs, body.thread_id)
            log.info("chat client on thread %s went away; cancelled jobs %s", body.thread_id, cancelled)
            break
    outcome = await run
    doc: dict[str, Any] = redact(outcome.to_dict())
    return doc


def in_one_context(events: Iterator[T]) -> Iterator[T]:
    """``events`` advanced always inside one ``contextvars.Context``. The threadpool runs each step of a streamed
    response in a fresh copy of the context, and a run sets context variables (its jobs' origin) that must be
    reset in the context that set them: without this the stream ended in an error instead of ``done``."""
    ctx = contextvars.copy_context()
    end = object()
    try:
        while (item := ctx.run(next, events, end)) is not end:
            yield item  # type: ignore[misc]
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            ctx.run(close)


@router.post("/chat/stream", response_class=EventSourceResponse)
def chat_stream_route(body: ChatRequest, services: ServicesDep, scope: Scope,
                      redact: Redact) -> Iterator[ServerSentEvent]:
    """The same run as server-sent events: ``started`` when a step starts, ``progress`` while a long step runs,
    ``step`` per node as it finishes (only what it adds), then ``done`` with the outcome (or ``error``).
    FastAPI adds keep-alive pings."""
    runner = services.runner()
    finished = False
    try:
        for mode, chunk in in_one_context(runner.stream(
                body.message, thread_id=body.thread_id, approve=body.approve,
                context=services.agents.scoped(scope))):  # type: ignore[arg-type]
            if mode == "custom":
                kind = "started" if "started" in chunk else "progress"
                yield ServerSentEvent(event=kind, data=redact(chunk.get(kind, chunk)))
                continue
            for node, change in chunk.items():
                yield ServerSentEvent(event="step", data=redact({"node": node, "update": change}))
        finished = True
        yield ServerSentEvent(event="done", data=redact(runner.outcome(body.thread_id).to_dict()))
    except Exception as exc:  # noqa: BLE001 - the stream has started: report in-band, no trace
        finished = True
        log.error("chat stream on thread %s failed", body.thread_id, exc_info=exc)
        shown = str(exc) if isinstance(exc, ValueError) or getattr(exc, "for_user", False) else "internal error"
        yield ServerSentEvent(event="error", data={"error": redact(shown)})
    finally:
        if not finished:  # the client went away mid-run: the work it started stops at its next batch
            runner.cancel_jobs(body.thread_id)


@router.post("/improve", dependencies=OPERATE)
def improve_route(services: ServicesDep, redact: Redact) -> dict[str, Any]:
    """One improvement tick now (watched folders, then a planner round); 409 while another one runs."""
    from service.scheduler import TickBusy, improvement_tick, tick_lock

    try:
        with tick_lock(services.settings.home / "improve.lock"):
            doc: dict[str, Any] = redact(improvement_tick(services))
            return doc
    except TickBusy as exc:
        raise HTTPException(409, str(exc)) from None

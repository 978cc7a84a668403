"""Run requests through the agent graph, durably: a SQLite checkpointer, one thread id per conversation.

``AgentRunner.run(request, thread_id=...)`` starts a request, or, when the thread has one that did not
finish (the process died, or it waits for approval), continues it from its last completed step. Each
node's update is written before the next node starts (``durability="sync"``), so a run killed at any
moment loses at most the step it was in, and that step restarts from the work it had committed (jobs
that resume themselves: ingestion, captioning, training checkpoints, indexing). This is the only way any
request runs: ``ask``, ``chat``, ``improve``, the scheduler and the HTTP routes all come here.

    with sqlite_checkpointer(default_checkpoint_path(home)) as saver:
        runner = AgentRunner(agent_context, checkpointer=saver)
        outcome = runner.run("ingest ./tiles, train a model and find beaches", thread_id="t-1")
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command, Overwrite
from pydantic import BaseModel, Field

from agents.context import AgentContext
from graph.builder import build_graph
from prompts.agents import ANSWER_AWAITING
from tools.catalog import origin as job_origin

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "agent_checkpoints.sqlite"
#: supervisor + agent per step: a plan of 100 steps fits
RECURSION_LIMIT = 500
#: what :meth:`AgentRunner.stream` yields: ("updates", {node: update}) or ("custom", {"progress": {...}})
Event = tuple[str, dict[str, Any]]


def default_checkpoint_path(home: Path) -> Path:
    """Where the graph's checkpoints live inside SKYSCOUT_HOME."""
    return Path(home) / CHECKPOINT_FILE


def open_sqlite_checkpointer(path: Path) -> SqliteSaver:
    """A ``SqliteSaver`` on ``path`` (created with its tables if missing), for a process-long runner."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        saver = SqliteSaver(conn)
        saver.setup()
    except BaseException:
        conn.close()
        raise
    return saver


@contextmanager
def sqlite_checkpointer(path: Path) -> Iterator[SqliteSaver]:
    """A ``SqliteSaver`` on ``path`` (created with its tables if missing), closed on exit."""
    saver = open_sqlite_checkpointer(path)
    try:
        yield saver
    finally:
        saver.conn.close()


def new_thread_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class ThreadBusyError(RuntimeError):
    """Another request runs on this thread right now (in this process)."""

    for_user = True

    def __init__(self, thread_id: str) -> None:
        super().__init__(f"thread {thread_id} is running another request right now; wait for it to finish "
                         "(its outcome stays on the thread) or use another thread")
        self.thread_id = thread_id


def job_origin_of(thread_id: str) -> Any:
    """Record ``thread:<id>`` as the origin of the jobs started while the block runs."""
    return job_origin(f"thread:{thread_id}")


class RunOutcome(BaseModel):
    """How a run ended and what it produced (``to_dict`` is the ``--json`` document)."""

    thread_id: str
    status: Literal["done", "awaiting_approval", "failed"]
    resumed: bool = False
    request: str = ""
    answer: str | None = None
    interpretation: dict[str, Any] | None = None
    plan: list[dict[str, Any]] = Field(default_factory=list)
    results: list[dict[str, Any]] = Field(default_factory=list)
    decisions: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    approval: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


_NOTHING = object()


def _plain(update: dict[str, Any]) -> dict[str, Any]:
    """A node's update as its readers see it: a reset list (LangGraph's ``Overwrite``) is the list itself."""
    return {node: {k: v.value if isinstance(v, Overwrite) else v for k, v in change.items()}
            if isinstance(change, dict) else change for node, change in update.items()}


class AgentRunner:
    """The compiled agent graph, its run-time context, and the logic to start, resume and approve runs."""

    def __init__(self, context: AgentContext, *, checkpointer: BaseCheckpointSaver[Any]) -> None:
        self.context = context
        self.graph = build_graph().compile(checkpointer=checkpointer)
        self._running: set[str] = set()  # threads with a run in progress in this process
        self._running_lock = threading.Lock()

    @contextmanager
    def _claim(self, thread_id: str) -> Iterator[None]:
        """Hold ``thread_id`` for one run; a second run on it meanwhile gets :class:`ThreadBusyError`. The
        jobs the run starts record the thread as their origin (see :meth:`cancel_jobs`)."""
        with self._running_lock:
            if thread_id in self._running:
                raise ThreadBusyError(thread_id)
            self._running.add(thread_id)
        try:
            with job_origin_of(thread_id):
                yield
        finally:
            with self._running_lock:
                self._running.discard(thread_id)

    def cancel_jobs(self, thread_id: str) -> list[str]:
        """Ask the running jobs that a run on ``thread_id`` started to stop at their next batch (e.g. its
        client went away); returns their ids."""
        catalog = self.context.app.catalog
        found = [j.id for j in catalog.list_jobs(state="running", limit=1000) if j.origin == f"thread:{thread_id}"]
        for job_id in found:
            catalog.request_cancel(job_id)
        return found

    @staticmethod
    def config(thread_id: str) -> RunnableConfig:
        return RunnableConfig(configurable={"thread_id": thread_id}, recursion_limit=RECURSION_LIMIT)

    def pending(self, thread_id: str) -> dict[str, Any] | None:
        """The unfinished request of a thread (``request``, ``next`` nodes, ``approval``), or None."""
        snap = self.graph.get_state(self.config(thread_id))
        if not snap.next:
            return None
        approval = snap.interrupts[0].value if snap.interrupts else None
        return {"request": snap.values.get("request"), "next": list(snap.next), "approval": approval}

    def _input(self, request: str | None, thread_id: str, approve: bool | None,
               intents: Sequence[dict[str, Any]] | None) -> tuple[Any, bool]:
        pending = self.pending(thread_id)
        if pending is not None:
            if request is not None and request != pending["request"]:
                raise ValueError(
                    f"thread {thread_id} has an unfinished request ({pending['request']!r}); "
                    f"continue it with `skyscout ask --thread {thread_id}` (no request), or use a new thread")
            if pending["approval"] is not None:
                if approve is None:
                    return _NOTHING, True
                return Command(resume={"approved": approve}), True
            return None, True  # None: continue from the last checkpoint
        if approve is not None:
            raise ValueError(f"nothing on thread {thread_id} is waiting for approval")
        if request is None:
            raise ValueError(f"thread {thread_id} has no unfinished request to continue; give a request")
        payload: dict[str, Any] = {"request": request, "thread_id": thread_id}
        if intents is not None:
            payload["intents"] = [dict(i) for i in intents]
        return payload, False

    def stream(self, request: str | None, *, thread_id: str, approve: bool | None = None,
               intents: Sequence[dict[str, Any]] | None = None, context: AgentContext | None = None
               ) -> Iterator[Event]:
        """The run's events as they happen: each node's update, and the progress long steps report."""
        with self._running_lock:
            if thread_id in self._running:
                raise ThreadBusyError(thread_id)
        payload, _ = self._input(request, thread_id, approve, intents)
        return self._claimed_events(payload, thread_id, context)

    def _claimed_events(self, payload: Any, thread_id: str, context: AgentContext | None) -> Iterator[Event]:
        with self._claim(thread_id):
            yield from self._events(payload, thread_id, context)

    def _events(self, payload: Any, thread_id: str, context: AgentContext | None) -> Iterator[Event]:
        if payload is _NOTHING:
            return
        for mode, chunk in self.graph.stream(payload, self.config(thread_id), context=context or self.context,
                                             stream_mode=["updates", "custom"], durability="sync"):
            yield str(mode), _plain(cast(dict[str, Any], chunk)) if mode == "updates" else cast(dict[str, Any], chunk)

    def run(self, request: str | None, *, thread_id: str | None = None, approve: bool | None = None,
            intents: Sequence[dict[str, Any]] | None = None, on_event: Callable[[Event], None] | None = None,
            context: AgentContext | None = None) -> RunOutcome:
        """Start ``request`` on ``thread_id`` (None: a new thread), or continue the thread's unfinished one.

        ``approve`` answers a pending approval (True / False). A run that raises is reported as ``failed``
        with the error; its finished steps stay checkpointed, and running the thread again continues it.
        """
        thread_id = thread_id or new_thread_id()
        with self._claim(thread_id):
            payload, resumed = self._input(request, thread_id, approve, intents)
            error: str | None = None
            try:
                for event in self._events(payload, thread_id, context):
                    if on_event is not None:
                        on_event(event)
            except Exception as exc:  # noqa: BLE001 - reported to the caller; the thread can be continued
                log.exception("run on thread %s failed", thread_id)
                error = f"{type(exc).__name__}: {exc}"
            return self.outcome(thread_id, resumed=resumed, error=error)

    def dry_run(self, request: str, *, intents: Sequence[dict[str, Any]] | None = None) -> RunOutcome:
        """Interpret ``request`` and let the planner propose, on a new thread; nothing runs or is recorded."""
        return self.run(request, thread_id=new_thread_id("dry"), intents=intents, context=self.context.dry())

    def outcome(self, thread_id: str, *, resumed: bool = False, error: str | None = None) -> RunOutcome:
        """The thread's current state as a :class:`RunOutcome`."""
        snap = self.graph.get_state(self.config(thread_id))
        values = dict(snap.values or {})
        fields = {k: values.get(k) or [] for k in ("plan", "results", "decisions", "errors")}
        common = dict(thread_id=thread_id, resumed=resumed, request=values.get("request", ""),
                      interpretation=values.get("interpretation"), **fields)
        if error is not None:
            answer = f"error: {error}; continue with `skyscout ask --thread {thread_id}`"
            return RunOutcome(status="failed", answer=answer, **{**common, "errors": [*fields["errors"], error]})
        if snap.interrupts:
            approval = dict(snap.interrupts[0].value)
            answer = ANSWER_AWAITING.format(action=approval.get("action"), reason=approval.get("reason"),
                                            thread_id=thread_id)
            return RunOutcome(status="awaiting_approval", answer=answer, approval=approval, **common)
        return RunOutcome(status="done", answer=values.get("answer"), **common)


__all__ = ["AgentRunner", "Event", "RunOutcome", "ThreadBusyError", "default_checkpoint_path", "new_thread_id",
           "sqlite_checkpointer"]

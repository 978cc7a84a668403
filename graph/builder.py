"""The agent graph: interpret -> supervisor -> one agent per step -> supervisor ... -> finish.

:func:`build_graph` returns the graph *uncompiled* and without dependencies: the caller compiles it with
the checkpointer it wants (``SqliteSaver`` for durable runs, see :mod:`graph.runner`) and hands each run
an :class:`~agents.context.AgentContext` (LangGraph's ``context_schema``), which nodes read from
``runtime.context``. Every node is one unit of durable work: after it returns, its update is
checkpointed, so a run killed during step N resumes at step N, with steps 1..N-1 neither redone nor
lost. The ``approve`` node interrupts the run (``langgraph.types.interrupt``) for a person's yes or no
before an expensive step, when the policy asks for it. Long steps (training, indexing) report progress
through LangGraph's custom stream (``runtime.stream_writer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, interrupt

from agents.context import AgentContext
from agents.followups import read_followup, remember_search
from agents.planner import Planner
from agents.policy import Decision
from agents.records import Step
from agents.supervisor import Supervisor
from agents.toolkit import progress_to
from agents.workers import WORKERS
from graph.answer import format_answer
from graph.state import AgentState, DecisionRecord, InputState, OutputState

AGENT_NODES = tuple(WORKERS)
NodeName = Literal["data", "caption", "training", "embedding", "query", "planner", "approve", "finish"]
Node = Callable[[AgentState, Runtime[AgentContext]], Any]


def _record(d: Decision) -> DecisionRecord:
    return DecisionRecord(id=d.id, action=d.action, reason=d.reason, actor=d.actor)


def _approved(answer: Any) -> bool:
    """Read a resume value: ``True``/``False``, ``{"approved": bool}``, or a word such as ``yes``."""
    if isinstance(answer, dict):
        answer = answer.get("approved")
    if isinstance(answer, str):
        return answer.strip().lower() in {"y", "yes", "approve", "approved", "ok", "true"}
    return bool(answer)


def _followup(state: AgentState, ctx: AgentContext) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The commands a follow-up asks for on the thread's last search (None: not a follow-up), and why one
    that names no such result cannot run."""
    last = (state.get("memory") or {}).get("last_search")
    try:  # concept requests ("show concept vineyards") are read with or without a last search
        return read_followup(state["request"], last, labels=list(ctx.app.catalog.label_counts()) if last else []), None
    except LookupError as exc:
        return [{"intent": "unknown", "text": state["request"]}], str(exc)


def interpret(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Read the request (a follow-up of the last search, or the given intents) and make the plan; a new
    request starts clean."""
    from agents.plans import interpret as read

    ctx = runtime.context
    intents, message = state.get("intents"), None
    if intents is None:
        intents, message = _followup(state, ctx)
    if intents is None and ctx.llm is None:
        reading = read(state["request"], router=ctx.intent_router(), policy=ctx.policy)
    else:
        reading = read(state["request"], llm=ctx.llm, policy=ctx.policy, intents=intents, message=message)
    return {"interpretation": reading.summary(), "plan": reading.steps, "current": 0,
            "results": Overwrite([]), "decisions": Overwrite([]), "errors": Overwrite([]),
            "pending_approval": None, "answer": None}


def supervisor(state: AgentState, runtime: Runtime[AgentContext]) -> Command[NodeName]:
    """Choose the next node (see :meth:`agents.supervisor.Supervisor.next_turn`)."""
    boss = Supervisor(runtime.context)
    plan, current = state.get("plan", []), state.get("current", 0)
    if runtime.context.dry_run:
        turn = boss.dry_turn(plan, current)
    else:
        turn = boss.next_turn(plan, current, state.get("results", []))
    update = {"plan": turn.plan, "current": turn.current, "results": turn.results,
              "decisions": [_record(d) for d in turn.decisions]}
    return Command(goto=turn.goto or "finish", update=update)


def approve(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Wait for a person's answer (an interrupt), then record it."""
    boss = Supervisor(runtime.context)
    plan, current = state["plan"], state["current"]
    answer = interrupt(boss.approval_request(plan[current]))
    turn = boss.apply_approval(plan, current, _approved(answer))
    return {"plan": turn.plan, "current": turn.current, "results": turn.results,
            "decisions": [_record(d) for d in turn.decisions], "pending_approval": None}


def planner(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Run one of the planner's own steps; an improvement round adds steps after it."""
    plan, current = state["plan"], state["current"]
    _announce(runtime, plan[current])
    outcome = Planner(runtime.context).run(plan[current], state["results"], plan)
    failed = outcome.result["status"] == "failed"
    return {"plan": [*plan[: current + 1], *outcome.new_steps, *plan[current + 1:]], "current": current + 1,
            "results": [outcome.result], "decisions": [_record(d) for d in outcome.decisions],
            "errors": [f"{plan[current]['id']} {plan[current]['action']}: {outcome.result['summary']}"] if failed
            else []}


def _announce(runtime: Runtime[AgentContext], step: Step) -> None:
    """Tell whoever streams the run which step starts now (its result comes in the node's update)."""
    runtime.stream_writer({"started": {"step": step["id"], "agent": step["agent"], "action": step["action"],
                                       "text": step["text"]}})


def worker(name: str) -> Node:
    """The node of one worker agent: run the current step (streaming its progress), record its outcome."""
    agent = WORKERS[name]

    def run_step(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
        step = state["plan"][state["current"]]
        _announce(runtime, step)
        with progress_to(runtime.stream_writer):
            result = agent.run(runtime.context, step, state["results"])
        Supervisor(runtime.context).record_outcome(step, result)
        errors = [f"{step['id']} {step['action']}: {result['summary']}"] if result["status"] == "failed" else []
        return {"results": [result], "current": state["current"] + 1, "errors": errors}

    run_step.__name__ = f"{name}_agent"
    return run_step


def finish(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Write the answer: each step's result and the decisions with their outcomes."""
    decisions = state.get("decisions", [])
    ids = {d["id"] for d in decisions if d["id"] is not None}
    outcomes = {int(d["id"]): str(d["outcome"]) for d in runtime.context.app.catalog.decisions(
        limit=max(50, 4 * len(ids))) if d["id"] in ids and d["outcome"]}
    update: dict[str, Any] = {"answer": format_answer(state["request"], state.get("plan", []),
                                                      state.get("results", []), decisions, outcomes)}
    searched = remember_search(state.get("results", []))
    if searched is not None:
        update["memory"] = {**(state.get("memory") or {}), "last_search": searched}
    return update


def build_graph() -> StateGraph[AgentState, AgentContext, InputState, OutputState]:
    """The SkyScout agent graph, uncompiled; each run takes an :class:`AgentContext`.

    With a chat model in the context the request is interpreted by structured output and each agent is a
    tool-calling agent; without one (the offline default) the intent router interprets requests and each
    agent calls its step's tool directly. The planner's policy and guardrails apply either way.
    """
    graph = StateGraph(AgentState, context_schema=AgentContext, input_schema=InputState, output_schema=OutputState)
    graph.add_node("interpret", interpret)
    graph.add_node("supervisor", supervisor)
    graph.add_node("approve", approve)
    for name in AGENT_NODES:
        graph.add_node(name, worker(name))  # type: ignore[call-overload]  # a closure: mypy cannot see its shape
        graph.add_edge(name, "supervisor")
    graph.add_node("planner", planner)
    graph.add_node("finish", finish)
    graph.add_edge(START, "interpret")
    graph.add_edge("interpret", "supervisor")
    graph.add_edge("approve", "supervisor")
    graph.add_edge("planner", "supervisor")
    graph.add_edge("finish", END)
    return graph


__all__ = ["AGENT_NODES", "build_graph"]

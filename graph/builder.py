"""The agent graph: interpret -> supervisor -> one agent per step -> supervisor ... -> finish.

``build_graph(deps, llm=..., router=...)`` wires the planner and the five worker agents into a LangGraph
``StateGraph`` and returns it *uncompiled*: the caller compiles it with the checkpointer it wants
(``SqliteSaver`` for durable runs, see :mod:`graph.runner`). Every node is one unit of durable work: after
it returns, its update is checkpointed, so a run killed during step N resumes at step N, with steps
1..N-1 neither redone nor lost. The ``approve`` node interrupts the run (``langgraph.types.interrupt``)
for a person's yes or no before an expensive step, when the policy asks for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from agents.deps import AgentDeps, Step, StepResult
from agents.llm import ToolAgent
from agents.planner import Decision, Planner, create_agents, create_planner
from graph.state import AgentState, DecisionRecord, InputState, OutputState
from prompts.agents import (
    ANSWER_DECISION,
    ANSWER_DECISIONS_HEADER,
    ANSWER_HEADER,
    ANSWER_NOTHING,
    ANSWER_STEP,
)

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agents.router import IntentRouter

AGENT_NODES = ("data", "caption", "training", "embedding", "query")
NodeName = Literal["data", "caption", "training", "embedding", "query", "planner", "approve", "finish"]


def _record(d: Decision) -> DecisionRecord:
    return DecisionRecord(id=d.id, action=d.action, reason=d.reason, actor=d.actor)


def _approved(answer: Any) -> bool:
    """Read a resume value: ``True``/``False``, ``{"approved": bool}``, or a word such as ``yes``."""
    if isinstance(answer, dict):
        answer = answer.get("approved")
    if isinstance(answer, str):
        return answer.strip().lower() in {"y", "yes", "approve", "approved", "ok", "true"}
    return bool(answer)


def _short(outcome: str) -> str:
    """``ok``/``failed``/``skipped`` alone (the step line says the rest); other outcomes cut to a line."""
    head, sep, _ = outcome.partition(":")
    if sep and head in ("ok", "failed"):
        return head
    return outcome if len(outcome) <= 100 else outcome[:97] + "..."


def format_answer(
    request: str,
    plan: Sequence[Step],
    results: Sequence[StepResult],
    decisions: Sequence[DecisionRecord],
    outcomes: dict[int, str] | None = None,
) -> str:
    """The reply shown to the user: one line per step, then the decisions taken and how each turned out."""
    outcomes = outcomes or {}
    lines = [ANSWER_HEADER.format(request=request)]
    by_step = {r["step"]: r for r in results}
    n = 0
    for step in plan:
        r = by_step.get(step["id"])
        if r is None:
            continue
        n += 1
        lines.append(
            ANSWER_STEP.format(
                n=n, agent=r["agent"], action=r["action"], status=r["status"], summary=r["summary"]
            )
        )
    if n == 0:
        lines.append(ANSWER_NOTHING)
    if decisions:
        lines.append(ANSWER_DECISIONS_HEADER)
        lines += [
            ANSWER_DECISION.format(
                id=d["id"],
                action=d["action"],
                actor=d["actor"],
                reason=d["reason"],
                outcome=f" -> {_short(outcomes[d['id']])}" if d["id"] in outcomes else "",
            )
            for d in decisions
        ]
    return "\n".join(lines)


class AgentNode:
    """The node of one worker agent: run the current step, record its outcome, move to the next step."""

    def __init__(self, agent: ToolAgent, planner: Planner) -> None:
        self.agent = agent
        self.planner = planner
        self.__name__ = f"{agent.name}_agent"

    def __call__(self, state: AgentState) -> dict[str, Any]:
        step = state["plan"][state["current"]]
        result = self.agent.run(step, state["results"])
        self.planner.record_outcome(step, result)
        errors = list(state.get("errors", []))
        if result["status"] == "failed":
            errors.append(f"{step['id']} {step['action']}: {result['summary']}")
        return {"results": [*state["results"], result], "current": state["current"] + 1, "errors": errors}


def build_graph(
    deps: AgentDeps,
    *,
    llm: BaseChatModel | None = None,
    router: IntentRouter | Callable[[], IntentRouter] | None = None,
) -> StateGraph[AgentState, None, InputState, OutputState]:
    """The SkyScout agent graph over ``deps``, uncompiled.

    ``llm``: a LangChain chat model; with it the request is interpreted by structured output and each
    agent is a tool-calling agent. Without it (the offline default) ``router`` interprets requests (an
    :class:`~agents.router.IntentRouter`, or a callable building one on first use; default: MiniLM) and
    each agent calls its step's tool directly. The planner's policy and guardrails apply either way.
    """
    planner = create_planner(deps=deps, llm=llm, router=router)
    agents = create_agents(deps=deps, llm=llm)

    def interpret_node(state: AgentState) -> dict[str, Any]:
        reading = planner.interpret(state["request"], intents=state.get("intents"))
        return {
            "interpretation": reading.summary(),
            "plan": reading.steps,
            "current": 0,
            "results": [],
            "decisions": [],
            "errors": [],
            "pending_approval": None,
            "answer": None,
        }

    def supervisor_node(state: AgentState) -> Command[NodeName]:
        results = list(state.get("results", []))
        turn = planner.next_turn(state.get("plan", []), state.get("current", 0), results)
        update = {
            "plan": turn.plan,
            "current": turn.current,
            "results": results + turn.results,
            "decisions": [*state.get("decisions", []), *(_record(d) for d in turn.decisions)],
        }
        return Command(goto=turn.goto or "finish", update=update)  # next_turn always names a node

    def approve_node(state: AgentState) -> dict[str, Any]:
        plan, current = state["plan"], state["current"]
        answer = interrupt(planner.approval_request(plan[current]))
        turn = planner.apply_approval(plan, current, _approved(answer))
        return {
            "plan": turn.plan,
            "current": turn.current,
            "results": [*state["results"], *turn.results],
            "decisions": [*state["decisions"], *(_record(d) for d in turn.decisions)],
            "pending_approval": None,
        }


    def planner_node(state: AgentState) -> dict[str, Any]:
        plan, current = state["plan"], state["current"]
        outcome = planner.run(plan[current], state["results"], plan)
        errors = list(state.get("errors", []))
        if outcome.result["status"] == "failed":
            errors.append(f"{plan[current]['id']} {plan[current]['action']}: {outcome.result['summary']}")
        return {
            "plan": [*plan[: current + 1], *outcome.new_steps, *plan[current + 1 :]],
            "current": current + 1,
            "results": [*state["results"], outcome.result],
            "errors": errors,
            "decisions": [*state["decisions"], *(_record(d) for d in outcome.decisions)],
        }

    def finish_node(state: AgentState) -> dict[str, Any]:
        decisions = state.get("decisions", [])
        ids = {d["id"] for d in decisions if d["id"] is not None}
        outcomes = {
            int(d["id"]): str(d["outcome"])
            for d in deps.catalog.decisions(limit=max(50, 4 * len(ids)))
            if d["id"] in ids and d["outcome"]
        }
        return {
            "answer": format_answer(
                state["request"], state.get("plan", []), state.get("results", []), decisions, outcomes
            )
        }

    graph = StateGraph(AgentState, input_schema=InputState, output_schema=OutputState)
    graph.add_node("interpret", interpret_node)
    graph.add_node("supervisor", supervisor_node)
    graph.add_node("approve", approve_node)
    for name in AGENT_NODES:
        graph.add_node(name, AgentNode(agents[name], planner))
        graph.add_edge(name, "supervisor")
    graph.add_node("planner", planner_node)
    graph.add_node("finish", finish_node)
    graph.add_edge(START, "interpret")
    graph.add_edge("interpret", "supervisor")
    graph.add_edge("approve", "supervisor")
    graph.add_edge("planner", "supervisor")
    graph.add_edge("finish", END)
    return graph


__all__ = ["AGENT_NODES", "build_graph", "format_answer"]

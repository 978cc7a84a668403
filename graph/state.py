"""The typed state of the agent graph: a narrow input, the internal fields every node reads, the output.

Everything here is JSON-like (ids, paths, numbers, short texts) so that the SQLite checkpointer stores it
as is; pixels, vectors and model objects never enter the state. Nodes return partial updates. Lists are
replaced whole by the node that changes them (one node runs at a time), so a new request on an old
thread starts from a clean plan.
"""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict

from agents.deps import Step, StepResult


class InputState(TypedDict):
    """What a caller gives: the request and the thread it belongs to.

    ``intents`` (optional) is a ready list of commands (``{"intent": ..., "args": {...}}``) that skips
    interpretation, e.g. ``[{"intent": "improve"}]`` for a scheduled improvement round.
    """

    request: str
    thread_id: NotRequired[str]
    intents: NotRequired[list[dict[str, Any]] | None]


class DecisionRecord(TypedDict):
    """A planner decision as the state shows it (the full record is in the catalog's decision log)."""

    id: int | None
    action: str
    reason: str
    actor: str


class AgentState(InputState):
    """The graph's working state: the plan, where it stands, and what each step gave."""

    interpretation: NotRequired[dict[str, Any]]  # the router's / LLM's reading of the request
    plan: NotRequired[list[Step]]
    current: NotRequired[int]  # index in plan of the next step
    results: NotRequired[list[StepResult]]  # one per finished or skipped step
    decisions: NotRequired[list[DecisionRecord]]
    errors: NotRequired[list[str]]
    pending_approval: NotRequired[dict[str, Any] | None]  # the request shown while waiting for a person
    answer: NotRequired[str | None]


class OutputState(TypedDict):
    """What a run returns."""

    request: str
    thread_id: NotRequired[str]
    interpretation: NotRequired[dict[str, Any]]
    plan: NotRequired[list[Step]]
    results: NotRequired[list[StepResult]]
    decisions: NotRequired[list[DecisionRecord]]
    errors: NotRequired[list[str]]
    answer: NotRequired[str | None]


__all__ = ["AgentState", "DecisionRecord", "InputState", "OutputState"]

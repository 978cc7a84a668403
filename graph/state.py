"""The typed state of the agent graph: a narrow input, the internal fields every node reads, the output.

Everything here is JSON-like (ids, paths, numbers, short texts) so that the SQLite checkpointer stores it
as is; pixels, vectors and model objects never enter the state. Nodes return partial updates: the list
fields ``results``, ``decisions`` and ``errors`` have an ``operator.add`` reducer, so a node returns only
what it adds (and a streamed update carries only the new items). A new request on an old thread starts
from a clean slate: the interpret node resets them with LangGraph's ``Overwrite``.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired

from typing_extensions import TypedDict

from agents.records import Step, StepResult


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


Results = Annotated[list[StepResult], operator.add]
Decisions = Annotated[list[DecisionRecord], operator.add]
Errors = Annotated[list[str], operator.add]


class AgentState(InputState):
    """The graph's working state: the plan, where it stands, and what each step gave."""

    interpretation: NotRequired[dict[str, Any]]  # the router's / LLM's reading of the request
    plan: NotRequired[list[Step]]  # replaced whole: the supervisor and the planner insert steps
    current: NotRequired[int]  # index in plan of the next step
    results: NotRequired[Results]  # one per finished or skipped step
    decisions: NotRequired[Decisions]
    errors: NotRequired[Errors]
    pending_approval: NotRequired[dict[str, Any] | None]  # the request shown while waiting for a person
    answer: NotRequired[str | None]
    memory: NotRequired[dict[str, Any]]  # what the conversation remembers across requests: the last search


class OutputState(TypedDict):
    """What a run returns."""

    request: str
    thread_id: NotRequired[str]
    interpretation: NotRequired[dict[str, Any]]
    plan: NotRequired[list[Step]]
    results: NotRequired[Results]
    decisions: NotRequired[Decisions]
    errors: NotRequired[Errors]
    answer: NotRequired[str | None]


__all__ = ["AgentState", "DecisionRecord", "InputState", "OutputState"]

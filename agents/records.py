"""The records agents exchange: plan steps and their results, and references between steps.

They are plain ``TypedDict``s of ids, paths, numbers and short texts, because they travel in the LangGraph
state and are checkpointed: never pixels, vectors or model objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

AgentName = Literal["data", "caption", "training", "embedding", "query", "planner"]
AGENT_NAMES: tuple[str, ...] = ("data", "caption", "training", "embedding", "query", "planner")
StepStatus = Literal["ok", "failed", "skipped"]


class Step(TypedDict):
    """One unit of work in a plan: which agent, which of its actions (a tool name), with what arguments.

    ``args`` may hold references resolved when the step runs: ``"$candidate"`` (the model version the
    latest training step produced) and ``"$dataset"`` (the dataset version the latest dataset step made).
    ``depends_on`` names the step whose success this one needs; when that step failed or was skipped,
    this one is skipped too.
    """

    id: str
    agent: AgentName
    action: str
    args: dict[str, Any]
    text: str  # the instruction, as the user (or the planner) put it
    origin: Literal["user", "planner"]
    reason: str  # why the step is in the plan
    depends_on: NotRequired[str | None]
    decision_id: NotRequired[int | None]  # the catalog decision that put it there
    approved: NotRequired[bool]  # an expensive step the user approved
    checked: NotRequired[bool]  # the supervisor's pre-step checks already ran
    only_if_stale: NotRequired[bool]  # an index refresh that is skipped when the index is up to date
    error: NotRequired[str]  # a step that cannot run as given (e.g. ingest without a path)


class StepResult(TypedDict):
    """What running (or skipping) one step gave: a status, a one-line summary and the data it produced."""

    step: str  # Step.id
    agent: str
    action: str
    status: StepStatus
    summary: str
    data: dict[str, Any]


def step_result(step: Step, status: StepStatus, summary: str, data: dict[str, Any] | None = None,
                agent: str | None = None) -> StepResult:
    return StepResult(step=step["id"], agent=agent or step["agent"], action=step["action"], status=status,
                      summary=summary, data=data or {})


#: ``$name`` in a step's arguments -> the key of the data an earlier step produced
REFERENCES: dict[str, str] = {"$candidate": "model_version", "$dataset": "dataset_id"}
_REFERENCE_DEFAULTS: dict[str, str] = {"$dataset": "latest"}


def _latest(results: Sequence[StepResult], wanted: str) -> Any:
    return next((r["data"][wanted] for r in reversed(results) if r["status"] == "ok" and r["data"].get(wanted)),
                None)


def resolve_refs(args: Mapping[str, Any], results: Sequence[StepResult]) -> dict[str, Any]:
    """``args`` with ``$candidate`` / ``$dataset`` replaced by what the latest successful step produced."""
    out: dict[str, Any] = {}
    for key, value in args.items():
        if not (isinstance(value, str) and value in REFERENCES):
            out[key] = value
            continue
        found = _latest(results, REFERENCES[value])
        if found is None:
            if value not in _REFERENCE_DEFAULTS:
                raise LookupError(f"no earlier step of this request produced a {REFERENCES[value]} for "
                                  f"{key}={value}")
            found = _REFERENCE_DEFAULTS[value]
        out[key] = found
    return out


__all__ = ["AGENT_NAMES", "AgentName", "REFERENCES", "Step", "StepResult", "StepStatus", "resolve_refs",
           "step_result"]

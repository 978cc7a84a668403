"""The supervisor: what runs next in a plan, and why.

Before each step the supervisor (:meth:`Supervisor.next_turn`) checks that the step it needs succeeded, puts
an index build in front of a search when the active model's index is missing or stale, skips an index
refresh that is not needed, asks for approval before expensive actions when the policy says so, and
records why each step runs (in the catalog's decision log). Approvals are asked through the graph's
``approve`` node (an interrupt).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agents.context import AgentContext
from agents.plans import make_step, next_step_id
from agents.policy import Decision, DecisionAction, PlannerPolicy
from agents.records import Step, StepResult, step_result
from agents.toolkit import READ_TOOLS
from app.indexing import index_state
from prompts.agents import REFUSED_FOR_READ, REFUSED_LIMIT
from prompts.planner import REASONS
from tools.catalog import Catalog

log = logging.getLogger(__name__)

#: the decision recorded when a step of each tool is dispatched
STEP_ACTIONS: dict[str, DecisionAction] = {
    "ingest_images": "ingest", "report_rejects": "report_rejects", "create_dataset_version": "dataset",
    "caption_images": "caption", "train_candidate": "train", "evaluate_model": "evaluate",
    "build_index": "index", "index_status": "index_status", "drop_index": "drop_index",
    "search_images": "search", "explain_hit": "explain_hit", "record_feedback": "feedback",
    "export_results": "export",
    "detect": "detect",
}  # fmt: skip
Goto = Literal["data", "caption", "training", "embedding", "query", "planner", "approve", "finish"]
#: the planner's own steps a caller with the ``read`` scope may ask for
READ_PLANNER_STEPS = frozenset({"status", "explain"})

@dataclass
class Turn:
    """What the supervisor decided before the next step: where to go (None: ask it again), and the
    plan/results it changed."""

    goto: Goto | None
    plan: list[Step]
    current: int
    results: list[StepResult] = field(default_factory=list)  # steps it skipped
    decisions: list[Decision] = field(default_factory=list)  # recorded this turn


class Supervisor:
    """Decides what runs next in a plan, and records each decision (dry runs record nothing)."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.catalog: Catalog = ctx.app.catalog
        self.policy: PlannerPolicy = ctx.policy

    def _record(self, decision: Decision) -> Decision:
        return decision.record(self.catalog)

    def outcome(self, step: Step, outcome: str) -> None:
        """Write what became of a step into the decision that put it in the plan."""
        if step.get("decision_id"):
            self.catalog.set_decision_outcome(int(step["decision_id"] or 0), outcome)

    def record_outcome(self, step: Step, result: StepResult) -> None:
        """Write what a step gave into the outcome of the decision that started it."""
        self.outcome(step, f"{result['status']}: {result['summary'][:500]}")

    def needs_approval(self, step: Step) -> bool:
        return (self.policy.require_approval and step["action"] in self.policy.approval_actions
                and not step.get("approved"))

    def next_turn(self, plan: Sequence[Step], current: int, results: Sequence[StepResult]) -> Turn:
        """Decide what runs next: skip steps whose prerequisite did not succeed, put an index build before
        a search when the index is missing or stale, skip an index refresh that is not needed, ask for
        approval, and record why the step runs."""
        turn = Turn(goto="finish", plan=[dict(s) for s in plan], current=current)  # type: ignore[misc]
        while turn.current < len(turn.plan):
            step = turn.plan[turn.current]
            if self._prerequisite_failed(step, [*results, *turn.results]):
                turn.results.append(step_result(step, "skipped", f"skipped: step {step['depends_on']} did not succeed"))
                self.outcome(step, "skipped")
                turn.current += 1
                continue
            if not step.get("checked"):
                step["checked"] = True
                if self._check(step, turn):
                    continue
            turn.goto = "approve" if self.needs_approval(step) else step["agent"]
            return turn
        return turn

    @staticmethod
    def _prerequisite_failed(step: Step, results: Sequence[StepResult]) -> bool:
        dep = step.get("depends_on")
        if not dep:
            return False
        before = next((r for r in reversed(results) if r["step"] == dep), None)
        return before is None or before["status"] != "ok"

    def refusal(self, step: Step) -> str | None:
        """Why a step may not run for this caller (its scope, the policy's limits), or None."""
        if self.ctx.scope != "operate" and step["action"] not in READ_TOOLS | READ_PLANNER_STEPS:
            return REFUSED_FOR_READ.format(action=step["action"])
        epochs = step["args"].get("epochs") if step["action"] == "train_candidate" else None
        if isinstance(epochs, int) and epochs > self.policy.max_request_epochs:
            return REFUSED_LIMIT.format(what=f"training for {epochs} epochs",
                                        limit=f"at most {self.policy.max_request_epochs} epochs a request")
        return None

    def _check(self, step: Step, turn: Turn) -> bool:
        """The pre-step checks; True when the plan changed at this position (look again)."""
        refused = None if step.get("error") else self.refusal(step)
        if refused is not None:
            turn.results.append(step_result(step, "failed", f"refused: {refused}", {"error": refused,
                                                                                     "refused": True}))
            self.outcome(step, f"refused: {refused}")
            turn.current += 1
            return True
        if step["action"] in ("search_images", "detect") and not step.get("error") and \
                self.ctx.scope == "operate" and self._index_before_search(step, turn):
            return True
        if step["action"] == "build_index" and step.get("only_if_stale") and self._skip_fresh_index(step, turn):
            return True
        if step["agent"] != "planner" and not step.get("decision_id") and not step.get("error"):
            decision = self._record(Decision(
                action=STEP_ACTIONS.get(step["action"], "unknown"), reason=step["reason"],
                evidence={"step": step["id"], "args": step["args"], "text": step["text"]},
                actor="user" if step["origin"] == "user" else "planner"))
            turn.decisions.append(decision)
            step["decision_id"] = decision.id
        return False

    def _index_before_search(self, step: Step, turn: Turn) -> bool:
        state = index_state(self.catalog, self.ctx.app.store_kind())
        if not state["stale"]:
            return False
        why = "; ".join(state["reasons"])
        decision = self._record(Decision(action="reindex", evidence={"index": state},
                                         reason=REASONS["reindex_before_search"].format(why=why)))
        turn.decisions.append(decision)
        turn.plan.insert(turn.current, make_step(
            next_step_id(turn.plan), "embedding", "build_index", {"model": "active"}, step["text"],
            origin="planner", reason=decision.reason, decision_id=decision.id, checked=True))
        return True

    def _skip_fresh_index(self, step: Step, turn: Turn) -> bool:
        state = index_state(self.catalog, self.ctx.app.store_kind())
        if not state["stale"]:
            summary = REASONS["index_up_to_date"].format(index=state["index"])
            turn.results.append(step_result(step, "skipped", summary, {"index": state}))
            self.outcome(step, f"skipped: {summary}")
            turn.current += 1
            return True
        if not step.get("decision_id"):
            why = "; ".join(state["reasons"])
            decision = self._record(Decision(action="reindex", evidence={"index": state},
                                             reason=REASONS["reindex"].format(why=why)))
            turn.decisions.append(decision)
            step["decision_id"] = decision.id
        return False

    def approval_request(self, step: Step) -> dict[str, Any]:
        """The payload shown to the person who approves or declines an expensive step."""
        return {"step": step["id"], "action": step["action"], "args": step["args"], "text": step["text"],
                "reason": REASONS["approval_requested"].format(action=step["action"], reason=step["reason"])}

    def apply_approval(self, plan: Sequence[Step], current: int, approved: bool) -> Turn:
        """Record the answer to an approval request; a declined step is skipped, and so, later, are the steps
        that need it."""
        turn = Turn(goto=None, plan=[dict(s) for s in plan], current=current)  # type: ignore[misc]
        step = turn.plan[current]
        key: DecisionAction = "approved" if approved else "declined"
        decision = self._record(Decision(action=key, actor="user", reason=REASONS[key].format(action=step["action"]),
                                         evidence={"step": step["id"], "args": step["args"]}))
        turn.decisions.append(decision)
        if approved:
            step["approved"] = True
        else:
            self.outcome(step, f"skipped: {decision.action}")
            turn.results.append(step_result(step, "skipped", f"skipped: {decision.reason}"))
            turn.current += 1
        return turn

    def dry_turn(self, plan: Sequence[Step], current: int) -> Turn:
        """A dry run: planner steps run (and only propose); every other step is listed, not run."""
        turn = Turn(goto="finish", plan=[dict(s) for s in plan], current=current)  # type: ignore[misc]
        while turn.current < len(turn.plan):
            step = turn.plan[turn.current]
            if step["agent"] == "planner" and not step.get("error"):
                turn.goto = "planner"
                return turn
            turn.results.append(step_result(step, "skipped", "dry run: not run"))
            turn.current += 1
        return turn


__all__ = ["STEP_ACTIONS", "Goto", "Supervisor", "Turn"]

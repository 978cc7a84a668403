"""The planner's own steps: an improvement round, a promotion, status, and explanations of decisions.

``improve`` reads the signals, takes the policy's decisions (a chat model may narrow them, never widen
them) and adds the steps that carry them out to the plan: caption, retrain (dataset -> train -> evaluate
-> promote), evaluate a waiting candidate, refresh the index. ``promote`` applies the guardrails of
:func:`agents.promotion.check_promotion`. In a dry run, ``improve`` only proposes: nothing is recorded and
no step is added.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.context import AgentContext
from agents.explain import explain_confusion, explain_decisions
from agents.plans import make_step, next_step_id
from agents.policy import (
    Decision,
    PromotionChoice,
    Signals,
    choose_actions,
    decide,
    read_signals,
)
from agents.promotion import check_promotion
from agents.records import Step, StepResult, resolve_refs, step_result
from prompts.planner import PROMOTION_PROMPT, REASONS, STATUS_TEMPLATE
from tools.modelref import active_model_key

log = logging.getLogger(__name__)

@dataclass
class PlannerOutcome:
    """The result of one of the planner's own steps, the decisions it recorded, and the steps it adds."""

    result: StepResult
    decisions: list[Decision] = field(default_factory=list)
    new_steps: list[Step] = field(default_factory=list)


class _RoundSteps:
    """The steps an improvement round adds after its own step, numbered on from the plan."""

    def __init__(self, step: Step, plan: Sequence[Step]) -> None:
        self.step, self.first = step, next_step_id(plan)
        self.steps: list[Step] = []

    def add(self, agent: str, action: str, args: dict[str, Any], decision: Decision | None, **extra: Any) -> str:
        reason = decision.reason if decision else REASONS["index_after_training"]
        self.steps.append(make_step(self.first + len(self.steps), agent, action, args, self.step["text"],
                                    origin="planner", reason=reason,
                                    decision_id=decision.id if decision else None, **extra))
        return self.steps[-1]["id"]


class Planner:
    """Runs the planner's steps with the run's context."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.catalog = ctx.app.catalog
        self.policy = ctx.policy

    def signals(self) -> Signals:
        return read_signals(self.catalog, store_kind=self.ctx.app.store_kind(), policy=self.policy,
                            captioner=self.ctx.app.config.captioner)

    def run(self, step: Step, results: Sequence[StepResult], plan: Sequence[Step]) -> PlannerOutcome:
        """Run a planner step: improve, promote, status, explain (or report a request not understood)."""
        if step.get("error"):
            return PlannerOutcome(step_result(step, "failed", str(step["error"]), {"error": step["error"]}))
        try:
            args = resolve_refs(step["args"], results)
            match step["action"]:
                case "improve":
                    return self.improve(step, plan)
                case "promote":
                    return self.promote(step, str(args["candidate"]))
                case "status":
                    signals = self.signals()
                    return PlannerOutcome(step_result(step, "ok", format_status(signals),
                                                      {"signals": signals.model_dump()}))
                case "explain":
                    return PlannerOutcome(self.explain(step, args))
                case _:
                    return PlannerOutcome(step_result(step, "failed", f"no planner action {step['action']!r}"))
        except LookupError as exc:
            return PlannerOutcome(step_result(step, "skipped", f"skipped: {exc}", {"error": str(exc)}))
        except Exception as exc:  # noqa: BLE001 - one failed step is reported; the plan goes on
            log.exception("planner step %s (%s) failed", step["id"], step["action"])
            return PlannerOutcome(step_result(step, "failed", f"error: {exc}", {"error": str(exc)}))

    def propose(self, signals: Signals) -> list[Decision]:
        """The round's decisions, unrecorded: the policy's (narrowed by the LLM when there is one) and the
        promotion verdicts of the candidates already evaluated."""
        decisions = decide(signals, self.policy, captioner=self.policy.captioner or self.ctx.app.config.captioner)
        options = [d for d in decisions if d.action != "nothing"]
        if self.ctx.llm is not None and options:
            decisions = choose_actions(self.ctx.llm, signals, options)
        verdicts = [check_promotion(self.catalog, c, self.policy) for c in signals.evaluated_candidates]
        return decisions + verdicts

    def improve(self, step: Step, plan: Sequence[Step]) -> PlannerOutcome:
        signals = self.signals()
        proposals = self.propose(signals)
        if self.ctx.dry_run:
            data = {"dry_run": True, "signals": signals.model_dump(), "decisions": [d.model_dump() for d in proposals]}
            summary = "; ".join(f"{d.action}: {d.reason}" for d in proposals)
            return PlannerOutcome(step_result(step, "ok", summary, data))
        decisions: list[Decision] = []
        added = _RoundSteps(step, plan)
        index_after = False
        for proposed in proposals:
            if proposed.action in ("promote", "keep_active"):
                decisions.append(self._apply_promotion(proposed))
                index_after |= decisions[-1].action == "promote"
                continue
            decisions.append(proposed.record(self.catalog))
            index_after = self._add_steps(decisions[-1], added, index_after)
        if index_after:
            added.add("embedding", "build_index", {"model": "active"}, None, only_if_stale=True)
        summary = "; ".join(f"{d.action}: {d.reason}" for d in decisions)
        data = {"signals": signals.model_dump(), "decisions": [d.model_dump() for d in decisions],
                "added_steps": [s["id"] for s in added.steps]}
        return PlannerOutcome(step_result(step, "ok", summary, data), decisions, added.steps)

    def _add_steps(self, decision: Decision, added: _RoundSteps, index_after: bool) -> bool:
        """Add the steps that carry out one decision; returns whether the index needs a refresh after them."""
        split = self.policy.eval_split
        if decision.action == "caption":
            added.add("caption", "caption_images", {"captioner": decision.evidence.get("captioner")}, decision)
        elif decision.action == "evaluate":
            candidate = str(decision.evidence["candidate"])
            mv = self.catalog.get_model_version(candidate) or {}
            scored = added.add("training", "evaluate_model", {
                "model": candidate, "split": split, "dataset": mv.get("dataset_id") or "latest"}, decision)
            added.add("planner", "promote", {"candidate": candidate}, decision, depends_on=scored)
            return True
        elif decision.action == "retrain":
            made = added.add("data", "create_dataset_version", {}, decision)
            trained = added.add("training", "train_candidate", {"model": "active", "dataset": "$dataset"},
                                decision, depends_on=made)
            scored = added.add("training", "evaluate_model", {"model": "$candidate", "dataset": "$dataset",
                                                              "split": split}, decision, depends_on=trained)
            added.add("planner", "promote", {"candidate": "$candidate"}, decision, depends_on=scored)
            return True
        elif decision.action == "reindex":
            added.add("embedding", "build_index", {"model": "active"}, decision, only_if_stale=True)
            return False  # this step comes after the others, and refreshes whatever is then active
        return index_after

    def promote(self, step: Step, candidate: str) -> PlannerOutcome:
        decision = self._apply_promotion(check_promotion(self.catalog, candidate, self.policy))
        data = {"candidate": candidate, "promoted": decision.action == "promote",
                "active": active_model_key(self.catalog), "decision": decision.model_dump()}
        return PlannerOutcome(step_result(step, "ok", f"{decision.action}: {decision.reason}", data), [decision])

    def _llm_verdict(self, verdict: Decision) -> Decision:
        """With an LLM, ``promote`` may become ``keep_active`` (a model may be more careful than the policy,
        never less); ``keep_active`` is never asked about."""
        if verdict.action != "promote" or self.ctx.llm is None:
            return verdict
        choice = self.ctx.llm.with_structured_output(PromotionChoice).invoke(PROMOTION_PROMPT.format(
            reason=verdict.reason, evidence=json.dumps(verdict.evidence, default=str)))
        assert isinstance(choice, PromotionChoice)
        why = REASONS["llm_choice"].format(reason=choice.reason, allowed="promote, keep_active")
        return verdict.model_copy(update={
            "action": "promote" if choice.promote else "keep_active", "reason": f"{why}; policy: {verdict.reason}",
            "evidence": {**verdict.evidence, "chosen_by": "llm", "llm_reason": choice.reason}})

    def _apply_promotion(self, verdict: Decision) -> Decision:
        """Record a promotion verdict and act on it."""
        candidate = str(verdict.evidence["candidate"])
        decision = self._llm_verdict(verdict).record(self.catalog)
        catalog = self.catalog
        if decision.action == "promote":
            catalog.promote_model(candidate)
            catalog.set_decision_outcome(int(decision.id or 0), f"promoted: {candidate} is the active model")
        elif decision.evidence.get("candidate_metrics") and decision.evidence.get("active_metrics"):
            mv = catalog.get_model_version(candidate)
            if mv is not None and mv["status"] == "candidate":  # compared and found wanting
                catalog.set_model_status(candidate, "rejected")
                catalog.set_decision_outcome(int(decision.id or 0), f"{candidate} rejected; the active model stays")
        return decision

    def explain(self, step: Step, args: dict[str, Any]) -> StepResult:
        if args.get("subject") == "confusion":
            summary, data = explain_confusion(self.catalog)
        else:
            summary, data = explain_decisions(self.catalog, args)
        return step_result(step, "ok", summary, data)


def format_status(signals: Signals) -> str:
    """The ``status`` answer."""
    metrics = ""
    if signals.active_metrics:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in signals.active_metrics.items())
        metrics = f" ({shown} on {signals.active_metrics_dataset})"
        if signals.trend is not None:
            metrics += f", trend {signals.trend:+.3f}"
    waiting = signals.unevaluated_candidates + signals.evaluated_candidates
    idx = signals.index
    index = (idx.get("alias") or "none") + (f" (stale: {'; '.join(idx['reasons'])})" if idx.get("stale")
                                            else " (up to date)")
    return STATUS_TEMPLATE.format(
        images=signals.images, rejected=signals.rejected, uncaptioned=signals.uncaptioned,
        new_pairs=signals.new_pairs, active_model=signals.active_model, metrics=metrics,
        candidates=f"candidates waiting: {', '.join(waiting)}" if waiting else "no candidate waiting",
        index=index, negative=signals.negative_feedback, positive=signals.positive_feedback)


__all__ = ["Planner", "PlannerOutcome", "format_status"]

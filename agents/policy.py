"""The planner's policy: the signals it reads, the decisions it takes, and the promotion guardrails.

The improvement round reads :class:`Signals` from the catalog (:func:`read_signals`) and :func:`decide`
captioning, retraining, evaluation and re-indexing from an explicit, configurable :class:`PlannerPolicy`.
:func:`check_promotion` holds the guardrails: never worse on the held-out split, no regression beyond a
margin on the guard set. A chat model may choose *among* the actions the policy allows
(:func:`choose_actions`), never beyond them, and may be more careful than a promotion verdict, never less.
Every decision is a :class:`Decision` (action, reason, evidence) stored in the catalog's decision log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.indexing import index_state
from prompts.planner import CHOOSE_ACTIONS_PROMPT, REASONS
from tools.catalog import Catalog
from tools.modelref import DEFAULT_BASE_MODEL, active_model_key, stored_metrics

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

DecisionAction = Literal[
    "ingest", "dataset", "caption", "train", "retrain", "evaluate", "promote", "keep_active", "index",
    "reindex", "drop_index", "search", "detect", "explain_hit", "feedback", "report_rejects", "index_status",
    "approval_requested", "approved", "declined", "nothing", "unknown",
]  # fmt: skip
#: headline metric names a policy may compare on (see tools.modelops.headline)
HEADLINE_METRICS = ("top1", "top5", "retrieval_mean_recall", "retrieval_class_aware_mean_recall")

# -- policy, decisions, signals ---------------------------------------------------------------------


class PlannerPolicy(BaseModel):
    """The planner's explicit, configurable policy. Thresholds are counts; margins absolute metric units."""

    model_config = ConfigDict(extra="forbid")

    min_uncaptioned_to_caption: int = Field(default=1, ge=1, description="caption once this many images lack one")
    captioner: str | None = Field(default=None, description="captioner of the improvement round (None: the default)")
    min_new_pairs_to_retrain: int = Field(default=100, ge=1, description="captioned images not yet trained on")
    min_negative_feedback: int = Field(default=20, ge=1, description="'not relevant' marks since the last training")
    promotion_margin: float = Field(default=0.0, ge=0, description="a candidate must beat the active model by more")
    guard_regression_margin: float = Field(default=0.02, ge=0, description="largest drop allowed on a guard metric")
    primary_metrics: list[str] = Field(
        default_factory=lambda: ["retrieval_mean_recall", "top1"],
        description="compared in this order: the first both models have decides; all are guarded")
    eval_split: Literal["val", "test"] = "val"
    guard_split: Literal["val", "test"] = "test"
    guard_dataset: str | None = Field(default=None, description="dataset of the guard set (None: the candidate's)")
    require_approval: bool = Field(default=False, description="ask a person before expensive actions (an interrupt)")
    approval_actions: list[str] = Field(default_factory=lambda: ["train_candidate"],
                                        description="the tools that count as expensive")

    @field_validator("primary_metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in HEADLINE_METRICS]
        if unknown or not value:
            raise ValueError(f"unknown metrics {unknown}; choose from {', '.join(HEADLINE_METRICS)}")
        return value


class Decision(BaseModel):
    """One planner decision: what, why, and the evidence it rests on. ``id`` is set once it is recorded."""

    action: DecisionAction
    reason: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    actor: str = "planner"
    outcome: str | None = None
    id: int | None = None

    def record(self, catalog: Catalog) -> Decision:
        """Store the decision in the catalog's log; returns it with its id."""
        self.id = catalog.add_decision(self.action, self.reason, self.evidence, actor=self.actor,
                                       outcome=self.outcome)
        return self


class Signals(BaseModel):
    """What the planner reads from the catalog before deciding."""

    images: int
    rejected: int
    uncaptioned: int
    captioned: int
    new_pairs: int = Field(description="captioned images the last trained model did not see, or recaptioned")
    reference_model: str | None = Field(default=None, description="the last trained model version (any status)")
    reference_dataset: str | None = None
    active_model: str
    active_metrics: dict[str, float] | None = None
    active_metrics_dataset: str | None = None
    metric_history: list[dict[str, Any]] = Field(default_factory=list)
    trend: float | None = Field(default=None, description="change of the primary metric at the last promotion")
    negative_feedback: int = 0
    positive_feedback: int = 0
    unevaluated_candidates: list[str] = Field(default_factory=list)
    evaluated_candidates: list[str] = Field(default_factory=list)
    index: dict[str, Any] = Field(default_factory=dict)


def _captioned_ids(catalog: Catalog, since: float | None = None) -> set[str]:
    sql = ("SELECT DISTINCT c.image_id FROM captions c JOIN images i ON i.id = c.image_id "
           "WHERE i.status = 'ok'")
    params: list[Any] = []
    if since is not None:
        sql += " AND c.created_at > ?"
        params.append(since)
    return {r["image_id"] for r in catalog.query(sql, params)}


def read_signals(catalog: Catalog, *, store_kind: str = "lancedb", policy: PlannerPolicy | None = None
                 ) -> Signals:
    """Read the planner's signals from the catalog (nothing is written).

    New pairs are counted against the last trained model version whatever its status (a rejected
    candidate was trained on them too), so a round never retrains twice on the same data; negative
    feedback counts from that model's creation on.
    """
    policy = policy or PlannerPolicy()
    active = active_model_key(catalog)
    versions = catalog.list_model_versions()
    trained = [v for v in versions if v.get("dataset_id")]
    reference = trained[-1] if trained else None
    captioned = _captioned_ids(catalog)
    new_pairs = len(captioned)
    if reference is not None:
        ds = catalog.get_dataset(reference["dataset_id"])
        known = {r["image_id"] for r in catalog.query(
            "SELECT image_id FROM dataset_items WHERE dataset_id = ?", (reference["dataset_id"],))}
        recaptioned = _captioned_ids(catalog, since=ds["created_at"]) if ds else set()
        new_pairs = len((captioned - known) | (recaptioned & known))
    since = reference["created_at"] if reference else None
    feedback = [f for f in catalog.feedback(unused_only=True) if since is None or f["created_at"] > since]
    # the active model's latest held-out metrics, and the primary metric across promotions on that dataset
    latest = catalog.evaluations(model=active, split=policy.eval_split, limit=1)
    active_dataset = latest[0]["dataset"] if latest else None
    active_metrics = (stored_metrics(catalog, active, active_dataset, policy.eval_split)
                      if active_dataset else None)
    history: list[dict[str, Any]] = []
    if active_dataset:
        promoted = sorted((v for v in versions if v.get("promoted_at")), key=lambda v: v["promoted_at"])
        for key in [DEFAULT_BASE_MODEL, *(v["id"] for v in promoted)]:
            m = stored_metrics(catalog, key, active_dataset, policy.eval_split)
            metric = next((p for p in policy.primary_metrics if m and p in m), None)
            if m and metric:
                history.append({"model": key, "metric": metric, "value": m[metric]})
    unevaluated: list[str] = []
    evaluated: list[str] = []
    for v in versions:
        if v["status"] == "candidate":
            scored = v.get("dataset_id") and stored_metrics(catalog, v["id"], v["dataset_id"],
                                                            policy.eval_split)
            (evaluated if scored else unevaluated).append(v["id"])
    return Signals(
        images=catalog.count_images(status="ok"), rejected=catalog.count_images(status="rejected"),
        uncaptioned=catalog.count_uncaptioned(), captioned=len(captioned), new_pairs=new_pairs,
        reference_model=reference["id"] if reference else None,
        reference_dataset=reference["dataset_id"] if reference else None,
        active_model=active, active_metrics=active_metrics, active_metrics_dataset=active_dataset,
        metric_history=history,
        trend=history[-1]["value"] - history[-2]["value"] if len(history) >= 2 else None,
        negative_feedback=sum(1 for f in feedback if not f["relevant"]),
        positive_feedback=sum(1 for f in feedback if f["relevant"]),
        unevaluated_candidates=unevaluated, evaluated_candidates=evaluated,
        index=index_state(catalog, store_kind),
    )


def decide(signals: Signals, policy: PlannerPolicy, *, captioner: str = "template") -> list[Decision]:
    """The policy's decisions for an improvement round (unrecorded); promotion is :func:`check_promotion`."""
    out: list[Decision] = []
    evidence = signals.model_dump(include={"images", "uncaptioned", "captioned", "new_pairs",
                                           "reference_model", "reference_dataset", "negative_feedback",
                                           "active_model"})
    captioning = signals.uncaptioned >= policy.min_uncaptioned_to_caption
    if captioning:
        out.append(Decision(action="caption", evidence={**evidence, "captioner": captioner}, reason=REASONS[
            "caption"].format(uncaptioned=signals.uncaptioned, threshold=policy.min_uncaptioned_to_caption,
                              captioner=captioner)))
    pairs = signals.new_pairs + (signals.uncaptioned if captioning else 0)
    reasons: list[str] = []
    if pairs >= policy.min_new_pairs_to_retrain:
        reasons.append(REASONS["retrain_pairs"].format(
            new_pairs=pairs, reference=signals.reference_model or "none",
            threshold=policy.min_new_pairs_to_retrain))
    if signals.negative_feedback >= policy.min_negative_feedback:
        reasons.append(REASONS["retrain_feedback"].format(negative=signals.negative_feedback,
                                                          threshold=policy.min_negative_feedback))
    if reasons:
        out.append(Decision(action="retrain", reason="; ".join(reasons), evidence={
            **evidence, "pairs_after_captioning": pairs, "active_metrics": signals.active_metrics,
            "trend": signals.trend}))
    for candidate in signals.unevaluated_candidates:
        out.append(Decision(action="evaluate", evidence={"candidate": candidate}, reason=REASONS[
            "evaluate_candidate"].format(candidate=candidate, split=policy.eval_split)))
    if signals.index.get("stale"):
        why = "; ".join(signals.index.get("reasons", []))
        out.append(Decision(action="reindex", evidence={"index": signals.index},
                            reason=REASONS["reindex"].format(why=why)))
    if not out and not signals.evaluated_candidates:
        out.append(Decision(action="nothing", evidence=signals.model_dump(), reason=REASONS["nothing"].format(
            uncaptioned=signals.uncaptioned, min_uncaptioned=policy.min_uncaptioned_to_caption,
            new_pairs=signals.new_pairs, min_pairs=policy.min_new_pairs_to_retrain,
            negative=signals.negative_feedback, min_negative=policy.min_negative_feedback,
            index=signals.index.get("index"))))
    return out


def _regressions(cand: dict[str, float], act: dict[str, float], metrics: Sequence[str], margin: float
                 ) -> list[str]:
    return [f"{k} {cand[k]:.4f} vs {act[k]:.4f} ({cand[k] - act[k]:+.4f})"
            for k in metrics if k in cand and k in act and cand[k] - act[k] < -margin]


def check_promotion(catalog: Catalog, candidate: str, policy: PlannerPolicy, *, active: str | None = None
                    ) -> Decision:
    """The promotion guardrails, from stored evaluations (nothing is recorded).

    ``promote`` only when the candidate beats the active model on the first primary metric both have, on
    the held-out split of the candidate's dataset, by more than ``promotion_margin``; and no primary
    metric drops by more than ``guard_regression_margin`` on the held-out split nor on the guard set.
    ``keep_active`` with the reason otherwise, including when either model lacks the metrics.
    """
    mv = catalog.get_model_version(candidate)
    if mv is None:
        raise LookupError(f"unknown model version {candidate!r}")
    active = active or active_model_key(catalog)
    dataset, split = mv.get("dataset_id"), policy.eval_split
    evidence: dict[str, Any] = {"candidate": candidate, "active": active, "dataset": dataset, "split": split}

    def keep(reason: str, **more: Any) -> Decision:
        return Decision(action="keep_active", reason=reason, evidence={**evidence, **more})

    if candidate == active or mv["status"] == "active":
        return keep(REASONS["already_active"].format(candidate=candidate))
    cand = stored_metrics(catalog, candidate, dataset, split) if dataset else None
    act = stored_metrics(catalog, active, dataset, split) if dataset else None
    evidence.update(candidate_metrics=cand, active_metrics=act, policy=policy.model_dump())
    if cand is None or act is None:
        what = "" if dataset else " (no dataset version)"
        return keep(REASONS["keep_unevaluated"].format(candidate=candidate, active=active, dataset=dataset,
                                                       split=split, what=what))
    metric = next((m for m in policy.primary_metrics if m in cand and m in act), None)
    if metric is None:
        return keep(REASONS["keep_no_metric"].format(candidate=candidate, active=active, split=split,
                                                     metrics=policy.primary_metrics, dataset=dataset))
    delta = cand[metric] - act[metric]
    fields = dict(candidate=candidate, active=active, split=split, metric=metric, cand=cand[metric],
                  act=act[metric], delta=delta, margin=policy.promotion_margin)
    evidence.update(metric=metric, delta=round(delta, 6))
    if delta < 0:
        return keep(REASONS["keep_worse"].format(**fields))
    if delta <= policy.promotion_margin:
        return keep(REASONS["keep_not_better"].format(**fields))
    margin = policy.guard_regression_margin
    held_out = _regressions(cand, act, policy.primary_metrics, margin)
    if held_out:
        return keep(REASONS["keep_regression"].format(
            candidate=candidate, where=f"the held-out {split} split", margin=margin,
            regressions="; ".join(held_out)), regressions=held_out)
    guard_ds = str(policy.guard_dataset or dataset)
    guard_name = f"{guard_ds}/{policy.guard_split}"
    if (guard_ds, policy.guard_split) == (dataset, split):
        guard_note = REASONS["guard_same"]
    else:
        gc = stored_metrics(catalog, candidate, guard_ds, policy.guard_split)
        ga = stored_metrics(catalog, active, guard_ds, policy.guard_split)
        evidence.update(guard=guard_name, guard_candidate_metrics=gc, guard_active_metrics=ga)
        if gc is None or ga is None:
            if catalog.dataset_split(guard_ds, policy.guard_split):
                return keep(REASONS["keep_unevaluated"].format(
                    candidate=candidate, active=active, dataset=guard_ds, split=policy.guard_split,
                    what=" (the guard set)"))
            guard_note = REASONS["guard_empty"].format(guard=guard_name)
        else:
            regressions = _regressions(gc, ga, policy.primary_metrics, margin)
            if regressions:
                return keep(REASONS["keep_regression"].format(
                    candidate=candidate, where=f"the guard set {guard_name}", margin=margin,
                    regressions="; ".join(regressions)), regressions=regressions)
            guard_note = REASONS["guard_ok"].format(margin=margin, guard=guard_name)
    return Decision(action="promote", reason=REASONS["promote"].format(**fields, guard=guard_note),
                    evidence=evidence)


# -- language model choices (only among what the policy allows) --------------------------------------------


class PlannerChoice(BaseModel):
    """The actions to take this round, chosen among those the policy allows, and why."""

    actions: list[str] = Field(description="a subset of the allowed action names, possibly empty")
    reason: str = Field(description="why, in one or two sentences")


class PromotionChoice(BaseModel):
    """Whether to promote a candidate that passed every guardrail, and why."""

    promote: bool
    reason: str


def choose_actions(llm: BaseChatModel, signals: Signals, options: Sequence[Decision]) -> list[Decision]:
    """Let ``llm`` pick among ``options``; anything it names outside them is ignored (and logged)."""
    allowed = [d.action for d in options]
    prompt = CHOOSE_ACTIONS_PROMPT.format(signals=json.dumps(signals.model_dump(), default=str),
                                          options="\n".join(f"- {d.action}: {d.reason}" for d in options))
    choice = llm.with_structured_output(PlannerChoice).invoke(prompt)
    assert isinstance(choice, PlannerChoice)
    outside = [a for a in choice.actions if a not in allowed]
    if outside:
        log.warning("the language model chose actions the policy does not allow now: %s (ignored)", outside)
    why = REASONS["llm_choice"].format(reason=choice.reason, allowed=", ".join(allowed))
    chosen = [d.model_copy(update={"reason": f"{why}; policy: {d.reason}", "evidence": {
        **d.evidence, "chosen_by": "llm", "llm_reason": choice.reason, "ignored": outside}})
        for d in options if d.action in choice.actions]
    if chosen:
        return chosen
    return [Decision(action="nothing", reason=REASONS["llm_none"].format(reason=choice.reason,
                                                                        allowed=", ".join(allowed)),
                     evidence={"allowed": allowed, "llm_reason": choice.reason, "ignored": outside})]



#: Fine-tuning caps of the agents' training steps, on top of the base model's recipe: the full
#: skyscout-tiny recipe (40 epochs) takes UC Merced zero-shot top-1 from 0.03 to 0.71 in about 6 minutes;
#: a planner round stops at 300 steps (about 4 UCM epochs at batch 16, under a minute) and decides from the
#: evaluation whether another round is worth it.
ROUND_TRAINING: dict[str, Any] = {"epochs": 10, "max_steps": 300, "checkpoint_every": 50, "num_workers": 2,
                                  "log_every": 5}


__all__ = ["HEADLINE_METRICS", "ROUND_TRAINING", "Decision", "DecisionAction", "PlannerChoice", "PlannerPolicy",
           "PromotionChoice", "Signals", "check_promotion", "choose_actions", "decide", "read_signals"]

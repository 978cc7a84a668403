"""The planner's policy: the signals it reads, the decisions it takes, and the promotion guardrails.

The improvement round reads :class:`Signals` from the catalog (:func:`read_signals`) and :func:`decide`
captioning, retraining, evaluation and re-indexing from an explicit, configurable :class:`PlannerPolicy`.
:func:`agents.promotion.check_promotion` holds the guardrails (never worse on the held-out split, a
significant paired difference, no regression beyond a margin on the guard set). A chat model may choose
*among* the actions the policy allows (:func:`choose_actions`), never beyond them, and may be more careful
than a promotion verdict, never less.
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
from tools.modelref import active_model_key, base_model, stored_metrics

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

DecisionAction = Literal[
    "ingest", "dataset", "caption", "train", "retrain", "evaluate", "promote", "keep_active", "index",
    "reindex", "drop_index", "search", "detect", "explain_hit", "feedback", "export", "report_rejects", "index_status",
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
    min_feedback_marks: int = Field(default=20, ge=1, description="marks of either kind on train images since the "
                                    "active model was trained, not used by any model yet")
    judged_margin: float = Field(default=0.02, ge=0, description="largest drop allowed in mean judged average "
                                 "precision on held-back marks (users' judgments)")
    max_request_epochs: int = Field(default=50, ge=1, description="most epochs a request may ask a training for "
                                    "(more: refused, nothing started)")
    max_training_minutes: float = Field(default=30.0, gt=0, description="a training the agents start stops after "
                                        "this long, resumably (ask again to continue)")
    promotion_margin: float = Field(default=0.0, ge=0, description="a candidate must beat the active model by more")
    guard_regression_margin: float = Field(default=0.02, ge=0, description="largest drop allowed on a guard metric")
    primary_metrics: list[str] = Field(
        default_factory=lambda: ["retrieval_mean_recall", "top1"],
        description="compared in this order: the first both models have decides; all are guarded")
    eval_split: Literal["val", "test"] = "val"
    guard_split: Literal["val", "test"] = "test"
    guard_dataset: str | None = Field(default=None, description="dataset of the guard set (None: the candidate's)")
    min_eval_images: int = Field(default=30, ge=1, description="fewest held-out images a promotion may rest on")
    confidence: float = Field(default=0.95, gt=0.5, lt=1,
                              description="a candidate is promoted only when the interval at this level of its paired "
                              "difference to the active model lies above the margin")
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
    captionable: int = Field(default=0, description="uncaptioned images the round's captioner can caption")
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
    feedback_marks: list[int] = Field(default_factory=list, description="the unused marks on train images since the "
                                      "active model was trained: what a retrain now would use")
    held_back_marks: int = Field(default=0, description="marks since then on val/test images: they judge, never train")
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


def _captionable(catalog: Catalog, captioner: str) -> int:
    """Uncaptioned accepted images that ``captioner`` has something to say about (a rule captioner needs a
    label or tags; a model captioner looks at the pixels)."""
    sql = ("SELECT COUNT(*) FROM images i WHERE i.status = 'ok' AND NOT EXISTS "
           "(SELECT 1 FROM captions c WHERE c.image_id = i.id AND c.source != 'feedback')")
    if captioner == "template":
        sql += " AND EXISTS (SELECT 1 FROM labels l WHERE l.image_id = i.id)"
    elif captioner == "tags":
        sql += " AND json_extract(i.metadata, '$.tags') IS NOT NULL AND json_extract(i.metadata, '$.tags') != '{}'"
    return int(catalog.query(sql)[0][0])


def _unused_marks(catalog: Catalog, active: str) -> tuple[list[dict[str, Any]], int]:
    """Marks no model was trained with yet, given since the active model was trained (all of them before any
    training): those on train images (or images not placed yet), and how many are on held-out images."""
    from tools.datasets import held_out_ids

    mv = catalog.get_model_version(active)
    since = mv["created_at"] if mv else None
    fresh = [f for f in catalog.feedback(unused_only=True) if since is None or f["created_at"] > since]
    held = held_out_ids(catalog) if fresh else set()
    return [f for f in fresh if f["image_id"] not in held], sum(f["image_id"] in held for f in fresh)


def read_signals(catalog: Catalog, *, store_kind: str = "lancedb", policy: PlannerPolicy | None = None,
                 captioner: str = "template") -> Signals:
    """Read the planner's signals from the catalog (nothing is written).

    New pairs are counted against the last trained model version whatever its status (a rejected
    candidate was trained on them too), so a round never retrains twice on the same data. Feedback counts
    the marks since the active model was trained that no model has used yet (``used_in``), on images that
    may be trained on: marks on held-out images judge models and never start a retraining.
    """
    policy = policy or PlannerPolicy()
    active = active_model_key(catalog)
    versions = catalog.list_model_versions()
    trained = [v for v in versions if v.get("dataset_id")]
    reference = trained[-1] if trained else None
    captioned = _captioned_ids(catalog)
    new_pairs = len(captioned)
    marks, held_back = _unused_marks(catalog, active)
    if reference is not None:
        ds = catalog.get_dataset(reference["dataset_id"])
        known = {r["image_id"] for r in catalog.query(
            "SELECT image_id FROM dataset_items WHERE dataset_id = ?", (reference["dataset_id"],))}
        recaptioned = _captioned_ids(catalog, since=ds["created_at"]) if ds else set()
        new_pairs = len((captioned - known) | (recaptioned & known))
    # the active model's latest held-out metrics, and the primary metric across promotions on that dataset
    latest = catalog.evaluations(model=active, split=policy.eval_split, limit=1)
    active_dataset = latest[0]["dataset"] if latest else None
    active_metrics = (stored_metrics(catalog, active, active_dataset, policy.eval_split)
                      if active_dataset else None)
    history: list[dict[str, Any]] = []
    if active_dataset:
        promoted = sorted((v for v in versions if v.get("promoted_at")), key=lambda v: v["promoted_at"])
        for key in [base_model(), *(v["id"] for v in promoted)]:
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
        uncaptioned=catalog.count_uncaptioned(), captionable=_captionable(catalog, policy.captioner or captioner),
        captioned=len(captioned), new_pairs=new_pairs,
        reference_model=reference["id"] if reference else None,
        reference_dataset=reference["dataset_id"] if reference else None,
        active_model=active, active_metrics=active_metrics, active_metrics_dataset=active_dataset,
        metric_history=history,
        trend=history[-1]["value"] - history[-2]["value"] if len(history) >= 2 else None,
        negative_feedback=sum(1 for f in marks if not f["relevant"]),
        positive_feedback=sum(1 for f in marks if f["relevant"]),
        feedback_marks=[int(f["id"]) for f in marks], held_back_marks=held_back,
        unevaluated_candidates=unevaluated, evaluated_candidates=evaluated,
        index=index_state(catalog, store_kind),
    )


def _ids(ids: Sequence[int], shown: int = 12) -> str:
    text = ", ".join(f"#{i}" for i in ids[:shown])
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def decide(signals: Signals, policy: PlannerPolicy, *, captioner: str = "template") -> list[Decision]:
    """The policy's decisions for an improvement round (unrecorded); promotion is
    :func:`agents.promotion.check_promotion`."""
    out: list[Decision] = []
    evidence = signals.model_dump(include={"images", "uncaptioned", "captionable", "captioned", "new_pairs",
                                           "reference_model", "reference_dataset", "negative_feedback",
                                           "active_model"})
    captioning = signals.captionable >= policy.min_uncaptioned_to_caption
    if captioning:
        out.append(Decision(action="caption", evidence={**evidence, "captioner": captioner}, reason=REASONS[
            "caption"].format(uncaptioned=signals.captionable, threshold=policy.min_uncaptioned_to_caption,
                              captioner=captioner)))
    pairs = signals.new_pairs + (signals.captionable if captioning else 0)
    reasons: list[str] = []
    if pairs >= policy.min_new_pairs_to_retrain:
        reasons.append(REASONS["retrain_pairs"].format(
            new_pairs=pairs, reference=signals.reference_model or "none",
            threshold=policy.min_new_pairs_to_retrain))
    if signals.negative_feedback >= policy.min_negative_feedback:
        reasons.append(REASONS["retrain_feedback"].format(negative=signals.negative_feedback,
                                                          threshold=policy.min_negative_feedback))
    elif len(signals.feedback_marks) >= policy.min_feedback_marks:
        reasons.append(REASONS["retrain_marks"].format(
            marks=len(signals.feedback_marks), positive=signals.positive_feedback,
            negative=signals.negative_feedback, active=signals.active_model, threshold=policy.min_feedback_marks))
    if reasons and signals.feedback_marks:
        reasons.append(REASONS["retrain_uses_marks"].format(n=len(signals.feedback_marks),
                                                            ids=_ids(signals.feedback_marks)))
    if reasons:
        out.append(Decision(action="retrain", reason="; ".join(reasons), evidence={
            **evidence, "pairs_after_captioning": pairs, "active_metrics": signals.active_metrics,
            "trend": signals.trend, "feedback_marks": signals.feedback_marks,
            "held_back_marks": signals.held_back_marks}))
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
           "PromotionChoice", "Signals", "choose_actions", "decide", "read_signals"]

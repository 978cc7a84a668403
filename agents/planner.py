"""The planner: turns requests into plans, supervises their steps, and decides when to improve the model.

Three parts, all explicit:

- **Interpretation** (:func:`interpret`): the request becomes routed intents (the offline MiniLM router,
  or a chat model's structured output) and then a plan of agent steps (:func:`expand`). "Train a model"
  becomes: dataset version -> fine-tune -> evaluate against the active model -> promotion check ->
  refresh the index if the active model changed.
- **Supervision** (:class:`Planner.next_turn`): before each step, checks that the steps it needs
  succeeded, puts an index build in front of a search when the active model has no complete index, asks
  for approval before expensive actions when the policy says so, and records why each step runs.
- **Policy** (:class:`PlannerPolicy`, :func:`read_signals`, :func:`decide`, :func:`check_promotion`): the
  improvement round reads signals from the catalog and decides captioning, retraining, evaluation,
  promotion and re-indexing. A chat model may choose *among* the actions the policy allows, never beyond
  them; promotion guardrails (never worse on the held-out split, no guard-set regression beyond a margin)
  are code that no model output can override.

Every decision is a :class:`Decision` (action, reason, evidence) stored in the catalog's decision log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.deps import AgentDeps, Step, StepResult
from agents.embedding import index_state
from agents.llm import ToolAgent, resolve_refs
from agents.training import stored_metrics
from prompts.intents import INTENT_DESCRIPTIONS, INTENTS
from prompts.planner import (
    CHOOSE_ACTIONS_PROMPT,
    EXPLAIN_EMPTY,
    EXPLAIN_LINE,
    INTERPRET_SYSTEM_PROMPT,
    PROMOTION_PROMPT,
    REASONS,
    STATUS_TEMPLATE,
)
from tools.catalog import Catalog
from tools.modelops import DEFAULT_BASE_MODEL

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agents.router import IntentRouter

log = logging.getLogger(__name__)

DecisionAction = Literal[
    "ingest",
    "dataset",
    "caption",
    "train",
    "retrain",
    "evaluate",
    "promote",
    "keep_active",
    "index",
    "reindex",
    "drop_index",
    "search",
    "explain_hit",
    "feedback",
    "report_rejects",
    "index_status",
    "approval_requested",
    "approved",
    "declined",
    "nothing",
    "unknown",
]
#: headline metric names a policy may compare on (see tools.modelops.headline)
HEADLINE_METRICS = ("top1", "top5", "retrieval_mean_recall", "retrieval_class_aware_mean_recall")
#: the decision recorded when a step of each tool is dispatched
STEP_ACTIONS: dict[str, DecisionAction] = {
    "ingest_images": "ingest",
    "report_rejects": "report_rejects",
    "create_dataset_version": "dataset",
    "caption_images": "caption",
    "train_candidate": "train",
    "evaluate_model": "evaluate",
    "build_index": "index",
    "index_status": "index_status",
    "drop_index": "drop_index",
    "search_images": "search",
    "explain_hit": "explain_hit",
    "record_feedback": "feedback",
}
Goto = Literal["data", "caption", "training", "embedding", "query", "planner", "approve", "finish"]


# -- policy, decisions, signals ---------------------------------------------------------------------


class PlannerPolicy(BaseModel):
    """The planner's explicit, configurable policy. Thresholds are counts; margins absolute metric units."""

    model_config = ConfigDict(extra="forbid")

    min_uncaptioned_to_caption: int = Field(
        1, ge=1, description="caption once this many images lack captions"
    )
    captioner: str | None = Field(None, description="captioner for the improvement round (None: the default)")
    min_new_pairs_to_retrain: int = Field(100, ge=1, description="captioned images not yet trained on")
    min_negative_feedback: int = Field(20, ge=1, description="'not relevant' marks since the last training")
    promotion_margin: float = Field(0.0, ge=0, description="a candidate must beat the active model by more")
    guard_regression_margin: float = Field(0.02, ge=0, description="largest drop allowed on any guard metric")
    primary_metrics: list[str] = Field(
        default_factory=lambda: ["retrieval_mean_recall", "top1"],
        description="compared in this order; the first both models have decides",
    )
    eval_split: Literal["val", "test"] = "val"
    guard_split: Literal["val", "test"] = "test"
    guard_dataset: str | None = Field(
        None, description="dataset version of the guard set (None: the candidate's)"
    )
    require_approval: bool = Field(False, description="interrupt for approval before expensive actions")
    approval_actions: list[str] = Field(
        default_factory=lambda: ["train_candidate"], description="tools that count as expensive"
    )

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
        self.id = catalog.add_decision(
            self.action, self.reason, self.evidence, actor=self.actor, outcome=self.outcome
        )
        return self


class Signals(BaseModel):
    """What the planner reads from the catalog before deciding."""

    images: int
    rejected: int
    uncaptioned: int
    captioned: int
    new_pairs: int = Field(
        description="captioned images not in the last trained model's dataset, or recaptioned"
    )
    reference_model: str | None = Field(None, description="the last trained model version (any status)")
    reference_dataset: str | None = None
    active_model: str
    active_metrics: dict[str, float] | None = None
    active_metrics_dataset: str | None = None
    metric_history: list[dict[str, Any]] = Field(default_factory=list)
    trend: float | None = Field(None, description="change of the primary metric at the last promotion")
    negative_feedback: int = 0
    positive_feedback: int = 0
    unevaluated_candidates: list[str] = Field(default_factory=list)
    evaluated_candidates: list[str] = Field(default_factory=list)
    index: dict[str, Any] = Field(default_factory=dict)


def _captioned_ids(catalog: Catalog, since: float | None = None) -> set[str]:
    sql = (
        "SELECT DISTINCT c.image_id FROM captions c JOIN images i ON i.id = c.image_id WHERE i.status = 'ok'"
    )
    params: list[Any] = []
    if since is not None:
        sql += " AND c.created_at > ?"
        params.append(since)
    return {r["image_id"] for r in catalog.query(sql, params)}


def _dataset_ids(catalog: Catalog, dataset_id: str) -> set[str]:
    return {
        r["image_id"]
        for r in catalog.query("SELECT image_id FROM dataset_items WHERE dataset_id = ?", (dataset_id,))
    }


def read_signals(
    catalog: Catalog, *, store_kind: str = "lancedb", policy: PlannerPolicy | None = None
) -> Signals:
    """Read the planner's signals from the catalog (nothing is written)."""
    policy = policy or PlannerPolicy()
    active = catalog.get_alias("active_model") or DEFAULT_BASE_MODEL
    versions = catalog.list_model_versions()
    trained = [v for v in versions if v.get("dataset_id")]
    reference = trained[-1] if trained else None
    captioned = _captioned_ids(catalog)
    new_pairs = len(captioned)
    reference_dataset = reference["dataset_id"] if reference else None
    if reference_dataset:
        ds = catalog.get_dataset(reference_dataset)
        known = _dataset_ids(catalog, reference_dataset)
        recaptioned = _captioned_ids(catalog, since=ds["created_at"]) if ds else set()
        new_pairs = len((captioned - known) | (recaptioned & known))
    since = reference["created_at"] if reference else None
    feedback = [f for f in catalog.feedback(unused_only=True) if since is None or f["created_at"] > since]
    # the active model's latest held-out metrics, and the primary metric across promotions on that dataset
    latest = catalog.evaluations(model=active, split=policy.eval_split, limit=1)
    active_dataset = latest[0]["dataset"] if latest else None
    active_metrics = (
        stored_metrics(catalog, active, active_dataset, policy.eval_split) if active_dataset else None
    )
    history: list[dict[str, Any]] = []
    if active_dataset:
        promoted = sorted((v for v in versions if v.get("promoted_at")), key=lambda v: v["promoted_at"])
        for key in [DEFAULT_BASE_MODEL, *(v["id"] for v in promoted)]:
            m = stored_metrics(catalog, key, active_dataset, policy.eval_split)
            metric = next((p for p in policy.primary_metrics if m and p in m), None)
            if m and metric:
                history.append({"model": key, "metric": metric, "value": m[metric]})
    trend = (history[-1]["value"] - history[-2]["value"]) if len(history) >= 2 else None
    unevaluated, evaluated = [], []
    for v in versions:
        if v["status"] != "candidate":
            continue
        scored = v.get("dataset_id") and stored_metrics(catalog, v["id"], v["dataset_id"], policy.eval_split)
        (evaluated if scored else unevaluated).append(v["id"])
    return Signals(
        images=catalog.count_images(status="ok"),
        rejected=catalog.count_images(status="rejected"),
        uncaptioned=catalog.count_uncaptioned(),
        captioned=len(captioned),
        new_pairs=new_pairs,
        reference_model=reference["id"] if reference else None,
        reference_dataset=reference_dataset,
        active_model=active,
        active_metrics=active_metrics,
        active_metrics_dataset=active_dataset,
        metric_history=history,
        trend=trend,
        negative_feedback=sum(1 for f in feedback if not f["relevant"]),
        positive_feedback=sum(1 for f in feedback if f["relevant"]),
        unevaluated_candidates=unevaluated,
        evaluated_candidates=evaluated,
        index=index_state(catalog, store_kind),
    )


def decide(signals: Signals, policy: PlannerPolicy, *, captioner: str = "template") -> list[Decision]:
    """The policy's decisions for an improvement round (unrecorded); promotion is :func:`check_promotion`."""
    out: list[Decision] = []
    evidence = signals.model_dump(
        include={
            "images",
            "uncaptioned",
            "captioned",
            "new_pairs",
            "reference_model",
            "reference_dataset",
            "negative_feedback",
            "active_model",
        }
    )
    captioning = signals.uncaptioned >= policy.min_uncaptioned_to_caption
    if captioning:
        out.append(
            Decision(
                action="caption",
                evidence={**evidence, "captioner": captioner},
                reason=REASONS["caption"].format(
                    uncaptioned=signals.uncaptioned,
                    threshold=policy.min_uncaptioned_to_caption,
                    captioner=captioner,
                ),
            )
        )
    pairs = signals.new_pairs + (signals.uncaptioned if captioning else 0)
    reasons: list[str] = []
    if pairs >= policy.min_new_pairs_to_retrain:
        reasons.append(
            REASONS["retrain_pairs"].format(
                new_pairs=pairs,
                reference=signals.reference_model or "none",
                threshold=policy.min_new_pairs_to_retrain,
            )
        )
    if signals.negative_feedback >= policy.min_negative_feedback:
        reasons.append(
            REASONS["retrain_feedback"].format(
                negative=signals.negative_feedback, threshold=policy.min_negative_feedback
            )
        )
    if reasons:
        out.append(
            Decision(
                action="retrain",
                reason="; ".join(reasons),
                evidence={
                    **evidence,
                    "pairs_after_captioning": pairs,
                    "active_metrics": signals.active_metrics,
                    "trend": signals.trend,
                },
            )
        )
    for candidate in signals.unevaluated_candidates:
        out.append(
            Decision(
                action="evaluate",
                evidence={"candidate": candidate},
                reason=REASONS["evaluate_candidate"].format(
                    candidate=candidate, split=policy.eval_split, dataset="its dataset"
                ),
            )
        )
    if signals.index.get("stale"):
        out.append(
            Decision(
                action="reindex",
                evidence={"index": signals.index},
                reason=REASONS["reindex"].format(why="; ".join(signals.index.get("reasons", []))),
            )
        )
    if not out and not signals.evaluated_candidates:
        out.append(
            Decision(
                action="nothing",
                evidence=signals.model_dump(),
                reason=REASONS["nothing"].format(
                    uncaptioned=signals.uncaptioned,
                    min_uncaptioned=policy.min_uncaptioned_to_caption,
                    new_pairs=signals.new_pairs,
                    min_pairs=policy.min_new_pairs_to_retrain,
                    negative=signals.negative_feedback,
                    min_negative=policy.min_negative_feedback,
                    index=signals.index.get("index"),
                ),
            )
        )
    return out


def _regressions(
    cand: dict[str, float], act: dict[str, float], metrics: Sequence[str], margin: float
) -> list[str]:
    return [
        f"{k} {cand[k]:.4f} vs {act[k]:.4f} ({cand[k] - act[k]:+.4f})"
        for k in metrics
        if k in cand and k in act and cand[k] - act[k] < -margin
    ]


def check_promotion(
    catalog: Catalog, candidate: str, policy: PlannerPolicy, *, active: str | None = None
) -> Decision:
    """The guardrails: ``promote`` only when the candidate beats the active model on the held-out split by
    more than the margin, regresses no other held-out metric nor any guard-set metric beyond the guard
    margin; ``keep_active`` (with the reason) otherwise. Reads stored evaluations; records nothing."""
    mv = catalog.get_model_version(candidate)
    if mv is None:
        raise LookupError(f"unknown model version {candidate!r}")
    active = active or catalog.get_alias("active_model") or DEFAULT_BASE_MODEL
    dataset, split = mv.get("dataset_id"), policy.eval_split
    base = {"candidate": candidate, "active": active, "dataset": dataset, "split": split}
    if candidate == active or mv["status"] == "active":
        return Decision(
            action="keep_active", reason=REASONS["already_active"].format(candidate=candidate), evidence=base
        )
    cand = stored_metrics(catalog, candidate, dataset, split) if dataset else None
    act = stored_metrics(catalog, active, dataset, split) if dataset else None
    evidence = {**base, "candidate_metrics": cand, "active_metrics": act, "policy": policy.model_dump()}
    if cand is None or act is None:
        what = "" if dataset else " (the candidate has no dataset version)"
        return Decision(
            action="keep_active",
            evidence=evidence,
            reason=REASONS["keep_unevaluated"].format(
                candidate=candidate, active=active, dataset=dataset, split=split, what=what
            ),
        )
    metric = next((m for m in policy.primary_metrics if m in cand and m in act), None)
    if metric is None:
        return Decision(
            action="keep_active",
            evidence=evidence,
            reason=REASONS["keep_no_metric"].format(
                candidate=candidate,
                active=active,
                metrics=policy.primary_metrics,
                dataset=dataset,
                split=split,
            ),
        )
    delta = cand[metric] - act[metric]
    fields = dict(
        candidate=candidate,
        active=active,
        split=split,
        metric=metric,
        cand=cand[metric],
        act=act[metric],
        delta=delta,
        margin=policy.promotion_margin,
    )
    evidence.update(metric=metric, delta=round(delta, 6))
    if delta < 0:
        return Decision(
            action="keep_active", reason=REASONS["keep_worse"].format(**fields), evidence=evidence
        )
    if delta <= policy.promotion_margin:
        return Decision(
            action="keep_active", reason=REASONS["keep_not_better"].format(**fields), evidence=evidence
        )
    held_out = _regressions(cand, act, policy.primary_metrics, policy.guard_regression_margin)
    if held_out:
        return Decision(
            action="keep_active",
            evidence={**evidence, "regressions": held_out},
            reason=REASONS["keep_regression"].format(
                candidate=candidate,
                where=f"the held-out {split} split",
                margin=policy.guard_regression_margin,
                regressions="; ".join(held_out),
            ),
        )
    guard_ds = policy.guard_dataset or dataset
    guard_name = f"{guard_ds}/{policy.guard_split}"
    if (guard_ds, policy.guard_split) == (dataset, split):
        guard_note = REASONS["guard_same"]
    else:
        gc = stored_metrics(catalog, candidate, guard_ds, policy.guard_split)
        ga = stored_metrics(catalog, active, guard_ds, policy.guard_split)
        evidence.update(guard=guard_name, guard_candidate_metrics=gc, guard_active_metrics=ga)
        if gc is None or ga is None:
            if catalog.dataset_split(guard_ds, policy.guard_split):
                return Decision(
                    action="keep_active",
                    evidence=evidence,
                    reason=REASONS["keep_unevaluated"].format(
                        candidate=candidate,
                        active=active,
                        dataset=guard_ds,
                        split=policy.guard_split,
                        what=" (the guard set)",
                    ),
                )
            guard_note = REASONS["guard_empty"].format(guard=guard_name)
        else:
            regressions = _regressions(gc, ga, policy.primary_metrics, policy.guard_regression_margin)
            if regressions:
                return Decision(
                    action="keep_active",
                    evidence={**evidence, "regressions": regressions},
                    reason=REASONS["keep_regression"].format(
                        candidate=candidate,
                        where=f"the guard set {guard_name}",
                        margin=policy.guard_regression_margin,
                        regressions="; ".join(regressions),
                    ),
                )
            guard_note = REASONS["guard_ok"].format(margin=policy.guard_regression_margin, guard=guard_name)
    return Decision(
        action="promote", reason=REASONS["promote"].format(**fields, guard=guard_note), evidence=evidence
    )


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
    prompt = CHOOSE_ACTIONS_PROMPT.format(
        signals=json.dumps(signals.model_dump(), default=str),
        options="\n".join(f"- {d.action}: {d.reason}" for d in options),
    )
    choice = llm.with_structured_output(PlannerChoice).invoke(prompt)
    assert isinstance(choice, PlannerChoice)
    outside = [a for a in choice.actions if a not in allowed]
    if outside:
        log.warning("the language model chose actions the policy does not allow now: %s (ignored)", outside)
    chosen = [
        d.model_copy(
            update={
                "reason": REASONS["llm_choice"].format(reason=choice.reason, allowed=", ".join(allowed))
                + f"; policy: {d.reason}",
                "evidence": {
                    **d.evidence,
                    "chosen_by": "llm",
                    "llm_reason": choice.reason,
                    "ignored": outside,
                },
            }
        )
        for d in options
        if d.action in choice.actions
    ]
    if not chosen:
        return [
            Decision(
                action="nothing",
                evidence={"allowed": allowed, "llm_reason": choice.reason, "ignored": outside},
                reason=REASONS["llm_none"].format(reason=choice.reason, allowed=", ".join(allowed)),
            )
        ]
    return chosen


# -- interpretation ---------------------------------------------------------------------------------


class PlannedIntent(BaseModel):
    """One command of a request."""

    intent: Literal[
        "ingest", "caption", "train", "evaluate", "index", "search", "status", "improve", "explain", "unknown"
    ]
    args: dict[str, Any] = Field(default_factory=dict)
    text: str = Field("", description="the words of the request this command comes from")


class RequestPlan(BaseModel):
    """The commands a request asks for, in order, and why."""

    steps: list[PlannedIntent]
    reason: str


class Interpretation(BaseModel):
    """What a request means: the first intent and its arguments, every routed command, and the agent plan."""

    request: str
    intent: str
    args: dict[str, Any] = Field(default_factory=dict)
    plan: list[dict[str, Any]] = Field(default_factory=list)
    understood: bool = True
    confidence: float = 0.0
    message: str | None = None
    reason: str | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The ``--dry-run --json`` document."""
        return self.model_dump(exclude={"request"})


def interpret(
    request: str,
    *,
    router: IntentRouter | None = None,
    llm: BaseChatModel | None = None,
    policy: PlannerPolicy | None = None,
    intents: Sequence[dict[str, Any]] | None = None,
) -> Interpretation:
    """Route ``request`` (the LLM when given, else the router) and expand it into agent steps.

    ``intents`` skips routing: a ready list of ``{"intent", "args", "text"}`` commands (the scheduler's
    improvement round uses ``[{"intent": "improve"}]``).
    """
    policy = policy or PlannerPolicy()
    reason: str | None = None
    message: str | None = None
    if intents is not None:
        routed = [
            {
                "intent": i["intent"],
                "args": dict(i.get("args") or {}),
                "text": i.get("text") or request,
                "confidence": 1.0,
                "understood": i["intent"] != "unknown",
            }
            for i in intents
        ]
        confidence = 1.0
    elif llm is not None:
        described = "\n".join(f"- {name}: {INTENT_DESCRIPTIONS[name]}" for name in INTENTS)
        planned = llm.with_structured_output(RequestPlan).invoke(
            [("system", INTERPRET_SYSTEM_PROMPT.format(intents=described)), ("human", request)]
        )
        assert isinstance(planned, RequestPlan)
        routed = [
            {
                "intent": s.intent,
                "args": s.args,
                "text": s.text or request,
                "confidence": 1.0,
                "understood": s.intent != "unknown",
            }
            for s in planned.steps
        ]
        confidence, reason = 1.0, planned.reason
    else:
        if router is None:
            raise ValueError("interpret() needs a router or a chat model")
        r = router.route(request)
        routed = [s.model_dump() for s in r.plan]
        confidence, message = r.confidence, r.message
    if not routed:
        routed = [{"intent": "unknown", "args": {}, "text": request, "confidence": 0.0, "understood": False}]
    steps = expand(routed, policy=policy, message=message)
    first = routed[0]
    return Interpretation(
        request=request,
        intent=first["intent"],
        args=first.get("args") or {},
        plan=routed,
        understood=all(s.get("understood", True) for s in routed),
        confidence=confidence,
        message=message,
        reason=reason,
        steps=[dict(s) for s in steps],
    )


def _step(
    n: int,
    agent: str,
    action: str,
    args: dict[str, Any],
    text: str,
    *,
    origin: str = "user",
    reason: str | None = None,
    **extra: Any,
) -> Step:
    step: dict[str, Any] = {
        "id": f"s{n}",
        "agent": agent,
        "action": action,
        "args": args,
        "text": text,
        "origin": origin,
        "reason": reason or REASONS["user_request"].format(text=text),
        **extra,
    }
    return step  # type: ignore[return-value]


def _compact(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v not in (None, "", [], {})}


def expand(
    routed: Sequence[dict[str, Any]], *, policy: PlannerPolicy, message: str | None = None, first_id: int = 1
) -> list[Step]:
    """Agent steps for routed commands (see the module docstring for what ``train`` expands to)."""
    steps: list[Step] = []
    n = first_id

    def add(agent: str, action: str, args: dict[str, Any], text: str, **extra: Any) -> str:
        nonlocal n
        steps.append(_step(n, agent, action, _compact(args), text, **extra))
        n += 1
        return steps[-1]["id"]

    for cmd in routed:
        intent, args, text = cmd["intent"], dict(cmd.get("args") or {}), cmd.get("text") or ""
        if intent == "ingest":
            extra = (
                {}
                if args.get("path")
                else {
                    "error": "say which folder or manifest to ingest, e.g. "
                    "'ingest ./data/tiles' or 'ingest ./manifest.jsonl'"
                }
            )
            add(
                "data",
                "ingest_images",
                {"path": args.get("path"), "manifest": args.get("manifest")},
                text,
                **extra,
            )
        elif intent == "caption":
            add("caption", "caption_images", {"captioner": args.get("captioner")}, text)
        elif intent == "train":
            given = str(args.get("dataset") or "")
            dataset = given if given.startswith("ds-") else "$dataset"
            dep = None
            if dataset == "$dataset":
                dep = add(
                    "data",
                    "create_dataset_version",
                    {},
                    text,
                    origin="planner",
                    reason=REASONS["dataset_for_training"],
                )
            train = add(
                "training",
                "train_candidate",
                {"model": args.get("model") or "active", "dataset": dataset, "epochs": args.get("epochs")},
                text,
                depends_on=dep,
            )
            ev = add(
                "training",
                "evaluate_model",
                {"model": "$candidate", "dataset": dataset, "split": policy.eval_split},
                text,
                origin="planner",
                reason=REASONS["evaluate_after_training"].format(split=policy.eval_split),
                depends_on=train,
            )
            add(
                "planner",
                "promote",
                {"candidate": "$candidate"},
                text,
                origin="planner",
                reason=REASONS["promote_after_training"],
                depends_on=ev,
            )
            add(
                "embedding",
                "build_index",
                {"model": "active"},
                text,
                origin="planner",
                reason=REASONS["index_after_training"],
                only_if_stale=True,
            )
        elif intent == "evaluate":
            given = str(args.get("dataset") or "")
            add(
                "training",
                "evaluate_model",
                {
                    "model": args.get("model") or "active",
                    "dataset": given if given.startswith("ds-") else "latest",
                    "split": args.get("split") or policy.eval_split,
                },
                text,
            )
        elif intent == "index":
            add("embedding", "build_index", {"model": args.get("model") or "active"}, text)
        elif intent == "search":
            extra = (
                {}
                if (args.get("query") or args.get("image"))
                else {"error": "say what to look for, e.g. 'find beaches' or 'find images like <path>'"}
            )
            add(
                "query",
                "search_images",
                {
                    "query": args.get("query"),
                    "image": args.get("image"),
                    "negative": args.get("negative"),
                    "k": args.get("k"),
                    "filters": args.get("filters"),
                },
                text,
                **extra,
            )
        elif intent in ("status", "explain", "improve"):
            add("planner", intent, args, text)
        else:
            add("planner", "unknown", {}, text, error=message or f"I did not understand {text!r}")
    return steps


# -- supervision and the planner's own steps -------------------------------------------------------------


@dataclass
class Turn:
    """What the supervisor decided before the next step: where to go, and the plan/results it changed."""

    goto: Goto
    plan: list[Step]
    current: int
    results: list[StepResult] = field(default_factory=list)  # skipped steps
    decisions: list[Decision] = field(default_factory=list)  # recorded this turn


@dataclass
class PlannerOutcome:
    """The result of one of the planner's own steps, the decisions it recorded, and the steps it adds."""

    result: StepResult
    decisions: list[Decision] = field(default_factory=list)
    new_steps: list[Step] = field(default_factory=list)


def _last_result(results: Sequence[StepResult], step_id: str) -> StepResult | None:
    return next((r for r in reversed(results) if r["step"] == step_id), None)


def _next_id(plan: Sequence[Step]) -> int:
    return 1 + max((int(s["id"][1:]) for s in plan if s["id"][1:].isdigit()), default=0)


class Planner:
    """The supervisor and the planner agent, over injected dependencies (see :func:`create_planner`)."""

    def __init__(
        self,
        *,
        deps: AgentDeps,
        llm: BaseChatModel | None = None,
        router: IntentRouter | Callable[[], IntentRouter] | None = None,
    ) -> None:
        self.deps = deps
        self.llm = llm
        self._router = router

    @property
    def policy(self) -> PlannerPolicy:
        return self.deps.policy

    @property
    def router(self) -> IntentRouter:
        """The intent router (built on first use when none was given: it loads MiniLM)."""
        from agents.router import IntentRouter

        if self._router is None:
            from agents.router import default_router

            self._router = default_router()
        elif not isinstance(self._router, IntentRouter):
            self._router = self._router()
        return self._router

    def interpret(self, request: str, intents: Sequence[dict[str, Any]] | None = None) -> Interpretation:
        if intents is None and self.llm is None:
            return interpret(request, router=self.router, policy=self.policy)
        return interpret(request, llm=self.llm, policy=self.policy, intents=intents)

    def _record(self, decision: Decision) -> Decision:
        return decision.record(self.deps.catalog)

    # -- the supervisor ----------------------------------------------------------------------------

    def needs_approval(self, step: Step) -> bool:
        return (
            self.policy.require_approval
            and step["action"] in self.policy.approval_actions
            and not step.get("approved")
        )

    def next_turn(self, plan: Sequence[Step], current: int, results: Sequence[StepResult]) -> Turn:
        """Decide what runs next: skip steps whose prerequisite failed, insert an index build before a
        search that has no index, skip an index refresh that is not needed, ask for approval, and record
        why the step runs."""
        plan = [dict(s) for s in plan]  # type: ignore[misc]
        turn = Turn(goto="finish", plan=plan, current=current)  # type: ignore[arg-type]
        catalog = self.deps.catalog
        while turn.current < len(plan):
            step = plan[turn.current]
            dep = step.get("depends_on")
            if dep:
                before = _last_result([*results, *turn.results], dep)
                if before is None or before["status"] != "ok":
                    turn.results.append(
                        StepResult(
                            step=step["id"],
                            agent=step["agent"],
                            action=step["action"],
                            status="skipped",
                            data={},
                            summary=f"skipped: step {dep} did not succeed",
                        )
                    )
                    if step.get("decision_id"):
                        catalog.set_decision_outcome(int(step["decision_id"]), "skipped")  # type: ignore[arg-type]
                    turn.current += 1
                    continue
            if not step.get("checked"):
                step["checked"] = True
                if step["action"] == "search_images" and not step.get("error"):
                    state = index_state(catalog, self.deps.store_kind)
                    if state["stale"]:
                        why = "; ".join(state["reasons"])
                        decision = self._record(
                            Decision(
                                action="reindex",
                                evidence={"index": state},
                                reason=REASONS["reindex_before_search"].format(why=why),
                            )
                        )
                        turn.decisions.append(decision)
                        plan.insert(
                            turn.current,
                            _step(
                                _next_id(plan),
                                "embedding",
                                "build_index",
                                {"model": "active"},
                                step["text"],
                                origin="planner",
                                reason=decision.reason,
                                decision_id=decision.id,
                                checked=True,
                            ),
                        )
                        continue
                if step["action"] == "build_index" and step.get("only_if_stale"):
                    state = index_state(catalog, self.deps.store_kind)
                    if not state["stale"]:
                        summary = REASONS["index_up_to_date"].format(index=state["index"])
                        turn.results.append(
                            StepResult(
                                step=step["id"],
                                agent=step["agent"],
                                action=step["action"],
                                status="skipped",
                                summary=summary,
                                data={"index": state},
                            )
                        )
                        if step.get("decision_id"):
                            catalog.set_decision_outcome(int(step["decision_id"]), f"skipped: {summary}")  # type: ignore[arg-type]
                        turn.current += 1
                        continue
                    if not step.get("decision_id"):
                        decision = self._record(
                            Decision(
                                action="reindex",
                                evidence={"index": state},
                                reason=REASONS["reindex"].format(why="; ".join(state["reasons"])),
                            )
                        )
                        turn.decisions.append(decision)
                        step["decision_id"] = decision.id
                if step["agent"] != "planner" and not step.get("decision_id") and not step.get("error"):
                    decision = self._record(
                        Decision(
                            action=STEP_ACTIONS.get(step["action"], "unknown"),
                            reason=step["reason"],
                            evidence={"step": step["id"], "args": step["args"], "text": step["text"]},
                            actor="user" if step["origin"] == "user" else "planner",
                        )
                    )
                    turn.decisions.append(decision)
                    step["decision_id"] = decision.id
            if self.needs_approval(step):  # type: ignore[arg-type]
                turn.goto = "approve"
                return turn
            turn.goto = step["agent"]
            return turn
        return turn

    def approval_request(self, step: Step) -> dict[str, Any]:
        """The payload shown to the person who approves or declines an expensive step."""
        return {
            "step": step["id"],
            "action": step["action"],
            "args": step["args"],
            "text": step["text"],
            "reason": REASONS["approval_requested"].format(action=step["action"], reason=step["reason"]),
        }

    def apply_approval(self, plan: Sequence[Step], current: int, approved: bool | None) -> Turn:
        """Record the answer to an approval request; a declined step is skipped (and what needs it, later)."""
        plan = [dict(s) for s in plan]  # type: ignore[misc]
        step = plan[current]
        kind: DecisionAction = "approved" if approved else "declined"
        reason_key = "approved" if approved else ("declined" if approved is False else "no_approver")
        decision = self._record(
            Decision(
                action=kind,
                actor="user",
                reason=REASONS[reason_key].format(action=step["action"]),
                evidence={"step": step["id"], "args": step["args"]},
            )
        )
        turn = Turn(goto="planner", plan=plan, current=current, decisions=[decision])  # type: ignore[arg-type]
        if approved:
            step["approved"] = True
        else:
            if step.get("decision_id"):
                self.deps.catalog.set_decision_outcome(int(step["decision_id"]), f"skipped: {kind}")  # type: ignore[arg-type]
            turn.results.append(
                StepResult(
                    step=step["id"],
                    agent=step["agent"],
                    action=step["action"],
                    status="skipped",
                    summary=f"skipped: {decision.reason}",
                    data={},
                )
            )
            turn.current += 1
        return turn

    def record_outcome(self, step: Step, result: StepResult) -> None:
        """Write what a step gave into the outcome of the decision that started it."""
        if step.get("decision_id"):
            self.deps.catalog.set_decision_outcome(
                int(step["decision_id"]),  # type: ignore[arg-type]
                f"{result['status']}: {result['summary'][:500]}",
            )

    # -- the planner's own steps ---------------------------------------------------------------------

    def run(self, step: Step, results: Sequence[StepResult], plan: Sequence[Step]) -> PlannerOutcome:
        """Run a planner step: improve, promote, status, explain (or report a request not understood)."""

        def result(status: str, summary: str, data: dict[str, Any]) -> StepResult:
            return StepResult(
                step=step["id"],
                agent="planner",
                action=step["action"],
                status=status,  # type: ignore[typeddict-item]
                summary=summary,
                data=data,
            )

        if step.get("error"):
            return PlannerOutcome(result("failed", str(step["error"]), {"error": step["error"]}))
        try:
            args = resolve_refs(step["args"], results)
            match step["action"]:
                case "improve":
                    return self._improve(step, plan, result)
                case "promote":
                    return self._promote(str(args["candidate"]), result)
                case "status":
                    signals = read_signals(
                        self.deps.catalog, store_kind=self.deps.store_kind, policy=self.policy
                    )
                    return PlannerOutcome(
                        result("ok", format_status(signals), {"signals": signals.model_dump()})
                    )
                case "explain":
                    return PlannerOutcome(self._explain(args.get("subject"), result))
                case _:
                    return PlannerOutcome(
                        result("failed", f"the planner has no action {step['action']!r}", {})
                    )
        except LookupError as exc:
            return PlannerOutcome(result("skipped", f"skipped: {exc}", {"error": str(exc)}))
        except Exception as exc:  # noqa: BLE001 - one failed step is reported; the plan goes on
            log.exception("planner step %s (%s) failed", step["id"], step["action"])
            return PlannerOutcome(result("failed", f"error: {exc}", {"error": str(exc)}))

    def propose(self, signals: Signals) -> list[Decision]:
        """The round's decisions (not recorded): the policy's, narrowed by the LLM when there is one, plus
        the promotion verdicts of candidates already evaluated."""
        captioner = self.policy.captioner or self.deps.captioner
        decisions = decide(signals, self.policy, captioner=captioner)
        options = [d for d in decisions if d.action != "nothing"]
        if self.llm is not None and options:
            decisions = choose_actions(self.llm, signals, options)
        verdicts = [check_promotion(self.deps.catalog, c, self.policy) for c in signals.evaluated_candidates]
        return decisions + verdicts

    def _improve(self, step: Step, plan: Sequence[Step], result: Callable[..., StepResult]) -> PlannerOutcome:
        catalog = self.deps.catalog
        signals = read_signals(catalog, store_kind=self.deps.store_kind, policy=self.policy)
        decisions: list[Decision] = []
        n = _next_id(plan)
        new: list[Step] = []

        def add(agent: str, action: str, args: dict[str, Any], decision: Decision, **extra: Any) -> str:
            nonlocal n
            new.append(
                _step(
                    n,
                    agent,
                    action,
                    args,
                    step["text"],
                    origin="planner",
                    reason=decision.reason,
                    decision_id=decision.id,
                    **extra,
                )
            )
            n += 1
            return new[-1]["id"]

        index_needed = False
        for proposed in self.propose(signals):
            if proposed.action in ("promote", "keep_active"):
                decisions.extend(self._apply_promotion(proposed))
                index_needed |= proposed.action == "promote"
                continue
            decision = self._record(proposed)
            decisions.append(decision)
            if decision.action == "caption":
                add("caption", "caption_images", {"captioner": decision.evidence.get("captioner")}, decision)
            elif decision.action == "evaluate":
                candidate = decision.evidence["candidate"]
                ev = add(
                    "training",
                    "evaluate_model",
                    {
                        "model": candidate,
                        "dataset": self._dataset_of(candidate),
                        "split": self.policy.eval_split,
                    },
                    decision,
                )
                add("planner", "promote", {"candidate": candidate}, decision, depends_on=ev)
                index_needed = True
            elif decision.action == "retrain":
                ds = add("data", "create_dataset_version", {}, decision)
                tr = add(
                    "training",
                    "train_candidate",
                    {"model": "active", "dataset": "$dataset"},
                    decision,
                    depends_on=ds,
                )
                ev = add(
                    "training",
                    "evaluate_model",
                    {"model": "$candidate", "dataset": "$dataset", "split": self.policy.eval_split},
                    decision,
                    depends_on=tr,
                )
                add("planner", "promote", {"candidate": "$candidate"}, decision, depends_on=ev)
                index_needed = True
            elif decision.action == "reindex":
                add("embedding", "build_index", {"model": "active"}, decision, only_if_stale=True)
                index_needed = False
        if index_needed:
            new.append(
                _step(
                    n,
                    "embedding",
                    "build_index",
                    {"model": "active"},
                    step["text"],
                    origin="planner",
                    reason=REASONS["index_after_training"],
                    only_if_stale=True,
                )
            )
        summary = "; ".join(f"{d.action}: {d.reason}" for d in decisions)
        data = {
            "signals": signals.model_dump(),
            "decisions": [d.model_dump() for d in decisions],
            "added_steps": [s["id"] for s in new],
        }
        return PlannerOutcome(result("ok", summary, data), decisions, new)

    def _dataset_of(self, candidate: str) -> str:
        mv = self.deps.catalog.get_model_version(candidate)
        return (mv or {}).get("dataset_id") or "latest"

    def _promote(self, candidate: str, result: Callable[..., StepResult]) -> PlannerOutcome:
        verdict = check_promotion(self.deps.catalog, candidate, self.policy)
        decisions = self._apply_promotion(verdict)
        final = decisions[-1]
        promoted = final.action == "promote"
        data = {
            "candidate": candidate,
            "promoted": promoted,
            "active": self.deps.active_model_key(),
            "decision": final.model_dump(),
        }
        return PlannerOutcome(result("ok", f"{final.action}: {final.reason}", data), decisions)

    def _apply_promotion(self, verdict: Decision) -> list[Decision]:
        """Record a promotion verdict and act on it; with an LLM, a verdict of ``promote`` may become
        ``keep_active`` (the model may be more careful than the policy, never less)."""
        candidate = str(verdict.evidence["candidate"])
        if verdict.action == "promote" and self.llm is not None:
            choice = self.llm.with_structured_output(PromotionChoice).invoke(
                PROMOTION_PROMPT.format(
                    reason=verdict.reason, evidence=json.dumps(verdict.evidence, default=str)
                )
            )
            assert isinstance(choice, PromotionChoice)
            reason = REASONS["llm_choice"].format(reason=choice.reason, allowed="promote, keep_active")
            verdict = verdict.model_copy(
                update={
                    "action": "promote" if choice.promote else "keep_active",
                    "reason": f"{reason}; policy: {verdict.reason}",
                    "evidence": {**verdict.evidence, "chosen_by": "llm", "llm_reason": choice.reason},
                }
            )
        decision = self._record(verdict)
        catalog = self.deps.catalog
        mv = catalog.get_model_version(candidate)
        if decision.action == "promote":
            catalog.promote_model(candidate)
            catalog.set_decision_outcome(int(decision.id or 0), f"promoted: {candidate} is the active model")
        elif (
            mv is not None
            and mv["status"] == "candidate"
            and decision.evidence.get("candidate_metrics")
            and decision.evidence.get("active_metrics")
        ):
            catalog.set_model_status(
                candidate, "rejected"
            )  # compared and found wanting: not a candidate any more
            catalog.set_decision_outcome(
                int(decision.id or 0), f"{candidate} rejected; the active model stays"
            )
        return [decision]

    def _explain(self, subject: str | None, result: Callable[..., StepResult]) -> StepResult:
        actions = {
            "train": ("train", "retrain", "evaluate", "promote", "keep_active", "dataset"),
            "index": ("index", "reindex", "drop_index"),
            "caption": ("caption",),
            "promote": ("promote", "keep_active", "evaluate"),
        }.get(subject or "")
        rows = [
            d for d in self.deps.catalog.decisions(limit=200) if actions is None or d["action"] in actions
        ][:10]
        if not rows:
            about = f" about {subject}" if subject else ""
            return result("ok", EXPLAIN_EMPTY.format(about=about), {"decisions": []})
        lines = [
            EXPLAIN_LINE.format(
                id=d["id"],
                action=d["action"],
                reason=d["reason"],
                outcome=f" [{d['outcome']}]" if d["outcome"] else "",
            )
            for d in rows
        ]
        return result("ok", "\n".join(lines), {"decisions": [d["id"] for d in rows]})


def format_status(signals: Signals) -> str:
    """The ``status`` answer."""
    metrics = ""
    if signals.active_metrics:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in signals.active_metrics.items())
        metrics = f" ({shown} on {signals.active_metrics_dataset})"
        if signals.trend is not None:
            metrics += f", trend {signals.trend:+.3f}"
    waiting = signals.unevaluated_candidates + signals.evaluated_candidates
    candidates = f"candidates waiting: {', '.join(waiting)}" if waiting else "no candidate waiting"
    idx = signals.index
    index = f"{idx.get('alias') or 'none'}" + (
        f" (stale: {'; '.join(idx['reasons'])})" if idx.get("stale") else " (up to date)"
    )
    return STATUS_TEMPLATE.format(
        images=signals.images,
        rejected=signals.rejected,
        uncaptioned=signals.uncaptioned,
        new_pairs=signals.new_pairs,
        active_model=signals.active_model,
        metrics=metrics,
        candidates=candidates,
        index=index,
        negative=signals.negative_feedback,
        positive=signals.positive_feedback,
    )


def create_planner(
    *,
    deps: AgentDeps,
    llm: BaseChatModel | None = None,
    router: IntentRouter | Callable[[], IntentRouter] | None = None,
) -> Planner:
    """The planner over ``deps``; ``router`` is an IntentRouter or a callable that builds one on first use."""
    return Planner(deps=deps, llm=llm, router=router)


# -- running a plan without the graph (the scheduler's improvement round) --------------------------------


def create_agents(*, deps: AgentDeps, llm: BaseChatModel | None = None) -> dict[str, ToolAgent]:
    """The five worker agents over ``deps``, by name."""
    from agents.caption import create_caption_agent
    from agents.data import create_data_agent
    from agents.embedding import create_embedding_agent
    from agents.query import create_query_agent
    from agents.training import create_training_agent

    return {
        "data": create_data_agent(deps=deps, llm=llm),
        "caption": create_caption_agent(deps=deps, llm=llm),
        "training": create_training_agent(deps=deps, llm=llm),
        "embedding": create_embedding_agent(deps=deps, llm=llm),
        "query": create_query_agent(deps=deps, llm=llm),
    }


def execute_plan(
    planner: Planner,
    agents: dict[str, ToolAgent],
    plan: Sequence[Step],
    *,
    approve: Callable[[dict[str, Any]], bool] | None = None,
) -> tuple[list[Step], list[StepResult], list[Decision]]:
    """Run a plan in this process, step by step (no checkpoints): what the graph does, minus durability.

    ``approve`` answers approval requests (None: expensive steps that need approval are skipped).
    """
    plan, current = list(plan), 0
    results: list[StepResult] = []
    decisions: list[Decision] = []
    while True:
        turn = planner.next_turn(plan, current, results)
        plan, current = turn.plan, turn.current
        results += turn.results
        decisions += turn.decisions
        if turn.goto == "finish":
            return plan, results, decisions
        step = plan[current]
        if turn.goto == "approve":
            answer = approve(planner.approval_request(step)) if approve else None
            turn = planner.apply_approval(plan, current, answer)
            plan, current = turn.plan, turn.current
            results += turn.results
            decisions += turn.decisions
            continue
        if step["agent"] == "planner":
            outcome = planner.run(step, results, plan)
            results.append(outcome.result)
            decisions += outcome.decisions
            plan = [*plan[: current + 1], *outcome.new_steps, *plan[current + 1 :]]
        else:
            result = agents[step["agent"]].run(step, results)
            planner.record_outcome(step, result)
            results.append(result)
        current += 1


def run_improvement_round(
    deps: AgentDeps,
    *,
    llm: BaseChatModel | None = None,
    dry_run: bool = False,
    approve: Callable[[dict[str, Any]], bool] | None = None,
) -> list[Decision]:
    """One improvement round: read the signals, decide, and (unless ``dry_run``) act and record.

    Returns the decisions in order (with ``dry_run``, unrecorded proposals). Acting means captioning,
    retraining, evaluating, promoting and re-indexing as decided; the outcome of each is written to its
    decision. With ``policy.require_approval``, ``approve(request) -> bool`` is asked before training.
    """
    planner = create_planner(deps=deps, llm=llm)
    if dry_run:
        return planner.propose(read_signals(deps.catalog, store_kind=deps.store_kind, policy=deps.policy))
    plan = expand([{"intent": "improve", "args": {}, "text": "improvement round"}], policy=deps.policy)
    _, _, decisions = execute_plan(planner, create_agents(deps=deps, llm=llm), plan, approve=approve)
    by_id = {d["id"]: d for d in deps.catalog.decisions(limit=max(50, 2 * len(decisions)))}
    return [
        d.model_copy(update={"outcome": by_id.get(d.id, {}).get("outcome", d.outcome)}) for d in decisions
    ]


__all__ = [
    "Decision",
    "Interpretation",
    "Planner",
    "PlannerChoice",
    "PlannerPolicy",
    "PromotionChoice",
    "RequestPlan",
    "Signals",
    "check_promotion",
    "create_agents",
    "create_planner",
    "decide",
    "execute_plan",
    "expand",
    "interpret",
    "read_signals",
    "run_improvement_round",
]

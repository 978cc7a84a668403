"""The planner: turns requests into plans, supervises their steps, and decides when to improve the model.

Three parts, all explicit:

- **Interpretation** (:func:`interpret`): the request becomes routed intents (the offline MiniLM router,
  or a chat model's structured output) and then a plan of agent steps (:func:`expand`). "Train a model"
  becomes: dataset version -> fine-tune -> evaluate against the active model -> promotion check ->
  refresh the index if the active model changed.
- **Supervision** (:meth:`Planner.next_turn`): before each step, checks that the step it needs
  succeeded, puts an index build in front of a search when the active model's index is missing or stale,
  asks for approval before expensive actions when the policy says so, and records why each step runs.
- **Policy** (:class:`PlannerPolicy`, :func:`read_signals`, :func:`decide`, :func:`check_promotion`): the
  improvement round reads signals from the catalog and decides captioning, retraining, evaluation,
  promotion and re-indexing. A chat model may choose *among* the actions the policy allows, never beyond
  them; the promotion guardrails (never worse on the held-out split, no regression beyond a margin on the
  guard set) are code that no model output can override.

Every decision is a :class:`Decision` (action, reason, evidence) stored in the catalog's decision log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.deps import AgentDeps, Step, StepResult, StepStatus
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
    "ingest", "dataset", "caption", "train", "retrain", "evaluate", "promote", "keep_active", "index",
    "reindex", "drop_index", "search", "explain_hit", "feedback", "report_rejects", "index_status",
    "approval_requested", "approved", "declined", "nothing", "unknown",
]  # fmt: skip
#: headline metric names a policy may compare on (see tools.modelops.headline)
HEADLINE_METRICS = ("top1", "top5", "retrieval_mean_recall", "retrieval_class_aware_mean_recall")
#: the decision recorded when a step of each tool is dispatched
STEP_ACTIONS: dict[str, DecisionAction] = {
    "ingest_images": "ingest", "report_rejects": "report_rejects", "create_dataset_version": "dataset",
    "caption_images": "caption", "train_candidate": "train", "evaluate_model": "evaluate",
    "build_index": "index", "index_status": "index_status", "drop_index": "drop_index",
    "search_images": "search", "explain_hit": "explain_hit", "record_feedback": "feedback",
}  # fmt: skip
Goto = Literal["data", "caption", "training", "embedding", "query", "planner", "approve", "finish"]


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
    active = catalog.get_alias("active_model") or DEFAULT_BASE_MODEL
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
            "evaluate_candidate"].format(candidate=candidate, split=policy.eval_split,
                                         dataset="its dataset")))
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
    active = active or catalog.get_alias("active_model") or DEFAULT_BASE_MODEL
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


# -- interpretation ---------------------------------------------------------------------------------


class PlannedIntent(BaseModel):
    """One command of a request."""

    intent: Literal["ingest", "caption", "train", "evaluate", "index", "search", "status", "improve",
                    "explain", "unknown"]
    args: dict[str, Any] = Field(default_factory=dict)
    text: str = Field(default="", description="the words of the request this command comes from")


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


def interpret(request: str, *, router: IntentRouter | None = None, llm: BaseChatModel | None = None,
              policy: PlannerPolicy | None = None, intents: Sequence[dict[str, Any]] | None = None
              ) -> Interpretation:
    """Route ``request`` (the LLM when given, else the router) and expand it into agent steps.

    ``intents`` skips routing: a ready list of ``{"intent", "args", "text"}`` commands (the scheduler's
    improvement round passes ``[{"intent": "improve"}]``).
    """
    policy = policy or PlannerPolicy()
    reason = message = None
    if intents is not None:
        routed = [{"intent": i["intent"], "args": dict(i.get("args") or {}), "text": i.get("text") or request,
                   "confidence": 1.0, "understood": i["intent"] != "unknown"} for i in intents]
        confidence = 1.0
    elif llm is not None:
        described = "\n".join(f"- {name}: {INTENT_DESCRIPTIONS[name]}" for name in INTENTS)
        planned = llm.with_structured_output(RequestPlan).invoke(
            [("system", INTERPRET_SYSTEM_PROMPT.format(intents=described)), ("human", request)])
        assert isinstance(planned, RequestPlan)
        routed = [{"intent": s.intent, "args": s.args, "text": s.text or request, "confidence": 1.0,
                   "understood": s.intent != "unknown"} for s in planned.steps]
        confidence, reason = 1.0, planned.reason
    else:
        if router is None:
            raise ValueError("interpret() needs a router or a chat model")
        routed_request = router.route(request)
        routed = [s.model_dump() for s in routed_request.plan]
        confidence, message = routed_request.confidence, routed_request.message
    if not routed:
        routed = [{"intent": "unknown", "args": {}, "text": request, "confidence": 0.0, "understood": False}]
    first = routed[0]
    return Interpretation(
        request=request, intent=first["intent"], args=first.get("args") or {}, plan=routed,
        understood=all(s.get("understood", True) for s in routed), confidence=confidence, message=message,
        reason=reason, steps=[dict(s) for s in expand(routed, policy=policy, message=message)],
    )


def _step(n: int, agent: str, action: str, args: dict[str, Any], text: str, *, origin: str = "user",
          reason: str | None = None, **extra: Any) -> Step:
    step: dict[str, Any] = {"id": f"s{n}", "agent": agent, "action": action, "args": args, "text": text,
                            "origin": origin, "reason": reason or REASONS["user_request"].format(text=text),
                            **extra}
    return step  # type: ignore[return-value]


def expand(routed: Sequence[dict[str, Any]], *, policy: PlannerPolicy, message: str | None = None,
           first_id: int = 1) -> list[Step]:
    """Agent steps for routed commands (``train`` expands as the module docstring says)."""
    steps: list[Step] = []

    def add(agent: str, action: str, args: dict[str, Any], text: str, **extra: Any) -> str:
        args = {k: v for k, v in args.items() if v not in (None, "", [], {})}
        steps.append(_step(first_id + len(steps), agent, action, args, text, **extra))
        return steps[-1]["id"]

    for cmd in routed:
        intent, args, text = cmd["intent"], dict(cmd.get("args") or {}), cmd.get("text") or ""
        given = str(args.get("dataset") or "")
        if intent == "ingest":
            missing = {} if args.get("path") else {
                "error": "say which folder or manifest to ingest, e.g. 'ingest ./data/tiles' or "
                         "'ingest ./manifest.jsonl'"}
            add("data", "ingest_images", {"path": args.get("path"), "manifest": args.get("manifest")}, text,
                **missing)
        elif intent == "caption":
            add("caption", "caption_images", {"captioner": args.get("captioner")}, text)
        elif intent == "train":
            dataset = given if given.startswith("ds-") else "$dataset"
            made = None if given.startswith("ds-") else add(
                "data", "create_dataset_version", {}, text, origin="planner",
                reason=REASONS["dataset_for_training"])
            train = add("training", "train_candidate", {"model": args.get("model") or "active",
                                                        "dataset": dataset, "epochs": args.get("epochs")},
                        text, depends_on=made)
            scored = add("training", "evaluate_model", {"model": "$candidate", "dataset": dataset,
                                                        "split": policy.eval_split}, text, origin="planner",
                         reason=REASONS["evaluate_after_training"].format(split=policy.eval_split),
                         depends_on=train)
            promote = add("planner", "promote", {"candidate": "$candidate"}, text, origin="planner",
                          reason=REASONS["promote_after_training"], depends_on=scored)
            add("embedding", "build_index", {"model": "active"}, text, origin="planner",
                reason=REASONS["index_after_training"], only_if_stale=True, depends_on=promote)
        elif intent == "evaluate":
            add("training", "evaluate_model", {"model": args.get("model") or "active",
                                               "dataset": given if given.startswith("ds-") else "latest",
                                               "split": args.get("split") or policy.eval_split}, text)
        elif intent == "index":
            add("embedding", "build_index", {"model": args.get("model") or "active"}, text)
        elif intent == "search":
            missing = {} if (args.get("query") or args.get("image")) else {
                "error": "say what to look for, e.g. 'find beaches' or 'find images like ./tile.png'"}
            slots = ("query", "image", "negative", "k", "filters")
            add("query", "search_images", {key: args.get(key) for key in slots}, text, **missing)
        elif intent in ("status", "explain", "improve"):
            add("planner", intent, args, text)
        else:
            add("planner", "unknown", {}, text, error=message or f"I did not understand {text!r}")
    return steps


# -- supervision and the planner's own steps -------------------------------------------------------------


@dataclass
class Turn:
    """What the supervisor decided before the next step: where to go (None: ask it again), and the
    plan/results it changed."""

    goto: Goto | None
    plan: list[Step]
    current: int
    results: list[StepResult] = field(default_factory=list)  # steps it skipped
    decisions: list[Decision] = field(default_factory=list)  # recorded this turn


@dataclass
class PlannerOutcome:
    """The result of one of the planner's own steps, the decisions it recorded, and the steps it adds."""

    result: StepResult
    decisions: list[Decision] = field(default_factory=list)
    new_steps: list[Step] = field(default_factory=list)


def _skipped(step: Step, summary: str, data: dict[str, Any] | None = None) -> StepResult:
    return StepResult(step=step["id"], agent=step["agent"], action=step["action"], status="skipped",
                      summary=summary, data=data or {})


def _next_id(plan: Sequence[Step]) -> int:
    return 1 + max((int(s["id"][1:]) for s in plan if s["id"][1:].isdigit()), default=0)


class Planner:
    """The supervisor and the planner's own steps, over injected dependencies (see :func:`create_planner`)."""

    def __init__(self, *, deps: AgentDeps, llm: BaseChatModel | None = None,
                 router: IntentRouter | Callable[[], IntentRouter] | None = None) -> None:
        self.deps = deps
        self.llm = llm
        self._router = router

    @property
    def policy(self) -> PlannerPolicy:
        return self.deps.policy

    @property
    def router(self) -> IntentRouter:
        """The intent router (built on first use when a factory or nothing was given: it loads MiniLM)."""
        from agents.router import IntentRouter, default_router

        if not isinstance(self._router, IntentRouter):
            self._router = self._router() if self._router is not None else default_router()
        return self._router

    def interpret(self, request: str, intents: Sequence[dict[str, Any]] | None = None) -> Interpretation:
        if intents is None and self.llm is None:
            return interpret(request, router=self.router, policy=self.policy)
        return interpret(request, llm=self.llm, policy=self.policy, intents=intents)

    def _record(self, decision: Decision) -> Decision:
        return decision.record(self.deps.catalog)

    def _outcome(self, step: Step, outcome: str) -> None:
        if step.get("decision_id"):
            self.deps.catalog.set_decision_outcome(int(step["decision_id"] or 0), outcome)

    # -- the supervisor ----------------------------------------------------------------------------

    def needs_approval(self, step: Step) -> bool:
        return (self.policy.require_approval and step["action"] in self.policy.approval_actions
                and not step.get("approved"))

    def next_turn(self, plan: Sequence[Step], current: int, results: Sequence[StepResult]) -> Turn:
        """Decide what runs next: skip steps whose prerequisite did not succeed, put an index build before
        a search when the index is missing or stale, skip an index refresh that is not needed, ask for
        approval, and record why the step runs."""
        turn = Turn(goto="finish", plan=[dict(s) for s in plan], current=current)  # type: ignore[misc]
        plan = turn.plan
        while turn.current < len(plan):
            step = plan[turn.current]
            dep = step.get("depends_on")
            if dep:
                before = next((r for r in reversed([*results, *turn.results]) if r["step"] == dep), None)
                if before is None or before["status"] != "ok":
                    turn.results.append(_skipped(step, f"skipped: step {dep} did not succeed"))
                    self._outcome(step, "skipped")
                    turn.current += 1
                    continue
            if not step.get("checked"):
                step["checked"] = True
                if step["action"] == "search_images" and not step.get("error"):
                    state = index_state(self.deps.catalog, self.deps.store_kind)
                    if state["stale"]:
                        why = "; ".join(state["reasons"])
                        decision = self._record(Decision(action="reindex", evidence={"index": state},
                                                         reason=REASONS["reindex_before_search"].format(why=why)))
                        turn.decisions.append(decision)
                        plan.insert(turn.current, _step(
                            _next_id(plan), "embedding", "build_index", {"model": "active"}, step["text"],
                            origin="planner", reason=decision.reason, decision_id=decision.id, checked=True))
                        continue
                if step["action"] == "build_index" and step.get("only_if_stale"):
                    state = index_state(self.deps.catalog, self.deps.store_kind)
                    if not state["stale"]:
                        summary = REASONS["index_up_to_date"].format(index=state["index"])
                        turn.results.append(_skipped(step, summary, {"index": state}))
                        self._outcome(step, f"skipped: {summary}")
                        turn.current += 1
                        continue
                    if not step.get("decision_id"):
                        why = "; ".join(state["reasons"])
                        decision = self._record(Decision(action="reindex", evidence={"index": state},
                                                         reason=REASONS["reindex"].format(why=why)))
                        turn.decisions.append(decision)
                        step["decision_id"] = decision.id
                if step["agent"] != "planner" and not step.get("decision_id") and not step.get("error"):
                    decision = self._record(Decision(
                        action=STEP_ACTIONS.get(step["action"], "unknown"), reason=step["reason"],
                        evidence={"step": step["id"], "args": step["args"], "text": step["text"]},
                        actor="user" if step["origin"] == "user" else "planner"))
                    turn.decisions.append(decision)
                    step["decision_id"] = decision.id
            turn.goto = "approve" if self.needs_approval(step) else step["agent"]
            return turn
        return turn

    def approval_request(self, step: Step) -> dict[str, Any]:
        """The payload shown to the person who approves or declines an expensive step."""
        return {"step": step["id"], "action": step["action"], "args": step["args"], "text": step["text"],
                "reason": REASONS["approval_requested"].format(action=step["action"], reason=step["reason"])}

    def apply_approval(self, plan: Sequence[Step], current: int, approved: bool | None) -> Turn:
        """Record the answer to an approval request (None: nobody was asked); a declined step is skipped,
        and so, later, are the steps that need it."""
        turn = Turn(goto=None, plan=[dict(s) for s in plan], current=current)  # type: ignore[misc]
        step = turn.plan[current]
        key = "approved" if approved else "declined" if approved is False else "no_approver"
        decision = self._record(Decision(action="approved" if approved else "declined", actor="user",
                                         reason=REASONS[key].format(action=step["action"]),
                                         evidence={"step": step["id"], "args": step["args"]}))
        turn.decisions.append(decision)
        if approved:
            step["approved"] = True
        else:
            self._outcome(step, f"skipped: {decision.action}")
            turn.results.append(_skipped(step, f"skipped: {decision.reason}"))
            turn.current += 1
        return turn

    def record_outcome(self, step: Step, result: StepResult) -> None:
        """Write what a step gave into the outcome of the decision that started it."""
        self._outcome(step, f"{result['status']}: {result['summary'][:500]}")

    # -- the planner's own steps ---------------------------------------------------------------------

    def run(self, step: Step, results: Sequence[StepResult], plan: Sequence[Step]) -> PlannerOutcome:
        """Run a planner step: improve, promote, status, explain (or report a request not understood)."""

        def result(status: StepStatus, summary: str, data: dict[str, Any]) -> StepResult:
            return StepResult(step=step["id"], agent="planner", action=step["action"], status=status,
                              summary=summary, data=data)

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
                    signals = read_signals(self.deps.catalog, store_kind=self.deps.store_kind,
                                           policy=self.policy)
                    return PlannerOutcome(result("ok", format_status(signals),
                                                 {"signals": signals.model_dump()}))
                case "explain":
                    return PlannerOutcome(self._explain(args.get("subject"), result))
                case _:
                    return PlannerOutcome(result("failed", f"no planner action {step['action']!r}", {}))
        except LookupError as exc:
            return PlannerOutcome(result("skipped", f"skipped: {exc}", {"error": str(exc)}))
        except Exception as exc:  # noqa: BLE001 - one failed step is reported; the plan goes on
            log.exception("planner step %s (%s) failed", step["id"], step["action"])
            return PlannerOutcome(result("failed", f"error: {exc}", {"error": str(exc)}))

    def propose(self, signals: Signals) -> list[Decision]:
        """The round's decisions, unrecorded: the policy's (narrowed by the LLM when there is one) and the
        promotion verdicts of the candidates already evaluated."""
        decisions = decide(signals, self.policy, captioner=self.policy.captioner or self.deps.captioner)
        options = [d for d in decisions if d.action != "nothing"]
        if self.llm is not None and options:
            decisions = choose_actions(self.llm, signals, options)
        verdicts = [check_promotion(self.deps.catalog, c, self.policy) for c in signals.evaluated_candidates]
        return decisions + verdicts

    def _improve(self, step: Step, plan: Sequence[Step], result: Callable[..., StepResult]) -> PlannerOutcome:
        signals = read_signals(self.deps.catalog, store_kind=self.deps.store_kind, policy=self.policy)
        decisions: list[Decision] = []
        new: list[Step] = []
        first = _next_id(plan)

        def add(agent: str, action: str, args: dict[str, Any], decision: Decision | None,
                **extra: Any) -> str:
            reason = decision.reason if decision else REASONS["index_after_training"]
            new.append(_step(first + len(new), agent, action, args, step["text"], origin="planner",
                             reason=reason, decision_id=decision.id if decision else None, **extra))
            return new[-1]["id"]

        index_after = False
        for proposed in self.propose(signals):
            if proposed.action in ("promote", "keep_active"):
                decisions.append(self._apply_promotion(proposed))
                index_after |= decisions[-1].action == "promote"
                continue
            decision = self._record(proposed)
            decisions.append(decision)
            split = self.policy.eval_split
            if decision.action == "caption":
                add("caption", "caption_images", {"captioner": decision.evidence.get("captioner")}, decision)
            elif decision.action == "evaluate":
                candidate = str(decision.evidence["candidate"])
                mv = self.deps.catalog.get_model_version(candidate) or {}
                scored = add("training", "evaluate_model", {
                    "model": candidate, "split": split, "dataset": mv.get("dataset_id") or "latest"},
                    decision)
                add("planner", "promote", {"candidate": candidate}, decision, depends_on=scored)
                index_after = True
            elif decision.action == "retrain":
                made = add("data", "create_dataset_version", {}, decision)
                trained = add("training", "train_candidate", {"model": "active", "dataset": "$dataset"},
                              decision, depends_on=made)
                scored = add("training", "evaluate_model", {"model": "$candidate", "dataset": "$dataset",
                                                            "split": split}, decision, depends_on=trained)
                add("planner", "promote", {"candidate": "$candidate"}, decision, depends_on=scored)
                index_after = True
            elif decision.action == "reindex":
                add("embedding", "build_index", {"model": "active"}, decision, only_if_stale=True)
                index_after = False  # this step comes after the others, and refreshes whatever is then active
        if index_after:
            add("embedding", "build_index", {"model": "active"}, None, only_if_stale=True)
        summary = "; ".join(f"{d.action}: {d.reason}" for d in decisions)
        data = {"signals": signals.model_dump(), "decisions": [d.model_dump() for d in decisions],
                "added_steps": [s["id"] for s in new]}
        return PlannerOutcome(result("ok", summary, data), decisions, new)

    def _promote(self, candidate: str, result: Callable[..., StepResult]) -> PlannerOutcome:
        decision = self._apply_promotion(check_promotion(self.deps.catalog, candidate, self.policy))
        data = {"candidate": candidate, "promoted": decision.action == "promote",
                "active": self.deps.active_model_key(), "decision": decision.model_dump()}
        return PlannerOutcome(result("ok", f"{decision.action}: {decision.reason}", data), [decision])

    def _apply_promotion(self, verdict: Decision) -> Decision:
        """Record a promotion verdict and act on it. With an LLM, ``promote`` may become ``keep_active``
        (a model may be more careful than the policy, never less); ``keep_active`` is never asked about."""
        candidate = str(verdict.evidence["candidate"])
        if verdict.action == "promote" and self.llm is not None:
            choice = self.llm.with_structured_output(PromotionChoice).invoke(PROMOTION_PROMPT.format(
                reason=verdict.reason, evidence=json.dumps(verdict.evidence, default=str)))
            assert isinstance(choice, PromotionChoice)
            why = REASONS["llm_choice"].format(reason=choice.reason, allowed="promote, keep_active")
            verdict = verdict.model_copy(update={
                "action": "promote" if choice.promote else "keep_active",
                "reason": f"{why}; policy: {verdict.reason}",
                "evidence": {**verdict.evidence, "chosen_by": "llm", "llm_reason": choice.reason}})
        decision = self._record(verdict)
        catalog = self.deps.catalog
        if decision.action == "promote":
            catalog.promote_model(candidate)
            catalog.set_decision_outcome(int(decision.id or 0), f"promoted: {candidate} is the active model")
        elif decision.evidence.get("candidate_metrics") and decision.evidence.get("active_metrics"):
            mv = catalog.get_model_version(candidate)
            if mv is not None and mv["status"] == "candidate":  # compared and found wanting
                catalog.set_model_status(candidate, "rejected")
                catalog.set_decision_outcome(int(decision.id or 0),
                                             f"{candidate} rejected; the active model stays")
        return decision

    def _explain(self, subject: str | None, result: Callable[..., StepResult]) -> StepResult:
        actions = {"train": ("train", "retrain", "evaluate", "promote", "keep_active", "dataset"),
                   "index": ("index", "reindex", "drop_index"), "caption": ("caption",),
                   "promote": ("promote", "keep_active", "evaluate")}.get(subject or "")
        rows = [d for d in self.deps.catalog.decisions(limit=200)
                if actions is None or d["action"] in actions][:10]
        if not rows:
            about = f" about {subject}" if subject else ""
            return result("ok", EXPLAIN_EMPTY.format(about=about), {"decisions": []})
        lines = [EXPLAIN_LINE.format(id=d["id"], action=d["action"], reason=d["reason"],
                                     outcome=f" [{d['outcome']}]" if d["outcome"] else "") for d in rows]
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
    idx = signals.index
    index = (idx.get("alias") or "none") + (f" (stale: {'; '.join(idx['reasons'])})" if idx.get("stale")
                                            else " (up to date)")
    return STATUS_TEMPLATE.format(
        images=signals.images, rejected=signals.rejected, uncaptioned=signals.uncaptioned,
        new_pairs=signals.new_pairs, active_model=signals.active_model, metrics=metrics,
        candidates=f"candidates waiting: {', '.join(waiting)}" if waiting else "no candidate waiting",
        index=index,
        negative=signals.negative_feedback, positive=signals.positive_feedback)


def create_planner(*, deps: AgentDeps, llm: BaseChatModel | None = None,
                   router: IntentRouter | Callable[[], IntentRouter] | None = None) -> Planner:
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

    return {"data": create_data_agent(deps=deps, llm=llm),
            "caption": create_caption_agent(deps=deps, llm=llm),
            "training": create_training_agent(deps=deps, llm=llm),
            "embedding": create_embedding_agent(deps=deps, llm=llm),
            "query": create_query_agent(deps=deps, llm=llm)}


def execute_plan(planner: Planner, agents: dict[str, ToolAgent], plan: Sequence[Step], *,
                 approve: Callable[[dict[str, Any]], bool] | None = None,
                 ) -> tuple[list[Step], list[StepResult], list[Decision]]:
    """Run a plan in this process, step by step: what the graph does, without checkpoints.

    ``approve(request) -> bool`` answers approval requests (None: steps that need approval are skipped).
    """
    plan, current = list(plan), 0
    results: list[StepResult] = []
    decisions: list[Decision] = []
    while True:
        turn = planner.next_turn(plan, current, results)
        if turn.goto == "approve":
            results += turn.results
            decisions += turn.decisions
            answer = approve(planner.approval_request(turn.plan[turn.current])) if approve else None
            turn = planner.apply_approval(turn.plan, turn.current, answer)
        plan, current = turn.plan, turn.current
        results += turn.results
        decisions += turn.decisions
        if turn.goto is None:
            continue  # after an approval: the supervisor looks at the plan again
        if turn.goto == "finish":
            return plan, results, decisions
        step = plan[current]
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
    deps: AgentDeps, *, llm: BaseChatModel | None = None, dry_run: bool = False,
    approve: Callable[[dict[str, Any]], bool] | None = None,
) -> list[Decision]:
    """One improvement round: read the signals, decide, and (unless ``dry_run``) act and record.

    Returns the decisions in order, each with its outcome (with ``dry_run``: unrecorded proposals). Acting
    means captioning, retraining, evaluating, promoting and re-indexing as decided. With
    ``policy.require_approval``, ``approve(request) -> bool`` is asked before training (None: skipped).
    """
    planner = create_planner(deps=deps, llm=llm)
    if dry_run:
        return planner.propose(read_signals(deps.catalog, store_kind=deps.store_kind, policy=deps.policy))
    plan = expand([{"intent": "improve", "args": {}, "text": "improvement round"}], policy=deps.policy)
    _, _, decisions = execute_plan(planner, create_agents(deps=deps, llm=llm), plan, approve=approve)
    outcomes = {d["id"]: d["outcome"] for d in deps.catalog.decisions(limit=max(50, 2 * len(decisions)))}
    return [d.model_copy(update={"outcome": outcomes.get(d.id, d.outcome)}) for d in decisions]


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

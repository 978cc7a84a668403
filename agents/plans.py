"""Plans: a request in plain words becomes routed intents, then a plan of agent steps.

:func:`interpret` routes the request (the offline MiniLM router, or a chat model's structured output);
:func:`expand` turns each command into steps. "Train a model" becomes: dataset version -> fine-tune ->
evaluate against the active model -> promotion check -> refresh the index if the active model changed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from agents.policy import PlannerPolicy
from agents.records import Step
from prompts.agents import REFUSED_DESTRUCTIVE, REFUSED_LIMIT, REFUSED_UNSURE
from prompts.intents import INTENT_DESCRIPTIONS, INTENTS
from prompts.planner import INTERPRET_SYSTEM_PROMPT, REASONS

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agents.routing import IntentRouter

class PlannedIntent(BaseModel):
    """One command of a request."""

    intent: Literal["ingest", "caption", "train", "evaluate", "index", "search", "detect", "status", "improve",
                    "explain", "concept", "unknown"]
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
              policy: PlannerPolicy | None = None, intents: Sequence[dict[str, Any]] | None = None,
              message: str | None = None) -> Interpretation:
    """Route ``request`` (the LLM when given, else the router) and expand it into agent steps.

    ``intents`` skips routing: a ready list of ``{"intent", "args", "text"}`` commands (the scheduler's
    improvement round passes ``[{"intent": "improve"}]``; a follow-up in a conversation, its refinement),
    with ``message`` saying why an ``unknown`` one cannot run.
    """
    policy = policy or PlannerPolicy()
    reason = None
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
    refusal = None if intents is not None else screen(request, routed, message, policy)
    if refusal is not None:  # the whole request starts nothing, and says why
        routed = [{"intent": "unknown", "args": {}, "text": request, "confidence": 0.0, "understood": False}]
        message = refusal
    first = routed[0]
    return Interpretation(
        request=request, intent=first["intent"], args=first.get("args") or {}, plan=routed,
        understood=all(s.get("understood", True) for s in routed), confidence=confidence, message=message,
        reason=reason, steps=[dict(s) for s in expand(routed, policy=policy, message=message)],
    )


#: intents that only read (what a request may still ask for when it also names something destructive)
READ_INTENTS = frozenset({"search", "status", "explain", "feedback", "concept", "unknown"})
#: a routed write command below this confidence starts nothing: the lowest of a correct write command in the
#: router's held-out corpus is 0.43 ("update the lancedb table with fresh vectors" -> index)
WRITE_MIN_CONFIDENCE = 0.40
_DESTRUCTIVE = re.compile(r"\b(delete|deleting|remove|removing|erase|wipe|destroy|drop|purge|truncate|overwrite|"
                          r"uninstall|shut\s*down|kill|rm)\b", re.IGNORECASE)
_INJECTION = re.compile(r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions?|rules|policy|prompt|previous)\b|"
                        r"\bsystem prompt\b|\bjailbreak", re.IGNORECASE)


def screen(request: str, routed: Sequence[dict[str, Any]], message: str | None, policy: PlannerPolicy
           ) -> str | None:
    """Why a routed request starts nothing (or None): it names destructive actions SkyScout does not have, or
    tells it to ignore its instructions, while asking for work; parts of it were not understood; a write
    command was read with too little confidence; or it asks for more than the policy allows."""
    for s in routed:
        epochs = (s.get("args") or {}).get("epochs")
        if s["intent"] == "train" and isinstance(epochs, int) and epochs > policy.max_request_epochs:
            return REFUSED_LIMIT.format(what=f"training for {epochs} epochs",
                                        limit=f"at most {policy.max_request_epochs} epochs a request")
    writes = [s for s in routed if s["intent"] not in READ_INTENTS]
    words = sorted({m.group(0).lower() for m in _DESTRUCTIVE.finditer(request)})
    if writes and (words or _INJECTION.search(request)):
        return REFUSED_DESTRUCTIVE.format(words=", ".join(repr(w) for w in words) or "instructions to ignore")
    if len(routed) > 1 and not all(s.get("understood", True) for s in routed):
        return REFUSED_UNSURE.format(why=message or "part of it was not understood")
    unsure = [s for s in writes if float(s.get("confidence", 1.0)) < WRITE_MIN_CONFIDENCE]
    if unsure:
        s = unsure[0]
        return REFUSED_UNSURE.format(why=f"{s['text']!r} reads as '{s['intent']}' with confidence "
                                         f"{float(s['confidence']):.2f}, below {WRITE_MIN_CONFIDENCE}")
    return None


def make_step(n: int, agent: str, action: str, args: dict[str, Any], text: str, *, origin: str = "user",
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
        steps.append(make_step(first_id + len(steps), agent, action, args, text, **extra))
        return steps[-1]["id"]

    for cmd in routed:
        intent, args, text = cmd["intent"], dict(cmd.get("args") or {}), cmd.get("text") or ""
        given = str(args.get("dataset") or "")
        if intent == "ingest":
            missing = {} if args.get("path") else {
                "error": "say which folder or manifest to ingest, e.g. 'ingest ./data/tiles' or "
                         "'ingest ./manifest.jsonl'"}
            add("data", "ingest_images", {k: args.get(k) for k in ("path", "manifest", "labels_from_folders")},
                text, **missing)
        elif intent == "caption":
            add("caption", "caption_images", {k: args.get(k) for k in ("captioner", "from_folders")}, text)
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
            missing = {} if (args.get("query") or args.get("image") or args.get("liked_from")) else {
                "error": "say what to look for, e.g. 'find beaches' or 'find images like ./tile.png'"}
            slots = ("query", "image", "negative", "k", "filters", "scene", "bbox", "liked_from")
            add("query", "search_images", {key: args.get(key) for key in slots}, text, **missing)
        elif intent == "detect":
            missing = {} if args.get("query") else {
                "error": "say what to detect, e.g. 'where are the airports in scene 3fa9c2'"}
            wanted = ("query", "negative", "scene", "bbox", "top_k", "threshold", "merge", "out")
            add("query", "detect", {key: args.get(key) for key in wanted}, text, **missing)
        elif intent == "feedback":
            add("query", "record_feedback", args, text)
        elif intent == "concept":  # agents/concepts.py: the action is the concept tool
            add("query", str(args.pop("action", "concept_results")), args, text)
        elif intent == "export":
            add("query", "export_results", args, text)
        elif intent in ("status", "explain", "improve"):
            add("planner", intent, args, text)
        else:
            add("planner", "unknown", {}, text, error=message or f"I did not understand {text!r}")
    return steps


def next_step_id(plan: Sequence[Step]) -> int:
    """The number of the next step id (``s<n>``) in a plan."""
    return 1 + max((int(s["id"][1:]) for s in plan if s["id"][1:].isdigit()), default=0)


__all__ = ["Interpretation", "PlannedIntent", "RequestPlan", "expand", "interpret", "make_step", "next_step_id"]

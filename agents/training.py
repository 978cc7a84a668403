"""The Training agent: fine-tune a candidate, evaluate it, and report its metrics against the active model.

Fine-tuning is :func:`app.training.train` with the planner's round caps over the base model's recipe; a
run that was interrupted (the process died) is resumed from its checkpoint instead of started again.
Evaluation is :func:`app.evaluation.compare_with_active`; its metrics are stored under the model's key,
where the planner reads them. The agent never promotes: that is the planner's decision, under its
guardrails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.toolkit import ToolAgent, ToolOutput, ToolSpec, report_progress
from app.evaluation import compare_with_active
from app.training import train
from prompts.agents import AGENT_SYSTEM_PROMPTS, REFUSED_LIMIT, SUMMARIES, TOOL_DESCRIPTIONS


class TrainArgs(BaseModel):
    """Arguments of ``train_candidate``."""

    model: str = Field(default="active", description="base model: 'active', a version id (mv-...), or a preset")
    dataset: str = Field(default="latest", description="dataset version id (ds-...) or 'latest'")
    epochs: int | None = Field(default=None, ge=1, le=1000, description="passes over the training split")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimizer steps")
    batch_size: int | None = Field(default=None, ge=2, le=4096)
    lr: float | None = Field(default=None, gt=0, lt=1)


class EvaluateArgs(BaseModel):
    """Arguments of ``evaluate_model``."""

    model: str = Field(default="active", description="'active', a model version id (mv-...), or a preset")
    dataset: str = Field(default="latest", description="dataset version id (ds-...) or 'latest'")
    split: str = Field(default="val", pattern="^(train|val|test)$", description="the held-out split to score")
    compare_with_active: bool = Field(default=True, description="also make sure the active model is scored alike")
    guard: bool = Field(default=True, description="also score the policy's guard split")


def _fmt_metrics(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "no metrics (empty split)"
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "n_images")


def _fmt_ap(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _overrides(ctx: AgentContext, args: TrainArgs) -> dict[str, Any]:
    asked = {k: v for k, v in args.model_dump(include={"epochs", "max_steps", "batch_size", "lr"}).items()
             if v is not None}
    if args.epochs is not None and args.max_steps is None:
        asked["max_steps"] = None  # an explicit number of epochs is not cut by the round's step cap
    return {**ctx.training, **asked}


def _progress(info: Any) -> None:
    report_progress(task="train", step=info.step, total=info.total_steps, epoch=info.epoch,
                    loss=round(float(info.loss), 4))


def _limited(minutes: float) -> Callable[[Any], bool]:
    """Report progress, and stop (resumably) once the policy's training minutes are spent."""
    deadline = time.monotonic() + minutes * 60

    def on_step(info: Any) -> bool:
        _progress(info)
        return time.monotonic() > deadline

    return on_step


def train_candidate(ctx: AgentContext, args: TrainArgs) -> ToolOutput:
    """Fine-tune a candidate; an interrupted run with the same inputs is resumed from its checkpoint. The run
    stops, resumably, after the policy's ``max_training_minutes``."""
    if args.epochs is not None and args.epochs > ctx.policy.max_request_epochs:
        raise PermissionError(REFUSED_LIMIT.format(what=f"training for {args.epochs} epochs",
                                                   limit=f"at most {ctx.policy.max_request_epochs} epochs"))
    result = train(ctx.app, model=args.model, dataset=args.dataset, overrides=_overrides(ctx, args),
                   resume="auto", on_step=_limited(ctx.policy.max_training_minutes))
    if not result.get("completed"):
        why = result.get("stopped") or "stopped before the end"
        if why == "stopped before the end":
            why = f"stopped at the policy's limit of {ctx.policy.max_training_minutes:g} minutes"
        raise RuntimeError(f"training {why} at step {result.get('steps')} (job {result.get('job_id')}); "
                           "ask again to resume it from its checkpoint")
    data = {"model_version": result["model_version"], "base": result["base"], "dataset_id": result["dataset"],
            "job_id": result["job_id"], "run_dir": result["run_dir"], "steps": result["steps"],
            "final_loss": float(result["final_loss"]), "train_images": result["train_images"],
            "elapsed_s": round(float(result["elapsed_s"]), 1), "batch_size": result["batch_size"],
            "notes": result["notes"], "resumed_from": result["resumed_from"],
            "feedback_marks": int(result.get("feedback_marks") or 0)}
    resumed = f", resumed from job {data['resumed_from']}" if data["resumed_from"] else ""
    if data["feedback_marks"]:
        resumed += f"; {data['feedback_marks']} users' marks trained on (their used_in is {data['model_version']})"
    return ToolOutput(SUMMARIES["train_candidate"].format(**data, resumed=resumed), data)


def evaluate_model(ctx: AgentContext, args: EvaluateArgs) -> ToolOutput:
    """Score a model on the held-out split (and the guard split), next to the active model's scores."""
    policy = ctx.policy
    guard = (policy.guard_dataset, policy.guard_split) if args.guard else None
    result = compare_with_active(ctx.app, model=args.model, dataset=args.dataset, split=args.split, guard=guard,
                                 with_active=args.compare_with_active)
    comparison = guard_text = ""
    deltas = result.delta_vs_active
    if deltas is not None:
        comparison = f"; vs active {result.active}: " + ", ".join(f"{k} {v:+.3f}" for k, v in deltas.items())
    if result.guard is not None:
        guard_text = f"; guard {result.guard['dataset_id']}/{result.guard['split']}: " \
                     f"{_fmt_metrics(result.guard['metrics'])}"
    if result.judged is not None:
        cand, act = result.judged["candidate"], result.judged["active"]
        guard_text += (f"; judged AP on {result.judged['judgments']} held-back marks "
                       f"{_fmt_ap(cand.get('average_precision'))} vs active {_fmt_ap(act.get('average_precision'))}")
    summary = SUMMARIES["evaluate_model"].format(model=result.model, dataset_id=result.dataset_id, split=args.split,
                                                 metrics=_fmt_metrics(result.metrics), comparison=comparison,
                                                 guard=guard_text)
    return ToolOutput(summary, result.to_dict())


TOOLS = (
    ToolSpec("train_candidate", train_candidate, TrainArgs, TOOL_DESCRIPTIONS["train_candidate"]),
    ToolSpec("evaluate_model", evaluate_model, EvaluateArgs, TOOL_DESCRIPTIONS["evaluate_model"]),
)
AGENT = ToolAgent("training", TOOLS, system_prompt=AGENT_SYSTEM_PROMPTS["training"])

__all__ = ["AGENT", "TOOLS", "EvaluateArgs", "TrainArgs"]

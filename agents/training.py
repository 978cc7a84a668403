"""The Training agent: fine-tune a candidate, evaluate it, and report its metrics against the active model.

Fine-tuning is :func:`tools.modelops.finetune`. A training run that was interrupted (the process died)
is found by its job record and resumed from its last checkpoint instead of started again. Evaluation
uses the models in the injected cache and stores its metrics in the catalog under the model's key (its
version id, or the base model's spec), per dataset version and split, where the planner reads them.
The agent never promotes: that is the planner's decision, under its guardrails.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agents.deps import AgentDeps
from agents.llm import ToolAgent, ToolOutput, agent_tool
from prompts.agents import AGENT_SYSTEM_PROMPTS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.catalog import Catalog
from tools.datasets import resolve_dataset, split_items
from tools.modelops import evaluate_items, finetune, headline, training_items
from tools.training import CHECKPOINT_NAME, TrainConfig

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from tools.models import LoadedModel

log = logging.getLogger(__name__)

#: evaluation kinds stored per model/dataset/split (the keys of ``evaluate_items``' result)
EVAL_KINDS = ("zeroshot", "retrieval", "retrieval_class_aware")


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


# -- evaluations in the catalog ---------------------------------------------------------------------


def stored_metrics(catalog: Catalog, model: str, dataset: str, split: str) -> dict[str, float] | None:
    """The headline metrics last stored for (model, dataset, split), or None when it was never scored."""
    latest: dict[str, Any] = {}
    for row in catalog.evaluations(model=model, dataset=dataset, split=split, limit=50):
        latest.setdefault(row["kind"], row["metrics"])  # rows come newest first
    return headline(latest) if latest else None


def evaluate_on(
    deps: AgentDeps, key: str, loaded: LoadedModel, dataset_id: str, split: str
) -> dict[str, float] | None:
    """Score a loaded model on one split and store the metrics; None when the split is empty."""
    items = split_items(deps.catalog, dataset_id, split)
    if not items:
        return None
    label_texts: dict[str, str] = {}
    for img in deps.catalog.iter_images(status=None, ids=[it.image_id for it in items]):
        if img.labels and "label_text" in img.metadata:
            label_texts.setdefault(img.labels[0], str(img.metadata["label_text"]))
    metrics = evaluate_items(
        loaded, items, device=deps.device, label_texts=label_texts, batch_size=deps.batch_size
    )
    for kind in EVAL_KINDS:
        if kind in metrics:
            deps.catalog.add_evaluation(
                model=key, dataset=dataset_id, split=split, kind=kind, metrics=metrics[kind]
            )
    return {**headline(metrics), "n_images": float(metrics["n_images"])}


def ensure_metrics(
    deps: AgentDeps, spec: str, dataset_id: str, split: str
) -> tuple[str, dict[str, float] | None]:
    """Stored metrics of ``spec`` on (dataset, split), scoring the model now only if they are missing."""
    from tools.modelops import resolve_model

    resolved = resolve_model(deps.catalog, spec)
    key = resolved.version_id or resolved.load_spec
    found = stored_metrics(deps.catalog, key, dataset_id, split)
    if found is not None or not deps.catalog.dataset_split(dataset_id, split):
        return key, found
    return key, evaluate_on(deps, key, deps.model_cache.model(resolved.load_spec), dataset_id, split)


def _fmt_metrics(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "no metrics (empty split)"
    return ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "n_images")


# -- tools ------------------------------------------------------------------------------------------


def _interrupted_run(
    catalog: Catalog, base: str, dataset_id: str, config: TrainConfig
) -> tuple[str, Path] | None:
    """A train job for the same (base, dataset, config) whose process died after a checkpoint."""
    wanted = config.model_dump(mode="json")
    for job in catalog.list_jobs(kind="train", limit=20):
        if job.state not in ("running", "cancelled"):
            continue
        p = job.params
        run_dir = Path(p.get("run_dir", ""))
        if (
            p.get("base") == base
            and p.get("dataset") == dataset_id
            and p.get("config") == wanted
            and (run_dir / CHECKPOINT_NAME).is_file()
            and not (run_dir / "model.pt").exists()
        ):
            return job.id, run_dir
    return None


def train_candidate(deps: AgentDeps, args: TrainArgs) -> ToolOutput:
    """Fine-tune a candidate; an interrupted run with the same inputs is resumed from its checkpoint."""
    ds = resolve_dataset(deps.catalog, args.dataset)
    updates: dict[str, Any] = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("max_steps", args.max_steps),
            ("batch_size", args.batch_size),
            ("lr", args.lr),
        )
        if v is not None
    }
    if args.epochs is not None and args.max_steps is None:
        updates["max_steps"] = None  # an explicit number of epochs is not cut by the default step cap
    config = TrainConfig(**{**deps.train_defaults.model_dump(), **updates})
    notes: list[str] = []
    n_items = len(training_items(deps.catalog, ds["id"]))
    if args.batch_size is None and 2 <= n_items < config.batch_size:
        config = TrainConfig(**{**config.model_dump(), "batch_size": n_items})
        notes.append(f"batch size lowered to {n_items}, the number of captioned training images")
    resume = _interrupted_run(deps.catalog, args.model, ds["id"], config)
    if resume is not None:
        old_job, run_dir = resume
        deps.catalog.update_job(
            old_job, state="failed", error="interrupted; resumed from its last checkpoint"
        )
        notes.append(f"resumed interrupted job {old_job}")
        log.info("resuming interrupted training job %s from %s", old_job, run_dir)
    result = finetune(
        deps.catalog,
        model=args.model,
        dataset=ds["id"],
        config=config,
        models_dir=deps.models_dir,
        cache_dir=deps.cache_dir,
        device=deps.device,
        resume_dir=resume[1] if resume else None,
        progress=deps.progress,
    )
    if not result.get("completed"):
        raise RuntimeError(
            f"training stopped before the end (job {result.get('job_id')}); ask again to resume"
        )
    data = {
        "model_version": result["model_version"],
        "base": result["base"],
        "dataset_id": result["dataset"],
        "job_id": result["job_id"],
        "run_dir": result["run_dir"],
        "steps": result["steps"],
        "final_loss": float(result["final_loss"]),
        "train_images": result["train_images"],
        "elapsed_s": round(float(result["elapsed_s"]), 1),
        "batch_size": config.batch_size,
        "notes": notes,
        "resumed_from": resume[0] if resume else None,
    }
    resumed = f", resumed from job {resume[0]}" if resume else ""
    return ToolOutput(SUMMARIES["train_candidate"].format(**data, resumed=resumed), data)


def evaluate_model(deps: AgentDeps, args: EvaluateArgs) -> ToolOutput:
    """Score a model on the held-out split (and the guard split), next to the active model's scores."""
    ds = resolve_dataset(deps.catalog, args.dataset)
    dataset_id = ds["id"]
    key, loaded = deps.load(args.model)
    metrics = evaluate_on(deps, key, loaded, dataset_id, args.split)
    if metrics is None:
        raise ValueError(
            f"the {args.split} split of {dataset_id} is empty; create a dataset version with a "
            "larger held-out fraction or ingest more images"
        )
    policy = deps.policy
    data: dict[str, Any] = {"model": key, "dataset_id": dataset_id, "split": args.split, "metrics": metrics}
    guard_ds = policy.guard_dataset or dataset_id
    guard_wanted = args.guard and (guard_ds, policy.guard_split) != (dataset_id, args.split)
    if guard_wanted:
        data["guard"] = {
            "dataset_id": guard_ds,
            "split": policy.guard_split,
            "metrics": evaluate_on(deps, key, loaded, guard_ds, policy.guard_split),
        }
    active = deps.active_model_key()
    comparison_text = guard_text = ""
    if args.compare_with_active and key != active:
        _, active_metrics = ensure_metrics(deps, active, dataset_id, args.split)
        data["active"] = {"model": active, "metrics": active_metrics}
        if active_metrics:
            deltas = {
                k: round(metrics[k] - active_metrics[k], 5)
                for k in metrics
                if k in active_metrics and k != "n_images"
            }
            data["delta_vs_active"] = deltas
            comparison_text = f"; vs active {active}: " + ", ".join(
                f"{k} {v:+.3f}" for k, v in deltas.items()
            )
        if guard_wanted:
            _, active_guard = ensure_metrics(deps, active, guard_ds, policy.guard_split)
            data["guard"]["active_metrics"] = active_guard
    if guard_wanted:
        guard_text = f"; guard {guard_ds}/{policy.guard_split}: {_fmt_metrics(data['guard']['metrics'])}"
    summary = SUMMARIES["evaluate_model"].format(
        model=key,
        dataset_id=dataset_id,
        split=args.split,
        metrics=_fmt_metrics(metrics),
        comparison=comparison_text,
        guard=guard_text,
    )
    return ToolOutput(summary, data)


def training_tools(deps: AgentDeps) -> list[StructuredTool]:
    """The Training agent's tools, bound to ``deps``."""
    return [
        agent_tool(
            lambda a: train_candidate(deps, a),
            name="train_candidate",
            description=TOOL_DESCRIPTIONS["train_candidate"],
            args_schema=TrainArgs,
        ),
        agent_tool(
            lambda a: evaluate_model(deps, a),
            name="evaluate_model",
            description=TOOL_DESCRIPTIONS["evaluate_model"],
            args_schema=EvaluateArgs,
        ),
    ]


def create_training_agent(*, deps: AgentDeps, llm: BaseChatModel | None = None) -> ToolAgent:
    """The Training agent over ``deps`` (training defaults and guard split from ``deps``)."""
    return ToolAgent(
        "training", training_tools(deps), llm=llm, system_prompt=AGENT_SYSTEM_PROMPTS["training"]
    )


__all__ = [
    "EvaluateArgs",
    "TrainArgs",
    "create_training_agent",
    "ensure_metrics",
    "evaluate_on",
    "stored_metrics",
    "training_tools",
]

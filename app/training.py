"""The training use case: fine-tune a candidate from a dataset version, resuming interrupted runs.

The configuration is the base model's recipe with the caller's overrides on top
(:func:`tools.modelops.train_config`). An interrupted run (its process died after a checkpoint) is found
by its job record and continued with the configuration it was started with: explicitly
(``resume="latest"`` or a run directory) or, with ``resume="auto"``, when a new request has the same
base model, dataset and configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from app.context import AppContext
from tools.catalog import Catalog, Job
from tools.modelops import TrainingPlan, finetune, prepare_training
from tools.training import CHECKPOINT_NAME, TrainConfig

Resume = Literal["auto", "latest", "never"] | Path


def _unfinished(job: Job) -> Path | None:
    run_dir = Path(job.params.get("run_dir", ""))
    if job.state == "succeeded" or not (run_dir / CHECKPOINT_NAME).is_file() or (run_dir / "model.pt").exists():
        return None
    return run_dir


def interrupted_run(catalog: Catalog, plan: TrainingPlan | None = None) -> tuple[Job, Path] | None:
    """The newest train job that stopped after a checkpoint (with ``plan``: one with the same inputs).

    A job still running in a live process is never taken over; one whose process died is first marked
    abandoned (:meth:`~tools.catalog.Catalog.reconcile_jobs`).
    """
    catalog.reconcile_jobs()
    for job in catalog.list_jobs(kind="train", limit=50):
        if job.state == "running":
            continue
        run_dir = _unfinished(job)
        if run_dir is None:
            continue
        if plan is None:
            return job, run_dir
        wanted = plan.params(run_dir)
        if all(job.params.get(k) == wanted[k] for k in ("base", "dataset", "config")):
            return job, run_dir
    return None


def _job_of_run(catalog: Catalog, run_dir: Path) -> Job | None:
    return next((j for j in catalog.list_jobs(kind="train", limit=200)
                 if Path(j.params.get("run_dir", "")) == run_dir), None)


def _resume_target(catalog: Catalog, resume: Resume) -> tuple[Job | None, Path] | None:
    if resume in ("auto", "never"):
        return None
    if resume == "latest":
        found = interrupted_run(catalog)
        if found is None:
            raise FileNotFoundError("no interrupted training run with a checkpoint to resume; start a new one")
        return found
    run_dir = Path(resume)
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT_NAME} to resume from")
    return _job_of_run(catalog, run_dir), run_dir


def _fit_batch(plan: TrainingPlan, overrides: Mapping[str, Any], notes: list[str]) -> TrainingPlan:
    n = len(plan.items)
    if "batch_size" not in overrides and 2 <= n < plan.config.batch_size:
        plan.config = TrainConfig(**{**plan.config.model_dump(), "batch_size": n})
        notes.append(f"batch size lowered to {n}, the number of captioned training images")
    return plan


def train(ctx: AppContext, *, model: str | None = "active", dataset: str | None = "latest",
          overrides: Mapping[str, Any] | None = None, caption_sources: list[str] | None = None,
          resume: Resume = "never", progress: bool = False,
          on_step: Callable[[Any], bool | None] | None = None) -> dict[str, Any]:
    """Fine-tune ``model`` on a dataset version's train split; returns the training summary.

    ``overrides`` change single values of the model's recipe. ``on_step(info)`` sees every optimizer step
    and may return True to stop (the run is then resumable).
    """
    catalog = ctx.catalog
    target = _resume_target(catalog, resume)
    overrides = dict(overrides or {})
    config: TrainConfig | Mapping[str, Any] = overrides
    if target is not None and target[0] is not None:
        config = TrainConfig(**target[0].params["config"])  # the run goes on as it was started
        caption_sources = target[0].params.get("caption_sources") or caption_sources
        model, dataset = target[0].params.get("base", model), target[0].params.get("dataset", dataset)
    notes: list[str] = []
    plan = prepare_training(catalog, model=model, dataset=dataset, config=config,
                            cache_dir=ctx.config.cache_dir, device=ctx.device, caption_sources=caption_sources)
    if target is None:
        plan = _fit_batch(plan, overrides, notes)
        if resume == "auto":
            target = interrupted_run(catalog, plan)
    resumed_job = target[0] if target else None
    if resumed_job is not None:
        before = f"{resumed_job.error}; " if resumed_job.state == "abandoned" and resumed_job.error else ""
        catalog.update_job(resumed_job.id, state=None if resumed_job.state == "abandoned" else "failed",
                           error=f"{before}interrupted; resumed from its last checkpoint")
        notes.append(f"resumed interrupted job {resumed_job.id}")
    result = finetune(catalog, plan, models_dir=ctx.config.models_dir, device=ctx.device,
                      resume_dir=target[1] if target else None, progress=progress, on_step=on_step,
                      keep_checkpoints=ctx.config.keep_checkpoints)
    return {**result, "notes": notes, "resumed_from": resumed_job.id if resumed_job else None,
            "batch_size": plan.config.batch_size}


__all__ = ["interrupted_run", "train"]

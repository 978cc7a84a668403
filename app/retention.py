"""Retention (``skyscout gc``): what the home keeps, and deleting the rest.

The policy: keep the active model, its parent and the newest ``keep_candidates`` other model versions with
their files and indexes; delete the model files (and indexes) of older versions, whose catalog rows stay
for their lineage (``files_deleted_at`` is set). Finished training runs lose their resumable state
(checkpoints, about 2.5x the model) unless ``keep_checkpoints``; an interrupted run's checkpoint is deleted
once a later run with the same base, dataset and configuration finished (it was started over). Nothing is
deleted while a job runs.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.context import AppContext
from tools.indexes import alias_name
from tools.modelref import active_model_key
from tools.stores.base import index_name_for_model


class GcBusyError(ValueError):
    """Jobs are running: retention waits until they finish (they may need the files)."""


@dataclass
class GcReport:
    """What ``gc`` deleted (or, with ``dry_run``, would delete) and why; ``to_dict`` is the ``--json`` document."""

    dry_run: bool
    kept_models: list[str] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)  # path, bytes, why
    dropped_indexes: list[str] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(int(d["bytes"]) for d in self.deleted)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "freed_bytes": self.freed_bytes}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def kept_models(ctx: AppContext, keep_candidates: int) -> set[str]:
    """The model versions whose files stay: the active one, its parent, the newest others."""
    versions = ctx.catalog.list_model_versions()
    active = active_model_key(ctx.catalog)
    keep = {active}
    parent = next((v.get("parent") for v in versions if v["id"] == active), None)
    if parent:
        keep.add(parent)
    others = [v["id"] for v in sorted(versions, key=lambda v: v["created_at"], reverse=True)
              if v["id"] not in keep and not v.get("files_deleted_at")]
    return keep | set(others[:keep_candidates])


def _delete(report: GcReport, path: Path, why: str) -> None:
    report.deleted.append({"path": str(path), "bytes": _size(path), "why": why})
    if not report.dry_run:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _old_models(ctx: AppContext, report: GcReport, keep: set[str]) -> None:
    from app.indexing import drop_index

    catalog, runs = ctx.catalog, (ctx.config.models_dir / "runs").resolve()
    live_index = catalog.get_alias(alias_name(ctx.store_kind()))
    for mv in catalog.list_model_versions():
        if mv["id"] in keep or mv.get("files_deleted_at"):
            continue
        run_dir = Path(mv["checkpoint"]).resolve().parent
        if run_dir.is_dir() and run_dir.is_relative_to(runs):
            _delete(report, run_dir, f"model version {mv['id']} ({mv['status']}) is outside the retention policy")
        index = index_name_for_model(mv["id"])
        info = catalog.get_index(index)
        if index != live_index and info is not None and info["state"] != "dropped":
            report.dropped_indexes.append(index)
            if not report.dry_run:
                drop_index(ctx, index)
        if not report.dry_run:
            with catalog.transaction() as conn:
                conn.execute("UPDATE model_versions SET files_deleted_at = ? WHERE id = ?", (time.time(), mv["id"]))


def _run_states(ctx: AppContext, report: GcReport, keep_checkpoints: bool) -> None:
    """Checkpoints of finished runs, and of interrupted runs that a later finished run replaced."""
    from tools.modelops import RUN_STATE_FILES  # torch: only when gc runs, never when the CLI starts

    jobs = sorted(ctx.catalog.list_jobs(kind="train", limit=10_000), key=lambda j: j.created_at)
    finished_inputs: dict[tuple[str, ...], float] = {}
    for job in jobs:
        if job.state == "succeeded":
            key = tuple(str(job.params.get(k)) for k in ("base", "dataset", "config"))
            finished_inputs[key] = max(finished_inputs.get(key, 0.0), job.created_at)
    for job in jobs:
        run_dir = Path(str(job.params.get("run_dir", "")))
        states = [run_dir / name for name in RUN_STATE_FILES if (run_dir / name).is_file()]
        if not states or job.state == "running":
            continue
        key = tuple(str(job.params.get(k)) for k in ("base", "dataset", "config"))
        if (run_dir / "model.pt").is_file():
            why = None if keep_checkpoints else "the run finished; its weights are in model.pt"
        elif finished_inputs.get(key, 0.0) > job.created_at:
            why = "an interrupted run that a later run with the same inputs finished (started over)"
        else:
            why = None  # an interrupted run that may still be resumed
        if why is not None:
            for path in states:
                _delete(report, path, why)


def collect(ctx: AppContext, *, keep_candidates: int | None = None, keep_checkpoints: bool | None = None,
            dry_run: bool = False) -> GcReport:
    """Apply the retention policy (the settings', unless given); ``dry_run`` only lists what would go."""
    ctx.catalog.reconcile_jobs()
    running = ctx.catalog.list_jobs(state="running", limit=10)
    if running:
        raise GcBusyError(f"{len(running)} job(s) are running ({', '.join(j.id for j in running)}); "
                           "run gc when they finish")
    report = GcReport(dry_run=dry_run)
    keep = kept_models(ctx, ctx.config.keep_candidates if keep_candidates is None else keep_candidates)
    report.kept_models = sorted(keep)
    _old_models(ctx, report, keep)
    _run_states(ctx, report, ctx.config.keep_checkpoints if keep_checkpoints is None else keep_checkpoints)
    return report


__all__ = ["GcBusyError", "GcReport", "collect", "kept_models"]

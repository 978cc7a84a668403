"""Operations use cases: list and cancel jobs, back the catalog up."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app.context import AppContext
from tools.catalog import Job


def job_doc(job: Job) -> dict[str, Any]:
    """A job as the CLI's ``--json`` and the HTTP API show it."""
    return dict(job.__dict__)


def list_jobs(ctx: AppContext, *, kind: str | None = None, state: str | None = None, limit: int = 50) -> list[Job]:
    """Recent jobs, newest first (jobs whose process died are marked abandoned first)."""
    ctx.catalog.reconcile_jobs()
    return ctx.catalog.list_jobs(kind=kind, state=state, limit=limit)


def cancel_job(ctx: AppContext, job_id: str) -> Job:
    """Ask a running job to stop at its next batch (what it finished stays; the same command resumes it)."""
    ctx.catalog.reconcile_jobs()
    return ctx.catalog.request_cancel(job_id)


def backup(ctx: AppContext, out: str | Path | None = None) -> dict[str, Any]:
    """A consistent copy of the catalog by SQLite's online backup, while other commands go on.

    ``out`` is a file or a folder (default: ``<home>/backups``); an existing file is never overwritten.
    """
    name = f"catalog-{time.strftime('%Y%m%d-%H%M%S')}-manual.db"
    target = Path(out).expanduser() if out is not None else ctx.catalog.backup_dir / name
    if target.is_dir():
        target = target / name
    if target.exists():
        raise FileExistsError(f"{target} exists; give another --out")
    started = time.perf_counter()
    written = ctx.catalog.snapshot("manual", dest=target)
    return {"backup": str(written), "bytes": written.stat().st_size, "seconds": round(time.perf_counter() - started, 3),
            "images": ctx.catalog.count_images(status=None)}


__all__ = ["backup", "cancel_job", "job_doc", "list_jobs"]

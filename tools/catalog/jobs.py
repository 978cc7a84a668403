"""The catalog's jobs: durable records of long work (kind, state, progress, outcome)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tools.catalog.connection import CatalogBase
from tools.catalog.records import Job, job_from_row
from tools.catalog.schema import JobState


class JobsMixin(CatalogBase):
    """Jobs: create, update, read, and run a block as a job."""

    # -- jobs -------------------------------------------------------------------------------------

    def create_job(self, kind: str, params: dict[str, Any] | None = None, total: int | None = None) -> Job:
        job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, state, total, params, created_at, started_at, updated_at) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (job_id, kind, total, json.dumps(params or {}, default=str), now, now, now),
            )
        job = self.get_job(job_id)
        assert job is not None
        return job

    def update_job(
        self, job_id: str, *, done: int | None = None, total: int | None = None,
        state: JobState | None = None, result: dict[str, Any] | None = None, error: str | None = None,
    ) -> None:
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [time.time()]
        if done is not None:
            sets.append("done = ?")
            params.append(done)
        if total is not None:
            sets.append("total = ?")
            params.append(total)
        if state is not None:
            sets.append("state = ?")
            params.append(state)
            if state in ("succeeded", "failed", "cancelled"):
                sets.append("finished_at = ?")
                params.append(time.time())
        if result is not None:
            sets.append("result = ?")
            params.append(json.dumps(result, default=str))
        if error is not None:
            sets.append("error = ?")
            params.append(error)
        with self.transaction() as conn:
            conn.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", [*params, job_id])

    def get_job(self, job_id: str) -> Job | None:
        rows = self.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return job_from_row(rows[0]) if rows else None

    def list_jobs(self, kind: str | None = None, limit: int = 50) -> list[Job]:
        sql, params = "SELECT * FROM jobs", list[Any]()
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [job_from_row(r) for r in self.query(sql, params)]

    @contextmanager
    def job(self, kind: str, params: dict[str, Any] | None = None, total: int | None = None) -> Iterator[Job]:
        """Run a block as a job: marked succeeded on exit, failed (with the error) if it raises."""
        job = self.create_job(kind, params, total)
        try:
            yield job
        except BaseException as exc:
            state: JobState = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            self.update_job(job.id, state=state, error=f"{type(exc).__name__}: {exc}")
            raise
        else:
            current = self.get_job(job.id)
            if current is not None and current.state == "running":
                self.update_job(job.id, state="succeeded")

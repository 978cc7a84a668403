"""The catalog's jobs: durable records of long work (kind, state, progress, owner, heartbeat, outcome).

A job records the process that runs it (pid, host, start time) and, while it runs, a heartbeat every few
seconds. A job whose owner is gone (killed with SIGKILL, a crashed server) is marked ``abandoned`` with the
reason by :meth:`JobsMixin.reconcile_jobs`, which every command runs when it opens the catalog. A cancel
request (:meth:`JobsMixin.request_cancel`) is seen by the job at its next batch (:meth:`JobsMixin.progress`
raises :class:`JobCancelled`): what it finished stays, and running the command again resumes it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tools.catalog.connection import CatalogBase
from tools.catalog.owner import current_owner, owner_alive, this_host
from tools.catalog.records import Job, job_from_row
from tools.catalog.schema import FINISHED_STATES, JobState

log = logging.getLogger(__name__)

#: what started the jobs of this context (e.g. ``chat:<thread id>``), recorded with each job
job_origin: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_origin", default=None)


class JobCancelled(Exception):
    """A running job saw a cancel request at a batch boundary; its finished batches are kept."""

    def __init__(self, job_id: str, done: int | None = None, total: int | None = None) -> None:
        where = f" at {done}/{total if total is not None else '?'}" if done is not None else ""
        super().__init__(f"job {job_id} was cancelled on request{where}; what it finished is kept, and running "
                         "the same command again resumes it")
        self.job_id = job_id


@contextmanager
def origin(name: str | None) -> Iterator[None]:
    """Record ``name`` as the origin of the jobs started in this block (and the threads it copies into)."""
    token = job_origin.set(name)
    try:
        yield
    finally:
        job_origin.reset(token)


class _Heartbeat:
    """A daemon thread writing a job's heartbeat every ``every`` seconds until stopped."""

    def __init__(self, catalog: JobsMixin, job_id: str, every: float) -> None:
        self._catalog, self._job_id, self._every = catalog, job_id, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> _Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._catalog.heartbeat(self._job_id)
            except Exception:  # noqa: BLE001 - a missed beat is not worth failing the job for
                log.debug("heartbeat of job %s failed", self._job_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class JobsMixin(CatalogBase):
    """Jobs: create, update, read, run a block as a job, cancel, and reconcile the ones whose owner died."""

    #: seconds between heartbeats of a running job
    heartbeat_every: float = 10.0
    #: a job owned by another host (or by nobody known) is abandoned after this long without a heartbeat
    stale_after: float = 120.0

    # -- jobs -------------------------------------------------------------------------------------

    def create_job(self, kind: str, params: dict[str, Any] | None = None, total: int | None = None,
                   *, origin: str | None = None) -> Job:
        job_id = f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        now = time.time()
        owner = current_owner()
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, state, total, params, created_at, started_at, updated_at, owner_pid, "
                "owner_host, owner_start, heartbeat_at, origin) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, kind, total, json.dumps(params or {}, default=str), now, now, now, owner.pid, owner.host,
                 owner.start, now, origin if origin is not None else job_origin.get()),
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
            if state in FINISHED_STATES:
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

    def progress(self, job_id: str, done: int, total: int | None = None) -> None:
        """Record a finished batch; raises :class:`JobCancelled` when the job was asked to stop."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET done = ?, total = COALESCE(?, total), updated_at = ?, heartbeat_at = ? "
                         "WHERE id = ?", (done, total, now, now, job_id))
            row = conn.execute("SELECT cancel_requested_at, total FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None and row["cancel_requested_at"] is not None:
            raise JobCancelled(job_id, done, row["total"])

    def cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked this job to stop (for loops that stop by themselves, e.g. training)."""
        rows = self.query("SELECT cancel_requested_at FROM jobs WHERE id = ?", (job_id,))
        return bool(rows and rows[0]["cancel_requested_at"] is not None)

    def heartbeat(self, job_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND state = 'running'", (time.time(), job_id))

    def get_job(self, job_id: str) -> Job | None:
        rows = self.query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return job_from_row(rows[0]) if rows else None

    def list_jobs(self, kind: str | None = None, limit: int = 50, *, state: str | None = None) -> list[Job]:
        where, params = [], list[Any]()
        for column, value in (("kind", kind), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM jobs" + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        return [job_from_row(r) for r in self.query(sql, params)]

    # -- cancel and reconcile ---------------------------------------------------------------------

    def request_cancel(self, job_id: str) -> Job:
        """Ask a running job to stop at its next batch; a job whose process is gone is closed at once."""
        job = self.get_job(job_id)
        if job is None:
            raise LookupError(f"no job {job_id!r}; `skyscout jobs` lists them")
        if job.state != "running":
            raise ValueError(f"job {job_id} is {job.state}, not running; there is nothing to cancel")
        with self.transaction() as conn:
            conn.execute("UPDATE jobs SET cancel_requested_at = ? WHERE id = ? AND cancel_requested_at IS NULL",
                         (time.time(), job_id))
        gone = self._owner_gone(self.query("SELECT * FROM jobs WHERE id = ?", (job_id,))[0], time.time())
        if gone is not None:
            self._finish_if_running(job_id, "cancelled", f"cancelled on request; {gone}")
        found = self.get_job(job_id)
        assert found is not None
        return found

    def reconcile_jobs(self) -> list[Job]:
        """Mark ``abandoned`` (with the reason) every running job whose owner is gone; returns them."""
        now = time.time()
        marked = []
        for row in self.query("SELECT * FROM jobs WHERE state = 'running'"):
            reason = self._owner_gone(row, now)
            if reason is not None and self._finish_if_running(row["id"], "abandoned", f"abandoned: {reason}"):
                found = self.get_job(row["id"])
                if found is not None:
                    marked.append(found)
        return marked

    def _owner_gone(self, row: Any, now: float) -> str | None:
        """Why the owner of a running job is known to be gone, or None while it may still run."""
        host = row["owner_host"]
        if host == this_host():
            alive = owner_alive(row["owner_pid"], row["owner_start"])
            if alive is False:
                return f"its process (pid {row['owner_pid']} on {host}) ended without finishing it"
            if alive is True:
                return None
        last = row["heartbeat_at"] or row["updated_at"] or row["started_at"] or row["created_at"]
        if now - float(last) > self.stale_after:
            owner = f"pid {row['owner_pid']} on {host}" if host else "an unrecorded process"
            return f"no heartbeat from its process ({owner}) for {now - float(last):.0f} s"
        return None

    def _finish_if_running(self, job_id: str, state: JobState, error: str) -> bool:
        now = time.time()
        with self.transaction() as conn:
            cur = conn.execute("UPDATE jobs SET state = ?, error = ?, finished_at = ?, updated_at = ? "
                               "WHERE id = ? AND state = 'running'", (state, error, now, now, job_id))
        return cur.rowcount > 0

    @contextmanager
    def job(self, kind: str, params: dict[str, Any] | None = None, total: int | None = None) -> Iterator[Job]:
        """Run a block as a job: succeeded on exit, failed (with the error) if it raises, cancelled on a cancel
        request or an interrupt; a heartbeat is written while it runs."""
        job = self.create_job(kind, params, total)
        beat = _Heartbeat(self, job.id, self.heartbeat_every).start()
        try:
            yield job
        except JobCancelled as exc:
            self.update_job(job.id, state="cancelled", error=str(exc))
            raise
        except BaseException as exc:
            state: JobState = "cancelled" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
            self.update_job(job.id, state=state, error=f"{type(exc).__name__}: {exc}")
            raise
        else:
            current = self.get_job(job.id)
            if current is not None and current.state == "running":
                self.update_job(job.id, state="succeeded")
        finally:
            beat.stop()


__all__ = ["JobCancelled", "JobsMixin", "job_origin", "origin"]

"""Item 2: jobs whose process died (SIGKILL) are marked abandoned, with the reason, by the next command; SIGTERM
ends a job as cancelled; `skyscout jobs cancel` and `POST /v1/jobs/{id}/cancel` stop a job at its next batch."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.conftest import OPERATE, PROJECT, READ, catalog_rows, cli_env, copy_tiles, spawn

HOLD_A_JOB = """
import sys, time
from tools.catalog import Catalog
catalog = Catalog(sys.argv[1])
with catalog.job("caption", {"captioner": "template"}, total=10):
    print("started", flush=True)
    time.sleep(600)
"""


def _hold_a_job(home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_A_JOB, str(home / "catalog.db")], cwd=PROJECT, text=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    return proc


def _wait_for(home: Path, sql: str, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not catalog_rows(home, sql):
        assert proc.poll() is None, f"the process ended first: {proc.communicate()[1][-2000:]}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_job_whose_process_was_killed_is_abandoned_at_the_next_command(indexed_home: Path, cli: Any) -> None:
    victim = _hold_a_job(indexed_home)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    code, status = cli("status")
    assert code == 0 and status["running_jobs"] == []
    (state, error), = catalog_rows(indexed_home, "SELECT state, error FROM jobs WHERE kind = 'caption'")
    assert state == "abandoned" and f"pid {victim.pid}" in error and "ended without finishing" in error
    assert status["abandoned_jobs"][0]["reason"] == error


@pytest.mark.slow
def test_sigterm_ends_a_running_job_as_cancelled(indexed_home: Path, tmp_path: Path, roots: str, cli: Any) -> None:
    copy_tiles(tmp_path / "new", 16)
    assert cli("ingest", str(tmp_path / "new"))[0] == 0
    env = cli_env(indexed_home, roots)
    run = spawn("index", "--batch-size", "2", "--num-workers", "0", "--json", "--no-progress", env=env)
    _wait_for(indexed_home, "SELECT 1 FROM jobs WHERE kind = 'index' AND state = 'running' AND done > 82", run)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err[-2000:]
    (state, error), = catalog_rows(indexed_home, "SELECT state, error FROM jobs WHERE kind = 'index' "
                                                 "ORDER BY created_at DESC LIMIT 1")
    assert state == "cancelled" and "SIGTERM" in error


@pytest.mark.slow
def test_jobs_cancel_stops_a_job_at_its_next_batch_and_a_rerun_resumes_it(indexed_home: Path, tmp_path: Path,
                                                                          roots: str, cli: Any) -> None:
    copy_tiles(tmp_path / "new", 16)
    assert cli("ingest", str(tmp_path / "new"))[0] == 0
    env = cli_env(indexed_home, roots)
    run = spawn("index", "--batch-size", "2", "--num-workers", "0", "--json", "--no-progress", env=env)
    _wait_for(indexed_home, "SELECT 1 FROM jobs WHERE kind = 'index' AND state = 'running' AND done > 82", run)
    (job_id,), = catalog_rows(indexed_home, "SELECT id FROM jobs WHERE kind = 'index' AND state = 'running'")
    code, doc = cli("jobs", "cancel", job_id)
    assert code == 0 and doc["cancel_requested_at"] is not None, doc
    out, err = run.communicate(timeout=300)
    assert run.returncode == 2 and "cancelled on request" in out, (out[-2000:], err[-2000:])
    (state, done), = catalog_rows(indexed_home, "SELECT state, done FROM jobs WHERE id = ?", (job_id,))
    assert state == "cancelled" and done < 96
    code, report = cli("index", "--num-workers", "0")
    assert code == 0 and report["skipped_existing"] >= done and report["count"] == report["images"]


def test_http_cancel_needs_an_operate_token(indexed_home: Path, api: Any) -> None:
    victim = _hold_a_job(indexed_home)
    try:
        (job_id,), = catalog_rows(indexed_home, "SELECT id FROM jobs WHERE state = 'running'")
        assert api(READ).post(f"/v1/jobs/{job_id}/cancel").status_code == 403
        r = api(OPERATE).post(f"/v1/jobs/{job_id}/cancel")
        assert r.status_code == 200 and r.json()["cancel_requested_at"] is not None, r.text
        assert api(OPERATE).post("/v1/jobs/nope/cancel").status_code == 404
    finally:
        victim.kill()
        victim.wait()

"""Helpers for the tests that kill a run mid-training and start it again."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tools.catalog import Catalog


def wait_for_training_step(home: Path, proc: subprocess.Popen[str], step: int, timeout: float = 300) -> None:
    """Return once the running train job in ``home`` has done ``step`` steps; fail if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    catalog: Catalog | None = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed:\n{proc.stderr.read() if proc.stderr else ''}")
            if catalog is None and (home / "catalog.db").exists():
                catalog = Catalog(home / "catalog.db")
            jobs = catalog.list_jobs(kind="train") if catalog is not None else []
            if jobs and jobs[0].state == "running" and jobs[0].done >= step:
                return
            time.sleep(0.1)
    finally:
        if catalog is not None:
            catalog.close()
    pytest.fail(f"training did not reach step {step} in time")

"""Item 3: `skyscout improve --once` runs under the improvement loop's lock: while another tick (a scheduler,
another `improve --once`) holds it, it runs nothing and says so in one line."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from tests.hardening.conftest import catalog_rows


def test_improve_once_runs_nothing_while_another_tick_holds_the_lock(indexed_home: Path, cli: Any,
                                                                     capsys: Any) -> None:
    decisions = catalog_rows(indexed_home, "SELECT COUNT(*) FROM decisions")[0][0]
    fd = os.open(indexed_home / "improve.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running tick (the scheduler) holds
        code, doc = cli("improve", "--once")
    finally:
        os.close(fd)
    assert code == 2 and "already running" in doc["error"], doc
    assert catalog_rows(indexed_home, "SELECT COUNT(*) FROM decisions")[0][0] == decisions
    assert catalog_rows(indexed_home, "SELECT COUNT(*) FROM jobs WHERE kind = 'improve'")[0][0] == 0

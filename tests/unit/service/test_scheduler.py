"""The improvement loop's schedule parsing, its cross-process lock, and its resilience to failed ticks."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.scheduler import ImprovementLoop, TickBusy, parse_interval, tick_lock


def test_parse_interval() -> None:
    assert parse_interval("6h") == 21600
    assert parse_interval("30m") == 1800
    assert parse_interval("45") == 45
    assert parse_interval("1.5d") == 1.5 * 86400
    for bad in ("", "0s", "6 hours", "-1h"):
        with pytest.raises(ValueError):
            parse_interval(bad)


HOLD = "import sys, time; from pathlib import Path; from service.scheduler import tick_lock\n" \
       "with tick_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)\n"


def test_lock_is_exclusive_and_released_when_holder_is_killed(tmp_path: Path) -> None:
    lock = tmp_path / "improve.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[3])
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(TickBusy), tick_lock(lock):
        pass
    proc.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
    proc.wait()
    with tick_lock(lock):  # the OS released the dead holder's lock
        pass


def test_a_failed_tick_does_not_stop_the_loop(tmp_path: Path) -> None:
    calls: list[int] = []
    errors: list[BaseException] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first tick fails")

    loop = ImprovementLoop(tick, interval=0.05, lock_path=tmp_path / "l.lock", on_error=errors.append)
    thread = loop.start_in_background()
    deadline = time.time() + 10
    while len(calls) < 3 and time.time() < deadline:
        time.sleep(0.02)
    loop.stop()
    thread.join(timeout=5)
    assert len(calls) >= 3 and loop.failures == 1 and len(errors) == 1

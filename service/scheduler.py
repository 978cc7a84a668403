"""The autonomous improvement loop: every interval, ingest what is new in watched folders and let the
planner act (caption, retrain, evaluate, promote, re-index), recording its decisions.

One tick runs at a time, across processes: the lock is an ``flock`` on a file in SKYSCOUT_HOME, which the
operating system releases when its holder dies, so a crashed process never leaves a stale lock behind.
A tick that fails is logged (and recorded as a failed job) and the loop goes on.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """``"6h"`` -> 21600.0; accepts s, m, h, d and plain seconds; refuses zero and nonsense."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m:
        raise ValueError(f"cannot read interval {text!r}; use e.g. 90s, 30m, 6h or 1d")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"interval must be positive, got {text!r}")
    return seconds


class TickBusy(RuntimeError):
    """Another process (or thread) is running a tick right now."""


@contextmanager
def tick_lock(path: Path) -> Iterator[None]:
    """Hold the improvement-loop lock for the duration of a tick, or raise :class:`TickBusy`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TickBusy(f"an improvement tick is already running (lock {path})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


class ImprovementLoop:
    """Runs ``tick()`` now and then every ``interval`` seconds until stopped."""

    def __init__(self, tick: Callable[[], Any], *, interval: float, lock_path: Path,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.tick = tick
        self.interval = interval
        self.lock_path = lock_path
        self.on_error = on_error
        self._stop = threading.Event()
        self.ticks = 0
        self.failures = 0

    def run_once(self) -> Any:
        """One tick under the lock. Errors propagate (the loop catches them; ``--once`` reports them)."""
        with tick_lock(self.lock_path):
            self.ticks += 1
            return self.tick()

    def run_forever(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once()
            except TickBusy as exc:
                log.info("%s; skipping this tick", exc)
            except Exception as exc:  # noqa: BLE001 - a failed tick must not end the loop
                self.failures += 1
                log.exception("improvement tick failed; the loop goes on")
                if self.on_error is not None:
                    self.on_error(exc)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def start_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="skyscout-improve", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def improvement_tick(ctx: Any) -> dict[str, Any]:
    """One tick: ingest new files from the watched folders, then one planner improvement round.

    ``ctx`` is a :class:`service.context.AppContext`. Returns what was ingested and the decisions taken;
    the whole tick is recorded as an ``improve`` job.
    """
    from agents.planner import run_improvement_round
    from tools.ingest import ingest_directory

    settings = ctx.settings
    watched = [Path(p) for p in settings.watch_dirs.split(":") if p.strip()]
    with ctx.catalog.job("improve", {"watch_dirs": [str(p) for p in watched]}) as job:
        ingested = []
        for folder in watched:
            if not folder.is_dir():
                log.warning("watched folder %s does not exist; skipped", folder)
                continue
            report = ingest_directory(ctx.catalog, folder, allowed_roots=settings.roots, progress=False,
                                      workers=settings.workers, max_pixels=settings.max_pixels)
            ingested.append({"folder": str(folder), "added": report.added, "rejected": len(report.rejected)})
        deps = ctx.agent_deps()
        decisions = run_improvement_round(deps, llm=ctx.chat_model())
        result = {"ingested": ingested,
                  "decisions": [{"action": d.action, "reason": d.reason, "outcome": d.outcome} for d in decisions]}
        ctx.catalog.update_job(job.id, result=result)
    return result

"""The autonomous improvement loop: every interval, ingest what is new in watched folders and let the
planner act (caption, retrain, evaluate, promote, re-index), recording its decisions. Each tick is one
run of the agent graph (the only runner), the same as ``skyscout improve --once`` and ``/v1/improve``.

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
from typing import TYPE_CHECKING, Any

from service.settings import Settings

if TYPE_CHECKING:
    from graph.runner import Event
    from service.context import Services

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
    """Another process (or thread) is running a tick right now (the CLI prints it as one line, exit code 2)."""

    for_user = True


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


#: the catalog alias naming the thread of the latest improvement round (resumed when it did not finish)
ROUND_THREAD_ALIAS = "improve_thread"


def round_intents(settings: Settings) -> list[dict[str, Any]]:
    """The commands of one tick: ingest each watched folder that exists, then an improvement round."""
    intents: list[dict[str, Any]] = []
    for folder in (Path(p) for p in settings.watch_dirs.split(":") if p.strip()):
        if folder.is_dir():
            intents.append({"intent": "ingest", "args": {"path": str(folder)}, "text": f"ingest watched {folder}"})
        else:
            log.warning("watched folder %s does not exist; skipped", folder)
    return [*intents, {"intent": "improve", "text": "improvement round"}]


def improvement_tick(services: Services, *, on_event: Callable[[Event], None] | None = None) -> dict[str, Any]:
    """One tick through the agent graph: the watched folders are ingested, then the planner's round acts.

    A round that did not finish (the process died, or it waits for approval) is continued rather than
    started again: its thread id is kept in the catalog. The tick is recorded as an ``improve`` job.
    Callers hold the tick lock (:func:`tick_lock`).
    """
    from graph.runner import new_thread_id

    catalog, runner = services.app.catalog, services.runner()
    thread = catalog.get_alias(ROUND_THREAD_ALIAS)
    resume = thread is not None and runner.pending(thread) is not None
    if not resume:
        thread = new_thread_id("improve")
        catalog.set_alias(ROUND_THREAD_ALIAS, thread)
    assert thread is not None
    with catalog.job("improve", {"thread_id": thread, "resumed": resume}) as job:
        outcome = runner.run(None if resume else "improvement round", thread_id=thread,
                             intents=None if resume else round_intents(services.settings), on_event=on_event)
        ids = {d["id"] for d in outcome.decisions if d.get("id") is not None}
        decisions = sorted((d for d in catalog.decisions(limit=max(50, 2 * len(ids))) if d["id"] in ids),
                           key=lambda d: d["id"])
        result = {"thread_id": thread, "status": outcome.status, "resumed": resume,
                  "ingested": [{"folder": r["data"].get("path"), "added": r["data"].get("added"),
                                "rejected": r["data"].get("rejected")}
                               for r in outcome.results if r["action"] == "ingest_images" and r["status"] == "ok"],
                  "decisions": [{"action": d["action"], "reason": d["reason"], "outcome": d["outcome"]}
                                for d in decisions],
                  "answer": outcome.answer, "errors": outcome.errors}
        catalog.update_job(job.id, result=result)
    return result

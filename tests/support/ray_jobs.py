"""Helpers for the Ray engine tests: a slowed-down template captioner and killing a Ray actor's process."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import psutil

from tools.captioning.base import CaptionInput
from tools.captioning.rules import TemplateCaptioner


class SlowTemplateCaptioner(TemplateCaptioner):
    """The template captioner, 0.3 s slower per batch, so that a kill lands while the job is running."""

    def caption(self, batch: list[CaptionInput]) -> list[list[str]]:
        time.sleep(0.3)
        return super().caption(batch)


def slow_template() -> SlowTemplateCaptioner:
    return SlowTemplateCaptioner()


def actor_pids(marker: str) -> list[int]:
    """Process ids of the Ray workers whose title names ``marker`` (e.g. ``MapBatches(Embedder)``)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("ray::") and marker in cmdline:
            found.append(proc.pid)
    return found


def kill_actor(marker: str) -> int | None:
    """SIGKILL one live actor process named by ``marker``; its pid, or None if there is none."""
    for pid in actor_pids(marker):
        try:
            os.kill(pid, signal.SIGKILL)
            return pid
        except ProcessLookupError:
            continue
    return None


class KillerThread(threading.Thread):
    """Waits until ``ready()`` holds, then kills one actor named by ``marker`` (its pid in ``killed``)."""

    def __init__(self, marker: str, ready: Any, timeout: float = 300) -> None:
        super().__init__(daemon=True)
        self.marker, self.ready, self.timeout = marker, ready, timeout
        self.killed: int | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self.killed is None:
            if self.ready():
                self.killed = kill_actor(self.marker)
            time.sleep(0.05)

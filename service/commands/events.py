"""How a run reads in a terminal while it goes: the plan, each step as it starts, progress of long steps.

Each step's result is printed once, in the answer at the end; while the run goes the terminal shows what
is running now (``-> s3 training/train_candidate``) and, for long steps, throttled progress.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def progress_line(p: dict[str, Any]) -> str:
    """``training: step 40/300, loss 2.1`` or ``indexing: 640/1000 images``."""
    if p.get("task") == "train":
        return f"     training: step {p.get('step')}/{p.get('total')}, loss {p.get('loss')}"
    if p.get("task") == "index":
        return f"     indexing: {p.get('done')}/{p.get('total')} images"
    return f"     progress: {p}"


def _final(p: dict[str, Any]) -> bool:
    return p.get("step") == p.get("total") or p.get("done") == p.get("total")


class EventPrinter:
    """Prints a run's events as they arrive; progress at most every ``every`` seconds (and the last one)."""

    def __init__(self, out: TextIO | None = None, *, every: float = 2.0, enabled: bool = True) -> None:
        self.out = out or sys.stderr
        self.every = every
        self.enabled = enabled
        self._last = 0.0

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def __call__(self, event: tuple[str, dict[str, Any]]) -> None:
        if not self.enabled:
            return
        mode, chunk = event
        if mode == "updates":
            plan = (chunk.get("interpret") or {}).get("plan") if isinstance(chunk.get("interpret"), dict) else None
            if plan:
                self._print("  plan: " + ", ".join(f"{s['agent']}/{s['action']}" for s in plan))
            return
        if "started" in chunk:
            s = chunk["started"]
            self._print(f"  -> {s['step']} {s['agent']}/{s['action']}")
            return
        p = chunk.get("progress")
        now = time.monotonic()
        if isinstance(p, dict) and (_final(p) or now - self._last >= self.every):
            self._last = now
            self._print(progress_line(p))

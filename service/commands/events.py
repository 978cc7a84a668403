"""How a run's events read in a terminal: one line per finished step, throttled progress of long steps."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def step_lines(node: str, change: Any) -> list[str]:
    """Readable lines for one node's update: each step it finished or skipped, and a new plan."""
    if not isinstance(change, dict):
        return []
    lines = [f"  [{r['step']} {r['agent']}/{r['action']}] {r['status']}: "
             f"{((r.get('summary') or '').splitlines() or [''])[0]}" for r in change.get("results") or []]
    if node == "interpret" and change.get("plan"):
        lines.insert(0, "  plan: " + ", ".join(f"{s['agent']}/{s['action']}" for s in change["plan"]))
    return lines


def progress_line(event: dict[str, Any]) -> str | None:
    """``training: step 40/300, loss 2.1`` or ``indexing: 640/1000 images``."""
    p = event.get("progress")
    if not isinstance(p, dict):
        return None
    if p.get("task") == "train":
        return f"  training: step {p.get('step')}/{p.get('total')}, loss {p.get('loss')}"
    if p.get("task") == "index":
        return f"  indexing: {p.get('done')}/{p.get('total')} images"
    return f"  progress: {p}"


class EventPrinter:
    """Prints a run's events as they arrive; progress at most every ``every`` seconds (and the last one)."""

    def __init__(self, out: TextIO | None = None, *, every: float = 2.0, enabled: bool = True) -> None:
        self.out = out or sys.stderr
        self.every = every
        self.enabled = enabled
        self._last = 0.0

    def __call__(self, event: tuple[str, dict[str, Any]]) -> None:
        if not self.enabled:
            return
        mode, chunk = event
        if mode == "custom":
            line = progress_line(chunk)
            now = time.monotonic()
            p = chunk.get("progress") or {}
            final = p.get("step") == p.get("total") or p.get("done") == p.get("total")
            if line and (final or now - self._last >= self.every):
                self._last = now
                print(line, file=self.out, flush=True)
            return
        for node, change in chunk.items():
            for line in step_lines(node, change):
                print(line, file=self.out, flush=True)

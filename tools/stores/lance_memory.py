"""An in-memory copy of a small LanceDB table, for unfiltered exact searches without LanceDB's per-query cost.

Below :data:`MEMORY_MAX_ROWS` rows (and without an ANN index) an exact search is a matrix product: a few
hundred microseconds for thousands of 512-d vectors, where a LanceDB query costs milliseconds of planning
and event-loop round trips (measured in ``bench/bench_search.py``). The copy is checked against the table's
version at most every :data:`CHECK_EVERY_S` seconds and reloaded when the table changed (LanceDB readers
see other processes' writes within its read-consistency interval the same way); local writes drop it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.stores.base import Hit

#: tables up to this many rows are searched in memory when a search has no filter (100 MB at 512-d)
MEMORY_MAX_ROWS = 50_000
#: how often the table's version is compared with the copy's
CHECK_EVERY_S = 2.0


@dataclass
class Snapshot:
    """The table's rows at one version: ids, unit vectors (n, dim) and each row's metadata."""

    version: int
    checked: float
    ids: list[str]
    vectors: np.ndarray
    metadata: list[dict[str, Any]]

    def search(self, q: np.ndarray, k: int) -> list[Hit]:
        if not self.ids:
            return []
        scores = self.vectors @ q
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Hit(id=self.ids[i], score=float(scores[i]), metadata=dict(self.metadata[i])) for i in top]


class MemoryCopy:
    """The (lazily loaded, version-checked) in-memory copy of one table; thread-safe."""

    def __init__(self, version: Callable[[], int], count: Callable[[], int],
                 load: Callable[[], tuple[list[str], np.ndarray, list[dict[str, Any]]]]) -> None:
        self._version, self._count, self._load = version, count, load
        self._snapshot: Snapshot | None = None
        self._too_big_at: float | None = None
        self._lock = threading.Lock()

    def drop(self) -> None:
        """Forget the copy (after a local write)."""
        self._snapshot = None
        self._too_big_at = None

    def current(self) -> Snapshot | None:
        """The copy, reloaded if the table changed; None while the table is too big to copy."""
        now = time.monotonic()
        snap = self._snapshot
        if snap is not None and now - snap.checked < CHECK_EVERY_S:
            return snap
        if self._too_big_at is not None and now - self._too_big_at < CHECK_EVERY_S:
            return None
        with self._lock:
            snap = self._snapshot
            if snap is not None and now - snap.checked < CHECK_EVERY_S:
                return snap
            version = self._version()
            if snap is not None and snap.version == version:
                snap.checked = now
                return snap
            if self._count() > MEMORY_MAX_ROWS:
                self._snapshot, self._too_big_at = None, now
                return None
            ids, vectors, metadata = self._load()
            self._snapshot = Snapshot(version, now, ids, vectors, metadata)
            self._too_big_at = None
            return self._snapshot


__all__ = ["CHECK_EVERY_S", "MEMORY_MAX_ROWS", "MemoryCopy", "Snapshot"]

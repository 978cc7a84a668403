"""Text encoding for many concurrent searches: one forward pass for the texts of every waiting caller, and a
small LRU of recent texts' vectors.

Under load each search embeds its query through eight prompt templates. Encoding each search on its own
thread means as many small forward passes competing for the same cores (and, without a lock, a race on the
model's ``train()``/``eval()`` mode). :class:`BatchingTextEncoder` lets the first caller that finds the model
idle encode the texts of everyone waiting in one batch; the others wait for their rows. The cache keys are the
exact texts (prompts included), so a repeated query costs a dictionary look-up; benchmarks report runs with
distinct queries too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

TextEncoder = Callable[[list[str]], np.ndarray]


class _Request:
    __slots__ = ("error", "result", "texts")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class BatchingTextEncoder:
    """A thread-safe :data:`TextEncoder` that batches concurrent callers and caches recent texts.

    ``encode`` is the underlying encoder (texts -> unit rows); it is only ever called by one thread at a time.
    ``max_batch`` bounds how many texts one forward pass takes; ``cache_size`` (0: none) how many rows are kept.
    """

    def __init__(self, encode: TextEncoder, *, cache_size: int = 4096, max_batch: int = 512) -> None:
        self._encode = encode
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._busy = False
        self.batches = 0  # forward passes run (for tests and benchmarks)

    def __call__(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return self._encode(texts)
        with self._cond:
            rows = [self._cache.get(t) for t in texts]
            for t, row in zip(texts, rows, strict=True):
                if row is not None:
                    self._cache.move_to_end(t)
        missing = sorted({t for t, row in zip(texts, rows, strict=True) if row is None})
        if missing:
            found = self._wait_for(_Request(missing))
            rows = [row if row is not None else found[t] for t, row in zip(texts, rows, strict=True)]
        return np.stack([np.asarray(r) for r in rows])

    def _wait_for(self, request: _Request) -> dict[str, np.ndarray]:
        """Queue ``request``; lead a batch whenever the encoder is idle, else wait for a leader to answer it."""
        with self._cond:
            self._pending.append(request)
            while request.result is None and request.error is None:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch = self._take()
                self._cond.release()
                try:
                    self._lead(batch)
                finally:
                    self._cond.acquire()
            return self._rows(request)

    def _take(self) -> list[_Request]:
        """The waiting requests that fit one batch (the caller holds the lock)."""
        taken: list[_Request] = []
        size = 0
        while self._pending and (not taken or size + len(self._pending[0].texts) <= self._max_batch):
            request = self._pending.pop(0)
            taken.append(request)
            size += len(request.texts)
        return taken

    def _lead(self, batch: list[_Request]) -> None:
        """Encode a batch's texts in one pass and hand each request its rows (runs without the lock)."""
        texts = sorted({t for r in batch for t in r.texts})
        try:
            vectors = np.asarray(self._encode(texts), dtype=np.float32)
            error: BaseException | None = None
        except BaseException as exc:  # noqa: BLE001 - every waiting caller gets the error
            vectors, error = np.zeros((0, 0), dtype=np.float32), exc
        index = {t: i for i, t in enumerate(texts)}
        with self._cond:
            self.batches += 1
            for r in batch:
                if error is not None:
                    r.error = error
                else:
                    r.result = vectors[[index[t] for t in r.texts]]
            if error is None and self._cache_size:
                for t, i in index.items():
                    self._cache[t] = vectors[i]
                    self._cache.move_to_end(t)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            self._busy = False
            self._cond.notify_all()

    @staticmethod
    def _rows(request: _Request) -> dict[str, np.ndarray]:
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return dict(zip(request.texts, request.result, strict=True))


__all__ = ["BatchingTextEncoder", "TextEncoder"]

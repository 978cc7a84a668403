"""Training tests run torch single-threaded: tiny models gain nothing from threads, and on a busy
machine OpenMP threads that spin-wait for each other make a 2-step run take seconds instead of 0.1 s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_threaded_torch() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""The cosine schedule with linear warmup, as a pure function of the step."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tools.schedule import cosine_lr


def test_warmup_rises_linearly_to_base_lr() -> None:
    lrs = [cosine_lr(s, base_lr=1.0, warmup_steps=4, total_steps=10) for s in range(4)]
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_cosine_decays_from_base_to_min_and_stays() -> None:
    kw: dict[str, Any] = {"base_lr": 2.0, "warmup_steps": 2, "total_steps": 12, "min_lr": 0.5}
    assert cosine_lr(2, **kw) == pytest.approx(2.0)  # first step after warmup: the top of the cosine
    assert cosine_lr(7, **kw) == pytest.approx(0.5 + 0.5 * 1.5)  # halfway: the midpoint
    assert cosine_lr(12, **kw) == pytest.approx(0.5)
    assert cosine_lr(100, **kw) == pytest.approx(0.5)
    decay = [cosine_lr(s, **kw) for s in range(2, 13)]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))


def test_matches_closed_form_without_warmup() -> None:
    for s in range(20):
        expected = 0.5 * (1 + math.cos(math.pi * s / 20)) * 3e-4
        assert cosine_lr(s, base_lr=3e-4, warmup_steps=0, total_steps=20) == pytest.approx(expected)


def test_is_pure() -> None:
    kw: dict[str, Any] = {"base_lr": 1e-3, "warmup_steps": 3, "total_steps": 30}
    assert [cosine_lr(s, **kw) for s in range(30)] == [cosine_lr(s, **kw) for s in range(30)]


def test_degenerate_schedules() -> None:
    assert cosine_lr(0, base_lr=1.0, warmup_steps=0, total_steps=1) == pytest.approx(1.0)
    assert cosine_lr(5, base_lr=1.0, warmup_steps=5, total_steps=5, min_lr=0.1) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"step": -1, "base_lr": 1.0, "warmup_steps": 0, "total_steps": 5},
        {"step": 0, "base_lr": 1.0, "warmup_steps": -1, "total_steps": 5},
        {"step": 0, "base_lr": 1.0, "warmup_steps": 0, "total_steps": 5, "min_lr": 2.0},
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    step = int(kwargs.pop("step"))
    with pytest.raises(ValueError):
        cosine_lr(step, **kwargs)

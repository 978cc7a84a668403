"""Learning-rate schedule as a pure function of the step: linear warmup, then cosine decay.

Being a function of the step alone (no scheduler object with hidden state), the schedule resumes
exactly: a restarted run only needs the step it stopped at.
"""

from __future__ import annotations

import math

__all__ = ["cosine_lr"]


def cosine_lr(step: int, *, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    During warmup (``step < warmup_steps``) the rate rises linearly to ``base_lr``, reaching it at the last
    warmup step (``base_lr * (step + 1) / warmup_steps``, as open_clip does, so step 0 is never 0). Then it
    follows half a cosine from ``base_lr`` down to ``min_lr``, which it reaches at ``total_steps`` and keeps
    for any later step.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps < 0 or total_steps < 0:
        raise ValueError(f"warmup_steps and total_steps must be >= 0, got {warmup_steps} and {total_steps}")
    if min_lr > base_lr:
        raise ValueError(f"min_lr ({min_lr}) must not exceed base_lr ({base_lr})")
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0:
        return min_lr
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (base_lr - min_lr)

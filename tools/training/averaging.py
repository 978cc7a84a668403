"""Weight averaging: an exponential moving average over the run (EMA) and WiSE-FT mixing with the start."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["Ema", "wise_ft"]


class Ema:
    """Exponential moving average of a model's state (trainable parameters and BatchNorm statistics).

    The average starts as a copy of the weights and follows ``avg = d * avg + (1 - d) * weights`` after each
    optimizer step, with the warm-up ``d = min(decay, (1 + step) / (10 + step))`` so that early steps (when the
    weights move most) do not dominate. Integer buffers (BatchNorm's step counters) are copied. Frozen
    parameters never change, so they are copied once and left out of every update (a frozen MiniLM text
    tower is two thirds of skyscout-tiny).
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
        self.moving = [k for k in self.state if k not in frozen]

    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        current = model.state_dict()
        with torch.no_grad():
            for k in self.moving:
                avg, v = self.state[k], current[k]
                if avg.is_floating_point():
                    avg.mul_(d).add_(v.detach().to(avg.dtype), alpha=1 - d)
                else:
                    avg.copy_(v)


def wise_ft(
    start_state_dict: Mapping[str, torch.Tensor],
    finetuned_state_dict: Mapping[str, torch.Tensor],
    alpha: float,
) -> dict[str, torch.Tensor]:
    """WiSE-FT weight-space ensemble: ``(1 - alpha) * start + alpha * finetuned`` for every float tensor.

    Non-float tensors (integer counters, boolean masks) are taken from the finetuned state. Both state
    dicts must have the same keys and shapes.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    missing, extra = (
        set(finetuned_state_dict) - set(start_state_dict),
        set(start_state_dict) - set(finetuned_state_dict),
    )
    if missing or extra:
        raise ValueError(f"state dicts differ: only in finetuned {sorted(missing)}, only in start {sorted(extra)}")
    out: dict[str, torch.Tensor] = {}
    for key, ft in finetuned_state_dict.items():
        st = start_state_dict[key]
        if st.shape != ft.shape:
            raise ValueError(f"shape mismatch for {key!r}: start {tuple(st.shape)}, finetuned {tuple(ft.shape)}")
        if ft.is_floating_point():
            mixed = (1.0 - alpha) * st.detach().to(ft.device, torch.float32) + alpha * ft.detach().float()
            out[key] = mixed.to(ft.dtype)
        else:
            out[key] = ft.detach().clone()
    return out

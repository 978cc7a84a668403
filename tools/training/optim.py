"""The optimizer side: frozen towers, AdamW parameter groups, autocast, and one optimizer step.

Gradient accumulation keeps the contrastive negatives of the whole effective batch, as open_clip's
``--accum-freq`` does: the features of every micro-batch are first computed without gradients, then each
micro-batch is recomputed with gradients and scored against the cached features of the others. The
summed gradient equals that of one batch of ``batch_size * accum_steps`` (``logit_scale`` takes its
gradient once), at the price of one extra forward pass per micro-batch.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from open_clip.loss import ClipLoss, SigLipLoss

from tools.training.config import Precision, Tower, TrainConfig

__all__ = ["add_siglip_bias", "autocast_for", "build_optimizer", "freeze_tower", "group_masked_clip_loss",
           "optimizer_step"]

#: SigLIP's starting bias (Zhai et al., 2023): with one positive among many pairs, every pair starts as "no match"
SIGLIP_INIT_BIAS = -10.0


def _tower_of(name: str) -> Literal["image", "text", "shared"]:
    if name.startswith("visual."):
        return "image"
    if name in ("logit_scale", "logit_bias"):
        return "shared"
    return "text"


def freeze_tower(model: torch.nn.Module, tower: Tower | None) -> None:
    """Freeze a tower: its parameters get ``requires_grad=False`` and its modules go to eval mode.

    The image tower is ``model.visual``; the text tower is everything else but ``logit_scale``/
    ``logit_bias`` (open_clip ``CLIP`` keeps it in top-level modules, ``CustomTextCLIP`` in ``model.text``).
    Call again after every ``model.train()``, which puts the modules back in training mode.
    """
    if tower is None:
        return
    if tower not in ("text", "image"):
        raise ValueError(f"freeze must be None, 'text' or 'image', got {tower!r}")
    for name, p in model.named_parameters():
        if _tower_of(name) == tower:
            p.requires_grad_(False)
    for name, child in model.named_children():
        if (name == "visual") == (tower == "image"):
            child.eval()


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over trainable parameters; no decay on rank<2 tensors, biases, norms and logit_scale."""

    def no_decay(name: str, p: torch.nn.Parameter) -> bool:  # open_clip_train.main's rule
        return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    groups = [
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": config.weight_decay},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)


def add_siglip_bias(model: torch.nn.Module) -> bool:
    """Give ``model`` the learned ``logit_bias`` that SigLIP's loss needs, unless it has one (a SigLIP preset).

    Returns whether one was added. An added bias serves the loss only: ranking by cosine (search, zero-shot,
    detection's softmax over prompts) does not change with it, and the trained model is saved without it.
    """
    if getattr(model, "logit_bias", None) is not None:
        return False
    scale = model.logit_scale
    assert isinstance(scale, torch.Tensor)
    model.logit_bias = torch.nn.Parameter(torch.full_like(scale.detach(), SIGLIP_INIT_BIAS))
    return True


def autocast_for(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of ``precision`` (bf16 or fp16 AMP), or a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def optimizer_step(
    net: Any,
    micro: list[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: ClipLoss | SigLipLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    autocast: contextlib.AbstractContextManager[Any],
    config: TrainConfig,
    dev: torch.device,
    text_bank: torch.Tensor | None = None,
    row_groups: torch.Tensor | None = None,
) -> float:
    """One optimizer step over ``accum_steps`` micro-batches; returns the (effective-batch) loss.

    With ``text_bank`` (frozen text tower), the text side of each micro-batch is a row index into it. With
    ``row_groups`` (the caption cluster of each row of the bank), two samples whose captions are of one cluster
    are not each other's negatives (:func:`group_masked_clip_loss`).
    """
    optimizer.zero_grad(set_to_none=True)
    moved = [(img.to(dev, non_blocking=True), txt.to(dev, non_blocking=True)) for img, txt in micro]
    backward = _Backward(net, loss_fn, scaler, autocast, text_bank, row_groups)
    loss_value = backward.single(*moved[0]) if len(moved) == 1 else backward.accumulated(moved)
    _apply_gradients(optimizer, scaler, config.grad_clip)
    with torch.no_grad():  # as in CLIP: the temperature never exceeds 100
        net.logit_scale.clamp_(0, math.log(100))
    return loss_value


@dataclass(frozen=True)
class _Backward:
    """Forward and backward passes of one optimizer step's micro-batches (gradients summed into ``.grad``)."""

    net: Any
    loss_fn: ClipLoss | SigLipLoss
    scaler: torch.amp.GradScaler | None
    autocast: contextlib.AbstractContextManager[Any]
    text_bank: torch.Tensor | None
    row_groups: torch.Tensor | None = None

    def encode_text(self, texts: torch.Tensor) -> torch.Tensor:
        if self.text_bank is not None:
            return self.text_bank[texts]
        return self.net.encode_text(texts, normalize=True)

    def loss(self, images: torch.Tensor, texts: torch.Tensor, rows: torch.Tensor, *, first: bool = True
             ) -> torch.Tensor:
        """The contrastive loss of image and text features; ``rows`` (bank rows) decide the masked pairs.

        Only the ``first`` micro-batch of an accumulated step passes gradients to the temperature (and SigLIP's
        bias), so that they take them once, not ``accum_steps`` times.
        """
        scale = self.net.logit_scale.exp()
        scale = scale if first else scale.detach()
        if isinstance(self.loss_fn, SigLipLoss):
            bias = self.net.logit_bias
            return self.loss_fn(images, texts, scale, bias if first else bias.detach())
        if self.row_groups is None:
            return self.loss_fn(images, texts, scale)
        return group_masked_clip_loss(images, texts, scale, self.row_groups[rows])

    def backward(self, loss: torch.Tensor) -> None:
        _raise_if_not_finite(loss)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def single(self, images: torch.Tensor, texts: torch.Tensor) -> float:
        """One micro-batch: its contrastive loss; returns its value."""
        with self.autocast:
            image_features = self.net.encode_image(images, normalize=True)
            loss = self.loss(image_features, self.encode_text(texts), texts)
        self.backward(loss)
        return float(loss.detach().item())

    def accumulated(self, moved: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """Several micro-batches scored together; returns the first one's loss (that of the whole batch)."""
        net = self.net
        # Cache every micro-batch's features, then recompute one micro-batch at a time with gradients.
        with torch.no_grad(), self.autocast:
            cached_img = [net.encode_image(i, normalize=True) for i, _ in moved]
            cached_txt = [self.encode_text(t) for _, t in moved]
        all_rows = torch.cat([t for _, t in moved])
        loss_value = float("nan")
        for j, (images, texts) in enumerate(moved):
            with self.autocast:
                img_j = net.encode_image(images, normalize=True)
                txt_j = self.encode_text(texts)
                loss = self.loss(
                    torch.cat([*cached_img[:j], img_j, *cached_img[j + 1 :]]),
                    torch.cat([*cached_txt[:j], txt_j, *cached_txt[j + 1 :]]),
                    all_rows,
                    first=j == 0,
                )
            self.backward(loss)
            if j == 0:
                loss_value = float(loss.detach().item())
        return loss_value


def group_masked_clip_loss(
    images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric contrastive loss, where a pair of samples of one group is no negative.

    ``images`` and ``texts`` are ``(n, d)`` unit features of matching pairs and ``groups`` ``(n,)`` the group of
    each pair. The logit of image ``i`` against text ``j != i`` of the same group is left out of both softmaxes
    (two images whose captions say the same thing are not told apart); with distinct groups this is exactly
    open_clip's ``ClipLoss``.
    """
    logits = scale * images @ texts.T
    same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool, device=groups.device)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(groups), device=logits.device)
    return (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2


def _apply_gradients(
    optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, grad_clip: float | None
) -> None:
    """Clip the summed gradient (unscaled first under fp16) and step the optimizer."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if scaler is not None:
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        optimizer.step()


def _raise_if_not_finite(loss: torch.Tensor) -> None:
    if not torch.isfinite(loss.detach()).all():
        raise FloatingPointError(f"loss is {loss.item()}: training diverged; lower lr, raise warmup, or set grad_clip")

"""Data-parallel training under torchrun: ranks from the environment, each rank's share of the batches, DDP.

``torchrun`` (``torch.distributed.run``) starts one process per device and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous variables; :func:`from_env` joins the process group (NCCL on CUDA, gloo on
CPU). Then :func:`tools.training.train` given the :class:`DistContext`:

- keeps the single-process batches: ``batch_size`` stays the *global* micro-batch, the sampler builds the
  same caption-cluster order on every rank and each rank takes its contiguous slice (:class:`RankBatches`);
- wraps the towers in :class:`~torch.nn.parallel.DistributedDataParallel` and scores them with open_clip's
  ``ClipLoss(local_loss=True, gather_with_grad=True, rank, world_size)``: each rank's images against every
  rank's texts and back, whose mean over ranks is the single-process loss (reported all-reduced);
- synchronises batch norm across ranks (``torch.nn.SyncBatchNorm`` on CUDA, :class:`CpuSyncBatchNorm` with
  gloo, which torch's does not support), so the statistics are those of the global batch;
- accumulates gradients with ``no_sync`` and all-reduces them once per optimizer step;
- writes checkpoints, the log and the final weights on rank 0 only; every rank resumes from rank 0's files.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from open_clip.loss import ClipLoss

from tools.training.data import RunBatches
from tools.training.optim import _apply_gradients, _raise_if_not_finite

__all__ = ["CpuSyncBatchNorm", "DistContext", "RankBatches", "Towers", "ddp_step", "from_env", "in_torchrun",
           "sync_batchnorm"]


def in_torchrun() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: str | torch.device) -> torch.device:
        """The rank's device: ``cuda:LOCAL_RANK`` when training on CUDA, else the CPU."""
        return torch.device(f"cuda:{self.local_rank}") if torch.device(device).type == "cuda" else torch.device("cpu")

    def loss(self) -> ClipLoss:
        return ClipLoss(local_loss=True, gather_with_grad=True, rank=self.rank, world_size=self.world_size)

    def barrier(self) -> None:
        dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (e.g. the run directory it chose)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float, device: torch.device) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size


def from_env(device: str | torch.device = "cpu") -> DistContext | None:
    """Join the process group torchrun describes (once); None in a single process."""
    if not in_torchrun():
        return None
    cuda = torch.device(device).type == "cuda"
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local)


class RankBatches(RunBatches):
    """The rank's contiguous slice of each global micro-batch of :class:`RunBatches` (same order everywhere)."""

    def __init__(self, *args: Any, rank: int, world_size: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.micro_batch % world_size:
            raise ValueError(f"batch_size {self.micro_batch} must be a multiple of the {world_size} processes")
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Any:
        per = self.micro_batch // self.world_size
        for batch in super().__iter__():
            yield batch[self.rank * per:(self.rank + 1) * per]


class CpuSyncBatchNorm(torch.nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the whole batch across ranks (gloo, any device).

    Two all-reduces per layer (sum, then the sum of squared deviations), autograd-aware
    (:func:`torch.distributed.nn.functional.all_reduce`), so gradients flow to every rank's inputs.
    In eval mode, or without a process group, it is a plain BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        total = all_reduce(torch.cat([x.sum(dim=dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = x - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum(dim=dims)) / n
        tracked = self.num_batches_tracked
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None \
                and tracked is not None:
            with torch.no_grad():
                tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        out = centred / torch.sqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out


def sync_batchnorm(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Batch norm layers synchronised across ranks (same parameters, buffers and state-dict keys)."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.BatchNorm2d:
                child.__class__ = CpuSyncBatchNorm  # the same layer, synchronised: nothing to copy
                setattr(module, name, child)
    return model


class Towers(torch.nn.Module):
    """One forward for DDP: image features, text features (or rows of a frozen tower's bank), scale."""

    def __init__(self, model: torch.nn.Module, text_bank: torch.Tensor | None) -> None:
        super().__init__()
        self.model = model
        self.text_bank = text_bank

    def forward(self, images: torch.Tensor, texts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        net: Any = self.model
        img = net.encode_image(images, normalize=True)
        txt = self.text_bank[texts] if self.text_bank is not None else net.encode_text(texts, normalize=True)
        return img, txt, net.logit_scale.exp()


def wrap(model: torch.nn.Module, text_bank: torch.Tensor | None, device: torch.device) -> Any:
    """The towers in DistributedDataParallel (parameters broadcast from rank 0 as it starts)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(Towers(model, text_bank), device_ids=ids, forward_sync_buffers=False)


def ddp_step(run: Any, micro: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """One optimizer step on this rank's share of ``accum_steps`` micro-batches; returns the global loss.

    As :func:`tools.training.optim.optimizer_step`, with accumulation caching the other micro-batches'
    features; every micro-batch but the first runs under ``no_sync``, the first last, so DDP all-reduces the
    summed gradient once (and ``logit_scale`` takes its gradient once).
    """
    ddp, dctx = run.ddp, run.dist
    run.optimizer.zero_grad(set_to_none=True)
    moved = [(i.to(run.dev, non_blocking=True), t.to(run.dev, non_blocking=True)) for i, t in micro]

    def backward(loss: torch.Tensor) -> None:
        _raise_if_not_finite(loss)
        (run.scaler.scale(loss) if run.scaler is not None else loss).backward()

    if len(moved) == 1:
        with run.autocast:
            loss = run.loss_fn(*ddp(*moved[0]))
        backward(loss)
        value = float(loss.detach().item())
    else:
        with torch.no_grad(), run.autocast:
            cached = [ddp.module(i, t) for i, t in moved]
        value = float("nan")
        for j in [*range(1, len(moved)), 0]:
            sync = contextlib.nullcontext() if j == 0 else ddp.no_sync()
            with sync, run.autocast:
                img_j, txt_j, scale = ddp(*moved[j])
                loss = run.loss_fn(torch.cat([*(c[0] for c in cached[:j]), img_j, *(c[0] for c in cached[j + 1:])]),
                                   torch.cat([*(c[1] for c in cached[:j]), txt_j, *(c[1] for c in cached[j + 1:])]),
                                   scale if j == 0 else scale.detach())
                backward(loss)
            if j == 0:
                value = float(loss.detach().item())
    _apply_gradients(run.optimizer, run.scaler, run.config.grad_clip)
    with torch.no_grad():
        run.net.logit_scale.clamp_(0, math.log(100))
    return dctx.mean(value, run.dev)

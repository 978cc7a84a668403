"""One run of :func:`~tools.training.train`: its state, and setting it up afresh or from a checkpoint."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from open_clip.loss import ClipLoss, SigLipLoss
from PIL import Image

from tools.augment import build_train_transform
from tools.schedule import cosine_lr
from tools.training.averaging import Ema
from tools.training.config import CHECKPOINT_NAME, FINAL_MODEL_NAME, LOG_NAME, WISE_START_NAME, TrainConfig, TrainItem
from tools.training.data import CaptionedImages, Collate, RunBatches, caption_bank, caption_clusters
from tools.training.optim import add_siglip_bias, autocast_for, build_optimizer, freeze_tower
from tools.training.state import atomic_save, check_resumable, items_fingerprint, set_rng_states, train_state, trim_log

__all__ = ["Run", "check_inputs", "default_transform", "make_loader", "new_run", "prepare_captions", "restore",
           "start_afresh"]


@dataclass
class Run:
    """One call of :func:`train`: what it was given, what it built, and where it stands."""

    model: torch.nn.Module
    tokenizer: Callable[[list[str]], torch.Tensor]
    items: Sequence[TrainItem]
    config: TrainConfig
    out: Path
    dev: torch.device
    micro_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    warmup: int
    fingerprint: str
    optimizer: torch.optim.AdamW
    scaler: torch.amp.GradScaler | None
    loss_fn: ClipLoss | SigLipLoss
    autocast: contextlib.AbstractContextManager[Any]
    start_step: int = 0
    resumed_from: int | None = None
    ema: Ema | None = None
    caption_rows: dict[str, int] | None = None  # with a frozen text tower: caption -> row of text_bank
    text_bank: torch.Tensor | None = None
    groups: np.ndarray | None = None  # caption cluster per item (batch_order="spread_captions")
    row_groups: torch.Tensor | None = None  # caption cluster per row of text_bank (config.mask_group_pairs)
    step: int = 0  # optimizer steps done
    lr: float = 0.0
    loss_value: float = float("nan")
    stopped: bool = False  # on_step asked to stop before the end
    dist: Any = None  # DistContext under torchrun (tools.training.distributed); None in one process
    ddp: Any = None  # the towers in DistributedDataParallel, under torchrun
    added_bias: bool = False  # config.loss="siglip" gave the model a logit_bias, which the saved model leaves out

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run's files (always, but on ranks other than 0 under torchrun)."""
        return self.dist is None or self.dist.is_main

    @property
    def net(self) -> Any:
        return self.model  # duck-typed open_clip model

    @property
    def ckpt_path(self) -> Path:
        return self.out / CHECKPOINT_NAME

    @property
    def log_path(self) -> Path:
        return self.out / LOG_NAME

    def lr_at(self, step: int) -> float:
        return cosine_lr(
            step,
            base_lr=self.config.lr,
            warmup_steps=self.warmup,
            total_steps=self.total_steps,
            min_lr=self.config.min_lr,
        )

    def save_state(self) -> Path:
        """Write the checkpoint of the current step (atomically; rank 0 only under torchrun); returns its path."""
        if not self.is_main:
            return self.ckpt_path
        atomic_save(
            train_state(
                step=self.step, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
                fingerprint=self.fingerprint, config=self.config, model=self.model, optimizer=self.optimizer,
                scaler=self.scaler, device=self.dev, groups=self.groups,
                ema=self.ema.state if self.ema is not None else None,
            ),
            self.ckpt_path,
        )
        return self.ckpt_path


def check_inputs(items: Sequence[TrainItem], config: TrainConfig, device: torch.device) -> None:
    if config.precision != "fp32" and device.type != "cuda":
        raise ValueError(
            f"precision={config.precision!r} (AMP) needs a CUDA device, got {device}; use precision='fp32' on CPU"
        )
    if len(items) < config.effective_batch_size:
        raise ValueError(
            f"{len(items)} training items is less than one optimizer step "
            f"(batch_size {config.batch_size} x accum_steps {config.accum_steps}); "
            "lower batch_size or add data"
        )
    empty = [it.image_path for it in items if not it.captions]
    if empty:
        raise ValueError(f"{len(empty)} training items have no caption, e.g. {empty[:3]}; caption them first")


def default_transform(model: Any, config: TrainConfig) -> Callable[[Image.Image], torch.Tensor]:
    visual = getattr(model, "visual", None)
    cfg = getattr(visual, "preprocess_cfg", None) or {}
    size = cfg.get("size", getattr(visual, "image_size", None))
    mean, std = (
        cfg.get("mean", getattr(visual, "image_mean", None)),
        cfg.get("std", getattr(visual, "image_std", None)),
    )
    if size is None or mean is None or std is None:
        raise ValueError(
            "train_transform is None and the model does not say its image size and normalisation "
            "(visual.preprocess_cfg); pass tools.augment.train_transform_like(preprocess_val)"
        )
    return build_train_transform(size, mean, std, **config.augment.transform_kwargs())



def new_run(
    model: torch.nn.Module, tokenizer: Callable[[list[str]], torch.Tensor], items: Sequence[TrainItem],
    config: TrainConfig, out: Path, dev: torch.device, dist: Any = None,
) -> Run:
    """Sizes of the run, the model on ``dev`` with its frozen tower, optimizer, scaler and loss.

    Under torchrun (``dist``), batch norm is synchronised across ranks and the loss is open_clip's
    distributed ``ClipLoss`` (:mod:`tools.training.distributed`)."""
    for torn in out.glob(".*.tmp-*"):  # left by a run killed while writing a checkpoint
        torn.unlink(missing_ok=True)
    micro_per_epoch = len(items) // config.batch_size // config.accum_steps * config.accum_steps
    steps_per_epoch = micro_per_epoch // config.accum_steps
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup = round(config.warmup_fraction * total_steps) if config.warmup_fraction is not None else config.warmup_steps
    fingerprint = items_fingerprint(items)
    model.to(dev)
    siglip = config.loss == "siglip"
    if dist is not None:
        if config.mask_group_pairs or siglip:
            raise ValueError("mask_group_pairs and loss='siglip' are not supported under torchrun yet; run on one "
                             "process or leave them off")
        from tools.training.distributed import sync_batchnorm

        sync_batchnorm(model, dev)
    added_bias = siglip and add_siglip_bias(model)
    freeze_tower(model, config.freeze)
    optimizer = build_optimizer(model, config)
    loss_fn: ClipLoss | SigLipLoss = SigLipLoss() if siglip else dist.loss() if dist is not None else ClipLoss()
    return Run(
        model=model, tokenizer=tokenizer, items=items, config=config, out=out, dev=dev,
        micro_per_epoch=micro_per_epoch, steps_per_epoch=steps_per_epoch, total_steps=total_steps, warmup=warmup,
        fingerprint=fingerprint, optimizer=optimizer,
        scaler=torch.amp.GradScaler("cuda") if config.precision == "fp16" else None,
        loss_fn=loss_fn, autocast=autocast_for(config.precision, dev), dist=dist, added_bias=added_bias,
    )


def restore(run: Run, state: dict[str, Any]) -> tuple[np.ndarray | None, dict[str, torch.Tensor] | None]:
    """Continue from a checkpoint: weights, optimizer, scaler, step, log and RNG states.

    Returns the checkpoint's caption groups and weight average, if it holds them.
    """
    check_resumable(state, run.config, run.fingerprint, run.ckpt_path)
    run.model.load_state_dict(state["model"], strict=True)
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scaler is not None and state.get("scaler") is not None:
        run.scaler.load_state_dict(state["scaler"])
    run.start_step = run.step = run.resumed_from = int(state["step"])
    groups = state["caption_groups"].numpy() if state.get("caption_groups") is not None else None
    if run.is_main:
        trim_log(run.log_path, run.start_step)
    set_rng_states(state["rng"], run.dev)
    return groups, state.get("ema")


def start_afresh(run: Run) -> None:
    """Clear what an earlier run left, keep the starting weights for WiSE-FT, and seed the global RNGs."""
    if run.is_main:
        run.log_path.write_text("")
        for stale in (run.ckpt_path, run.out / FINAL_MODEL_NAME, run.out / WISE_START_NAME):
            stale.unlink(missing_ok=True)
    if run.config.wise_alpha is not None and run.is_main:
        atomic_save({k: v.detach().cpu() for k, v in run.model.state_dict().items()}, run.out / WISE_START_NAME)
    random.seed(run.config.seed)
    np.random.seed(run.config.seed % 2**32)
    torch.manual_seed(run.config.seed)


def prepare_captions(run: Run, saved_groups: np.ndarray | None) -> None:
    """The frozen text tower's caption features, and the caption clusters that order the batches."""
    if run.config.freeze == "text":
        run.caption_rows, run.text_bank = caption_bank(run.net, run.tokenizer, run.items, run.dev, run.autocast)
    if run.config.batch_order != "spread_captions":
        return
    if saved_groups is not None:  # a resumed run keeps the groups it started with (the text tower may move)
        run.groups = saved_groups
    else:
        run.groups = _clusters(run)
    if run.config.mask_group_pairs:
        assert run.caption_rows is not None and run.text_bank is not None
        run.row_groups = row_groups(run.items, run.caption_rows, run.groups).to(run.dev)


def row_groups(items: Sequence[TrainItem], caption_rows: dict[str, int], groups: np.ndarray) -> torch.Tensor:
    """The caption cluster of each caption: the cluster of most of the images that carry it."""
    counts = np.zeros((len(caption_rows), int(groups.max()) + 1), dtype=np.int64)
    for it, g in zip(items, groups, strict=True):
        for c in set(it.captions):
            counts[caption_rows[c], g] += 1
    return torch.from_numpy(counts.argmax(axis=1))


def _clusters(run: Run) -> np.ndarray:
    """Cluster the images by their captions (:func:`~tools.training.data.caption_clusters`)."""
    if run.text_bank is not None:
        rows, bank = run.caption_rows, run.text_bank
    else:  # a trainable text tower: embed the captions once with its starting weights, without dropout
        run.model.eval()
        rows, bank = caption_bank(run.net, run.tokenizer, run.items, run.dev, run.autocast)
        run.model.train()
        freeze_tower(run.model, run.config.freeze)
    assert rows is not None
    k = min(run.config.caption_groups or run.config.effective_batch_size, len(run.items))
    return caption_clusters(run.items, rows, bank, k=k, seed=run.config.seed)


def make_loader(run: Run, transform: Callable[[Image.Image], torch.Tensor]) -> torch.utils.data.DataLoader[Any]:
    """The run's remaining micro-batches, from its current step on."""
    config = run.config
    sampler_args = (len(run.items), config.batch_size, run.micro_per_epoch, run.start_step * config.accum_steps,
                    run.total_steps * config.accum_steps, config.seed)
    sampler_kwargs: dict[str, Any] = {"groups": run.groups, "group_batch": config.effective_batch_size}
    if any(it.batch_with is not None for it in run.items):  # hard negatives meet their positives
        sampler_kwargs["partners"] = np.array([-1 if it.batch_with is None else it.batch_with for it in run.items],
                                              dtype=np.int64)
    if run.dist is not None:  # this rank's slice of the same global batches
        from tools.training.distributed import RankBatches

        sampler: RunBatches = RankBatches(*sampler_args, rank=run.dist.rank, world_size=run.dist.world_size,
                                          **sampler_kwargs)
    else:
        sampler = RunBatches(*sampler_args, **sampler_kwargs)
    return torch.utils.data.DataLoader(
        CaptionedImages(run.items, transform, config.seed, mix=config.augment.mix, mix_max=config.augment.mix_max),
        batch_sampler=sampler,
        collate_fn=Collate(run.tokenizer, run.caption_rows),
        num_workers=config.num_workers,
        pin_memory=run.dev.type == "cuda",
        generator=torch.Generator(),  # a private generator: the loader must not draw from the global RNG
    )

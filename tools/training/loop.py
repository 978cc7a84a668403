"""The training loop: :func:`train` sets a run up (or resumes one), runs its optimizer steps, and finishes it."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from tools.training.averaging import Ema, wise_ft
from tools.training.config import FINAL_MODEL_NAME, WISE_START_NAME, StepInfo, TrainConfig, TrainItem, TrainResult
from tools.training.optim import freeze_tower, optimizer_step
from tools.training.run import (
    Run,
    check_inputs,
    default_transform,
    make_loader,
    new_run,
    prepare_captions,
    restore,
    start_afresh,
)
from tools.training.state import atomic_save, load_train_state

__all__ = ["train"]

def train(
    model: torch.nn.Module,
    tokenizer: Callable[[list[str]], torch.Tensor],
    train_transform: Callable[[Image.Image], torch.Tensor] | None,
    items: Sequence[TrainItem],
    config: TrainConfig,
    *,
    out_dir: str | Path,
    resume: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = True,
    on_step: Callable[[StepInfo], bool | None] | None = None,
    dist: Any = None,
) -> TrainResult:
    """Fine-tune ``model`` contrastively on ``items``; checkpoints, log and final weights go to ``out_dir``.

    ``model`` is any open_clip-style model (``encode_image``, ``encode_text(normalize=)``, a
    ``logit_scale`` parameter); it is moved to ``device`` and trained in place, and returned weights
    are the final ones (WiSE-FT applied when ``config.wise_alpha`` is set), in eval mode.
    ``train_transform`` maps a PIL image to a normalised tensor (see :mod:`tools.augment`); None builds
    one from ``config.augment`` and the model's ``visual.preprocess_cfg``.

    ``resume=True`` continues from ``out_dir/checkpoint-latest.pt`` when it exists (else starts afresh)
    and ends with the same weights as an uninterrupted run; the config must match the checkpoint's
    except for ``num_workers``, ``log_every`` and ``checkpoint_every``. ``resume=False`` starts afresh
    and overwrites what a previous run left in ``out_dir``.

    ``on_step`` is called after every optimizer step; returning True stops the run after writing a
    checkpoint (``TrainResult.completed`` is then False; resume later to finish).

    ``dist`` (a :class:`~tools.training.distributed.DistContext`, under torchrun) makes this one rank of a
    data-parallel run: the same global batches and loss, DDP, files written by rank 0.
    """
    dev = torch.device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    check_inputs(items, config, dev)
    transform = train_transform if train_transform is not None else default_transform(model, config)
    run = new_run(model, tokenizer, items, config, out, dev, dist)
    if resume and run.ckpt_path.exists():
        saved_groups, saved_ema = restore(run, load_train_state(run.ckpt_path, map_location=dev))
    else:
        saved_groups, saved_ema = None, None
        start_afresh(run)
    if config.ema_decay is not None:
        run.ema = Ema(model, config.ema_decay)
        if saved_ema is not None:
            run.ema.state = {k: v.to(run.ema.state[k].device) for k, v in saved_ema.items()}
    prepare_captions(run, saved_groups)
    if dist is not None:
        from tools.training.distributed import wrap

        run.ddp = wrap(model, run.text_bank, dev)
    loader = make_loader(run, transform)
    with _deterministic_algorithms(config.deterministic, dev):
        clock = _Clock()
        with tqdm(total=run.total_steps, initial=run.start_step, desc="train", unit="step", file=sys.stderr,
                  disable=not progress, dynamic_ncols=True) as bar:
            _run_steps(run, loader, bar, clock, on_step)
    if not run.ckpt_path.exists():  # resumed a finished run, or a zero-step run
        run.save_state()
    elapsed = time.perf_counter() - clock.t_start
    final_path = None if run.stopped or not run.is_main else _save_final(run)
    model.eval()
    return _result(run, elapsed, final_path)


@contextlib.contextmanager
def _deterministic_algorithms(enabled: bool, dev: torch.device) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` (warn only) inside the block when ``enabled``; restored after."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    if enabled:
        if dev.type == "cuda":  # cuBLAS needs this (before its first use) for reproducible matmuls
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


# -- the steps ----------------------------------------------------------------------------------------


@dataclass
class _Clock:
    """Wall time of the session, of the last step, and of the current log window (with its losses)."""

    t_start: float = field(default_factory=time.perf_counter)
    t_window: float = 0.0
    t_last: float = 0.0
    window_loss: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.t_window = self.t_last = self.t_start

    def tick(self, samples: int, loss: float) -> float:
        """A step of ``samples`` ended with ``loss``; returns its samples per second."""
        now = time.perf_counter()
        sps = samples / max(now - self.t_last, 1e-9)
        self.t_last = now
        self.window_loss.append(loss)
        return sps

    def close_window(self, samples_per_step: int) -> tuple[float, float]:
        """Mean loss and samples per second of the window's steps; the next window starts now."""
        loss = float(np.mean(self.window_loss))
        sps = samples_per_step * len(self.window_loss) / max(self.t_last - self.t_window, 1e-9)
        self.window_loss, self.t_window = [], self.t_last
        return loss, sps


def _run_steps(run: Run, loader: torch.utils.data.DataLoader[Any], bar: Any, clock: _Clock,
               on_step: Callable[[StepInfo], bool | None] | None) -> None:
    """Optimizer steps until the run is done, or ``on_step`` asks to stop (then ``run.stopped``)."""
    run.lr = run.lr_at(max(run.step - 1, 0))  # the last step's rate, reported if no step runs
    run.model.train()
    freeze_tower(run.model, run.config.freeze)
    batches = iter(loader)
    with open(run.log_path, "a", encoding="utf-8") as log:
        while run.step < run.total_steps:
            sps = _step(run, batches, clock)
            logit_scale = float(run.net.logit_scale.exp().item())
            bar.update(1)
            bar.set_postfix(loss=f"{run.loss_value:.4f}", lr=f"{run.lr:.2e}", sps=f"{sps:.1f}", refresh=False)
            if run.is_main and (run.step % run.config.log_every == 0 or run.step == run.total_steps):
                _write_log(run, log, clock, logit_scale)
            written = _checkpoint_if_due(run)
            stop = False
            if on_step is not None:
                info = StepInfo(run.step, run.total_steps, (run.step - 1) // run.steps_per_epoch, run.loss_value,
                                run.lr, logit_scale, sps, written)
                stop = on_step(info) is True
            if run.dist is not None:  # rank 0 decides for every rank (a cancel must stop them all)
                stop = bool(run.dist.broadcast(stop))
            if stop and run.step < run.total_steps:
                if written is None:
                    run.save_state()
                run.stopped = True
                break


def _step(run: Run, batches: Iterator[Any], clock: _Clock) -> float:
    """One optimizer step (and the weight average's update); returns its samples per second."""
    run.lr = run.lr_at(run.step)
    for group in run.optimizer.param_groups:
        group["lr"] = run.lr
    micro = [next(batches) for _ in range(run.config.accum_steps)]
    if run.ddp is not None:
        from tools.training.distributed import ddp_step

        run.loss_value = ddp_step(run, micro)
    else:
        run.loss_value = optimizer_step(
            run.net, micro, run.loss_fn, run.optimizer, run.scaler, run.autocast, run.config, run.dev, run.text_bank,
            run.row_groups,
        )
    if run.ema is not None:
        run.ema.update(run.model, run.step)
    run.step += 1
    return clock.tick(run.config.effective_batch_size, run.loss_value)


def _write_log(run: Run, log: IO[str], clock: _Clock, logit_scale: float) -> None:
    loss, sps = clock.close_window(run.config.effective_batch_size)
    rec = {
        "step": run.step,
        "epoch": (run.step - 1) // run.steps_per_epoch,
        "loss": loss,
        "lr": run.lr,
        "samples_per_s": sps,
        "logit_scale": logit_scale,
        "time": time.time(),
    }
    log.write(json.dumps(rec) + "\n")
    log.flush()


def _checkpoint_if_due(run: Run) -> Path | None:
    every = run.config.checkpoint_every
    if run.step == run.total_steps or (every and run.step % every == 0):
        return run.save_state()
    return None


# -- the end ------------------------------------------------------------------------------------------


def _save_final(run: Run) -> Path:
    """The result's weights (the average if kept, then WiSE-FT if set) in ``model-final.pt``."""
    model, config = run.model, run.config
    if run.ema is not None:  # the averaged weights are the result (WiSE-FT, if set, then mixes them)
        model.load_state_dict(run.ema.state, strict=True)
    if config.wise_alpha is not None:
        start_sd = torch.load(run.out / WISE_START_NAME, map_location=run.dev, weights_only=True)
        model.load_state_dict(wise_ft(start_sd, model.state_dict(), config.wise_alpha), strict=True)
    if run.added_bias:  # SigLIP's bias served the loss; the model is the architecture it was given
        model.register_parameter("logit_bias", None)
    final_path = run.out / FINAL_MODEL_NAME
    atomic_save(
        {
            "state_dict": model.state_dict(),
            "step": run.step,
            "wise_alpha": config.wise_alpha,
            "config": config.model_dump(mode="json"),
        },
        final_path,
    )
    return final_path


def _result(run: Run, elapsed: float, final_path: Path | None) -> TrainResult:
    step, samples_per_step = run.step, run.config.effective_batch_size
    done_here = step - run.start_step
    return TrainResult(
        steps=step,
        total_steps=run.total_steps,
        completed=not run.stopped,
        epochs=step // run.steps_per_epoch if run.steps_per_epoch else 0,
        samples_seen=step * samples_per_step,
        final_loss=run.loss_value,
        final_lr=run.lr,
        logit_scale=float(run.net.logit_scale.exp().item()),
        samples_per_s=done_here * samples_per_step / elapsed if done_here else 0.0,
        elapsed_s=elapsed,
        resumed_from_step=run.resumed_from,
        checkpoint_path=run.ckpt_path,
        final_model_path=final_path,
        log_path=run.log_path,
        wise_alpha=run.config.wise_alpha,
        checkpoints=[p for p in (run.ckpt_path, final_path) if p is not None],
    )

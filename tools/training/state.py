"""Checkpoints and the log: atomic saves, RNG states, the checkpoint's contents, and resumability checks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tools.training.config import TrainConfig, TrainItem

__all__ = [
    "atomic_save",
    "check_resumable",
    "items_fingerprint",
    "load_train_state",
    "rng_states",
    "set_rng_states",
    "train_state",
    "trim_log",
]

_STATE_FORMAT = "skyscout-train-state/1"

# Config fields that may differ between a run and its resumption: they do not change the trajectory.
_RESUMABLE_CHANGES = frozenset({"num_workers", "log_every", "checkpoint_every"})


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file, fsync, then ``os.replace``: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):  # make the rename durable; not every filesystem allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def rng_states(device: torch.device) -> dict[str, Any]:
    np_state: tuple[Any, ...] = tuple(np.random.get_state(legacy=True))
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.random.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
    }


def set_rng_states(states: Mapping[str, Any], device: torch.device) -> None:
    random.setstate(states["python"])
    name, key, *rest = states["numpy"]
    np.random.set_state((name, key.numpy(), *rest))
    torch.random.set_rng_state(states["torch"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state_all(states["cuda"])


def items_fingerprint(items: Sequence[TrainItem]) -> str:
    h = hashlib.sha256()
    for it in items:
        row: list[Any] = [it.image_path, list(it.captions)]
        if it.batch_with is not None:  # only then: the fingerprints of runs without partners stay as they were
            row.append(it.batch_with)
        h.update(json.dumps(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def load_train_state(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint written by :func:`train` (``checkpoint-latest.pt``)."""
    state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    if state.get("format") != _STATE_FORMAT:
        raise ValueError(f"{path} is not a SkyScout training checkpoint (format {state.get('format')!r})")
    return state


def trim_log(log_path: Path, last_step: int) -> None:
    """Drop log records after ``last_step`` (written after the checkpoint we resume from) and torn lines."""
    if not log_path.exists():
        return
    kept: list[str] = []
    for line in log_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and int(rec.get("step", 0)) <= last_step:
            kept.append(line)
    log_path.write_text("".join(f"{line}\n" for line in kept))

def train_state(
    *, step: int, steps_per_epoch: int, total_steps: int, fingerprint: str, config: TrainConfig,
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
    device: torch.device, groups: np.ndarray | None, ema: Mapping[str, torch.Tensor] | None,
) -> dict[str, Any]:
    """What ``checkpoint-latest.pt`` holds after ``step`` optimizer steps (read by :func:`load_train_state`)."""
    return {
        "format": _STATE_FORMAT,
        "step": step,
        "epoch": step // steps_per_epoch,
        "step_in_epoch": step % steps_per_epoch,
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "items_fingerprint": fingerprint,
        "config": config.model_dump(mode="json"),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_states(device),
        "caption_groups": torch.from_numpy(groups) if groups is not None else None,
        "ema": ema,
    }


def check_resumable(state: Mapping[str, Any], config: TrainConfig, fingerprint: str, path: Path) -> None:
    saved = state["config"]
    now = config.model_dump(mode="json")
    changed = sorted(k for k in set(saved) | set(now) if k not in _RESUMABLE_CHANGES and saved.get(k) != now.get(k))
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ValueError(
            f"cannot resume from {path}: the config changed ({diffs}); "
            "use the checkpoint's config, or resume=False (or another out_dir) to start afresh"
        )
    if state["items_fingerprint"] != fingerprint:
        raise ValueError(
            f"cannot resume from {path}: the training items differ from the checkpointed run's; "
            "pass the same items in the same order, or resume=False to start afresh"
        )

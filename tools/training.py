"""Contrastive fine-tuning of open_clip-style image-text models, resumable to the exact bit on CPU.

:func:`train` runs the loop: open_clip's own ``ClipLoss``, AdamW (no weight decay on biases, norms,
embeddings of rank < 2 and ``logit_scale``, as open_clip does), the pure :func:`~tools.schedule.cosine_lr`
schedule with linear warmup, gradient clipping, gradient accumulation, AMP on CUDA (bf16 autocast, or
fp16 autocast with a ``GradScaler``), an optional frozen tower, an optional exponential moving average of
the weights (``ema_decay``), and optional WiSE-FT weight averaging.

Batches keep alike captions apart (``batch_order="spread_captions"``, the default): before the first
step, the images are clustered by their captions' embeddings (k-means, as many clusters as the batch is
large, no labels read) and each batch takes one image from each of the clusters with the most images
left. Repeated captions, as in UCM-captions where a scene type's images share their sentences, would
otherwise be each other's negatives in the contrastive loss.

Reproducibility is designed in rather than hoped for. Nothing in the data pipeline reads a global random
state: the order of an epoch is a permutation drawn from ``(seed, epoch)``, and the caption chosen for an
image and its augmentation are drawn from a seed derived from ``(seed, epoch, index)``. A sample is
therefore the same whichever worker decodes it, with any ``num_workers``, and a run resumed from a
checkpoint in the middle of an epoch sees exactly the batches the uninterrupted run would have seen. The
checkpoint (``checkpoint-latest.pt``, replaced atomically) holds model, optimizer, GradScaler, step,
epoch, position in the epoch, the caption clusters, the weight average, and the Python/NumPy/torch RNG
states, so a run killed at any moment and resumed ends with the same weights as one never interrupted
(on CPU, with the same thread count).

Gradient accumulation keeps the contrastive negatives of the whole effective batch, as open_clip's
``--accum-freq`` does: the features of every micro-batch are first computed without gradients, then each
micro-batch is recomputed with gradients and scored against the cached features of the others. The
summed gradient equals that of one batch of ``batch_size * accum_steps`` (``logit_scale`` takes its
gradient once), at the price of one extra forward pass per micro-batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from open_clip.loss import ClipLoss
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tqdm import tqdm

from tools.augment import AugmentConfig, build_train_transform
from tools.schedule import cosine_lr

__all__ = [
    "CHECKPOINT_NAME",
    "FINAL_MODEL_NAME",
    "LOG_NAME",
    "StepInfo",
    "TrainConfig",
    "TrainItem",
    "TrainResult",
    "build_optimizer",
    "caption_clusters",
    "freeze_tower",
    "kmeans_cosine",
    "load_train_state",
    "sample_seed",
    "spread_order",
    "train",
    "wise_ft",
]

CHECKPOINT_NAME = "checkpoint-latest.pt"
FINAL_MODEL_NAME = "model-final.pt"
WISE_START_NAME = "wise-start.pt"
LOG_NAME = "train_log.jsonl"
_STATE_FORMAT = "skyscout-train-state/1"

Precision = Literal["fp32", "bf16", "fp16"]
Tower = Literal["text", "image"]
BatchOrder = Literal["random", "spread_captions"]

# Config fields that may differ between a run and its resumption: they do not change the trajectory.
_RESUMABLE_CHANGES = frozenset({"num_workers", "log_every", "checkpoint_every"})

# Domain tags keep the streams derived from one seed apart.
_ORDER_STREAM = 1
_SAMPLE_STREAM = 2
_SPREAD_STREAM = 3


@dataclass(frozen=True)
class TrainItem:
    """One training image and its captions (one is sampled per visit)."""

    image_path: str
    captions: list[str]


class TrainConfig(BaseModel):
    """Hyper-parameters of a fine-tuning run (everything that shapes the trajectory, plus I/O cadence)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=2, description="micro-batch size (contrastive: needs >= 2)")
    accum_steps: int = Field(default=1, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(default=1e-5, gt=0)
    min_lr: float = Field(default=0.0, ge=0)
    weight_decay: float = Field(default=0.2, ge=0)
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int = Field(default=0, ge=0)
    warmup_fraction: float | None = Field(default=None, ge=0, le=1, description="overrides warmup_steps if set")
    grad_clip: float | None = Field(default=1.0, gt=0, description="max global L2 norm of the gradient; None: off")
    precision: Precision = "fp32"
    freeze: Tower | None = None
    batch_order: BatchOrder = Field(
        default="spread_captions",
        description="spread_captions: cluster the images by caption embedding and give each batch one image "
        "per cluster where the data allows, so a contrastive batch holds few alike captions (false "
        "negatives); random: a plain shuffle",
    )
    seed: int = 0
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimizer steps")
    checkpoint_every: int | None = Field(default=500, ge=1, description="optimizer steps; None: only at the end")
    num_workers: int = Field(default=2, ge=0)
    log_every: int = Field(default=10, ge=1)
    wise_alpha: float | None = Field(default=None, ge=0, le=1, description="WiSE-FT mixing weight of the finetuned")
    ema_decay: float | None = Field(
        default=None, ge=0, lt=1,
        description="keep an exponential moving average of the weights (e.g. 0.998) and return it as the result",
    )
    deterministic: bool = Field(default=False, description="torch.use_deterministic_algorithms during the run")
    augment: AugmentConfig = AugmentConfig()

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        return self

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.accum_steps


@dataclass(frozen=True)
class StepInfo:
    """What :func:`train` reports to ``on_step`` after each optimizer step."""

    step: int  # optimizer steps done, 1-based
    total_steps: int
    epoch: int
    loss: float
    lr: float
    logit_scale: float
    samples_per_s: float
    checkpoint: Path | None  # written after this step, if any


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`."""

    steps: int
    total_steps: int
    completed: bool  # False when on_step asked to stop (resume later to finish)
    epochs: int  # epochs fully done
    samples_seen: int
    final_loss: float
    final_lr: float
    logit_scale: float
    samples_per_s: float  # this session's optimizer-step samples over its wall time
    elapsed_s: float
    resumed_from_step: int | None
    checkpoint_path: Path
    final_model_path: Path | None
    log_path: Path
    wise_alpha: float | None
    checkpoints: list[Path] = field(default_factory=list)


# -- the data pipeline --------------------------------------------------------------------------------


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The 63-bit seed of item ``index`` in ``epoch`` (caption choice and augmentation)."""
    state = np.random.SeedSequence([seed, _SAMPLE_STREAM, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, _ORDER_STREAM, epoch])).permutation(n)


def kmeans_cosine(
    x: torch.Tensor, k: int, seed: int, *, restarts: int = 8, iters: int = 30, fit_rows: int = 20_000,
    chunk: int = 65536,
) -> np.ndarray:
    """Cluster unit vectors into ``k`` groups; one group id per row.

    Spherical k-means (centres renormalised, cosine similarity): greedy k-means++ seeding, Lloyd iterations, the
    best of ``restarts`` runs by total similarity (one run often merges two true clusters and splits
    another). It is fitted on at most ``fit_rows`` rows drawn at random, then every row goes to its
    nearest centre, in chunks of ``chunk`` rows. Deterministic for a given ``seed`` on one machine.
    """
    n = x.shape[0]
    k = max(1, min(k, n))
    x = x.float()
    gen = torch.Generator().manual_seed(seed)
    fit = x if n <= fit_rows else x[torch.randperm(n, generator=gen)[:fit_rows]]

    def nearest(rows: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sims, ids = [], []
        for lo in range(0, rows.shape[0], chunk):
            best = (rows[lo : lo + chunk] @ centers.T).max(dim=1)
            sims.append(best.values)
            ids.append(best.indices)
        return torch.cat(sims), torch.cat(ids)

    def one_run() -> tuple[float, torch.Tensor]:
        m = fit.shape[0]
        picked = [int(torch.randint(m, (1,), generator=gen))]
        dist = (1 - fit @ fit[picked[0]]).clamp_min(0)
        trials = 2 + int(math.log(k))
        for _ in range(1, k):  # greedy k-means++: of a few candidates drawn by squared distance, keep the best
            weights = dist**2
            if float(weights.sum()) > 0:
                candidates = torch.multinomial(weights, trials, replacement=True, generator=gen)
            else:
                candidates = torch.randint(m, (trials,), generator=gen)
            options = torch.minimum(dist[None, :], (1 - fit[candidates] @ fit.T).clamp_min(0))
            best_candidate = int((options**2).sum(dim=1).argmin())
            picked.append(int(candidates[best_candidate]))
            dist = options[best_candidate]
        centers = fit[picked].clone()
        sims, assign = nearest(fit, centers)
        for _ in range(iters):
            sums = torch.zeros_like(centers).index_add_(0, assign, fit)
            filled = torch.bincount(assign, minlength=k) > 0  # an emptied cluster keeps its old centre
            centers[filled] = torch.nn.functional.normalize(sums[filled], dim=-1)
            sims, new_assign = nearest(fit, centers)
            if torch.equal(new_assign, assign):
                break
            assign = new_assign
        return float(sims.sum()), centers

    best = max((one_run() for _ in range(max(1, restarts))), key=lambda run: run[0])
    return nearest(x, best[1])[1].numpy().astype(np.int64)


def caption_clusters(
    items: Sequence[TrainItem], caption_rows: Mapping[str, int], caption_features: torch.Tensor, k: int, seed: int
) -> np.ndarray:
    """Group id per item: k-means over each item's mean caption embedding (from the starting text tower).

    Images described alike land in one group without reading any label; on UC Merced's human captions,
    16 groups match its 16 scene types for 99% of the training images. :func:`spread_order` then keeps
    each contrastive batch to about one image per group.
    """
    feats = caption_features.detach().float().cpu()
    means = torch.stack([feats[[caption_rows[c] for c in it.captions]].mean(0) for it in items])
    return kmeans_cosine(torch.nn.functional.normalize(means, dim=-1), k, seed)


def spread_order(order: np.ndarray, groups: np.ndarray, seed: int, epoch: int = 0, batch: int = 16) -> np.ndarray:
    """Reorder a permutation so that each run of ``batch`` items mixes the groups (see :func:`caption_clusters`).

    Each batch takes one item from each of the ``batch`` groups with the largest share of their items still
    unused (ties in a random order of the groups, drawn per epoch); only when fewer groups than ``batch`` have
    items left does a group give a second item to one batch. With ``batch`` equal-sized groups every batch
    holds one image of each, so a contrastive batch holds as few alike captions (false negatives) as the
    data allows. Within a group, items keep their order in ``order``, so the epoch's shuffle still decides
    which image comes when. The result is a permutation of ``order``.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    tie = np.random.default_rng(np.random.SeedSequence([seed, _SPREAD_STREAM, epoch])).random(n_groups)
    members = groups[order]
    queues = [order[members == g] for g in range(n_groups)]
    sizes = np.array([len(q) for q in queues], dtype=np.float64)
    taken = np.zeros(n_groups, dtype=np.int64)
    out: list[int] = []
    while len(out) < len(order):
        slots = min(batch, len(order) - len(out))
        while slots > 0:
            avail = np.flatnonzero(taken < sizes)
            left = (sizes[avail] - taken[avail]) / sizes[avail]
            for g in avail[np.lexsort((tie[avail], -left))][:slots].tolist():
                out.append(int(queues[g][taken[g]]))
                taken[g] += 1
                slots -= 1
    return np.asarray(out, dtype=order.dtype)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch (CPU), NumPy and Python RNGs for a block, restoring their states afterwards."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


class _CaptionedImages(torch.utils.data.Dataset[tuple[torch.Tensor, str]]):
    """Item ``(epoch, index)``: augmented image and one caption, both fixed by ``(seed, epoch, index)``."""

    def __init__(self, items: Sequence[TrainItem], transform: Callable[[Image.Image], torch.Tensor], seed: int) -> None:
        self.items = items
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, str]:
        epoch, index = key
        item = self.items[index]
        s = sample_seed(self.seed, epoch, index)
        caption = item.captions[s % len(item.captions)]
        try:
            with Image.open(item.image_path) as im:
                image = im.convert("RGB")
        except Exception as exc:
            raise RuntimeError(f"cannot read training image {item.image_path!r}: {exc}") from exc
        with _seeded(s):
            return self.transform(image), caption


class _RunBatches(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """All remaining micro-batches of a run, epochs chained, starting at micro-batch ``start``."""

    def __init__(self, n_items: int, micro_batch: int, micro_per_epoch: int, start: int, stop: int, seed: int,
                 groups: np.ndarray | None = None, group_batch: int = 0):
        self.n_items = n_items
        self.micro_batch = micro_batch
        self.micro_per_epoch = micro_per_epoch
        self.start = start
        self.stop = stop
        self.seed = seed
        self.groups = groups  # caption group per item: when set, each batch mixes the groups
        self.group_batch = group_batch  # the contrastive batch (micro-batch x accumulation steps)

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order: np.ndarray | None = None
        for m in range(self.start, self.stop):
            epoch, pos = divmod(m, self.micro_per_epoch)
            if order is None or pos == 0:
                order = _epoch_order(self.seed, epoch, self.n_items)
                if self.groups is not None:
                    order = spread_order(order, self.groups, self.seed, epoch, self.group_batch)
            idx = order[pos * self.micro_batch : (pos + 1) * self.micro_batch]
            yield [(epoch, int(i)) for i in idx]


class _Collate:
    """Stack images and tokenize the captions (in the worker, so tokenization runs in parallel).

    With ``caption_rows`` (a frozen text tower whose features were computed once), captions become rows of
    that feature bank instead of tokens.
    """

    def __init__(
        self, tokenizer: Callable[[list[str]], torch.Tensor], caption_rows: Mapping[str, int] | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.caption_rows = caption_rows

    def __call__(self, batch: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([b[0] for b in batch])
        if self.caption_rows is not None:
            return images, torch.tensor([self.caption_rows[b[1]] for b in batch], dtype=torch.long)
        return images, self.tokenizer([b[1] for b in batch])


def _caption_bank(
    net: Any, tokenizer: Callable[[list[str]], torch.Tensor], items: Sequence[TrainItem], dev: torch.device,
    autocast: contextlib.AbstractContextManager[Any], batch_size: int = 256,
) -> tuple[dict[str, int], torch.Tensor]:
    """Normalised features of every distinct caption, computed once by the (frozen, eval-mode) text tower.

    A frozen tower gives the same features at every step, so computing them once changes no result and
    removes the text forward pass from every training step.
    """
    texts = sorted({c for it in items for c in it.captions})
    rows = {t: i for i, t in enumerate(texts)}
    feats = []
    with torch.no_grad(), autocast:
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(texts[start : start + batch_size]).to(dev)
            feats.append(net.encode_text(tokens, normalize=True).float())
    return rows, torch.cat(feats)


# -- model helpers ------------------------------------------------------------------------------------


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


# -- checkpoints and log ------------------------------------------------------------------------------


def _atomic_save(obj: Any, path: Path) -> None:
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


def _rng_states(device: torch.device) -> dict[str, Any]:
    np_state: tuple[Any, ...] = tuple(np.random.get_state(legacy=True))
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]),
        "torch": torch.random.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
    }


def _set_rng_states(states: Mapping[str, Any], device: torch.device) -> None:
    random.setstate(states["python"])
    name, key, *rest = states["numpy"]
    np.random.set_state((name, key.numpy(), *rest))
    torch.random.set_rng_state(states["torch"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state_all(states["cuda"])


def _items_fingerprint(items: Sequence[TrainItem]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.image_path, list(it.captions)]).encode())
        h.update(b"\n")
    return h.hexdigest()


def load_train_state(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint written by :func:`train` (``checkpoint-latest.pt``)."""
    state: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    if state.get("format") != _STATE_FORMAT:
        raise ValueError(f"{path} is not a SkyScout training checkpoint (format {state.get('format')!r})")
    return state


def _trim_log(log_path: Path, last_step: int) -> None:
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


# -- the loop -----------------------------------------------------------------------------------------


def _autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _check_inputs(items: Sequence[TrainItem], config: TrainConfig, device: torch.device) -> None:
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


def _default_transform(model: Any, config: TrainConfig) -> Callable[[Image.Image], torch.Tensor]:
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
    return build_train_transform(size, mean, std, **config.augment.as_kwargs())


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
    """
    dev = torch.device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_inputs(items, config, dev)
    transform = train_transform if train_transform is not None else _default_transform(model, config)
    ckpt_path, log_path = out / CHECKPOINT_NAME, out / LOG_NAME
    for torn in out.glob(".*.tmp-*"):  # left by a run killed while writing a checkpoint
        torn.unlink(missing_ok=True)

    micro_per_epoch = len(items) // config.batch_size // config.accum_steps * config.accum_steps
    steps_per_epoch = micro_per_epoch // config.accum_steps
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup = round(config.warmup_fraction * total_steps) if config.warmup_fraction is not None else config.warmup_steps
    fingerprint = _items_fingerprint(items)

    model.to(dev)
    freeze_tower(model, config.freeze)
    optimizer = build_optimizer(model, config)
    scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
    loss_fn = ClipLoss()
    net: Any = model  # duck-typed open_clip model

    resumed_from: int | None = None
    start_step = 0
    state = load_train_state(ckpt_path, map_location=dev) if resume and ckpt_path.exists() else None
    saved_groups: np.ndarray | None = None
    saved_ema: dict[str, torch.Tensor] | None = None
    if state is not None:
        _check_resumable(state, config, fingerprint, ckpt_path)
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        start_step = resumed_from = int(state["step"])
        if state.get("caption_groups") is not None:
            saved_groups = state["caption_groups"].numpy()
        if state.get("ema") is not None:
            saved_ema = state["ema"]
        _trim_log(log_path, start_step)
        _set_rng_states(state["rng"], dev)
    else:
        log_path.write_text("")
        for stale in (ckpt_path, out / FINAL_MODEL_NAME, out / WISE_START_NAME):
            stale.unlink(missing_ok=True)
        if config.wise_alpha is not None:
            _atomic_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / WISE_START_NAME)
        random.seed(config.seed)
        np.random.seed(config.seed % 2**32)
        torch.manual_seed(config.seed)
    del state
    ema = _Ema(model, config.ema_decay) if config.ema_decay is not None else None
    if ema is not None and saved_ema is not None:
        ema.state = {k: v.to(ema.state[k].device) for k, v in saved_ema.items()}

    autocast = _autocast(config.precision, dev)
    caption_rows: dict[str, int] | None = None
    text_bank: torch.Tensor | None = None
    if config.freeze == "text":
        caption_rows, text_bank = _caption_bank(net, tokenizer, items, dev, autocast)
    groups: np.ndarray | None = None
    if config.batch_order == "spread_captions":
        if saved_groups is not None:  # a resumed run keeps the groups it started with (the text tower may move)
            groups = saved_groups
        else:
            if text_bank is not None:
                rows, bank = caption_rows, text_bank
            else:  # a trainable text tower: embed the captions once with its starting weights, without dropout
                model.eval()
                rows, bank = _caption_bank(net, tokenizer, items, dev, autocast)
                model.train()
                freeze_tower(model, config.freeze)
            assert rows is not None
            groups = caption_clusters(items, rows, bank, k=min(config.effective_batch_size, len(items)),
                                      seed=config.seed)

    loader = torch.utils.data.DataLoader(
        _CaptionedImages(items, transform, config.seed),
        batch_sampler=_RunBatches(
            len(items),
            config.batch_size,
            micro_per_epoch,
            start_step * config.accum_steps,
            total_steps * config.accum_steps,
            config.seed,
            groups=groups,
            group_batch=config.effective_batch_size,
        ),
        collate_fn=_Collate(tokenizer, caption_rows),
        num_workers=config.num_workers,
        pin_memory=dev.type == "cuda",
        generator=torch.Generator(),  # a private generator: the loader must not draw from the global RNG
    )

    def save_state(step: int) -> Path:
        _atomic_save(
            {
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
                "rng": _rng_states(dev),
                "caption_groups": torch.from_numpy(groups) if groups is not None else None,
                "ema": ema.state if ema is not None else None,
            },
            ckpt_path,
        )
        return ckpt_path

    det_before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if config.deterministic:
        if dev.type == "cuda":  # cuBLAS needs this (before its first use) for reproducible matmuls
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    samples_per_step = config.effective_batch_size
    step, loss_value = start_step, float("nan")
    lr = cosine_lr(
        max(step - 1, 0),
        base_lr=config.lr,
        warmup_steps=warmup,
        total_steps=total_steps,
        min_lr=config.min_lr,
    )  # the last step's rate, reported if no step runs
    stopped = False
    window_loss: list[float] = []
    t_start = t_window = t_last = time.perf_counter()
    bar = tqdm(
        total=total_steps,
        initial=start_step,
        desc="train",
        unit="step",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        model.train()
        freeze_tower(model, config.freeze)
        batches = iter(loader)
        with open(log_path, "a", encoding="utf-8") as log:
            while step < total_steps:
                lr = cosine_lr(
                    step,
                    base_lr=config.lr,
                    warmup_steps=warmup,
                    total_steps=total_steps,
                    min_lr=config.min_lr,
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                micro = [next(batches) for _ in range(config.accum_steps)]
                loss_value = _optimizer_step(net, micro, loss_fn, optimizer, scaler, autocast, config, dev, text_bank)
                if ema is not None:
                    ema.update(model, step)
                step += 1
                now = time.perf_counter()
                sps = samples_per_step / max(now - t_last, 1e-9)
                t_last = now
                window_loss.append(loss_value)
                logit_scale = float(net.logit_scale.exp().item())
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", sps=f"{sps:.1f}", refresh=False)
                if step % config.log_every == 0 or step == total_steps:
                    rec = {
                        "step": step,
                        "epoch": (step - 1) // steps_per_epoch,
                        "loss": float(np.mean(window_loss)),
                        "lr": lr,
                        "samples_per_s": samples_per_step * len(window_loss) / max(now - t_window, 1e-9),
                        "logit_scale": logit_scale,
                        "time": time.time(),
                    }
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    window_loss, t_window = [], now
                written = None
                if step == total_steps or (config.checkpoint_every and step % config.checkpoint_every == 0):
                    written = save_state(step)
                if on_step is not None:
                    info = StepInfo(
                        step,
                        total_steps,
                        (step - 1) // steps_per_epoch,
                        loss_value,
                        lr,
                        logit_scale,
                        sps,
                        written,
                    )
                    if on_step(info) is True and step < total_steps:
                        if written is None:
                            save_state(step)
                        stopped = True
                        break
    finally:
        bar.close()
        torch.use_deterministic_algorithms(det_before[0], warn_only=det_before[1])
    if not ckpt_path.exists():  # resumed a finished run, or a zero-step run
        save_state(step)
    elapsed = time.perf_counter() - t_start

    final_path: Path | None = None
    if not stopped:
        if ema is not None:  # the averaged weights are the result (WiSE-FT, if set, then mixes them)
            model.load_state_dict(ema.state, strict=True)
        if config.wise_alpha is not None:
            start_sd = torch.load(out / WISE_START_NAME, map_location=dev, weights_only=True)
            model.load_state_dict(wise_ft(start_sd, model.state_dict(), config.wise_alpha), strict=True)
        final_path = out / FINAL_MODEL_NAME
        _atomic_save(
            {
                "state_dict": model.state_dict(),
                "step": step,
                "wise_alpha": config.wise_alpha,
                "config": config.model_dump(mode="json"),
            },
            final_path,
        )
    model.eval()
    done_here = step - start_step
    return TrainResult(
        steps=step,
        total_steps=total_steps,
        completed=not stopped,
        epochs=step // steps_per_epoch if steps_per_epoch else 0,
        samples_seen=step * samples_per_step,
        final_loss=loss_value,
        final_lr=lr,
        logit_scale=float(net.logit_scale.exp().item()),
        samples_per_s=done_here * samples_per_step / elapsed if done_here else 0.0,
        elapsed_s=elapsed,
        resumed_from_step=resumed_from,
        checkpoint_path=ckpt_path,
        final_model_path=final_path,
        log_path=log_path,
        wise_alpha=config.wise_alpha,
        checkpoints=[p for p in (ckpt_path, final_path) if p is not None],
    )


def _check_resumable(state: Mapping[str, Any], config: TrainConfig, fingerprint: str, path: Path) -> None:
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


class _Ema:
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


def _optimizer_step(
    net: Any,
    micro: list[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: ClipLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    autocast: contextlib.AbstractContextManager[Any],
    config: TrainConfig,
    dev: torch.device,
    text_bank: torch.Tensor | None = None,
) -> float:
    """One optimizer step over ``accum_steps`` micro-batches; returns the (effective-batch) loss.

    With ``text_bank`` (frozen text tower), the text side of each micro-batch is a row index into it.
    """
    optimizer.zero_grad(set_to_none=True)
    moved = [(img.to(dev, non_blocking=True), txt.to(dev, non_blocking=True)) for img, txt in micro]

    def encode_text(texts: torch.Tensor) -> torch.Tensor:
        if text_bank is not None:
            return text_bank[texts]
        return net.encode_text(texts, normalize=True)

    def backward(loss: torch.Tensor) -> None:
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()

    if len(moved) == 1:
        images, texts = moved[0]
        with autocast:
            loss = loss_fn(
                net.encode_image(images, normalize=True),
                encode_text(texts),
                net.logit_scale.exp(),
            )
        _raise_if_not_finite(loss)
        backward(loss)
        loss_value = float(loss.detach().item())
    else:
        # Cache every micro-batch's features, then recompute one micro-batch at a time with gradients.
        with torch.no_grad(), autocast:
            cached_img = [net.encode_image(i, normalize=True) for i, _ in moved]
            cached_txt = [encode_text(t) for _, t in moved]
        loss_value = float("nan")
        for j, (images, texts) in enumerate(moved):
            with autocast:
                img_j = net.encode_image(images, normalize=True)
                txt_j = encode_text(texts)
                scale = net.logit_scale.exp()
                loss = loss_fn(
                    torch.cat([*cached_img[:j], img_j, *cached_img[j + 1 :]]),
                    torch.cat([*cached_txt[:j], txt_j, *cached_txt[j + 1 :]]),
                    scale if j == 0 else scale.detach(),  # its gradient counted once, not accum_steps times
                )
            _raise_if_not_finite(loss)
            backward(loss)
            if j == 0:
                loss_value = float(loss.detach().item())

    params = [p for g in optimizer.param_groups for p in g["params"]]
    if scaler is not None:
        if config.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
    with torch.no_grad():  # as in CLIP: the temperature never exceeds 100
        net.logit_scale.clamp_(0, math.log(100))
    return loss_value


def _raise_if_not_finite(loss: torch.Tensor) -> None:
    if not torch.isfinite(loss.detach()).all():
        raise FloatingPointError(f"loss is {loss.item()}: training diverged; lower lr, raise warmup, or set grad_clip")

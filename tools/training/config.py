"""What a fine-tuning run is given and returns: its config, items, step reports, result and file names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Interpolation = Literal["bicubic", "bilinear"]


@dataclass(frozen=True)
class AugmentConfig:
    """Options of the training augmentation (see :func:`tools.augment.build_train_transform`)."""

    rotate90: bool = True
    hflip: bool = False
    color_jitter: float = 0.4
    color_jitter_p: float = 0.8
    hue: float = 0.0
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: Interpolation = "bicubic"
    #: probability that a strip of another training image (``mix_max`` of the side at most) replaces one edge
    #: of the sample, caption unchanged (:class:`tools.training.data.CaptionedImages`)
    mix: float = 0.0
    mix_max: float = 0.4

    def as_kwargs(self) -> dict[str, Any]:
        return asdict(self)

    def transform_kwargs(self) -> dict[str, Any]:
        """The options of :func:`tools.augment.build_train_transform` (the per-image steps; not the mixing)."""
        return {k: v for k, v in asdict(self).items() if k not in ("mix", "mix_max")}


__all__ = [
    "CHECKPOINT_NAME",
    "AugmentConfig",
    "Interpolation",
    "FINAL_MODEL_NAME",
    "LOG_NAME",
    "WISE_START_NAME",
    "BatchOrder",
    "Precision",
    "StepInfo",
    "Tower",
    "TrainConfig",
    "TrainItem",
    "TrainResult",
]

CHECKPOINT_NAME = "checkpoint-latest.pt"
FINAL_MODEL_NAME = "model-final.pt"
WISE_START_NAME = "wise-start.pt"
LOG_NAME = "train_log.jsonl"

Precision = Literal["fp32", "bf16", "fp16"]
Tower = Literal["text", "image"]
BatchOrder = Literal["random", "spread_captions"]
Loss = Literal["clip", "siglip"]


@dataclass(frozen=True)
class TrainItem:
    """One training image and its captions (one is sampled per visit).

    ``batch_with`` (the index of another item) puts this item in the contrastive batch of that one in every
    epoch: a hard negative meets the positive it was confused with (:func:`tools.training.data.batch_partners`).
    """

    image_path: str
    captions: list[str]
    batch_with: int | None = None


class TrainConfig(BaseModel):
    """Hyper-parameters of a fine-tuning run (everything that shapes the trajectory, plus I/O cadence)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=1, ge=1, description="passes over the training set")
    batch_size: int = Field(default=32, ge=2, description="micro-batch size (contrastive: needs >= 2)")
    accum_steps: int = Field(default=1, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(default=1e-5, gt=0, description="peak learning rate (after warmup; cosine decay)")
    min_lr: float = Field(default=0.0, ge=0)
    weight_decay: float = Field(default=0.2, ge=0, description="AdamW weight decay (not on biases, norms, logit_scale)")
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int = Field(default=0, ge=0)
    warmup_fraction: float | None = Field(
        default=None, ge=0, le=1, description="warmup as a fraction of all steps; overrides warmup_steps if set"
    )
    grad_clip: float | None = Field(default=1.0, gt=0, description="max global L2 norm of the gradient; None: off")
    precision: Precision = Field(default="fp32", description="bf16/fp16 use autocast, on CUDA only")
    freeze: Tower | None = Field(default=None, description="keep one tower frozen; None: train both")
    batch_order: BatchOrder = Field(
        default="spread_captions",
        description="spread_captions: cluster the images by caption embedding and give each batch one image "
        "per cluster where the data allows, so a contrastive batch holds few alike captions (false "
        "negatives); random: a plain shuffle",
    )
    caption_groups: int | None = Field(
        default=None, ge=2, description="clusters of spread_captions (default: the batch size); more than the "
        "batch when the data has more kinds of caption than a batch has images (a mixed catalog)",
    )
    mask_group_pairs: bool = Field(
        default=False, description="with spread_captions and a frozen text tower: two images of one caption "
        "cluster are not each other's negatives in the contrastive loss (for captions of fewer kinds than a batch "
        "has images, such as label templates)",
    )
    loss: Loss = Field(
        default="clip", description="clip: open_clip's ClipLoss (a softmax over the batch); siglip: open_clip's "
        "SigLipLoss (a sigmoid per image-caption pair, with a learned bias that only the loss uses)",
    )
    source_repeats: dict[str, int] = Field(
        default_factory=dict,
        description="visits per epoch of each image of a source, as SOURCE=N (repeatable; other sources 1), so "
        "that a small source keeps its share beside a large one",
    )
    seed: int = Field(default=0, description="seed of the data order, caption choice and augmentation")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimizer steps")
    checkpoint_every: int | None = Field(
        default=500, ge=1, description="checkpoint every this many optimizer steps; None: only at the end"
    )
    num_workers: int = Field(default=2, ge=0, description="data-loading worker processes")
    log_every: int = Field(default=10, ge=1)
    wise_alpha: float | None = Field(
        default=None, ge=0, le=1, description="WiSE-FT: mix fine-tuned and starting weights, this much fine-tuned"
    )
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
        if self.mask_group_pairs and (self.batch_order != "spread_captions" or self.freeze != "text"):
            raise ValueError("mask_group_pairs needs batch_order='spread_captions' and freeze='text' (the caption "
                             f"clusters and the frozen caption features), got {self.batch_order!r}, {self.freeze!r}")
        if self.loss == "siglip" and self.mask_group_pairs:
            raise ValueError("mask_group_pairs masks the softmax of loss='clip'; it has no siglip form, leave one off")
        bad = {k: v for k, v in self.source_repeats.items() if v < 1}
        if bad:
            raise ValueError(f"source repeats must be at least 1, got {bad}")
        return self

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.accum_steps


@dataclass(frozen=True)
class StepInfo:
    """What :func:`~tools.training.train` reports to ``on_step`` after each optimizer step."""

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
    """Outcome of :func:`~tools.training.train`."""

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

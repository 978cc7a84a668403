"""Training throughput: the full ``tools.training.train`` pipeline against a bare loop on preloaded tensors.

Both runs use the same model (same initial weights), open_clip's ``ClipLoss``, AdamW with the same
parameter groups, gradient clipping and batch size, in the same process with the same thread count.
The full pipeline reads image files (UCM JPEGs from ``../shared/data`` or synthetic JPEGs when absent),
decodes and augments them in DataLoader workers and tokenizes captions; the bare loop feeds tensors
prepared beforehand. Their ratio is what the data pipeline and the loop's bookkeeping cost
(target: >= 0.85). Throughput is the median step time after the warm-up steps (start-up, preloading
and the final checkpoint are excluded, and shown in "wall s"); the two runs alternate ``--repeats``
times and the best of each counts, so both see the same machine. Torch runs one intra-op thread by
default (``--threads``), which keeps the numbers stable on a small or shared machine.

    .venv/bin/python bench/bench_training.py                        # a skyscout-tiny-sized model
    .venv/bin/python bench/bench_training.py --model skyscout-tiny   # the real preset (tools.models)
    .venv/bin/python bench/bench_training.py --model-factory pkg.mod:make
        # make() -> (model, preprocess_val, tokenizer) or an object with those attributes
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip import factory
from open_clip.loss import ClipLoss
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.augment import train_transform_like  # noqa: E402
from tools.training import TrainConfig, TrainItem, build_optimizer, train  # noqa: E402

UCM = ROOT.parent / "shared" / "data" / "ucm_captions"

# The shape of skyscout-tiny (a 64 px ResNet-18 image tower; a 6-layer, 384-wide text tower, context 64),
# with open_clip's own text transformer so that the bench needs no pretrained files.
BENCH_ARCH = "skyscout-bench-small"
BENCH_CONFIG: dict[str, Any] = {
    "embed_dim": 384,
    "vision_cfg": {"timm_model_name": "resnet18", "timm_model_pretrained": False, "timm_pool": "avg",
                   "timm_proj": "linear", "image_size": 64},
    "text_cfg": {"context_length": 64, "vocab_size": 49408, "width": 384, "heads": 6, "layers": 6},
}

Triple = tuple[torch.nn.Module, Callable[..., Any], Callable[[list[str]], torch.Tensor]]


def default_model() -> Triple:
    factory._MODEL_CONFIGS[BENCH_ARCH] = BENCH_CONFIG
    torch.manual_seed(0)
    model, _, pre_val = open_clip.create_model_and_transforms(BENCH_ARCH, pretrained=None)
    return model, pre_val, open_clip.get_tokenizer(BENCH_ARCH)


def model_from_spec(spec: str) -> Triple:
    from tools.models import load_model  # lazily: only when asked for a registry model

    loaded = load_model(spec, cache_dir=ROOT / ".skyscout" / "models", seed=0)
    return loaded.model, loaded.preprocess_val, loaded.tokenizer


def model_from_factory(ref: str) -> Triple:
    module, _, name = ref.partition(":")
    made = getattr(importlib.import_module(module), name)()
    if hasattr(made, "model"):  # a LoadedModel-like object
        return made.model, made.preprocess_val, made.tokenizer
    model, pre_val, tokenizer = made
    return model, pre_val, tokenizer


def load_items(n: int, tmp: Path) -> tuple[list[TrainItem], str]:
    rows: list[dict[str, Any]] = []
    if (UCM / "train.jsonl").is_file():
        rows = [json.loads(line) for line in (UCM / "train.jsonl").read_text().splitlines() if line.strip()]
        rows = [r for r in rows if (UCM / r["image"]).is_file()]
    if rows:
        items = [TrainItem(str(UCM / r["image"]), list(r["captions"])) for r in rows]
        source = f"UCM JPEGs ({UCM})"
    else:
        rng = np.random.default_rng(0)
        items = []
        for i in range(min(n, 256)):
            path = tmp / f"synthetic{i:04d}.jpg"
            Image.fromarray(rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)).save(path, quality=92)
            items.append(TrainItem(str(path), [f"synthetic tile number {i}", f"an aerial photo {i % 7}"]))
        source = "synthetic 256x256 JPEGs"
    while len(items) < n:  # repeat to fill the run
        items = items + items
    return items[:n], source


class _Clock:
    """Per-step wall and main-process CPU durations, from one tick per finished step."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._last = (time.perf_counter(), time.process_time())

    def tick(self) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall.append(now[0] - self._last[0])
        self.cpu.append(now[1] - self._last[1])
        self._last = now

    def summary(self, args: argparse.Namespace, wall_s: float, worker_cpu_s: float) -> dict[str, float]:
        # Steps warmup+1 .. warmup+steps; the median shrugs off a neighbour's burst on a shared machine.
        measured = slice(args.warmup, args.warmup + args.steps)
        step_s = float(np.median(self.wall[measured]))
        return {
            "samples_per_s": args.batch_size / step_s,
            "s_per_step": step_s,
            "cpu_s_per_step": float(np.median(self.cpu[measured])),
            "worker_cpu_s_per_step": worker_cpu_s / len(self.wall),
            "wall_s": wall_s,
        }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_train(
    make: Callable[[], Triple], items: list[TrainItem], args: argparse.Namespace, out: Path
) -> dict[str, float]:
    model, pre_val, tokenizer = make()
    total = args.warmup + args.steps + 1  # +1: the last step also writes the final checkpoint, not measured
    config = TrainConfig(
        batch_size=args.batch_size,
        lr=1e-5,
        max_steps=total,
        epochs=10**6,
        num_workers=args.num_workers,
        checkpoint_every=None,
        log_every=10,
        seed=0,
    )
    transform = train_transform_like(pre_val, config.augment)
    clock = _Clock()
    t0, children0 = time.perf_counter(), _children_cpu()
    train(
        model,
        tokenizer,
        transform,
        items,
        config,
        out_dir=out,
        progress=False,
        on_step=lambda _: clock.tick(),
    )
    # DataLoader workers are reaped when train() returns, so their CPU time is known only for the whole run.
    return clock.summary(args, time.perf_counter() - t0, _children_cpu() - children0)


def bench_bare(make: Callable[[], Triple], items: list[TrainItem], args: argparse.Namespace) -> dict[str, float]:
    model, pre_val, tokenizer = make()
    n = args.batch_size * 4  # a few distinct batches, cycled
    t0 = time.perf_counter()
    images = torch.stack([pre_val(Image.open(it.image_path).convert("RGB")) for it in items[:n]])
    texts = tokenizer([it.captions[0] for it in items[:n]])
    optimizer = build_optimizer(model, TrainConfig(batch_size=args.batch_size, lr=1e-5))
    params = [p for g in optimizer.param_groups for p in g["params"]]
    loss_fn = ClipLoss()
    net: Any = model
    model.train()
    clock = _Clock()
    for step in range(args.warmup + args.steps + 1):
        lo = (step % 4) * args.batch_size
        batch_images, batch_texts = images[lo : lo + args.batch_size], texts[lo : lo + args.batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(
            net.encode_image(batch_images, normalize=True),
            net.encode_text(batch_texts, normalize=True),
            net.logit_scale.exp(),
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        with torch.no_grad():
            net.logit_scale.clamp_(0, math.log(100))
        clock.tick()
    return clock.summary(args, time.perf_counter() - t0, 0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--model", help="a tools.models spec, e.g. skyscout-tiny (default: a built-in config)")
    src.add_argument("--model-factory", help="module:callable returning (model, preprocess_val, tokenizer)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4, help="measured steps per run")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured steps first")
    ap.add_argument("--num-workers", type=int, default=2)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (0: torch's default). One by default: on a small or shared machine, "
        "OpenMP threads that spin-wait for a descheduled sibling make step times swing 2-10x",
    )
    ap.add_argument("--repeats", type=int, default=2, help="alternate bare/train() this many times; best wins")
    ap.add_argument("--min-ratio", type=float, default=0.85)
    ap.add_argument("--check", action="store_true", help="exit 1 when the ratio is below --min-ratio")
    args = ap.parse_args(argv)
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        ap.error("--warmup, --steps and --repeats must be >= 1 (the first step carries one-off costs)")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    if args.model:
        make: Callable[[], Triple] = lambda: model_from_spec(args.model)  # noqa: E731
        label = args.model
    elif args.model_factory:
        make, label = (lambda: model_from_factory(args.model_factory)), args.model_factory
    else:
        make, label = default_model, f"{BENCH_ARCH} (built-in config)"

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp_name:
        tmp = Path(tmp_name)
        items, source = load_items(args.batch_size * (args.warmup + args.steps + 1), tmp)
        bare: dict[str, float] = {}
        full: dict[str, float] = {}
        for r in range(args.repeats):  # alternate, so that both see the same machine weather
            b = bench_bare(make, items, args)
            f = bench_train(make, items, args, tmp / f"run{r}")
            bare = b if b["samples_per_s"] > bare.get("samples_per_s", 0.0) else bare
            full = f if f["samples_per_s"] > full.get("samples_per_s", 0.0) else full

    ratio = full["samples_per_s"] / bare["samples_per_s"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"model: {label}; data: {source}; batch {args.batch_size}; median of {args.steps} steps after "
        f"{args.warmup} warm-up, best of {args.repeats}; num_workers {args.num_workers}; "
        f"torch threads {torch.get_num_threads()}; {cores} CPU cores; load average {load:.1f}"
    )
    print()
    header = ("pipeline", "samples/s", "s/step", "main CPU s/step", "worker CPU s/step", "wall s", "ratio")
    widths = (52, 9, 7, 15, 17, 7, 5)
    print(
        "| "
        + " | ".join(
            f"{h:<{w}}" if i == 0 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
        + " |"
    )
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    rows: list[tuple[str, dict[str, float], float]] = [
        ("bare loop (preloaded tensors)", bare, 1.0),
        ("train() (files, DataLoader, augmentation, tokenizer)", full, ratio),
    ]
    for name, row, rel in rows:
        cells = (
            f"{row['samples_per_s']:.1f}",
            f"{row['s_per_step']:.3f}",
            f"{row['cpu_s_per_step']:.3f}",
            f"{row['worker_cpu_s_per_step']:.3f}",
            f"{row['wall_s']:.1f}",
            f"{rel:.2f}",
        )
        print(f"| {name:<52} | " + " | ".join(f"{c:>{w}}" for c, w in zip(cells, widths[1:], strict=True)) + " |")
    print()
    verdict = "PASS" if ratio >= args.min_ratio else "FAIL"
    print(
        f"{verdict}: train() reaches {ratio:.0%} of the bare loop's throughput "
        f"(target >= {args.min_ratio:.0%}). "
        "wall s: the whole call (start-up, preloading, final checkpoint); worker CPU: DataLoader workers' "
        "CPU over the whole run per step."
    )
    return 1 if args.check and ratio < args.min_ratio else 0


if __name__ == "__main__":
    sys.exit(main())

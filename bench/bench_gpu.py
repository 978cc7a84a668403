"""GPU throughput: a ViT-B-32 fine-tuning step with AMP at batch 256, and image embedding with ViT-B-32/L-14.

Meant for a CUDA machine (``--device cuda``); ``--device cpu --smoke`` runs the same code paths with
tiny sizes, a quick check of the script on a machine without a GPU.
Weights are random (open_clip architectures, ``pretrained=None``): throughput does not depend on them.

Each table compares the product's code path with a bare loop in the same process on the same card:

* training: ``tools.training.train`` (JPEG files from ``data/ucm_sample`` decoded and augmented in
  DataLoader workers, captions tokenized, AMP, ClipLoss, AdamW, clipping) against the same model, loss,
  optimizer and precision on batches already on the GPU. Median step time after the warm-up steps.
* embedding: ``tools.embedding.run_pipeline`` with the product's DataLoader reader and fp16 embedder
  (images decoded from files, vectors returned to the host; the writer only counts, so no vector store
  is involved) against ``encode_image`` under fp16 autocast on tensors already on the GPU.

    python -m bench gpu --device cuda            # the full check (a few minutes on one H100/H200)
    python -m bench gpu --device cpu --smoke     # a quick run of the same code on CPU
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from open_clip.loss import ClipLoss

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.augment import train_transform_like  # noqa: E402
from tools.device_pixels import DevicePreprocess, PixelSpec, image_encoder, pixel_reader, read_pixels  # noqa: E402
from tools.embedding import dataloader_reader, model_embedder, run_pipeline  # noqa: E402
from tools.imageio import load_rgb  # noqa: E402
from tools.training import TrainConfig, TrainItem, build_optimizer, train  # noqa: E402

SAMPLE = ROOT / "data" / "ucm_sample"
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Record:
    """The two fields of a catalog ImageRecord that the embedding reader uses."""

    id: str
    uri: str


def sample_rows() -> list[dict[str, Any]]:
    rows = []
    for split in ("train", "val"):
        for line in (SAMPLE / f"{split}.jsonl").read_text().splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_rate(times: list[float], per_step: int) -> float:
    return per_step / float(np.median(times))


def create(arch: str, image_size: int | None) -> tuple[torch.nn.Module, Any, Any]:
    torch.manual_seed(0)
    kwargs: dict[str, Any] = {"force_image_size": image_size} if image_size else {}
    model, _, pre_val = open_clip.create_model_and_transforms(arch, pretrained=None, **kwargs)
    return model, pre_val, open_clip.get_tokenizer(arch)


def autocast(device: torch.device, precision: str) -> Any:
    if device.type != "cuda" or precision == "fp32":
        return torch.autocast(device_type="cpu", enabled=False)
    return torch.autocast(device_type="cuda", dtype=AUTOCAST[precision])


def bench_train_bare(arch: str, args: argparse.Namespace, device: torch.device) -> float:
    model, pre_val, tokenizer = create(arch, args.image_size)
    model.to(device).train()
    size = pre_val.transforms[0].size
    side = size if isinstance(size, int) else size[0]
    images = torch.randn(args.batch_size, 3, side, side, device=device)
    texts = tokenizer([f"a satellite photo of tile {i}" for i in range(args.batch_size)]).to(device)
    config = TrainConfig(batch_size=args.batch_size, lr=1e-5, precision=args.precision)
    optimizer = build_optimizer(model, config)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    scaler = torch.amp.GradScaler("cuda") if args.precision == "fp16" and device.type == "cuda" else None
    loss_fn = ClipLoss()
    net: Any = model
    times: list[float] = []
    for _ in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, args.precision):
            loss = loss_fn(
                net.encode_image(images, normalize=True), net.encode_text(texts, normalize=True), net.logit_scale.exp()
            )
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        with torch.no_grad():
            net.logit_scale.clamp_(0, math.log(100))
        sync(device)
        times.append(time.perf_counter() - t0)
    del model, optimizer
    return median_rate(times[args.warmup :], args.batch_size)


def bench_train_pipeline(arch: str, args: argparse.Namespace, device: torch.device, out: Path) -> float:
    model, pre_val, tokenizer = create(arch, args.image_size)
    rows = sample_rows()
    items = [TrainItem(str(SAMPLE / r["image"]), list(r["captions"])) for r in rows]
    total = args.warmup + args.steps + 1  # the last step writes the final checkpoint: not measured
    while len(items) < args.batch_size * total:
        items = items + items
    config = TrainConfig(
        batch_size=args.batch_size,
        lr=1e-5,
        max_steps=total,
        epochs=10**6,
        precision=args.precision if device.type == "cuda" else "fp32",
        num_workers=args.workers,
        checkpoint_every=None,
        seed=0,
    )
    times: list[float] = []
    last = [time.perf_counter()]

    def tick(_: Any) -> None:
        sync(device)  # train() reads the loss each step, so this is already a synchronisation point
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    train(model, tokenizer, train_transform_like(pre_val, config.augment), items, config, out_dir=out,
          device=device, progress=False, on_step=tick)
    del model
    return median_rate(times[args.warmup : args.warmup + args.steps], args.batch_size)


def bench_embed(arch: str, args: argparse.Namespace, device: torch.device) -> tuple[float, float, int]:
    model, pre_val, _ = create(arch, args.image_size)
    rows = sample_rows()
    records: list[Any] = [Record(f"{i}", str(SAMPLE / rows[i % len(rows)]["image"])) for i in range(args.embed_images)]
    embed = model_embedder(model, device=str(device))
    # bare: encode_image under fp16 autocast on a batch already on the device
    pixels = torch.stack([pre_val(load_rgb(SAMPLE / r["image"])) for r in rows[: args.batch_size]])
    while pixels.shape[0] < args.batch_size:
        pixels = torch.cat([pixels, pixels])[: args.batch_size]
    pixels = pixels.to(device)
    times: list[float] = []
    for _ in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        embed(pixels)  # returns host numpy: the copy back is part of both measurements
        sync(device)
        times.append(time.perf_counter() - t0)
    bare = median_rate(times[args.warmup :], args.batch_size)
    # pipeline: files -> DataLoader workers (decode, preprocess) -> embedder -> a counting writer
    reader = dataloader_reader(pre_val, batch_size=args.batch_size, num_workers=args.workers,
                               pin_memory=device.type == "cuda")
    run_pipeline(records[: args.batch_size * 2], reader=reader, embedder=embed, writer=lambda ids, v: len(ids))
    sync(device)
    t0 = time.perf_counter()
    n = run_pipeline(records, reader=reader, embedder=embed, writer=lambda ids, v: len(ids))
    sync(device)
    pipe = n / (time.perf_counter() - t0)
    del model
    return bare, pipe, n


def bench_embed_device(arch: str, args: argparse.Namespace, device: torch.device) -> tuple[float, float, int]:
    """The GPU data path: workers hand uint8 pixels (JPEG bytes on CUDA) over; resize/crop/normalise on the
    device; the same encoder (precision, channels-last, compile) in the bare loop and in the pipeline."""
    model, pre_val, _ = create(arch, args.image_size)
    spec = PixelSpec.from_transform(pre_val)
    assert spec is not None, pre_val
    cuda = device.type == "cuda"
    last = args.channels_last if args.channels_last is not None else cuda
    precision = args.embed_precision if cuda else "fp32"
    encode = image_encoder(model, device, precision=precision, channels_last=last, compile=args.compile,
                           pure=args.pure and cuda)
    pre = DevicePreprocess(spec, device, channels_last=last)
    rows = sample_rows()
    jpeg = cuda if args.jpeg_bytes is None else args.jpeg_bytes
    with torch.inference_mode():
        pixels = pre([read_pixels(str(SAMPLE / rows[i % len(rows)]["image"]), jpeg_bytes=jpeg)
                      for i in range(args.batch_size)])
    times: list[float] = []
    for _ in range(args.warmup + args.steps):  # bare: the encoder on a batch already preprocessed on the device
        sync(device)
        t0 = time.perf_counter()
        encode(pixels)
        sync(device)
        times.append(time.perf_counter() - t0)
    bare = median_rate(times[args.warmup :], args.batch_size)
    records: list[Any] = [Record(f"{i}", str(SAMPLE / rows[i % len(rows)]["image"])) for i in range(args.embed_images)]
    reader = pixel_reader(batch_size=args.batch_size, num_workers=args.workers, jpeg_bytes=jpeg,
                          min_size=None if jpeg else max(spec.crop))

    def embed(images: Any) -> Any:
        with torch.inference_mode():
            return encode(pre(images))

    run_pipeline(records[: args.batch_size * 2], reader=reader, embedder=embed, writer=lambda ids, v: len(ids))
    sync(device)
    t0 = time.perf_counter()
    n = run_pipeline(records, reader=reader, embedder=embed, writer=lambda ids, v: len(ids))
    sync(device)
    pipe = n / (time.perf_counter() - t0)
    del model
    return bare, pipe, n


#: python -m bench gpu --preset issue16: the prepared check of the GPU data path (docs/gpu.md), its goals
PRESETS = {"issue16": ["--train-arch", "", "--embed-archs", "ViT-B-32,ViT-L-14", "--embed-images", "65536",
                       "--data-path", "both", "--embed-precision", "bf16", "--pure", "--workers", "14",
                       "--json", "bench-gpu-issue16.json"]}
GOALS = {"ViT-B-32": {"ratio": 0.7}, "ViT-L-14": {"ratio": 0.9, "images_per_s": 2200.0}}


def goals_table(figures: dict[str, Any]) -> str:
    lines = ["### Goals of the GPU data path (device rows)", "", "| model | goal | measured | met |",
             "|---|---|---:|---|"]
    for arch, goal in GOALS.items():
        got = figures.get("embed_device", {}).get(arch)
        if got is None:
            continue
        ratio = got["pipeline"] / got["bare"]
        met = "yes" if ratio >= goal["ratio"] else "no"
        lines.append(f"| {arch} | pipeline >= {goal['ratio']} of bare | {ratio:.2f} | {met} |")
        if "images_per_s" in goal:
            ok = got["pipeline"] >= goal["images_per_s"]
            lines.append(f"| {arch} | >= {goal['images_per_s']:,.0f} images/s end to end | {got['pipeline']:,.0f} | "
                         f"{'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"


def table(title: str, rows: list[tuple[str, float, float]], unit: str) -> str:
    lines = [f"### {title}", "", f"| run | {unit} | ratio to bare |", "|---|---:|---:|"]
    lines += [f"| {name} | {rate:.1f} | {ratio:.2f} |" for name, rate, ratio in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=["bf16", "fp16"], default="bf16", help="AMP dtype for training")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20, help="measured steps (batches) per run")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--workers", type=int, default=12, help="DataLoader decoding processes")
    ap.add_argument("--embed-images", type=int, default=8192, help="images through the embedding pipeline")
    ap.add_argument("--train-arch", default="ViT-B-32", help='"" skips the training table')
    ap.add_argument("--embed-archs", default="ViT-B-32,ViT-L-14", help='comma-separated; "" skips embedding')
    ap.add_argument("--image-size", type=int, default=None, help="override the architecture's input size")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for a CPU check of the code paths")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    ap.add_argument("--data-path", choices=["host", "device", "both"], default="host",
                    help="host: PIL transform in the workers (float32 batches); device: uint8 pixels / JPEG bytes, "
                         "resized and normalised on the device (tools.device_pixels)")
    ap.add_argument("--embed-precision", choices=["fp16", "bf16"], default="fp16", help="device path: dtype")
    ap.add_argument("--pure", action="store_true", help="device path: weights in that dtype instead of autocast")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                    help="device path: channels-last (default: on CUDA)")
    ap.add_argument("--jpeg-bytes", action=argparse.BooleanOptionalAction, default=None,
                    help="device path: workers read JPEG bytes, decoded on the device (default: on CUDA)")
    ap.add_argument("--compile", action="store_true", help="device path: torch.compile the image encoder")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a prepared run (issue16: the GPU data path's goals)")
    raw = list(sys.argv[1:] if argv is None else argv)
    preset = next((raw[i + 1] for i, a in enumerate(raw[:-1]) if a == "--preset"), None)
    args = ap.parse_args(PRESETS.get(preset or "", []) + raw)
    if args.smoke:
        args.batch_size, args.steps, args.warmup, args.workers = 4, 1, 1, 0
        args.embed_images, args.image_size = 8, 64
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        card = torch.cuda.get_device_name(device)
    else:
        card = f"CPU ({torch.get_num_threads()} torch threads)"
    print(f"device: {card}; torch {torch.__version__}; open_clip {open_clip.__version__}; "
          f"batch {args.batch_size}; median of {args.steps} steps after {args.warmup} warm-up; "
          f"{args.workers} DataLoader workers\n")
    figures: dict[str, Any] = {"device": card, "torch": torch.__version__, "batch_size": args.batch_size}

    if args.train_arch:  # "" skips the training table
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
            bare = bench_train_bare(args.train_arch, args, device)
            full = bench_train_pipeline(args.train_arch, args, device, Path(tmp) / "run")
        if device.type == "cuda":
            figures["train_peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            torch.cuda.empty_cache()
        figures["train"] = {"arch": args.train_arch, "precision": args.precision, "bare": bare, "pipeline": full}
        print(table(
            f"Fine-tuning step, {args.train_arch}, AMP {args.precision}, batch {args.batch_size} (samples/s)",
            [("bare loop (batch on the device)", bare, 1.0),
             ("tools.training.train (JPEG files, workers, augmentation)", full, full / bare)],
            "samples/s",
        ))

    rows: list[tuple[str, float, float]] = []
    figures["embed"], figures["embed_device"] = {}, {}
    t_embed = time.perf_counter()
    for arch in [a for a in args.embed_archs.split(",") if a]:
        if args.data_path in ("host", "both"):
            b, p, n = bench_embed(arch, args, device)
            figures["embed"][arch] = {"bare": b, "pipeline": p, "images": n}
            rows += [(f"{arch} bare encode_image, fp16 autocast", b, 1.0),
                     (f"{arch} host path: run_pipeline over {n} JPEG files", p, p / b)]
        if args.data_path in ("device", "both"):
            b, p, n = bench_embed_device(arch, args, device)
            figures["embed_device"][arch] = {"bare": b, "pipeline": p, "images": n}
            how = "fp32"
            if device.type == "cuda":
                how = f"{args.embed_precision} {'weights' if args.pure else 'autocast'}"
            rows += [(f"{arch} bare encode_image, {how}, batch preprocessed on the device", b, 1.0),
                     (f"{arch} device path: uint8/JPEG bytes -> device preprocess, {n} files", p, p / b)]
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if rows:
        print(table(f"Image embedding, batch {args.batch_size} (images/s)", rows, "images/s"))
        print(f"embedding section: {time.perf_counter() - t_embed:.0f} s wall, model creation included")
    if figures["embed_device"]:
        print(goals_table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Embedding pipeline throughput against the bare model forward on preloaded tensors (same batch size).

The pipeline is the real one (`tools.embedding`): DataLoader workers decode JPEG files and preprocess,
the embedder runs ``encode_image`` under inference mode, the writer upserts into LanceDB. The baseline
runs only ``encode_image`` on tensors that are already in memory. Their ratio is what the data path and
the store cost; the issue asks for at least 0.85.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from tools.catalog import Catalog
from tools.embedding import build_index
from tools.engines import index_stages
from tools.imageio import load_rgb
from tools.ingest import ingest_directory
from tools.models import load_model
from tools.paths import resolve_roots
from tools.stores.factory import index_registry

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data" / "ucm_captions" / "images"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="skyscout-tiny")
    ap.add_argument(
        "--data", type=Path, default=SHARED if SHARED.is_dir() else PROJECT / "data" / "ucm_sample"
    )
    ap.add_argument("--limit", type=int, default=1024, help="images to embed")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0,
                    help="DataLoader decoding processes (0: one decoding thread overlapping the model)")
    ap.add_argument("--preprocess", choices=["host", "device", "both"], default="host",
                    help="host: the model's PIL transform in the decoding workers; device: uint8 pixels resized and "
                         "normalised where the model runs (tools.device_pixels; here the CPU)")
    args = ap.parse_args(argv)
    paths = ["host", "device"] if args.preprocess == "both" else [args.preprocess]
    piped: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_model(args.model, cache_dir=Path(tmp) / "cache")
        cat = Catalog(Path(tmp) / "catalog.db")
        ingest_directory(cat, args.data, allowed_roots=resolve_roots([args.data]), progress=False)
        records = list(cat.iter_images())[: args.limit]
        if len(records) < cat.count_images():  # keep only the first `limit` images in this catalog
            keep = {r.id for r in records}
            with cat.transaction() as conn:
                conn.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in cat.image_ids() - keep])
        n = len(records)
        pixels = torch.stack([loaded.preprocess_val(load_rgb(r.uri)) for r in records])
        model = loaded.model.eval()
        with torch.inference_mode():
            model.encode_image(pixels[: args.batch_size])  # warm-up
            t0 = time.perf_counter()
            for s in range(0, n, args.batch_size):
                model.encode_image(pixels[s : s + args.batch_size])
            bare = time.perf_counter() - t0
        for path in paths:
            registry = index_registry("lancedb", path=Path(tmp) / f"idx-{path}")
            make_reader, embedder = index_stages(
                engine="local", model=model, transform=loaded.preprocess_val, dim=loaded.embed_dim, device="cpu",
                batch_size=args.batch_size, num_workers=args.workers, preprocess=path)
            t0 = time.perf_counter()
            report = build_index(
                cat,
                registry,
                model_key="bench",
                model=model,
                transform=loaded.preprocess_val,
                dim=loaded.embed_dim,
                batch_size=args.batch_size,
                num_workers=args.workers,
                progress=False,
                make_reader=make_reader,
                embedder=embedder,
            )
            piped[path] = time.perf_counter() - t0
            assert report.count == n, report
    print(
        f"{n} images ({args.data}), model {args.model}, batch {args.batch_size}, "
        f"{args.workers} decode worker(s), {torch.get_num_threads()} torch threads"
    )
    print(f"{'stage':<44}{'seconds':>9}{'images/s':>11}{'ratio':>8}")
    print(f"{'bare encode_image on preloaded tensors':<44}{bare:>9.2f}{n / bare:>11.1f}{1.0:>8.2f}")
    for path, pipe in piped.items():
        name = f"pipeline ({path}): decode -> embed -> LanceDB"
        print(f"{name:<44}{pipe:>9.2f}{n / pipe:>11.1f}{bare / pipe:>8.2f}")


if __name__ == "__main__":
    main()

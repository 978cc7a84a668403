"""Ingestion throughput (images/s) against a baseline that only reads and hashes the same files.

The difference between the two is what decoding, validation and catalog writes cost.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tools.catalog import Catalog
from tools.ingest import ingest_directory, iter_directory
from tools.paths import resolve_roots

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _synthetic(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(d / f"{i}.jpg", quality=90)
    return root


def _read_and_hash(paths: list[Path], workers: int) -> None:
    def work(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, paths))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--data",
        type=Path,
        default=SHARED / "ucm_captions" / "images",
        help="directory to ingest (default: the shared UC Merced images)",
    )
    ap.add_argument("--synthetic", type=int, default=0, help="ingest N generated 256x256 JPEGs instead")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if args.synthetic or not data.is_dir():
            data = _synthetic(Path(tmp) / "synthetic", args.synthetic or 500)
        roots = resolve_roots([data])
        paths = [it.path for it in iter_directory(data, roots, [])]
        _read_and_hash(paths, args.workers)  # warm the page cache for both contenders
        base_t, ingest_t = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            _read_and_hash(paths, args.workers)
            base_t.append(time.perf_counter() - t0)
            cat = Catalog(Path(tmp) / f"cat{r}.db")
            t0 = time.perf_counter()
            report = ingest_directory(cat, data, allowed_roots=roots, workers=args.workers, progress=False)
            ingest_t.append(time.perf_counter() - t0)
            assert report.scanned == len(paths)
        n = len(paths)
        b, i = statistics.median(base_t), statistics.median(ingest_t)
        print(f"{n} files from {data}, {args.workers} threads, median of {args.repeats} runs")
        print(f"{'method':<34}{'seconds':>10}{'images/s':>12}{'vs baseline':>13}")
        print(f"{'read + sha256 (baseline)':<34}{b:>10.3f}{n / b:>12.0f}{1.0:>13.2f}")
        print(f"{'skyscout ingest (decode+catalog)':<34}{i:>10.3f}{n / i:>12.0f}{b / i:>13.2f}")


if __name__ == "__main__":
    main()

"""Scenes: chipping + embedding a 10,000 px scene against embedding the same number of pre-cut tiles; peak memory.

A scene is built from UC Merced tiles (a 40 x 40 grid of 256 px cells, clipped to the scene's side) as a
DEFLATE COG in UTM at 0.3 m, written window by window. The baseline is the same windows written out as JPEG
files (quality 92, like the shared data) and embedded through the same pipeline (``tools.embedding``:
reader -> skyscout-tiny -> LanceDB). The scene side does everything a user's scene costs: hashing the file,
the stretch, reading every window once for nodata and broken blocks, cataloguing the chips, then embedding
them (windows read at the model's input size, from the COG's overviews). The ratio is tiles time / scene
time; the issue asks for at least 0.8.

Peak memory (the maximum resident set of a fresh process that ingests and embeds a scene) is measured for a
10,000 px and a 20,000 px scene: it must not grow with the scene.

    python -m bench scenes [--side 10000] [--memory-sides 10000 20000] [--overlap 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared" / "data" / "ucm_captions"
SAMPLE = PROJECT / "data" / "ucm_sample"


def _tiles() -> list[np.ndarray]:
    from PIL import Image

    folder = SHARED / "images" if SHARED.is_dir() else SAMPLE
    paths = sorted(p for p in folder.rglob("*.jpg"))[:400]
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("RGB").resize((256, 256))).transpose(2, 0, 1))
    return out


def build_scene(path: Path, side: int) -> Path:
    """A ``side`` x ``side`` 8-bit RGB COG of UC Merced tiles, written one 256 px window at a time."""
    import rasterio
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    tiles = _tiles()
    tmp = path.with_suffix(".tmp.tif")
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "deflate", "crs": "EPSG:32610",
               "transform": from_origin(500_000, 4_200_000, 0.3, 0.3), "BIGTIFF": "IF_SAFER"}
    with rasterio.open(tmp, "w", **profile) as ds:
        k = 0
        for y in range(0, side, 256):
            for x in range(0, side, 256):
                w, h = min(256, side - x), min(256, side - y)
                ds.write(tiles[k % len(tiles)][:, :h, :w], window=Window(x, y, w, h))
                k += 1
    with rasterio.open(tmp) as src:
        rio_copy(src, path, driver="COG", COMPRESS="DEFLATE", OVERVIEW_RESAMPLING="AVERAGE", BLOCKSIZE="256",
                 BIGTIFF="IF_SAFER")
    tmp.unlink()
    return path


def _index(catalog, loaded, registry_dir: Path, batch: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from tools.embedding import build_index
    from tools.stores.factory import index_registry

    started = time.perf_counter()
    report = build_index(catalog, index_registry("lancedb", path=registry_dir), model_key="bench", model=loaded.model,
                         transform=loaded.preprocess_val, dim=loaded.embed_dim, batch_size=batch, num_workers=0,
                         progress=False)
    return time.perf_counter() - started, report.count


def _chip(scene: Path, db: Path, overlap: float):  # type: ignore[no-untyped-def]
    from tools.catalog import Catalog
    from tools.scenes.chips import ChipParams
    from tools.scenes.ingest import ingest_scene

    cat = Catalog(db)
    started = time.perf_counter()
    rep = ingest_scene(cat, scene, params=ChipParams(size=256, overlap=overlap))
    return cat, rep.chips_added, time.perf_counter() - started


def _ratio(args: argparse.Namespace, tmp: Path) -> None:
    from tools.catalog import Catalog
    from tools.imageio import load_rgb
    from tools.ingest import ingest_directory
    from tools.models import load_model
    from tools.paths import resolve_roots

    (tmp / "scene").mkdir()
    scene = build_scene(tmp / "scene" / "scene.tif", args.side)
    loaded = load_model("skyscout-tiny", cache_dir=tmp / "cache")
    cat, n, _ = _chip(scene, tmp / "cut.db", args.overlap)
    # the baseline: the same windows as pre-cut JPEG tiles (cut outside the timed part)
    tiles_dir = tmp / "tiles"
    tiles_dir.mkdir()
    for i, chip in enumerate(cat.chip_rows()):
        # a comment makes every file distinct (ingestion would count a repeated window as a duplicate)
        load_rgb(chip["uri"]).save(tiles_dir / f"t{i:05d}.jpg", quality=92, comment=f"window {i}".encode())
    tcat = Catalog(tmp / "tiles.db")
    ingest_directory(tcat, tiles_dir, allowed_roots=resolve_roots([tiles_dir]), progress=False)
    assert tcat.count_images() == n, (tcat.count_images(), n)
    _index(cat, loaded, tmp / "idx_warm", args.batch_size)  # warm-up: first LanceDB table, first batches
    rounds = []
    for r in range(args.rounds):  # interleaved, so that a noisy neighbour hurts both sides alike
        tiles_s, tiles_n = _index(tcat, loaded, tmp / f"idx_tiles{r}", args.batch_size)
        scat, chips_n, chipping = _chip(scene, tmp / f"scene{r}.db", args.overlap)
        embed_s, indexed = _index(scat, loaded, tmp / f"idx_scene{r}", args.batch_size)
        assert tiles_n == chips_n == indexed == n
        rounds.append((tiles_s, chipping, embed_s))
    print(f"{args.side} x {args.side} px COG ({scene.stat().st_size / 2**20:.0f} MiB), {n} chips of 256 px, overlap "
          f"{args.overlap}; skyscout-tiny, batch {args.batch_size}; {args.rounds} interleaved rounds")
    print(f"{'round':<7}{'stage':<52}{'seconds':>9}{'items/s':>10}{'ratio':>8}")
    for r, (tiles_s, chipping, embed_s) in enumerate(rounds, start=1):
        scene_s = chipping + embed_s
        print(f"{r:<7}{'pre-cut JPEG tiles: decode -> embed -> LanceDB':<52}{tiles_s:>9.2f}{n / tiles_s:>10.1f}"
              f"{1.0:>8.2f}")
        print(f"{r:<7}{'scene: chipping (hash, stretch, read every window)':<52}{chipping:>9.2f}{n / chipping:>10.1f}")
        print(f"{r:<7}{'scene: chips: window read -> embed -> LanceDB':<52}{embed_s:>9.2f}{n / embed_s:>10.1f}"
              f"{tiles_s / embed_s:>8.2f}")
        print(f"{r:<7}{'scene: chipping + embedding':<52}{scene_s:>9.2f}{n / scene_s:>10.1f}{tiles_s / scene_s:>8.2f}")
    best_tiles = min(t for t, _, _ in rounds)
    best_scene = min(c + e for _, c, e in rounds)
    print(f"best of each: tiles {best_tiles:.2f} s, scene {best_scene:.2f} s, ratio {best_tiles / best_scene:.2f}")


_CHILD = """
import json, resource, sys, threading, time
from pathlib import Path
sys.path.insert(0, {project!r})
from tools.catalog import Catalog
from tools.embedding import build_index
from tools.models import load_model
from tools.scenes.chips import ChipParams
from tools.scenes.ingest import ingest_scene
from tools.stores.factory import index_registry


def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


peak = {{"chipping": 0, "embedding": 0}}
stage = ["chipping"]
done = threading.Event()


def sample():
    while not done.is_set():
        peak[stage[0]] = max(peak[stage[0]], rss_kib())
        time.sleep(0.02)


tmp = Path({tmp!r})
loaded = load_model("skyscout-tiny", cache_dir=tmp / "cache")
base = rss_kib()
threading.Thread(target=sample, daemon=True).start()
cat = Catalog(tmp / "mem.db")
t = time.perf_counter()
rep = ingest_scene(cat, Path({scene!r}), params=ChipParams(size=256, overlap={overlap}))
stage[0] = "embedding"
r = build_index(cat, index_registry("lancedb", path=tmp / "idx_mem"), model_key="bench", model=loaded.model,
                transform=loaded.preprocess_val, dim=loaded.embed_dim, batch_size=64, num_workers=0, progress=False)
done.set()
print(json.dumps({{"chips": rep.chips_added, "indexed": r.count, "seconds": time.perf_counter() - t,
                  "model_loaded_kib": base, "chipping_kib": peak["chipping"], "embedding_kib": peak["embedding"],
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}))
"""


def _memory(args: argparse.Namespace, tmp: Path) -> None:
    rows = []
    for side in args.memory_sides:
        folder = tmp / f"mem{side}"
        folder.mkdir()
        scene = build_scene(folder / "scene.tif", side)
        code = _CHILD.format(project=str(PROJECT), tmp=str(folder), scene=str(scene), overlap=args.overlap)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        doc = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((side, scene.stat().st_size, doc))
        scene.unlink()
    print(f"\nresident memory (VmRSS sampled every 20 ms) of a fresh process that chips and embeds one scene "
          f"(overlap {args.overlap}), after loading the model")
    print(f"{'scene':>10}{'file MiB':>10}{'chips':>8}{'seconds':>9}{'model loaded':>14}{'chipping peak':>15}"
          f"{'embedding peak':>16}{'ru_maxrss':>11}")
    for side, size, d in rows:
        print(f"{f'{side} px':>10}{size / 2**20:>10.0f}{d['chips']:>8}{d['seconds']:>9.1f}"
              f"{d['model_loaded_kib'] / 1024:>10.0f} MiB{d['chipping_kib'] / 1024:>11.0f} MiB"
              f"{d['embedding_kib'] / 1024:>12.0f} MiB{d['maxrss_kib'] / 1024:>7.0f} MiB")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=10_000, help="scene side for the ratio (pixels)")
    ap.add_argument("--overlap", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--memory-sides", type=int, nargs="*", default=[10_000, 20_000],
                    help="scene sides for the peak-memory runs (none: skip them)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved timing rounds of each side")
    ap.add_argument("--skip-ratio", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.skip_ratio:
            _ratio(args, tmp)
        if args.memory_sides:
            _memory(args, tmp)


if __name__ == "__main__":
    main()

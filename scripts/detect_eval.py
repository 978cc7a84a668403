"""Detection quality on real scenes: UC Merced val tiles planted at known positions, found again by `detect`.

Builds three scenes from the 157 UCM val tiles (shuffled onto a 13 x 13 grid of 256 px cells, the last
row completed with repeats: 3,328 px a side) in EPSG:32610 at 0.3 m: an 8-bit COG, a tiled 16-bit 4-band
GeoTIFF (B,G,R,NIR, read as 3,2,1) with a 128 px nodata border, and a stripped 8-bit GeoTIFF. Ingests and
chips them (each overlap asked for), indexes them with the model, and for each of the 16 classes runs the
real detection use case (``app.detect.detect``, every chip scored) with the class's zero-shot phrase. A
chip is positive when more than half of it lies in planted tiles of that class. Prints chip-level average
precision per class and scene (chips ranked as `detect` ranks them, by probability; after ``--nms``; and with
the part check, ``--parts``), the mean, and the same model's AP on the bare val tiles (the ceiling: the same
query vectors and background prompts over the tiles' own vectors, and with the part check over the tiles'
quadrants); then what a probability threshold of 0.5 means (precision and recall
of p >= 0.5).

    python scripts/detect_eval.py --home DIR --model mv-...        # a model trained in DIR
    python scripts/detect_eval.py --train                          # fine-tune skyscout-tiny first (minutes)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.context import AppContext  # noqa: E402
from tests.support.mosaics import Mosaic, build_mosaic, val_tiles  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
KINDS = {"cog": {"bands": None, "border": 0}, "tiled16": {"bands": "3,2,1", "border": 128},
         "stripped": {"bands": None, "border": 0}}


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Non-interpolated AP: the mean over positives of the precision at their rank (NaN without positives)."""
    if not positive.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = positive[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def _context(home: Path) -> AppContext:
    from service.context import Services
    from service.settings import Settings

    return Services(Settings(home=home, data_roots=f"{SHARED}:{home}")).app


def _train(ctx: AppContext) -> str:
    from app.data import create_dataset, ingest
    from app.training import train

    for split in ("train", "val"):
        ingest(ctx, SHARED / "ucm_captions" / f"{split}.jsonl")
    ds = create_dataset(ctx, sources=["ucm_captions"], val_frac=0.0, test_frac=0.0)
    started = time.time()
    result = train(ctx, model="skyscout-tiny", dataset=ds["id"])
    print(f"trained {result['model_version']} in {time.time() - started:.0f} s", flush=True)
    return str(result["model_version"])


def _scenes(ctx: AppContext, home: Path, seed: int, overlaps: list[float], chip: int, per_class: int | None
            ) -> dict[str, tuple[Mosaic, str]]:
    """Build and ingest the three scenes, chipped once per overlap (chips of the same window are shared)."""
    from app.data import ingest
    from app.scenes import scene_options

    tiles = val_tiles(SHARED, per_class=per_class)
    cols = int(np.ceil(np.sqrt(len(tiles))))
    out: dict[str, tuple[Mosaic, str]] = {}
    for kind, opts in KINDS.items():
        folder = home / "scenes" / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"ucm_val_{kind}.tif"
        mosaic = build_mosaic(path, tiles, cols=cols, kind=kind, seed=seed, border=int(opts["border"] or 0))
        mosaic.save_layout(folder / "layout.json")
        for overlap in overlaps:
            report = ingest(ctx, folder, scenes=scene_options(ctx, chip_size=chip, overlap=overlap,
                                                              bands=opts["bands"], force=True))
            (scene,) = report.scenes
            print(f"{kind}, overlap {overlap}: {mosaic.width}x{mosaic.height}, {scene['windows']} windows, "
                  f"{scene['chips_added']} new chips, {scene['skipped_nodata']} nodata, {len(scene['broken'])} "
                  "broken", flush=True)
        out[kind] = (mosaic, str(scene["scene_id"]))
    return out


def _phrases(ctx: AppContext) -> dict[str, str]:
    from tools.captioning.text import humanize_label

    labels = sorted({json.loads(line)["label"] for line in (SHARED / "ucm_captions" / "val.jsonl").read_text()
                     .splitlines() if line.strip()})
    return {c: humanize_label(c, None) for c in labels}


def _ceiling(ctx: AppContext, phrases: dict[str, str], model: str) -> tuple[dict[str, float], dict[str, float]]:
    """AP of each class phrase over the bare val tiles' vectors (from the same index), ranked as `detect` ranks
    chips: by the probability against the same background prompts; and as `detect --parts` ranks them (each
    tile's log-odds tempered by its weakest quadrant's)."""
    from app.indexing import open_active_index
    from app.models import text_encoder_of
    from tools.detect.parts import combine, part_logits
    from tools.detect.probability import DEFAULT_BACKGROUND, background_for, temperature_of
    from tools.detect.scoring import score_chips
    from tools.search import text_vector

    rows = [json.loads(line) for line in (SHARED / "ucm_captions" / "val.jsonl").read_text().splitlines() if line]
    ids = {str((SHARED / "ucm_captions" / r["image"]).resolve()): r["label"] for r in rows}
    found = {r.id: ids[r.uri] for r in ctx.catalog.iter_images() if r.uri in ids}
    active = open_active_index(ctx)
    got = active.store.get(list(found))
    keys = [k for k in found if k in got]
    vecs = np.stack([np.asarray(got[k][0], dtype=np.float32) for k in keys])
    labels = np.array([found[k] for k in keys])
    loaded = ctx.load_model(model)[1]
    encode = text_encoder_of(loaded, ctx.device)
    prompts = list(ctx.config.detect_background or DEFAULT_BACKGROUND)
    bvecs = np.stack([text_vector(encode, p) for p in prompts])
    temperature = temperature_of(loaded.model)
    uris = {r.id: r.uri for r in ctx.catalog.iter_images() if r.id in found}
    parts = _tile_parts(loaded, [uris[k] for k in keys])
    out, out_parts = {}, {}
    for c, p in phrases.items():
        qvec = text_vector(encode, p)
        used = background_for(p, prompts, qvec, bvecs)
        scored = score_chips(vecs, qvec, bvecs[used], temperature=temperature)
        out[c] = average_precision(scored.logits, labels == c)
        checked = combine(scored.logits, part_logits(parts, qvec, bvecs[used], temperature=temperature))
        out_parts[c] = average_precision(checked, labels == c)
    return out, out_parts


def _tile_parts(loaded: object, paths: list[str]) -> np.ndarray:
    """``(n, 4, dim)`` vectors of the four quadrants of each tile file (as ``detect --parts`` embeds a chip's)."""
    from tools.detect.parts import QUADRANTS
    from tools.imageio import load_rgb
    from tools.models.encode import encode_images

    crops = []
    for path in paths:
        im = load_rgb(path)
        w, h = im.size
        crops += [im.crop((int(fx * w), int(fy * h), int(fx * w) + w // 2, int(fy * h) + h // 2))
                  for fx, fy in QUADRANTS]
    return encode_images(loaded, crops).reshape(len(paths), len(QUADRANTS), -1)  # type: ignore[arg-type]


def _grid(mosaic: Mosaic, chip: int, overlap: float) -> set[tuple[int, int]]:
    from tools.scenes.chips import ChipParams, make_grid

    grid = make_grid(mosaic.width, mosaic.height, ChipParams(size=chip, overlap=overlap), None)
    return {(x, y) for _, _, x, y, _, _ in grid.windows()}


def _scene_eval(ctx: AppContext, mosaic: Mosaic, scene_id: str, phrases: dict[str, str], grid: set[tuple[int, int]]
                ) -> dict[str, object]:
    """AP per class over the chips of one grid: by probability, after non-maximum suppression (``--nms``), and
    with the part check (``--parts``)."""
    from app.detect import DetectRequest, detect

    ap, ap_nms, ap_parts, probs, truth, probs_parts = {}, {}, {}, [], [], []
    for cls, phrase in phrases.items():
        checked = detect(ctx, DetectRequest(text=phrase, scene=scene_id, threshold=0.0, parts=True))
        by_id = {d.chip_id: d for d in checked.all_chips}
        result = detect(ctx, DetectRequest(text=phrase, scene=scene_id, threshold=0.0, nms=True))
        kept = {d.chip_id for d in result.detections}
        chips = [d for d in result.all_chips if tuple(d.window[:2]) in grid]
        scores = np.array([d.logit for d in chips])  # the product's ranking: by probability (its logit)
        positive = np.array([mosaic.class_cover(*d.window).get(cls, 0.0) > 0.5 for d in chips])
        ap[cls] = average_precision(scores, positive)
        if len(grid) < len(result.all_chips):  # suppression among this grid's chips only
            from tools.detect.scoring import local_maxima

            peaks = local_maxima(scores, [scene_id] * len(chips), np.array([d.window for d in chips]))
        else:
            peaks = np.array([d.chip_id in kept for d in chips])
        ap_nms[cls] = average_precision(np.where(peaks, scores, -np.inf), positive)
        ap_parts[cls] = average_precision(np.array([by_id[d.chip_id].logit for d in chips]), positive)
        probs.append(np.array([d.probability for d in chips]))
        probs_parts.append(np.array([by_id[d.chip_id].probability for d in chips]))
        truth.append(positive)
    return {"ap": ap, "ap_nms": ap_nms, "ap_parts": ap_parts, "probs": probs, "probs_parts": probs_parts,
            "truth": truth, "chips": len(chips)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, help="SKYSCOUT_HOME to work in (default: a new temporary one)")
    ap.add_argument("--model", help="model version (in --home) to evaluate")
    ap.add_argument("--train", action="store_true", help="fine-tune skyscout-tiny on UCM train first")
    ap.add_argument("--overlaps", type=float, nargs="+", default=[0.5, 0.0],
                    help="chip overlaps to evaluate (the first is the headline; default 0.5 and 0)")
    ap.add_argument("--chip-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0, help="layout shuffle")
    ap.add_argument("--per-class", type=int, help="only this many val tiles per class (a quick run)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if not (SHARED / "ucm_captions" / "val.jsonl").is_file():
        print(f"needs the UC Merced data at {SHARED}", file=sys.stderr)
        return 2
    home = args.home or Path(tempfile.mkdtemp()) / "home"
    ctx = _context(home)
    model = _train(ctx) if args.train else args.model
    if not model:
        print("give --model MV (trained in --home) or --train", file=sys.stderr)
        return 2
    from app.indexing import build_index
    from app.status import promote

    if model.startswith("mv-") and ctx.catalog.get_alias("active_model") != model:
        promote(ctx, model)
    from app.data import ingest

    ingest(ctx, SHARED / "ucm_captions" / "val.jsonl")  # the ceiling's tiles (adds nothing when present)
    scenes = _scenes(ctx, home, args.seed, args.overlaps, args.chip_size, args.per_class)
    started = time.time()
    report = build_index(ctx, model=model)
    print(f"indexed {report.embedded} new images/chips in {time.time() - started:.0f} s ({report.index})", flush=True)
    phrases = _phrases(ctx)
    ceiling, ceiling_parts = _ceiling(ctx, phrases, model)
    results = {(kind, ov): _scene_eval(ctx, mosaic, sid, phrases, _grid(mosaic, args.chip_size, ov))
               for ov in args.overlaps for kind, (mosaic, sid) in scenes.items()}
    for ov in args.overlaps:
        _print(phrases, (ceiling, ceiling_parts), {k: v for (k, o), v in results.items() if o == ov}, model,
               args.chip_size, ov)
    if args.json:
        args.json.write_text(json.dumps({"model": model, "ceiling": ceiling, "ceiling_parts": ceiling_parts, "ap": {
            f"{k}@{o}": {m: v[m] for m in ("ap", "ap_nms", "ap_parts")} for (k, o), v in results.items()}},
            indent=2))
    return 0


def _mean(values: dict[str, float]) -> float:
    finite = [v for v in values.values() if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _print(phrases: dict[str, str], ceilings: tuple[dict[str, float], dict[str, float]], results: dict[str, dict],
           model: str, chip: int, overlap: float) -> None:
    kinds = list(results)
    print(f"\nmodel {model}; chips {chip} px, overlap {overlap}; chip-level AP of each class phrase (a chip is "
          "positive when > 50% of it lies in planted tiles of the class); +nms: after `detect --nms`; +parts: "
          "ranked as `detect --parts` ranks (the ceiling likewise)")
    cols = [(k, m) for k in kinds for m in ("ap", "ap_nms", "ap_parts")]
    names = {"ap": "", "ap_nms": "+nms", "ap_parts": "+parts"}
    head = "".join(f"{k + names[m]:>15}" for k, m in cols)
    print(f"{'class':<20}{head}{'val tiles':>11}{'tiles+parts':>13}")
    for c in phrases:
        row = "".join(f"{results[k][m][c]:>15.3f}" for k, m in cols)
        print(f"{c:<20}{row}{ceilings[0][c]:>11.3f}{ceilings[1][c]:>13.3f}")
    row = "".join(f"{_mean(results[k][m]):>15.3f}" for k, m in cols)
    print(f"{'mean':<20}{row}{_mean(ceilings[0]):>11.3f}{_mean(ceilings[1]):>13.3f}")
    print(f"what p >= 0.5 means at overlap {overlap} (every class's query over every chip):")
    for k in kinds:
        for probs, how in (("probs", ""), ("probs_parts", " with --parts")):
            p = np.concatenate(results[k][probs])
            t = np.concatenate(results[k]["truth"])
            kept = p >= 0.5
            prec = float(t[kept].mean()) if kept.any() else float("nan")
            rec = float(kept[t].mean()) if t.any() else float("nan")
            print(f"  {k}{how}: {int(kept.sum())} of {len(p)} (chip, query) pairs have p >= 0.5; precision "
                  f"{prec:.3f}, recall {rec:.3f} of {int(t.sum())} positives")


if __name__ == "__main__":
    sys.exit(main())

"""The demo, SkyScout's main job on the embedded defaults: ``python -m service.demo`` (``make demo``).

Offline, on the CPU, on the sample bundled in ``data/ucm_sample`` (320 UC Merced tiles with human
captions): ingest it, let the planner caption what lacks captions, fine-tune ``skyscout-small``, evaluate,
promote and index, then answer five requests in plain words through the agents, and write an HTML page
of the search results. A small georeferenced scene (16 sample tiles laid out as a 1,024 px GeoTIFF) is
chipped and indexed too, so the web app's map has imagery; the demo ends with the web app's URL, and with
``--serve`` it serves the app there until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT / "data" / "ucm_sample"

REQUESTS = [
    "find beaches",
    "show me harbors with boats",
    "how good is the model?",
    "why did you retrain?",
    "find dense green trees but not buildings",
]


def _banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _cli(argv: list[str]) -> None:
    from service.cli import main as cli_main

    print(f"$ skyscout {' '.join(argv)}", flush=True)
    code = cli_main(argv)
    if code != 0:
        raise SystemExit(f"demo step failed: skyscout {' '.join(argv)} (exit code {code})")


def _ask(runner: Any, request: str, sections: list[dict[str, Any]]) -> None:
    _banner(f'ask "{request}"')
    outcome = runner.run(request)
    print(outcome.answer or "(no answer)")
    if outcome.status != "done":
        print(f"[{outcome.status}] {'; '.join(outcome.errors)}")
    hits: list[dict[str, Any]] = []
    for result in outcome.results:
        if result.get("action") == "search_images" and result.get("status") == "ok":
            hits = [{**h, "captions": [h["caption"]] if h.get("caption") else []}
                    for h in result["data"].get("hits", [])]
    sections.append({"title": request, "query": f"thread {outcome.thread_id}", "hits": hits,
                     "answer": None if hits else outcome.answer})


def sample_scene(out: Path) -> Path:
    """A 1,024 px GeoTIFF (COG) of 16 sample tiles, one per class, in UTM 10N at 0.3 m a pixel. The place is
    made up (the sample's tiles carry no coordinates): it gives the web app's map a scene to show and search."""
    import numpy as np
    import rasterio
    from PIL import Image
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    tiles = [sorted(d.glob("*.jpg"))[0] for d in sorted((SAMPLE / "images").iterdir()) if d.is_dir()][:16]
    out.parent.mkdir(parents=True, exist_ok=True)
    plain = out.with_suffix(".plain.tif")
    profile = {"driver": "GTiff", "width": 1024, "height": 1024, "count": 3, "dtype": "uint8", "crs": "EPSG:32610",
               "transform": from_origin(628_000.0, 4_130_000.0, 0.3, 0.3), "tiled": True, "blockxsize": 256,
               "blockysize": 256}
    with rasterio.open(plain, "w", **profile) as ds:
        for i, path in enumerate(tiles):
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB").resize((256, 256))).transpose(2, 0, 1)
            ds.write(pixels, window=Window(i % 4 * 256, i // 4 * 256, 256, 256))
    with rasterio.open(plain) as src:
        rio_copy(src, out, driver="COG", COMPRESS="DEFLATE", BLOCKSIZE="256")
    plain.unlink()
    return out


def serve_app(port: int) -> None:
    """The web app and the API on 127.0.0.1:``port`` (no token needed on loopback unless SKYSCOUT_API_TOKENS
    sets some), until Ctrl-C."""
    import uvicorn

    from service.api import create_app
    from service.settings import load_settings

    print(f"Web app: http://127.0.0.1:{port}/  (serving; Ctrl-C stops it)", flush=True)
    uvicorn.run(create_app(load_settings()), host="127.0.0.1", port=port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=str(PROJECT / ".skyscout" / "demo"),
                    help="SKYSCOUT_HOME for the demo (default: .skyscout/demo in the project)")
    ap.add_argument("--keep", action="store_true", help="keep the previous demo's catalog instead of starting fresh")
    ap.add_argument("--out", default=str(PROJECT / "out" / "demo-results.html"), help="where to write the HTML page")
    ap.add_argument("--serve", action="store_true", help="serve the web app at the end (until Ctrl-C)")
    ap.add_argument("--port", type=int, default=8000, help="the web app's port with --serve (default 8000)")
    args = ap.parse_args(argv)
    home = Path(args.home)
    if home.exists() and not args.keep:
        shutil.rmtree(home)
    os.environ["SKYSCOUT_HOME"] = str(home)
    roots = [str(PROJECT / "data"), str(home / "scenes"), os.environ.get("SKYSCOUT_DATA_ROOTS", "")]
    os.environ["SKYSCOUT_DATA_ROOTS"] = ":".join(r for r in roots if r)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    print(f"SkyScout demo: home {home}, sample {SAMPLE.relative_to(PROJECT)} (see its README for attribution)")

    _banner("1. Ingest the bundled sample (manifests with labels and human captions)")
    _cli(["ingest", "--manifest", str(SAMPLE / "train.jsonl"), "--no-progress"])
    _cli(["ingest", "--manifest", str(SAMPLE / "val.jsonl"), "--no-progress"])
    _banner("2. Record a dataset version (the manifests' train/val split)")
    _cli(["dataset", "create", "--name", "ucm-sample", "--val", "0", "--test", "0"])

    from service.context import Services
    from service.scheduler import improvement_tick, tick_lock

    services = Services()
    ctx, runner = services.app, services.runner()
    _banner("3. One improvement round: the planner reads the catalog and decides what to do")
    with tick_lock(services.settings.home / "improve.lock"):
        round_ = improvement_tick(services)
    print(round_["answer"] or "")
    if round_["status"] != "done":
        raise SystemExit(f"the improvement round did not finish: {round_['status']} {round_['errors']}")

    _banner("4. A scene for the map: 16 sample tiles as a georeferenced GeoTIFF, chipped and indexed")
    scene = sample_scene(home / "scenes" / "ucm-sample-mosaic.tif")
    _cli(["ingest", str(scene), "--overlap", "0", "--no-progress"])
    _cli(["index", "--no-progress"])

    _banner("5. Decision log")
    for d in sorted(ctx.catalog.decisions(limit=20), key=lambda d: d["id"]):
        print(f"  #{d['id']} {d['action']}: {d['reason']}  -> {d['outcome']}")

    _banner("6. Five requests in plain words, answered by the agents")
    sections: list[dict[str, Any]] = []
    for request in REQUESTS:
        _ask(runner, request, sections)

    from service.report import write_results_page

    page = write_results_page(sections, Path(args.out), title="SkyScout demo: search results")
    _banner("Done")
    print(f"HTML page of the results: {page}")
    print(f"status: {json.dumps({k: v for k, v in _status(ctx).items()}, default=str)}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    if args.serve:
        serve_app(args.port)
        return 0
    print(f"Web app: SKYSCOUT_HOME={home} SKYSCOUT_DATA_ROOTS={os.environ['SKYSCOUT_DATA_ROOTS']} skyscout serve, "
          f"then open http://127.0.0.1:8000/  (or: make demo DEMO_ARGS=--serve)")
    return 0


def _status(ctx: Any) -> dict[str, Any]:
    from app.status import status

    return {k: v for k, v in status(ctx).items() if k in ("images", "active_model", "active_index")}


if __name__ == "__main__":
    sys.exit(main())

"""Scene and detection commands: ``detect``, ``scenes``, and the chipping options ``ingest`` takes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.context import AppContext
from app.detect import DetectRequest, detect, write_rasters
from app.scenes import get_scene, list_scenes, scene_options
from service.context import Services
from service.output import kv, print_json, table
from tools.geo import load_aoi, parse_bbox
from tools.scenes.ingest import SceneOptions


def add_scene_options(p: argparse.ArgumentParser) -> None:
    """The chipping options of ``skyscout ingest``."""
    g = p.add_argument_group("scenes (large rasters: GeoTIFF / COG, chipped in place)")
    g.add_argument("--scenes", dest="force_scenes", action="store_const", const=True, default=None,
                   help="treat every file as a scene (default: files whose longer side reaches "
                        "SKYSCOUT_SCENE_MIN_SIDE pixels, and manifest lines with scene: true)")
    g.add_argument("--no-scenes", dest="force_scenes", action="store_const", const=False,
                   help="never chip: every file is one image")
    g.add_argument("--chip-size", type=int, help="chip side in pixels (default 256)")
    g.add_argument("--overlap", type=float, help="fraction of a chip shared with its neighbour (default 0.5)")
    g.add_argument("--gsd", type=float, help="resample chips to this many metres per pixel (e.g. the model's)")
    g.add_argument("--bands", help="1-based bands shown as R,G,B, e.g. 3,2,1 for Sentinel-2 B4,B3,B2; one band "
                                   "is repeated to grey")
    g.add_argument("--stretch", choices=("auto", "none", "percentile"),
                   help="to 8-bit: auto (none for 8-bit data, else a 2-98%% per-band stretch of the scene)")
    g.add_argument("--max-nodata", type=float, help="skip chips with a larger nodata fraction (default 0.5)")


def add_area_options(p: argparse.ArgumentParser) -> None:
    """Where to search: a box, a GeoJSON polygon file or a scene (chips only)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument("--bbox", help="only chips touching W,S,E,N (degrees, EPSG:4326)")
    where.add_argument("--aoi", help="only chips touching the polygon(s) of this GeoJSON file")
    where.add_argument("--scene", help="only chips of this scene (id, id prefix or path)")


def area_of(args: argparse.Namespace) -> dict[str, Any]:
    """The ``aoi`` / ``scenes`` fields of a :class:`~tools.search.Query` from the area options."""
    if args.bbox:
        return {"aoi": parse_bbox(args.bbox).to_dict()["geometry"]}
    if args.aoi:
        return {"aoi": load_aoi(args.aoi).to_dict()["geometry"]}
    return {"scenes": [args.scene]} if args.scene else {}


def scene_options_from(app: AppContext, args: argparse.Namespace) -> SceneOptions:
    return scene_options(app, chip_size=args.chip_size, overlap=args.overlap, gsd=args.gsd, bands=args.bands,
                         stretch=args.stretch, max_nodata=args.max_nodata, force=args.force_scenes)


def print_scene_reports(scenes: list[dict[str, Any]]) -> None:
    """The per-scene lines of an ingestion report (with broken windows and their reasons)."""
    if not scenes:
        return
    print("\nscenes:")
    print(table([(Path(s["path"]).name, (s["scene_id"] or "")[:12], f"{s['width']}x{s['height']}x{s['bands']}",
                  s["dtype"], s["crs"] or "no CRS", s["windows"], s["chips_added"], s["chips_existing"],
                  s["skipped_nodata"], len(s["broken"])) for s in scenes],
                ["file", "scene", "size", "dtype", "crs", "windows", "new chips", "known", "nodata", "broken"]))
    for s in scenes:
        for b in s["broken"][:10]:
            print(f"broken window {b['window']} of {Path(s['path']).name}: {b['reason']}")
        for w in s["warnings"]:
            print(f"{Path(s['path']).name}: {w}")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    d = sub.add_parser("detect", parents=[common],
                       help="score every chip for a query; write detections with coordinates (GeoJSON)")
    d.add_argument("text", nargs="*", help="what to find, e.g. vineyards (optional with --concept)")
    d.add_argument("--concept", help="score with a concept (name or id): at its classifier stage the "
                                     "probabilities are the classifier's (`skyscout concept`)")
    d.add_argument("--not", dest="negative", action="append", default=[], help="text to steer away from")
    add_area_options(d)
    d.add_argument("--top-k", type=int, help="keep the best K chips")
    d.add_argument("--threshold", type=float, help="keep chips whose probability is at least P (default 0.5 "
                                                   "when --top-k is not given)")
    d.add_argument("--merge", action="store_true", help="dissolve touching kept chips into polygons "
                                                        "(max/mean score, area_m2)")
    d.add_argument("--nms", action="store_true", help="keep only chips that no better-scoring overlapping chip "
                                                      "outranks (one chip per finding)")
    d.add_argument("--parts", action="store_true", help="temper each chip by its weakest quadrant (embeds 4 "
                                                        "quadrants per chip: slower; fewer chips that only touch "
                                                        "the thing or straddle a seam)")
    d.add_argument("--background", help="comma-separated background prompts the probability weighs the query "
                                        "against (default: SKYSCOUT_DETECT_BACKGROUND or the built-in set)")
    d.add_argument("--out", help="write the FeatureCollection (RFC 7946, EPSG:4326) to this .geojson file")
    d.add_argument("--raster", help="write a COG heat map of every chip's score (one pixel per stride)")
    d.set_defaults(handler=cmd_detect)

    s = sub.add_parser("scenes", parents=[common], help="list the ingested scenes, or show one")
    s.add_argument("scene", nargs="?", help="a scene id, id prefix or path")
    s.set_defaults(handler=cmd_scenes)


def cmd_detect(args: argparse.Namespace) -> int:
    app = Services().app
    if not args.text and not args.concept:
        raise ValueError("say what to detect (e.g. `skyscout detect vineyards`) or give --concept NAME")
    req = DetectRequest(
        text=" ".join(args.text), negative=args.negative, scene=args.scene, bbox=args.bbox, concept=args.concept,
        aoi=load_aoi(args.aoi).to_dict()["geometry"] if args.aoi else None, top_k=args.top_k,
        threshold=args.threshold, merge=args.merge, nms=args.nms, parts=args.parts,
        background=[b.strip() for b in args.background.split(",") if b.strip()] if args.background else None,
        georeferenced=bool(args.out or args.raster))
    result = detect(app, req)
    doc: dict[str, Any] = result.summary()
    if args.out:
        Path(args.out).write_text(json.dumps(result.geojson()), encoding="utf-8")
        doc["out"] = str(Path(args.out).resolve())
    if args.raster:
        doc["rasters"] = write_rasters(app, result, args.raster)
    if args.json:
        print_json(doc if args.out else {**doc, "geojson": result.geojson()})
        return 0
    print(kv([(k, doc[k]) for k in ("query", "model", "index", "stage", "chips_scored", "detections", "regions",
                                    "threshold", "top_k") if doc.get(k) is not None] + [("out", doc.get("out"))]))
    rows = [(i + 1, f"{d.score:.3f}", f"{d.probability:.3f}", d.scene_id[:12], ",".join(map(str, d.window)),
             d.chip_id[:12]) for i, d in enumerate(result.detections[:20])]
    print(table(rows, ["#", "score", "prob", "scene", "window x,y,w,h", "chip"]))
    for w in result.warnings:
        print(f"warning: {w}")
    return 0


def cmd_scenes(args: argparse.Namespace) -> int:
    app = Services().app
    if args.scene:
        doc = get_scene(app, args.scene)
        print_json(doc) if args.json else print(kv([(k, v) for k, v in doc.items() if k not in ("metadata",
                                                                                              "footprint")]))
        return 0
    scenes = list_scenes(app)
    if args.json:
        print_json(scenes)
        return 0
    print(table([(s["id"][:12], Path(s["uri"]).name, f"{s['width']}x{s['height']}x{s['bands']}", s["dtype"],
                  s["crs"] or "no CRS", f"{s['gsd']:.3g}" if s["gsd"] else "", s["chips"], s["broken_windows"])
                 for s in scenes], ["scene", "file", "size", "dtype", "crs", "gsd m", "chips", "broken"]))
    return 0

"""Data and caption commands: ingest, caption, dataset, status (jobs: :mod:`service.commands.ops`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.data import caption, create_dataset, ingest
from app.status import status
from service.commands.engine_options import add_engine_options, ray_options
from service.commands.scenes import add_scene_options, print_scene_reports, scene_options_from
from service.context import Services
from service.output import kv, print_json, table
from tools.captioning.factory import CAPTIONER_NAMES
from tools.datasets import resolve_dataset, to_hf_dataset


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common], help="register images from a directory tree or manifest")
    p.add_argument("path", nargs="?", help="directory to scan (jpg, jpeg, png, tif, tiff, webp)")
    p.add_argument("--manifest", help="JSON-lines or CSV manifest (path, label, captions, metadata)")
    p.add_argument("--source", help="collection name recorded with each image (default: folder name)")
    p.add_argument("--labels-from-folders", action="store_true",
                   help="label each image with the name of the folder it is in")
    p.add_argument("--workers", type=int, help="decoding threads (default: SKYSCOUT_WORKERS)")
    add_scene_options(p)
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("caption", parents=[common], help="caption images that lack captions from a captioner")
    p.add_argument("--captioner", choices=CAPTIONER_NAMES, help="backend (default: SKYSCOUT_CAPTIONER)")
    p.add_argument("--captioner-model", help="Hub id or local directory for blip/blip2")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, help="caption at most this many images")
    p.add_argument("--only-uncaptioned", action="store_true",
                   help="only images with no caption from any source (default: none from this captioner)")
    p.add_argument("--also-captioned", action="store_true",
                   help="also images that have better captions (human or model) than this captioner's")
    p.add_argument("--from-folders", action="store_true",
                   help="template: caption images without a label from their folder's name (ranked lowest)")
    add_engine_options(p)
    p.set_defaults(handler=cmd_caption)

    p = sub.add_parser("dataset", help="dataset versions (train/val/test splits)")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    c = dsub.add_parser("create", parents=[common],
                        help="record a dataset version: images keep their split (an earlier version's, else their "
                             "manifest's); new ones are split by hash within their label")
    c.add_argument("--name")
    c.add_argument("--source", action="append", dest="sources", help="only images of this source (repeatable)")
    c.add_argument("--val", type=float, default=0.1, help="fraction of new images for validation (default 0.1)")
    c.add_argument("--test", type=float, default=0.1, help="fraction of new images for test (default 0.1)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--require-captions", action="store_true", help="leave out images without captions")
    c.set_defaults(handler=cmd_dataset_create)
    ls = dsub.add_parser("list", parents=[common], help="list dataset versions")
    ls.set_defaults(handler=cmd_dataset_list)
    ex = dsub.add_parser("export", parents=[common], help="save a split as a Hugging Face dataset on disk")
    ex.add_argument("dataset", nargs="?", default="latest")
    ex.add_argument("--split", default="train", choices=("train", "val", "test"))
    ex.add_argument("--out", required=True, help="directory for datasets.Dataset.save_to_disk")
    ex.set_defaults(handler=cmd_dataset_export)

    p = sub.add_parser("status", parents=[common], help="what the catalog holds")
    p.set_defaults(handler=cmd_status)


def cmd_ingest(args: argparse.Namespace) -> int:
    if bool(args.path) == bool(args.manifest):
        raise ValueError("give either a directory PATH or --manifest FILE (exactly one)")
    app = Services().app
    report = ingest(app, args.manifest or args.path, manifest=bool(args.manifest), source=args.source,
                    labels_from_folders=args.labels_from_folders, workers=args.workers,
                    progress=not (args.no_progress or args.json), scenes=scene_options_from(app, args))
    doc = report.to_dict()
    if args.json:
        print_json(doc)
        return 0
    print(kv([("source", report.source), ("scanned", report.scanned), ("added", report.added),
              ("unchanged", report.unchanged), ("duplicates", report.duplicates),
              ("rejected", len(report.rejected)), ("human captions added", report.captions_added),
              ("images/s", doc["images_per_s"]), ("job", report.job_id)]
             + ([("scenes", len(report.scenes)), ("chips added", report.chips_added)] if report.scenes else [])))
    print_scene_reports(report.scenes)
    if report.rejected:
        print("\nrejected files:")
        print(table([(r["path"], r["reason"]) for r in report.rejected[:50]], ["path", "reason"]))
        if len(report.rejected) > 50:
            print(f"... and {len(report.rejected) - 50} more (use --json for all)")
    return 0


def cmd_caption(args: argparse.Namespace) -> int:
    report = caption(Services().app, captioner=args.captioner, captioner_model=args.captioner_model,
                     batch_size=args.batch_size, limit=args.limit, only_uncaptioned=args.only_uncaptioned,
                     also_captioned=args.also_captioned, from_folders=args.from_folders,
                     progress=not (args.no_progress or args.json), engine=args.engine,
                     ray=ray_options(args, args.batch_size))
    doc = report.to_dict()
    if args.json:
        print_json(doc)
        return 0
    print(kv([("captioner", report.captioner), ("model", report.model), ("images", report.images),
              ("captioned", report.captioned), ("captions added", report.captions_added),
              ("nothing to say", report.nothing_to_say), ("failed", len(report.failed)),
              ("images/s", doc["images_per_s"]), ("job", report.job_id)]))
    for f in report.failed[:20]:
        print(f"failed: {f['path']}: {f['reason']}", file=sys.stderr)
    return 0


def _dataset_row(d: dict[str, Any]) -> tuple[Any, ...]:
    sp = d["splits"]
    return (d["id"], d["name"], sp["train"], sp["val"], sp["test"])


def cmd_dataset_create(args: argparse.Namespace) -> int:
    info = create_dataset(Services().app, name=args.name, sources=args.sources, val_frac=args.val,
                          test_frac=args.test, seed=args.seed,
                          require_captions=args.require_captions)
    if args.json:
        print_json(info)
    else:
        print(("created " if info["created"] else "already exists: ") + info["id"])
        print(table([_dataset_row(info)], ["id", "name", "train", "val", "test"]))
    return 0


def cmd_dataset_list(args: argparse.Namespace) -> int:
    datasets = Services().app.catalog.list_datasets()
    if args.json:
        print_json(datasets)
    else:
        print(table([_dataset_row(d) for d in datasets], ["id", "name", "train", "val", "test"]))
    return 0


def cmd_dataset_export(args: argparse.Namespace) -> int:
    catalog = Services().app.catalog
    info = resolve_dataset(catalog, args.dataset)
    ds = to_hf_dataset(catalog, info["id"], args.split)
    ds.save_to_disk(args.out)
    doc = {"dataset": info["id"], "split": args.split, "rows": len(ds), "out": str(Path(args.out).resolve())}
    print_json(doc) if args.json else print(kv(list(doc.items())))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    doc = status(Services().app)
    if args.json:
        print_json(doc)
    else:
        print(kv([(k, v) for k, v in doc.items() if k not in ("latest_metrics", "recent_decisions")]))
        for d in doc["recent_decisions"][:3]:
            print(f"decision #{d['id']} {d['action']}: {d['reason']}")
    return 0


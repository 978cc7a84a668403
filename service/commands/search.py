"""Index and search commands: index, search, feedback (the application's use cases, printed)."""

from __future__ import annotations

import argparse
from typing import Any

from app.indexing import build_index
from app.search import record_feedback, search
from service.commands.engine_options import add_engine_options, ray_options
from service.commands.remote import find_server, remote_query
from service.commands.scenes import add_area_options, area_of
from service.context import Services
from service.output import kv, print_json, table
from tools.engines import PREPROCESS
from tools.search import Query
from tools.stores.base import STORE_KINDS


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common], help="embed every image with a model and make that index active")
    p.add_argument("--model", default="active", help="model spec or version (default: the active model)")
    p.add_argument("--store", choices=STORE_KINDS, help="vector store (default: SKYSCOUT_STORE)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=None,
                   help="decoding worker processes (default: 0, a decoding thread, on machines with up to 4 cores)")
    p.add_argument("--no-activate", action="store_true",
                   help="build it but keep the current index active (only the active model's index is ever activated)")
    p.add_argument("--preprocess", choices=PREPROCESS, default="auto",
                   help="where images are resized and normalised: host (the decoding workers), device (uint8 "
                        "pixels to the model's device), auto (device on CUDA; default)")
    add_engine_options(p)
    p.set_defaults(handler=cmd_index)

    s = sub.add_parser("search", parents=[common], help="find tiles by text and/or example images")
    s.add_argument("text", nargs="*", help="what to look for, e.g. 'beach' (several words: one phrase)")
    s.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    s.add_argument("--image", action="append", default=[],
                   help="an example image: its id, an id prefix, or its file path (repeatable)")
    s.add_argument("--not", dest="negative", action="append", default=[], help="text to steer away from")
    s.add_argument("--not-image", action="append", default=[], help="example image id to steer away from")
    s.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata filter, e.g. label=beach or source=eurosat (repeatable: all must hold)")
    s.add_argument("--min-score", type=float)
    s.add_argument("--store", choices=STORE_KINDS)
    add_area_options(s)
    s.set_defaults(handler=cmd_search)

    f = sub.add_parser("feedback", parents=[common], help="mark a search result relevant or not")
    f.add_argument("query_id")
    f.add_argument("image_id")
    g = f.add_mutually_exclusive_group(required=True)
    g.add_argument("--relevant", action="store_true")
    g.add_argument("--not-relevant", action="store_true")
    f.set_defaults(handler=cmd_feedback)


def parse_filters(pairs: list[str]) -> dict[str, Any] | None:
    """``["label=beach", "source=eurosat"]`` -> ``{"label": "beach", "source": "eurosat"}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"filter {pair!r} is not KEY=VALUE (e.g. label=beach)")
        out[key.strip()] = value.strip()
    return out or None


def cmd_index(args: argparse.Namespace) -> int:
    from app.status import record_manual

    app = Services().app
    report = build_index(app, model=args.model, store=args.store, batch_size=args.batch_size,
                         num_workers=args.num_workers, activate=not args.no_activate,
                         progress=not (args.no_progress or args.json), engine=args.engine,
                         preprocess=args.preprocess, ray=ray_options(args, args.batch_size))
    record_manual(app, "index", f"`skyscout index --model {args.model}`",
                  {"index": report.index, "model": report.model},
                  f"{'activated' if report.activated else 'built, not activated'}: {report.count} vectors")
    doc = report.to_dict()
    if args.json:
        print_json(doc)
    else:
        print(kv([(k, v) for k, v in doc.items() if k != "failed"] + [("failed", len(doc["failed"]))]))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    query = Query(texts=[" ".join(args.text)] if args.text else [], images=args.image,
                  negative_texts=args.negative, negative_images=args.not_image, k=args.k,
                  filter=parse_filters(args.filter), min_score=args.min_score, **area_of(args))
    services = Services()
    server = find_server(services.settings) if remote_query(query) and not args.store else None
    doc = server.search(query) if server else search(services.app, query, store=args.store).to_dict()
    if args.json:
        print_json({**doc, "served_by": server.url if server else "this process"})
        return 0
    where = f" (through {server.url})" if server else ""
    print(f"query {doc['query_id']} on index {doc['index']}{where}")
    print(table([(h["rank"], f"{h['score']:.3f}", h.get("label"), h["image_id"][:12], h.get("uri") or h.get("name"))
                 for h in doc["hits"]], ["#", "score", "label", "image", "path"]))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    fid = record_feedback(Services().app, image_id=args.image_id, relevant=bool(args.relevant),
                          query_id=args.query_id)
    doc = {"feedback_id": fid, "query_id": args.query_id, "image_id": args.image_id, "relevant": args.relevant}
    print_json(doc) if args.json else print(kv(list(doc.items())))
    return 0

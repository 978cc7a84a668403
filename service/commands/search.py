"""Index and search commands: index, search, feedback."""

from __future__ import annotations

import argparse
import os
from typing import Any

from service.context import AppContext
from service.output import kv, print_json, table
from tools.stores.base import STORE_KINDS


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("index", parents=[common], help="embed every image with a model and make that index active")
    p.add_argument("--model", default="active", help="model spec or version (default: the active model)")
    p.add_argument("--store", choices=STORE_KINDS, help="vector store (default: SKYSCOUT_STORE)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=None,
                   help="decoding worker processes (default: 0, a decoding thread, on machines with up to 4 cores)")
    p.add_argument("--no-activate", action="store_true", help="build it but keep the current index active")
    p.set_defaults(handler=cmd_index)

    s = sub.add_parser("search", parents=[common], help="find tiles by text and/or example images")
    s.add_argument("text", nargs="*", help="what to look for, e.g. 'beach' (several words: one phrase)")
    s.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    s.add_argument("--image", action="append", default=[], help="an example image id (repeatable)")
    s.add_argument("--not", dest="negative", action="append", default=[], help="text to steer away from")
    s.add_argument("--not-image", action="append", default=[], help="example image id to steer away from")
    s.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata filter, e.g. label=beach or source=eurosat (repeatable: all must hold)")
    s.add_argument("--min-score", type=float)
    s.add_argument("--store", choices=STORE_KINDS)
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


def default_decode_workers() -> int:
    """Few cores: decode in a thread beside the model (measured faster here); many: worker processes."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 4 else min(8, cores // 2)


def index_images(ctx: AppContext, *, model: str, store: str | None, batch_size: int = 64,
                 num_workers: int | None = None, activate: bool = True, progress: bool = True) -> dict[str, Any]:
    from tools.embedding import build_index

    if num_workers is None:
        num_workers = default_decode_workers()
    resolved, loaded = ctx.model(model)
    registry = ctx.registry(store)
    report = build_index(
        ctx.catalog, registry, model_key=resolved.version_id or resolved.load_spec, model=loaded.model,
        transform=loaded.preprocess_val, dim=loaded.embed_dim, device=ctx.device, batch_size=batch_size,
        num_workers=num_workers, activate=activate, progress=progress,
    )
    return report.to_dict()


def run_search(ctx: AppContext, query: Any, store: str | None = None) -> Any:
    """Search the active index of ``store`` with the model that built it."""
    from tools.embedding import active_index
    from tools.evaluation import encode_image_files, text_encoder
    from tools.search import search

    kind = store or ctx.settings.store
    record = active_index(ctx.catalog, kind)
    _, loaded = ctx.model(record["model"])
    index = ctx.registry(kind).open(record["name"], record["dim"], create=False)

    def encode_images(paths: list[str]) -> Any:
        return encode_image_files(loaded.model, loaded.preprocess_val, paths, device=ctx.device)

    return search(query, store=index, catalog=ctx.catalog,
                  encode_text=text_encoder(loaded.model, loaded.tokenizer, device=ctx.device),
                  encode_images=encode_images)


def cmd_index(args: argparse.Namespace) -> int:
    doc = index_images(AppContext(), model=args.model, store=args.store, batch_size=args.batch_size,
                       num_workers=args.num_workers, activate=not args.no_activate,
                       progress=not (args.no_progress or args.json))
    if args.json:
        print_json(doc)
    else:
        print(kv([(k, v) for k, v in doc.items() if k != "failed"] + [("failed", len(doc["failed"]))]))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from tools.search import Query

    query = Query(texts=[" ".join(args.text)] if args.text else [], images=args.image,
                  negative_texts=args.negative, negative_images=args.not_image, k=args.k,
                  filter=parse_filters(args.filter), min_score=args.min_score)
    result = run_search(AppContext(), query, args.store)
    if args.json:
        print_json(result.to_dict())
        return 0
    print(f"query {result.query_id} on index {result.index}")
    print(table([(h.rank, f"{h.score:.3f}", h.label, h.image_id[:12], h.uri) for h in result.hits],
                ["#", "score", "label", "image", "path"]))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    ctx = AppContext()
    if not ctx.catalog.has_image(args.image_id):
        raise LookupError(f"image {args.image_id!r} is not in the catalog")
    fid = ctx.catalog.add_feedback(image_id=args.image_id, relevant=bool(args.relevant), query_id=args.query_id)
    doc = {"feedback_id": fid, "query_id": args.query_id, "image_id": args.image_id, "relevant": args.relevant}
    print_json(doc) if args.json else print(kv(list(doc.items())))
    return 0

"""Concept commands: ``skyscout concept create|label|show|list|delete|ask`` (the application's use cases, printed)."""

from __future__ import annotations

import argparse
from typing import Any

from service.context import Services
from service.output import kv, print_json, table


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("concept", help="concepts: named searches you refine by marking images relevant or not")
    csub = p.add_subparsers(dest="concept_command", metavar="ACTION", required=True)

    c = csub.add_parser("create", parents=[common], help="save a search as a concept (names are unique, any case)")
    c.add_argument("name", help="e.g. vineyards (the query when no --text or --image is given)")
    c.add_argument("--text", action="append", default=[], help="a query text (repeatable)")
    c.add_argument("--image", action="append", default=[], help="an example image: id, id prefix or path")
    c.add_argument("--not", dest="negative", action="append", default=[], help="a text to steer away from")
    c.set_defaults(handler=cmd_create)

    lab = csub.add_parser("label", parents=[common], help="mark images relevant or not relevant for a concept")
    lab.add_argument("name", help="the concept's name or id")
    lab.add_argument("--relevant", nargs="+", default=[], metavar="IMAGE", help="images that are the concept")
    lab.add_argument("--not-relevant", nargs="+", default=[], metavar="IMAGE",
                     help="images that are not (an image given both ways ends not relevant: the last mark wins)")
    lab.set_defaults(handler=cmd_label)

    s = csub.add_parser("show", parents=[common], help="a concept, its marks and its best results now")
    s.add_argument("name")
    s.add_argument("-k", type=int, default=10, help="how many results (default 10)")
    _area_options(s)
    s.set_defaults(handler=cmd_show)

    ls = csub.add_parser("list", parents=[common], help="every concept with its marks")
    ls.set_defaults(handler=cmd_list)

    d = csub.add_parser("delete", parents=[common], help="delete a concept and its marks (those a model was "
                                                         "trained with stay as its lineage)")
    d.add_argument("name")
    d.set_defaults(handler=cmd_delete)

    a = csub.add_parser("ask", parents=[common], help="the few unlabelled images to mark next (least sure, spread)")
    a.add_argument("name")
    a.add_argument("-n", type=int, default=5, help="how many (default 5)")
    _area_options(a)
    a.set_defaults(handler=cmd_ask)


def _area_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--bbox", help="only chips touching W,S,E,N (degrees, EPSG:4326)")
    where.add_argument("--scene", help="only chips of this scene (id, id prefix or path)")


def _concept_line(c: dict[str, Any]) -> str:
    query = ", ".join(c["texts"]) or (f"{len(c['image_ids'])} example image(s)" if c["image_ids"] else c["name"])
    negatives = f" without {', '.join(c['negative_texts'])}" if c["negative_texts"] else ""
    return (f"concept {c['name']} ({c['id']}): {query}{negatives}; {c['labels']['relevant']} relevant, "
            f"{c['labels']['not_relevant']} not relevant")


def _hits_table(hits: list[dict[str, Any]]) -> str:
    return table([(h["rank"], f"{h['score']:.3f}", "" if h["probability"] is None else f"{h['probability']:.3f}",
                   h.get("label"), h["image_id"][:12], h.get("uri")) for h in hits],
                 ["#", "score", "p", "label", "image", "path"])


def cmd_create(args: argparse.Namespace) -> int:
    from app.concepts import create_concept

    doc = create_concept(Services().app, args.name, texts=args.text, image_ids=args.image,
                         negative_texts=args.negative)
    print_json(doc) if args.json else print(_concept_line(doc))
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from app.concepts import label_concept

    labels = [(i, True) for i in args.relevant] + [(i, False) for i in args.not_relevant]
    doc = label_concept(Services().app, args.name, labels)
    print_json(doc) if args.json else print(_concept_line(doc))
    return 0


def _area(args: argparse.Namespace) -> dict[str, Any]:
    return {"scene": args.scene, "bbox": args.bbox}


def cmd_show(args: argparse.Namespace) -> int:
    from app.concepts import concept_results

    doc = concept_results(Services().app, args.name, k=args.k, **_area(args)).to_dict()
    if args.json:
        print_json(doc)
        return 0
    print(_concept_line(doc["concept"]))
    print(f"stage {doc['stage']}: {doc['reason']} (index {doc['index']})")
    if doc["unindexed_marks"]:
        print(f"{doc['unindexed_marks']} marked image(s) are not in the active index yet (`skyscout index`)")
    print(_hits_table(doc["hits"]))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from app.concepts import list_concepts

    docs = list_concepts(Services().app)
    if args.json:
        print_json(docs)
    else:
        print("\n".join(_concept_line(c) for c in docs) or "no concepts yet (`skyscout concept create NAME`)")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from app.concepts import delete_concept

    doc = delete_concept(Services().app, args.name)
    print_json(doc) if args.json else print(kv(list(doc.items())))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from app.concepts import concept_ask

    doc = concept_ask(Services().app, args.name, n=args.n, **_area(args))
    if args.json:
        print_json(doc)
        return 0
    print(f"{doc['why']}")
    print(_hits_table(doc["hits"]))
    return 0

"""Model commands: models list, train, eval, promote."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.status import promote, record_manual
from service.commands.launch_options import add_launch_options, in_torchrun, is_main_rank, launch_torchrun
from service.commands.train_options import add_train_options, train_overrides
from service.context import Services
from service.output import kv, print_json, table
from tools.modelref import active_model_key
from tools.stats import top_confusions

MODEL_HELP = "preset name, openclip:ARCH/TAG, path:FILE, a model version id (mv-...), or active (default)"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("models", help="model presets and trained model versions")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = msub.add_parser("list", parents=[common], help="presets and model versions, with availability")
    ls.set_defaults(handler=cmd_models_list)
    im = msub.add_parser("import", parents=[common], help="register a model file (a model.pt trained elsewhere, an "
                                                           "open_clip checkpoint) as a model version")
    im.add_argument("file", help="the checkpoint; it is loaded first, so a file that does not load is refused")
    im.add_argument("--dataset", help="the dataset version it was trained on, when it is one of this home's "
                                      "(an id or latest)")
    im.add_argument("--promote", action="store_true", help="also make it the active model (recorded as by hand)")
    im.set_defaults(handler=cmd_models_import)

    t = sub.add_parser("train", parents=[common], help="fine-tune a candidate model on a dataset version")
    t.add_argument("--model", default="active", help=MODEL_HELP)
    t.add_argument("--dataset", default="latest", help="dataset version id (default: the newest)")
    add_train_options(t)
    t.add_argument("--caption-source", action="append", dest="caption_sources",
                   help="train only on captions from this source (repeatable; default: all)")
    t.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                   help="continue an interrupted run (default: the latest unfinished one)")
    add_launch_options(t)
    t.set_defaults(handler=cmd_train)

    e = sub.add_parser("eval", parents=[common], help="zero-shot accuracy and retrieval recall of a model")
    e.add_argument("--model", default="active", help=MODEL_HELP)
    e.add_argument("--dataset", default="latest")
    e.add_argument("--split", default="val", choices=("train", "val", "test"))
    e.add_argument("--manifest", help="evaluate a labelled manifest that is not in the catalog")
    e.add_argument("--judgments", action="store_true",
                   help="score the users' marks instead: precision@10, AP and nDCG@10 per judged query and overall, "
                        "on the marks outside the dataset version's train split (held back)")
    e.add_argument("--all-judgments", action="store_true",
                   help="with --judgments: every mark, also those on images the model may have trained on")
    e.add_argument("--transductive", action="store_true",
                   help="also classify the split as a collection: zero-shot classes refined with the structure of "
                        "its own embeddings, no labels used (docs/models.md); reported beside the plain figures")
    e.set_defaults(handler=cmd_eval)

    pr = sub.add_parser("promote", parents=[common], help="make a model version the active one")
    pr.add_argument("model_version")
    pr.set_defaults(handler=cmd_promote)


def cmd_models_list(args: argparse.Namespace) -> int:
    from tools.models import list_presets

    app = Services().app
    presets = list_presets(app.config.cache_dir)
    versions = app.catalog.list_model_versions()
    doc = {"presets": presets, "versions": versions, "active": active_model_key(app.catalog)}
    if args.json:
        print_json(doc)
        return 0
    print(table([(p["name"], p["arch"], p.get("embed_dim"), "yes" if p["weights_available"] else "no")
                 for p in presets], ["preset", "arch", "dim", "weights here"]))
    if versions:
        print()
        print(table([(v["id"], v["status"], v["base"], v["dataset_id"]) for v in versions],
                    ["version", "status", "base", "dataset"]))
    print(f"\nactive: {doc['active']}")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from app.model_files import import_model

    doc = import_model(Services().app, args.file, dataset=args.dataset, promote=args.promote)
    if args.json:
        print_json(doc)
        return 0
    print(f"{'imported' if doc['created'] else 'already known'}: {doc['model_version']} ({doc['arch']}, "
          f"{doc['checkpoint']}); active model: {doc['active']}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from app.training import train

    if args.nproc_per_node and not in_torchrun():  # one command: torchrun runs this one in each worker
        return launch_torchrun(args)
    resume: Any = "never" if args.resume is None else "latest" if args.resume == "latest" else Path(args.resume)
    app = Services().app
    result = train(app, model=args.model, dataset=args.dataset, overrides=train_overrides(args),
                   caption_sources=args.caption_sources, resume=resume, progress=not (args.no_progress or args.json))
    if not is_main_rank():
        return 0  # under torchrun, rank 0 reports and records
    if result.get("completed"):
        record_manual(app, "train", f"`skyscout train --model {args.model}`",
                      {"base": result["base"], "dataset": result["dataset"], "config": result["config"]},
                      f"ok: candidate {result['model_version']}")
    if args.json:
        print_json(result)
    else:
        print(kv([(k, v) for k, v in result.items() if k != "config"]))
        config = result.get("config", {})
        print("config: " + ", ".join(f"{k}={config[k]}" for k in (
            "epochs", "batch_size", "lr", "freeze", "batch_order", "ema_decay") if k in config))
    return 0


def _eval_rows(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("model", doc.get("model")), ("data", doc.get("dataset") or doc.get("manifest")),
                                   ("split", doc.get("split")), ("images", doc.get("n_images"))]
    if "zeroshot" in doc:
        zs = doc["zeroshot"]
        rows += [("zero-shot top-1", zs["top1"]), ("zero-shot top-5", zs["top5"])]
        rows += [(f"  top-1 {name}", acc) for name, acc in sorted(zs.get("per_class", {}).items(), key=lambda x: x[1])]
        rows += [(f"  confused: {c['true']} -> {c['predicted']}", f"{c['count']} ({c['share']:.0%})")
                 for c in top_confusions(zs.get("confusion") or {})]
    if "zeroshot_transductive" in doc:
        tr = doc["zeroshot_transductive"]
        rows += [("transductive top-1", tr["top1"]), ("transductive top-5", tr["top5"])]
    for kind in ("retrieval", "retrieval_class_aware"):
        if kind in doc:
            m = doc[kind]
            rows += [(f"{kind} t2i R@1/5/10",
                      " / ".join(f"{m[f'text_to_image_R@{k}']:.3f}" for k in (1, 5, 10))),
                     (f"{kind} i2t R@1/5/10",
                      " / ".join(f"{m[f'image_to_text_R@{k}']:.3f}" for k in (1, 5, 10))),
                     (f"{kind} mean recall", m["mean_recall"])]
    return rows


def cmd_eval(args: argparse.Namespace) -> int:
    from app.evaluation import evaluate, evaluate_manifest

    app = Services().app
    if args.judgments or args.all_judgments:
        return _eval_judgments(app, args)
    if args.manifest:
        doc = evaluate_manifest(app, model=args.model, manifest=args.manifest, transductive=args.transductive)
    else:
        doc = evaluate(app, model=args.model, dataset=args.dataset, split=args.split, transductive=args.transductive)
    if args.json:
        print_json(doc)
        return 0
    print(kv(_eval_rows(doc)))
    return 0


def _eval_judgments(app: Any, args: argparse.Namespace) -> int:
    from app.evaluation import evaluate_judgments

    doc = evaluate_judgments(app, model=args.model, dataset=args.dataset, held_back=not args.all_judgments)
    if args.json:
        print_json(doc)
        return 0
    which = "every mark" if args.all_judgments else f"marks held back from {doc['dataset'] or 'any training'}"
    print(f"model {doc['model']} on {which}: {doc['counts']['judgments']} judgments, {doc['counts']['queries']} "
          f"queries ({doc['counts']['superseded']} older marks superseded, "
          f"{doc['counts']['left_out_without_text']} without a query text left out)")

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    rows = [(q, m["n"], m["n_relevant"], fmt(m["precision@10"]), fmt(m["average_precision"]), fmt(m["ndcg@10"]))
            for q, m in doc["per_query"].items()]
    o = doc["overall"]
    rows.append(("overall (mean over queries)", sum(m["n"] for m in doc["per_query"].values()),
                 sum(m["n_relevant"] for m in doc["per_query"].values()), fmt(o["precision@10"]),
                 fmt(o["average_precision"]), fmt(o["ndcg@10"])))
    print(table(rows, ["query", "judged", "relevant", "P@10", "AP", "nDCG@10"]))
    print(f"AP rests on {o['average_precision_queries']} queries with a relevant mark "
          f"({o['average_precision_judgments']} judgments)")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    doc = promote(Services().app, args.model_version)
    print_json(doc) if args.json else print(f"active model: {args.model_version}")
    return 0

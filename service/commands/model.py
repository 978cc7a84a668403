"""Model commands: models list, train, eval, promote."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.context import AppContext
from service.output import kv, print_json, table

MODEL_HELP = "preset name, openclip:ARCH/TAG, path:FILE, a model version id (mv-...), or active (default)"


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("models", help="model presets and trained model versions")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = msub.add_parser("list", parents=[common], help="presets and model versions, with availability")
    ls.set_defaults(handler=cmd_models_list)

    t = sub.add_parser("train", parents=[common], help="fine-tune a candidate model on a dataset version")
    t.add_argument("--model", default="active", help=MODEL_HELP)
    t.add_argument("--dataset", default="latest", help="dataset version id (default: the newest)")
    t.add_argument("--epochs", type=int, help="default: the model's recipe (skyscout-tiny 40, others 5)")
    t.add_argument("--batch-size", type=int, help="default: the model's recipe (skyscout-tiny 16, others 64)")
    t.add_argument("--accum-steps", type=int)
    t.add_argument("--lr", type=float, help="default: the model's recipe (1e-3 skyscout-tiny, 5e-4 others)")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--warmup", type=float, dest="warmup_fraction", help="warmup as a fraction of all steps")
    t.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="bf16/fp16 use autocast on CUDA only")
    t.add_argument("--freeze", choices=("text", "image", "none"),
                   help="keep one tower frozen (skyscout-tiny's recipe freezes its pretrained text tower)")
    t.add_argument("--batch-order", choices=("spread_captions", "random"),
                   help="spread_captions (default): images that share captions go to different batches")
    t.add_argument("--crop-scale", type=float, metavar="MIN",
                   help="smallest random-resized-crop area, as a fraction of the image")
    t.add_argument("--hflip", action=argparse.BooleanOptionalAction, help="random horizontal flips")
    t.add_argument("--color-jitter", type=float, help="brightness/contrast/saturation jitter strength")
    t.add_argument("--ema-decay", type=float, help="average weights over steps (e.g. 0.998); the average is the result")
    t.add_argument("--wise-alpha", type=float, help="WiSE-FT: mix fine-tuned and starting weights")
    t.add_argument("--max-steps", type=int)
    t.add_argument("--checkpoint-every", type=int, default=200)
    t.add_argument("--num-workers", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--caption-source", action="append", dest="caption_sources",
                   help="train only on captions from this source (repeatable; default: all)")
    t.add_argument("--resume", nargs="?", const="latest", metavar="RUN_DIR",
                   help="continue an interrupted run (default: the latest unfinished one)")
    t.set_defaults(handler=cmd_train)

    e = sub.add_parser("eval", parents=[common], help="zero-shot accuracy and retrieval recall of a model")
    e.add_argument("--model", default="active", help=MODEL_HELP)
    e.add_argument("--dataset", default="latest")
    e.add_argument("--split", default="val", choices=("train", "val", "test"))
    e.add_argument("--manifest", help="evaluate a labelled manifest that is not in the catalog")
    e.set_defaults(handler=cmd_eval)

    pr = sub.add_parser("promote", parents=[common], help="make a model version the active one")
    pr.add_argument("model_version")
    pr.set_defaults(handler=cmd_promote)


def cmd_models_list(args: argparse.Namespace) -> int:
    from tools.models import list_presets

    ctx = AppContext()
    presets = list_presets(ctx.settings.cache_dir)
    versions = ctx.catalog.list_model_versions()
    active = ctx.catalog.get_alias("active_model")
    doc = {"presets": presets, "versions": versions, "active": active or "skyscout-tiny"}
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


def _resume_dir(ctx: AppContext, value: str | None) -> Path | None:
    if value is None:
        return None
    if value != "latest":
        path = Path(value)
        if not (path / "checkpoint-latest.pt").is_file():
            raise FileNotFoundError(f"{path} holds no checkpoint-latest.pt to resume from")
        return path
    for job in ctx.catalog.list_jobs(kind="train"):
        if job.state != "succeeded" and "run_dir" in job.params:
            path = Path(job.params["run_dir"])
            if (path / "checkpoint-latest.pt").is_file():
                return path
    raise FileNotFoundError("no interrupted training run with a checkpoint to resume; start a new one")


def cmd_train(args: argparse.Namespace) -> int:
    from tools.modelops import finetune

    ctx = AppContext()
    options = {k: getattr(args, k) for k in (
        "epochs", "batch_size", "accum_steps", "lr", "weight_decay", "warmup_fraction", "precision", "freeze",
        "batch_order", "ema_decay", "wise_alpha", "max_steps", "checkpoint_every", "num_workers", "seed",
    ) if getattr(args, k) is not None}
    if options.get("freeze") == "none":
        options["freeze"] = None
    augment = {"scale": (args.crop_scale, 1.0) if args.crop_scale is not None else None, "hflip": args.hflip,
               "color_jitter": args.color_jitter}
    if any(v is not None for v in augment.values()):
        options["augment"] = {k: v for k, v in augment.items() if v is not None}
    result = finetune(
        ctx.catalog, model=args.model, dataset=args.dataset, config=options, models_dir=ctx.settings.models_dir,
        cache_dir=ctx.settings.cache_dir, device=ctx.settings.device, caption_sources=args.caption_sources,
        resume_dir=_resume_dir(ctx, args.resume), progress=not (args.no_progress or args.json),
    )
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
        rows += [("zero-shot top-1", doc["zeroshot"]["top1"]), ("zero-shot top-5", doc["zeroshot"]["top5"])]
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
    from tools.modelops import evaluate, evaluate_manifest, load_resolved
    from tools.paths import check_allowed

    ctx = AppContext()
    if args.manifest:
        manifest = check_allowed(args.manifest, ctx.settings.roots)
        resolved = None

        def loader() -> Any:
            nonlocal resolved
            resolved, loaded = load_resolved(ctx.catalog, args.model, cache_dir=ctx.settings.cache_dir)
            return loaded

        doc = evaluate_manifest(manifest, model_loader=loader, device=ctx.settings.device)
        doc["model"] = args.model
    else:
        doc = evaluate(ctx.catalog, model=args.model, dataset=args.dataset, split=args.split,
                       cache_dir=ctx.settings.cache_dir, device=ctx.settings.device)
    if args.json:
        print_json(doc)
        return 0
    print(kv(_eval_rows(doc)))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    ctx = AppContext()
    ctx.catalog.promote_model(args.model_version)
    doc = {"active": args.model_version}
    print_json(doc) if args.json else print(f"active model: {args.model_version}")
    return 0

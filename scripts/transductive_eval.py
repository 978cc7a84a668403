"""Transductive zero-shot classification, with and without, on one model: settings chosen on train, read on val.

In a SkyScout home with a dataset version and a model (``scripts/finetune_eval.sh`` leaves both and prints
the home), the script embeds the train and val splits once, scores a small grid of the transductive
settings (:mod:`tools.transductive`) on the **train** split (labels of train only), and reports zero-shot
top-1 on **val** with the product's defaults and with the grid's best-on-train setting, beside plain
zero-shot. Val is read once per figure; no setting is chosen on it.

    SKYSCOUT_HOME=... .venv/bin/python scripts/transductive_eval.py --model mv-... [--dataset ds-...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.context import AppContext  # noqa: E402
from service.context import Services  # noqa: E402
from tools.datasets import PairItem, resolve_dataset, split_items  # noqa: E402
from tools.evaluation import encode_image_files, text_encoder, zero_shot_accuracy  # noqa: E402
from tools.modelops import class_vectors, label_texts_of  # noqa: E402
from tools.transductive import transductive_probabilities  # noqa: E402

GRID = {"centre_scale": [5.0, 10.0, 20.0, 50.0], "smoothing": [0.0, 0.25, 0.5, 0.75], "neighbours": [5, 10, 20]}


def _split(ctx: AppContext, loaded: Any, dataset: str, split: str, classes: list[str] | None
           ) -> tuple[np.ndarray, np.ndarray, list[str], list[PairItem]]:
    items = [it for it in split_items(ctx.catalog, dataset, split) if it.labels]
    names = classes or sorted({it.labels[0] for it in items})
    items = [it for it in items if it.labels[0] in names]
    feats = encode_image_files(loaded.model, loaded.preprocess_val, [it.uri for it in items], device=ctx.device)
    return feats, np.array([names.index(it.labels[0]) for it in items]), names, items


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="active")
    ap.add_argument("--dataset", default="latest")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    ctx = Services().app
    ref, loaded = ctx.load_model(args.model)
    dataset = resolve_dataset(ctx.catalog, args.dataset)["id"]
    train_x, train_y, classes, train_items = _split(ctx, loaded, dataset, "train", None)
    val_x, val_y, _, _ = _split(ctx, loaded, dataset, "val", classes)
    encode = text_encoder(loaded.model, loaded.tokenizer, device=ctx.device)
    clf = class_vectors(encode, classes, label_texts_of(ctx.catalog, train_items))  # as `skyscout eval` builds it

    def top1(x: np.ndarray, y: np.ndarray, **kw: Any) -> float:
        scores = transductive_probabilities(x, clf, **kw) if kw else None
        return float(zero_shot_accuracy(x, y, clf, scores=scores)["top1"])

    grid = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    on_train = sorted(((top1(train_x, train_y, **g), g) for g in grid), key=lambda t: -t[0])
    best = on_train[0][1]
    doc = {"model": ref.key, "dataset": dataset, "train_images": len(train_y), "val_images": len(val_y),
           "train": {"plain": top1(train_x, train_y), "defaults": top1(train_x, train_y, iterations=10),
                     "best": on_train[0][0], "best_setting": best},
           "val": {"plain": top1(val_x, val_y), "defaults": top1(val_x, val_y, iterations=10),
                   "best_on_train": top1(val_x, val_y, **best)}}
    print(f"model {ref.key}, dataset {dataset}: {len(train_y)} train and {len(val_y)} val images, "
          f"{len(classes)} classes")
    print(f"{'zero-shot top-1':<34}{'train':>8}{'val':>8}")
    print(f"{'plain':<34}{doc['train']['plain']:>8.3f}{doc['val']['plain']:>8.3f}")
    print(f"{'transductive, defaults':<34}{doc['train']['defaults']:>8.3f}{doc['val']['defaults']:>8.3f}")
    print(f"{'transductive, best on train':<34}{doc['train']['best']:>8.3f}{doc['val']['best_on_train']:>8.3f}"
          f"   ({', '.join(f'{k} {v}' for k, v in best.items())})")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

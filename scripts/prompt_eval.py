"""Caption-vocabulary prompt ensembles, with and without, on one model (issue 17's option).

Zero-shot classification builds each class's text vector from fixed prompt templates ("a satellite photo of
{}."). A fine-tuned model learned its image space from the training captions, whose wording can be far from
those templates ("Many planes are parked next to a long building"). This script adds, to each class's
template vectors, the K training captions nearest to them in the model's text space, and reports zero-shot
top-1 for each K. It reads the captions of the **train** split only, never its labels; the split scored is
``--split`` (a holdout of train when the home was made with ``HOLDOUT=...`` of ``scripts/finetune_eval.sh``,
else val, read once per K).

    SKYSCOUT_HOME=... .venv/bin/python scripts/prompt_eval.py --model mv-... [--split val] [--k 0 5 10 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from service.context import Services  # noqa: E402
from tools.datasets import resolve_dataset, split_items  # noqa: E402
from tools.evaluation import (  # noqa: E402
    encode_image_files,
    l2_normalize,
    text_encoder,
    zero_shot_accuracy,
)
from tools.modelops import class_vectors, label_texts_of  # noqa: E402


def caption_ensemble(prompts: np.ndarray, captions: np.ndarray, k: int) -> np.ndarray:
    """Each class vector averaged with its ``k`` nearest caption vectors (one vote each, the class's own
    template mean counted once), renormalised. ``k`` 0 gives ``prompts`` back."""
    if k == 0:
        return prompts
    sims = prompts @ captions.T
    nearest = np.argsort(-sims, axis=1)[:, :k]
    return l2_normalize(np.stack([prompts[c] + captions[nearest[c]].sum(0) for c in range(len(prompts))]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="active")
    ap.add_argument("--dataset", default="latest")
    ap.add_argument("--split", default="val")
    ap.add_argument("--k", type=int, nargs="+", default=[0, 5, 10, 20, 50])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    ctx = Services().app
    ref, loaded = ctx.load_model(args.model)
    dataset = resolve_dataset(ctx.catalog, args.dataset)["id"]
    train = split_items(ctx.catalog, dataset, "train")
    scored = [it for it in split_items(ctx.catalog, dataset, args.split) if it.labels]
    classes = sorted({it.labels[0] for it in scored})
    encode = text_encoder(loaded.model, loaded.tokenizer, device=ctx.device)
    prompts = class_vectors(encode, classes, label_texts_of(ctx.catalog, scored))  # as `skyscout eval` builds it
    texts = sorted({c for it in train for c in it.captions})
    captions = l2_normalize(np.asarray(encode(texts), dtype=np.float32))
    feats = encode_image_files(loaded.model, loaded.preprocess_val, [it.uri for it in scored], device=ctx.device)
    labels = np.array([classes.index(it.labels[0]) for it in scored])
    figures = {k: float(zero_shot_accuracy(feats, labels, caption_ensemble(prompts, captions, k))["top1"])
               for k in args.k}
    print(f"model {ref.key}, dataset {dataset}: {len(scored)} {args.split} images, {len(classes)} classes, "
          f"{len(texts)} distinct train captions")
    for k, top1 in figures.items():
        print(f"  {k:>3} nearest captions: zero-shot top-1 {top1:.3f}")
    if args.json:
        args.json.write_text(json.dumps({"model": ref.key, "dataset": dataset, "split": args.split,
                                         "top1_by_k": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Precision@10 of class-name queries over the active index (the README's search figure).

For every class of a source (default: the UC Merced classes), the class name is the query (with the
prompt-template ensemble, as `skyscout search` does) and a hit counts when the image carries that label.
Run after `skyscout index`; uses SKYSCOUT_HOME and SKYSCOUT_DATA_ROOTS like the CLI.

    .venv/bin/python scripts/precision_at_10.py [--source ucm_captions] [--k 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.search import search  # noqa: E402
from service.context import Services  # noqa: E402
from tools.captioning.text import humanize_label  # noqa: E402
from tools.indexes import active_index  # noqa: E402
from tools.search import Query, precision_at_k  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", default="ucm_captions")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    ctx = Services().app
    classes = sorted({label for img in ctx.catalog.iter_images(source=args.source) for label in img.labels})
    per_class = {}
    for label in classes:
        result = search(ctx, Query(texts=[humanize_label(label)], k=args.k))
        per_class[label] = precision_at_k(result.hits, label, args.k)
    index = active_index(ctx.catalog, ctx.store_kind())["name"]
    mean = sum(per_class.values()) / len(per_class)
    print(json.dumps({"index": index, "images_in_index": ctx.catalog.count_images(), "k": args.k,
                      f"mean_precision@{args.k}": round(mean, 4),
                      "per_class": {k: round(v, 2) for k, v in per_class.items()}}, indent=2))


if __name__ == "__main__":
    main()

"""A simulated user refining concepts on real data: AP and precision@10 per round, text-only vs Rocchio vs classifier.

The pool is UC Merced (all 1,440 tiles, or only its 157 val tiles with ``--ucm val``) and EuroSAT's 1,000 val
tiles, indexed by one model (a fine-tuned skyscout-tiny: ``--model`` names its ``model.pt``). For each class
and each method a concept starts from the class name (humanised, as the zero-shot evaluation says it); each
round the user marks the method's top 10 unlabelled results by their true label, five rounds. Before each
round (round 0: no marks) the script scores the method's ranking of the images not marked yet (the residual
collection, so marked images cannot flatter a method): average precision over that whole ranking and the
precision of its first 10 (the page the user marks next). ``text`` is the class-name query alone, ``rocchio``
the query refined by the marks, ``classifier`` the product's concept ranking (Rocchio until it has
3 relevant and 3 not relevant marks, then the logistic regression). Everything runs through
:mod:`app.concepts`, as ``skyscout concept`` does. Prints the per-round table (means over classes, and per
source); ``--json`` writes every number.

    .venv/bin/python scripts/concepts_eval.py --model /path/to/model.pt [--home DIR] [--rounds 5] [--ucm all|val]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.concepts import concept_ranking, create_concept, label_concept  # noqa: E402
from app.context import AppContext  # noqa: E402
from app.indexing import build_index  # noqa: E402
from app.model_files import import_model  # noqa: E402
from service.context import Services  # noqa: E402
from service.settings import Settings  # noqa: E402
from tools.captioning.text import humanize_label  # noqa: E402
from tools.evaluation import judged_ranking_metrics  # noqa: E402
from tools.ingest import ingest_manifest  # noqa: E402

METHODS = ("text", "rocchio", "classifier")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_pool(ctx: AppContext, data: Path, ucm: str, model: Path, roots: list[Path]) -> str:
    """Ingest the pool, register ``model`` as the active model version, index the pool with it."""
    manifests = [data / "ucm_captions" / "val.jsonl", data / "eurosat" / "val.jsonl"]
    if ucm == "all":
        manifests.insert(0, data / "ucm_captions" / "train.jsonl")
    for manifest in manifests:
        ingest_manifest(ctx.catalog, manifest, allowed_roots=roots, progress=False)
    mv = str(import_model(ctx, model, promote=True, note="registered by scripts/concepts_eval.py")["model_version"])
    build_index(ctx, model="active", num_workers=0)
    return mv


def classes(ctx: AppContext) -> list[tuple[str, str, str]]:
    """(label, query text, source) of every class in the pool."""
    out = {}
    for img in ctx.catalog.iter_images(status="ok"):
        if img.labels and img.labels[0] not in out:
            out[img.labels[0]] = (humanize_label(img.labels[0], img.metadata.get("label_text")), img.source or "")
    return [(label, text, source) for label, (text, source) in sorted(out.items())]


def simulate(ctx: AppContext, label: str, text: str, method: str, truth: dict[str, str], rounds: int,
             per_round: int, pool: int) -> list[dict[str, Any]]:
    """One concept, one method: the residual ranking's AP and P@10 before each round, then the marks."""
    concept = create_concept(ctx, f"sim {method} {label} {time.time_ns()}", texts=[text])
    rows = []
    for r in range(rounds + 1):
        stage, ids, _ = concept_ranking(ctx, concept["id"], k=pool, stage=method, pool=pool)  # type: ignore[arg-type]
        relevant = [truth.get(i) == label for i in ids]
        m = judged_ranking_metrics(-np.arange(len(ids), dtype=np.float64), relevant, k=per_round)
        rows.append({"round": r, "stage": stage, "ap": m["average_precision"], "p10": m[f"precision@{per_round}"],
                     "left_relevant": int(sum(relevant))})
        if r < rounds:
            label_concept(ctx, concept["id"], [(i, truth.get(i) == label) for i in ids[:per_round]])
    return rows


def table(results: dict[str, dict[str, list[dict[str, Any]]]], labels: list[str], rounds: int) -> list[str]:
    head = "round  " + "  ".join(f"{m:>10} AP  P@10" for m in METHODS) + "  classifier stage used"
    lines = [head, "-" * len(head)]
    for r in range(rounds + 1):
        cells = []
        for m in METHODS:
            aps = [results[lab][m][r]["ap"] for lab in labels if results[lab][m][r]["ap"] is not None]
            p10 = [results[lab][m][r]["p10"] for lab in labels]
            cells.append(f"{np.mean(aps):>13.3f}  {np.mean(p10):.3f}")
        used = sum(results[lab]["classifier"][r]["stage"] == "classifier" for lab in labels)
        lines.append(f"{r:>5}  " + "  ".join(cells) + f"  {used}/{len(labels)} classes")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="model.pt of a fine-tuned skyscout-tiny")
    ap.add_argument("--home", type=Path, help="SkyScout home to build the pool in (default: a new temp dir)")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--ucm", choices=("all", "val"), default="all", help="UC Merced tiles in the pool")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp()) / "home"
    data = args.data.resolve()
    roots = [data, args.model.resolve().parent]
    ctx = Services(Settings(home=home, data_roots=":".join(map(str, roots)))).app
    t0 = time.time()
    mv = build_pool(ctx, data, args.ucm, args.model.resolve(), roots)
    truth = {img.id: img.labels[0] for img in ctx.catalog.iter_images(status="ok") if img.labels}
    found = classes(ctx)
    print(f"pool: {len(truth)} images, {len(found)} classes, model {mv} ({args.model}), indexed in "
          f"{time.time() - t0:.0f} s; home {home}", flush=True)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for label, text, _ in found:
        results[label] = {m: simulate(ctx, label, text, m, truth, args.rounds, args.per_round, len(truth))
                          for m in METHODS}
        print(f"  {label:<22} AP after {min(3, args.rounds)} rounds: " + ", ".join(
            f"{m} {results[label][m][min(3, args.rounds)]['ap'] or 0:.3f}" for m in METHODS), flush=True)
    print(f"\nmean over {len(found)} classes (AP and P@10 of the ranking of the images not marked yet, before each "
          "round's marks):")
    print("\n".join(table(results, [lab for lab, _, _ in found], args.rounds)))
    for source in sorted({s for _, _, s in found}):
        subset = [lab for lab, _, s in found if s == source]
        print(f"\n{source} ({len(subset)} classes):")
        print("\n".join(table(results, subset, args.rounds)))
    r3 = min(3, args.rounds)
    both = [lab for lab, _, _ in found
            if None not in (results[lab]["classifier"][r3]["ap"], results[lab]["text"][r3]["ap"])]
    gain = float(np.mean([results[lab]["classifier"][r3]["ap"] - results[lab]["text"][r3]["ap"] for lab in both]))
    print(f"\nclassifier - text-only, mean AP after {r3} rounds: {gain:+.3f} over {len(both)} classes "
          f"(took {time.time() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "pool": len(truth), "results": results}, indent=1))


if __name__ == "__main__":
    main()

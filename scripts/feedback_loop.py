"""The whole feedback loop on real data, through `skyscout improve --once` (the graph path).

In a SkyScout home where UC Merced is ingested and captioned, with a dataset version and an active fine-tuned
model (``--model FILE`` registers and promotes a ``model.pt``, then indexes; `scripts/finetune_eval.sh
ucm_captions` makes both), the script:

1. evaluates the active model on the val split and picks the class it confuses most (lowest per-class
   zero-shot top-1; ``--class`` overrides);
2. plays a user: a concept named after the class, whose ranking (the class name alone) the user marks by the
   true labels: the first ``--train-marks`` results that are train images (they will be trained on) and the
   first ``--held-marks`` that are val images (held back: they only judge);
3. runs ``skyscout improve --once``: the planner decides to retrain and says why, the round makes a dataset
   version with the marks' pairs and hard negatives, trains a candidate from the active model, scores it and the
   active model on the held-out split and on the held-back judgments, and the guardrails promote it or not;
4. prints the class, why, the judged AP of that class on the held-back marks before (active) and after
   (candidate), and the verdict with its reason.

    SKYSCOUT_HOME=... SKYSCOUT_DATA_ROOTS=../shared/data .venv/bin/python scripts/feedback_loop.py [--model FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.concepts import concept_ranking, create_concept, get_concept, label_concept  # noqa: E402
from app.context import AppContext  # noqa: E402
from app.evaluation import evaluate  # noqa: E402
from app.indexing import build_index  # noqa: E402
from app.model_files import import_model  # noqa: E402
from service.context import Services  # noqa: E402
from tools.captioning.text import humanize_label  # noqa: E402
from tools.datasets import placed_splits  # noqa: E402
from tools.stats import top_confusions  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


def register(ctx: AppContext, model: Path) -> str:
    """``model`` as a model version trained on the latest dataset version, promoted and indexed."""
    mv = str(import_model(ctx, model, dataset="latest", promote=True,
                          note="registered by scripts/feedback_loop.py")["model_version"])
    build_index(ctx, model="active", num_workers=0)
    return mv


def pick_class(ctx: AppContext) -> tuple[str, dict[str, Any]]:
    """The class the active model confuses most on val, and the evidence."""
    doc = evaluate(ctx, model="active", dataset=None, split="val")
    per_class = doc["zeroshot"]["per_class"]
    label = min(sorted(per_class), key=lambda c: per_class[c])
    confused = [c for c in top_confusions(doc["zeroshot"]["confusion"], n=50) if c["true"] == label][:3]
    return label, {"top1": per_class[label], "mean_top1": doc["zeroshot"]["top1"], "confused_with": confused,
                   "dataset": doc["dataset"]}


def mark(ctx: AppContext, label: str, text: str, train_marks: int, held_marks: int) -> dict[str, Any]:
    """A concept for ``text`` whose ranked results the simulated user marks by their true labels."""
    try:
        concept = create_concept(ctx, text)
    except ValueError:
        concept = get_concept(ctx, text)
    total = ctx.catalog.count_images()
    _, ranked, _ = concept_ranking(ctx, concept["id"], k=total, stage="text", pool=total, exclude_marked=False)
    split = placed_splits(ctx.catalog)
    truth = ctx.catalog.labels_for(ranked)
    train = [i for i in ranked if split.get(i) == "train"][:train_marks]
    held = [i for i in ranked if split.get(i) in ("val", "test")][:held_marks]
    labels = [(i, label in truth.get(i, [])) for i in train + held]
    label_concept(ctx, concept["id"], labels)
    count = {"train": train, "held": held}
    return {"concept": concept["id"], **{f"{k}_relevant": sum(label in truth.get(i, []) for i in v)
                                         for k, v in count.items()},
            **{f"{k}_marks": len(v) for k, v in count.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="register, promote and index this model.pt first")
    ap.add_argument("--class", dest="label", help="the class to mark (default: the one the model confuses most)")
    ap.add_argument("--train-marks", type=int, default=60)
    ap.add_argument("--held-marks", type=int, default=40)
    args = ap.parse_args()
    ctx = Services().app
    if args.model:
        print(f"active model: {register(ctx, args.model.resolve())}", flush=True)
    label, why = pick_class(ctx) if not args.label else (args.label, {})
    text = humanize_label(label)
    print(f"class: {label} ('{text}'): {json.dumps(why)}", flush=True)
    marked = mark(ctx, label, text, args.train_marks, args.held_marks)
    print(f"marks: {json.dumps(marked)}", flush=True)
    first = max((d["id"] for d in ctx.catalog.decisions(limit=1)), default=0)
    proc = subprocess.run([sys.executable, "-m", "service.cli", "improve", "--once", "--json", "--no-progress"],
                          cwd=PROJECT, env=os.environ.copy(), capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
    decisions = sorted((d for d in ctx.catalog.decisions(limit=100) if d["id"] > first), key=lambda d: d["id"])
    for d in decisions:
        print(f"#{d['id']} {d['action']} ({d['actor']}): {d['reason']}" + (f" -> {d['outcome']}" if d["outcome"]
                                                                             else ""))
    verdict = next((d for d in reversed(decisions) if d["action"] in ("promote", "keep_active")), None)
    judged = (verdict or {}).get("evidence", {}).get("judged") or {}
    on_class = (judged.get("per_query") or {}).get(text.casefold()) or next(
        (v for k, v in (judged.get("per_query") or {}).items() if k.casefold() == text.casefold()), None)
    print(json.dumps({"class": label, "held_back_judgments_of_class": on_class, "all_judged": {
        k: judged.get(k) for k in ("judgments", "candidate_ap", "active_ap")},
        "verdict": verdict["action"] if verdict else None}, indent=1))


if __name__ == "__main__":
    main()

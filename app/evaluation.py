"""Evaluation use cases: score a model on a split, read stored scores, compare a model with the active one.

Metrics are recorded under the model's key (:attr:`tools.modelops.ModelRef.key`): ``skyscout eval``
before any promotion and the planner read and write the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.context import AppContext
from tools.datasets import resolve_dataset
from tools.judgments import JudgmentSet, read_judgments
from tools.modelops import evaluate as evaluate_split
from tools.modelref import active_model_key, headline, resolve_model, stored_evaluation, stored_metrics
from tools.paths import check_allowed


def evaluate(ctx: AppContext, *, model: str | None, dataset: str | None, split: str = "val",
             transductive: bool = False) -> dict[str, Any]:
    """Every metric of ``model`` on a dataset version's split, recorded in the catalog (with ``transductive``
    also the label-free transductive zero-shot figures, reported and not recorded)."""
    ref, loaded = ctx.load_model(model)
    return evaluate_split(ctx.catalog, ref=ref, loaded=loaded, dataset=dataset, split=split, device=ctx.device,
                          batch_size=ctx.config.batch_size, transductive=transductive)


def evaluate_manifest(ctx: AppContext, *, model: str | None, manifest: str | Path,
                      transductive: bool = False) -> dict[str, Any]:
    """Metrics on a labelled manifest that is not in the catalog (read in place, nothing recorded)."""
    from tools.modelops import evaluate_manifest as evaluate_file

    path = check_allowed(manifest, ctx.config.roots)
    ref, loaded = ctx.load_model(model)
    doc = evaluate_file(path, model_loader=lambda: loaded, device=ctx.device, transductive=transductive)
    return {**doc, "model": ref.key}


def score(ctx: AppContext, model: str | None, dataset_id: str, split: str) -> tuple[str, dict[str, float] | None]:
    """(model key, headline metrics with ``n_images``) after scoring now; None when the split is empty."""
    ref = resolve_model(ctx.catalog, model)
    if not ctx.catalog.dataset_split(dataset_id, split):
        return ref.key, None
    doc = evaluate(ctx, model=model, dataset=dataset_id, split=split)
    return ref.key, {**headline(doc), "n_images": float(doc["n_images"])}


def ensure_metrics(ctx: AppContext, model: str | None, dataset_id: str, split: str
                   ) -> tuple[str, dict[str, float] | None]:
    """Stored headline metrics of ``model`` on (dataset, split), scoring it now only when they are missing
    (or were stored without the per-image scores a paired comparison needs)."""
    key = resolve_model(ctx.catalog, model).key
    stored = stored_evaluation(ctx.catalog, key, dataset_id, split)
    if stored and all("image_ids" in m for m in stored.values()):
        return key, headline(stored)
    return score(ctx, model, dataset_id, split)


@dataclass(frozen=True)
class Comparison:
    """A model's scores on a split (and a guard split), beside the active model's on the same data."""

    model: str
    dataset_id: str
    split: str
    metrics: dict[str, float]
    active: str | None = None
    active_metrics: dict[str, float] | None = None
    guard: dict[str, Any] | None = None
    judged: dict[str, Any] | None = None  # both models on the held-back judgments (:func:`judged_pair`)

    @property
    def delta_vs_active(self) -> dict[str, float] | None:
        if not self.active_metrics:
            return None
        return {k: round(self.metrics[k] - self.active_metrics[k], 5)
                for k in self.metrics if k in self.active_metrics and k != "n_images"}

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"model": self.model, "dataset_id": self.dataset_id, "split": self.split,
                               "metrics": self.metrics}
        if self.active is not None:
            doc["active"] = {"model": self.active, "metrics": self.active_metrics}
        if self.delta_vs_active is not None:
            doc["delta_vs_active"] = self.delta_vs_active
        if self.guard is not None:
            doc["guard"] = self.guard
        if self.judged is not None:
            doc["judged"] = self.judged
        return doc


def compare_with_active(ctx: AppContext, *, model: str | None, dataset: str | None, split: str,
                        guard: tuple[str | None, str] | None = None, with_active: bool = True) -> Comparison:
    """Score ``model`` on (dataset, split) and on the guard (dataset, split), and the active model alike.

    ``guard`` is (dataset id or None for the same dataset, split); a guard equal to the scored split is
    not scored twice. The active model's scores are reused when stored.
    """
    dataset_id = resolve_dataset(ctx.catalog, dataset)["id"]
    key, metrics = score(ctx, model, dataset_id, split)
    if metrics is None:
        raise ValueError(f"the {split} split of {dataset_id} is empty; create a dataset version with a "
                         "larger held-out fraction or ingest more images")
    guard_doc = None
    guard_ds, guard_split = (guard[0] or dataset_id, guard[1]) if guard else (dataset_id, split)
    guarded = (guard_ds, guard_split) != (dataset_id, split)
    if guarded:
        guard_doc = {"dataset_id": guard_ds, "split": guard_split,
                     "metrics": score(ctx, model, guard_ds, guard_split)[1]}
    active = active_model_key(ctx.catalog)
    if not with_active or key == active:
        return Comparison(key, dataset_id, split, metrics, guard=guard_doc)
    _, active_metrics = ensure_metrics(ctx, active, dataset_id, split)
    if guarded and guard_doc is not None:
        guard_doc["active_metrics"] = ensure_metrics(ctx, active, guard_ds, guard_split)[1]
    return Comparison(key, dataset_id, split, metrics, active, active_metrics, guard_doc,
                      judged_pair(ctx, key, active, dataset_id))


# -- judgments: the marks users gave, as an evaluation set ------------------------------------------------------

#: the split name judged evaluations are stored under (kind ``judged``): not a dataset split, the marks
JUDGED = "judged"


def judgments_for(ctx: AppContext, *, dataset: str | None = None, held_back: bool = True
                  ) -> tuple[JudgmentSet, str | None]:
    """Every judgment, or (``held_back``) those on images outside the dataset version's train split, which no
    model trained on that version has seen; with the dataset id (None: no dataset version yet, all of them)."""
    found = read_judgments(ctx.catalog)
    if not held_back:
        return found, None
    try:
        ds = resolve_dataset(ctx.catalog, dataset)
    except ValueError:
        if dataset not in (None, "", "latest"):
            raise
        return found, None
    return found.held_back(set(ctx.catalog.dataset_split(ds["id"], "train"))), str(ds["id"])


def evaluate_judgments(ctx: AppContext, *, model: str | None, dataset: str | None = None, held_back: bool = True,
                       judged: JudgmentSet | None = None, record: bool = True) -> dict[str, Any]:
    """``model``'s precision@10, AP and nDCG@10 per judged query and overall (:mod:`tools.judged`), recorded
    under the model's key (kind and split ``judged``, with the judgments' fingerprint)."""
    from tools.judged import evaluate_judgments as score_judged

    found, dataset_id = (judged, dataset) if judged is not None else judgments_for(
        ctx, dataset=dataset, held_back=held_back)
    ref, loaded = ctx.load_model(model)
    ids = sorted({j.image_id for j in found.judgments} | {i for q in found.queries.values() for i in q.image_ids})
    uris = {img.id: img.uri for img in ctx.catalog.iter_images(status="ok", ids=ids)}
    doc = score_judged(loaded, found, uris, device=ctx.device, batch_size=ctx.config.batch_size)
    doc = {"model": ref.key, "dataset": dataset_id, "held_back": held_back, **doc}
    if record and found.judgments:
        ctx.catalog.add_evaluation(model=ref.key, dataset=dataset_id or "all", split=JUDGED, kind=JUDGED, metrics=doc)
    return doc


def judged_pair(ctx: AppContext, model: str, active: str, dataset_id: str) -> dict[str, Any] | None:
    """``model`` and the active model on the same held-back judgments of ``dataset_id`` (both recorded), or
    None when there are none."""
    found, _ = judgments_for(ctx, dataset=dataset_id)
    if not found.judgments:
        return None
    cand = evaluate_judgments(ctx, model=model, dataset=dataset_id, judged=found)
    act = evaluate_judgments(ctx, model=active, dataset=dataset_id, judged=found)
    return {"fingerprint": cand["fingerprint"], "judgments": len(found.judgments), "candidate": cand["overall"],
            "active": act["overall"], "per_query": {q: {"candidate": m.get("average_precision"),
                                                        "active": act["per_query"].get(q, {}).get("average_precision"),
                                                        "n": m["n"]} for q, m in cand["per_query"].items()}}


__all__ = ["JUDGED", "Comparison", "compare_with_active", "ensure_metrics", "evaluate", "evaluate_judgments",
           "evaluate_manifest", "judged_pair", "judgments_for", "score", "stored_metrics"]

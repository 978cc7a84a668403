"""Models in the catalog: the one rule that names a model (a spec resolved to its key), and the headline
metrics stored under that key.

A model spec is a preset name, ``openclip:ARCH/TAG``, ``path:FILE``, a model version id (``mv-...``), or
``active`` (the promoted model, or ``skyscout-small`` before any promotion). Light on purpose (the catalog
only, no torch), so that reading which model is active costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tools.catalog import Catalog

#: the base model before any promotion: the offline preset with the ImageNet-pretrained image tower (UC Merced
#: val 0.96 after its recipe, against skyscout-tiny's 0.71; docs/models.md)
DEFAULT_BASE_MODEL = "skyscout-small"
#: the environment variable that names another base model (a preset or ``path:``; the test suite sets
#: ``skyscout-tiny``, which trains and embeds faster)
BASE_MODEL_ENV = "SKYSCOUT_BASE_MODEL"


def base_model() -> str:
    """The base model before any promotion: ``$SKYSCOUT_BASE_MODEL``, else :data:`DEFAULT_BASE_MODEL`."""
    return os.environ.get(BASE_MODEL_ENV, "").strip() or DEFAULT_BASE_MODEL


@dataclass(frozen=True)
class ModelRef:
    """A model spec resolved against the catalog: what to hand the loader, and which version it is.

    ``key`` is the one name a model goes by in the catalog (evaluations, indexes, decisions): its model
    version id when it is one, else its load spec (``skyscout-small`` before any promotion), never the
    words the user wrote (``active``).
    """

    spec: str  # what the user wrote
    load_spec: str  # what tools.models.load_model receives
    version_id: str | None  # the catalog's model version, if it is one
    arch: str | None = None

    @property
    def key(self) -> str:
        return self.version_id or self.load_spec


def active_model_key(catalog: Catalog) -> str:
    """The active model's key: the promoted version, or the base model before any promotion."""
    return catalog.get_alias("active_model") or base_model()


def resolve_model(catalog: Catalog, spec: str | None) -> ModelRef:
    """Turn ``active`` / ``mv-...`` into a loadable ``path:`` spec; other specs pass through unchanged."""
    spec = spec or "active"
    target = active_model_key(catalog) if spec == "active" else spec
    if target.startswith("mv-"):
        mv = catalog.get_model_version(target)
        if mv is None:
            known = ", ".join(m["id"] for m in catalog.list_model_versions()) or "none yet"
            raise LookupError(f"unknown model version {target!r}; known: {known}")
        return ModelRef(spec, f"path:{mv['checkpoint']}", mv["id"], mv["arch"])
    return ModelRef(spec, target, None)


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The few numbers a person (or the planner) compares: top-1, top-5, mean recall."""
    out: dict[str, float] = {}
    if "zeroshot" in metrics:
        out["top1"] = float(metrics["zeroshot"]["top1"])
        out["top5"] = float(metrics["zeroshot"]["top5"])
    for kind in ("retrieval", "retrieval_class_aware"):
        if kind in metrics:
            out[f"{kind}_mean_recall"] = float(metrics[kind]["mean_recall"])
    return out


#: headline metric -> (evaluation kind, its per-image field): what a paired comparison compares
PER_IMAGE: dict[str, tuple[str, str]] = {
    "top1": ("zeroshot", "correct"), "retrieval_mean_recall": ("retrieval", "per_image"),
    "retrieval_class_aware_mean_recall": ("retrieval_class_aware", "per_image"),
}


def stored_evaluation(catalog: Catalog, model: str, dataset: str, split: str) -> dict[str, Any]:
    """The metrics last stored for (model key, dataset, split), by kind (empty when never scored)."""
    latest: dict[str, Any] = {}
    for row in catalog.evaluations(model=model, dataset=dataset, split=split, limit=50):
        latest.setdefault(row["kind"], row["metrics"])  # rows come newest first
    return latest


def stored_metrics(catalog: Catalog, model: str, dataset: str, split: str) -> dict[str, float] | None:
    """The headline metrics last stored for (model key, dataset, split), or None when never scored."""
    latest = stored_evaluation(catalog, model, dataset, split)
    return headline(latest) if latest else None


def per_image_scores(evaluation: dict[str, Any], metric: str) -> dict[str, float] | None:
    """Each image's score behind a headline metric (image id -> score), when the evaluation kept them."""
    kind, field = PER_IMAGE.get(metric, ("", ""))
    found = evaluation.get(kind) or {}
    ids, values = found.get("image_ids"), found.get(field)
    if not ids or values is None or len(ids) != len(values):
        return None
    return {i: float(v) for i, v in zip(ids, values, strict=True) if v is not None and v == v}  # no NaN either


__all__ = ["BASE_MODEL_ENV", "DEFAULT_BASE_MODEL", "PER_IMAGE", "ModelRef", "active_model_key", "base_model",
           "headline", "per_image_scores", "resolve_model", "stored_evaluation", "stored_metrics"]

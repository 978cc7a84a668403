"""The status use case: what the catalog holds, the active model and index, recent metrics and decisions."""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from tools.indexes import alias_name
from tools.modelref import active_model_key


def status(ctx: AppContext) -> dict[str, Any]:
    """One document for ``skyscout status`` and ``GET /v1/status``."""
    cat = ctx.catalog
    return {
        "home": str(ctx.config.home.resolve()),
        "images": cat.count_images("ok"),
        "rejected": cat.count_images("rejected"),
        "uncaptioned": cat.count_uncaptioned(),
        "sources": cat.sources(),
        "labels": len(cat.label_counts()),
        "captions": cat.caption_counts(),
        "datasets": [d["id"] for d in cat.list_datasets()],
        "running_jobs": [j.id for j in cat.list_jobs() if j.state == "running"],
        "active_model": active_model_key(cat),
        "active_index": cat.get_alias(alias_name(ctx.store_kind())),
        "latest_metrics": [
            {k: e[k] for k in ("model", "dataset", "split", "kind", "created_at")}
            | {"headline": {m: v for m, v in e["metrics"].items() if not isinstance(v, dict)}}
            for e in cat.evaluations(limit=5)],
        "recent_decisions": cat.decisions(limit=10),
    }


def promote(ctx: AppContext, model_version: str) -> dict[str, Any]:
    """Make a model version the active one (by hand; the planner promotes through its guardrails)."""
    ctx.catalog.promote_model(model_version)
    return {"active": model_version}


__all__ = ["promote", "status"]

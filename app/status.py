"""The status use case: what the catalog holds, the active model and index, recent metrics and decisions."""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from tools.indexes import alias_name
from tools.modelref import active_model_key


def status(ctx: AppContext) -> dict[str, Any]:
    """One document for ``skyscout status`` and ``GET /v1/status``; jobs whose process died are marked
    abandoned first, and the latest of them are listed with their reason."""
    cat = ctx.catalog
    cat.reconcile_jobs()
    return {
        "home": str(ctx.config.home.resolve()),
        "images": cat.count_images("ok"),
        "rejected": cat.count_images("rejected"),
        "uncaptioned": cat.count_uncaptioned(),
        "sources": cat.sources(),
        "labels": len(cat.label_counts()),
        "captions": cat.caption_counts(),
        "datasets": [d["id"] for d in cat.list_datasets()],
        "running_jobs": [j.id for j in cat.list_jobs(state="running", limit=100)],
        "abandoned_jobs": [{"id": j.id, "kind": j.kind, "reason": j.error}
                           for j in cat.list_jobs(state="abandoned", limit=5)],
        "active_model": active_model_key(cat),
        "active_index": cat.get_alias(alias_name(ctx.store_kind())),
        "latest_metrics": [
            {k: e[k] for k in ("model", "dataset", "split", "kind", "created_at")}
            | {"headline": {m: v for m, v in e["metrics"].items() if not isinstance(v, dict)}}
            for e in cat.evaluations(limit=5)],
        "recent_decisions": cat.decisions(limit=10),
    }


def record_manual(ctx: AppContext, action: str, what: str, evidence: dict[str, Any], outcome: str) -> int:
    """Write an action a person took by hand into the decision log (actor ``user``), so "why" finds it."""
    return ctx.catalog.add_decision(action, f"done by hand: {what}", evidence, actor="user", outcome=outcome)


def promote(ctx: AppContext, model_version: str) -> dict[str, Any]:
    """Make a model version the active one by hand (the planner promotes through its guardrails)."""
    before = active_model_key(ctx.catalog)
    ctx.catalog.promote_model(model_version)
    decision = record_manual(ctx, "promote", f"`skyscout promote {model_version}` (the guardrails were not asked)",
                             {"candidate": model_version, "previous": before},
                             f"promoted: {model_version} is the active model")
    return {"active": model_version, "previous": before, "decision": decision}


__all__ = ["promote", "record_manual", "status"]

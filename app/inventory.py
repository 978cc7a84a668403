"""What the status panel shows beyond ``status``: every model version with its metrics, the index versions, and
the decision log with reasons and evidence (newest first)."""

from __future__ import annotations

from typing import Any

from app.context import AppContext
from tools.indexes import alias_name
from tools.modelref import active_model_key

#: metric values shown per evaluation (the stored per-class tables and confusion matrices stay out)
_HEADLINE = ("top1", "top5", "recall@1", "recall@5", "recall@10", "mean_recall", "n", "images")


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in metrics.items() if isinstance(v, int | float | str | bool) or v is None}
    chosen = {k: flat[k] for k in _HEADLINE if k in flat}
    return chosen or dict(list(flat.items())[:8])


def models(ctx: AppContext) -> dict[str, Any]:
    """Model versions, newest first, each with its status, lineage and latest evaluation per split."""
    cat = ctx.catalog
    evaluations = cat.evaluations(limit=500)
    out = []
    for mv in reversed(cat.list_model_versions()):
        latest: dict[str, dict[str, Any]] = {}
        for e in evaluations:  # newest first: the first per (split, kind) is the latest
            key = f"{e['split']}/{e['kind']}"
            if e["model"] == mv["id"] and key not in latest:
                latest[key] = {"dataset": e["dataset"], "created_at": e["created_at"],
                               "metrics": _headline(e["metrics"])}
        out.append({"id": mv["id"], "status": mv["status"], "arch": mv["arch"], "base": mv["base"],
                    "parent": mv["parent"], "dataset": mv["dataset_id"], "created_at": mv["created_at"],
                    "promoted_at": mv.get("promoted_at"), "evaluations": latest})
    return {"active": active_model_key(cat), "models": out}


def indexes(ctx: AppContext) -> dict[str, Any]:
    """Index versions, newest first, and which one answers searches."""
    cat = ctx.catalog
    rows = [{k: r.get(k) for k in ("name", "model", "store", "dim", "state", "count", "created_at", "completed_at")}
            for r in reversed(cat.list_indexes())]
    return {"active": cat.get_alias(alias_name(ctx.store_kind())), "indexes": rows}


def decisions(ctx: AppContext, *, limit: int = 50, action: str | None = None) -> list[dict[str, Any]]:
    """The decision log, newest first: action, reason, evidence, actor, outcome, time."""
    return ctx.catalog.decisions(limit=limit, action=action)


__all__ = ["decisions", "indexes", "models"]

"""Answers to "why" questions from the decision log, and to "what does the model confuse" from its stored
per-class results.

A question names its subject: a decision (``#12``), a model version, an index, a kind of action ("the
last retrain", "why did you promote"), or the model's mistakes. Manual actions (``skyscout promote``) are
in the log too, with ``actor`` user.
"""

from __future__ import annotations

import json
from typing import Any

from prompts.planner import EXPLAIN_CONFUSION, EXPLAIN_EMPTY, EXPLAIN_EVIDENCE, EXPLAIN_LINE, EXPLAIN_NO_CONFUSION
from tools.catalog import Catalog
from tools.modelref import active_model_key
from tools.stats import top_confusions

#: decision actions that each subject covers
SUBJECT_ACTIONS: dict[str, tuple[str, ...]] = {
    "train": ("train", "retrain", "evaluate", "promote", "keep_active", "dataset"),
    "index": ("index", "reindex", "drop_index"), "caption": ("caption",),
    "promote": ("promote", "keep_active"), "evaluate": ("evaluate",), "ingest": ("ingest",),
}


def _evidence(d: dict[str, Any]) -> str:
    ev = d.get("evidence") or {}
    parts = []
    paired = ev.get("paired")
    if isinstance(paired, dict) and paired.get("n"):
        parts.append(f"paired {ev.get('metric')} difference {paired['delta']:+.4f} "
                     f"({paired['confidence']:.0%} interval {paired['low']:+.4f} to {paired['high']:+.4f}, "
                     f"{paired['n']} images)")
    for key in ("new_pairs", "negative_feedback", "uncaptioned"):
        if key in ev:
            parts.append(f"{key.replace('_', ' ')} {ev[key]}")
    if ev.get("regressions"):
        parts.append("regressions: " + "; ".join(ev["regressions"]))
    return EXPLAIN_EVIDENCE.format(evidence=", ".join(parts)) if parts else ""


def _line(d: dict[str, Any]) -> str:
    return EXPLAIN_LINE.format(id=d["id"], action=d["action"], reason=d["reason"], actor=d.get("actor", "planner"),
                               outcome=f" [{d['outcome']}]" if d.get("outcome") else "") + _evidence(d)


def _mentions(d: dict[str, Any], name: str) -> bool:
    return name in d["reason"] or name in json.dumps(d.get("evidence") or {}, default=str)


def select_decisions(catalog: Catalog, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The decisions a question is about, newest first."""
    rows = catalog.decisions(limit=500)
    if args.get("decision") is not None:
        return [d for d in rows if d["id"] == int(args["decision"])]
    for key in ("model", "index"):
        if args.get(key):
            rows = [d for d in rows if _mentions(d, str(args[key]))]
    actions = SUBJECT_ACTIONS.get(str(args.get("subject") or ""))
    if actions is not None:
        rows = [d for d in rows if d["action"] in actions]
    return rows[:1] if args.get("latest") else rows[:10]


def explain_decisions(catalog: Catalog, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The answer to a "why" question: the decisions it is about, each with its reason and evidence."""
    rows = select_decisions(catalog, args)
    if not rows:
        about = " about " + ", ".join(f"{k} {v}" for k, v in args.items() if k != "latest") if args else ""
        return EXPLAIN_EMPTY.format(about=about), {"decisions": []}
    return "\n".join(_line(d) for d in rows), {"decisions": [d["id"] for d in rows]}


def explain_confusion(catalog: Catalog) -> tuple[str, dict[str, Any]]:
    """What the active model gets wrong most, from its latest stored zero-shot evaluation."""
    model = active_model_key(catalog)
    rows = [r for r in catalog.evaluations(model=model, limit=50) if r["kind"] == "zeroshot"]
    if not rows:
        return EXPLAIN_NO_CONFUSION.format(model=model), {"model": model}
    latest = rows[0]
    metrics = latest["metrics"]
    confusions = top_confusions(metrics.get("confusion") or {})
    weakest = sorted((metrics.get("per_class") or {}).items(), key=lambda kv: kv[1])[:5]
    text = EXPLAIN_CONFUSION.format(
        model=model, dataset=latest["dataset"], split=latest["split"], n=metrics.get("n", "?"),
        confusions="; ".join(f"{c['true']} taken for {c['predicted']} {c['count']} times ({c['share']:.0%})"
                             for c in confusions) or "none",
        weakest=", ".join(f"{name} {acc:.2f}" for name, acc in weakest) or "none")
    return text, {"model": model, "dataset": latest["dataset"], "split": latest["split"], "confusions": confusions,
                  "weakest_classes": dict(weakest)}


__all__ = ["SUBJECT_ACTIONS", "explain_confusion", "explain_decisions", "select_decisions"]

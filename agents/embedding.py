"""The Embedding agent: build or refresh a model version's vector index (blue-green), list and drop indexes.

The rules live in :mod:`app.indexing`: only the active model's index is ever activated, and an index is
dropped only when it is not the active one and the active one is complete.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.toolkit import ToolAgent, ToolOutput, ToolSpec, report_progress
from app.indexing import build_index as build
from app.indexing import drop_index as drop
from app.indexing import index_state
from prompts.agents import AGENT_SYSTEM_PROMPTS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.modelref import active_model_key


class IndexArgs(BaseModel):
    """Arguments of ``build_index``."""

    model: str = Field(default="active", description="'active', a model version id (mv-...), or a preset")


class IndexStatusArgs(BaseModel):
    """Arguments of ``index_status`` (none)."""


class DropIndexArgs(BaseModel):
    """Arguments of ``drop_index``."""

    name: str = Field(description="the index (table / collection) to delete")


def _progress(done: int, total: int) -> None:
    report_progress(task="index", done=done, total=total)


def build_index(ctx: AgentContext, args: IndexArgs) -> ToolOutput:
    """Embed every accepted image; activate the index once complete, if the model is the active one."""
    report = build(ctx.app, model=args.model, on_progress=_progress)
    info = ctx.app.catalog.get_index(report.index) or {}
    data = {"index": report.index, "model": report.model, "store": report.store, "count": report.count,
            "embedded": report.embedded, "skipped_existing": report.skipped_existing, "failed": len(report.failed),
            "state": info.get("state", "unknown"), "activated": report.activated, "job_id": report.job_id,
            "seconds": round(report.seconds, 2)}
    if report.activated:
        note = "; now the active index"
    elif report.model != active_model_key(ctx.app.catalog):
        note = f"; not activated: {report.model} is not the active model"
    else:
        note = "; not activated: the index is incomplete"
    return ToolOutput(SUMMARIES["build_index"].format(**data, note=note), data)


def index_status(ctx: AgentContext, args: IndexStatusArgs) -> ToolOutput:
    """Every index the catalog knows, and the state of the active model's index."""
    catalog = ctx.app.catalog
    rows = [{k: r[k] for k in ("name", "model", "store", "state", "count")} for r in catalog.list_indexes()]
    state = index_state(catalog, ctx.app.store_kind())
    listed = ", ".join(f"{r['name']} ({r['state']}, {r['count']})" for r in rows) or "none"
    data = {"active": state["alias"], "indexes": rows, "active_model_index": state}
    return ToolOutput(SUMMARIES["index_status"].format(active=state["alias"] or "none", indexes=listed), data)


def drop_index(ctx: AgentContext, args: DropIndexArgs) -> ToolOutput:
    """Delete an index that is not active, and only while the active index is complete."""
    existed = drop(ctx.app, args.name)
    return ToolOutput(SUMMARIES["drop_index"].format(index=args.name), {"index": args.name, "dropped": existed})


TOOLS = (
    ToolSpec("build_index", build_index, IndexArgs, TOOL_DESCRIPTIONS["build_index"]),
    ToolSpec("index_status", index_status, IndexStatusArgs, TOOL_DESCRIPTIONS["index_status"]),
    ToolSpec("drop_index", drop_index, DropIndexArgs, TOOL_DESCRIPTIONS["drop_index"]),
)
AGENT = ToolAgent("embedding", TOOLS, system_prompt=AGENT_SYSTEM_PROMPTS["embedding"])

__all__ = ["AGENT", "TOOLS", "DropIndexArgs", "IndexArgs", "IndexStatusArgs"]

"""The Embedding agent: build or refresh a model version's vector index, blue-green.

:func:`tools.embedding.build_index` writes a new index beside the active one and moves the
``active_index:<store>`` alias only when every image is in. This agent adds two rules: only the active
model's index is ever activated (an index built for a candidate waits for its promotion), and an index is
dropped only when it is not the active one and the active one is complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agents.deps import AgentDeps
from agents.llm import ToolAgent, ToolOutput, agent_tool
from prompts.agents import AGENT_SYSTEM_PROMPTS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.catalog import Catalog
from tools.embedding import alias_name
from tools.embedding import build_index as run_build_index
from tools.stores.base import index_name_for_model

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class IndexArgs(BaseModel):
    """Arguments of ``build_index``."""

    model: str = Field(default="active", description="'active', a model version id (mv-...), or a preset")


class IndexStatusArgs(BaseModel):
    """Arguments of ``index_status`` (none)."""


class DropIndexArgs(BaseModel):
    """Arguments of ``drop_index``."""

    name: str = Field(description="the index (table / collection) to delete")


def index_state(catalog: Catalog, store_kind: str) -> dict[str, Any]:
    """Where the active model's index stands: its name, whether it is complete and active, what is missing."""
    from tools.modelops import DEFAULT_BASE_MODEL

    active = catalog.get_alias("active_model") or DEFAULT_BASE_MODEL
    wanted = index_name_for_model(active)
    info = catalog.get_index(wanted)
    alias_target = catalog.get_alias(alias_name(store_kind))
    images = catalog.count_images(status="ok")
    complete = bool(info and info["state"] == "complete" and info["store"] == store_kind)
    count = int(info["count"]) if info else 0
    missing = max(0, images - count) if complete else images
    reasons: list[str] = []
    if not complete:
        reasons.append(
            f"the active model {active} has no complete {store_kind} index"
            + (f" (index {wanted} is {info['state']})" if info else "")
        )
    if alias_target != wanted:
        target_model = (catalog.get_index(alias_target) or {}).get("model") if alias_target else None
        reasons.append(
            f"the active index alias points at {alias_target} (model {target_model})"
            if alias_target
            else "no index is active yet"
        )
    if complete and missing:
        reasons.append(f"{missing} accepted images are not in index {wanted}")
    if images == 0:
        reasons = []  # nothing to index yet
    return {
        "model": active,
        "index": wanted,
        "alias": alias_target,
        "complete": complete,
        "count": count,
        "images": images,
        "unindexed": missing,
        "stale": bool(reasons),
        "reasons": reasons,
    }


def build_index(deps: AgentDeps, args: IndexArgs) -> ToolOutput:
    """Embed every accepted image; activate the index once complete, if the model is the active one."""
    key, loaded = deps.load(args.model)
    activate = key == deps.active_model_key()
    report = run_build_index(
        deps.catalog,
        deps.registry(),
        model_key=key,
        model=loaded.model,
        transform=loaded.preprocess_val,
        dim=loaded.embed_dim,
        device=deps.device,
        batch_size=deps.batch_size,
        num_workers=deps.loader_workers,
        activate=activate,
        progress=deps.progress,
    )
    info = deps.catalog.get_index(report.index) or {}
    data = {
        "index": report.index,
        "model": key,
        "store": report.store,
        "count": report.count,
        "embedded": report.embedded,
        "skipped_existing": report.skipped_existing,
        "failed": len(report.failed),
        "state": info.get("state", "unknown"),
        "activated": report.activated,
        "job_id": report.job_id,
        "seconds": round(report.seconds, 2),
    }
    if report.activated:
        note = "; now the active index"
    elif not activate:
        note = f"; not activated: {key} is not the active model"
    else:
        note = "; not activated: the index is incomplete"
    return ToolOutput(SUMMARIES["build_index"].format(**data, note=note), data)


def index_status(deps: AgentDeps, args: IndexStatusArgs) -> ToolOutput:
    """Every index the catalog knows, and the state of the active model's index."""
    rows = [
        {k: r[k] for k in ("name", "model", "store", "state", "count")} for r in deps.catalog.list_indexes()
    ]
    state = index_state(deps.catalog, deps.store_kind)
    listed = ", ".join(f"{r['name']} ({r['state']}, {r['count']})" for r in rows) or "none"
    data = {"active": state["alias"], "indexes": rows, "active_model_index": state}
    return ToolOutput(SUMMARIES["index_status"].format(active=state["alias"] or "none", indexes=listed), data)


def drop_index(deps: AgentDeps, args: DropIndexArgs) -> ToolOutput:
    """Delete an index that is not active, and only while the active index is complete."""
    catalog = deps.catalog
    alias_target = catalog.get_alias(alias_name(deps.store_kind))
    if args.name == alias_target:
        raise PermissionError(
            f"index {args.name} is the active index; build and activate its replacement first"
        )
    active_info = catalog.get_index(alias_target) if alias_target else None
    if alias_target and (active_info is None or active_info["state"] != "complete"):
        raise PermissionError(
            f"the active index {alias_target} is not complete; no index is dropped until it is"
        )
    info = catalog.get_index(args.name)
    existed = deps.registry().drop(args.name)
    if info is not None:
        catalog.upsert_index(
            args.name, model=info["model"], store=info["store"], dim=info["dim"], state="dropped"
        )
    if not existed and info is None:
        raise LookupError(f"no index {args.name!r}; see index_status for the existing ones")
    return ToolOutput(
        SUMMARIES["drop_index"].format(index=args.name), {"index": args.name, "dropped": existed}
    )


def embedding_tools(deps: AgentDeps) -> list[StructuredTool]:
    """The Embedding agent's tools, bound to ``deps``."""
    return [
        agent_tool(
            lambda a: build_index(deps, a),
            name="build_index",
            description=TOOL_DESCRIPTIONS["build_index"],
            args_schema=IndexArgs,
        ),
        agent_tool(
            lambda a: index_status(deps, a),
            name="index_status",
            description=TOOL_DESCRIPTIONS["index_status"],
            args_schema=IndexStatusArgs,
        ),
        agent_tool(
            lambda a: drop_index(deps, a),
            name="drop_index",
            description=TOOL_DESCRIPTIONS["drop_index"],
            args_schema=DropIndexArgs,
        ),
    ]


def create_embedding_agent(*, deps: AgentDeps, llm: BaseChatModel | None = None) -> ToolAgent:
    """The Embedding agent over ``deps`` (store backend from ``deps.open_registry``)."""
    return ToolAgent(
        "embedding", embedding_tools(deps), llm=llm, system_prompt=AGENT_SYSTEM_PROMPTS["embedding"]
    )


__all__ = ["DropIndexArgs", "IndexArgs", "create_embedding_agent", "embedding_tools", "index_state"]

"""The Caption agent: caption the catalogued images that lack captions, with the chosen captioner.

The captioner comes from the injected model cache (built once per process); the work itself is
:func:`tools.captioning.run.caption_images`, which commits batch by batch and so resumes after a crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agents.deps import AgentDeps
from agents.llm import ToolAgent, ToolOutput, agent_tool
from prompts.agents import AGENT_SYSTEM_PROMPTS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.captioning.run import caption_images as run_captioning

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class CaptionArgs(BaseModel):
    """Arguments of ``caption_images``."""

    captioner: Literal["template", "tags", "blip", "blip2"] | None = Field(
        default=None, description="captioning backend (default: the configured one)"
    )
    limit: int | None = Field(default=None, ge=1, description="caption at most this many images")
    only_uncaptioned: bool = Field(
        default=True, description="only images with no caption from any source (false: all lacking this captioner's)"
    )
    batch_size: int = Field(default=64, ge=1, le=4096)


def caption_images(deps: AgentDeps, args: CaptionArgs) -> ToolOutput:
    """Caption what lacks a caption; the report says how many images were captioned and which failed."""
    name = args.captioner or deps.captioner
    captioner = deps.model_cache.captioner(name)
    report = run_captioning(
        deps.catalog,
        captioner,
        batch_size=args.batch_size,
        limit=args.limit,
        workers=deps.workers,
        progress=deps.progress,
        only_uncaptioned=args.only_uncaptioned,
    )
    data = {
        "captioner": name,
        "model": report.model,
        "job_id": report.job_id,
        "images": report.images,
        "captioned": report.captioned,
        "captions_added": report.captions_added,
        "nothing_to_say": report.nothing_to_say,
        "failed": len(report.failed),
        "failures": report.failed[:10],
        "uncaptioned_left": deps.catalog.count_uncaptioned(),
    }
    return ToolOutput(SUMMARIES["caption_images"].format(**data), data)


def caption_tools(deps: AgentDeps) -> list[StructuredTool]:
    """The Caption agent's tools, bound to ``deps``."""
    return [
        agent_tool(
            lambda a: caption_images(deps, a),
            name="caption_images",
            description=TOOL_DESCRIPTIONS["caption_images"],
            args_schema=CaptionArgs,
        )
    ]


def create_caption_agent(*, deps: AgentDeps, llm: BaseChatModel | None = None) -> ToolAgent:
    """The Caption agent over ``deps`` (its captioners come from ``deps.models``)."""
    return ToolAgent("caption", caption_tools(deps), llm=llm, system_prompt=AGENT_SYSTEM_PROMPTS["caption"])


__all__ = ["CaptionArgs", "caption_tools", "create_caption_agent"]

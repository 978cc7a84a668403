"""The Caption agent: caption the catalogued images that lack captions, with the chosen captioner.

The captioner comes from the application's model cache (built once per process); the work itself is
:func:`app.data.caption`, which commits batch by batch and so resumes after a crash.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.toolkit import ToolAgent, ToolOutput, ToolSpec
from app.data import caption
from prompts.agents import AGENT_SYSTEM_PROMPTS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.captioning.factory import CaptionerName


class CaptionArgs(BaseModel):
    """Arguments of ``caption_images``."""

    captioner: CaptionerName | None = Field(default=None,
                                            description="captioning backend (default: the configured one)")
    limit: int | None = Field(default=None, ge=1, description="caption at most this many images")
    only_uncaptioned: bool = Field(
        default=True, description="only images with no caption from any source (false: all lacking this captioner's)"
    )
    batch_size: int = Field(default=64, ge=1, le=4096)
    from_folders: bool = Field(default=False, description="template: use folder names for images without a label")


def caption_images(ctx: AgentContext, args: CaptionArgs) -> ToolOutput:
    """Caption what lacks a caption; the report says how many images were captioned and which failed."""
    name = args.captioner or ctx.app.config.captioner
    report = caption(ctx.app, captioner=name, batch_size=args.batch_size, limit=args.limit,
                     only_uncaptioned=args.only_uncaptioned, from_folders=args.from_folders)
    data = {"captioner": name, "model": report.model, "job_id": report.job_id, "images": report.images,
            "captioned": report.captioned, "captions_added": report.captions_added,
            "nothing_to_say": report.nothing_to_say, "failed": len(report.failed), "failures": report.failed[:10],
            "uncaptioned_left": ctx.app.catalog.count_uncaptioned()}
    return ToolOutput(SUMMARIES["caption_images"].format(**data), data)


TOOLS = (ToolSpec("caption_images", caption_images, CaptionArgs, TOOL_DESCRIPTIONS["caption_images"]),)
AGENT = ToolAgent("caption", TOOLS, system_prompt=AGENT_SYSTEM_PROMPTS["caption"])

__all__ = ["AGENT", "TOOLS", "CaptionArgs"]

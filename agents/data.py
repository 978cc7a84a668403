"""The Data agent: ingest folders and manifests, report rejected files, create dataset versions.

Its tools are thin adapters over :mod:`app.data`; every path is checked against the allowed data roots
there.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from agents.context import AgentContext
from agents.toolkit import ToolAgent, ToolOutput, ToolSpec
from app.data import create_dataset, ingest, is_manifest
from prompts.agents import AGENT_SYSTEM_PROMPTS, SUMMARIES, TOOL_DESCRIPTIONS

_REJECT_EXAMPLES = 10


class IngestArgs(BaseModel):
    """Arguments of ``ingest_images``."""

    path: str = Field(description="a folder to scan, or a manifest file (.jsonl/.csv)")
    manifest: bool | None = Field(default=None, description="treat path as a manifest; default: decided by suffix")
    source: str | None = Field(default=None, description="collection name recorded with each image")
    labels_from_folders: bool = Field(default=False, description="label each image with its folder's name")


class RejectsArgs(BaseModel):
    """Arguments of ``report_rejects``."""

    limit: int = Field(default=20, ge=1, le=1000, description="how many rejected files to list")


class DatasetArgs(BaseModel):
    """Arguments of ``create_dataset_version``."""

    name: str | None = Field(default=None, description="a name for the version (default: its sources)")
    sources: list[str] | None = Field(default=None, description="only images of these sources")
    val_frac: float = Field(default=0.1, ge=0, lt=1)
    test_frac: float = Field(default=0.1, ge=0, lt=1)
    seed: int = 0
    require_captions: bool = Field(default=True, description="leave out images without any caption")


def ingest_images(ctx: AgentContext, args: IngestArgs) -> ToolOutput:
    """Ingest a folder or a manifest; the report lists the first rejected files with their reasons."""
    manifest = args.manifest if args.manifest is not None else is_manifest(args.path)
    report = ingest(ctx.app, args.path, manifest=manifest, source=args.source,
                    labels_from_folders=args.labels_from_folders)
    rejects = report.rejected[:_REJECT_EXAMPLES]
    note = ""
    if rejects:
        shown = "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in rejects[:3])
        note = f" ({shown}{' ...' if len(report.rejected) > 3 else ''})"
    data = {"path": str(Path(args.path).expanduser()), "manifest": manifest,
            "source": report.source, "job_id": report.job_id, "scanned": report.scanned, "added": report.added,
            "duplicates": report.duplicates, "unchanged": report.unchanged, "rejected": len(report.rejected),
            "rejects": rejects, "captions_added": report.captions_added, "seconds": round(report.seconds, 2)}
    return ToolOutput(SUMMARIES["ingest_images"].format(**data, reject_note=note), data)


def report_rejects(ctx: AgentContext, args: RejectsArgs) -> ToolOutput:
    """The rejected files the catalog knows, with the reason for each."""
    rejected = ctx.app.catalog.rejected_images()
    rows = [{"image_id": r.id, "path": r.uri, "reason": r.reason or ""} for r in rejected[: args.limit]]
    examples = ": " + "; ".join(f"{Path(r['path']).name} ({r['reason']})" for r in rows[:5]) if rows else ""
    data = {"count": len(rejected), "rejects": rows}
    return ToolOutput(SUMMARIES["report_rejects"].format(count=len(rejected), examples=examples), data)


def create_dataset_version(ctx: AgentContext, args: DatasetArgs) -> ToolOutput:
    """Make (or find) the dataset version of the accepted images; the id is a hash of its content."""
    info = create_dataset(ctx.app, **args.model_dump())
    splits = info["splits"]
    data = {"dataset_id": info["id"], "name": info["name"], "created": bool(info.get("created")),
            "train": splits["train"], "val": splits["val"], "test": splits["test"]}
    state = "new" if data["created"] else "already existed"
    return ToolOutput(SUMMARIES["create_dataset_version"].format(**data, state=state), data)


TOOLS = (
    ToolSpec("ingest_images", ingest_images, IngestArgs, TOOL_DESCRIPTIONS["ingest_images"]),
    ToolSpec("report_rejects", report_rejects, RejectsArgs, TOOL_DESCRIPTIONS["report_rejects"]),
    ToolSpec("create_dataset_version", create_dataset_version, DatasetArgs,
             TOOL_DESCRIPTIONS["create_dataset_version"]),
)
AGENT = ToolAgent("data", TOOLS, system_prompt=AGENT_SYSTEM_PROMPTS["data"])

__all__ = ["AGENT", "TOOLS", "DatasetArgs", "IngestArgs", "RejectsArgs"]

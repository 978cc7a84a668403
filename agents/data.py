"""The Data agent: ingest folders and manifests, report rejected files, create dataset versions.

Its tools are thin LangChain wrappers over :mod:`tools.ingest` and :mod:`tools.datasets`; every path is
checked against the allowed data roots by those functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, Field

from agents.deps import AgentDeps
from agents.llm import ToolAgent, ToolOutput, agent_tool
from prompts.agents import AGENT_SYSTEM_PROMPTS, SUMMARIES, TOOL_DESCRIPTIONS
from tools.datasets import create_dataset
from tools.ingest import ingest_directory, ingest_manifest

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

#: file suffixes read as manifests rather than scanned as folders
MANIFEST_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".csv", ".tsv"})
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
    use_manifest_split: bool = Field(default=False, description="keep the split a manifest gave each image")
    require_captions: bool = Field(default=True, description="leave out images without any caption")


def ingest_images(deps: AgentDeps, args: IngestArgs) -> ToolOutput:
    """Ingest a folder or a manifest; the report lists the first rejected files with their reasons."""
    path = Path(args.path).expanduser()
    is_manifest = args.manifest if args.manifest is not None else path.suffix.lower() in MANIFEST_SUFFIXES
    if is_manifest:
        report = ingest_manifest(deps.catalog, path, allowed_roots=deps.allowed_roots, source=args.source,
                                 workers=deps.workers, progress=deps.progress)
    else:
        report = ingest_directory(deps.catalog, path, allowed_roots=deps.allowed_roots, source=args.source,
                                  labels_from_folders=args.labels_from_folders, workers=deps.workers,
                                  progress=deps.progress)
    rejects = report.rejected[:_REJECT_EXAMPLES]
    note = ""
    if rejects:
        note = (
            " ("
            + "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in rejects[:3])
            + (" ..." if len(report.rejected) > 3 else "")
            + ")"
        )
    data = {
        "path": str(path),
        "manifest": is_manifest,
        "source": report.source,
        "job_id": report.job_id,
        "scanned": report.scanned,
        "added": report.added,
        "duplicates": report.duplicates,
        "unchanged": report.unchanged,
        "rejected": len(report.rejected),
        "rejects": rejects,
        "captions_added": report.captions_added,
        "seconds": round(report.seconds, 2),
    }
    return ToolOutput(SUMMARIES["ingest_images"].format(**data, reject_note=note), data)


def report_rejects(deps: AgentDeps, args: RejectsArgs) -> ToolOutput:
    """The rejected files the catalog knows, with the reason for each."""
    rejected = deps.catalog.rejected_images()
    rows = [{"image_id": r.id, "path": r.uri, "reason": r.reason or ""} for r in rejected[: args.limit]]
    examples = ": " + "; ".join(f"{Path(r['path']).name} ({r['reason']})" for r in rows[:5]) if rows else ""
    data = {"count": len(rejected), "rejects": rows}
    return ToolOutput(SUMMARIES["report_rejects"].format(count=len(rejected), examples=examples), data)


def create_dataset_version(deps: AgentDeps, args: DatasetArgs) -> ToolOutput:
    """Make (or find) the dataset version of the accepted images; the id is a hash of its content."""
    info = create_dataset(
        deps.catalog,
        name=args.name,
        sources=args.sources,
        val_frac=args.val_frac,
        test_frac=args.test_frac,
        seed=args.seed,
        use_manifest_split=args.use_manifest_split,
        require_captions=args.require_captions,
    )
    splits = info["splits"]
    data = {
        "dataset_id": info["id"],
        "name": info["name"],
        "created": bool(info.get("created")),
        "train": splits["train"],
        "val": splits["val"],
        "test": splits["test"],
    }
    state = "new" if data["created"] else "already existed"
    return ToolOutput(SUMMARIES["create_dataset_version"].format(**data, state=state), data)


def data_tools(deps: AgentDeps) -> list[StructuredTool]:
    """The Data agent's tools, bound to ``deps``."""
    return [
        agent_tool(
            lambda a: ingest_images(deps, a),
            name="ingest_images",
            description=TOOL_DESCRIPTIONS["ingest_images"],
            args_schema=IngestArgs,
        ),
        agent_tool(
            lambda a: report_rejects(deps, a),
            name="report_rejects",
            description=TOOL_DESCRIPTIONS["report_rejects"],
            args_schema=RejectsArgs,
        ),
        agent_tool(
            lambda a: create_dataset_version(deps, a),
            name="create_dataset_version",
            description=TOOL_DESCRIPTIONS["create_dataset_version"],
            args_schema=DatasetArgs,
        ),
    ]


def create_data_agent(*, deps: AgentDeps, llm: BaseChatModel | None = None) -> ToolAgent:
    """The Data agent over ``deps``; with ``llm`` it chooses its tool calls, else it runs the step's tool."""
    return ToolAgent("data", data_tools(deps), llm=llm, system_prompt=AGENT_SYSTEM_PROMPTS["data"])


__all__ = ["DatasetArgs", "IngestArgs", "RejectsArgs", "create_data_agent", "data_tools"]
